// Responses checked against the contract itself: the OpenAPI 3.0 schemas of
// ../shared/spec/openai-api-1.2.0.yaml (a copy lives in test/spec/), with a
// small validator for the subset of JSON Schema the spec uses.
import { join } from "node:path";

type Schema = Record<string, unknown>;

const spec = Bun.YAML.parse(await Bun.file(join(import.meta.dir, "spec", "openai-api-1.2.0.yaml")).text()) as {
  components: { schemas: Record<string, Schema> };
};

function resolve(s: Schema): Schema {
  let cur = s;
  while (typeof cur.$ref === "string") {
    const name = (cur.$ref as string).replace("#/components/schemas/", "");
    cur = spec.components.schemas[name] as Schema;
    if (!cur) throw new Error(`unknown $ref ${s.$ref}`);
  }
  return cur;
}

function check(value: unknown, schema: Schema, path: string, errors: string[]): void {
  const s = resolve(schema);
  if (value === null) {
    if (s.nullable !== true && s.type !== undefined) errors.push(`${path}: null but not nullable`);
    return;
  }
  for (const key of ["oneOf", "anyOf"] as const) {
    const alts = s[key] as Schema[] | undefined;
    if (alts) {
      const ok = alts.some((a) => {
        const e: string[] = [];
        check(value, a, path, e);
        return e.length === 0;
      });
      if (!ok) errors.push(`${path}: matches none of ${key}`);
      return;
    }
  }
  const type = s.type as string | undefined;
  const actual = Array.isArray(value) ? "array" : Number.isInteger(value) ? "integer" : typeof value;
  if (type === "number" && (actual === "integer" || actual === "number")) {
    // fine
  } else if (type && type !== actual) {
    errors.push(`${path}: expected ${type}, got ${actual} (${JSON.stringify(value)?.slice(0, 60)})`);
    return;
  }
  if (Array.isArray(s.enum) && !s.enum.includes(value)) errors.push(`${path}: ${JSON.stringify(value)} not in enum`);
  if (actual === "object" && (type === "object" || s.properties)) {
    const obj = value as Record<string, unknown>;
    for (const r of (s.required as string[] | undefined) ?? [])
      if (!(r in obj)) errors.push(`${path}: missing required '${r}'`);
    const props = (s.properties as Record<string, Schema> | undefined) ?? {};
    for (const [k, v] of Object.entries(obj)) if (props[k]) check(v, props[k] as Schema, `${path}.${k}`, errors);
  }
  if (actual === "array" && s.items) {
    (value as unknown[]).forEach((v, i) => {
      check(v, s.items as Schema, `${path}[${i}]`, errors);
    });
  }
}

/** The ways `value` differs from the spec's component schema `name` (empty: it conforms). */
export function specErrors(name: string, value: unknown): string[] {
  const schema = spec.components.schemas[name];
  if (!schema) throw new Error(`the spec has no schema ${name}`);
  const errors: string[] = [];
  check(value, schema, name, errors);
  return errors;
}
