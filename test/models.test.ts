// Several models in one server: all listed, loaded on first use, the least
// recently used idle one unloaded under --max-loaded, and running streams on
// other models never disturbed.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type OpenAI from "openai";
import { TINY_MODEL_PATH } from "../src/models/synthetic";
import { clientFor, type ServerProcess, startServerProcess } from "./server-process";

let dir: string;
let server: ServerProcess;
let client: OpenAI;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "llmatic-models-"));
  for (const name of ["alpha", "beta", "gamma"]) copyFileSync(TINY_MODEL_PATH, join(dir, `${name}.gguf`));
  server = await startServerProcess(["-m", dir, "--max-loaded", "2", "--parallel", "2"]);
  client = clientFor(server);
});

afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function states(): Promise<Record<string, string>> {
  const h = (await (await fetch(`${server.url}/health`)).json()) as { models: { id: string; state: string }[] };
  return Object.fromEntries(h.models.map((m) => [m.id, m.state]));
}

const ask = (model: string, max = 3) =>
  client.chat.completions.create({ model, messages: [{ role: "user", content: "hi" }], max_tokens: max });

/** A stream that keeps its model busy until `stop` is called; resolves with what it received. */
function longStream(model: string) {
  const ac = new AbortController();
  let chunks = 0;
  let finish: string | null = null;
  let error: unknown = null;
  const started = (async () => {
    const s = await client.chat.completions.create(
      {
        model,
        messages: [{ role: "user", content: "a long story" }],
        max_tokens: 100000,
        ignore_eos: true,
        stream: true,
      } as never,
      { signal: ac.signal },
    );
    return s as unknown as AsyncIterable<OpenAI.ChatCompletionChunk>;
  })();
  const done = started.then(async (s) => {
    try {
      for await (const c of s) {
        chunks++;
        finish = c.choices[0]?.finish_reason ?? finish;
      }
    } catch (e) {
      if ((e as Error).name !== "AbortError" && !String(e).includes("abort")) error = e;
    }
  });
  return { stop: () => ac.abort(), done, chunks: () => chunks, error: () => error, finish: () => finish };
}

test("all models are listed; the first two are loaded at start", async () => {
  expect((await client.models.list()).data.map((m) => m.id)).toEqual(["alpha", "beta", "gamma"]);
  expect(await states()).toEqual({ alpha: "ready", beta: "ready", gamma: "unloaded" });
});

test("a request for an unloaded model loads it and unloads the least recently used idle one", async () => {
  await ask("beta"); // alpha is now the least recently used
  const r = await ask("gamma");
  expect(r.model).toBe("gamma");
  expect(await states()).toEqual({ alpha: "unloaded", beta: "ready", gamma: "ready" });
});

test("concurrent first requests share one load", async () => {
  const rs = await Promise.all([ask("alpha"), ask("alpha"), ask("alpha")]);
  expect(rs.every((r) => r.choices[0]?.finish_reason === "length")).toBe(true);
  const s = await states();
  expect(s.alpha).toBe("ready");
  expect(Object.values(s).filter((x) => x === "ready")).toHaveLength(2);
});

test("a model with a running stream is never unloaded, and the stream is not disturbed", async () => {
  // loaded now: alpha and gamma (beta was least recently used when alpha came in)
  const s1 = longStream("alpha");
  while (s1.chunks() < 5) await Bun.sleep(10);
  // beta must come in: gamma is idle, alpha is busy -> gamma goes
  await ask("beta");
  expect(await states()).toEqual({ alpha: "ready", beta: "ready", gamma: "unloaded" });
  const before = s1.chunks();
  await Bun.sleep(200);
  expect(s1.chunks()).toBeGreaterThan(before);

  // both loaded models busy: a request for gamma waits for one to become idle
  const s2 = longStream("beta");
  while (s2.chunks() < 5) await Bun.sleep(10);
  let gammaDone = false;
  const gamma = ask("gamma").then((r) => {
    gammaDone = true;
    return r;
  });
  await Bun.sleep(500);
  expect(gammaDone).toBe(false);
  expect((await states()).gamma).toBe("unloaded");
  s2.stop();
  await s2.done;
  const r = await gamma;
  expect(r.model).toBe("gamma");
  expect(await states()).toEqual({ alpha: "ready", beta: "unloaded", gamma: "ready" });

  // alpha streamed through all of it
  const mid = s1.chunks();
  await Bun.sleep(100);
  expect(s1.chunks()).toBeGreaterThan(mid);
  s1.stop();
  await s1.done;
  expect(s1.error()).toBeNull();
  expect(server.exitCode()).toBeNull();
}, 60_000);
