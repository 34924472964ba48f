// What each line of an uploaded file must be, per purpose, checked at upload
// with a 400 that names the line. The file is read back from disk in chunks,
// yielding between them, so validating a large upload never holds up the HTTP
// thread (and the streams it serves) for long.
import { closeSync, openSync, readSync } from "node:fs";
import { invalid } from "../errors";
import type { Purpose } from "./files";

export interface Document {
  text: string;
  label?: string;
  metadata?: unknown;
}

/** Endpoints a batch line may call. */
export const BATCH_URLS = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"] as const;
export const MAX_BATCH_LINES = 50_000;
const MAX_LINE_BYTES = 32 * 1024 * 1024;

const isString = (v: unknown): v is string => typeof v === "string";
const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

/** Checks one parsed line; returns the document it holds (search-like purposes) or null. */
function checkLine(purpose: Purpose, v: unknown, seen: Set<string>): string | Document | null {
  if (!isObject(v)) return "expected a JSON object";
  switch (purpose) {
    case "fine-tune":
      if (!isString(v.prompt) || !isString(v.completion)) return "expected string fields 'prompt' and 'completion'";
      return null;
    case "search":
    case "answers":
      if (!isString(v.text)) return "expected a string field 'text' (and optionally 'metadata')";
      return { text: v.text, metadata: v.metadata };
    case "classifications":
      if (!isString(v.text) || !isString(v.label)) {
        return "expected string fields 'text' and 'label' (and optionally 'metadata')";
      }
      return { text: v.text, label: v.label, metadata: v.metadata };
    case "batch": {
      if (!isString(v.custom_id) || v.custom_id.length === 0 || v.custom_id.length > 512) {
        return "expected a 'custom_id' string of 1 to 512 characters";
      }
      if (seen.has(v.custom_id)) return `the custom_id '${v.custom_id}' appears twice`;
      seen.add(v.custom_id);
      if (v.method !== "POST") return "expected 'method': \"POST\"";
      if (!isString(v.url) || !(BATCH_URLS as readonly string[]).includes(v.url)) {
        return `expected 'url' to be one of ${BATCH_URLS.join(", ")}`;
      }
      if (!isObject(v.body)) return "expected 'body' to be a JSON object";
      return null;
    }
    default:
      return null;
  }
}

/** The lines of a file in chunks of about `chunk` bytes (the last line may lack its newline). */
export async function* readLines(path: string, chunk = 1024 * 1024): AsyncGenerator<string[], void, void> {
  const fd = openSync(path, "r");
  const buf = Buffer.alloc(chunk);
  const dec = new TextDecoder("utf-8", { fatal: true });
  let carry = "";
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      let text: string;
      try {
        text = carry + dec.decode(buf.subarray(0, n), { stream: n > 0 });
      } catch {
        throw invalid("The file is not valid UTF-8 text", "file", "invalid_file");
      }
      const lines = text.split("\n");
      carry = n > 0 ? (lines.pop() ?? "") : "";
      if (carry.length > MAX_LINE_BYTES)
        throw invalid(`A line of the file is longer than ${MAX_LINE_BYTES} bytes`, "file", "invalid_file");
      if (lines.length) yield lines;
      if (n === 0) return;
      // let the HTTP thread serve others between chunks
      await new Promise((r) => setImmediate(r));
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * Validates every line of `path` for `purpose` (JSONL for all but generic
 * purposes); returns the documents of search/answers/classifications files.
 */
export async function validateLines(path: string, purpose: Purpose): Promise<Document[]> {
  if (purpose === "user_data" || purpose === "assistants") return [];
  const docs: Document[] = [];
  const seen = new Set<string>();
  let lineNo = 0;
  let count = 0;
  for await (const lines of readLines(path)) {
    for (const raw of lines) {
      lineNo++;
      const line = raw.trim();
      if (!line) continue;
      let v: unknown;
      try {
        v = JSON.parse(line);
      } catch {
        throw invalid(`Line ${lineNo} of the file is not valid JSON`, "file", "invalid_file");
      }
      const r = checkLine(purpose, v, seen);
      if (typeof r === "string") {
        throw invalid(`Line ${lineNo} of the file (purpose '${purpose}'): ${r}`, "file", "invalid_file");
      }
      if (r) docs.push(r);
      count++;
      if (purpose === "batch" && count > MAX_BATCH_LINES) {
        throw invalid(`A batch file may have at most ${MAX_BATCH_LINES} requests`, "file", "invalid_file");
      }
    }
  }
  if (count === 0) throw invalid("The file has no lines", "file", "invalid_file");
  return docs;
}
