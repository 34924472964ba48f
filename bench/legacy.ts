#!/usr/bin/env bun
// bun run bench:legacy [--model bench|tiny|PATH] [--docs 200] [--lines 1000] [--threads N]
//
// On one llmatic server: search over 200 documents of about 100 tokens
// (documents/s), a 1000-line batch of chat completions (lines/s), and an
// interactive stream's tokens/s alone and while the batch runs (target: at
// least 80% of its solo speed).
import { join } from "node:path";
import OpenAI, { toFile } from "openai";
import { buildNative } from "../native/build";
import { ensureTinyModel } from "../src/models/synthetic";
import { startServerProcess } from "../test/server-process";
import { benchModel, defaultThreads, mean, opt, optString, say } from "./common";
import { streamChat } from "./http";

const which = optString("--model") ?? "bench";
const nDocs = opt("--docs", 200);
const nLines = opt("--lines", 1000);
const threads = opt("--threads", defaultThreads());
await buildNative({ quiet: true });
const model = which === "tiny" ? await ensureTinyModel(say) : which === "bench" ? await benchModel() : which;
const dataDir = join(import.meta.dir, "..", "models", ".bench-data");
const server = await startServerProcess(
  ["-m", model, "-np", "4", "-c", "8192", "-t", String(threads), "--data-dir", dataDir],
  { cwd: join(import.meta.dir, ".."), timeoutMs: 120_000 },
);
const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "x", maxRetries: 0 });
const modelId = (await client.models.list()).data[0]?.id as string;

/** ~100 tokens of text that reads like English, different per document. */
function doc(i: number): string {
  const words = [
    "the",
    "ship",
    "river",
    "city",
    "market",
    "winter",
    "engine",
    "garden",
    "teacher",
    "storm",
    "bridge",
    "letter",
    "music",
    "forest",
    "harbor",
    "stone",
    "window",
    "journey",
    "light",
    "village",
  ];
  let s = (i * 2654435761) >>> 0;
  const out: string[] = [];
  for (let k = 0; k < 75; k++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    out.push(words[s % words.length] as string);
  }
  return `${out.join(" ")}.`;
}

const server$ = { name: "llmatic", url: server.url, proc: server.proc, modelId };
const ask = () => streamChat(server$, [{ role: "user", content: "Tell me a long story about the sea." }], 128);

try {
  say(`search over ${nDocs} documents on ${model}`);
  const documents = Array.from({ length: nDocs }, (_, i) => doc(i));
  const searchOnce = async (docs: string[]) => {
    const t0 = performance.now();
    const res = await fetch(`${server.url}/v1/engines/${modelId}/search`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query: "a storm over the harbor", documents: docs }),
    });
    if (!res.ok) throw new Error(`search: HTTP ${res.status} ${await res.text()}`);
    return (performance.now() - t0) / 1000;
  };
  await searchOnce(documents.slice(0, 8)); // warm-up
  const searchSec = await searchOnce(documents);

  say("interactive stream alone");
  await ask();
  const solo = mean([await ask(), await ask()].map((m) => m.tps));

  say(`a ${nLines}-line batch`);
  const lines = Array.from({ length: nLines }, (_, i) =>
    JSON.stringify({
      custom_id: `line-${i}`,
      method: "POST",
      url: "/v1/chat/completions",
      body: {
        model: modelId,
        messages: [{ role: "user", content: `Question ${i}: say something.` }],
        max_tokens: 8,
        ignore_eos: true,
      },
    }),
  ).join("\n");
  const file = await client.files.create({ file: await toFile(Buffer.from(lines), "bench.jsonl"), purpose: "batch" });
  const t0 = performance.now();
  let b = await client.batches.create({
    input_file_id: file.id,
    endpoint: "/v1/chat/completions",
    completion_window: "24h",
  });
  // the interactive stream, twice, while the batch runs
  while ((b.request_counts?.completed ?? 0) < 8) {
    await Bun.sleep(200);
    b = await client.batches.retrieve(b.id);
  }
  const during = mean([await ask(), await ask()].map((m) => m.tps));
  while (!["completed", "failed", "cancelled"].includes(b.status)) {
    await Bun.sleep(500);
    b = await client.batches.retrieve(b.id);
  }
  const batchSec = (performance.now() - t0) / 1000;
  if (b.status !== "completed") throw new Error(`the batch ended ${b.status}`);

  const ratio = during / solo;
  console.log(`legacy endpoints on ${which} (${model}), ${threads} threads, --parallel 4`);
  console.log(
    `  search: ${nDocs} documents in ${searchSec.toFixed(2)} s: ${(nDocs / searchSec).toFixed(1)} documents/s`,
  );
  console.log(
    `  batch: ${nLines} lines (8 tokens each) in ${batchSec.toFixed(1)} s: ${(nLines / batchSec).toFixed(2)} lines/s; ${b.request_counts?.completed} completed, ${b.request_counts?.failed} failed`,
  );
  console.log(
    `  interactive stream: ${solo.toFixed(2)} t/s alone, ${during.toFixed(2)} t/s during the batch: ${ratio.toFixed(3)} (target >= 0.8) ${ratio >= 0.8 ? "OK" : "BELOW TARGET"}`,
  );
} finally {
  await server.stop();
}
