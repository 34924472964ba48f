// Many clients at once, against real server processes with the tiny model:
// slots, queueing, cancellation, prompt-cache reuse, n > 1, health and metrics.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type OpenAI from "openai";
import { TINY_MODEL_PATH } from "../src/models/synthetic";
import { health, type ServerProcess, startServerProcess, useServer, waitIdle } from "./server-process";

const MODEL = "llmatic-tiny";
let server: ServerProcess;
let client: OpenAI;

useServer(["-m", TINY_MODEL_PATH, "--parallel", "4", "--ctx-size", "8192"], (s, c) => {
  server = s;
  client = c;
});

async function streamText(
  req: Omit<OpenAI.ChatCompletionCreateParamsStreaming, "stream" | "model">,
  signal?: AbortSignal,
) {
  const stream = await client.chat.completions.create({ ...req, model: MODEL, stream: true }, { signal });
  let text = "";
  let finish: string | null = null;
  for await (const c of stream) {
    text += c.choices[0]?.delta.content ?? "";
    finish = c.choices[0]?.finish_reason ?? finish;
  }
  return { text, finish };
}

describe("continuous batching", () => {
  test("8 concurrent streams over 4 slots all finish, each exactly as when run alone", async () => {
    const req = (i: number) => ({
      messages: [{ role: "user" as const, content: `Stream ${i}: tell me something.` }],
      max_tokens: 40,
      seed: 1000 + i,
      ignore_eos: true,
    });
    const alone: string[] = [];
    for (let i = 0; i < 8; i++) alone.push((await streamText(req(i))).text);
    const together = await Promise.all(Array.from({ length: 8 }, (_, i) => streamText(req(i))));
    for (let i = 0; i < 8; i++) {
      expect(together[i]?.finish).toBe("length");
      expect(together[i]?.text).toBe(alone[i] as string);
    }
    expect(new Set(alone).size).toBe(8);
    await waitIdle(server);
  }, 60_000);

  test("n=3 returns three choices decoded as parallel sequences", async () => {
    const r = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "three" }],
      n: 3,
      max_tokens: 12,
      seed: 5,
    });
    expect(r.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(r.usage?.completion_tokens).toBe(36);
    expect(new Set(r.choices.map((c) => c.message.content)).size).toBe(3);
    // streamed too: every choice gets its role, its text and its own finish_reason
    const stream = await client.completions.create({ model: MODEL, prompt: "x", n: 3, max_tokens: 5, stream: true });
    const finishes = new Map<number, string>();
    for await (const c of stream)
      for (const ch of c.choices) if (ch.finish_reason) finishes.set(ch.index, ch.finish_reason);
    expect([...finishes.keys()].sort()).toEqual([0, 1, 2]);
  });

  test("the second turn of a chat reuses the first turn's cache", async () => {
    const system = `You are a careful assistant. ${"Always answer in full sentences. ".repeat(20)}`;
    const first = [
      { role: "system" as const, content: system },
      { role: "user" as const, content: "Hello!" },
    ];
    const t1 = await client.chat.completions.create({ model: MODEL, messages: first, max_tokens: 16, seed: 1 });
    const t2 = await client.chat.completions.create({
      model: MODEL,
      messages: [
        ...first,
        { role: "assistant", content: t1.choices[0]?.message.content ?? "" },
        { role: "user", content: "And then?" },
      ],
      max_tokens: 4,
      seed: 1,
    });
    const cached = t2.usage?.prompt_tokens_details?.cached_tokens ?? 0;
    expect(cached).toBeGreaterThan(t1.usage?.prompt_tokens ? t1.usage.prompt_tokens - 5 : 100);
    expect(cached).toBeLessThan(t2.usage?.prompt_tokens ?? 0);
  });

  test("50 aborted streams in a row leave every slot free, and the next request is served", async () => {
    for (let i = 0; i < 50; i++) {
      const ac = new AbortController();
      const res = await fetch(`${server.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model: MODEL,
          messages: [{ role: "user", content: `abort ${i}` }],
          stream: true,
          max_tokens: 100000,
          ignore_eos: true,
        }),
        signal: ac.signal,
      });
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      await reader.read(); // at least the first chunk
      if (i % 2) await reader.read();
      ac.abort();
      await reader.cancel().catch(() => {});
    }
    const h = await waitIdle(server);
    expect(h.models[0]?.slots_idle).toBe(4);
    const r = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "still there?" }],
      max_tokens: 3,
    });
    expect(r.choices[0]?.finish_reason).toBe("length");
    expect(server.exitCode()).toBeNull();
  }, 60_000);

  test("/metrics speaks Prometheus", async () => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    for (const name of [
      "llmatic_requests_total",
      "llmatic_prompt_tokens_total",
      "llmatic_completion_tokens_total",
      "llmatic_prompt_tokens_per_second",
      "llmatic_generation_tokens_per_second",
      "llmatic_queue_length",
      "llmatic_time_to_first_token_seconds_bucket",
    ]) {
      expect(text).toContain(`# TYPE ${name.replace(/_bucket$/, "")}`);
    }
    const count = Number(/llmatic_time_to_first_token_seconds_count (\d+)/.exec(text)?.[1]);
    expect(count).toBeGreaterThan(10);
    expect(text).toMatch(/llmatic_requests_total\{route="\/v1\/chat\/completions",status="200"\} \d+/);
    const completion = Number(/llmatic_completion_tokens_total (\d+)/.exec(text)?.[1]);
    expect(completion).toBeGreaterThan(8 * 40);
  });
});

describe("queueing", () => {
  let small: ServerProcess;
  beforeAll(async () => {
    small = await startServerProcess(["-m", TINY_MODEL_PATH, "--parallel", "1", "--queue", "1", "--ctx-size", "4096"]);
  });
  afterAll(async () => {
    await small?.stop();
  });

  function longStream(signal: AbortSignal, label: string) {
    return fetch(`${small.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, prompt: label, stream: true, max_tokens: 3000, ignore_eos: true }),
      signal,
    });
  }

  test("past the queue: 503 with Retry-After; a queued client that leaves is never decoded", async () => {
    const metric = async (name: string) =>
      Number(new RegExp(`${name} (\\d+)`).exec(await (await fetch(`${small.url}/metrics`)).text())?.[1]);
    const running = new AbortController();
    const a = await longStream(running.signal, "first");
    expect(a.status).toBe(200);
    const reader = (a.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    const promptBefore = await metric("llmatic_prompt_tokens_total");

    // the second waits in the queue (its response has not started)
    const queued = new AbortController();
    const b = longStream(queued.signal, "second").catch((e) => e);
    for (let i = 0; i < 100 && (await health(small)).models[0]?.queued !== 1; i++) await Bun.sleep(10);
    expect((await health(small)).models[0]?.queued).toBe(1);

    // the third finds the slot busy and the queue full
    const c = await fetch(`${small.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, prompt: "third", max_tokens: 3 }),
    });
    expect(c.status).toBe(503);
    expect(Number(c.headers.get("retry-after"))).toBeGreaterThan(0);
    const body = (await c.json()) as { error: { code: string; type: string; message: string } };
    expect(body.error.code).toBe("queue_full");
    expect(body.error.message).toContain("--queue 1");

    // the queued client gives up: it leaves the queue without being decoded
    queued.abort();
    await b;
    for (let i = 0; i < 100 && (await health(small)).models[0]?.queued !== 0; i++) await Bun.sleep(10);
    expect((await health(small)).models[0]?.queued).toBe(0);
    running.abort();
    await reader.cancel().catch(() => {});
    await waitIdle(small);
    expect(await metric("llmatic_prompt_tokens_total")).toBe(promptBefore);

    // and the server serves the next one
    const d = await fetch(`${small.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, prompt: "next", max_tokens: 2 }),
    });
    expect(d.status).toBe(200);
  }, 60_000);
});
