#!/usr/bin/env bun
// bun run bench:finetune [--steps-bench 2] [--threads N]
//
// Fine-tunes on this machine: the tiny model (16 examples, 3 epochs of one
// example per step) and the bench model (Qwen2-0.5B shape: converted to f32,
// a few steps), each on one llmatic server. Prints tokens/s and seconds per
// optimizer step, the runner's peak RSS, and the tokens/s of a stream on
// another model while the bench model trains, against the same stream alone.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI, { toFile } from "openai";
import { buildNative } from "../native/build";
import { ensureTinyModel } from "../src/models/synthetic";
import { startServerProcess } from "../test/server-process";
import { benchModel, defaultThreads, mean, opt, say } from "./common";
import { streamChat } from "./http";

const threads = opt("--threads", defaultThreads());
const benchSteps = opt("--steps-bench", 2);
await buildNative({ quiet: true });
const tiny = await ensureTinyModel(say);
const bench = await benchModel();
const dataDir = mkdtempSync(join(tmpdir(), "llmatic-bench-ft-"));
const server = await startServerProcess(
  ["-m", tiny, "-m", bench, "-np", "2", "-c", "4096", "-t", String(threads), "--data-dir", dataDir],
  { cwd: join(import.meta.dir, ".."), timeoutMs: 180_000 },
);
const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "x", maxRetries: 0 });
const ids = (await client.models.list()).data.map((m) => m.id);
const tinyId = ids.find((i) => i.includes("tiny")) as string;
const benchId = ids.find((i) => i !== tinyId) as string;

const PROMPTS = Array.from({ length: 16 }, (_, i) => `Example ${i}: the colour of the sky is`);

function peakRss(): number {
  let peak = 0;
  const pids = Bun.spawnSync(["pgrep", "-f", "finetune/child.ts"]).stdout.toString().trim().split("\n").filter(Boolean);
  for (const pid of pids) {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      if (m) peak = Math.max(peak, Number(m[1]) / 1024);
    } catch {
      // gone
    }
  }
  return peak;
}

async function fineTune(model: string, examples: number, epochs: number, during?: () => Promise<number>) {
  const lines = PROMPTS.slice(0, examples)
    .map((p) => JSON.stringify({ prompt: p, completion: " blue" }))
    .join("\n");
  const f = await client.files.create({ file: await toFile(Buffer.from(lines), "bench.jsonl"), purpose: "fine-tune" });
  const res = await fetch(`${server.url}/v1/fine-tunes`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ training_file: f.id, model, n_epochs: epochs, batch_size: 1, learning_rate_multiplier: 1 }),
  });
  let job = (await res.json()) as {
    id: string;
    status: string;
    events: { message: string; created_at: number }[];
    result_files: { id: string }[];
  };
  let peak = 0;
  let startedAt = 0;
  let interactive: number | null = null;
  for (;;) {
    job = (await (await fetch(`${server.url}/v1/fine-tunes/${job.id}`)).json()) as typeof job;
    peak = Math.max(peak, peakRss());
    const training = job.events.some((e) => e.message.startsWith("Training "));
    if (training && !startedAt) startedAt = performance.now();
    // the stream beside it: once the first optimizer step is under way
    if (
      training &&
      during &&
      interactive === null &&
      job.status === "running" &&
      performance.now() - startedAt > 5000
    ) {
      interactive = await during();
    }
    if (["succeeded", "failed", "cancelled"].includes(job.status)) break;
    await Bun.sleep(200);
  }
  const seconds = (performance.now() - startedAt) / 1000;
  if (job.status !== "succeeded") throw new Error(`the ${model} job ${job.status}: ${job.events.at(-1)?.message}`);
  const csv = (await (await client.files.content(job.result_files[0]?.id as string)).text())
    .trim()
    .split("\n")
    .slice(1);
  const steps = csv.length;
  const tokens = Number(csv.at(-1)?.split(",")[1] ?? 0);
  const window = Number(/windows of (\d+) tokens/.exec(job.events.map((e) => e.message).join("\n"))?.[1] ?? 0);
  return { steps, tokens, seconds, peak, interactive, window };
}

const once = async () =>
  (
    await streamChat(
      { name: "llmatic", url: server.url, proc: server.proc, modelId: tinyId },
      [{ role: "user", content: "Tell me a story." }],
      256,
    )
  ).tps;
const stream = async () => mean([await once(), await once(), await once()]);

try {
  say(`fine-tuning ${tinyId}: 16 examples, 3 epochs, one example per step`);
  const t = await fineTune(tinyId, 16, 3);
  await once();
  const solo = await stream();
  say(`fine-tuning ${benchId}: ${benchSteps} steps (converted to f32 first), a stream on ${tinyId} beside it`);
  const b = await fineTune(benchId, benchSteps, 1, stream);
  console.log(`fine-tunes, ${threads} threads (the runner runs at nice 19)`);
  for (const [name, r] of [
    [tinyId, t],
    [benchId, b],
  ] as const) {
    console.log(
      `  ${name.padEnd(28)} ${r.steps} steps of ${r.window}-token windows in ${r.seconds.toFixed(1)} s (conversion and saving included): ${(r.seconds / r.steps).toFixed(2)} s/step, ${((r.steps * r.window) / r.seconds).toFixed(1)} window tokens/s (${(r.tokens / r.seconds).toFixed(1)} example tokens/s); runner peak RSS ${r.peak.toFixed(0)} MB`,
    );
  }
  const during = b.interactive ?? Number.NaN;
  console.log(
    `  a stream on ${tinyId}: ${solo.toFixed(1)} t/s alone, ${during.toFixed(1)} t/s while ${benchId} trains (${(during / solo).toFixed(3)})`,
  );
} finally {
  await server.stop();
  rmSync(dataDir, { recursive: true, force: true });
}
