// Finds and opens libllmatic.so, initialises llama.cpp once, and drains the
// native log buffer. Every other ffi module goes through `lib()`.
import { CString, dlopen, type Pointer, ptr } from "bun:ffi";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { symbols } from "./symbols";

export const ABI_VERSION = 10;

export type Lib = ReturnType<typeof dlopen<typeof symbols>>["symbols"];

export enum LogLevel {
  DEBUG = 1,
  INFO = 2,
  WARN = 3,
  ERROR = 4,
}

export interface NativeLogLine {
  level: LogLevel;
  text: string;
}

let opened: { lib: Lib; path: string } | null = null;
let explicitPath: string | null = null;

/** Opens this library instead of searching (workers get the path from their config). */
export function setLibraryPath(path: string): void {
  explicitPath = path;
}

/** Where the library is looked for, in order. */
export function libraryCandidates(): string[] {
  const out: string[] = [];
  if (explicitPath) out.push(explicitPath);
  if (process.env.LLMATIC_LIB) out.push(process.env.LLMATIC_LIB);
  out.push(join(import.meta.dir, "..", "..", "native", "lib", "libllmatic.so"));
  return out;
}

export class LibraryError extends Error {}

export function libraryPath(): string {
  for (const p of libraryCandidates()) if (existsSync(p)) return p;
  throw new LibraryError(
    `libllmatic.so not found (looked in ${libraryCandidates().join(", ")}). Build it with: bun run build:native`,
  );
}

/** Opens the library on first use (per thread: each Worker has its own handle). */
export function lib(): Lib {
  if (opened) return opened.lib;
  const path = libraryPath();
  const handle = dlopen(path, symbols);
  const abi = handle.symbols.llmatic_abi_version();
  if (abi !== ABI_VERSION) {
    throw new LibraryError(
      `${path} has ABI version ${abi}, this code needs ${ABI_VERSION}: rebuild with bun run build:native`,
    );
  }
  const min = process.env.LLMATIC_NATIVE_LOG === "debug" ? LogLevel.DEBUG : LogLevel.INFO;
  handle.symbols.llmatic_init(min);
  opened = { lib: handle.symbols, path };
  return opened.lib;
}

const drainBuf = new Uint8Array(64 * 1024);
const decoder = new TextDecoder();

/** Takes every buffered native log line (llama.cpp and ggml). */
export function drainNativeLogs(): NativeLogLine[] {
  const l = lib();
  const lines: NativeLogLine[] = [];
  for (;;) {
    const n = l.llmatic_log_drain(ptr(drainBuf), drainBuf.length);
    if (n <= 0) break;
    for (const raw of decoder.decode(drainBuf.subarray(0, n)).split("\n")) {
      if (!raw) continue;
      const level = Number(raw[0]) as LogLevel;
      lines.push({ level: level >= 1 && level <= 4 ? level : LogLevel.INFO, text: raw.slice(1).trimEnd() });
    }
  }
  const dropped = l.llmatic_log_dropped();
  if (dropped > 0) lines.push({ level: LogLevel.WARN, text: `(${dropped} native log lines dropped)` });
  return lines;
}

/** Reads a malloc'd C string returned by the shim and frees it. */
export function takeString(p: Pointer | null): string | null {
  if (!p) return null;
  try {
    return new CString(p).toString();
  } finally {
    lib().llmatic_string_free(p);
  }
}

/** An out-parameter `char **` for the shim's error messages. */
export class ErrorOut {
  readonly slot = new BigUint64Array(1);
  get ptr(): Pointer {
    return ptr(this.slot);
  }
  /** the message the shim wrote (freed here), or a fallback */
  take(fallback: string): string {
    const p = Number(this.slot[0]);
    this.slot[0] = 0n;
    return (p ? takeString(p as Pointer) : null) ?? fallback;
  }
}

/**
 * Base for every class that owns one native object: idempotent dispose,
 * use-after-dispose throws. A handle can be handed to another thread of the
 * same process with `release()` (this object forgets it without freeing) and
 * taken over there by the class's `adopt`.
 */
export abstract class NativeObject implements Disposable {
  #handle: Pointer | null;
  readonly #owned: boolean;
  protected constructor(handle: Pointer, owned = true) {
    this.#handle = handle;
    this.#owned = owned;
  }
  get handle(): Pointer {
    if (this.#handle === null) throw new Error(`${this.constructor.name} used after dispose()`);
    return this.#handle;
  }
  get disposed(): boolean {
    return this.#handle === null;
  }
  dispose(): void {
    const h = this.#handle;
    if (h === null) return;
    this.#handle = null;
    if (this.#owned) this.free(h);
  }
  /** Gives up the native object without freeing it; the caller now owns the returned handle. */
  release(): number {
    const h = this.handle;
    this.#handle = null;
    return h as unknown as number;
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
  protected abstract free(handle: Pointer): void;
}
