#!/usr/bin/env bun
// bun run bench:cache [--model bench|bench-1b|PATH] [--threads N] [--reps N] [--system N]
//
// The shared prompt cache: while one slot is busy generating for a request with
// a long system prompt (--system tokens, default 4000), a second request with
// the same system prompt and another question arrives. Its time to first token
// (a non-streamed request for one token) against a cold prefill of a system
// prompt of the same length that no slot holds, on llmatic and on llama.cpp's
// llama-server built from the same source, same model, context, threads and 2
// slots, in the same run. Every rep uses new system prompts (numbered words),
// so nothing of an earlier rep helps. Targets: shared <= 0.25x cold, and
// llmatic's shared TTFT no later than llama-server's.
import { join } from "node:path";
import { toolPath } from "../native/build";
import { modelIdOf } from "../src/config";
import {
  type BenchServer,
  benchModel,
  defaultThreads,
  opt,
  percentile,
  say,
  startBenchServer,
  stopBenchServers,
} from "./common";

const threads = opt("--threads", defaultThreads());
const reps = opt("--reps", 3);
const systemTokens = opt("--system", 4000);
const ROOT = join(import.meta.dir, "..");
const model = await benchModel();
const ctxPerSlot = systemTokens + 1024;
const same = ["-m", model, "-c", String(2 * ctxPerSlot), "-t", String(threads), "-np", "2"];

/** A system prompt of about `n` tokens that no other prompt of this run shares (its words are numbered). */
let serial = 0;
function systemPrompt(n: number): string {
  const tag = `${Date.now()}-${serial++}`;
  const words: string[] = [`Session ${tag}. You are a support assistant. Follow these rules.`];
  // about 13 tokens per rule (Qwen2's and Llama 3's tokenizers)
  for (let i = 0; i < n / 13; i++) words.push(`Rule ${i}: answer item ${(i * 7919) % 1000} politely.`);
  return words.join("\n");
}

const body = (system: string, question: string, extra: Record<string, unknown>) =>
  JSON.stringify({
    model: modelIdOf(model),
    temperature: 0,
    messages: [
      { role: "system", content: system },
      { role: "user", content: question },
    ],
    ...extra,
  });

/** A one-token request: its wall time is the prefill (what the cache saves) and one token. */
async function ttft(s: BenchServer, system: string, question: string): Promise<{ ms: number; prompt: number }> {
  const t0 = performance.now();
  const r = await fetch(`${s.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: body(system, question, { max_tokens: 1 }),
  });
  const j = (await r.json()) as { usage?: { prompt_tokens: number } };
  if (!r.ok) throw new Error(`${s.name}: ${r.status} ${JSON.stringify(j).slice(0, 300)}`);
  return { ms: performance.now() - t0, prompt: j.usage?.prompt_tokens ?? 0 };
}

/** Starts a long generation on `system` and returns once its first token came (its slot is busy generating). */
async function busy(s: BenchServer, system: string): Promise<AbortController> {
  const ac = new AbortController();
  const r = await fetch(`${s.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: body(system, "Tell me everything about the rules.", { max_tokens: 2000, ignore_eos: true, stream: true }),
    signal: ac.signal,
  });
  const reader = (r.body as ReadableStream<Uint8Array>).getReader();
  const dec = new TextDecoder();
  let seen = "";
  while (!seen.includes('"content":"') || !/"content":"[^"]/.test(seen)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${s.name}: the busy stream ended early`);
    seen += dec.decode(value, { stream: true });
  }
  // keep reading in the background so the server never stalls on a full socket
  void (async () => {
    try {
      while (!(await reader.read()).done) {}
    } catch {}
  })();
  return ac;
}

const servers = [
  await startBenchServer("llmatic", [process.execPath, join(ROOT, "src", "main.ts"), ...same]),
  await startBenchServer("llama-server", [toolPath("llama-server"), ...same, "--no-webui"]),
];
try {
  say(`${model}: system prompts of ~${systemTokens} tokens, 2 slots, ${threads} threads, ${reps} reps`);
  const rows: { name: string; cold: number[]; shared: number[]; prompt: number }[] = [];
  for (const s of servers) {
    // warm-up
    await ttft(s, systemPrompt(200), "hi");
    const cold: number[] = [];
    const shared: number[] = [];
    let prompt = 0;
    for (let i = 0; i < reps; i++) {
      const c = await ttft(s, systemPrompt(systemTokens), "What is rule 12?");
      cold.push(c.ms);
      prompt = c.prompt;
      const system = systemPrompt(systemTokens);
      const ac = await busy(s, system);
      try {
        shared.push((await ttft(s, system, "What is rule 40?")).ms);
      } finally {
        ac.abort();
      }
      await Bun.sleep(300);
    }
    say(
      `${s.name}: cold ${cold.map((x) => x.toFixed(0)).join(" ")} ms; shared ${shared.map((x) => x.toFixed(0)).join(" ")} ms`,
    );
    rows.push({ name: s.name, cold, shared, prompt });
  }
  const [ours, theirs] = rows as [(typeof rows)[0], (typeof rows)[0]];
  for (const r of rows) {
    const ratio = percentile(r.shared, 50) / percentile(r.cold, 50);
    console.log(
      `${r.name}: ${r.prompt} prompt tokens; cold prefill TTFT ${percentile(r.cold, 50).toFixed(0)} ms, same system prompt while a slot generates ${percentile(r.shared, 50).toFixed(0)} ms: ${ratio.toFixed(3)}x cold${r === ours ? ` (target <= 0.25) ${ratio <= 0.25 ? "OK" : "ABOVE TARGET"}` : ""}`,
    );
  }
  const vs = percentile(ours.shared, 50) / percentile(theirs.shared, 50);
  console.log(
    `shared-prefix TTFT llmatic / llama-server: ${vs.toFixed(3)} (target <= 1.0) ${vs <= 1 ? "OK" : "ABOVE TARGET"}`,
  );
} finally {
  await stopBenchServers(servers);
}
