// A streaming multipart/form-data reader: parts one after another, each body
// read as a stream, so an upload goes to disk as it arrives instead of being
// buffered whole (Bun's formData() holds the entire body in memory). Headers,
// part counts and field sizes are bounded.
import { invalid } from "../errors";

export interface PartHeaders {
  name: string;
  filename: string | null;
  contentType: string | null;
}

const CRLF = Buffer.from("\r\n");
const HEADER_END = Buffer.from("\r\n\r\n");
const MAX_HEADER_BYTES = 16 * 1024;
const MAX_PARTS = 32;

/** The boundary of a multipart/form-data content type, or null. */
export function boundaryOf(contentType: string | null): string | null {
  if (!contentType || !/^multipart\/form-data/i.test(contentType)) return null;
  const m = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  const b = m?.[1] ?? m?.[2] ?? null;
  return b && b.length <= 200 ? b : null;
}

function parseHeaders(block: string): PartHeaders {
  let name: string | null = null;
  let filename: string | null = null;
  let contentType: string | null = null;
  for (const line of block.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const key = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (key === "content-disposition") {
      name = /\bname="([^"]*)"/i.exec(value)?.[1] ?? /\bname=([^;\s]+)/i.exec(value)?.[1] ?? null;
      filename = /\bfilename="([^"]*)"/i.exec(value)?.[1] ?? /\bfilename=([^;\s]+)/i.exec(value)?.[1] ?? null;
    } else if (key === "content-type") contentType = value;
  }
  if (name === null) throw invalid("A multipart part has no name", null, "invalid_multipart");
  return { name, filename, contentType };
}

export class MultipartReader {
  private buf: Buffer = Buffer.alloc(0);
  private done = false;
  private readonly reader: { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(): Promise<void> };
  /** "\r\n--boundary": what ends a part's body */
  private readonly delimiter: Buffer;
  private started = false;
  private inBody = false;
  private finished = false;
  private parts = 0;

  constructor(body: ReadableStream<Uint8Array>, boundary: string) {
    this.reader = body.getReader();
    this.delimiter = Buffer.from(`\r\n--${boundary}`);
  }

  private async fill(): Promise<boolean> {
    if (this.done) return false;
    const { done, value } = await this.reader.read();
    if (done) {
      this.done = true;
      return false;
    }
    if (!value) return true;
    this.buf = this.buf.length ? Buffer.concat([this.buf, value]) : Buffer.from(value);
    return true;
  }

  private malformed(why: string): never {
    throw invalid(`The multipart body is malformed: ${why}`, null, "invalid_multipart");
  }

  /** The next part's headers (its body must be read, or skipped, before the part after it), or null at the end. */
  async next(): Promise<PartHeaders | null> {
    if (this.finished) return null;
    if (this.inBody)
      for await (const _ of this.body()) {
        // skip what is left of the previous part
      }
    if (!this.started) {
      // the first delimiter has no CRLF before it (a preamble may precede it)
      const first = this.delimiter.subarray(2);
      for (;;) {
        const i = this.buf.indexOf(first);
        if (i >= 0) {
          this.buf = this.buf.subarray(i + first.length);
          break;
        }
        if (this.buf.length > MAX_HEADER_BYTES) this.malformed("no boundary at the start");
        if (!(await this.fill())) this.malformed("no boundary at all");
      }
      this.started = true;
    }
    // after a delimiter: "--" ends the body, CRLF starts a part
    while (this.buf.length < 2) if (!(await this.fill())) this.malformed("it ends after a boundary");
    if (this.buf[0] === 0x2d && this.buf[1] === 0x2d) {
      this.finished = true;
      await this.reader.cancel().catch(() => {});
      return null;
    }
    let end = this.buf.indexOf(HEADER_END);
    while (end < 0) {
      if (this.buf.length > MAX_HEADER_BYTES) this.malformed("a part's headers are too long");
      if (!(await this.fill())) this.malformed("it ends inside a part's headers");
      end = this.buf.indexOf(HEADER_END);
    }
    if (++this.parts > MAX_PARTS) this.malformed(`more than ${MAX_PARTS} parts`);
    const start = this.buf.indexOf(CRLF) === 0 ? 2 : 0;
    const headers = parseHeaders(this.buf.subarray(start, end).toString("utf8"));
    this.buf = this.buf.subarray(end + HEADER_END.length);
    this.inBody = true;
    return headers;
  }

  /** The current part's body, chunk by chunk. */
  async *body(): AsyncGenerator<Uint8Array, void, void> {
    if (!this.inBody) return;
    const d = this.delimiter;
    for (;;) {
      const i = this.buf.indexOf(d);
      if (i >= 0) {
        if (i > 0) yield this.buf.subarray(0, i);
        this.buf = this.buf.subarray(i + d.length);
        this.inBody = false;
        return;
      }
      // keep what could be the start of the delimiter
      const safe = this.buf.length - (d.length - 1);
      if (safe > 0) {
        yield this.buf.subarray(0, safe);
        this.buf = this.buf.subarray(safe);
      }
      if (!(await this.fill())) this.malformed("it ends inside a part");
    }
  }

  /** The current part's body as text, at most `max` bytes. */
  async text(max: number, what: string): Promise<string> {
    const chunks: Uint8Array[] = [];
    let n = 0;
    for await (const c of this.body()) {
      n += c.length;
      if (n > max) throw invalid(`The multipart field '${what}' is longer than ${max} bytes`, what);
      chunks.push(c);
    }
    return Buffer.concat(chunks).toString("utf8");
  }
}
