#!/usr/bin/env bun
// Native build: llama.cpp from the pinned source + our shim -> native/lib/libllmatic.so,
// plus llama.cpp's own llama-bench / llama-server / llama-quantize and whisper.cpp's whisper-cli -> native/bin/
//
//   bun native/build.ts [--cuda] [--force] [--quiet]
//
// Source: $LLAMA_CPP_DIR when set (a user's checkout), else llama.cpp tag v0.5.0 as
// shipped in the npm package node-llama-cpp@3.22.1 (llama/gitRelease.bundle), fetched
// from the npm registry and checked against its published sha512.
// Cache: $LLMATIC_CACHE (default ~/.cache/llmatic)/native holds the source and one build
// tree per configuration; a stamp of (source revision, flags, shim sources) makes a
// second run with nothing changed return at once.
import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join, resolve } from "node:path";
import { withDirLock } from "../src/lock";
import { cacheDir } from "../src/paths";

export const PIN = {
  tag: "v0.5.0",
  commit: "de3ff815ea7d559ee917f063901b8986f038abc6",
  npmPackage: "node-llama-cpp@3.22.1",
  tarball: "https://registry.npmjs.org/node-llama-cpp/-/node-llama-cpp-3.22.1.tgz",
  integrity: "sha512-bltIipuWmc123H7tMIgDGKSsSrhmhlQYeVUC48XTjVW7XGJJiJJyCdlTMzQ/LiWoPkGDpcL4FviDpgw7qfTiDw==",
} as const;

/**
 * whisper.cpp 1.9.3's src/, include/ and examples/ (whisper-cli, miniaudio,
 * stb_vorbis) as shipped in @fugood/whisper.node@1.1.3; compiled against the
 * pinned llama.cpp's ggml (the package's own ggml is not used).
 */
export const WHISPER_PIN = {
  version: "1.9.3",
  npmPackage: "@fugood/whisper.node@1.1.3",
  tarball: "https://registry.npmjs.org/@fugood/whisper.node/-/whisper.node-1.1.3.tgz",
  integrity: "sha512-wiDjBuKUa6ji6HItkW99TwQI3Q4wf7yh0W/xeroJfZLctQrSM+xfUcoY9iH/w7su3gjW5R6z3tTHJPaF468kig==",
} as const;

const NATIVE_DIR = import.meta.dir;
export const LIB_DIR = join(NATIVE_DIR, "lib");
export const BIN_DIR = join(NATIVE_DIR, "bin");
export const LIB_PATH = join(LIB_DIR, "libllmatic.so");
/**
 * The portable executable's libraries (`bun run compile`, x86-64 Linux): the
 * same library with ggml's CPU code built for each x86-64 level, and the probe
 * that tells which level a CPU runs (native/CMakeLists.txt).
 */
export const CPU_LEVELS = ["x86-64-v2", "x86-64-v3", "x86-64-v4"] as const;
export type CpuLevel = (typeof CPU_LEVELS)[number];
export const CPU_LIB_DIR = join(LIB_DIR, "cpu");
export const cpuLevelLibPath = (level: CpuLevel) => join(CPU_LIB_DIR, `libllmatic-${level}.so`);
export const CPU_PROBE_PATH = join(CPU_LIB_DIR, "libllmatic-cpu.so");
const cpuLevelsBuildable = () => process.platform === "linux" && process.arch === "x64";
/** Files from the pinned source the compiled executable embeds (its demo model's tokenizer and template). */
export const ASSETS = {
  vocab: { from: "models/ggml-vocab-qwen2.gguf", to: join(LIB_DIR, "ggml-vocab-qwen2.gguf") },
  template: { from: "models/templates/Qwen-Qwen2.5-7B-Instruct.jinja", to: join(LIB_DIR, "qwen2.5-instruct.jinja") },
} as const;
const TOOLS = ["llama-bench", "llama-server", "llama-quantize", "whisper-cli"] as const;
const SHIM_SOURCES = [
  "CMakeLists.txt",
  "src/shim.c",
  "src/chat.cpp",
  "src/sampler.cpp",
  "src/qgemm.cpp",
  "src/qgemm_k.cpp",
  "src/attn.cpp",
  "src/qgemm_k_avx2.inc",
  "src/cpu-level.c",
  "src/train.cpp",
  "src/audio.cpp",
  "src/vision.cpp",
  "src/qgemm.h",
  "src/amx.h",
  "src/llmatic.h",
  "src/strings.hpp",
  "src/exports.map",
];

export interface BuildOptions {
  cuda?: boolean;
  force?: boolean;
  quiet?: boolean;
  /** extra -D flags, e.g. from $LLMATIC_CMAKE_ARGS */
  cmakeArgs?: string[];
  /** also the CPU-level libraries and the probe (x86-64 Linux only) */
  cpuLevels?: boolean;
}

class BuildError extends Error {}

function log(opts: BuildOptions, msg: string): void {
  if (!opts.quiet) process.stderr.write(`[native] ${msg}\n`);
}

function which(cmd: string): string | null {
  return Bun.which(cmd);
}

function run(cmd: string[], cwd?: string): string {
  const p = Bun.spawnSync(cmd, { cwd, stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) {
    throw new BuildError(`${cmd.join(" ")} failed (exit ${p.exitCode}):\n${p.stderr.toString().slice(-4000)}`);
  }
  return p.stdout.toString();
}

function requireTools(needGit: boolean): void {
  const missing: string[] = [];
  if (!which("cmake")) missing.push("cmake");
  if (!which("c++") && !which("g++") && !which("clang++")) missing.push("a C++ compiler (g++ or clang++)");
  if (!which("cc") && !which("gcc") && !which("clang")) missing.push("a C compiler (gcc or clang)");
  if (needGit && !which("git")) missing.push("git");
  if (!which("tar")) missing.push("tar");
  if (missing.length > 0) {
    throw new BuildError(
      `cannot build the native library: missing ${missing.join(", ")}.\n` +
        "On Debian/Ubuntu: sudo apt-get install -y cmake build-essential git\n" +
        "On macOS: xcode-select --install && brew install cmake",
    );
  }
}

function pinnedSourceDir(): string {
  return join(cacheDir(), "native", `llama.cpp-${PIN.tag}`);
}

/** A user's checkout is identified by its path, HEAD and uncommitted changes. */
function userRevision(dir: string): string {
  let revision = `path:${dir}`;
  if (which("git") && existsSync(join(dir, ".git"))) {
    const head = Bun.spawnSync(["git", "rev-parse", "HEAD"], { cwd: dir }).stdout.toString().trim();
    const dirty = Bun.spawnSync(["git", "status", "--porcelain", "-uno"], { cwd: dir }).stdout.toString();
    revision += `@${head}${dirty ? `+dirty:${createHash("sha1").update(dirty).digest("hex").slice(0, 8)}` : ""}`;
  }
  return revision;
}

/** The source revision when it can be known without downloading anything. */
function knownRevision(): string | null {
  const userDir = process.env.LLAMA_CPP_DIR;
  if (!existsSync(join(cacheDir(), "native", `whisper.cpp-${WHISPER_PIN.version}`, ".llmatic-source-ok"))) return null;
  if (userDir) return existsSync(join(userDir, "include", "llama.h")) ? userRevision(resolve(userDir)) : null;
  const dir = pinnedSourceDir();
  const patched =
    existsSync(join(dir, PATCH_MARKER)) && readFileSync(join(dir, PATCH_MARKER), "utf8").trim() === PATCH_ID;
  return existsSync(join(dir, ".llmatic-source-ok")) && patched ? pinnedRevision() : null;
}

/** Returns the llama.cpp source dir and a revision id that changes when the source does. */
async function obtainSource(opts: BuildOptions): Promise<{ dir: string; revision: string }> {
  const userDir = process.env.LLAMA_CPP_DIR;
  if (userDir) {
    const dir = resolve(userDir);
    if (!existsSync(join(dir, "include", "llama.h"))) {
      throw new BuildError(`LLAMA_CPP_DIR=${userDir} is not a llama.cpp checkout (no include/llama.h)`);
    }
    log(opts, `using llama.cpp from LLAMA_CPP_DIR=${dir}`);
    return { dir, revision: userRevision(dir) };
  }

  const dir = pinnedSourceDir();
  const root = join(dir, "..");
  if (existsSync(join(dir, ".llmatic-source-ok"))) {
    applyPatches(dir);
    return { dir, revision: pinnedRevision() };
  }

  mkdirSync(root, { recursive: true });
  const tgz = join(root, `node-llama-cpp-3.22.1.tgz`);
  await downloadPinned(PIN, tgz, `llama.cpp ${PIN.tag} source bundle, ~36 MB`, opts);
  log(opts, "unpacking the llama.cpp git bundle");
  const tmp = join(root, "unpack.tmp");
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  run(["tar", "-xzf", tgz, "-C", tmp, "package/llama/gitRelease.bundle"]);
  rmSync(dir, { recursive: true, force: true });
  run(["git", "clone", "--quiet", join(tmp, "package/llama/gitRelease.bundle"), dir]);
  rmSync(tmp, { recursive: true, force: true });
  const head = run(["git", "rev-parse", "HEAD"], dir).trim();
  if (head !== PIN.commit) {
    throw new BuildError(`llama.cpp bundle is at ${head}, expected the pinned ${PIN.commit} (${PIN.tag})`);
  }
  writeFileSync(join(dir, ".llmatic-source-ok"), `${PIN.tag} ${PIN.commit}\n`);
  applyPatches(dir);
  return { dir, revision: pinnedRevision() };
}

/**
 * Changes llmatic makes to the pinned llama.cpp source, each small and
 * explained. All but the first only touch training (llama_opt_init) and
 * grammars. The first works around a compiler bug in ggml's AMX kernels and
 * changes no result; the llama.cpp tools benchmarks compare against are built
 * from the same patched tree, so both sides run the same inference code.
 */
const SOURCE_PATCHES: { file: string; find: string; replace: string; why: string }[] = [
  {
    file: "ggml/src/ggml-cpu/amx/mmq.cpp",
    why:
      "GCC 12 (Debian 12's) drops the stores that fill the AMX tile configuration, as nothing it knows of reads them " +
      "(the ldtilecfg builtin does not tell it), so ldtilecfg loads stack garbage and faults: on an AMX CPU every " +
      "product of 2 or more tokens with Q4_K/Q6_K/Q8_0 weights killed the process (stock llama-server too, at its " +
      "second client). An empty asm that reads the configuration keeps the stores",
    find: "    _tile_loadconfig(&tc);\n    done = true;\n",
    replace:
      '    __asm__ __volatile__("" : : "m"(tc) : "memory"); // llmatic: GCC 12 dropped the stores to tc\n    _tile_loadconfig(&tc);\n    done = true;\n',
  },
  {
    file: "src/llama-context.h",
    why: "a flag: this context runs training graphs",
    find: "    ggml_opt_context_t opt_ctx = nullptr;\n",
    replace:
      "    ggml_opt_context_t opt_ctx = nullptr;\n    bool opt_graphs = false; // llmatic: training graphs need a larger node budget\n",
  },
  {
    file: "src/llama-context.cpp",
    why: "the node budget of training graphs: forward + backward + optimizer step (a 24-layer model overflows the forward budget)",
    find: "        res += (n_sampling_outputs_max - 1) * n_sampling_nodes_max;\n    }\n    return res;\n}\n",
    replace:
      "        res += (n_sampling_outputs_max - 1) * n_sampling_nodes_max;\n    }\n    if (opt_graphs) res *= 6; // llmatic\n    return res;\n}\n",
  },
  {
    file: "src/llama-context.cpp",
    why: "reserve the scheduler for the training graphs before the optimizer context takes it",
    find: "        cparams.flash_attn = false;\n\n        // the graph changes without flash attention, need to reserve again\n        sched_need_reserve = true;\n        sched_reserve();\n    }\n",
    replace:
      "        cparams.flash_attn = false;\n    }\n\n    // llmatic: training graphs (forward, backward, optimizer step) are several times the forward\n    // graph: the scheduler is reserved for them before ggml_opt_init takes it\n    opt_graphs = true;\n    sched_need_reserve = true;\n    sched_reserve();\n    ggml_backend_sched_set_eval_callback(sched.get(), cparams.cb_eval, cparams.cb_eval_user_data);\n",
  },
  {
    file: "common/json-schema-to-grammar.cpp",
    why: "fail closed: a pattern the grammar cannot express is an error, not a string that accepts anything",
    find: '            _warnings.push_back("pattern " + pattern + " is not supported (" + err.what() + "), accepting any string");\n            return _add_rule(name, _add_primitive("string", PRIMITIVE_RULES.at("string")));\n',
    replace:
      '            // llmatic: never accept any string for a pattern that cannot be enforced\n            _errors.push_back("pattern " + pattern + " cannot be enforced (" + err.what() + ")");\n            return "";\n',
  },
];

const PATCH_ID = createHash("sha256").update(JSON.stringify(SOURCE_PATCHES)).digest("hex").slice(0, 12);
const PATCH_MARKER = ".llmatic-patches";

/** Applies SOURCE_PATCHES to the pinned tree (once; idempotent). */
function applyPatches(dir: string): void {
  const marker = join(dir, PATCH_MARKER);
  if (existsSync(marker) && readFileSync(marker, "utf8").trim() === PATCH_ID) return;
  // another version of the patches: back to the pinned files first (the tree is a git clone)
  if (existsSync(marker)) run(["git", "checkout", "--", ...new Set(SOURCE_PATCHES.map((p) => p.file))], dir);
  for (const p of SOURCE_PATCHES) {
    const path = join(dir, p.file);
    const text = readFileSync(path, "utf8");
    if (text.includes(p.replace)) continue;
    const at = text.indexOf(p.find);
    if (at < 0 || text.indexOf(p.find, at + 1) >= 0) {
      throw new BuildError(
        `cannot apply llmatic's patch to ${p.file} (${p.why}): the pinned source is not what it expects`,
      );
    }
    writeFileSync(path, text.replace(p.find, p.replace));
  }
  writeFileSync(join(dir, PATCH_MARKER), `${PATCH_ID}\n`);
}

const pinnedRevision = () => `${PIN.commit}+patches-${PATCH_ID}`;

function integrityOk(file: string, integrity: string): boolean {
  const [algo, want] = integrity.split("-", 2) as [string, string];
  const got = createHash(algo).update(readFileSync(file)).digest("base64");
  return got === want;
}

/** An npm tarball at `file`, downloaded unless already there, checked against its pinned integrity. */
export async function downloadPinned(
  pin: { npmPackage: string; tarball: string; integrity: string },
  file: string,
  what: string,
  opts: BuildOptions,
): Promise<void> {
  if (existsSync(file) && integrityOk(file, pin.integrity)) return;
  log(opts, `downloading ${pin.npmPackage} (${what}) from the npm registry`);
  const res = await fetch(pin.tarball);
  if (!res.ok || !res.body) throw new BuildError(`download of ${pin.tarball} failed: HTTP ${res.status}`);
  const total = Number(res.headers.get("content-length") ?? 0);
  const chunks: Uint8Array[] = [];
  let got = 0;
  let lastPct = -10;
  for await (const chunk of res.body) {
    chunks.push(chunk);
    got += chunk.length;
    const pct = total ? Math.floor((got / total) * 100) : 0;
    if (pct >= lastPct + 10) {
      lastPct = pct;
      log(opts, `  ${pct}% (${(got / 1e6).toFixed(1)} MB)`);
    }
  }
  writeFileSync(`${file}.partial`, Buffer.concat(chunks));
  renameSync(`${file}.partial`, file);
  if (!integrityOk(file, pin.integrity)) {
    rmSync(file, { force: true });
    throw new BuildError(`${pin.npmPackage} tarball does not match its pinned sha512 integrity`);
  }
}

/** The pinned whisper.cpp source (fetched and unpacked once). */
export async function whisperSourceDir(opts: BuildOptions = { quiet: true }): Promise<string> {
  const dir = join(cacheDir(), "native", `whisper.cpp-${WHISPER_PIN.version}`);
  if (existsSync(join(dir, ".llmatic-source-ok"))) return dir;
  const root = join(dir, "..");
  mkdirSync(root, { recursive: true });
  const tgz = join(root, "whisper.node-1.1.3.tgz");
  await downloadPinned(WHISPER_PIN, tgz, `whisper.cpp ${WHISPER_PIN.version} source, ~2 MB`, opts);
  const tmp = join(root, "unpack-whisper.tmp");
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  run(["tar", "-xzf", tgz, "-C", tmp, "package/whisper.cpp"]);
  rmSync(dir, { recursive: true, force: true });
  renameSync(join(tmp, "package", "whisper.cpp"), dir);
  rmSync(tmp, { recursive: true, force: true });
  if (!existsSync(join(dir, "include", "whisper.h")))
    throw new BuildError(`${WHISPER_PIN.npmPackage} holds no whisper.h`);
  writeFileSync(join(dir, ".llmatic-source-ok"), `${WHISPER_PIN.npmPackage} ${WHISPER_PIN.version}\n`);
  return dir;
}

function cmakeFlags(opts: BuildOptions): string[] {
  const flags = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DGGML_NATIVE=ON",
    "-DGGML_CCACHE=OFF",
  ];
  if (opts.cuda) flags.push("-DGGML_CUDA=ON");
  flags.push(...(opts.cmakeArgs ?? []));
  return flags;
}

function stampKey(revision: string, flags: string[]): string {
  const h = createHash("sha256");
  h.update(`${revision}\n${WHISPER_PIN.npmPackage}\n${flags.join(" ")}\n`);
  for (const f of SHIM_SOURCES) h.update(readFileSync(join(NATIVE_DIR, f)));
  return h.digest("hex");
}

function outputsPresent(cpuLevels: boolean): boolean {
  if (cpuLevels && !(existsSync(CPU_PROBE_PATH) && CPU_LEVELS.every((l) => existsSync(cpuLevelLibPath(l))))) {
    return false;
  }
  return (
    existsSync(LIB_PATH) &&
    TOOLS.every((t) => existsSync(join(BIN_DIR, t))) &&
    Object.values(ASSETS).every((a) => existsSync(a.to))
  );
}

/** Streams a build command, turning ninja/make progress into a compact progress line. */
async function runWithProgress(cmd: string[], cwd: string, opts: BuildOptions): Promise<void> {
  const proc = Bun.spawn(cmd, { cwd, stdout: "pipe", stderr: "pipe" });
  const tail: string[] = [];
  const tty = process.stderr.isTTY && !opts.quiet;
  let lastShown = 0;
  const started = Date.now();
  const onLine = (line: string) => {
    tail.push(line);
    if (tail.length > 60) tail.shift();
    const m = /^\[\s*(\d+)\/(\d+)\]/.exec(line) ?? /^\[\s*(\d+)%\]/.exec(line);
    if (!m) return;
    const pct = m[2] ? Math.floor((Number(m[1]) / Number(m[2])) * 100) : Number(m[1]);
    const secs = Math.round((Date.now() - started) / 1000);
    if (tty) {
      const bar = "#".repeat(Math.floor(pct / 4)).padEnd(25, ".");
      process.stderr.write(`\r[native] building [${bar}] ${String(pct).padStart(3)}% ${secs}s `);
    } else if (!opts.quiet && pct >= lastShown + 10) {
      lastShown = pct - (pct % 10);
      log(opts, `building ${pct}% (${secs}s)`);
    }
  };
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of stream) {
      buf += dec.decode(chunk, { stream: true });
      let i = buf.indexOf("\n");
      while (i >= 0) {
        onLine(buf.slice(0, i));
        buf = buf.slice(i + 1);
        i = buf.indexOf("\n");
      }
    }
    if (buf) onLine(buf);
  };
  await Promise.all([pump(proc.stdout), pump(proc.stderr)]);
  const code = await proc.exited;
  if (tty) process.stderr.write("\n");
  if (code !== 0) throw new BuildError(`${cmd.join(" ")} failed (exit ${code}):\n${tail.join("\n")}`);
}

/** The llama.cpp source tree the build uses (fetching the pinned one if needed). */
export async function llamaSourceDir(opts: BuildOptions = { quiet: true }): Promise<string> {
  return (await obtainSource(opts)).dir;
}

/** Path of a tool built next to the library (llama-bench, llama-server, llama-quantize, whisper-cli). */
export function toolPath(name: (typeof TOOLS)[number]): string {
  return join(BIN_DIR, name);
}

export async function buildNative(opts: BuildOptions = {}): Promise<{ built: boolean; seconds: number }> {
  const started = performance.now();
  const cmakeArgs = opts.cmakeArgs ?? (process.env.LLMATIC_CMAKE_ARGS?.split(/\s+/).filter(Boolean) || []);
  opts = { ...opts, cuda: opts.cuda ?? process.env.LLMATIC_CUDA === "1", cmakeArgs };
  const flags = cmakeFlags(opts);
  const stampFile = join(LIB_DIR, ".stamp");
  const levels = (opts.cpuLevels ?? false) && cpuLevelsBuildable();
  const levelStamp = join(CPU_LIB_DIR, ".stamp");

  // Fast path: same source revision, same flags, same shim sources, outputs present.
  const upToDate = (revision: string) =>
    !opts.force &&
    outputsPresent(levels) &&
    existsSync(stampFile) &&
    readFileSync(stampFile, "utf8").trim() === stampKey(revision, flags) &&
    (!levels || (existsSync(levelStamp) && readFileSync(levelStamp, "utf8").trim() === stampKey(revision, flags)));
  const known = knownRevision();
  if (known && upToDate(known)) {
    log(opts, "native library is up to date");
    return { built: false, seconds: (performance.now() - started) / 1000 };
  }

  requireTools(!process.env.LLAMA_CPP_DIR);
  const source = await obtainSource(opts);
  const whisperDir = await whisperSourceDir(opts);
  const key = stampKey(source.revision, flags);
  if (upToDate(source.revision)) {
    log(opts, "native library is up to date");
    return { built: false, seconds: (performance.now() - started) / 1000 };
  }

  const configId = createHash("sha256")
    .update(`${source.dir}\n${flags.join(" ")}`)
    .digest("hex")
    .slice(0, 12);
  const buildDir = join(cacheDir(), "native", `build-${configId}`);
  mkdirSync(buildDir, { recursive: true });
  const waiting = () => log(opts, "waiting for another native build to finish");
  await withDirLock(
    join(buildDir, ".lock"),
    async () => {
      // the CMake project is configured from a stable copy, so every clone of the
      // repository shares one build tree (only changed shim files recompile)
      const projectDir = join(buildDir, "project");
      syncProject(projectDir);
      const generator = which("ninja") ? ["-G", "Ninja"] : [];
      if (!existsSync(join(buildDir, "CMakeCache.txt"))) {
        log(opts, `configuring (${flags.join(" ")})`);
      }
      run([
        "cmake",
        ...generator,
        "-S",
        projectDir,
        "-B",
        buildDir,
        `-DLLAMA_CPP_DIR=${source.dir}`,
        `-DWHISPER_CPP_DIR=${whisperDir}`,
        ...flags,
      ]);
      const jobs = String(Math.max(1, navigator.hardwareConcurrency || 2));
      log(opts, `compiling llama.cpp + shim with ${jobs} jobs in ${buildDir} (first build takes several minutes)`);
      const levelTargets = levels ? ["llmatic-cpu", ...CPU_LEVELS.map((l) => `llmatic-${l}`)] : [];
      await runWithProgress(
        ["cmake", "--build", buildDir, "--parallel", jobs, "--target", "llmatic", ...TOOLS, ...levelTargets],
        buildDir,
        opts,
      );
      mkdirSync(LIB_DIR, { recursive: true });
      mkdirSync(BIN_DIR, { recursive: true });
      installFile(join(buildDir, "libllmatic.so"), LIB_PATH);
      for (const t of TOOLS) installFile(findBinary(buildDir, t), join(BIN_DIR, t));
      for (const a of Object.values(ASSETS)) installFile(join(source.dir, a.from), a.to);
      writeFileSync(join(LIB_DIR, "SOURCE"), `${source.revision}\n${source.dir}\n${flags.join(" ")}\n`);
      writeFileSync(stampFile, `${key}\n`);
      if (levels) {
        mkdirSync(CPU_LIB_DIR, { recursive: true });
        installFile(join(buildDir, "libllmatic-cpu.so"), CPU_PROBE_PATH);
        for (const l of CPU_LEVELS) installFile(join(buildDir, `libllmatic-${l}.so`), cpuLevelLibPath(l));
        writeFileSync(levelStamp, `${key}\n`);
      }
    },
    waiting,
  );
  const seconds = (performance.now() - started) / 1000;
  const size = statSync(LIB_PATH).size;
  log(opts, `done in ${seconds.toFixed(1)}s: ${LIB_PATH} (${(size / 1e6).toFixed(1)} MB)`);
  return { built: true, seconds };
}

/** Copies the shim sources into `dest`, touching only files whose content changed. */
function syncProject(dest: string): void {
  for (const f of SHIM_SOURCES) {
    const from = join(NATIVE_DIR, f);
    const to = join(dest, f);
    const data = readFileSync(from);
    if (existsSync(to) && readFileSync(to).equals(data)) continue;
    mkdirSync(join(to, ".."), { recursive: true });
    writeFileSync(to, data);
  }
}

function installFile(from: string, to: string): void {
  // copy then rename, so a running process never sees a half-written library
  copyFileSync(from, `${to}.tmp`);
  renameSync(`${to}.tmp`, to);
}

function findBinary(buildDir: string, name: string): string {
  for (const cand of [join(buildDir, "bin", name), join(buildDir, "llama.cpp", "bin", name)]) {
    if (existsSync(cand)) return cand;
  }
  const stack = [buildDir];
  while (stack.length) {
    const d = stack.pop() as string;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) stack.push(join(d, e.name));
      else if (e.name === name) return join(d, e.name);
    }
  }
  throw new BuildError(`built ${name} not found under ${buildDir}`);
}

if (import.meta.main) {
  const args = new Set(process.argv.slice(2));
  if (args.has("--help")) {
    console.log(
      "usage: bun native/build.ts [--cuda] [--force] [--quiet] [--cpu-levels]\n" +
        "env: LLAMA_CPP_DIR (use this llama.cpp checkout), LLMATIC_CUDA=1, LLMATIC_CMAKE_ARGS, LLMATIC_CACHE",
    );
    process.exit(0);
  }
  try {
    await buildNative({
      cuda: args.has("--cuda") ? true : undefined,
      force: args.has("--force"),
      quiet: args.has("--quiet"),
      cpuLevels: args.has("--cpu-levels"),
    });
  } catch (e) {
    if (e instanceof BuildError) {
      process.stderr.write(`[native] error: ${e.message}\n`);
      process.exit(1);
    }
    throw e;
  }
}
