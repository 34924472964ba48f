// What an attacker tried, refused where it starts: through app.handle() with a
// scripted engine (nothing here reaches native code unless it must).
import { describe, expect, test } from "bun:test";
import { createApp } from "../src/app";
import { DEFAULTS, type ServerConfig } from "../src/config";
import { CompletionLogprobs } from "../src/openai/logprobs";
import { checkSchema, SCHEMA_LIMITS } from "../src/openai/schema";
import { backoffMs, ModelRegistry } from "../src/registry";
import { FakeEngine } from "./fake-engine";

function setup(over: Partial<ServerConfig> = {}, registry?: ModelRegistry) {
  const engine = new FakeEngine();
  const app = createApp(registry ?? ModelRegistry.of([engine]), { ...DEFAULTS, ...over });
  const call = (url: string, init: RequestInit & { json?: unknown } = {}) => {
    const headers = new Headers(init.headers);
    let body = init.body;
    if (init.json !== undefined) {
      body = JSON.stringify(init.json);
      headers.set("content-type", "application/json");
    }
    return app.handle(new Request(url.startsWith("http") ? url : `http://localhost${url}`, { ...init, headers, body }));
  };
  return { engine, app, call };
}

async function errorOf(res: Response) {
  const body = (await res.json()) as { error: { message: string; type: string; param: string | null; code: string } };
  expect(Object.keys(body)).toEqual(["error"]);
  return body.error;
}

const chat = (over: Record<string, unknown> = {}) => ({
  model: "fake-model",
  messages: [{ role: "user", content: "hi" }],
  ...over,
});

/** `{"type":["array","array"],"items":...}` nested `depth` deep: 2^depth once the type arrays are multiplied out. */
function typeArrayBomb(depth: number): unknown {
  let s: unknown = { type: "string" };
  for (let i = 0; i < depth; i++) s = { type: ["array", "array"], items: s };
  return s;
}

describe("auth is decided on the path the router serves", () => {
  const key = { apiKeys: ["sekret"] };

  test("a short Host header does not move the path past the check", async () => {
    const { call } = setup(key);
    // Elysia once read this as /v1/models (it found the path at a fixed offset of the URL)
    const res = await call("http://a/xx/v1/models");
    expect(res.status).toBe(401);
    expect((await call("http://a/v1/models")).status).toBe(401);
    expect((await call("http://a/v1/models", { headers: { authorization: "Bearer sekret" } })).status).toBe(200);
  });

  test("trailing and doubled slashes are the same protected path", async () => {
    const { call } = setup(key);
    for (const p of ["/metrics/", "/metrics", "//metrics", "/v1//models", "/v1/models/", "//v1/models//"]) {
      expect({ p, status: (await call(p)).status }).toEqual({ p, status: 401 });
    }
    const ok = await call("/v1//models/", { headers: { authorization: "Bearer sekret" } });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { object: string }).object).toBe("list");
  });

  test("only the public list is open: health, docs, the chat page", async () => {
    const { call } = setup(key);
    for (const p of ["/health", "/health/", "/docs", "/docs/json", "/", "/docs/assets/swagger-ui.css"]) {
      expect({ p, status: (await call(p)).status }).toEqual({ p, status: 200 });
    }
    // an unknown path is not a way around it either
    expect((await call("/v2/anything")).status).toBe(401);
  });

  test("x-api-key (Anthropic clients) and several keys", async () => {
    const { call } = setup({ apiKeys: ["k1", "k2"] });
    expect((await call("/v1/models", { headers: { "x-api-key": "k2" } })).status).toBe(200);
    expect((await call("/v1/models", { headers: { authorization: "Bearer k1" } })).status).toBe(200);
    const wrong = await call("/v1/models", { headers: { "x-api-key": "k3" } });
    expect(wrong.status).toBe(401);
    expect((await errorOf(wrong)).code).toBe("invalid_api_key");
  });
});

describe("browsers", () => {
  test("no credentials; loopback and own origins allowed, others refused", async () => {
    const { call } = setup();
    const local = await call("/v1/models", { headers: { origin: "http://localhost:5173" } });
    expect(local.status).toBe(200);
    expect(local.headers.get("access-control-allow-origin")).toBe("http://localhost:5173");
    expect(local.headers.get("access-control-allow-credentials")).toBeNull();
    const own = await call("http://127.0.0.1:3000/v1/models", {
      headers: { origin: "http://127.0.0.1:3000", host: "127.0.0.1:3000" },
    });
    expect(own.headers.get("access-control-allow-origin")).toBe("http://127.0.0.1:3000");
    for (const origin of ["https://evil.example", "null", "http://localhost.evil.example"]) {
      const res = await call("/v1/chat/completions", { method: "POST", headers: { origin }, json: chat() });
      expect({ origin, status: res.status }).toEqual({ origin, status: 403 });
      expect(res.headers.get("access-control-allow-origin")).toBeNull();
      expect((await errorOf(res)).code).toBe("origin_not_allowed");
    }
    const pre = await call("/v1/chat/completions", {
      method: "OPTIONS",
      headers: { origin: "https://evil.example", "access-control-request-method": "POST" },
    });
    expect(pre.status).toBe(403);
  });

  test("--cors-origin adds origins; * allows any, still without credentials", async () => {
    const one = setup({ corsOrigins: ["https://app.example"] });
    const ok = await one.call("/v1/models", { headers: { origin: "https://app.example" } });
    expect(ok.headers.get("access-control-allow-origin")).toBe("https://app.example");
    expect((await one.call("/v1/models", { headers: { origin: "https://other.example" } })).status).toBe(403);
    const any = setup({ corsOrigins: ["*"] });
    const star = await any.call("/v1/models", { headers: { origin: "https://other.example" } });
    expect(star.headers.get("access-control-allow-origin")).toBe("*");
    expect(star.headers.get("access-control-allow-credentials")).toBeNull();
  });

  test("without a key, a host name other than loopback or a configured one is refused (DNS rebinding)", async () => {
    const { call } = setup();
    const rebound = await call("http://evil.example:3000/v1/models", { headers: { host: "evil.example:3000" } });
    expect(rebound.status).toBe(403);
    expect((await errorOf(rebound)).code).toBe("host_not_allowed");
    for (const host of ["localhost:3000", "127.0.0.1:3000", "[::1]:3000", "192.168.1.20:3000", "app.localhost"]) {
      expect({ host, status: (await call("/v1/models", { headers: { host } })).status }).toEqual({ host, status: 200 });
    }
    const named = setup({ allowedHosts: ["llm.lan"] });
    expect((await named.call("/v1/models", { headers: { host: "llm.lan:3000" } })).status).toBe(200);
    // with a key the key decides
    const keyed = setup({ apiKeys: ["k"] });
    const res = await keyed.call("/v1/models", { headers: { host: "evil.example", authorization: "Bearer k" } });
    expect(res.status).toBe(200);
  });
});

describe("every input is bounded before any work", () => {
  test("the 1 KB schema that took the server down is a 400, and the engine never sees it", async () => {
    const { call, engine } = setup();
    const bomb = typeArrayBomb(22);
    expect(JSON.stringify(bomb).length).toBeLessThan(1024);
    for (const body of [
      chat({ response_format: { type: "json_schema", json_schema: { name: "x", schema: bomb } } }),
      chat({
        tools: [{ type: "function", function: { name: "f", parameters: { type: "object", properties: { a: bomb } } } }],
      }),
    ]) {
      const res = await call("/v1/chat/completions", { method: "POST", json: body });
      expect(res.status).toBe(400);
      const err = await errorOf(res);
      expect(err.code).toBe("schema_too_complex");
      expect(err.param).toMatch(/^(response_format\.json_schema\.schema|tools\[0\]\.function\.parameters)$/);
    }
    expect(engine.requests).toHaveLength(0);
  });

  test("schema limits: depth, expanded size, properties, enum, repetitions, what the tools share", () => {
    let deep: unknown = { type: "string" };
    for (let i = 0; i < SCHEMA_LIMITS.depth + 2; i++) deep = { type: "array", items: deep };
    expect(() => checkSchema(deep, "p")).toThrow(/nested/);
    expect(() => checkSchema(typeArrayBomb(14), "p")).toThrow(/expands/);
    expect(checkSchema(typeArrayBomb(8), "p")).toBeGreaterThan(256);
    const props = Object.fromEntries(Array.from({ length: SCHEMA_LIMITS.properties + 1 }, (_, i) => [`p${i}`, {}]));
    expect(() => checkSchema({ type: "object", properties: props }, "p")).toThrow(/properties/);
    expect(() => checkSchema({ enum: Array.from({ length: 1001 }, (_, i) => i) }, "p")).toThrow(/enum/);
    expect(() => checkSchema({ type: "string", maxLength: 100000 }, "p")).toThrow(/maxLength/);
    expect(() => checkSchema({ type: "array", minItems: 5000 }, "p")).toThrow(/minItems/);
    expect(checkSchema({ type: "string", maxLength: 2000 }, "p")).toBe(1);
  });

  test("repeat_last_n within the slot's context; -1 is the context", async () => {
    const { call, engine } = setup();
    const res = await call("/v1/chat/completions", { method: "POST", json: chat({ repeat_last_n: 2147483647 }) });
    expect(res.status).toBe(400);
    expect((await errorOf(res)).param).toBe("repeat_last_n");
    const huge = await call("/v1/completions", {
      method: "POST",
      json: { model: "fake-model", prompt: "x", repeat_last_n: 5000 },
    });
    expect((await errorOf(huge)).param).toBe("repeat_last_n");
    expect((await call("/v1/chat/completions", { method: "POST", json: chat({ repeat_last_n: -1 }) })).status).toBe(
      200,
    );
    expect(engine.requests).toHaveLength(1);
  });

  test("counts: logit_bias, stop, messages, tools, prompts, embedding inputs", async () => {
    const { call, engine } = setup();
    const cases: [string, unknown, string][] = [
      [
        "/v1/chat/completions",
        chat({ logit_bias: Object.fromEntries(Array.from({ length: 1025 }, (_, i) => [String(i), 1])) }),
        "logit_bias",
      ],
      ["/v1/chat/completions", chat({ stop: ["a", "b", "c", "d", "e"] }), "stop"],
      ["/v1/chat/completions", chat({ stop: "x".repeat(2000) }), "stop"],
      [
        "/v1/chat/completions",
        chat({ messages: Array.from({ length: 5000 }, () => ({ role: "user", content: "x" })) }),
        "messages",
      ],
      [
        "/v1/chat/completions",
        chat({ tools: Array.from({ length: 129 }, (_, i) => ({ type: "function", function: { name: `f${i}` } })) }),
        "tools",
      ],
      ["/v1/completions", { model: "fake-model", prompt: Array.from({ length: 129 }, () => "x") }, "prompt"],
      ["/v1/embeddings", { model: "fake-model", input: Array.from({ length: 2049 }, () => "x") }, "input"],
      ["/v1/completions", { model: "fake-model", prompt: "x", top_k: 2 ** 40 }, "top_k"],
    ];
    for (const [path, body, param] of cases) {
      const res = await call(path, { method: "POST", json: body });
      expect({ param, status: res.status }).toEqual({ param, status: 400 });
      expect((await errorOf(res)).param).toBe(param);
    }
    expect(engine.requests).toHaveLength(0);
  });

  test("a chunked body over the limit is a JSON 413; under it, it is served", async () => {
    const { call } = setup({ maxBodyBytes: 1000 });
    const chunked = (text: string) =>
      new ReadableStream<Uint8Array>({
        start(c) {
          const bytes = new TextEncoder().encode(text);
          for (let i = 0; i < bytes.length; i += 100) c.enqueue(bytes.subarray(i, i + 100));
          c.close();
        },
      });
    const big = JSON.stringify(chat({ messages: [{ role: "user", content: "x".repeat(5000) }] }));
    const res = await call("/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: chunked(big),
      duplex: "half",
    } as RequestInit);
    expect(res.status).toBe(413);
    expect((await errorOf(res)).code).toBe("request_too_large");
    const small = await call("/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: chunked(JSON.stringify(chat())),
      duplex: "half",
    } as RequestInit);
    expect(small.status).toBe(200);
  });

  test("a malformed %-escape in a path is a 400, not a 500", async () => {
    const { call } = setup();
    for (const p of ["/v1/models/%E0%A4%A", "/v1/models/%", "/v1/engines/%E0%A4%A"]) {
      const res = await call(p);
      expect({ p, status: res.status }).toEqual({ p, status: 400 });
      expect((await errorOf(res)).code).toBe("invalid_path");
    }
  });
});

describe("smaller ones", () => {
  test("top_logprobs keep tokens named like Object members", () => {
    const lp = new CompletionLogprobs();
    const bytes = (s: string) => [...new TextEncoder().encode(s)];
    lp.add([
      {
        token: 1,
        bytes: bytes("constructor"),
        logprob: -0.5,
        top: [
          { token: 1, bytes: bytes("constructor"), logprob: -0.5 },
          { token: 2, bytes: bytes("toString"), logprob: -1 },
          { token: 3, bytes: bytes("__proto__"), logprob: -2 },
        ],
      },
    ]);
    const top = lp.toJSON().top_logprobs[0] as Record<string, number>;
    expect(Object.entries(JSON.parse(JSON.stringify(top)))).toEqual([
      ["constructor", -0.5],
      ["toString", -1],
      ["__proto__", -2],
    ]);
  });

  test("a failed load backs off: one attempt, then 503 model_load_failed with Retry-After", async () => {
    let attempts = 0;
    const registry = new ModelRegistry(
      [{ id: "broken", source: { kind: "path", path: "/x/broken.gguf" } }],
      async () => {
        attempts++;
        throw new Error("not a GGUF file");
      },
    );
    const { call } = setup({}, registry);
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await call("/v1/chat/completions", { method: "POST", json: chat({ model: "broken" }) });
      statuses.push(res.status);
      const err = await errorOf(res);
      expect(err.code).toBe("model_load_failed");
      expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    }
    expect(statuses).toEqual([503, 503, 503, 503, 503]);
    expect(attempts).toBe(1);
    expect([1, 2, 3, 7, 20].map(backoffMs)).toEqual([1000, 2000, 4000, 60000, 60000]);
  });

  test("a client that leaves while its model loads gets nothing generated", async () => {
    const engine = new FakeEngine();
    let finishLoad: () => void = () => {};
    const registry = new ModelRegistry(
      [{ id: "fake-model", source: { kind: "path", path: "/x/m.gguf" } }],
      () =>
        new Promise((resolve) => {
          finishLoad = () => resolve(engine);
        }),
    );
    const app = createApp(registry, DEFAULTS);
    const ac = new AbortController();
    const pending = app.handle(
      new Request("http://localhost/v1/chat/completions", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(chat()),
        signal: ac.signal,
      }),
    );
    // the load has begun; the client goes away; then the model is ready
    await Bun.sleep(0);
    ac.abort();
    finishLoad();
    const res = await pending;
    expect(res.status).toBe(499);
    expect(engine.requests).toHaveLength(0);
  });
});

describe("streams", () => {
  test("a silent stream gets keep-alive comments", async () => {
    const { call, engine } = setup({ sseKeepAlive: 0.05 });
    engine.script = { pieces: ["a", "b"], delay: 300 };
    const res = await call("/v1/chat/completions", { method: "POST", json: chat({ stream: true }) });
    const text = await res.text();
    expect(text).toContain(": keep-alive\n\n");
    // the data frames are all still there, in order
    const data = text.split("\n\n").filter((f) => f.startsWith("data: "));
    expect(data.at(-1)).toBe("data: [DONE]");
    expect(text.indexOf('"content":"a"')).toBeLessThan(text.indexOf('"content":"b"'));
  });

  test("a client that stops reading is cut off and its generation aborted", async () => {
    const engine = new FakeEngine();
    const registry = ModelRegistry.of([engine]);
    // big pieces fill the connection's buffers quickly; then nothing is read
    engine.script = { pieces: Array(100_000).fill("x".repeat(64 * 1024)) };
    const app = createApp(registry, { ...DEFAULTS, stallTimeout: 0.3 }).listen({ port: 0, hostname: "127.0.0.1" });
    try {
      const { connect } = await import("node:net");
      const body = JSON.stringify(chat({ stream: true }));
      const sock = connect(app.server?.port as number, "127.0.0.1", () => {
        sock.write(
          `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
        );
        sock.pause();
      });
      const closed = new Promise<void>((r) => sock.on("close", () => r()));
      while (engine.signals.length === 0) await Bun.sleep(10);
      const signal = engine.signals[0] as AbortSignal;
      await new Promise<void>((r) =>
        signal.aborted ? r() : signal.addEventListener("abort", () => r(), { once: true }),
      );
      expect(signal.aborted).toBe(true);
      // the model is free again (the request's hold on it is released)
      while ((registry.entry("fake-model")?.active ?? 1) > 0) await Bun.sleep(10);
      sock.resume();
      sock.destroy();
      await closed;
    } finally {
      await app.stop(true);
    }
  });
});
