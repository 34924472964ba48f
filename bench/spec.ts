#!/usr/bin/env bun
// bun run bench:spec [--model bench|bench-1b|PATH] [--threads N] [--reps N] [--tokens N] [--draft-max N]
//                    [--model-draft FILE]
//
// Speculative decoding with n-gram drafts (or --model-draft's): llmatic with --draft-max 8 against
// llmatic with --draft-max 0 (plain decoding) and llama.cpp's llama-server (plain,
// same source), same model, context, threads, one request at a time, in the
// same run. Two workloads:
//  - "repeating": greedy (temperature 0) with end-of-generation ignored. A
//    random-weight model decoded greedily settles into repeating text, where
//    drafts are kept: its acceptance is printed (from /metrics). Target: >= 1.4x
//    plain decoding's tokens/s when acceptance >= 60%.
//  - "sampled": temperature 1.0 among the 8 most likely tokens: text whose
//    pairs of tokens recur (so drafts are made) but whose next token rarely
//    follows as before, where drafts are mostly rejected and speculation must
//    back off. Target >= 0.98x.
// Tokens/s is the generation rate after the first token (streamed, usage from
// the last chunk). Reps alternate between the servers (drafts and plain swap
// places each rep); the ratio to plain decoding is the median of the reps'
// ratios, the one to llama-server that of the medians.
import { join } from "node:path";
import { toolPath } from "../native/build";
import { modelIdOf } from "../src/config";
import {
  type BenchServer,
  benchModel,
  defaultThreads,
  opt,
  optString,
  percentile,
  say,
  startBenchServer,
  stopBenchServers,
} from "./common";

const threads = opt("--threads", defaultThreads());
const reps = opt("--reps", 5);
const tokens = opt("--tokens", 256);
const ROOT = join(import.meta.dir, "..");
const model = await benchModel();
const same = ["-m", model, "-c", "4096", "-t", String(threads), "-np", "1"];
const draftModel = optString("--model-draft");

const WORKLOADS = {
  repeating: { temperature: 0 },
  sampled: { temperature: 1.0, top_k: 8, top_p: 1, min_p: 0 },
} as const;

/** Generation tokens/s after the first token of one streamed request. */
async function run(s: BenchServer, sampling: object, seed: number): Promise<number> {
  const r = await fetch(`${s.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: modelIdOf(model),
      messages: [{ role: "user", content: `Write a long story about the number ${seed}.` }],
      max_tokens: tokens,
      ignore_eos: true,
      stream: true,
      stream_options: { include_usage: true },
      seed,
      ...sampling,
    }),
  });
  const reader = (r.body as ReadableStream<Uint8Array>).getReader();
  const dec = new TextDecoder();
  let first = 0;
  let last = 0;
  let n = 0;
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i = buf.indexOf("\n\n");
    for (; i >= 0; i = buf.indexOf("\n\n")) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
      const j = JSON.parse(line.slice(6)) as {
        choices?: { delta?: { content?: string } }[];
        usage?: { completion_tokens: number };
      };
      if (j.choices?.[0]?.delta?.content) {
        if (!first) first = performance.now();
        last = performance.now();
      }
      if (j.usage) n = j.usage.completion_tokens;
    }
  }
  if (n < tokens) throw new Error(`${s.name}: ${n} of ${tokens} tokens`);
  return (n - 1) / ((last - first) / 1000);
}

async function drafts(s: BenchServer): Promise<{ proposed: number; kept: number }> {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  const num = (name: string) => Number(new RegExp(`^${name}\\{[^}]*\\} (\\S+)`, "m").exec(text)?.[1] ?? 0);
  return { proposed: num("llmatic_draft_tokens_total"), kept: num("llmatic_draft_accepted_total") };
}

const main = join(ROOT, "src", "main.ts");
const servers = [
  await startBenchServer("llmatic spec", [
    process.execPath,
    main,
    ...same,
    "--draft-max",
    String(opt("--draft-max", 8)),
    ...(draftModel ? ["--model-draft", draftModel] : []),
  ]),
  await startBenchServer("llmatic plain", [process.execPath, main, ...same, "--draft-max", "0"]),
  await startBenchServer("llama-server", [toolPath("llama-server"), ...same, "--no-webui"]),
];
const [specS, plainS, theirs] = servers as [BenchServer, BenchServer, BenchServer];
try {
  say(
    `${model}: ${tokens} tokens a request, ${threads} threads, ${reps} reps, one request at a time; drafts from ${draftModel ?? "n-gram lookups"}`,
  );
  for (const s of servers) await run(s, WORKLOADS.repeating, 1);
  for (const [name, sampling] of Object.entries(WORKLOADS)) {
    const got = new Map<string, number[]>(servers.map((s) => [s.name, []]));
    const d0 = await drafts(specS);
    for (let i = 0; i < reps; i++) {
      // drafts and plain swap places every rep: neither always runs after llama-server
      const order = i % 2 ? [plainS, specS, theirs] : [specS, plainS, theirs];
      for (const s of order) got.get(s.name)?.push(await run(s, sampling, 100 + i));
    }
    const d1 = await drafts(specS);
    const proposed = d1.proposed - d0.proposed;
    const kept = d1.kept - d0.kept;
    const acceptance = proposed ? kept / proposed : 0;
    const med = (s: BenchServer) => percentile(got.get(s.name) as number[], 50);
    // each rep's drafts over its plain run (the same prompt and seed, moments apart), then their median:
    // this machine's speed drifts by more than a rarely drafting run differs
    const sp = got.get(specS.name) as number[];
    const pl = got.get(plainS.name) as number[];
    const ratio = percentile(
      sp.map((x, i) => x / (pl[i] as number)),
      50,
    );
    for (const s of servers) {
      say(`${name}: ${s.name} ${(got.get(s.name) as number[]).map((x) => x.toFixed(1)).join(" ")} t/s`);
    }
    const target = name === "repeating" ? (acceptance >= 0.6 ? 1.4 : null) : 0.98;
    console.log(
      `${name}: llmatic with drafts ${med(specS).toFixed(2)} t/s, plain ${med(plainS).toFixed(2)} t/s, llama-server ${med(theirs).toFixed(2)} t/s (medians); drafts ${proposed}, kept ${kept} (acceptance ${(100 * acceptance).toFixed(1)}%): ${ratio.toFixed(3)}x plain (median of the reps' ratios), ${(med(specS) / med(theirs)).toFixed(3)}x llama-server${target === null ? " (acceptance under 60%: no target)" : ` (target >= ${target}) ${ratio >= target ? "OK" : "BELOW TARGET"}`}`,
    );
  }
} finally {
  await stopBenchServers(servers);
}
