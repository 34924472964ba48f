#!/usr/bin/env bun
// bun run bench:http [--threads N] [--reps N] [--ctx N]
//
// Starts llmatic and llama.cpp's llama-server (built from the same pinned
// source) on loopback with the same bench model, context and threads, and sends
// the same streaming chat request (128 tokens, end-of-generation ignored) to
// each in turn. Prints tokens/s, time to first token and total time for both,
// and the ratios. Targets: llmatic >= 0.97x llama-server's tokens/s, total
// time <= 1.03x.
import { join } from "node:path";
import { buildNative, toolPath } from "../native/build";
import { ensureBenchModel } from "../src/models/synthetic";

const args = process.argv.slice(2);
const opt = (name: string, def: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const threads = opt("--threads", navigator.hardwareConcurrency || 2);
const reps = opt("--reps", 5);
const ctx = opt("--ctx", 4096);
const N_GEN = 128;
const ROOT = join(import.meta.dir, "..");

const say = (s: string) => process.stderr.write(`[bench] ${s}\n`);
await buildNative({ quiet: true });
const model = await ensureBenchModel(say);

export interface Server {
  name: string;
  url: string;
  proc: ReturnType<typeof Bun.spawn>;
  modelId: string;
}

async function freePort(): Promise<number> {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = s.port;
  s.stop(true);
  return p;
}

async function waitHealthy(url: string, proc: ReturnType<typeof Bun.spawn>, name: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`${name} exited with ${proc.exitCode}`);
    try {
      const r = await fetch(`${url}/health`);
      if (r.status === 200) return;
    } catch {}
    await Bun.sleep(100);
  }
  throw new Error(`${name} did not become healthy`);
}

export async function startServers(parallel: number): Promise<Server[]> {
  const common = { stdout: "ignore", stderr: "ignore" } as const;
  const pOurs = await freePort();
  const ours = Bun.spawn(
    [
      process.execPath,
      join(ROOT, "src", "main.ts"),
      "-m",
      model,
      "-c",
      String(ctx),
      "-t",
      String(threads),
      "-np",
      String(parallel),
      "--port",
      String(pOurs),
    ],
    { ...common, env: { ...process.env, LLMATIC_LOG_LEVEL: "warn" } },
  );
  const pTheirs = await freePort();
  const theirs = Bun.spawn(
    [
      toolPath("llama-server"),
      "-m",
      model,
      "-c",
      String(ctx),
      "-t",
      String(threads),
      "-np",
      String(parallel),
      "--port",
      String(pTheirs),
      "--host",
      "127.0.0.1",
      "--no-webui",
    ],
    common,
  );
  const servers: Server[] = [
    { name: "llmatic", url: `http://127.0.0.1:${pOurs}`, proc: ours, modelId: "qwen2-0.5b-shape-q4_k_m" },
    { name: "llama-server", url: `http://127.0.0.1:${pTheirs}`, proc: theirs, modelId: "qwen2-0.5b-shape-q4_k_m" },
  ];
  await Promise.all(servers.map((s) => waitHealthy(s.url, s.proc, s.name)));
  return servers;
}

export interface Measured {
  ttft: number;
  total: number;
  tokens: number;
  /** generation rate after the first token */
  tps: number;
}

/** One streaming chat request, timed from the client side. */
export async function streamChat(
  s: Server,
  messages: { role: string; content: string }[],
  maxTokens: number,
): Promise<Measured> {
  const t0 = performance.now();
  const res = await fetch(`${s.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer bench" },
    body: JSON.stringify({
      model: s.modelId,
      messages,
      max_tokens: maxTokens,
      stream: true,
      stream_options: { include_usage: true },
      ignore_eos: true,
      seed: 1234,
      temperature: 0.8,
    }),
  });
  if (!res.ok || !res.body) throw new Error(`${s.name}: HTTP ${res.status} ${await res.text()}`);
  let first = 0;
  let last = 0;
  let chunks = 0;
  let usageTokens = 0;
  let buf = "";
  const dec = new TextDecoder();
  for await (const bytes of res.body) {
    buf += dec.decode(bytes, { stream: true });
    let i = buf.indexOf("\n\n");
    while (i >= 0) {
      const frame = buf.slice(0, i);
      buf = buf.slice(i + 2);
      i = buf.indexOf("\n\n");
      const data = frame.replace(/^data: /, "");
      if (data === "[DONE]") continue;
      const c = JSON.parse(data);
      if (c.usage?.completion_tokens) usageTokens = c.usage.completion_tokens;
      if (c.choices?.[0]?.delta?.content) {
        const now = performance.now();
        if (!first) first = now;
        last = now;
        chunks++;
      }
    }
  }
  const total = performance.now() - t0;
  const tokens = usageTokens || chunks;
  return { ttft: first - t0, total, tokens, tps: (tokens - 1) / ((last - first) / 1000) };
}

export function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

export function stopServers(servers: Server[]): Promise<unknown> {
  for (const s of servers) s.proc.kill("SIGTERM");
  return Promise.all(servers.map((s) => s.proc.exited));
}

if (import.meta.main) {
  say(`starting llmatic and llama-server: ${model}, ctx ${ctx}, ${threads} threads, 1 slot`);
  const servers = await startServers(1);
  try {
    const results = new Map<string, Measured[]>(servers.map((s) => [s.name, []]));
    for (let r = -1; r < reps; r++) {
      for (const s of servers) {
        // a different question each round, the same for both servers
        const m = await streamChat(
          s,
          [{ role: "user", content: `Question ${r + 2}: write a long story about the number ${r + 2}.` }],
          N_GEN,
        );
        if (m.tokens !== N_GEN) throw new Error(`${s.name} produced ${m.tokens} tokens, expected ${N_GEN}`);
        if (r >= 0) results.get(s.name)?.push(m);
      }
    }
    const row = (name: string) => {
      const ms = results.get(name) as Measured[];
      return {
        tps: mean(ms.map((m) => m.tps)),
        ttft: mean(ms.map((m) => m.ttft)),
        total: mean(ms.map((m) => m.total)),
      };
    };
    const a = row("llmatic");
    const b = row("llama-server");
    console.log(`streaming chat, ${N_GEN} tokens, ${reps} reps, ${threads} threads, ctx ${ctx}, 1 slot`);
    for (const [name, r] of [
      ["llama-server", b],
      ["llmatic", a],
    ] as const) {
      console.log(
        `${name.padEnd(13)} ${r.tps.toFixed(2).padStart(7)} t/s   ttft ${r.ttft.toFixed(1).padStart(7)} ms   total ${r.total.toFixed(1).padStart(8)} ms`,
      );
    }
    const tpsRatio = a.tps / b.tps;
    const totalRatio = a.total / b.total;
    console.log(
      `ratio         tokens/s ${tpsRatio.toFixed(3)} (target >= 0.97) ${tpsRatio >= 0.97 ? "OK" : "BELOW TARGET"}   ttft ${(a.ttft / b.ttft).toFixed(3)}   total ${totalRatio.toFixed(3)} (target <= 1.03) ${totalRatio <= 1.03 ? "OK" : "ABOVE TARGET"}`,
    );
  } finally {
    await stopServers(servers);
  }
}
