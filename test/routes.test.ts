// Every route shape and error through app.handle(), with a scripted engine.
import { beforeEach, describe, expect, test } from "bun:test";
import { createApp } from "../src/app";
import { DEFAULTS, type ServerConfig } from "../src/config";
import { ModelRegistry } from "../src/registry";
import { FAKE_INFO, FakeEngine } from "./fake-engine";

let engine: FakeEngine;
let app: ReturnType<typeof createApp>;

function makeApp(over: Partial<ServerConfig> = {}, registry?: ModelRegistry) {
  return createApp(registry ?? ModelRegistry.of([engine]), { ...DEFAULTS, ...over });
}

beforeEach(() => {
  engine = new FakeEngine();
  app = makeApp();
});

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)["content-type"] ??= "application/json";
  }
  return app.handle(new Request(`http://localhost${path}`, init));
}

async function json(res: Response) {
  return (await res.json()) as Record<string, any>;
}

/** The data payloads of an SSE body, in order ("[DONE]" kept as a string). */
async function frames(res: Response): Promise<any[]> {
  const text = await res.text();
  return text
    .split("\n\n")
    .filter((f) => f.trim())
    .map((f) => {
      expect(f.startsWith("data: ")).toBe(true);
      const data = f.slice(6);
      return data === "[DONE]" ? data : JSON.parse(data);
    });
}

function expectOpenAIError(body: Record<string, any>, code: string | null, param: string | null = null) {
  expect(Object.keys(body)).toEqual(["error"]);
  expect(Object.keys(body.error).sort()).toEqual(["code", "message", "param", "type"]);
  expect(typeof body.error.message).toBe("string");
  expect(body.error.message.length).toBeGreaterThan(5);
  expect(body.error.code).toBe(code);
  expect(body.error.param).toBe(param);
}

describe("models and engines", () => {
  test("list and retrieve models", async () => {
    const list = await json(await call("GET", "/v1/models"));
    expect(list).toEqual({
      object: "list",
      data: [
        {
          id: "fake-model",
          object: "model",
          created: FAKE_INFO.createdAt,
          owned_by: "llmatic",
          // what UIs look for (the fake engine has no file to read the rest from)
          state: "loaded",
          context_length: FAKE_INFO.nCtxSlot,
          capabilities: ["completion"],
          size: null,
          kind: "text",
          architecture: null,
          quantization: null,
          source: "file",
        },
      ],
    });
    const one = await call("GET", "/v1/models/fake-model");
    expect(one.status).toBe(200);
    expect(await json(one)).toEqual(list.data[0]);
  });

  test("an unknown model is a 404 in OpenAI's shape", async () => {
    const res = await call("GET", "/v1/models/gpt-4");
    expect(res.status).toBe(404);
    const body = await json(res);
    expectOpenAIError(body, "model_not_found", "model");
    expect(body.error.type).toBe("invalid_request_error");
  });

  test("engines: the same models in the legacy shape", async () => {
    expect(await json(await call("GET", "/v1/engines"))).toEqual({
      object: "list",
      data: [{ id: "fake-model", object: "engine", created: FAKE_INFO.createdAt, owner: "llmatic", ready: true }],
    });
    expect((await json(await call("GET", "/v1/engines/fake-model"))).ready).toBe(true);
    expect((await call("GET", "/v1/engines/nope")).status).toBe(404);
  });

  test("a base model cannot be deleted; an unknown one is a 404", async () => {
    const res = await call("DELETE", "/v1/models/fake-model");
    expect(res.status).toBe(400);
    expectOpenAIError(await json(res), "model_not_deletable", "model");
    expect((await call("DELETE", "/v1/models/nope")).status).toBe(404);
  });

  test("a model that is still loading answers 503 with Retry-After", async () => {
    const registry = new ModelRegistry(
      [{ id: "slow", source: { kind: "path", path: "/x/slow.gguf" } }],
      () => new Promise(() => {}),
      {
        waitMs: 50,
      },
    );
    void registry.preload();
    app = makeApp({}, registry);
    const res = await call("POST", "/v1/chat/completions", {
      model: "slow",
      messages: [{ role: "user", content: "x" }],
    });
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("2");
    expectOpenAIError(await json(res), "model_loading");
    const health = await call("GET", "/health");
    expect(health.status).toBe(503);
    expect((await json(health)).status).toBe("loading");
  });
});

describe("completions", () => {
  test("non-streaming: text_completion with usage", async () => {
    const res = await call("POST", "/v1/completions", { model: "fake-model", prompt: "Say hi" });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.object).toBe("text_completion");
    expect(body.id).toMatch(/^cmpl-/);
    expect(body.model).toBe("fake-model");
    expect(body.created).toBeLessThan(1e11); // seconds, not milliseconds
    expect(body.system_fingerprint).toMatch(/^fp_/);
    expect(body.choices).toEqual([{ text: "Hello world", index: 0, logprobs: null, finish_reason: "stop" }]);
    expect(body.usage).toEqual({ prompt_tokens: 7, completion_tokens: 2, total_tokens: 9 });
    const req = engine.requests[0];
    expect(req?.prompt).toEqual({ type: "text", text: "Say hi" });
    expect(req?.maxTokens).toBe(16); // the spec's default
  });

  test("prompt shapes: string[], tokens, token arrays; n choices indexed per prompt", async () => {
    const body = await json(await call("POST", "/v1/completions", { model: "fake-model", prompt: ["a", "b"], n: 2 }));
    expect(body.choices.map((c: any) => c.index)).toEqual([0, 1, 2, 3]);
    expect(body.usage.prompt_tokens).toBe(14);
    expect(engine.requests.map((r) => r.prompt)).toEqual([
      { type: "text", text: "a" },
      { type: "text", text: "b" },
    ]);
    await call("POST", "/v1/completions", { model: "fake-model", prompt: [1, 2, 3] });
    expect(engine.requests[2]?.prompt).toEqual({ type: "tokens", tokens: [1, 2, 3] });
    await call("POST", "/v1/completions", { model: "fake-model", prompt: [[1], [2, 3]] });
    expect(engine.requests.slice(3).map((r) => r.prompt)).toEqual([
      { type: "tokens", tokens: [1] },
      { type: "tokens", tokens: [2, 3] },
    ]);
  });

  test("parameters reach the engine typed", async () => {
    await call("POST", "/v1/completions", {
      model: "fake-model",
      prompt: "x",
      max_tokens: 5,
      temperature: 0.2,
      top_p: 0.5,
      stop: "\n",
      presence_penalty: 1,
      frequency_penalty: -1,
      logit_bias: { "42": 5, "7": -100 },
      seed: 123,
      user: "someone",
      unknown_extra_field: true,
    });
    const r = engine.requests[0];
    expect(r?.maxTokens).toBe(5);
    expect(r?.stop).toEqual(["\n"]);
    expect(r?.sampling).toMatchObject({
      temperature: 0.2,
      topP: 0.5,
      presencePenalty: 1,
      frequencyPenalty: -1,
      seed: 123,
      logitBias: [
        [7, Number.NEGATIVE_INFINITY],
        [42, 5],
      ],
    });
  });

  test("nulls are accepted for every optional field", async () => {
    const res = await call("POST", "/v1/completions", {
      model: "fake-model",
      prompt: null,
      suffix: null,
      max_tokens: null,
      temperature: null,
      top_p: null,
      n: null,
      stream: null,
      logprobs: null,
      echo: null,
      stop: null,
      presence_penalty: null,
      frequency_penalty: null,
      best_of: null,
      logit_bias: null,
      user: null,
      seed: null,
    });
    expect(res.status).toBe(200);
  });

  test("echo returns the prompt before the completion", async () => {
    const body = await json(await call("POST", "/v1/completions", { model: "fake-model", prompt: "Q: ", echo: true }));
    expect(body.choices[0].text).toBe("Q: Hello world");
    const tok = await json(await call("POST", "/v1/completions", { model: "fake-model", prompt: [5, 6], echo: true }));
    expect(tok.choices[0].text).toBe("<5><6>Hello world");
  });

  test("suffix becomes a fill-in-the-middle prompt", async () => {
    await call("POST", "/v1/completions", { model: "fake-model", prompt: "def f(", suffix: "):\n" });
    expect(engine.requests[0]?.prompt).toEqual({ type: "infill", prefix: "def f(", suffix: "):\n" });
  });

  test("unsupported values are refused, never ignored", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ best_of: 3, n: 1, stream: true }, "best_of"],
      [{ best_of: 1, n: 2 }, "best_of"],
      [{ logprobs: 6 }, "logprobs"],
      [{ n: 9 }, "n"], // more than the 4 parallel slots
      [{ logit_bias: { abc: 1 } }, "logit_bias"],
      [{ logit_bias: { "5000": 1 } }, "logit_bias"],
      [{ stop: ["a", "b", "c", "d", "e"] }, "stop"],
      [{ temperature: 3 }, "temperature"],
      [{ max_tokens: -1 }, "max_tokens"],
      [{ prompt: 5 }, "prompt"],
    ];
    for (const [extra, param] of cases) {
      const res = await call("POST", "/v1/completions", { model: "fake-model", prompt: "x", ...extra });
      expect({ extra, status: res.status }).toEqual({ extra, status: 400 });
      const body = await json(res);
      expect(body.error.param).toBe(param);
      expect(body.error.type).toBe("invalid_request_error");
    }
    expect(engine.requests).toHaveLength(0);
  });

  test("streaming: chunks per choice, finish_reason on the last of each, usage, [DONE]", async () => {
    engine.script = { pieces: ["a", "b"], reason: "length" };
    const res = await call("POST", "/v1/completions", {
      model: "fake-model",
      prompt: "x",
      n: 2,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const f = await frames(res);
    const body = f.slice(0, -2);
    expect(body.every((c) => c.object === "text_completion" && c.id === f[0].id && c.choices.length === 1)).toBe(true);
    const pick = (i: number) => body.filter((c) => c.choices[0].index === i).map((c) => c.choices[0]);
    for (const i of [0, 1]) {
      expect(pick(i)).toEqual([
        { text: "a", index: i, logprobs: null, finish_reason: null },
        { text: "b", index: i, logprobs: null, finish_reason: null },
        { text: "", index: i, logprobs: null, finish_reason: "length" },
      ]);
    }
    expect(f.at(-2).choices).toEqual([]);
    expect(f.at(-2).usage).toEqual({ prompt_tokens: 7, completion_tokens: 4, total_tokens: 11 });
    expect(f.at(-1)).toBe("[DONE]");
  });

  test("streaming echo sends the prompt first", async () => {
    const f = await frames(
      await call("POST", "/v1/completions", { model: "fake-model", prompt: "P", echo: true, stream: true }),
    );
    expect(f[0].choices[0].text).toBe("P");
    expect(f[1].choices[0].text).toBe("Hello");
  });
});

describe("chat completions", () => {
  const messages = [
    { role: "developer", content: "Be brief." },
    {
      role: "user",
      content: [
        { type: "text", text: "Hi" },
        { type: "text", text: "there" },
      ],
    },
    {
      role: "assistant",
      content: null,
      tool_calls: [{ id: "c1", type: "function", function: { name: "f", arguments: "{}" } }],
    },
    { role: "tool", tool_call_id: "c1", content: "42" },
  ];

  test("non-streaming: chat.completion with usage and cached tokens", async () => {
    engine.script = { promptTokens: 20, cachedTokens: 12 };
    const res = await call("POST", "/v1/chat/completions", { model: "fake-model", messages });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.object).toBe("chat.completion");
    expect(body.id).toMatch(/^chatcmpl-/);
    expect(body.created).toBeLessThan(1e11);
    expect(body.choices).toEqual([
      {
        index: 0,
        message: { role: "assistant", content: "Hello world", refusal: null },
        logprobs: null,
        finish_reason: "stop",
      },
    ]);
    expect(body.usage).toEqual({
      prompt_tokens: 20,
      completion_tokens: 2,
      total_tokens: 22,
      prompt_tokens_details: { cached_tokens: 12 },
    });
  });

  test("messages are translated for the template: developer -> system, parts joined, tool turns kept", async () => {
    await call("POST", "/v1/chat/completions", { model: "fake-model", messages });
    const p = engine.requests[0]?.prompt;
    expect(p?.type).toBe("chat");
    if (p?.type !== "chat") return;
    expect(p.chat.messages).toEqual([
      { role: "system", content: "Be brief." },
      { role: "user", content: "Hi\nthere" },
      {
        role: "assistant",
        content: "",
        tool_calls: [{ id: "c1", type: "function", function: { name: "f", arguments: "{}" } }],
      },
      { role: "tool", content: "42", tool_call_id: "c1" },
    ]);
  });

  test("max_completion_tokens wins over max_tokens; no limit means until the context ends", async () => {
    await call("POST", "/v1/chat/completions", {
      model: "fake-model",
      messages,
      max_tokens: 10,
      max_completion_tokens: 3,
    });
    await call("POST", "/v1/chat/completions", { model: "fake-model", messages, max_tokens: 10 });
    await call("POST", "/v1/chat/completions", { model: "fake-model", messages });
    expect(engine.requests.map((r) => r.maxTokens)).toEqual([3, 10, null]);
  });

  test("streaming: role first, null finish_reason in the middle, the real reason last, usage, [DONE]", async () => {
    engine.script = { pieces: ["He", "llo"], reason: "length", promptTokens: 9 };
    const f = await frames(
      await call("POST", "/v1/chat/completions", {
        model: "fake-model",
        messages,
        stream: true,
        stream_options: { include_usage: true },
      }),
    );
    expect(f.map((c) => (c === "[DONE]" ? c : (c.choices[0] ?? "usage")))).toEqual([
      { index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null },
      { index: 0, delta: { content: "He" }, logprobs: null, finish_reason: null },
      { index: 0, delta: { content: "llo" }, logprobs: null, finish_reason: null },
      { index: 0, delta: {}, logprobs: null, finish_reason: "length" },
      "usage",
      "[DONE]",
    ]);
    for (const c of f.slice(0, -1)) {
      expect(c.object).toBe("chat.completion.chunk");
      expect(c.id).toBe(f[0].id);
      expect(c.created).toBeLessThan(1e11);
    }
    expect(f.at(-2).usage).toEqual({
      prompt_tokens: 9,
      completion_tokens: 2,
      total_tokens: 11,
      prompt_tokens_details: { cached_tokens: 0 },
    });
  });

  test("no usage chunk unless asked", async () => {
    const f = await frames(await call("POST", "/v1/chat/completions", { model: "fake-model", messages, stream: true }));
    expect(f.some((c) => c !== "[DONE]" && c.usage)).toBe(false);
    expect(f.at(-1)).toBe("[DONE]");
  });

  test("an error before the first chunk is a plain HTTP error, not a stream", async () => {
    engine.script = {
      refuse: {
        type: "error",
        code: "context_length_exceeded",
        message: "the prompt has 5000 tokens but the context window is 1024 tokens",
        param: "messages",
      },
    };
    const res = await call("POST", "/v1/chat/completions", { model: "fake-model", messages, stream: true });
    expect(res.status).toBe(400);
    expect(res.headers.get("content-type")).toContain("application/json");
    const body = await json(res);
    expectOpenAIError(body, "context_length_exceeded", "messages");
    expect(body.error.message).toContain("5000");
    expect(body.error.message).toContain("1024");
  });

  test("an error after the first chunk goes out as a data: {error} frame", async () => {
    engine.script = {
      failAfter: { pieces: 1, error: { type: "error", code: "internal", message: "decode failed", param: null } },
    };
    const res = await call("POST", "/v1/chat/completions", { model: "fake-model", messages, stream: true });
    expect(res.status).toBe(200);
    const f = await frames(res);
    expect(f[1].choices[0].delta).toEqual({ content: "Hello" });
    expect(f.at(-1)).toEqual({
      error: { message: "decode failed", type: "server_error", param: null, code: "internal_error" },
    });
  });

  test("image parts and not-yet-supported features are refused with the parameter named", async () => {
    const img = await call("POST", "/v1/chat/completions", {
      model: "fake-model",
      messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "http://x/y.png" } }] }],
    });
    // the fake model has no projector
    expect(img.status).toBe(400);
    expectOpenAIError(await json(img), null, "messages");
    const audio = await call("POST", "/v1/chat/completions", {
      model: "fake-model",
      messages: [{ role: "user", content: [{ type: "input_audio", input_audio: { data: "AA", format: "wav" } }] }],
    });
    expectOpenAIError(await json(audio), null, "messages[0].content[0].type");
    const missing = await call("POST", "/v1/chat/completions", { model: "fake-model" });
    expectOpenAIError(await json(missing), "missing_required_parameter", "messages");
    const badRole = await call("POST", "/v1/chat/completions", {
      model: "fake-model",
      messages: [{ role: "bot", content: "x" }],
    });
    expectOpenAIError(await json(badRole), "invalid_value", "messages[0].role");
    expect(engine.requests).toHaveLength(0);
  });

  test("a client that goes away mid-stream aborts its generation in the engine", async () => {
    engine.script = { pieces: Array(1000).fill("x"), delay: 5 };
    const ac = new AbortController();
    const res = await app.handle(
      new Request("http://localhost/v1/chat/completions", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "fake-model", messages, stream: true }),
        signal: ac.signal,
      }),
    );
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    const seen = engine.signals[0] as AbortSignal;
    expect(seen.aborted).toBe(false);
    const arrived = new Promise<void>((r) => seen.addEventListener("abort", () => r(), { once: true }));
    ac.abort();
    await reader.cancel().catch(() => {});
    await arrived;
    expect(seen.aborted).toBe(true);
  });
});

describe("tools and logprobs, frame by frame", () => {
  const tools = [
    {
      type: "function",
      function: { name: "lookup", parameters: { type: "object", properties: { q: { type: "string" } } } },
    },
  ];
  const bytes = (s: string) => [...new TextEncoder().encode(s)];
  const toolEvents = (): any[] => [
    { type: "text", choice: 0, text: "<tool_call>", tokens: 1, delta: { content: "", reasoning: "", toolCalls: [] } },
    {
      type: "text",
      choice: 0,
      text: '{"name": "lookup", "arguments": {"q": "a',
      tokens: 5,
      delta: {
        content: "",
        reasoning: "",
        toolCalls: [{ index: 0, id: "call_1", name: "lookup", arguments: '{"q": "a' }],
      },
    },
    {
      type: "text",
      choice: 0,
      text: 'b"}}',
      tokens: 7,
      delta: { content: "", reasoning: "", toolCalls: [{ index: 0, arguments: 'b"}' }] },
    },
    {
      type: "end",
      choice: 0,
      reason: "stop",
      completionTokens: 8,
      text: '<tool_call>{"name": "lookup", "arguments": {"q": "ab"}}</tool_call>',
      message: { content: "", reasoning: "", toolCalls: [{ id: "call_1", name: "lookup", arguments: '{"q": "ab"}' }] },
    },
  ];

  test("tool calls: parsed request, streamed fragments, finish_reason tool_calls", async () => {
    engine.script = { events: toolEvents() };
    const f = await frames(
      await call("POST", "/v1/chat/completions", {
        model: "fake-model",
        messages: [{ role: "user", content: "x" }],
        tools,
        tool_choice: "required",
        stream: true,
      }),
    );
    expect(f.map((c) => (c === "[DONE]" ? c : c.choices[0].delta))).toEqual([
      { role: "assistant", content: "" },
      {
        tool_calls: [{ index: 0, id: "call_1", type: "function", function: { name: "lookup", arguments: '{"q": "a' } }],
      },
      { tool_calls: [{ index: 0, function: { arguments: 'b"}' } }] },
      {},
      "[DONE]",
    ]);
    expect(f.at(-2).choices[0].finish_reason).toBe("tool_calls");
    const r = engine.requests[0];
    expect(r?.parse).toBe("tools");
    const chat = r?.prompt.type === "chat" ? r.prompt.chat : null;
    expect(chat?.toolChoice).toBe("required");
    expect(chat?.tools?.[0]?.function.name).toBe("lookup");
  });

  test("tool calls, non-streamed; the legacy functions shape", async () => {
    engine.script = { events: toolEvents() };
    const body = await json(
      await call("POST", "/v1/chat/completions", {
        model: "fake-model",
        messages: [{ role: "user", content: "x" }],
        tools,
      }),
    );
    expect(body.choices[0]).toEqual({
      index: 0,
      message: {
        role: "assistant",
        content: null,
        refusal: null,
        tool_calls: [{ id: "call_1", type: "function", function: { name: "lookup", arguments: '{"q": "ab"}' } }],
      },
      logprobs: null,
      finish_reason: "tool_calls",
    });
    engine.script = { events: toolEvents() };
    const legacy = await json(
      await call("POST", "/v1/chat/completions", {
        model: "fake-model",
        messages: [{ role: "user", content: "x" }],
        functions: [tools[0]?.function],
        function_call: { name: "lookup" },
      }),
    );
    expect(legacy.choices[0].message.function_call).toEqual({ name: "lookup", arguments: '{"q": "ab"}' });
    expect(legacy.choices[0].finish_reason).toBe("function_call");
    const r = engine.requests[1];
    const chat = r?.prompt.type === "chat" ? r.prompt.chat : null;
    expect(chat?.toolChoice).toBe("required");
    expect(chat?.parallelToolCalls).toBe(false);
  });

  test("response_format becomes a schema for the template; unsupported schema keywords are 400s", async () => {
    await call("POST", "/v1/chat/completions", {
      model: "fake-model",
      messages: [{ role: "user", content: "x" }],
      response_format: {
        type: "json_schema",
        json_schema: { name: "s", schema: { type: "object", properties: { a: { type: "integer" } } } },
      },
    });
    const r = engine.requests[0];
    expect(r?.parse).toBe("content");
    expect(r?.prompt.type === "chat" && r.prompt.chat.jsonSchema).toEqual({
      type: "object",
      properties: { a: { type: "integer" } },
    });
    const bad = await call("POST", "/v1/chat/completions", {
      model: "fake-model",
      messages: [{ role: "user", content: "x" }],
      response_format: {
        type: "json_schema",
        json_schema: { name: "s", schema: { type: "object", patternProperties: {} } },
      },
    });
    expect(bad.status).toBe(400);
    const body = await json(bad);
    expectOpenAIError(body, "unsupported_schema", "response_format.json_schema.schema");
    expect(body.error.message).toContain("patternProperties");
  });

  test("chat logprobs: entries travel with the text they complete", async () => {
    engine.script = {
      events: [
        {
          type: "text",
          choice: 0,
          text: "Hi",
          tokens: 1,
          logprobs: [
            { token: 5, bytes: bytes("Hi"), logprob: -0.5, top: [{ token: 5, bytes: bytes("Hi"), logprob: -0.5 }] },
          ],
        },
        { type: "end", choice: 0, reason: "stop", completionTokens: 1, text: "Hi" },
      ],
    };
    const f = await frames(
      await call("POST", "/v1/chat/completions", {
        model: "fake-model",
        messages: [{ role: "user", content: "x" }],
        logprobs: true,
        top_logprobs: 1,
        stream: true,
      }),
    );
    expect(f[1].choices[0].logprobs).toEqual({
      content: [
        {
          token: "Hi",
          logprob: -0.5,
          bytes: [72, 105],
          top_logprobs: [{ token: "Hi", logprob: -0.5, bytes: [72, 105] }],
        },
      ],
      refusal: null,
    });
    expect(engine.requests[0]?.logprobs).toBe(1);
  });

  test("completion logprobs with echo: the prompt's tokens first, offsets across the whole text", async () => {
    engine.script = {
      events: [
        {
          type: "prompt",
          logprobs: [
            { token: 1, bytes: bytes("A"), logprob: null, top: [] },
            { token: 2, bytes: bytes(" b"), logprob: -1, top: [{ token: 3, bytes: bytes(" c"), logprob: -0.5 }] },
          ],
        },
        {
          type: "text",
          choice: 0,
          text: "!",
          tokens: 1,
          logprobs: [{ token: 4, bytes: bytes("!"), logprob: -2, top: [{ token: 4, bytes: bytes("!"), logprob: -2 }] }],
        },
        { type: "end", choice: 0, reason: "length", completionTokens: 1, text: "!" },
      ],
    };
    const body = await json(
      await call("POST", "/v1/completions", { model: "fake-model", prompt: "A b", echo: true, logprobs: 1 }),
    );
    expect(body.choices[0].text).toBe("A b!");
    expect(body.choices[0].logprobs).toEqual({
      tokens: ["A", " b", "!"],
      token_logprobs: [null, -1, -2],
      top_logprobs: [null, { " c": -0.5, " b": -1 }, { "!": -2 }],
      text_offset: [0, 1, 3],
    });
    expect(engine.requests[0]?.promptLogprobs).toBe(1);
  });
});

describe("embeddings", () => {
  test("float vectors by default", async () => {
    const body = await json(await call("POST", "/v1/embeddings", { model: "fake-model", input: ["a", "b"] }));
    expect(body.object).toBe("list");
    expect(body.model).toBe("fake-model");
    expect(body.data).toEqual([
      { object: "embedding", index: 0, embedding: [0.5, -0.5, 0.5, -0.5] },
      { object: "embedding", index: 1, embedding: [0.5, -0.5, 0.5, 0.25] },
    ]);
    expect(body.usage).toEqual({ prompt_tokens: 6, total_tokens: 6 });
  });

  test("base64 is little-endian float32", async () => {
    const body = await json(
      await call("POST", "/v1/embeddings", { model: "fake-model", input: "a", encoding_format: "base64" }),
    );
    const bytes = Buffer.from(body.data[0].embedding, "base64");
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    expect([0, 1, 2, 3].map((i) => dv.getFloat32(i * 4, true))).toEqual([0.5, -0.5, 0.5, -0.5]);
  });

  test("token input, wrong dimensions, bad input", async () => {
    expect((await call("POST", "/v1/embeddings", { model: "fake-model", input: [1, 2, 3] })).status).toBe(200);
    expect((await call("POST", "/v1/embeddings", { model: "fake-model", input: [[1], [2]] })).status).toBe(200);
    const dims = await call("POST", "/v1/embeddings", { model: "fake-model", input: "a", dimensions: 8 });
    expectOpenAIError(await json(dims), null, "dimensions");
    const bad = await call("POST", "/v1/embeddings", { model: "fake-model", input: { a: 1 } });
    expect(bad.status).toBe(400);
    expect((await json(bad)).error.param).toBe("input");
  });
});

describe("errors, auth, CORS, limits", () => {
  test("unknown routes are 404 in OpenAI's shape", async () => {
    const res = await call("GET", "/v1/nothing-here");
    expect(res.status).toBe(404);
    expectOpenAIError(await json(res), "unknown_url");
  });

  test("invalid JSON is a 400", async () => {
    const res = await call("POST", "/v1/chat/completions", "{not json");
    expect(res.status).toBe(400);
    expectOpenAIError(await json(res), "invalid_json");
  });

  test("what is left of the contract answers 501 naming it and why, and says not to retry", async () => {
    const paths: [string, string][] = [
      ["POST", "/v1/images/generations"],
      ["POST", "/v1/images/edits"],
      ["POST", "/v1/images/variations"],
    ];
    for (const [method, path] of paths) {
      const res = await call(method, path, method === "POST" ? "--multipart-or-json--" : undefined, {
        "content-type": "multipart/form-data; boundary=x",
      });
      expect({ path, status: res.status }).toEqual({ path, status: 501 });
      expect(res.headers.get("x-should-retry")).toBe("false");
      const body = await json(res);
      expectOpenAIError(body, "not_implemented");
      expect(body.error.message).toContain(path);
      expect(body.error.message).toMatch(/: generating images/);
    }
  });

  test("API key: missing and wrong keys are 401; the right key, /health and preflights pass", async () => {
    app = makeApp({ apiKeys: ["sekret"] });
    const missing = await call("GET", "/v1/models");
    expect(missing.status).toBe(401);
    expectOpenAIError(await json(missing), "missing_api_key");
    const wrong = await call("GET", "/v1/models", undefined, { authorization: "Bearer nope" });
    expect(wrong.status).toBe(401);
    expectOpenAIError(await json(wrong), "invalid_api_key");
    expect((await call("GET", "/v1/models", undefined, { authorization: "Bearer sekret" })).status).toBe(200);
    expect((await call("GET", "/health")).status).toBe(200);
    const pre = await call("OPTIONS", "/v1/chat/completions", undefined, {
      origin: "http://localhost:5173",
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization, content-type, x-stainless-os",
    });
    expect(pre.status).toBeLessThan(300);
  });

  test("without --api-key any key (or none) is accepted", async () => {
    expect((await call("GET", "/v1/models", undefined, { authorization: "Bearer anything" })).status).toBe(200);
  });

  test("CORS allows browsers, including the SDKs' x-stainless headers", async () => {
    const pre = await call("OPTIONS", "/v1/chat/completions", undefined, {
      origin: "http://localhost:5173",
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization, content-type, x-stainless-os, x-stainless-retry-count",
    });
    expect(pre.headers.get("access-control-allow-origin")).toBe("http://localhost:5173");
    expect(pre.headers.get("access-control-allow-headers")).toContain("x-stainless-retry-count");
    const res = await call("GET", "/v1/models", undefined, { origin: "http://localhost:5173" });
    expect(res.headers.get("access-control-allow-origin")).toBe("http://localhost:5173");
  });

  test("a body over the limit is a 413", async () => {
    app = makeApp({ maxBodyBytes: 100 });
    const body = JSON.stringify({ model: "fake-model", messages: [{ role: "user", content: "x".repeat(500) }] });
    const res = await call("POST", "/v1/chat/completions", body, { "content-length": String(body.length) });
    expect(res.status).toBe(413);
    expectOpenAIError(await json(res), "request_too_large");
  });

  test("/health reports slots", async () => {
    expect(await json(await call("GET", "/health"))).toEqual({
      status: "ok",
      models: [{ id: "fake-model", state: "ready", progress: 1, slots_busy: 1, slots_idle: 3, queued: 0, restarts: 0 }],
    });
  });
});

describe("docs", () => {
  test("the docs page uses local assets only", async () => {
    const html = await (await call("GET", "/docs")).text();
    expect(html).toContain("/docs/assets/swagger-ui-bundle.js");
    expect(html).toContain("/docs/assets/swagger-ui.css");
    expect(html).not.toMatch(/https?:\/\/(unpkg|cdn\.jsdelivr)/);
    const js = await call("GET", "/docs/assets/swagger-ui-bundle.js");
    expect(js.status).toBe(200);
    expect((await js.text()).length).toBeGreaterThan(100_000);
    expect((await call("GET", "/docs/assets/swagger-ui.css")).status).toBe(200);
  });

  test("the OpenAPI document lists the routes", async () => {
    const spec = await json(await call("GET", "/docs/json"));
    expect(spec.info.title).toBe("llmatic");
    for (const p of ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models", "/health"]) {
      expect(Object.keys(spec.paths)).toContain(p);
    }
  });
});
