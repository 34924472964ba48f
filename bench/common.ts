// What every benchmark shares: its options, the native build and bench models,
// and a little statistics.
import { existsSync } from "node:fs";
import { buildNative } from "../native/build";
import { ensureBenchModel } from "../src/models/synthetic";

const args = process.argv.slice(2);

/** A numeric --flag value, or the default. */
export function opt(name: string, def: number): number {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
}

/** A string --flag value, or undefined. */
export function optString(name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

export function flag(name: string): boolean {
  return args.includes(name);
}

export const say = (s: string) => process.stderr.write(`[bench] ${s}\n`);

/**
 * Builds what is missing and returns the model `--model` names: "bench" (the
 * default: Qwen2-0.5B shape, Q4_K_M), "bench-1b" (Llama-3.2-1B shape, Q4_K_M)
 * or a path to a GGUF file. Several, comma-separated (`--model bench,bench-1b`):
 * the benchmark runs once per model, one after the other, and this process
 * exits with the last failure.
 */
export async function benchModel(): Promise<string> {
  await buildNative({ quiet: true });
  const which = optString("--model") ?? "bench";
  if (which.includes(",")) {
    const at = args.indexOf("--model");
    let code = 0;
    for (const m of which.split(",").filter(Boolean)) {
      say(`--- ${m}`);
      const rest = [...args.slice(0, at), "--model", m, ...args.slice(at + 2)];
      const p = Bun.spawnSync([process.execPath, process.argv[1] as string, ...rest], {
        stdio: ["inherit", "inherit", "inherit"],
      });
      if (p.exitCode !== 0) code = p.exitCode ?? 1;
    }
    process.exit(code);
  }
  if (which === "bench" || which === "bench-1b") return ensureBenchModel(say, which);
  if (!existsSync(which)) throw new Error(`--model ${which}: use bench, bench-1b or a .gguf path`);
  return which;
}

export const defaultThreads = () => navigator.hardwareConcurrency || 2;

export function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

export function stddev(xs: number[]): number {
  const m = mean(xs);
  return Math.sqrt(mean(xs.map((x) => (x - m) ** 2)));
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number;
}

/** A free loopback port (for a server a benchmark starts). */
export async function freePort(): Promise<number> {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = s.port;
  s.stop(true);
  return p;
}

export interface BenchServer {
  name: string;
  url: string;
  proc: ReturnType<typeof Bun.spawn>;
}

/** Starts `cmd --port P --host 127.0.0.1` (llmatic or llama-server) and waits until its /health answers 200. */
export async function startBenchServer(name: string, cmd: string[]): Promise<BenchServer> {
  const port = await freePort();
  const proc = Bun.spawn([...cmd, "--port", String(port), "--host", "127.0.0.1"], {
    stdout: "ignore",
    stderr: "ignore",
    env: { ...process.env, LLMATIC_LOG_LEVEL: "warn" },
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (proc.exitCode !== null) throw new Error(`${name} exited with ${proc.exitCode}`);
    if ((await fetch(`${url}/health`).catch(() => null))?.status === 200) break;
    if (i > 600) throw new Error(`${name} did not become healthy`);
    await Bun.sleep(100);
  }
  return { name, url, proc };
}

/** Stops servers a benchmark started and waits for them. */
export async function stopBenchServers(servers: BenchServer[]): Promise<void> {
  for (const s of servers) s.proc.kill();
  await Promise.all(servers.map((s) => s.proc.exited));
}
