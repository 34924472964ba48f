#!/usr/bin/env bun
// bun run bench:engine [--threads N] [--reps N]
//
// Prompt processing (512 tokens) and generation (128 tokens, end-of-generation
// ignored) on the bench model (Qwen2-0.5B shape, Q4_K_M), for llmatic's engine
// and for llama-bench built from the same pinned source, same threads, same run.
// Targets: generation >= 0.98x llama-bench, prompt >= 0.97x.
import { buildNative, toolPath } from "../native/build";
import { LlamaEngine } from "../src/engine/client";
import type { GenerateRequest } from "../src/engine/types";
import { DEFAULT_SAMPLING } from "../src/ffi/sampler";
import { ensureBenchModel } from "../src/models/synthetic";

const args = process.argv.slice(2);
const opt = (name: string, def: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const threads = opt("--threads", navigator.hardwareConcurrency || 2);
const reps = opt("--reps", 5);
// --no-repack: batch-invariant numerics (llmatic's --deterministic), to see what it costs
const repack = !args.includes("--no-repack");
const N_PROMPT = 512;
const N_GEN = 128;

const say = (s: string) => process.stderr.write(`[bench] ${s}\n`);
await buildNative({ quiet: true });
const model = await ensureBenchModel(say);

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}
function stddev(xs: number[]): number {
  const m = mean(xs);
  return Math.sqrt(mean(xs.map((x) => (x - m) ** 2)));
}

// ---- llama-bench ---------------------------------------------------------------
say(`llama-bench: pp${N_PROMPT} + tg${N_GEN}, ${threads} threads, ${reps} reps`);
const lb = Bun.spawnSync(
  [
    toolPath("llama-bench"),
    "-m",
    model,
    "-p",
    String(N_PROMPT),
    "-n",
    String(N_GEN),
    "-t",
    String(threads),
    "-r",
    String(reps),
    "-o",
    "json",
  ],
  { stdout: "pipe", stderr: "pipe" },
);
if (lb.exitCode !== 0) throw new Error(`llama-bench failed: ${lb.stderr.toString().slice(-2000)}`);
const lbRows = JSON.parse(lb.stdout.toString()) as {
  n_prompt: number;
  n_gen: number;
  avg_ts: number;
  stddev_ts: number;
}[];
const lbPP = lbRows.find((r) => r.n_prompt === N_PROMPT && r.n_gen === 0);
const lbTG = lbRows.find((r) => r.n_gen === N_GEN && r.n_prompt === 0);
if (!lbPP || !lbTG) throw new Error("llama-bench output lacks the pp/tg rows");

// ---- llmatic engine --------------------------------------------------------------
say(`llmatic engine: same model, ${threads} threads, ${reps} reps (+1 warm-up)`);
const engine = await LlamaEngine.start({
  modelPath: model,
  id: "bench",
  nCtx: 2048,
  nThreads: threads,
  parallel: 1,
  repack,
});

/** Random prompt tokens (llama-bench uses random tokens too); a fresh first token defeats the prompt cache. */
function randomTokens(n: number, salt: number): number[] {
  let s = (0x9e3779b9 ^ (salt * 2654435761)) >>> 0;
  return Array.from({ length: n }, () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s % 150000;
  });
}

async function run(req: GenerateRequest): Promise<{ firstAt: number; endAt: number; sentAt: number; tokens: number }> {
  const sentAt = performance.now();
  let firstAt = 0;
  let tokens = 0;
  for await (const e of engine.generate(req)) {
    if (e.type === "text" && !firstAt) firstAt = performance.now();
    if (e.type === "end") tokens = e.completionTokens;
    if (e.type === "error") throw new Error(e.message);
  }
  return { sentAt, firstAt, endAt: performance.now(), tokens };
}

const sampling = { ...DEFAULT_SAMPLING, seed: 7 };
const pp: number[] = [];
const tg: number[] = [];
for (let r = -1; r < reps; r++) {
  // prompt processing: time from submit to the first sampled token
  const a = await run({
    prompt: { type: "tokens", tokens: randomTokens(N_PROMPT, r + 100) },
    n: 1,
    maxTokens: 1,
    sampling,
    stop: [],
  });
  // generation: tokens after the first, over the time after the first
  const b = await run({
    prompt: { type: "tokens", tokens: randomTokens(1, r + 200) },
    n: 1,
    maxTokens: N_GEN + 1,
    sampling,
    stop: [],
    ignoreEos: true,
  });
  if (r < 0) continue; // warm-up, as llama-bench does
  pp.push(N_PROMPT / ((a.firstAt - a.sentAt) / 1000));
  tg.push((b.tokens - 1) / ((b.endAt - b.firstAt) / 1000));
}
await engine.close();

const fmt = (m: number, s: number) => `${m.toFixed(2)} ± ${s.toFixed(2)} t/s`;
const line = (name: string, ours: number[], ref: { avg_ts: number; stddev_ts: number }, target: number) => {
  const ratio = mean(ours) / ref.avg_ts;
  console.log(
    `${name.padEnd(6)} llama-bench ${fmt(ref.avg_ts, ref.stddev_ts).padEnd(22)} llmatic ${fmt(mean(ours), stddev(ours)).padEnd(22)} ratio ${ratio.toFixed(3)} (target >= ${target}) ${ratio >= target ? "OK" : "BELOW TARGET"}`,
  );
};
console.log(`model ${model}, threads ${threads}, reps ${reps}${repack ? "" : ", llmatic without weight repacking"}`);
line(`pp${N_PROMPT}`, pp, lbPP, 0.97);
line(`tg${N_GEN}`, tg, lbTG, 0.98);
