// Cross-cutting HTTP behaviour, applied to every route: body size limit, API
// key check, and the one error handler that turns anything into OpenAI's shape.

import { timingSafeEqual } from "node:crypto";
import { Elysia, ValidationError } from "elysia";
import { log } from "../log";
import type { Metrics } from "../metrics";
import { ApiError, paramFromPath, toApiError } from "./errors";

function pathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0) return "/";
  const q = url.indexOf("?", start);
  return q < 0 ? url.slice(start) : url.slice(start, q);
}

function keyMatches(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** What OpenAI's API says for a missing or wrong key. */
function authError(header: string | null, apiKey: string): ApiError | null {
  if (!header) {
    return new ApiError(
      401,
      "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
      "invalid_request_error",
      "missing_api_key",
    );
  }
  const m = /^Bearer\s+(.+)$/i.exec(header.trim());
  if (!m || !keyMatches((m[1] as string).trim(), apiKey)) {
    return new ApiError(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key");
  }
  return null;
}

type SchemaLike = {
  type?: string;
  anyOf?: SchemaLike[];
  const?: unknown;
  minimum?: number;
  maximum?: number;
  maxItems?: number;
  minItems?: number;
  minLength?: number;
};

function flatten(s: SchemaLike): SchemaLike[] {
  return s.anyOf ? s.anyOf.flatMap(flatten) : [s];
}

function range(s: SchemaLike): string {
  if (s.minimum !== undefined && s.maximum !== undefined) return ` between ${s.minimum} and ${s.maximum}`;
  if (s.minimum !== undefined) return ` >= ${s.minimum}`;
  if (s.maximum !== undefined) return ` <= ${s.maximum}`;
  return "";
}

/** "a string", "a number between 0 and 2", "one of a string or an array"... from a JSON schema. */
function describe(schema: SchemaLike): string {
  const parts = [
    ...new Set(
      flatten(schema).map((s) => {
        if (s.const !== undefined) return JSON.stringify(s.const);
        switch (s.type) {
          case "string":
            return s.minLength ? `a string of at least ${s.minLength} characters` : "a string";
          case "integer":
            return `an integer${range(s)}`;
          case "number":
            return `a number${range(s)}`;
          case "boolean":
            return "a boolean";
          case "array":
            return s.maxItems !== undefined
              ? `an array of at most ${s.maxItems} items`
              : s.minItems
                ? "a non-empty array"
                : "an array";
          case "object":
            return "an object";
          case "null":
            return "null";
          default:
            return "a valid value";
        }
      }),
    ),
  ];
  return parts.length === 1 ? (parts[0] as string) : `one of ${parts.slice(0, -1).join(", ")} or ${parts.at(-1)}`;
}

function shown(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return `an array of ${v.length} items`;
  if (typeof v === "object") return "an object";
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  return String(v);
}

function validationError(e: ValidationError): ApiError {
  if (e.type === "body" && (e.value === null || typeof e.value !== "object" || Array.isArray(e.value))) {
    return ApiError.invalid("The request body must be a JSON object", null, "invalid_body");
  }
  const first = e.valueError ?? e.all[0];
  const path = first && "path" in first ? String(first.path) : "";
  const param = paramFromPath(path);
  const where = param ? `'${param}'` : "the request body";
  if (!first) return ApiError.invalid(`Invalid ${where}: ${e.message}`, param, "invalid_value");
  if (first.value === undefined) {
    return ApiError.invalid(`Missing required parameter: ${where}.`, param, "missing_required_parameter");
  }
  return ApiError.invalid(
    `Invalid value for ${where}: expected ${describe(first.schema as SchemaLike)}, got ${shown(first.value)}.`,
    param,
    "invalid_value",
  );
}

/** Paths that need the API key when one is set (/health and /docs stay open). */
function protectedPath(path: string): boolean {
  return path.startsWith("/v1") || path === "/metrics";
}

export const httpLayer = (opts: { apiKey: string | null; maxBodyBytes: number; metrics: Metrics }) =>
  new Elysia({ name: "http-layer" })
    .onRequest(({ request }) => {
      const length = Number(request.headers.get("content-length") ?? 0);
      if (length > opts.maxBodyBytes) {
        return new ApiError(
          413,
          `The request body is ${length} bytes, more than the ${opts.maxBodyBytes} bytes this server accepts`,
          "invalid_request_error",
          "request_too_large",
        ).toResponse();
      }
      if (opts.apiKey && request.method !== "OPTIONS" && protectedPath(pathOf(request.url))) {
        const err = authError(request.headers.get("authorization"), opts.apiKey);
        if (err) return err.toResponse();
      }
    })
    .onAfterResponse({ as: "global" }, ({ request, route, set, responseValue }) => {
      if (request.method === "OPTIONS") return;
      const status = responseValue instanceof Response ? responseValue.status : Number(set.status ?? 200);
      opts.metrics.request(route || "unmatched", status);
    })
    .onError({ as: "global" }, ({ code, error, request }) => {
      let api: ApiError;
      if (error instanceof ValidationError) api = validationError(error);
      else if (code === "PARSE") {
        api = ApiError.invalid(
          "We could not parse the JSON body of your request. The body must be valid JSON sent with Content-Type: application/json.",
          null,
          "invalid_json",
        );
      } else if (code === "NOT_FOUND") {
        api = ApiError.notFound(`Invalid URL (${request.method} ${pathOf(request.url)})`, null, "unknown_url");
      } else api = toApiError(error);
      // our failures are worth a log line; "not implemented" and "try later" answers are not
      if (api.status >= 500 && api.status !== 501 && api.status !== 503) {
        log.error(`${request.method} ${pathOf(request.url)}: ${api.message}`);
      }
      return api.toResponse();
    });
