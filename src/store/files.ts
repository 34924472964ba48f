// Files: what users upload (training data, documents, batch inputs) and what
// the server makes (batch outputs, fine-tune results), kept under the data
// directory as bytes + metadata. Nothing stored is ever lost or half-there:
// uploads stream into .incoming/, are fsynced and validated, then renamed into
// place; the metadata, written last (temp file, fsync, rename), is what makes a
// file exist. The index is rebuilt from disk at start, so a restart or a kill -9
// in the middle of an upload leaves every committed file and no partial one.
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { fsyncDir, writeFileAtomic } from "../atomic";
import { DomainError, invalid, notFound } from "../errors";
import { Bm25Index } from "./bm25";
import { validateLines } from "./jsonl";

/** Purposes users may upload, and what each line must hold (checked at upload). */
export const UPLOAD_PURPOSES = [
  "fine-tune",
  "search",
  "answers",
  "classifications",
  "batch",
  "user_data",
  "assistants",
] as const;
/** Purposes of the files the server writes itself. */
export const SERVER_PURPOSES = ["fine-tune-results", "batch_output"] as const;
export type Purpose = (typeof UPLOAD_PURPOSES)[number] | (typeof SERVER_PURPOSES)[number];

/** Files whose lines are documents: a keyword index is built at upload. */
const INDEXED: readonly string[] = ["search", "answers", "classifications"];

export interface FileObject {
  id: string;
  object: "file";
  bytes: number;
  created_at: number;
  filename: string;
  purpose: Purpose;
  status: "processed";
  status_details: null;
}

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** An OpenAI-like id: prefix + 24 base62 characters. */
export function newId(prefix: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  let s = prefix;
  for (const b of bytes) s += BASE62[b % 62];
  return s;
}

const ID = /^file-[0-9A-Za-z]{24}$/;

/** A file name as metadata only: no directories, no control characters, bounded. */
function cleanName(name: string | null): string {
  const base = (name ?? "upload").split(/[\\/]/).pop() ?? "upload";
  const clean = [...base].filter((c) => c.charCodeAt(0) >= 0x20 && c !== "\u007f").join("");
  return (clean || "upload").slice(0, 255);
}

/** An upload on disk, not yet a file: commit() makes it one, discard() drops it. */
export interface Incoming {
  path: string;
  bytes: number;
  filename: string | null;
}

export class FileStore {
  private readonly files = new Map<string, FileObject>();
  private readonly bm25 = new Map<string, Bm25Index>();
  /** files a pending or running job uses: id -> what uses it */
  private readonly pins = new Map<string, Set<string>>();
  readonly dir: string;
  private readonly incoming: string;

  constructor(dataDir: string) {
    this.dir = join(dataDir, "files");
    this.incoming = join(this.dir, ".incoming");
    mkdirSync(this.incoming, { recursive: true, mode: 0o700 });
    this.rebuild();
  }

  /** The index from disk: committed files only; what a crash left half-done is removed. */
  private rebuild(): void {
    rmSync(this.incoming, { recursive: true, force: true });
    mkdirSync(this.incoming, { recursive: true, mode: 0o700 });
    const names = readdirSync(this.dir);
    const committed = new Set<string>();
    for (const n of names) {
      if (!n.endsWith(".json") || n.endsWith(".bm25.json")) continue;
      const id = n.slice(0, -5);
      if (!ID.test(id)) continue;
      try {
        const meta = JSON.parse(readFileSync(join(this.dir, n), "utf8")) as FileObject;
        const bytes = statSync(join(this.dir, id)).size;
        if (meta.id !== id || meta.bytes !== bytes) throw new Error("metadata does not match the bytes");
        this.files.set(id, meta);
        committed.add(id);
      } catch {
        // a metadata file without its bytes (or not matching them) commits nothing
      }
    }
    for (const n of names) {
      const id = n.replace(/(\.bm25)?(\.json)?$/, "");
      if (ID.test(id) && !committed.has(id)) rmSync(join(this.dir, n), { force: true });
      // temp files of atomic writes that never got renamed
      if (n.endsWith(".tmp")) rmSync(join(this.dir, n), { force: true });
    }
  }

  list(purpose?: string): FileObject[] {
    return [...this.files.values()]
      .filter((f) => !purpose || f.purpose === purpose)
      .sort((a, b) => a.created_at - b.created_at || a.id.localeCompare(b.id));
  }

  get(id: string, param = "file_id"): FileObject {
    const f = ID.test(id) ? this.files.get(id) : undefined;
    if (!f) throw notFound(`No such File object: ${id}`, param, "file_not_found");
    return f;
  }

  path(id: string): string {
    return join(this.dir, this.get(id).id);
  }

  /** The keyword index of a search/answers/classifications file (loaded on first use). */
  index(id: string): Bm25Index {
    const f = this.get(id);
    let idx = this.bm25.get(id);
    if (!idx) {
      const path = join(this.dir, `${f.id}.bm25.json`);
      if (!existsSync(path)) throw invalid(`File ${id} (purpose '${f.purpose}') has no search index`, "file");
      idx = Bm25Index.fromJSON(JSON.parse(readFileSync(path, "utf8")));
      this.bm25.set(id, idx);
    }
    return idx;
  }

  /** The file's lines parsed (search, answers, classifications and batch files are JSONL). */
  lines(id: string): unknown[] {
    const text = readFileSync(this.path(id), "utf8");
    return text
      .split("\n")
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as unknown);
  }

  /** Marks a file as used by `owner` (a job): it cannot be deleted until unpinned. */
  pin(id: string, owner: string): void {
    this.get(id);
    const set = this.pins.get(id) ?? new Set<string>();
    set.add(owner);
    this.pins.set(id, set);
  }

  unpin(id: string, owner: string): void {
    const set = this.pins.get(id);
    set?.delete(owner);
    if (set && set.size === 0) this.pins.delete(id);
  }

  /** Streams an upload's bytes to disk (fsynced); nothing is visible until commit(). */
  async receive(body: AsyncIterable<Uint8Array>, filename: string | null, maxBytes: number): Promise<Incoming> {
    const path = join(this.incoming, newId("up-"));
    let bytes = 0;
    const fd = openSync(path, "w", 0o600);
    try {
      for await (const chunk of body) {
        bytes += chunk.length;
        if (bytes > maxBytes) {
          throw new DomainError(
            "invalid_request",
            `The file is larger than the ${maxBytes} bytes this server accepts`,
            "file",
            {
              reason: "file_too_large",
            },
          );
        }
        let off = 0;
        while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
      }
      fsyncSync(fd);
      closeSync(fd);
    } catch (e) {
      closeSync(fd);
      rmSync(path, { force: true });
      throw e;
    }
    return { path, bytes, filename };
  }

  discard(u: Incoming): void {
    rmSync(u.path, { force: true });
  }

  /** Validates an upload for its purpose and makes it a file (its keyword index too, for document files). */
  async commit(u: Incoming, purposeText: string): Promise<FileObject> {
    try {
      if (!(UPLOAD_PURPOSES as readonly string[]).includes(purposeText)) {
        throw invalid(
          `'${purposeText}' is not a purpose files can be uploaded for; use one of ${UPLOAD_PURPOSES.join(", ")}`,
          "purpose",
          "invalid_purpose",
        );
      }
      const purpose = purposeText as Purpose;
      if (u.bytes === 0) throw invalid("The file is empty", "file", "invalid_file");
      const docs = await validateLines(u.path, purpose);
      const id = newId("file-");
      renameSync(u.path, join(this.dir, id));
      fsyncDir(this.dir);
      if (INDEXED.includes(purpose)) {
        const idx = Bm25Index.build(docs);
        writeFileAtomic(join(this.dir, `${id}.bm25.json`), JSON.stringify(idx.toJSON()));
        this.bm25.set(id, idx);
      }
      // the metadata last: from now on the file exists
      return this.record(id, u.bytes, u.filename, purpose);
    } finally {
      rmSync(u.path, { force: true });
    }
  }

  /** A file the server makes (batch output, fine-tune results): written whole, committed the same way. */
  write(filename: string, purpose: Purpose, data: string | Uint8Array): FileObject {
    const id = newId("file-");
    const bytes = typeof data === "string" ? Buffer.from(data) : data;
    writeFileAtomic(join(this.dir, id), bytes);
    return this.record(id, bytes.length, filename, purpose);
  }

  /** Commits a file already written (fsynced) at `path` inside the data directory, e.g. a batch's output. */
  adopt(path: string, filename: string, purpose: Purpose): FileObject {
    const id = newId("file-");
    renameSync(path, join(this.dir, id));
    fsyncDir(this.dir);
    return this.record(id, statSync(join(this.dir, id)).size, filename, purpose);
  }

  /** The metadata of a file whose bytes are in place: it exists from now on. */
  private record(id: string, bytes: number, filename: string | null, purpose: Purpose): FileObject {
    const meta: FileObject = {
      id,
      object: "file",
      bytes,
      created_at: Math.floor(Date.now() / 1000),
      filename: cleanName(filename),
      purpose,
      status: "processed",
      status_details: null,
    };
    writeFileAtomic(join(this.dir, `${id}.json`), JSON.stringify(meta));
    this.files.set(id, meta);
    return meta;
  }

  delete(id: string): { id: string; object: "file"; deleted: true } {
    const f = this.get(id);
    const users = this.pins.get(f.id);
    if (users?.size) {
      throw new DomainError(
        "conflict",
        `File ${f.id} is used by ${[...users].join(", ")}; it can be deleted when that is over`,
        "file_id",
        {
          reason: "file_in_use",
        },
      );
    }
    // the metadata goes first: from then on the file does not exist, even if a crash stops the rest
    rmSync(join(this.dir, `${f.id}.json`), { force: true });
    fsyncDir(this.dir);
    this.files.delete(f.id);
    this.bm25.delete(f.id);
    rmSync(join(this.dir, f.id), { force: true });
    rmSync(join(this.dir, `${f.id}.bm25.json`), { force: true });
    return { id: f.id, object: "file", deleted: true };
  }
}
