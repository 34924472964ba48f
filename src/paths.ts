// Where llmatic keeps what it builds and downloads: $LLMATIC_CACHE, else
// $XDG_CACHE_HOME/llmatic, else ~/.cache/llmatic. What users store (files,
// batches, fine-tuned models) lives in the data directory: --data-dir, else
// $XDG_DATA_HOME/llmatic, else ~/.local/share/llmatic.
import { homedir } from "node:os";
import { join, resolve } from "node:path";

export function cacheDir(): string {
  const base = process.env.LLMATIC_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "llmatic");
  return resolve(base);
}

export function dataDir(): string {
  return resolve(join(process.env.XDG_DATA_HOME ?? join(homedir(), ".local", "share"), "llmatic"));
}
