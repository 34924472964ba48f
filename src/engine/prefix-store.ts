// Prefixes evicted from the slots, kept in host memory (--cache-ram) and, with
// --cache-dir, on disk: when a slot is given to a request that keeps little of
// what it held, its KV is saved here first; a later request whose prompt starts
// the same gets it back instead of computing it again (llama-server's
// --cache-ram). Least recently used entries leave memory first once its budget
// is spent; those written to disk stay known there (and are read back when a
// prompt needs them) until the disk budget is spent too. A restart finds the
// files again (PrefixDisk.scan), so hot prefixes survive it.
import { createHash } from "node:crypto";
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  realpathSync,
  rmSync,
  statSync,
  utimesSync,
} from "node:fs";
import { open, rename } from "node:fs/promises";
import { basename, join } from "node:path";
import { ABI_VERSION } from "../ffi/library";

/**
 * One model's directory under --cache-dir: named by the model file (its real
 * path, size and mtime), the slot size and the native library's ABI, the
 * things a saved state has to match to load (a state that still does not is
 * refused by llama.cpp and the prompt computed instead).
 */
export function prefixCacheDir(root: string, modelPath: string, nCtxSlot: number): string {
  const real = realpathSync(modelPath);
  const st = statSync(real);
  const key = createHash("sha256")
    .update(`${real}\n${st.size}\n${st.mtimeMs}\n${nCtxSlot}\n${ABI_VERSION}`)
    .digest("hex")
    .slice(0, 16);
  return join(root, `${basename(real).replace(/[^A-Za-z0-9._-]/g, "_")}-${key}`);
}

/** An image among a saved prefix's tokens (as the scheduler's slots keep them). */
export interface SavedImage {
  start: number;
  nTokens: number;
  nPos: number;
}

export interface SavedPrefix {
  tokens: number[];
  images: SavedImage[];
  /** the sequence's state as llama_state_seq_get_data wrote it, while in memory (null: on disk only) */
  data: Uint8Array | null;
  /** the state's size */
  bytes: number;
  /** its file under --cache-dir, once written */
  file?: string;
}

/** How many leading tokens `a` and `b` share. */
export function commonPrefix(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/**
 * The files of one model's saved prefixes, in one directory:
 * "LLMP", u32 version, u32 header length, the header (JSON: tokens, images,
 * bytes, sha256 of the state), the state. Each is written to a temporary name,
 * fsynced and renamed, so a file that is there is whole; one that does not
 * check out (header, size, hash) is deleted when read.
 */
export class PrefixDisk {
  private static readonly MAGIC = 0x504d4c4c; // "LLMP"
  private static readonly VERSION = 1;
  /** bytes of the files written and known */
  total = 0;

  constructor(
    readonly dir: string,
    readonly maxBytes: number,
  ) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  /** The prefixes in the directory, least recently used first (by mtime); stale temporaries are removed. */
  scan(): SavedPrefix[] {
    const found: { e: SavedPrefix; mtime: number }[] = [];
    for (const name of readdirSync(this.dir)) {
      const path = join(this.dir, name);
      if (name.includes(".tmp-")) {
        rmSync(path, { force: true });
        continue;
      }
      if (!name.endsWith(".prefix")) continue;
      const head = this.readHeader(path);
      if (!head) {
        rmSync(path, { force: true });
        continue;
      }
      found.push({
        e: { tokens: head.tokens, images: head.images, data: null, bytes: head.bytes, file: path },
        mtime: statSync(path).mtimeMs,
      });
    }
    found.sort((a, b) => a.mtime - b.mtime);
    for (const f of found) this.total += f.e.bytes;
    return found.map((f) => f.e);
  }

  private readHeader(
    path: string,
  ): { tokens: number[]; images: SavedImage[]; bytes: number; sha256: string; offset: number } | null {
    let fd = -1;
    try {
      fd = openSync(path, "r");
      const fixed = new Uint8Array(12);
      if (readSync(fd, fixed, 0, 12, 0) !== 12) return null;
      const dv = new DataView(fixed.buffer);
      if (dv.getUint32(0, true) !== PrefixDisk.MAGIC || dv.getUint32(4, true) !== PrefixDisk.VERSION) return null;
      const len = dv.getUint32(8, true);
      if (len > 64 * 1024 * 1024) return null;
      const raw = new Uint8Array(len);
      if (readSync(fd, raw, 0, len, 12) !== len) return null;
      const h = JSON.parse(new TextDecoder().decode(raw));
      if (!Array.isArray(h.tokens) || !Array.isArray(h.images) || typeof h.bytes !== "number") return null;
      if (statSync(path).size !== 12 + len + h.bytes) return null;
      return { tokens: h.tokens, images: h.images, bytes: h.bytes, sha256: String(h.sha256), offset: 12 + len };
    } catch {
      return null;
    } finally {
      if (fd >= 0) closeSync(fd);
    }
  }

  /** The state of an entry on disk, checked against its hash; null (and the file removed) when it does not check out. */
  read(e: SavedPrefix): Uint8Array | null {
    if (!e.file) return null;
    const head = this.readHeader(e.file);
    if (head) {
      try {
        const data = new Uint8Array(readFileSync(e.file).subarray(head.offset));
        if (data.byteLength === head.bytes && sha256(data) === head.sha256) {
          const now = new Date();
          utimesSync(e.file, now, now); // most recently used, also for the next start
          return data;
        }
      } catch {
        // unreadable: removed below
      }
    }
    this.remove(e);
    return null;
  }

  /** Writes an entry (temporary name, fsync, rename); resolves to its path, or null on failure. */
  async write(e: SavedPrefix, data: Uint8Array): Promise<string | null> {
    const key = createHash("sha256").update(new Int32Array(e.tokens)).digest("hex").slice(0, 32);
    const path = join(this.dir, `${key}.prefix`);
    const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    const header = new TextEncoder().encode(
      JSON.stringify({ tokens: e.tokens, images: e.images, bytes: data.byteLength, sha256: sha256(data) }),
    );
    const fixed = new Uint8Array(12);
    const dv = new DataView(fixed.buffer);
    dv.setUint32(0, PrefixDisk.MAGIC, true);
    dv.setUint32(4, PrefixDisk.VERSION, true);
    dv.setUint32(8, header.byteLength, true);
    try {
      const fh = await open(tmp, "w", 0o600);
      try {
        await fh.write(fixed);
        await fh.write(header);
        await fh.write(data);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, path);
      const dir = openSync(this.dir, "r");
      try {
        fsyncSync(dir);
      } finally {
        closeSync(dir);
      }
      this.total += data.byteLength;
      return path;
    } catch {
      rmSync(tmp, { force: true });
      return null;
    }
  }

  remove(e: SavedPrefix): void {
    if (!e.file) return;
    rmSync(e.file, { force: true });
    this.total -= e.bytes;
    e.file = undefined;
  }
}

export class PrefixStore {
  /** least recently used first */
  private entries: SavedPrefix[] = [];
  /** bytes of the states held in memory */
  private total = 0;
  /** prompt tokens given back from here, since start */
  restored = 0;

  constructor(
    readonly maxBytes: number,
    private readonly disk: PrefixDisk | null = null,
  ) {
    if (disk) this.entries = disk.scan();
  }

  /** bytes in host memory */
  get bytes(): number {
    return this.total;
  }

  get size(): number {
    return this.entries.length;
  }

  /** The entry sharing the longest prefix with `prompt`, and that length. */
  best(prompt: ArrayLike<number>): { entry: SavedPrefix; n: number } | null {
    let best: { entry: SavedPrefix; n: number } | null = null;
    for (const e of this.entries) {
      const n = commonPrefix(e.tokens, prompt);
      if (n > (best?.n ?? 0)) best = { entry: e, n };
    }
    return best;
  }

  /** An entry's state: from memory, or read back from disk (and kept in memory); null when it is gone. */
  dataOf(e: SavedPrefix): Uint8Array | null {
    if (e.data) return e.data;
    const data = this.disk?.read(e) ?? null;
    if (!data) {
      this.drop(e);
      return null;
    }
    e.data = data;
    this.total += e.bytes;
    // (with no memory budget it leaves memory again at once; the caller has it)
    this.evict();
    return data;
  }

  /** Marks an entry used (it goes last in the eviction order). */
  touch(e: SavedPrefix): void {
    const i = this.entries.indexOf(e);
    if (i >= 0) this.entries.push(...this.entries.splice(i, 1));
  }

  /** Whether `tokens` are already all in some entry. */
  holds(tokens: readonly number[]): boolean {
    return this.entries.some(
      (e) => e.tokens.length >= tokens.length && commonPrefix(e.tokens, tokens) === tokens.length,
    );
  }

  add(e: SavedPrefix): void {
    const data = e.data;
    if (!data || (e.bytes > this.maxBytes && (!this.disk || e.bytes > this.disk.maxBytes))) return;
    // entries the new one extends are dropped: it holds all they hold
    for (const old of [...this.entries]) {
      if (old.tokens.length <= e.tokens.length && commonPrefix(old.tokens, e.tokens) === old.tokens.length)
        this.drop(old);
    }
    this.entries.push(e);
    this.total += e.bytes;
    if (this.disk) {
      const disk = this.disk;
      void disk.write(e, data).then((path) => {
        if (!path) return;
        e.file = path;
        // dropped (or replaced) meanwhile: the file goes too
        if (!this.entries.includes(e)) disk.remove(e);
        else this.evictDisk();
      });
    }
    this.evict();
  }

  /** Over the memory budget: the least recently used states leave memory (those on disk stay known). */
  private evict(): void {
    for (const e of [...this.entries]) {
      if (this.total <= this.maxBytes) break;
      if (!e.data) continue;
      if (this.disk) {
        // on disk, or being written there (the write holds its own reference)
        e.data = null;
        this.total -= e.bytes;
      } else {
        this.drop(e);
      }
    }
  }

  /** Over the disk budget: the least recently used files go (entries still in memory stay). */
  private evictDisk(): void {
    const disk = this.disk;
    if (!disk) return;
    for (const e of [...this.entries]) {
      if (disk.total <= disk.maxBytes) break;
      if (!e.file) continue;
      disk.remove(e);
      if (!e.data) this.drop(e);
    }
  }

  private drop(e: SavedPrefix): void {
    const i = this.entries.indexOf(e);
    if (i < 0) return;
    this.entries.splice(i, 1);
    if (e.data) this.total -= e.bytes;
    e.data = null;
    this.disk?.remove(e);
  }
}
