// Request validation with OpenAI-shaped errors. Bodies are checked against
// their TypeBox schema by a compiled checker in each route's transform hook,
// before Elysia's own validation: the first failing field becomes a 400 naming
// it, cheaply (Elysia's ValidationError serialises the whole value into its
// message, which costs seconds for a large or deep body and would hold up every
// stream on the HTTP thread). JSON bodies are refused when nested too deeply.
import type { TSchema } from "@sinclair/typebox";
import { TypeCompiler, type ValueError } from "@sinclair/typebox/compiler";
import type { ValidationError } from "elysia";
import { ApiError, paramFromPath } from "./errors";

/** JSON nesting a request body may have (the deepest accepted schema is 32 sub-schemas, about 70 levels). */
export const MAX_JSON_DEPTH = 128;

/** Throws a 400 when `text` nests arrays/objects deeper than `max` (strings are skipped). */
export function checkJsonDepth(text: string, max = MAX_JSON_DEPTH): void {
  if (text.length < max * 2) return;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92)
        i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 || c === 123) {
      if (++depth > max) {
        throw ApiError.invalid(`The JSON body is nested more than ${max} levels deep`, null, "invalid_json");
      }
    } else if (c === 93 || c === 125) depth--;
  }
}

type SchemaLike = {
  type?: string;
  maxProperties?: number;
  anyOf?: SchemaLike[];
  const?: unknown;
  minimum?: number;
  maximum?: number;
  maxItems?: number;
  minItems?: number;
  minLength?: number;
  maxLength?: number;
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
            if (s.maxLength !== undefined) return `a string of at most ${s.maxLength} characters`;
            return s.minLength ? `a string of at least ${s.minLength} characters` : "a string";
          case "integer":
            return `an integer${range(s)}`;
          case "number":
            return `a number${range(s)}`;
          case "boolean":
            return "a boolean";
          case "array":
            return s.maxItems !== undefined
              ? `an array of ${s.minItems ? `${s.minItems} to ` : "at most "}${s.maxItems} items`
              : s.minItems
                ? "a non-empty array"
                : "an array";
          case "object":
            return s.maxProperties !== undefined ? `an object of at most ${s.maxProperties} entries` : "an object";
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
  if (typeof v === "string") return v.length > 40 ? `a string of ${v.length} characters` : JSON.stringify(v);
  return String(v);
}

/** The 400 for the first failing field. */
export function fieldError(body: unknown, first: Pick<ValueError, "path" | "value" | "schema"> | undefined): ApiError {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    return ApiError.invalid("The request body must be a JSON object", null, "invalid_body");
  }
  const param = paramFromPath(first?.path ?? "");
  const where = param ? `'${param}'` : "the request body";
  if (!first) return ApiError.invalid(`Invalid ${where}`, param, "invalid_value");
  if (first.value === undefined) {
    return ApiError.invalid(`Missing required parameter: ${where}.`, param, "missing_required_parameter");
  }
  return ApiError.invalid(
    `Invalid value for ${where}: expected ${describe(first.schema as SchemaLike)}, got ${shown(first.value)}.`,
    param,
    "invalid_value",
  );
}

/** Elysia's own validation errors (queries, params; bodies are prechecked). */
export function validationError(e: ValidationError): ApiError {
  if (e.type === "body") return fieldError(e.value, e.valueError);
  const first = e.valueError;
  return fieldError(
    {},
    first ? { path: `/${e.type}${first.path}`, value: first.value, schema: first.schema } : undefined,
  );
}

/**
 * A route's transform hook that checks the body against `schema` (compiled
 * once) and throws the OpenAI error for its first failing field.
 */
export function precheck(schema: TSchema): (ctx: { body: unknown }) => void {
  const compiled = TypeCompiler.Compile(schema);
  return ({ body }) => {
    if (compiled.Check(body)) return;
    throw fieldError(body, compiled.Errors(body).First());
  };
}
