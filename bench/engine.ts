#!/usr/bin/env bun
// bun run bench:engine [--threads N] [--rounds N] [--reps N] [--no-repack] [--model M]
//                      [--lib native/lib/cpu/libllmatic-x86-64-v3.so] [--qgemm-max-batch N] [--vs-exe | --vs-lib PATH]
//
// Prompt processing (512 tokens) and generation (128 tokens, end-of-generation
// ignored) on the bench model (Qwen2-0.5B shape, Q4_K_M), for llmatic's engine
// and for llama-bench built from the same pinned source, same threads, same run.
// The two alternate for several rounds (a busy neighbour slows both alike) and
// the medians are compared. Targets: generation >= 0.98x llama-bench, prompt >= 0.97x.
// --vs-exe: a second engine on the library the portable executable loads on this
// CPU (its x86-64 level's build, bun run compile) takes its turn in every round
// too, and its medians are compared with the native build's (target: within 2%).
// --vs-lib PATH: the same with any other build of the library (an A/B of a change).
import { buildNative, CPU_PROBE_PATH, cpuLevelLibPath, toolPath } from "../native/build";
import { chooseLevel, probeLevel } from "../src/cpu-level";
import { LlamaEngine } from "../src/engine/client";
import type { GenerateRequest } from "../src/engine/types";
import { DEFAULT_SAMPLING } from "../src/ffi/sampler";
import { benchModel, defaultThreads, flag, opt, optString, percentile, say } from "./common";

const threads = opt("--threads", defaultThreads());
const rounds = opt("--rounds", 3);
const reps = opt("--reps", 3);
// --no-repack: batch-invariant numerics (llmatic's --deterministic), to see what it costs
const repack = !flag("--no-repack");
// --lib: llmatic's engine on another build of the library, e.g. the portable
// executable's build for one x86-64 level (bun run build:native -- --cpu-levels)
const libPath = optString("--lib");
// --qgemm-max-batch 0: ggml's kernels only (and its weight repacking), as llama-bench
const qgemmMaxBatch = opt("--qgemm-max-batch", 16);
const vsExe = flag("--vs-exe");
const vsLib = optString("--vs-lib");
const N_PROMPT = 512;
const N_GEN = 128;

const model = await benchModel();

/** One llama-bench invocation: its per-repetition tokens/s for pp and tg. */
function llamaBench(): { pp: number[]; tg: number[] } {
  const lb = Bun.spawnSync(
    [toolPath("llama-bench"), "-m", model, "-p", String(N_PROMPT), "-n", String(N_GEN), "-t", String(threads)].concat([
      "-r",
      String(reps),
      "-o",
      "json",
    ]),
    { stdout: "pipe", stderr: "pipe" },
  );
  if (lb.exitCode !== 0) throw new Error(`llama-bench failed: ${lb.stderr.toString().slice(-2000)}`);
  const rows = JSON.parse(lb.stdout.toString()) as { n_prompt: number; n_gen: number; samples_ts: number[] }[];
  const pp = rows.find((r) => r.n_prompt === N_PROMPT && r.n_gen === 0);
  const tg = rows.find((r) => r.n_gen === N_GEN && r.n_prompt === 0);
  if (!pp || !tg) throw new Error("llama-bench output lacks the pp/tg rows");
  return { pp: pp.samples_ts, tg: tg.samples_ts };
}

const startEngine = (lib: string | undefined) =>
  LlamaEngine.start({
    modelPath: model,
    id: "bench",
    nCtx: 2048,
    nThreads: threads,
    parallel: 1,
    repack,
    libPath: lib,
    qgemmMaxBatch,
  });
const engine = await startEngine(libPath);
if (libPath) say(`llmatic's engine runs on ${libPath}`);
/** the second library (the executable's for this CPU with --vs-exe), its name, and an engine on it */
const other = vsExe
  ? await (async () => {
      await buildNative({ cpuLevels: true, quiet: true });
      const level = chooseLevel(probeLevel(CPU_PROBE_PATH));
      say(`the executable loads ${level} on this CPU: ${cpuLevelLibPath(level)}`);
      return { name: `exe ${level}`, engine: await startEngine(cpuLevelLibPath(level)) };
    })()
  : vsLib
    ? { name: vsLib, engine: await startEngine(vsLib) }
    : null;

/** Random prompt tokens (llama-bench uses random tokens too); a fresh first token defeats the prompt cache. */
function randomTokens(n: number, salt: number): number[] {
  let s = (0x9e3779b9 ^ (salt * 2654435761)) >>> 0;
  return Array.from({ length: n }, () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s % Math.min(150000, engine.info.nVocab);
  });
}

async function run(
  engine: LlamaEngine,
  req: GenerateRequest,
): Promise<{ firstAt: number; firstTokens: number; endAt: number; sentAt: number; tokens: number }> {
  const sentAt = performance.now();
  // the first event with tokens: a text event, or the end when the only token's text is an
  // incomplete UTF-8 sequence (no text event then); and how many tokens it brought
  let firstAt = 0;
  let firstTokens = 0;
  let tokens = 0;
  for await (const e of engine.generate(req)) {
    if (e.type === "error") throw new Error(e.message);
    if (e.type === "end") tokens = e.completionTokens;
    if (!firstAt && (e.type === "text" || e.type === "end")) {
      firstAt = performance.now();
      firstTokens = e.type === "text" ? e.tokens : e.completionTokens;
    }
  }
  return { sentAt, firstAt, firstTokens, endAt: performance.now(), tokens };
}

const sampling = { ...DEFAULT_SAMPLING, seed: 7 };
let salt = 0;
/** Prompt processing, measured like llama-bench: from submit to the first sampled token. */
async function oursPp(engine: LlamaEngine): Promise<number> {
  const a = await run(engine, {
    prompt: { type: "tokens", tokens: randomTokens(N_PROMPT, ++salt) },
    n: 1,
    maxTokens: 1,
    sampling,
    stop: [],
  });
  return N_PROMPT / ((a.firstAt - a.sentAt) / 1000);
}
/** Generation: tokens after the first, over the time after the first. */
async function oursTg(engine: LlamaEngine): Promise<number> {
  const b = await run(engine, {
    prompt: { type: "tokens", tokens: randomTokens(1, ++salt) },
    n: 1,
    maxTokens: N_GEN + 1,
    sampling,
    stop: [],
    ignoreEos: true,
  });
  return (b.tokens - b.firstTokens) / ((b.endAt - b.firstAt) / 1000);
}

const theirs = { pp: [] as number[], tg: [] as number[] };
const mine = { pp: [] as number[], tg: [] as number[] };
const others = { pp: [] as number[], tg: [] as number[] };
/** each engine with where its figures go: the native build's, then the second library's */
const engines: [LlamaEngine, typeof mine][] = [[engine, mine]];
if (other) engines.push([other.engine, others]);
// warm-up, as llama-bench does
for (const [e] of engines) {
  await oursPp(e);
  await oursTg(e);
}
for (let r = 1; r <= rounds; r++) {
  say(
    `round ${r}/${rounds}: llama-bench (${reps} reps), then llmatic (${reps} reps)${other ? `, then ${other.name}` : ""}`,
  );
  const lb = llamaBench();
  theirs.pp.push(...lb.pp);
  theirs.tg.push(...lb.tg);
  // in llama-bench's order: the prompt repetitions, then the generation ones
  for (const [e, out] of engines) {
    for (let i = 0; i < reps; i++) out.pp.push(await oursPp(e));
    for (let i = 0; i < reps; i++) out.tg.push(await oursTg(e));
  }
}
await engine.close();
await other?.engine.close();

const fmt = (xs: number[]) =>
  `${percentile(xs, 50).toFixed(2)} t/s [${Math.min(...xs).toFixed(1)}..${Math.max(...xs).toFixed(1)}]`;
const line = (name: string, o: number[], t: number[], target: number, names = ["llama-bench", "llmatic"]) => {
  const ratio = percentile(o, 50) / percentile(t, 50);
  console.log(
    `${name.padEnd(6)} ${names[0]} ${fmt(t).padEnd(28)} ${names[1]} ${fmt(o).padEnd(28)} ratio ${ratio.toFixed(3)} (target >= ${target}) ${ratio >= target ? "OK" : "BELOW TARGET"}`,
  );
};
console.log(
  `model ${model}, threads ${threads}, ${rounds} rounds x ${reps} reps each, medians [min..max]${repack ? "" : ", llmatic without weight repacking"}`,
);
line(`pp${N_PROMPT}`, mine.pp, theirs.pp, 0.97);
line(`tg${N_GEN}`, mine.tg, theirs.tg, 0.98);
if (other) {
  // the second library against the native build, the same engine code on both
  const names = [libPath ?? "native", other.name];
  line(`pp${N_PROMPT}`, others.pp, mine.pp, 0.98, names);
  line(`tg${N_GEN}`, others.tg, mine.tg, 0.98, names);
}
