// The compiled executable's embedded files (bin.ts registers them). Bun extracts
// embedded files on use under hash names, and a chain of shared libraries would
// not find each other there: llmatic's one self-contained .so is extracted once
// to a private directory under TMPDIR and reused by every later start.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { basename, join } from "node:path";

export interface EmbeddedFiles {
  /** libllmatic.so */
  lib: string;
  /** the Qwen2 tokenizer the demo model copies */
  vocab: string;
  /** the Qwen2.5 chat template the demo model carries */
  template: string;
}

let files: EmbeddedFiles | null = null;

export function useEmbedded(f: EmbeddedFiles): void {
  files = f;
}

/** The embedded files when running as the compiled executable, else null. */
export function embedded(): EmbeddedFiles | null {
  return files;
}

/** True for paths inside a compiled executable's embedded file system. */
export function isEmbeddedPath(p: string): boolean {
  return p.startsWith("/$bunfs/") || p.startsWith("B:/~BUN/") || p.startsWith("B:\\~BUN\\");
}

/**
 * A real file with the embedded file's contents: the same path on every start
 * (Bun names embedded files by content hash), written only when missing.
 */
export function extractOnce(embeddedPath: string): string {
  if (!isEmbeddedPath(embeddedPath)) return embeddedPath;
  const dir = join(tmpdir(), `llmatic-${userInfo().uid}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const dest = join(dir, basename(embeddedPath));
  const size = statSync(embeddedPath).size;
  if (existsSync(dest) && statSync(dest).size === size) return dest;
  const tmp = `${dest}.${process.pid}.tmp`;
  writeFileSync(tmp, readFileSync(embeddedPath), { mode: 0o700 });
  renameSync(tmp, dest);
  return dest;
}
