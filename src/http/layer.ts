// Cross-cutting HTTP behaviour, applied to every route before it runs:
// - the path is canonicalised (double and trailing slashes) and the router is
//   given exactly that path, so the auth decision and the route always agree;
// - body size limits, for bodies with a content-length and chunked ones alike;
// - browsers: CORS for the server's own, loopback and configured origins only
//   (never credentials), and a Host check against DNS rebinding when no API key
//   is set;
// - the API key (Authorization: Bearer, or x-api-key as Anthropic clients send),
//   required on everything but an explicit public list;
// - the one error handler that turns anything into the error shape of the
//   route's dialect (OpenAI's, or Anthropic's on /v1/messages).
import { timingSafeEqual } from "node:crypto";
import { Elysia, ValidationError } from "elysia";
import { log } from "../log";
import type { Metrics } from "../metrics";
import { ApiError, dialectOf, toApiError } from "./errors";
import { checkJsonDepth, validationError } from "./validate";

export interface HttpLayerOptions {
  apiKeys: string[];
  corsOrigins: string[];
  allowedHosts: string[];
  maxBodyBytes: number;
  /** paths that take uploads (streamed by their route) and their own limits: path -> bytes */
  uploads?: Record<string, number>;
  metrics: Metrics;
}

/** Paths anyone may fetch, key or not: health, the docs page and its assets, the chat page. */
const PUBLIC_PATHS = new Set(["/", "/health", "/docs", "/docs/json", "/api/version"]);
const PUBLIC_PREFIXES = ["/docs/assets/"];

export function isPublicPath(path: string): boolean {
  return PUBLIC_PATHS.has(path) || PUBLIC_PREFIXES.some((p) => path.startsWith(p));
}

/** "/v1//models/" -> "/v1/models": runs of slashes collapse, a trailing one goes (the root stays "/"). */
export function canonicalPath(pathname: string): string {
  const p = pathname.replace(/\/{2,}/g, "/");
  return p.length > 1 && p.endsWith("/") ? p.slice(0, -1) : p;
}

/**
 * The request as the router must see it: a URL whose path is canonical and
 * which Elysia's router reads correctly (it looks for the path at a fixed
 * offset of the URL, which a short Host header moves). Returns the request
 * itself when it already is.
 */
function canonicalRequest(request: Request): Request {
  const url = request.url;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return request;
  }
  const path = canonicalPath(parsed.pathname);
  const q = url.indexOf("?");
  // Elysia: path = url.slice(url.indexOf("/", 11), query)
  const seen = url.slice(url.indexOf("/", 11), q < 0 ? undefined : q);
  if (seen === path && parsed.pathname === path) return request;
  return new Request(`http://localhost${path}${parsed.search}`, request);
}

const BODY_METHODS = new Set(["POST", "PUT", "PATCH", "DELETE"]);

function tooLarge(limit: number, size: number | null): ApiError {
  return new ApiError(
    413,
    size === null
      ? `The request body is more than the ${limit} bytes this server accepts`
      : `The request body is ${size} bytes, more than the ${limit} bytes this server accepts`,
    "invalid_request_error",
    "request_too_large",
  );
}

/** Reads a body that has no content-length (chunked) up to `limit` bytes; null when it is longer. */
async function readLimited(body: ReadableStream<Uint8Array>, limit: number): Promise<Uint8Array | null> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      return null;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

function keyMatches(given: string, keys: readonly Buffer[]): boolean {
  const a = Buffer.from(given);
  let ok = false;
  // every key is compared, so the time taken says nothing about which one matched
  for (const b of keys) if (a.length === b.length && timingSafeEqual(a, b)) ok = true;
  return ok;
}

/** What OpenAI's API says for a missing or wrong key. */
function authError(request: Request, keys: readonly Buffer[]): ApiError | null {
  const header = request.headers.get("authorization");
  const xKey = request.headers.get("x-api-key");
  if (!header && !xKey) {
    return new ApiError(
      401,
      "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or in an x-api-key header.",
      "invalid_request_error",
      "missing_api_key",
    );
  }
  const bearer = header ? /^Bearer\s+(.+)$/i.exec(header.trim())?.[1]?.trim() : undefined;
  if ((bearer && keyMatches(bearer, keys)) || (xKey && keyMatches(xKey.trim(), keys))) return null;
  return new ApiError(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key");
}

// ---- browsers ---------------------------------------------------------------

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/** localhost, *.localhost, 127.0.0.0/8, ::1 (host names as URL.hostname gives them). */
function isLoopbackName(host: string): boolean {
  const h = host.toLowerCase();
  return (
    h === "localhost" || h.endsWith(".localhost") || h === "[::1]" || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h)
  );
}

/** The host name of a Host header ("a.b:3000" -> "a.b", "[::1]:80" -> "[::1]"). */
function hostName(hostHeader: string): string {
  const h = hostHeader.trim().toLowerCase();
  if (h.startsWith("[")) return h.slice(0, h.indexOf("]") + 1);
  const colon = h.lastIndexOf(":");
  return colon >= 0 ? h.slice(0, colon) : h;
}

/**
 * Whether a Host header is safe without an API key: DNS rebinding needs a
 * host *name* the attacker controls, so loopback names, IP literals and the
 * names the operator configured are fine; anything else is refused.
 */
export function hostAllowed(hostHeader: string | null, allowed: readonly string[]): boolean {
  if (!hostHeader) return true; // HTTP/1.0 clients; browsers always send Host
  const name = hostName(hostHeader);
  return isLoopbackName(name) || IPV4.test(name) || name.startsWith("[") || allowed.includes(name);
}

/** Whether a page of `origin` may call: the server's own origin, loopback origins, configured ones. */
export function originAllowed(origin: string, hostHeader: string | null, configured: readonly string[]): boolean {
  if (configured.includes("*")) return true;
  const o = origin.trim().toLowerCase().replace(/\/+$/, "");
  if (configured.some((c) => c.toLowerCase().replace(/\/+$/, "") === o)) return true;
  let url: URL;
  try {
    url = new URL(o);
  } catch {
    return false; // "null" (sandboxed frames, file:) and garbage
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return false;
  if (isLoopbackName(url.hostname)) return true;
  return hostHeader !== null && url.host === hostHeader.trim().toLowerCase();
}

const EXPOSED = "x-request-id, retry-after, x-should-retry";

function pathOf(request: Request): string {
  try {
    return new URL(request.url).pathname;
  } catch {
    return "/";
  }
}

export const httpLayer = (opts: HttpLayerOptions) => {
  const keys = opts.apiKeys.map((k) => Buffer.from(k));
  const uploads = new Map(Object.entries(opts.uploads ?? {}));
  /** the body limit of a request: an upload route's own, else --max-body-mb */
  const limitOf = (method: string, path: string) =>
    (method === "POST" ? uploads.get(path) : undefined) ?? opts.maxBodyBytes;
  const allowedHosts = opts.allowedHosts.map((h) => h.toLowerCase());
  return (
    new Elysia({ name: "http-layer" })
      // before routing: the canonical path, and chunked bodies read within the limit
      .wrap((handle) => async (request: Request) => {
        let req = canonicalRequest(request);
        const upload = req.method === "POST" && uploads.has(pathOf(req));
        // chunked bodies are read here within the limit (uploads: by their route, as they stream)
        if (!upload && BODY_METHODS.has(req.method) && req.body && req.headers.get("content-length") === null) {
          const bytes = await readLimited(req.body, opts.maxBodyBytes);
          if (!bytes) {
            opts.metrics.request("unmatched", 413);
            return tooLarge(opts.maxBodyBytes, null).toResponse(dialectOf(pathOf(req)));
          }
          const headers = new Headers(req.headers);
          headers.set("content-length", String(bytes.length));
          req = new Request(req.url, { method: req.method, headers, body: bytes, signal: request.signal });
        }
        return handle(req);
      })
      .onRequest(({ request, set }) => {
        const path = pathOf(request);
        const origin = request.headers.get("origin");
        const host = request.headers.get("host");
        if (origin !== null) {
          if (!originAllowed(origin, host, opts.corsOrigins)) {
            return new ApiError(
              403,
              `Requests from the web origin ${origin} are not allowed (start the server with --cors-origin ${origin} to allow them)`,
              "invalid_request_error",
              "origin_not_allowed",
            ).toResponse(dialectOf(path));
          }
          set.headers["access-control-allow-origin"] = opts.corsOrigins.includes("*") ? "*" : origin;
          set.headers.vary = "Origin";
          set.headers["access-control-expose-headers"] = EXPOSED;
        }
        if (keys.length === 0 && !hostAllowed(host, allowedHosts)) {
          return new ApiError(
            403,
            `The host name '${hostName(host ?? "")}' is not served without an API key (a page could reach this server through it by DNS rebinding): use an IP address or localhost, start with --allow-host ${hostName(host ?? "")}, or set --api-key`,
            "invalid_request_error",
            "host_not_allowed",
          ).toResponse(dialectOf(path));
        }
        if (request.method === "OPTIONS" && request.headers.get("access-control-request-method")) {
          return new Response(null, {
            status: 204,
            headers: {
              ...(set.headers as Record<string, string>),
              "access-control-allow-methods": "GET, POST, DELETE, OPTIONS",
              "access-control-allow-headers": request.headers.get("access-control-request-headers") ?? "*",
              "access-control-max-age": "600",
            },
          });
        }
        const length = Number(request.headers.get("content-length") ?? 0);
        const limit = limitOf(request.method, path);
        if (length > limit) return tooLarge(limit, length).toResponse(dialectOf(path));
        if (keys.length > 0 && !isPublicPath(path)) {
          const err = authError(request, keys);
          if (err) return err.toResponse(dialectOf(path));
        }
      })
      // JSON bodies: bounded nesting, then parsed (other types are left to Elysia). Ollama reads
      // every body as JSON whatever its type (curl -d sends a form type): so do its routes here.
      .onParse({ as: "global" }, async ({ request, contentType }) => {
        const json = /^application\/(.+\+)?json/i.test(contentType ?? "");
        if (!json && !(dialectOf(pathOf(request)) === "ollama" && !/^multipart\//i.test(contentType ?? ""))) return;
        const text = await request.text();
        checkJsonDepth(text);
        try {
          return JSON.parse(text);
        } catch {
          throw ApiError.invalid(
            "We could not parse the JSON body of your request. The body must be valid JSON sent with Content-Type: application/json.",
            null,
            "invalid_json",
          );
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
        } else if (error instanceof RangeError && /call stack/i.test(error.message)) {
          // JSON nested deeper than the parser's stack: the client's input, not our failure
          api = ApiError.invalid("The JSON body is nested too deeply", null, "invalid_json");
        } else if (code === "NOT_FOUND") {
          api = ApiError.notFound(`Invalid URL (${request.method} ${pathOf(request)})`, null, "unknown_url");
        } else api = toApiError(error);
        // our failures are worth a log line; "not implemented" and "try later" answers are not
        if (api.status >= 500 && api.status !== 501 && api.status !== 503) {
          log.error(`${request.method} ${pathOf(request)}: ${api.message}`);
        }
        return api.toResponse(dialectOf(pathOf(request)));
      })
  );
};
