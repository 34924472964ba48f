// The compiled executable's embedded files (bin.ts registers them). Bun extracts
// embedded files on use under hash names, and a chain of shared libraries would
// not find each other there: llmatic's one self-contained .so is extracted once
// to a private directory under TMPDIR (0700, ours, checked) and reused by every
// later start whose copy has the same content hash.
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeFileAtomic } from "./atomic";

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

/**
 * The command that runs one of the server's child processes: the executable
 * itself (its entry point picks the child by an environment variable), or bun
 * with the child's script.
 */
export function childCommand(script: URL): string[] {
  return embedded() ? [process.execPath] : [process.execPath, fileURLToPath(script)];
}

/** True for paths inside a compiled executable's embedded file system. */
export function isEmbeddedPath(p: string): boolean {
  return p.startsWith("/$bunfs/") || p.startsWith("B:/~BUN/") || p.startsWith("B:\\~BUN\\");
}

/**
 * A directory only this user can touch: a real directory (not a symlink),
 * owned by us, mode 0700. Another user of a shared /tmp could have created
 * `$TMPDIR/llmatic-<uid>` first; then a fresh private directory is used instead.
 */
function privateDir(): string {
  const uid = userInfo().uid;
  const dir = join(tmpdir(), `llmatic-${uid}`);
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
  }
  const st = lstatSync(dir);
  if (st.isDirectory() && !st.isSymbolicLink() && st.uid === uid) {
    if ((st.mode & 0o077) !== 0) chmodSync(dir, 0o700);
    return dir;
  }
  process.stderr.write(`llmatic: ${dir} is not a private directory of this user; using a fresh one\n`);
  return mkdtempSync(join(tmpdir(), `llmatic-${uid}-`));
}

// The extracted copy is named by a 64-bit content hash (wyhash) of the embedded
// file and reused only when its own content has that hash: a copy of another
// content (damaged, or edited) is written again (atomically). The executable's
// build computes the native libraries' hashes (scripts/compile.ts), so a start
// reads and hashes only the extracted copy, not the 14 MB embedded library as
// well (both, on every start, made the executable 1.7-3.0% slower to start
// than `bun src/main.ts` on the tiny model, bench:startup on 2026-12-03).
const contentHash = (bytes: Uint8Array) => Bun.hash.wyhash(bytes).toString(16).padStart(16, "0");

/** The hash extractOnce names a copy by (the executable's build records it for the libraries). */
export const embeddedFileHash = (path: string): string => contentHash(readFileSync(path));

/**
 * A real file with the embedded file's contents, in a private directory: the
 * same path on every start (named by the content's hash, `knownHash` when the
 * build computed it), reused when its content has that hash, else written again.
 */
export function extractOnce(embeddedPath: string, knownHash?: string): string {
  if (!isEmbeddedPath(embeddedPath)) return embeddedPath;
  const hash = knownHash ?? embeddedFileHash(embeddedPath);
  const name = basename(embeddedPath).replace(/(\.[^.]+)?$/, (ext) => `-${hash.slice(0, 16)}${ext}`);
  const dest = join(privateDir(), name);
  try {
    const st = lstatSync(dest);
    if (st.isFile() && st.uid === userInfo().uid && contentHash(readFileSync(dest)) === hash) return dest;
  } catch {
    // not there yet
  }
  writeFileAtomic(dest, readFileSync(embeddedPath), 0o700);
  return dest;
}
