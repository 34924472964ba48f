// Runs `bun src/main.ts` as a real child process on a free loopback port.
import { afterAll, beforeAll } from "bun:test";
import { join } from "node:path";
import OpenAI from "openai";
import { toolPath } from "../native/build";

export interface ServerProcess {
  url: string;
  proc: ReturnType<typeof Bun.spawn>;
  /** everything the server printed so far */
  output: () => string;
  exitCode: () => number | null;
  /** SIGTERM, then wait for a clean exit */
  stop: () => Promise<number>;
}

const ROOT = join(import.meta.dir, "..");

/** llama.cpp's own llama-server (built from the same source) on a free loopback port, once /health answers. */
export async function startLlamaServer(
  args: string[],
  timeoutMs = 60_000,
): Promise<{ url: string; proc: ReturnType<typeof Bun.spawn> }> {
  const free = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
  const port = free.port;
  free.stop(true);
  const proc = Bun.spawn([toolPath("llama-server"), ...args, "--host", "127.0.0.1", "--port", String(port)], {
    stdout: "ignore",
    stderr: "ignore",
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await fetch(`${url}/health`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return { url, proc };
    if (Date.now() > deadline || proc.exitCode !== null) {
      proc.kill();
      throw new Error("llama-server did not start");
    }
    await Bun.sleep(100);
  }
}

export async function startServerProcess(
  args: string[],
  opts: {
    env?: Record<string, string>;
    /** only `env`, not this process's environment */
    cleanEnv?: boolean;
    cmd?: string[];
    cwd?: string;
    timeoutMs?: number;
  } = {},
): Promise<ServerProcess> {
  const cmd = opts.cmd ?? [process.execPath, join(ROOT, "src", "main.ts")];
  const proc = Bun.spawn([...cmd, "--host", "127.0.0.1", "--port", "0", ...args], {
    cwd: opts.cwd ?? ROOT,
    env: opts.cleanEnv
      ? { LLMATIC_LOG_LEVEL: "info", ...opts.env }
      : { ...process.env, LLMATIC_LOG_LEVEL: "info", ...opts.env },
    stdout: "pipe",
    stderr: "pipe",
  });
  let out = "";
  const pump = async (s: ReadableStream<Uint8Array>) => {
    const dec = new TextDecoder();
    for await (const chunk of s) out += dec.decode(chunk, { stream: true });
  };
  void pump(proc.stdout as ReadableStream<Uint8Array>);
  void pump(proc.stderr as ReadableStream<Uint8Array>);
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  let url = "";
  while (!url) {
    const m = /llmatic ready on (http:\/\/[^\s/]+)\/v1/.exec(out);
    if (m) url = m[1] as string;
    else if (proc.exitCode !== null) throw new Error(`server exited with ${proc.exitCode}:\n${out}`);
    else if (Date.now() > deadline) {
      proc.kill();
      throw new Error(`server did not get ready:\n${out}`);
    } else await Bun.sleep(25);
  }
  return {
    url,
    proc,
    output: () => out,
    exitCode: () => proc.exitCode,
    stop: async () => {
      if (proc.exitCode === null) proc.kill("SIGTERM");
      return await proc.exited;
    },
  };
}

/** The official client, pointed at a server (no retries: a test wants the first answer). */
export function clientFor(s: ServerProcess, apiKey = "x"): OpenAI {
  return new OpenAI({ baseURL: `${s.url}/v1`, apiKey, maxRetries: 0 });
}

/** A server process for the whole test file: started before the tests, stopped after them. */
export function useServer(args: string[], ready: (server: ServerProcess, client: OpenAI) => void, apiKey = "x"): void {
  let server: ServerProcess | null = null;
  beforeAll(async () => {
    server = await startServerProcess(args);
    ready(server, clientFor(server, apiKey));
  });
  afterAll(async () => {
    await server?.stop();
  });
}

export interface Health {
  status: string;
  models: { id: string; state: string; slots_busy: number; slots_idle: number; queued: number }[];
}

export async function health(s: ServerProcess): Promise<Health> {
  return (await (await fetch(`${s.url}/health`)).json()) as Health;
}

/** Waits until every slot of the first model is idle and nothing is queued. */
export async function waitIdle(s: ServerProcess, timeoutMs = 10_000): Promise<Health> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const h = await health(s);
    if (h.models[0]?.slots_busy === 0 && h.models[0]?.queued === 0) return h;
    if (Date.now() > deadline) throw new Error(`slots still busy: ${JSON.stringify(h)}`);
    await Bun.sleep(20);
  }
}
