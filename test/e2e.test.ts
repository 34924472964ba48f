// End to end: a real server process on loopback, the tiny generated model, and
// the official `openai` npm client.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import OpenAI from "openai";
import { ChatTemplates } from "../src/ffi/chat";
import { Model } from "../src/ffi/model";
import { TINY_MODEL_PATH } from "../src/models/synthetic";
import { clientFor, type ServerProcess, startServerProcess, useServer, waitIdle } from "./server-process";

const KEY = "e2e-test-key";
let server: ServerProcess;
let client: OpenAI;
let vocab: Model;
let templates: ChatTemplates;
const MODEL = "llmatic-tiny";

useServer(
  ["-m", TINY_MODEL_PATH, "--parallel", "2", "--ctx-size", "4096", "--api-key", KEY],
  (s, c) => {
    server = s;
    client = c;
  },
  KEY,
);

beforeAll(() => {
  vocab = Model.load(TINY_MODEL_PATH, { vocabOnly: true });
  templates = ChatTemplates.create(vocab);
});

afterAll(() => {
  templates?.dispose();
  vocab?.dispose();
});

describe("with the official openai client", () => {
  test("models: list and retrieve", async () => {
    const list = await client.models.list();
    expect(list.data.map((m) => m.id)).toEqual([MODEL]);
    const m = await client.models.retrieve(MODEL);
    expect(m).toMatchObject({ id: MODEL, object: "model", owned_by: "llmatic" });
  });

  test("completions: n=2, exact usage, stop, echo", async () => {
    const prompt = "The quick brown fox";
    const r = await client.completions.create({ model: MODEL, prompt, max_tokens: 6, n: 2, seed: 1 });
    expect(r.choices).toHaveLength(2);
    expect(r.choices.map((c) => c.index)).toEqual([0, 1]);
    expect(r.choices.every((c) => c.finish_reason === "length")).toBe(true);
    expect(r.usage?.prompt_tokens).toBe(vocab.tokenize(prompt, true, true).length);
    expect(r.usage?.completion_tokens).toBe(12);

    // a stop string taken from the output itself cuts it there
    const full = await client.completions.create({ model: MODEL, prompt, max_tokens: 30, seed: 9 });
    const text = full.choices[0]?.text ?? "";
    const stop = text.slice(10, 14);
    const cut = await client.completions.create({ model: MODEL, prompt, max_tokens: 30, seed: 9, stop: [stop] });
    expect(cut.choices[0]?.text).toBe(text.slice(0, text.indexOf(stop)));
    expect(cut.choices[0]?.finish_reason).toBe("stop");

    const echo = await client.completions.create({ model: MODEL, prompt, max_tokens: 3, echo: true, seed: 2 });
    expect(echo.choices[0]?.text.startsWith(prompt)).toBe(true);
  });

  test("chat: non-streaming, with usage equal to the template's token count", async () => {
    const messages = [{ role: "user" as const, content: "What is 2+2?" }];
    const r = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 8, seed: 3 });
    expect(r.object).toBe("chat.completion");
    expect(r.choices[0]?.message.role).toBe("assistant");
    expect(typeof r.choices[0]?.message.content).toBe("string");
    const rendered = templates.apply({ messages }).prompt;
    expect(r.usage?.prompt_tokens).toBe(vocab.tokenize(rendered, true, true).length);
    expect(r.usage?.completion_tokens).toBe(8);
    expect(r.usage?.total_tokens).toBe((r.usage?.prompt_tokens ?? 0) + 8);
  });

  test("chat: streaming helper and finalChatCompletion", async () => {
    const messages = [
      { role: "system" as const, content: "You are terse." },
      { role: "user" as const, content: "Hello" },
    ];
    const stream = client.chat.completions.stream({
      model: MODEL,
      messages,
      max_tokens: 10,
      seed: 4,
      stream_options: { include_usage: true },
    });
    let deltas = "";
    stream.on("content", (d) => {
      deltas += d;
    });
    const final = await stream.finalChatCompletion();
    expect(final.choices[0]?.message.content).toBe(deltas);
    expect(final.choices[0]?.finish_reason).toBe("length");
    expect(final.usage?.completion_tokens).toBe(10);
    // the same request without streaming gives the same text (same seed)
    const again = await client.chat.completions.create({
      model: MODEL,
      messages,
      max_tokens: 10,
      seed: 4,
    });
    expect(again.choices[0]?.message.content).toBe(deltas);
  });

  test("embeddings: the client's default (base64) and float", async () => {
    const b64 = await client.embeddings.create({ model: MODEL, input: ["hello world", "goodbye"] });
    expect(b64.data).toHaveLength(2);
    for (const d of b64.data) {
      expect(d.embedding).toHaveLength(64);
      expect(Math.hypot(...d.embedding)).toBeCloseTo(1, 4);
    }
    const flt = await client.embeddings.create({ model: MODEL, input: "hello world", encoding_format: "float" });
    expect(flt.data[0]?.embedding).toHaveLength(64);
    // decoded base64 and float agree
    const a = b64.data[0]?.embedding as number[];
    const b = flt.data[0]?.embedding as number[];
    for (let i = 0; i < 64; i++) expect(a[i]).toBeCloseTo(b[i] as number, 6);
    expect(b64.usage.prompt_tokens).toBe(
      vocab.tokenize("hello world", true, false).length + vocab.tokenize("goodbye", true, false).length,
    );
  });

  test("an unknown model is a NotFoundError", async () => {
    const err = await client.chat.completions
      .create({ model: "gpt-4o", messages: [{ role: "user", content: "x" }] })
      .catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect(err.status).toBe(404);
    expect(err.code).toBe("model_not_found");
  });

  test("a bad key is an AuthenticationError", async () => {
    const bad = clientFor(server, "wrong");
    const err = await bad.models.list().catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(err.status).toBe(401);
  });

  test("a prompt longer than the context is a BadRequestError naming both numbers", async () => {
    const err = await client.completions
      .create({ model: MODEL, prompt: Array.from({ length: 2100 }, (_, i) => 100 + i), max_tokens: 1 })
      .catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.code).toBe("context_length_exceeded");
    expect(err.message).toContain("2100");
    expect(err.message).toContain("2048");
  });

  test("a client that aborts mid-stream does not disturb the server", async () => {
    for (let round = 0; round < 3; round++) {
      const ac = new AbortController();
      const stream = await client.chat.completions.create(
        {
          model: MODEL,
          messages: [{ role: "user", content: "Tell me a long story" }],
          stream: true,
          max_tokens: 5000,
          seed: round,
        },
        { signal: ac.signal },
      );
      let n = 0;
      // depending on timing the SDK ends the loop or throws an abort error: either way it stops
      await (async () => {
        for await (const _ of stream) if (++n === 5) ac.abort();
      })().catch((e) => expect(String(e?.name ?? e)).toMatch(/Abort/));
      expect(n).toBeGreaterThanOrEqual(5);
      expect(n).toBeLessThan(5000);
    }
    // both slots come back and the server keeps serving
    const h = await waitIdle(server);
    expect(h.models[0]?.slots_busy).toBe(0);
    const r = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "again" }],
      max_tokens: 3,
    });
    expect(r.choices[0]?.finish_reason).toBe("length");
    expect(server.exitCode()).toBeNull();
  });
});

test("SIGTERM lets an in-flight stream finish, then exits cleanly", async () => {
  const s = await startServerProcess(["-m", TINY_MODEL_PATH, "--parallel", "1"]);
  const res = await fetch(`${s.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL, prompt: "x", max_tokens: 400, ignore_eos: true, stream: true }),
  });
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  await reader.read();
  s.proc.kill("SIGTERM");
  let text = "";
  const dec = new TextDecoder();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += dec.decode(value);
  }
  expect(text).toContain('"finish_reason":"length"');
  expect(text.trimEnd().endsWith("data: [DONE]")).toBe(true);
  expect(await s.proc.exited).toBe(0);
  expect(s.output()).toContain("SIGTERM: finishing in-flight requests");
  // new connections are refused once it stops
  expect(
    await fetch(`${s.url}/health`).then(
      () => "open",
      () => "closed",
    ),
  ).toBe("closed");
}, 60_000);
