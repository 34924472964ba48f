// Which JSON-schema keywords llmatic can enforce while sampling (llama.cpp's
// JSON-schema -> grammar converter). Anything else would be silently ignored by
// the converter, so it is refused up front with a 400 naming the keyword.
import { ApiError } from "../http/errors";

/** Keywords the grammar enforces. */
const ENFORCED = new Set([
  "type",
  "properties",
  "required",
  "additionalProperties",
  "items",
  "prefixItems",
  "minItems",
  "maxItems",
  "enum",
  "const",
  "anyOf",
  "oneOf",
  "allOf",
  "$ref",
  "$defs",
  "definitions",
  "pattern",
  "format",
  "minLength",
  "maxLength",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
]);

/** Keywords that only describe (they constrain nothing). */
const ANNOTATIONS = new Set([
  "$schema",
  "$id",
  "$comment",
  "$anchor",
  "title",
  "description",
  "default",
  "examples",
  "example",
  "deprecated",
  "readOnly",
  "writeOnly",
  "nullable",
  "strict",
  "contentEncoding",
  "contentMediaType",
]);

const FORMATS = new Set(["date", "time", "date-time", "uuid"]);

/** Sub-schemas by keyword: a map of schemas, a list of schemas, or one schema. */
const MAP_OF_SCHEMAS = new Set(["properties", "$defs", "definitions"]);
const LIST_OF_SCHEMAS = new Set(["anyOf", "oneOf", "allOf", "prefixItems"]);
const ONE_SCHEMA = new Set(["items", "additionalProperties"]);

/**
 * Throws a 400 naming the first keyword (and where) that the grammar could not
 * enforce. `param` is the request field that holds the schema.
 */
export function checkSchema(schema: unknown, param: string, path = "#"): void {
  if (typeof schema === "boolean") return;
  if (schema === null || typeof schema !== "object" || Array.isArray(schema)) {
    throw ApiError.invalid(`Invalid schema at ${path}: expected an object`, param, "invalid_schema");
  }
  for (const [key, value] of Object.entries(schema as Record<string, unknown>)) {
    const at = `${path}/${key}`;
    if (ANNOTATIONS.has(key)) continue;
    if (!ENFORCED.has(key)) {
      throw ApiError.invalid(
        `JSON schema keyword '${key}' (at ${at}) is not supported: llmatic could not enforce it while generating`,
        param,
        "unsupported_schema",
      );
    }
    if (key === "format" && typeof value === "string" && !FORMATS.has(value)) {
      throw ApiError.invalid(
        `JSON schema format '${value}' (at ${at}) is not supported; supported formats: ${[...FORMATS].join(", ")}`,
        param,
        "unsupported_schema",
      );
    }
    if (MAP_OF_SCHEMAS.has(key) && value && typeof value === "object") {
      for (const [name, sub] of Object.entries(value as Record<string, unknown>))
        checkSchema(sub, param, `${at}/${name}`);
    } else if (LIST_OF_SCHEMAS.has(key) && Array.isArray(value)) {
      value.forEach((sub, i) => {
        checkSchema(sub, param, `${at}/${i}`);
      });
    } else if (ONE_SCHEMA.has(key) && value !== undefined && typeof value !== "boolean") {
      checkSchema(value, param, at);
    }
  }
}
