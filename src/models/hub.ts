// Models from the Hugging Face hub: references like `hf:owner/repo/file.gguf` or
// `owner/repo:Q4_K_M` (llama-server's -hf form) are downloaded into the cache
// ($LLMATIC_CACHE/models/hf), resumed after an interruption (HTTP Range),
// verified (size and sha256 when the hub gives them), landed atomically, and
// reused without the network afterwards. HF_ENDPOINT and HF_TOKEN are honoured.
import { createHash } from "node:crypto";
import {
  closeSync,
  createReadStream,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { writeFileAtomic } from "../atomic";
import { withDirLock } from "../lock";
import { cacheDir } from "../paths";
import { WHISPER_FILE_NAME } from "./whisper-file";

export type ModelRef =
  | { kind: "path"; path: string }
  | { kind: "hf"; repo: string; file: string | null; quant: string | null; text: string };

export class HubError extends Error {}

const REPO = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;
export const DEFAULT_QUANT = "Q4_K_M";

/** A path inside a repository: relative, no "." or ".." parts, no backslashes or control characters. */
function safeRepoPath(path: string): boolean {
  if (!path || path.startsWith("/") || path.includes("\\") || [...path].some((c) => c.charCodeAt(0) < 0x20))
    return false;
  return path.split("/").every((part) => part !== "" && part !== "." && part !== "..");
}

/**
 * `hf:owner/repo/file.gguf` (or a whisper.cpp `ggml-*.bin`), `hf:owner/repo[:QUANT]`,
 * `owner/repo:QUANT` and `owner/repo` are hub references.
 */
export function parseModelRef(text: string): ModelRef {
  const explicit = text.startsWith("hf:");
  const body = explicit ? text.slice(3) : text;
  if (
    !explicit &&
    (existsSync(text) ||
      text.startsWith(".") ||
      text.startsWith("/") ||
      text.endsWith(".gguf") ||
      WHISPER_FILE_NAME.test(text))
  ) {
    return { kind: "path", path: text };
  }
  const [repoPart, quant = null] = body.split(":", 2) as [string, string | undefined];
  const parts = repoPart.split("/");
  // a .gguf file, or a whisper.cpp model (ggml-*.bin, as ggerganov/whisper.cpp holds them)
  if (parts.length >= 3 && (repoPart.endsWith(".gguf") || WHISPER_FILE_NAME.test(parts.at(-1) as string))) {
    const repo = parts.slice(0, 2).join("/");
    const file = parts.slice(2).join("/");
    // the file lands at <cache>/<repo>/<file>: nothing may lead it outside
    if (!REPO.test(repo) || !safeRepoPath(repo) || !safeRepoPath(file)) {
      throw new HubError(`invalid hub reference '${text}': the repository and file must be plain relative names`);
    }
    return { kind: "hf", repo, file, quant: null, text };
  }
  if (REPO.test(repoPart) && safeRepoPath(repoPart)) {
    if (quant !== null && !/^[\w.-]+$/.test(quant)) throw new HubError(`invalid quantization in '${text}'`);
    return { kind: "hf", repo: repoPart, file: null, quant: quant ?? DEFAULT_QUANT, text };
  }
  if (explicit) throw new HubError(`invalid hub reference '${text}': use hf:owner/repo/file.gguf or owner/repo:QUANT`);
  return { kind: "path", path: text };
}

function endpoint(): string {
  return (process.env.HF_ENDPOINT ?? "https://huggingface.co").replace(/\/+$/, "");
}

/** HF_TOKEN goes to the hub only, never to a host a response points elsewhere (its CDN, a redirect). */
function authHeaders(url: string): Record<string, string> {
  const token = process.env.HF_TOKEN;
  if (!token) return {};
  return new URL(url).origin === new URL(endpoint()).origin ? { authorization: `Bearer ${token}` } : {};
}

const MAX_REDIRECTS = 10;

/** fetch that follows redirects itself, so the token is dropped when a redirect leaves the hub. */
async function hubFetch(
  url: string,
  init: { method?: string; headers?: Record<string, string> } = {},
): Promise<Response> {
  let current = url;
  for (let hop = 0; ; hop++) {
    const res = await fetch(current, {
      method: init.method ?? "GET",
      headers: { ...init.headers, ...authHeaders(current) },
      redirect: "manual",
    });
    const location = res.headers.get("location");
    if (res.status < 300 || res.status >= 400 || !location) return res;
    if (hop >= MAX_REDIRECTS) throw new HubError(`too many redirects fetching ${url}`);
    await res.body?.cancel();
    const next = new URL(location, current);
    if (next.protocol !== "https:" && next.protocol !== "http:")
      throw new HubError(`refusing a redirect to ${next.href}`);
    current = next.href;
  }
}

function repoDir(repo: string): string {
  return join(cacheDir(), "models", "hf", ...repo.split("/"));
}

interface FileMeta {
  repo: string;
  file: string;
  size: number;
  sha256: string | null;
  url: string;
}

export interface Progress {
  file: string;
  received: number;
  total: number | null;
}

export type ProgressFn = (p: Progress) => void;

/** A progress line on stderr: a bar on a terminal, a line every 10% otherwise. */
export function stderrProgress(prefix: string): ProgressFn {
  let lastPct = -10;
  let lastAt = 0;
  const started = performance.now();
  return ({ file, received, total }) => {
    const now = performance.now();
    const pct = total ? Math.floor((received / total) * 100) : 0;
    const mb = (received / 1e6).toFixed(1);
    const rate = (received / 1e6 / Math.max(0.001, (now - started) / 1000)).toFixed(1);
    if (process.stderr.isTTY) {
      if (now - lastAt < 100 && received !== total) return;
      lastAt = now;
      const bar = total ? "#".repeat(Math.floor(pct / 4)).padEnd(25, ".") : "";
      process.stderr.write(`\r${prefix} ${file} [${bar}] ${pct}% ${mb} MB ${rate} MB/s `);
      if (received === total) process.stderr.write("\n");
    } else if (pct >= lastPct + 10 || received === total) {
      lastPct = pct - (pct % 10);
      process.stderr.write(`${prefix} ${file}: ${total ? `${pct}% ` : ""}${mb} MB (${rate} MB/s)\n`);
    }
  };
}

/** Lists the repository's files (network). */
async function listFiles(repo: string): Promise<string[]> {
  const url = `${endpoint()}/api/models/${repo}`;
  let res: Response;
  try {
    res = await hubFetch(url);
  } catch (e) {
    throw new HubError(`cannot reach the hub to list ${repo} (${(e as Error).message}); it is not in the cache yet`);
  }
  if (res.status === 404) throw new HubError(`hub repository ${repo} not found`);
  if (!res.ok) throw new HubError(`listing ${repo} failed: HTTP ${res.status}`);
  const body = (await res.json()) as { siblings?: { rfilename: string }[] };
  return (body.siblings ?? []).map((s) => s.rfilename);
}

const SPLIT = /-(\d{5})-of-(\d{5})\.gguf$/;

/** The .gguf file of a repository for a quantization (e.g. Q4_K_M), the first part of a split model. */
export function pickQuantFile(files: string[], quant: string): string | null {
  const q = quant.toLowerCase();
  const ggufs = files.filter((f) => f.toLowerCase().endsWith(".gguf") && !/mmproj/i.test(f));
  const matching = ggufs.filter((f) => {
    const name = f.toLowerCase();
    return name.includes(`-${q}.`) || name.includes(`.${q}.`) || name.includes(`_${q}.`) || name.includes(q);
  });
  const firsts = matching.filter((f) => !SPLIT.test(f) || SPLIT.exec(f)?.[1] === "00001");
  return firsts.sort((a, b) => a.length - b.length || a.localeCompare(b))[0] ?? null;
}

/**
 * The projector a vision repository ships (mmproj-*.gguf), pulled with its
 * model so the server finds it beside it: F16 first (what llama.cpp's
 * converter writes by default), then BF16, F32, Q8_0, any other.
 */
export function pickProjectorFile(files: string[]): string | null {
  const found = files.filter((f) => /(^|\/)mmproj[^/]*\.gguf$/i.test(f));
  const rank = (f: string) => {
    const i = ["f16", "bf16", "f32", "q8_0"].findIndex((q) => f.toLowerCase().includes(q));
    return i < 0 ? 4 : i;
  };
  return found.sort((a, b) => rank(a) - rank(b) || a.length - b.length || a.localeCompare(b))[0] ?? null;
}

function readJson<T>(path: string): T | null {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as T;
  } catch {
    return null;
  }
}

/** Downloads hub references into the cache (once) and returns the local path of the model. */
export async function resolveHubRef(ref: Extract<ModelRef, { kind: "hf" }>, onProgress?: ProgressFn): Promise<string> {
  const dir = repoDir(ref.repo);
  let file = ref.file;
  const refsPath = join(dir, "refs.json");
  if (!file) {
    const quant = (ref.quant ?? DEFAULT_QUANT).toUpperCase();
    const known = readJson<Record<string, string>>(refsPath)?.[quant];
    if (known && existsSync(join(dir, known))) return join(dir, known);
    const files = await listFiles(ref.repo);
    file = pickQuantFile(files, quant);
    if (!file) {
      const available = files.filter((f) => f.endsWith(".gguf")).join(", ") || "none";
      throw new HubError(`${ref.repo} has no ${quant} .gguf file (available: ${available})`);
    }
    const projector = pickProjectorFile(files);
    // beside the model (the cache keeps the repository's layout)
    if (projector && safeRepoPath(projector) && dirname(projector) === dirname(file)) {
      await downloadFile(ref.repo, projector, onProgress);
    }
    mkdirSync(dir, { recursive: true });
    writeFileAtomic(
      refsPath,
      JSON.stringify({ ...(readJson<Record<string, string>>(refsPath) ?? {}), [quant]: file }, null, 2),
    );
  }
  if (!safeRepoPath(file)) throw new HubError(`the hub named an unsafe file path for ${ref.repo}: '${file}'`);
  const parts = [file];
  const split = SPLIT.exec(file);
  if (split) {
    const n = Number(split[2]);
    for (let i = 2; i <= n; i++) parts.push(file.replace(SPLIT, `-${String(i).padStart(5, "0")}-of-${split[2]}.gguf`));
  }
  for (const part of parts) await downloadFile(ref.repo, part, onProgress);
  return join(dir, file);
}

/** One file into the cache: reused when already there, resumed when a partial exists. */
export async function downloadFile(repo: string, file: string, onProgress?: ProgressFn): Promise<string> {
  const dest = join(repoDir(repo), file);
  const metaPath = `${dest}.json`;
  if (existsSync(dest) && existsSync(metaPath)) return dest;
  mkdirSync(dirname(dest), { recursive: true });
  // two processes pulling the same file: the second waits, then finds it landed
  return withDirLock(`${dest}.lock`, async () => {
    if (existsSync(dest) && existsSync(metaPath)) return dest;
    const url = `${endpoint()}/${repo}/resolve/main/${file.split("/").map(encodeURIComponent).join("/")}`;
    const meta = await probe(url, repo, file);
    await fetchResumable(meta, `${dest}.partial`, onProgress);
    renameSync(`${dest}.partial`, dest);
    writeFileAtomic(metaPath, JSON.stringify(meta, null, 2));
    return dest;
  });
}

/** Size and sha256 of a hub file: HF sends them as x-linked-size / x-linked-etag before redirecting to its CDN. */
async function probe(url: string, repo: string, file: string): Promise<FileMeta> {
  let res: Response;
  try {
    res = await fetch(url, { method: "HEAD", redirect: "manual", headers: authHeaders(url) });
  } catch (e) {
    throw new HubError(
      `cannot reach the hub for ${repo}/${file} (${(e as Error).message}); it is not in the cache yet`,
    );
  }
  if (res.status === 404) throw new HubError(`${repo}/${file} not found on the hub`);
  if (res.status === 401 || res.status === 403)
    throw new HubError(`${repo}/${file}: access denied (set HF_TOKEN for gated models)`);
  if (res.status >= 400) throw new HubError(`${repo}/${file}: HTTP ${res.status}`);
  const linkedSize = Number(res.headers.get("x-linked-size") ?? Number.NaN);
  const length = Number(res.headers.get("content-length") ?? Number.NaN);
  const etag = (res.headers.get("x-linked-etag") ?? res.headers.get("etag") ?? "")
    .replace(/^W\//, "")
    .replaceAll('"', "");
  const location = res.status >= 300 && res.status < 400 ? res.headers.get("location") : null;
  return {
    repo,
    file,
    size: Number.isFinite(linkedSize) ? linkedSize : length,
    sha256: /^[0-9a-f]{64}$/.test(etag) ? etag : null,
    url: location ? new URL(location, url).href : url,
  };
}

/** Downloads into `partial`, resuming from what it holds; retries an interrupted transfer; verifies at the end. */
async function fetchResumable(meta: FileMeta, partial: string, onProgress?: ProgressFn): Promise<void> {
  const MAX_TRIES = 5;
  let lastError = "";
  for (let attempt = 1; attempt <= MAX_TRIES; attempt++) {
    const have = existsSync(partial) ? statSync(partial).size : 0;
    if (Number.isFinite(meta.size) && have === meta.size) break;
    if (Number.isFinite(meta.size) && have > meta.size) rmSync(partial, { force: true });
    const from = existsSync(partial) ? statSync(partial).size : 0;
    let res: Response;
    try {
      res = await hubFetch(meta.url, { headers: from > 0 ? { range: `bytes=${from}-` } : {} });
    } catch (e) {
      lastError = (e as Error).message;
      await Bun.sleep(200 * attempt);
      continue;
    }
    if (res.status === 416) break; // nothing left to fetch: verify what we have
    if (!res.ok || !res.body) throw new HubError(`download of ${meta.file} failed: HTTP ${res.status}`);
    // 206 continues the partial; a 200 means the server ignored the range: start over
    const append = res.status === 206 && from > 0;
    const fd = openSync(partial, append ? "a" : "w");
    let received = append ? from : 0;
    try {
      for await (const chunk of res.body) {
        writeSync(fd, chunk);
        received += chunk.length;
        onProgress?.({ file: meta.file, received, total: Number.isFinite(meta.size) ? meta.size : null });
      }
    } catch (e) {
      lastError = (e as Error).message || "connection closed";
      continue;
    } finally {
      closeSync(fd);
    }
    if (!Number.isFinite(meta.size) || received >= meta.size) break;
    lastError = `connection closed at ${received} of ${meta.size} bytes`;
  }
  const size = existsSync(partial) ? statSync(partial).size : 0;
  if (Number.isFinite(meta.size) && size !== meta.size) {
    throw new HubError(
      `download of ${meta.file} incomplete: ${size} of ${meta.size} bytes after ${MAX_TRIES} tries (${lastError}); run again to resume`,
    );
  }
  if (meta.sha256) {
    const got = await sha256(partial);
    if (got !== meta.sha256) {
      rmSync(partial, { force: true });
      throw new HubError(`download of ${meta.file} is corrupt: sha256 ${got}, expected ${meta.sha256}; it was deleted`);
    }
  }
}

async function sha256(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest("hex");
}
