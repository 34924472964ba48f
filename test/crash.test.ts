// Faults are contained: each model's engine is its own process. Killing one
// (SIGKILL as the OOM killer does, SIGSEGV as a native crash does) during
// streams fails that model's requests with a retryable error; the server keeps
// answering, the other model keeps streaming, and the killed one serves again
// after its restart.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TINY_MODEL_PATH } from "../src/models/synthetic";
import { type ServerProcess, startServerProcess } from "./server-process";

let dir: string;
let server: ServerProcess;

interface ModelHealth {
  id: string;
  state: string;
  pid?: number;
  restarts: number;
  last_exit?: string;
}

async function models(): Promise<Record<string, ModelHealth>> {
  const h = (await (await fetch(`${server.url}/health`)).json()) as { models: ModelHealth[] };
  return Object.fromEntries(h.models.map((m) => [m.id, m]));
}

async function until<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}

/** A long stream on `model`: its data frames as they come, and how it ended. */
function stream(model: string) {
  const frames: any[] = [];
  let ended = false;
  const ac = new AbortController();
  const done = (async () => {
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      signal: ac.signal,
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model,
        messages: [{ role: "user", content: "a long story" }],
        stream: true,
        max_tokens: 100_000,
        ignore_eos: true,
      }),
    });
    expect(res.status).toBe(200);
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of res.body as ReadableStream<Uint8Array>) {
      buf += dec.decode(chunk, { stream: true });
      let i = buf.indexOf("\n\n");
      while (i >= 0) {
        const f = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (f.startsWith("data: ")) frames.push(f.slice(6) === "[DONE]" ? "[DONE]" : JSON.parse(f.slice(6)));
        i = buf.indexOf("\n\n");
      }
    }
    ended = true;
  })().catch((e) => {
    if (!ac.signal.aborted) throw e;
  });
  return { frames, done, ended: () => ended, count: () => frames.length, stop: () => ac.abort() };
}

const ask = async (model: string) =>
  fetch(`${server.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }], max_tokens: 3 }),
  });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "llmatic-crash-"));
  for (const name of ["alpha", "beta"]) copyFileSync(TINY_MODEL_PATH, join(dir, `${name}.gguf`));
  server = await startServerProcess(["-m", dir, "--parallel", "2", "--ctx-size", "100000"]);
});

afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("a model's engine dies", () => {
  for (const signal of ["SIGKILL", "SIGSEGV"] as const) {
    test(`${signal}: its streams get a retryable error, the other model streams on, it serves again`, async () => {
      const before = await models();
      const pid = before.alpha?.pid as number;
      expect(pid).toBeGreaterThan(0);
      expect(before.beta?.pid).not.toBe(pid);
      const a = stream("alpha");
      const b = stream("beta");
      await until("both streams flowing", async () => a.count() > 5 && b.count() > 5);

      process.kill(pid, signal);
      await a.done;
      const last = a.frames.at(-1);
      expect(last.error).toMatchObject({ type: "server_error", code: "engine_crashed" });
      expect(last.error.message).toContain(`killed by ${signal}`);

      // the server answers, and says what happened
      const h = await models();
      expect(h.alpha?.restarts).toBe((before.alpha?.restarts ?? 0) + 1);
      expect(h.alpha?.last_exit).toBe(`killed by ${signal}`);
      // a request while it restarts is a retryable 503 (or, once it is back, served)
      const during = await ask("alpha");
      if (during.status !== 200) {
        expect(during.status).toBe(503);
        expect(during.headers.get("x-should-retry")).toBe("true");
        expect(Number(during.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      }
      // beta streamed on through all of it
      const mid = b.count();
      await until("beta to keep streaming", async () => b.count() > mid + 5);
      expect(b.ended()).toBe(false);

      // alpha comes back by itself, in a new process, and serves
      const back = await until("alpha to be ready again", async () => {
        const m = (await models()).alpha;
        return m?.state === "ready" && m.pid !== pid ? m : undefined;
      });
      expect(back.pid).not.toBe(pid);
      const r = await ask("alpha");
      expect(r.status).toBe(200);
      expect(((await r.json()) as { choices: { finish_reason: string }[] }).choices[0]?.finish_reason).toBe("length");
      expect(server.exitCode()).toBeNull();
      expect((await models()).beta?.pid).toBe(before.beta?.pid as number);

      // metrics count the restart
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      expect(metrics).toContain(`llmatic_engine_restarts_total{model="alpha"} ${back.restarts}`);
      b.stop();
      await b.done;
    }, 60_000);
  }
});
