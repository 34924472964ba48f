// Which JSON-schema keywords llmatic can enforce while sampling (llama.cpp's
// JSON-schema -> grammar converter). Anything else would be silently ignored by
// the converter, so it is refused up front with a 400 naming the keyword.
import { invalid } from "../errors";

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

/** Formats llama.cpp's converter enforces itself. */
const NATIVE_FORMATS = new Set(["date", "time", "date-time", "uuid"]);

/**
 * Formats it does not know, as patterns that hold their syntax (loosely: a
 * scheme and a colon for a URI, one @ for an e-mail address), bounded by the
 * schema's maxLength (a pattern replaces the length rules in the converter).
 * The character class [!#-[^-~] is printable ASCII without the quote,
 * backslash and ].
 */
const URI_CHARS = "[!#-[^-~]";
function formatPattern(format: string, max: number | undefined): string | null {
  const total = Math.max(3, Math.min(max ?? 2000, 2000));
  switch (format) {
    case "uri":
    case "url":
    case "iri": {
      const scheme = Math.max(1, Math.min(16, Math.floor(total / 3)));
      return `^[a-zA-Z][a-zA-Z0-9+.-]{0,${scheme - 1}}:${URI_CHARS}{1,${total - scheme - 1}}$`;
    }
    case "uri-reference":
      return `^${URI_CHARS}{1,${total}}$`;
    case "email": {
      const local = Math.max(1, Math.floor((total - 1) / 2));
      return `^[!#-?A-[^-~]{1,${local}}@[a-zA-Z0-9.-]{1,${Math.max(1, total - local - 1)}}$`;
    }
    case "hostname":
      return `^[a-zA-Z0-9.-]{1,${Math.min(total, 253)}}$`;
    case "ipv4":
      return "^[0-9]{1,3}[.][0-9]{1,3}[.][0-9]{1,3}[.][0-9]{1,3}$";
    default:
      return null;
  }
}
const PATTERN_FORMATS = ["uri", "url", "iri", "uri-reference", "email", "hostname", "ipv4"];

/** \d, \w and \s, which the converter does not know, as the classes they stand for. */
export function translatePattern(p: string): string {
  const CLASSES: Record<string, string> = { d: "0-9", w: "a-zA-Z0-9_", s: " \\t\\n\\r" };
  const NEGATED: Record<string, string> = { D: "0-9", W: "a-zA-Z0-9_", S: " \\t\\n\\r" };
  let out = "";
  let inClass = false;
  for (let i = 0; i < p.length; i++) {
    const c = p[i] as string;
    if (c === "\\" && i + 1 < p.length) {
      const n = p[i + 1] as string;
      i++;
      if (CLASSES[n]) out += inClass ? CLASSES[n] : `[${CLASSES[n]}]`;
      else if (NEGATED[n] && !inClass) out += `[^${NEGATED[n]}]`;
      else out += c + n;
      continue;
    }
    if (c === "[" && !inClass) inClass = true;
    else if (c === "]" && inClass) inClass = false;
    out += c;
  }
  return out;
}

const FORMATS = new Set([...NATIVE_FORMATS, ...PATTERN_FORMATS]);

/**
 * The schema as the converter gets it: the formats it does not know become
 * their patterns (where the schema has no pattern of its own), so they are
 * enforced rather than dropped, and patterns get \d, \w, \s spelled out. A
 * copy; the client's schema is left as it is.
 */
export function enforceableSchema(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(enforceableSchema);
  if (schema === null || typeof schema !== "object") return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema as Record<string, unknown>)) {
    // enum and const values are data, not schemas
    out[k] = k === "enum" || k === "const" || k === "default" || k === "examples" ? v : enforceableSchema(v);
  }
  const f = out.format;
  const fp =
    typeof f === "string" ? formatPattern(f, typeof out.maxLength === "number" ? out.maxLength : undefined) : null;
  if (fp) {
    if (out.pattern === undefined) out.pattern = fp;
    delete out.format;
  }
  if (typeof out.pattern === "string") out.pattern = translatePattern(out.pattern);
  return out;
}

/** Sub-schemas by keyword: a map of schemas, a list of schemas, or one schema. */
const MAP_OF_SCHEMAS = new Set(["properties", "$defs", "definitions"]);
const LIST_OF_SCHEMAS = new Set(["anyOf", "oneOf", "allOf", "prefixItems"]);
const ONE_SCHEMA = new Set(["items", "additionalProperties"]);

/**
 * How large a schema may be before a grammar is built from it. llama.cpp's
 * converter copies the whole sub-schema once per entry of a `type` array, so a
 * schema under 1 KB can expand 2x per level into gigabytes of grammar: the
 * expanded size (type arrays multiplied out) is what is bounded.
 */
export const SCHEMA_LIMITS = {
  /** nesting of sub-schemas */
  depth: 32,
  /** sub-schemas after type arrays are multiplied out, over the whole request */
  expandedNodes: 10_000,
  /** properties of one object */
  properties: 1_000,
  /** values of one enum */
  enumValues: 1_000,
  /** the serialized schema (all tools together) */
  bytes: 256 * 1024,
  /** minLength/maxLength/minItems/maxItems: llama.cpp's grammar repeats at most 2000 times */
  repetitions: 2_000,
} as const;

/** The expanded-node budget one request's schemas share (response_format, or all tools together). */
export class SchemaBudget {
  nodes = 0;
  bytes = 0;
}

const REPETITION_KEYWORDS = ["minLength", "maxLength", "minItems", "maxItems"];

/**
 * Throws a 400 naming the first keyword (and where) that the grammar could not
 * enforce, or the limit the schema goes over. `param` is the request field that
 * holds the schema. Returns the schema's expanded size.
 */
export function checkSchema(schema: unknown, param: string, budget = new SchemaBudget()): number {
  // the walk bounds the depth first, so serialising below cannot overflow the stack
  const size = walk(schema, param, "#", 0);
  budget.nodes += size;
  if (budget.nodes > SCHEMA_LIMITS.expandedNodes) {
    throw invalid(
      `The JSON schemas of this request expand to ${budget.nodes} sub-schemas once their type arrays are multiplied out (more than ${SCHEMA_LIMITS.expandedNodes}): llmatic does not build grammars that large`,
      param,
      "schema_too_complex",
    );
  }
  budget.bytes += JSON.stringify(schema)?.length ?? 0;
  if (budget.bytes > SCHEMA_LIMITS.bytes) {
    throw invalid(
      `The JSON schemas of this request are ${budget.bytes} bytes; at most ${SCHEMA_LIMITS.bytes} are accepted`,
      param,
      "schema_too_large",
    );
  }
  return size;
}

/** Checks one sub-schema and returns its expanded size. */
function walk(schema: unknown, param: string, path: string, depth: number): number {
  if (typeof schema === "boolean") return 1;
  if (schema === null || typeof schema !== "object" || Array.isArray(schema)) {
    throw invalid(`Invalid schema at ${path}: expected an object`, param, "invalid_schema");
  }
  if (depth > SCHEMA_LIMITS.depth) {
    throw invalid(
      `The JSON schema is nested more than ${SCHEMA_LIMITS.depth} levels deep (at ${path})`,
      param,
      "schema_too_complex",
    );
  }
  const obj = schema as Record<string, unknown>;
  let children = 0;
  const sub = (v: unknown, at: string) => {
    children += walk(v, param, at, depth + 1);
    // stop early: a schema that explodes is refused before it is walked whole
    if (children > SCHEMA_LIMITS.expandedNodes) {
      throw invalid(
        `The JSON schema at ${param} expands to more than ${SCHEMA_LIMITS.expandedNodes} sub-schemas once its type arrays are multiplied out: llmatic does not build grammars that large`,
        param,
        "schema_too_complex",
      );
    }
  };
  for (const [key, value] of Object.entries(obj)) {
    const at = `${path}/${key}`;
    if (ANNOTATIONS.has(key)) continue;
    if (!ENFORCED.has(key)) {
      throw invalid(
        `JSON schema keyword '${key}' (at ${at}) is not supported: llmatic could not enforce it while generating`,
        param,
        "unsupported_schema",
      );
    }
    if (key === "format" && typeof value === "string" && !FORMATS.has(value)) {
      throw invalid(
        `JSON schema format '${value}' (at ${at}) is not supported; supported formats: ${[...FORMATS].join(", ")}`,
        param,
        "unsupported_schema",
      );
    }
    if (REPETITION_KEYWORDS.includes(key) && typeof value === "number" && value > SCHEMA_LIMITS.repetitions) {
      throw invalid(
        `JSON schema ${key} ${value} (at ${at}) cannot be enforced: llama.cpp's grammars repeat at most ${SCHEMA_LIMITS.repetitions} times`,
        param,
        "unsupported_schema",
      );
    }
    if (key === "enum" && Array.isArray(value) && value.length > SCHEMA_LIMITS.enumValues) {
      throw invalid(
        `JSON schema enum at ${at} has ${value.length} values; at most ${SCHEMA_LIMITS.enumValues} are accepted`,
        param,
        "schema_too_complex",
      );
    }
    if (key === "properties" && value && typeof value === "object") {
      const n = Object.keys(value).length;
      if (n > SCHEMA_LIMITS.properties) {
        throw invalid(
          `JSON schema object at ${path} has ${n} properties; at most ${SCHEMA_LIMITS.properties} are accepted`,
          param,
          "schema_too_complex",
        );
      }
    }
    if (MAP_OF_SCHEMAS.has(key) && value && typeof value === "object") {
      for (const [name, s] of Object.entries(value as Record<string, unknown>)) sub(s, `${at}/${name}`);
    } else if (LIST_OF_SCHEMAS.has(key) && Array.isArray(value)) {
      value.forEach((s, i) => {
        sub(s, `${at}/${i}`);
      });
    } else if (ONE_SCHEMA.has(key) && value !== undefined && typeof value !== "boolean") {
      sub(value, at);
    }
  }
  // the converter writes the whole schema once per entry of a type array
  const alternatives = Array.isArray(obj.type) ? Math.max(1, obj.type.length) : 1;
  const size = alternatives * (1 + children);
  if (size > SCHEMA_LIMITS.expandedNodes) {
    throw invalid(
      `The JSON schema at ${param} expands to more than ${SCHEMA_LIMITS.expandedNodes} sub-schemas once its type arrays are multiplied out (at ${path}): llmatic does not build grammars that large`,
      param,
      "schema_too_complex",
    );
  }
  return size;
}
