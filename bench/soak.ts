#!/usr/bin/env bun
// bun run bench:soak [--clients 32] [--seconds 60] [--model tiny|bench|PATH] [--parallel 8] [--seed 1]
//
// Many streaming clients for a while, some of which go away mid-stream, against
// one llmatic server. Prints the errors (must be 0), the memory (RSS) of the
// server and its engine processes at the start and at the end, and whether every
// slot is free once the clients are done.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { buildNative } from "../native/build";
import { ensureTinyModel } from "../src/models/synthetic";
import { startServerProcess } from "../test/server-process";
import { benchModel, opt, optString, percentile, say } from "./common";

const clients = opt("--clients", 32);
const seconds = opt("--seconds", 60);
const parallel = opt("--parallel", 8);
const which = optString("--model") ?? "tiny";
let seed = opt("--seed", 1) >>> 0;

function random(): number {
  seed = (seed * 1664525 + 1013904223) >>> 0;
  return seed / 4294967296;
}

await buildNative({ quiet: true });
const model = which === "tiny" ? await ensureTinyModel(say) : which === "bench" ? await benchModel() : which;
const server = await startServerProcess(["-m", model, "-np", String(parallel), "-c", String(parallel * 1024)], {
  cwd: join(import.meta.dir, ".."),
  timeoutMs: 120_000,
});

interface Health {
  models: { id: string; pid?: number; slots_busy: number; slots_idle: number; queued: number }[];
}
const health = async () => (await (await fetch(`${server.url}/health`)).json()) as Health;

function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

async function memory(): Promise<{ server: number; engines: number }> {
  const h = await health();
  const engines = h.models.reduce((a, m) => a + (m.pid ? rssMb(m.pid) : 0), 0);
  return { server: rssMb(server.proc.pid), engines };
}

const modelId = (await health()).models[0]?.id as string;
const errors: string[] = [];
let streams = 0;
let disconnects = 0;
let tokens = 0;
const ttfts: number[] = [];

async function client(c: number, until: number): Promise<void> {
  while (Date.now() < until) {
    const ac = new AbortController();
    // a third of the clients leave after a few chunks
    const leaveAfter = random() < 0.33 ? 1 + Math.floor(random() * 20) : Number.POSITIVE_INFINITY;
    const t0 = performance.now();
    let chunks = 0;
    try {
      const res = await fetch(`${server.url}/v1/chat/completions`, {
        method: "POST",
        signal: ac.signal,
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model: modelId,
          messages: [{ role: "user", content: `Client ${c}, stream ${streams}: tell me something.` }],
          max_tokens: 16 + Math.floor(random() * 112),
          stream: true,
          ignore_eos: true,
        }),
      });
      if (res.status !== 200) {
        errors.push(`HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`);
        continue;
      }
      streams++;
      const dec = new TextDecoder();
      for await (const bytes of res.body as ReadableStream<Uint8Array>) {
        const text = dec.decode(bytes, { stream: true });
        if (text.includes('"error"')) errors.push(`error frame: ${text.slice(0, 200)}`);
        if (chunks === 0) ttfts.push(performance.now() - t0);
        chunks += text.split("data: ").length - 1;
        if (chunks >= leaveAfter) {
          disconnects++;
          ac.abort();
          break;
        }
      }
      tokens += chunks;
    } catch (e) {
      if (!ac.signal.aborted) errors.push(`connection: ${(e as Error).message}`);
    }
  }
}

try {
  // warm up, then measure
  await fetch(`${server.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: modelId, prompt: "warm up", max_tokens: 4 }),
  });
  const start = await memory();
  say(`${clients} clients for ${seconds} s on ${model} (--parallel ${parallel})`);
  const until = Date.now() + seconds * 1000;
  await Promise.all(Array.from({ length: clients }, (_, c) => client(c, until)));
  // every slot must come free once the clients are gone
  let h = await health();
  const deadline = Date.now() + 30_000;
  while ((h.models[0]?.slots_busy ?? 1) > 0 || (h.models[0]?.queued ?? 1) > 0) {
    if (Date.now() > deadline) break;
    await Bun.sleep(50);
    h = await health();
  }
  const end = await memory();
  const m = h.models[0];
  console.log(`soak: ${clients} clients, ${seconds} s, ${which} model, --parallel ${parallel}`);
  console.log(`  streams ${streams}, of which the client left early ${disconnects}; ${tokens} chunks received`);
  console.log(
    `  time to first chunk p50 ${percentile(ttfts, 50).toFixed(0)} ms, p99 ${percentile(ttfts, 99).toFixed(0)} ms`,
  );
  console.log(`  errors: ${errors.length}${errors.length ? ` (first: ${errors[0]})` : ""}`);
  console.log(
    `  RSS server ${start.server.toFixed(1)} -> ${end.server.toFixed(1)} MB, engine ${start.engines.toFixed(1)} -> ${end.engines.toFixed(1)} MB`,
  );
  console.log(`  slots at the end: ${m?.slots_idle} idle, ${m?.slots_busy} busy, ${m?.queued} queued`);
  process.exitCode = errors.length === 0 && m?.slots_busy === 0 ? 0 : 1;
} finally {
  await server.stop();
}
