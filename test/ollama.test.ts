// Ollama's native API with the official `ollama` client against a real server
// on the generated model, a pull from a local fake hub, rerank, the token tools,
// and models loaded and unloaded over HTTP.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ollama } from "ollama";
import { TINY_MODEL_PATH } from "../src/models/synthetic";
import { type ServerProcess, startServerProcess } from "./server-process";

setDefaultTimeout(60_000);

const TINY = "llmatic-tiny";
const DATA = mkdtempSync(join(tmpdir(), "llmatic-ollama-"));
const CACHE = mkdtempSync(join(tmpdir(), "llmatic-ollama-cache-"));
const model = readFileSync(TINY_MODEL_PATH);
const sha = createHash("sha256").update(model).digest("hex");

let hub: ReturnType<typeof Bun.serve>;
let server: ServerProcess;
let ollama: Ollama;

beforeAll(async () => {
  // a hub with one repository holding one GGUF file
  hub = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch(req) {
      const url = new URL(req.url);
      if (url.pathname === "/api/models/acme/tiny-GGUF")
        return Response.json({ id: "acme/tiny-GGUF", siblings: [{ rfilename: "tiny-Q8_0.gguf" }] });
      if (url.pathname !== "/acme/tiny-GGUF/resolve/main/tiny-Q8_0.gguf")
        return new Response("not found", { status: 404 });
      const headers = {
        "x-linked-size": String(model.length),
        "x-linked-etag": `"${sha}"`,
        "content-type": "application/octet-stream",
        "content-length": String(model.length),
      };
      return new Response(req.method === "HEAD" ? null : model, { headers });
    },
  });
  server = await startServerProcess(["-m", TINY_MODEL_PATH, "--parallel", "2", "--data-dir", DATA], {
    env: { LLMATIC_CACHE: CACHE, HF_ENDPOINT: `http://127.0.0.1:${hub.port}` },
  });
  ollama = new Ollama({ host: server.url });
});

afterAll(async () => {
  await server?.stop();
  hub?.stop(true);
  rmSync(DATA, { recursive: true, force: true });
  rmSync(CACHE, { recursive: true, force: true });
});

type Json = any;

/** The JSON of a response (test bodies are read loosely). */
const json = async (r: Response | Promise<Response>): Promise<Json> => (await r).json();

const post = (path: string, body: unknown) =>
  fetch(`${server.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });

describe("Ollama's API with the ollama client", () => {
  test("version, list, show with capabilities, and the root probe", async () => {
    const v = await ollama.version();
    expect(v.version).toMatch(/^\d+\.\d+\.\d+$/);
    const list = await ollama.list();
    const tiny = list.models.find((m) => m.name === `${TINY}:latest`);
    expect(tiny).toBeDefined();
    expect(tiny?.size).toBe(model.length);
    expect(tiny?.details.family).toBe("qwen2");
    expect(tiny?.details.format).toBe("gguf");
    const show = await ollama.show({ model: TINY });
    expect(show.capabilities).toContain("completion");
    // Qwen2.5's template renders tools; it has no think block
    expect(show.capabilities).toContain("tools");
    expect(show.capabilities).not.toContain("thinking");
    expect(show.capabilities).not.toContain("vision");
    expect(show.template).toContain("<|im_start|>");
    const info = show.model_info as unknown as Record<string, unknown>;
    expect(info["general.architecture"]).toBe("qwen2");
    expect(typeof info["qwen2.context_length"]).toBe("number");
    const root = await fetch(`${server.url}/`);
    expect(await root.text()).toBe("Ollama is running");
    const page = await fetch(`${server.url}/`, { headers: { accept: "text/html" } });
    expect(page.headers.get("content-type")).toContain("text/html");
  });

  test("chat streamed equals chat whole with the same seed; timings are real nanoseconds", async () => {
    const req = {
      model: TINY,
      messages: [{ role: "user", content: "Tell me a story." }],
      options: { num_predict: 12, seed: 42, temperature: 0.7 },
    };
    const whole = await ollama.chat({ ...req, stream: false });
    expect(whole.done).toBe(true);
    expect(whole.done_reason).toBe("length");
    expect(whole.eval_count).toBe(12);
    expect(whole.prompt_eval_count).toBeGreaterThan(5);
    expect(whole.total_duration).toBeGreaterThan(whole.eval_duration);
    expect(whole.eval_duration).toBeGreaterThan(0);
    // 12 tokens of a 10M-parameter model take well under a minute, and more than a microsecond
    expect(whole.total_duration).toBeGreaterThan(1_000);
    expect(whole.total_duration).toBeLessThan(60e9);
    let text = "";
    let last: Awaited<ReturnType<typeof ollama.chat>> | null = null;
    let lines = 0;
    for await (const part of await ollama.chat({ ...req, stream: true })) {
      text += part.message.content;
      last = part;
      lines++;
    }
    expect(lines).toBeGreaterThan(2);
    expect(text).toBe(whole.message.content);
    expect(last?.done).toBe(true);
    expect(last?.eval_count).toBe(12);
  });

  test("generate, whole and streamed; raw skips the template", async () => {
    const g = await ollama.generate({ model: TINY, prompt: "Once upon a time", options: { num_predict: 6, seed: 1 } });
    expect(g.done).toBe(true);
    expect(g.eval_count).toBe(6);
    expect((g.response ?? "").length).toBeGreaterThan(0);
    let text = "";
    for await (const p of await ollama.generate({
      model: TINY,
      prompt: "Once upon a time",
      stream: true,
      options: { num_predict: 6, seed: 1 },
    }))
      text += p.response;
    expect(text).toBe(g.response ?? "");
    const raw = await ollama.generate({
      model: TINY,
      prompt: "Once upon a time",
      raw: true,
      options: { num_predict: 2 },
    });
    // the bare prompt is a few tokens; the template adds a system turn around it
    expect(raw.prompt_eval_count).toBeLessThan(g.prompt_eval_count);
  });

  test("num_ctx caps the request's context: generation stops at it, a longer prompt is a 400", async () => {
    const g = await ollama.generate({
      model: TINY,
      prompt: "Once upon a time",
      raw: true,
      options: { num_predict: -1, num_ctx: 24, seed: 3, temperature: 1 },
    });
    expect(g.done_reason).toBe("length");
    expect(g.prompt_eval_count + g.eval_count).toBeLessThanOrEqual(24);
    expect(g.eval_count).toBeGreaterThan(0);
    const long = await post("/api/generate", {
      model: TINY,
      prompt: "word ".repeat(40),
      raw: true,
      stream: false,
      options: { num_ctx: 16 },
    });
    expect(long.status).toBe(400);
    expect(((await long.json()) as { error: string }).error).toMatch(/num_ctx/);
  });

  test("format: a JSON schema holds the answer", async () => {
    const r = await ollama.chat({
      model: TINY,
      messages: [{ role: "user", content: "Give me a name." }],
      format: {
        type: "object",
        properties: { name: { type: "string", maxLength: 8 } },
        required: ["name"],
        additionalProperties: false,
      },
      options: { seed: 3, num_predict: 64 },
    });
    const v = JSON.parse(r.message.content);
    expect(typeof v.name).toBe("string");
  });

  test("chat with tools and a tool-call history", async () => {
    const tools = [
      {
        type: "function",
        function: {
          name: "get_weather",
          description: "the weather in a city",
          parameters: { type: "object", properties: { city: { type: "string", maxLength: 8 } }, required: ["city"] },
        },
      },
    ];
    const r = await ollama.chat({
      model: TINY,
      tools,
      messages: [
        { role: "user", content: "Weather in Paris?" },
        {
          role: "assistant",
          content: "",
          tool_calls: [{ function: { name: "get_weather", arguments: { city: "Paris" } } }],
        },
        { role: "tool", content: "sunny", tool_name: "get_weather" },
      ],
      options: { num_predict: 4, seed: 5 },
    });
    expect(r.done).toBe(true);
    // the template rendered the call and its result: the prompt holds both
    const rendered = await json(
      post("/apply-template", {
        messages: [
          { role: "user", content: "Weather in Paris?" },
          {
            role: "assistant",
            content: "",
            tool_calls: [
              { id: "c1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } },
            ],
          },
          { role: "tool", content: "sunny", tool_call_id: "c1" },
        ],
      }),
    );
    expect(rendered.prompt).toContain("get_weather");
    expect(rendered.prompt).toContain("sunny");
  });

  test("embed and the older embeddings", async () => {
    const e = await ollama.embed({ model: TINY, input: ["hello", "world"] });
    expect(e.embeddings).toHaveLength(2);
    expect(e.embeddings[0]?.length).toBe(e.embeddings[1]?.length as number);
    expect(e.prompt_eval_count).toBeGreaterThan(0);
    const norm = Math.hypot(...(e.embeddings[0] as number[]));
    expect(Math.abs(norm - 1)).toBeLessThan(1e-3);
    const old = await ollama.embeddings({ model: TINY, prompt: "hello" });
    expect(old.embedding).toEqual(e.embeddings[0] as number[]);
  });

  test("ps, keep_alive 0 unloads, and a keep_alive that runs out unloads", async () => {
    await ollama.generate({ model: TINY, prompt: "hi", options: { num_predict: 1 } });
    expect((await ollama.ps()).models.map((m) => m.name)).toEqual([`${TINY}:latest`]);
    const un = await json(post("/api/generate", { model: TINY, keep_alive: 0 }));
    expect(un.done_reason).toBe("unload");
    expect((await ollama.ps()).models).toHaveLength(0);
    await ollama.generate({ model: TINY, prompt: "hi", keep_alive: "1s", options: { num_predict: 1 } });
    expect((await ollama.ps()).models).toHaveLength(1);
    await Bun.sleep(2600);
    expect((await ollama.ps()).models).toHaveLength(0);
  });

  test("errors are Ollama's: {error} with the right status", async () => {
    const missing = await post("/api/chat", { model: "nope", messages: [{ role: "user", content: "hi" }] });
    expect(missing.status).toBe(404);
    expect(await json(missing)).toEqual({ error: "model 'nope' not found" });
    const bad = await post("/api/chat", { model: 5 });
    expect(bad.status).toBe(400);
    expect(typeof (await json(bad)).error).toBe("string");
    const images = await post("/api/chat", {
      model: TINY,
      messages: [{ role: "user", content: "what is this?", images: ["aGk="] }],
    });
    expect(images.status).toBe(400);
    expect((await json(images)).error).toContain("image");
    // curl -d sends a form content type: Ollama reads it as JSON, so does llmatic
    const form = await fetch(`${server.url}/api/show`, { method: "POST", body: JSON.stringify({ model: TINY }) });
    expect(form.status).toBe(200);
    await expect(ollama.show({ model: "nope" })).rejects.toThrow("not found");
  });

  test("pull from the hub with progress, serve the pulled model, copy it, delete both", async () => {
    const ref = "hf.co/acme/tiny-GGUF:Q8_0";
    const statuses: string[] = [];
    let completed = 0;
    for await (const p of await ollama.pull({ model: ref, stream: true })) {
      statuses.push(p.status);
      if (p.completed) completed = p.completed;
    }
    expect(statuses[0]).toBe("pulling manifest");
    expect(statuses.at(-1)).toBe("success");
    expect(statuses.some((s) => s.startsWith("pulling tiny-Q8_0.gguf"))).toBe(true);
    expect(completed).toBe(model.length);
    expect((await ollama.list()).models.map((m) => m.name)).toContain(ref);
    const r = await ollama.chat({
      model: ref,
      messages: [{ role: "user", content: "hi" }],
      options: { num_predict: 2 },
    });
    expect(r.eval_count).toBe(2);
    await ollama.copy({ source: ref, destination: "tiny-copy" });
    expect((await ollama.show({ model: "tiny-copy" })).details.family).toBe("qwen2");
    const file = join(CACHE, "models", "hf", "acme", "tiny-GGUF", "tiny-Q8_0.gguf");
    expect(existsSync(file)).toBe(true);
    await ollama.delete({ model: ref });
    // the copy still uses the file
    expect(existsSync(file)).toBe(true);
    await ollama.delete({ model: "tiny-copy" });
    expect(existsSync(file)).toBe(false);
    const names = (await ollama.list()).models.map((m) => m.name);
    expect(names).not.toContain(ref);
    expect(names).not.toContain("tiny-copy:latest");
    // a model from --model cannot be deleted this way
    const refused = await fetch(`${server.url}/api/delete`, {
      method: "DELETE",
      body: JSON.stringify({ model: TINY }),
    });
    expect(refused.status).toBe(400);
    const unknown = await post("/api/pull", { model: "acme/missing-GGUF:Q8_0", stream: false });
    expect(unknown.status).toBe(404);
  });
});

describe("rerank", () => {
  const documents = [
    "The cat sat on the mat.",
    { text: "Paris is the capital of France." },
    "Bananas are yellow.",
    "France's capital city is Paris.",
  ];
  test("results sorted, top_n honoured, indexes and scores consistent, the same twice", async () => {
    const body = { model: TINY, query: "What is the capital of France?", documents, top_n: 3 };
    const a = await json(post("/v1/rerank", body));
    expect(a.scorer).toBe("query-logprob");
    expect(a.results).toHaveLength(3);
    const scores = a.results.map((r: { relevance_score: number }) => r.relevance_score);
    expect([...scores].sort((x, y) => y - x)).toEqual(scores);
    for (const r of a.results) {
      const d = documents[r.index];
      expect(r.document.text).toBe(typeof d === "string" ? d : (d as { text: string }).text);
    }
    expect(new Set(a.results.map((r: { index: number }) => r.index)).size).toBe(3);
    expect(a.usage.total_tokens).toBeGreaterThan(0);
    const all = await json(post("/rerank", { ...body, top_n: undefined, return_documents: false }));
    expect(all.results).toHaveLength(4);
    expect(all.results[0].document).toBeUndefined();
    // the top 3 of all are the 3 asked for, with the same scores
    expect(all.results.slice(0, 3)).toEqual(
      a.results.map((r: { index: number; relevance_score: number }) => ({
        index: r.index,
        relevance_score: r.relevance_score,
      })),
    );
    const again = await json(post("/v1/rerank", body));
    expect(again.results).toEqual(a.results);
  });

  test("bad input is a 400", async () => {
    expect((await post("/v1/rerank", { query: "q", documents: [] })).status).toBe(400);
    expect((await post("/v1/rerank", { documents: ["a"] })).status).toBe(400);
  });
});

describe("tokens", () => {
  test("tokenize and detokenize round-trip multi-byte text; pieces", async () => {
    const content = "Grüße, 世界! 🚀 naïve café";
    const t = await json(post("/tokenize", { content }));
    expect(t.tokens.length).toBeGreaterThan(5);
    const d = await json(post("/v1/detokenize", { tokens: t.tokens }));
    expect(d.content).toBe(content);
    const p = await json(post("/v1/tokenize", { model: TINY, content: "hello world", with_pieces: true }));
    expect(p.tokens.map((x: { piece: string }) => x.piece).join("")).toBe("hello world");
    const bad = await post("/detokenize", { tokens: [1 << 30] });
    expect(bad.status).toBe(400);
  });

  test("apply-template renders the model's template", async () => {
    const r = await json(post("/apply-template", { messages: [{ role: "user", content: "ping" }] }));
    expect(r.prompt).toContain("<|im_start|>user\nping<|im_end|>");
    expect(r.prompt.endsWith("<|im_start|>assistant\n")).toBe(true);
  });
});

describe("models over HTTP", () => {
  /** The engine processes the server runs (one per loaded model). */
  const engines = async () => {
    const p = Bun.spawnSync(["pgrep", "-P", String(server.proc.pid)]);
    return new TextDecoder().decode(p.stdout).split("\n").filter(Boolean).length;
  };

  test("load and unload change /v1/models state and the engine processes", async () => {
    const state = async () => {
      const list = await json(fetch(`${server.url}/v1/models`));
      return list.data.find((m: { id: string }) => m.id === TINY);
    };
    await post("/v1/models/unload", { model: TINY });
    expect((await state()).state).toBe("unloaded");
    // engines that were closed (earlier tests unloaded models) may take a moment to exit
    let before = await engines();
    for (let i = 0; i < 30; i++) {
      await Bun.sleep(200);
      const now = await engines();
      if (now === before) break;
      before = now;
    }
    const loaded = (await json(post("/v1/models/load", { model: TINY }))) as {
      state: string;
      context_length: number;
      capabilities: string[];
      size: number;
    };
    expect(loaded.state).toBe("loaded");
    expect(loaded.context_length).toBeGreaterThan(0);
    expect(loaded.capabilities).toContain("completion");
    expect(loaded.size).toBe(model.length);
    expect(await engines()).toBe(before + 1);
    const un = (await json(post("/v1/models/unload", { model: TINY }))) as { unloaded: boolean };
    expect(un.unloaded).toBe(true);
    expect((await state()).state).toBe("unloaded");
    // the engine process is gone
    for (let i = 0; i < 50 && (await engines()) > before; i++) await Bun.sleep(100);
    expect(await engines()).toBe(before);
    expect((await post("/v1/models/load", { model: "nope" })).status).toBe(404);
  });
});
