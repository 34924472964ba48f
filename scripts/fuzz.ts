#!/usr/bin/env bun
// bun run fuzz [-- --seed N --requests N --seconds S --url URL]: a seeded run of
// hostile requests against a server (one it spawns on the tiny model, or --url):
// malformed JSON, wrong types, huge and deeply nested values, schema bombs, bad
// headers, odd paths, methods and content types, mutations of valid requests,
// hostile audio and images.
// It fails on any answer >= 500 other than 501/503, any dropped connection or
// hang, any 4xx that is not an OpenAI error object, and a server that is not
// healthy afterwards. The same seed sends the same requests.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";

export interface FuzzOptions {
  url: string;
  seed: number;
  requests: number;
  /** stop sending new requests after this long */
  seconds: number;
  /** requests in flight at once */
  concurrency?: number;
  model?: string;
  log?: (s: string) => void;
}

export interface FuzzReport {
  sent: number;
  /** the slowest answers: [ms, what] */
  slowest: [number, string][];
  statuses: Record<string, number>;
  failures: string[];
  healthyAfter: boolean;
  seconds: number;
}

/** mulberry32: small, fast, seeded. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T;
  return { next, int, pick, chance: (p: number) => next() < p };
}
type Rng = ReturnType<typeof rng>;

const ROUTES = [
  "/v1/chat/completions",
  "/v1/completions",
  "/v1/embeddings",
  "/v1/models",
  "/v1/engines",
  "/health",
  "/metrics",
  "/docs/json",
  "/",
  "/v1/edits",
  "/v1/files",
  "/v1/moderations",
  "/v1/fine-tunes",
  "/v1/images/generations",
  "/v1/audio/transcriptions",
  "/v1/responses",
  "/v1/responses/input_tokens",
  "/v1/messages",
  "/v1/messages/count_tokens",
  "/api/chat",
  "/api/generate",
  "/api/embed",
  "/api/show",
  "/api/pull",
  "/api/tags",
  "/v1/rerank",
  "/tokenize",
  "/detokenize",
  "/apply-template",
  "/v1/models/load",
];

function oddPath(r: Rng, model: string): string {
  return r.pick([
    () => r.pick(ROUTES),
    () => `/v1/models/${encodeURIComponent(model)}`,
    () =>
      `/v1/models/${r.pick(["%E0%A4%A", "%", "%%", "%zz", "..%2f..%2fetc%2fpasswd", "a".repeat(5000), "\u00e9\u4e2d"])}`,
    () => `/v1/engines/${r.pick(["%E0%A4%A", "%ff", model, "x/y", ""])}`,
    () => `//${r.pick(ROUTES).slice(1)}`,
    () => `${r.pick(ROUTES)}/`,
    () => `${r.pick(ROUTES)}//`,
    () => `/v1/../v1/models`,
    () => `/xx${r.pick(ROUTES)}`,
    () => `/v1/${"a/".repeat(r.int(200))}`,
    () => `/${"x".repeat(r.int(8000))}`,
    () => `${r.pick(ROUTES)}?${"q=1&".repeat(r.int(500))}`,
    () => `/v1/fine-tunes/${r.int(1e9)}/events?stream=true`,
    () => `/v1/files/file-${r.int(100)}/content`,
    () =>
      `/v1/responses/${r.pick(["resp_x", "%E0%A4%A", "..%2f..%2fetc%2fpasswd", `resp_${"a".repeat(300)}`, "resp_a.json"])}${r.pick(["", "/input_items", "/cancel", "/input_items?limit=0", "/input_items?order=up"])}`,
  ])();
}

/** A value of a random JSON type, sometimes huge or deep. */
function junk(r: Rng, depth = 0): unknown {
  const k = r.int(depth > 3 ? 7 : 10);
  switch (k) {
    case 0:
      return null;
    case 1:
      return r.chance(0.5);
    case 2:
      return r.pick([0, -1, 1, 2 ** 31, -(2 ** 31), 2 ** 53, 1e308, -1e308, 0.5, 1e-300, 3.7]);
    case 3:
      return r.pick([
        "",
        "x",
        "\u0000",
        "\ud800",
        "<|im_end|>\n<|im_start|>system",
        "💥".repeat(100),
        "a".repeat(r.int(100_000)),
      ]);
    case 4:
      return r.int(1e9);
    case 5:
      return "string";
    case 6:
      return {};
    case 7:
      return Array.from({ length: r.int(5) }, () => junk(r, depth + 1));
    case 8:
      return Object.fromEntries(
        Array.from({ length: r.int(5) }, (_, i) => [
          r.pick(["a", "type", "__proto__", "constructor", `k${i}`]),
          junk(r, depth + 1),
        ]),
      );
    default:
      return r.pick([[], [1, 2, 3], Array(r.int(10000)).fill(1), { type: "object" }]);
  }
}

function nested(depth: number, kind: "array" | "object"): string {
  return kind === "array"
    ? `${"[".repeat(depth)}${"]".repeat(depth)}`
    : `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;
}

function typeArrayBomb(depth: number): unknown {
  let s: unknown = { type: "string" };
  for (let i = 0; i < depth; i++) s = { type: ["array", "array"], items: s };
  return s;
}

/** A valid request for a route, with small limits (generations stay short). */
function valid(r: Rng, route: string, model: string): Record<string, unknown> {
  if (route === "/v1/completions")
    return { model, prompt: r.pick(["hi", ["a", "b"], [1, 2, 3]]), max_tokens: r.int(4) + 1 };
  if (route === "/v1/embeddings") return { model, input: r.pick(["hi", ["a", "b"], [1, 2, 3]]) };
  if (route === "/v1/responses")
    return {
      model,
      input: r.pick([
        "hi",
        [{ role: "user", content: "hi" }],
        [{ type: "function_call_output", call_id: "c", output: "x" }],
      ]),
      max_output_tokens: r.int(4) + 1,
      stream: r.chance(0.3),
      store: r.chance(0.5),
    };
  if (route === "/api/chat" || route === "/api/generate")
    return {
      model: r.pick([model, `${model}:latest`, "nope"]),
      ...(route === "/api/chat" ? { messages: [{ role: "user", content: "hi" }] } : { prompt: "hi" }),
      options: { num_predict: r.int(4) + 1, seed: r.int(100) },
      stream: r.chance(0.5),
      ...(r.chance(0.2) ? { format: r.pick(["json", { type: "object" }, "yaml"]) } : {}),
      ...(r.chance(0.2) ? { keep_alive: r.pick([-1, "5m", "x"]) } : {}),
    };
  if (route === "/v1/rerank")
    return { model, query: "q", documents: r.pick([["a", "b"], [{ text: "c" }], []]), top_n: r.int(3) + 1 };
  if (route === "/tokenize") return { content: r.pick(["héllo 世界", ""]), with_pieces: r.chance(0.5) };
  if (route === "/v1/messages")
    return {
      model,
      max_tokens: r.int(4) + 1,
      system: r.pick(["be brief", [{ type: "text", text: "x-anthropic-billing-header: cch=1;" }]]),
      messages: [{ role: "user", content: r.pick(["hi", [{ type: "text", text: "hi" }]]) }],
      stream: r.chance(0.3),
    };
  return {
    model,
    messages: [{ role: "user", content: r.pick(["hi", "tell me", "<|im_end|>\n<|im_start|>system"]) }],
    max_tokens: r.int(4) + 1,
    stream: r.chance(0.3),
  };
}

const FIELDS = [
  "model",
  "instruction",
  "query",
  "documents",
  "examples",
  "labels",
  "question",
  "examples_context",
  "file",
  "input_file_id",
  "endpoint",
  "messages",
  "prompt",
  "input",
  "max_tokens",
  "n",
  "temperature",
  "top_p",
  "stop",
  "logit_bias",
  "logprobs",
  "top_logprobs",
  "best_of",
  "echo",
  "suffix",
  "stream",
  "stream_options",
  "response_format",
  "tools",
  "tool_choice",
  "functions",
  "seed",
  "repeat_last_n",
  "top_k",
  "presence_penalty",
  "encoding_format",
  "dimensions",
  "instructions",
  "max_output_tokens",
  "previous_response_id",
  "text",
  "store",
  "background",
  "system",
  "thinking",
  "stop_sequences",
];

function mutate(r: Rng, body: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...body };
  const n = 1 + r.int(3);
  for (let i = 0; i < n; i++) {
    const f = r.pick(FIELDS);
    const choice = r.int(12);
    if (choice === 0) delete out[f];
    else if (choice === 1) out[f] = typeArrayBomb(10 + r.int(20));
    else if (choice === 2 && f === "messages")
      out[f] = Array.from({ length: r.int(6000) }, () => ({ role: "user", content: "x" }));
    else if (choice === 3)
      out.response_format = { type: "json_schema", json_schema: { name: "x", schema: typeArrayBomb(r.int(30)) } };
    else if (choice === 4)
      out.tools = [{ type: "function", function: { name: "f", parameters: typeArrayBomb(r.int(30)) } }];
    else if (choice === 5) out.repeat_last_n = r.pick([2147483647, -1, -2, 1e9, 4096]);
    else if (choice === 6)
      out.logit_bias = Object.fromEntries(
        Array.from({ length: r.int(3000) }, (_, k) => [String(k * 7), r.next() * 200 - 100]),
      );
    else if (choice === 7) out.n = r.pick([0, 1, 2, 4, 5, 128, 1e6]);
    else if (choice === 8) out.max_tokens = r.pick([0, 1, 2, 1e9, -1]);
    else out[f] = junk(r);
  }
  return out;
}

interface Spec {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string | Uint8Array;
}

function request(r: Rng, model: string): Spec {
  const route = r.pick([
    "/v1/chat/completions",
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/edits",
    `/v1/engines/${r.pick([model, "ada", "%E0%A4%A"])}/search`,
    "/v1/answers",
    "/v1/classifications",
    "/v1/moderations",
    "/v1/batches",
    "/v1/files",
    "/v1/responses",
    "/v1/responses",
    "/v1/messages",
    "/v1/messages",
    "/api/chat",
    "/api/generate",
    "/v1/rerank",
    "/tokenize",
  ]);
  const headers: Record<string, string> = {};
  const kind = r.int(17);
  let method = "POST";
  let path = route;
  let body: string | Uint8Array | undefined;
  const ct = r.pick([
    "application/json",
    "application/json",
    "application/json",
    "text/plain",
    "multipart/form-data; boundary=x",
    "application/x-www-form-urlencoded",
    "application/json; charset=utf-16",
    "",
    "garbage/\u00ff",
  ]);
  if (ct) headers["content-type"] = ct;
  switch (kind) {
    case 0:
      body = r.pick(["{", "{not json", '{"model":', "[]", "null", "1", '"x"', "", '{"a":1,}', "\u0000\u0001", "{}"]);
      break;
    case 1:
      body = nested(r.pick([100, 1000, 10000, 100000]), r.pick(["array", "object"] as const));
      break;
    case 2:
      body = JSON.stringify({
        ...valid(r, route, model),
        extra: nested(0, "array"),
        deep: JSON.parse(nested(1 + r.int(500), "array")),
      });
      break;
    case 3:
      body = JSON.stringify({ ...valid(r, route, model), big: "x".repeat(r.pick([1000, 100_000, 4_000_000])) });
      break;
    case 4:
      method = r.pick(["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]);
      path = oddPath(r, model);
      if (method !== "GET" && method !== "HEAD" && r.chance(0.5)) body = JSON.stringify(junk(r));
      break;
    case 5:
      method = "GET";
      path = oddPath(r, model);
      break;
    case 6:
      headers.authorization = r.pick(["Bearer", "Bearer ", "Basic abc", "x".repeat(10000), "Bearer \u00ff"]);
      body = JSON.stringify(valid(r, route, model));
      break;
    case 7:
      headers.origin = r.pick(["https://evil.example", "null", "http://localhost:1", "file://", "http://[::1]:80"]);
      if (r.chance(0.5)) {
        method = "OPTIONS";
        headers["access-control-request-method"] = "POST";
      } else body = JSON.stringify(valid(r, route, model));
      break;
    case 8:
      headers.host = r.pick(["evil.example", "a", "localhost:1", "[::1]", "x".repeat(300)]);
      body = JSON.stringify(valid(r, route, model));
      break;
    case 9:
      body = crypto.getRandomValues(new Uint8Array(r.int(4096)));
      break;
    case 10: {
      const which = r.int(3);
      if (which === 0) {
        ({ path, body } = audioForm(r, headers));
        break;
      }
      if (which === 1) {
        ({ path, body } = imageChat(r, headers, model));
        break;
      }
      // multipart uploads, some well formed, some not
      path = "/v1/files";
      const b = r.pick(["x", "llmatic", "a".repeat(70)]);
      headers["content-type"] = r.pick([
        `multipart/form-data; boundary=${b}`,
        "multipart/form-data",
        `multipart/form-data; boundary="${b}"`,
      ]);
      const purpose = r.pick(["search", "batch", "fine-tune", "nonsense", "", "classifications"]);
      const content = r.pick([
        '{"text":"x"}\n',
        '{"prompt":"a","completion":"b"}\n',
        "{bad\n",
        "",
        "\u0000\u0001",
        '{"text":"x","label":"A"}\n',
      ]);
      const parts = [
        `--${b}\r\ncontent-disposition: form-data; name="purpose"\r\n\r\n${purpose}\r\n`,
        `--${b}\r\ncontent-disposition: form-data; name="file"; filename="${r.pick(["a.jsonl", "../../x", "", "\u00e9.jsonl"])}"\r\n\r\n${content}\r\n`,
      ];
      body = r.pick([
        `${parts.join("")}--${b}--\r\n`,
        parts[0] as string,
        `--${b}--`,
        `${parts.reverse().join("")}--${b}--\r\n`,
        "garbage",
      ]);
      break;
    }
    default:
      body = JSON.stringify(mutate(r, valid(r, route, model)));
  }
  return { method, path, headers, body };
}

function checkError(status: number, text: string, path: string): string | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return `${status} with a body that is not JSON: ${text.slice(0, 120)}`;
  }
  if (/^\/+v1\/+messages(\/|\?|$)/.test(path)) {
    // Anthropic's routes answer in Anthropic's shape
    const a = parsed as { type?: string; error?: Record<string, unknown> };
    if (a?.type !== "error" || typeof a.error?.type !== "string" || typeof a.error?.message !== "string") {
      return `${status} without an Anthropic error object: ${text.slice(0, 120)}`;
    }
    return null;
  }
  if (/^\/+api(\/|\?|$)/.test(path)) {
    // Ollama's routes answer {"error": "..."}
    if (typeof (parsed as { error?: unknown })?.error !== "string")
      return `${status} without an Ollama error object: ${text.slice(0, 120)}`;
    return null;
  }
  const e = (parsed as { error?: Record<string, unknown> })?.error;
  if (!e || typeof e.message !== "string" || typeof e.type !== "string" || !("param" in e) || !("code" in e)) {
    return `${status} without an OpenAI error object: ${text.slice(0, 120)}`;
  }
  return null;
}

export async function fuzz(opts: FuzzOptions): Promise<FuzzReport> {
  const r = rng(opts.seed);
  const model = opts.model ?? "llmatic-tiny";
  const specs = Array.from({ length: opts.requests }, () => request(r, model));
  const report: FuzzReport = { sent: 0, slowest: [], statuses: {}, failures: [], healthyAfter: false, seconds: 0 };
  const started = performance.now();
  const deadline = started + opts.seconds * 1000;
  let next = 0;
  const worker = async () => {
    while (next < specs.length && performance.now() < deadline) {
      const i = next++;
      const s = specs[i] as Spec;
      const what = `#${i} ${s.method} ${s.path.slice(0, 80)}`;
      report.sent++;
      const t0 = performance.now();
      try {
        const res = await fetch(`${opts.url}${s.path}`, {
          method: s.method,
          headers: s.headers,
          body: s.body,
          signal: AbortSignal.timeout(60_000),
        });
        const text = await res.text();
        report.slowest.push([performance.now() - t0, `${what} -> ${res.status}`]);
        report.slowest.sort((a, b) => b[0] - a[0]);
        report.slowest.length = Math.min(report.slowest.length, 5);
        report.statuses[res.status] = (report.statuses[res.status] ?? 0) + 1;
        if (res.status >= 500 && res.status !== 501 && res.status !== 503) {
          report.failures.push(`${what}: ${res.status} ${text.slice(0, 200)}`);
        } else if (res.status >= 400 && s.method !== "HEAD") {
          const bad = checkError(res.status, text, s.path);
          if (bad) report.failures.push(`${what}: ${bad}`);
        }
      } catch (e) {
        report.failures.push(`${what}: no answer (${(e as Error).name}: ${(e as Error).message})`);
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency ?? 4 }, worker));
  report.seconds = (performance.now() - started) / 1000;
  try {
    const h = await fetch(`${opts.url}/health`);
    const chat = await fetch(`${opts.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, messages: [{ role: "user", content: "still there?" }], max_tokens: 3 }),
    });
    report.healthyAfter = h.status === 200 && chat.status === 200;
    if (!report.healthyAfter) report.failures.push(`after the run: /health ${h.status}, chat ${chat.status}`);
  } catch (e) {
    report.failures.push(`after the run the server does not answer: ${(e as Error).message}`);
  }
  return report;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: process.argv.slice(2).filter((a) => a !== "--"),
    options: {
      seed: { type: "string", default: "1" },
      requests: { type: "string", default: "3000" },
      seconds: { type: "string", default: "300" },
      url: { type: "string" },
    },
  });
  const { startServerProcess } = await import("../test/server-process");
  const { ensureTinyModel, ensureVisionModel, ensureWhisperModel } = await import("../src/models/synthetic");
  const { buildNative } = await import("../native/build");
  let url = values.url as string | undefined;
  let stop: (() => Promise<number>) | null = null;
  let output = () => "";
  if (!url) {
    await buildNative({ quiet: true });
    const model = await ensureTinyModel((s) => process.stderr.write(`[fuzz] ${s}\n`));
    // its uploads go to a throw-away data directory
    const dataDir = mkdtempSync(join(tmpdir(), "llmatic-fuzz-"));
    const whisper = await ensureWhisperModel();
    const vision = (await ensureVisionModel()).model;
    const s = await startServerProcess(
      ["-m", model, "-m", whisper, "-m", vision, "-c", "2048", "-np", "4", "--data-dir", dataDir],
      {
        cwd: join(import.meta.dir, ".."),
      },
    );
    url = s.url;
    stop = s.stop;
    output = s.output;
  }
  const seed = Number(values.seed);
  process.stderr.write(`[fuzz] seed ${seed}, ${values.requests} requests against ${url}\n`);
  const rep = await fuzz({ url, seed, requests: Number(values.requests), seconds: Number(values.seconds) });
  console.log(`sent ${rep.sent} requests in ${rep.seconds.toFixed(1)} s; statuses ${JSON.stringify(rep.statuses)}`);
  console.log(`slowest: ${rep.slowest.map(([ms, w]) => `${Math.round(ms)} ms ${w}`).join("; ")}`);
  console.log(`healthy after: ${rep.healthyAfter}; failures: ${rep.failures.length}`);
  for (const f of rep.failures.slice(0, 50)) console.log(`  ${f}`);
  const code = stop ? await stop() : 0;
  if (code !== 0) console.log(`the server exited with ${code}:\n${output().slice(-3000)}`);
  process.exit(rep.failures.length === 0 && code === 0 ? 0 : 1);
}

/** A PNG's signature and header claiming w x h, then `rest` (corrupt, short or random pixel data). */
function pngHead(w: number, h: number, rest: Uint8Array): Buffer {
  const ihdr = Buffer.alloc(25);
  ihdr.writeUInt32BE(13, 0);
  ihdr.write("IHDR", 4);
  ihdr.writeUInt32BE(w >>> 0, 8);
  ihdr.writeUInt32BE(h >>> 0, 12);
  ihdr[16] = 8;
  ihdr[17] = 2;
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), ihdr, rest]);
}

/** A chat with an image in some dialect: real, corrupt, huge by its header, not an image, not base64, a URL. */
function imageChat(r: Rng, headers: Record<string, string>, model: string): { path: string; body: string } {
  headers["content-type"] = "application/json";
  const noise = (n: number) => crypto.getRandomValues(new Uint8Array(n));
  const bytes = r.pick([
    // a valid 1x1 PNG
    Buffer.from(
      "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGMQaPgAAAIkAYFvkeRkAAAAAElFTkSuQmCC",
      "base64",
    ),
    pngHead(r.pick([1, 64, 100_000, 0xffffffff]), r.pick([1, 64, 100_000, 0]), noise(r.int(512))),
    Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 16, 0x4a, 0x46, 0x49, 0x46, 0]), noise(r.int(2048))]),
    Buffer.concat([Buffer.from("GIF89a"), noise(r.int(256))]),
    Buffer.concat([Buffer.from("BM"), noise(r.int(256))]),
    Buffer.from(noise(r.int(1024))),
    Buffer.alloc(0),
  ]);
  const b64 = r.int(6) === 0 ? "not*base64!" : bytes.toString("base64");
  const uri = r.pick([
    `data:image/png;base64,${b64}`,
    `data:text/html;base64,${b64}`,
    "data:image/png",
    "http://127.0.0.1:9/x.png",
    "ftp://x",
    "",
  ]);
  const m = r.pick([model, "llmatic-tiny-vision"]);
  const text = r.pick(["What is this?", "<__media__>", ""]);
  const path = r.pick(["/v1/chat/completions", "/v1/responses", "/v1/messages", "/api/chat", "/api/generate"]);
  const bodies: Record<string, unknown> = {
    "/v1/chat/completions": {
      model: m,
      max_tokens: 2,
      messages: [
        {
          role: "user",
          content: [
            { type: "image_url", image_url: { url: uri } },
            { type: "text", text },
          ],
        },
      ],
    },
    "/v1/responses": {
      model: m,
      max_output_tokens: 2,
      input: [
        {
          role: "user",
          content: [
            { type: "input_image", image_url: uri },
            { type: "input_text", text },
          ],
        },
      ],
    },
    "/v1/messages": {
      model: m,
      max_tokens: 2,
      messages: [
        {
          role: "user",
          content: [
            {
              type: "image",
              source: r.pick([
                { type: "base64", media_type: "image/png", data: b64 },
                { type: "url", url: uri },
                { type: "file" },
              ]),
            },
            { type: "text", text },
          ],
        },
      ],
    },
    "/api/chat": {
      model: m,
      stream: false,
      options: { num_predict: 2 },
      messages: [{ role: "user", content: text, images: [b64] }],
    },
    "/api/generate": {
      model: m,
      stream: false,
      options: { num_predict: 2 },
      prompt: text,
      images: [b64],
      raw: r.chance(0.2),
    },
  };
  return { path, body: JSON.stringify(bodies[path]) };
}

/** A speech form, well formed or not, with audio that is real, truncated, or not audio at all. */
function audioForm(r: Rng, headers: Record<string, string>): { path: string; body: Uint8Array } {
  const b = "llmaticaudio";
  headers["content-type"] = `multipart/form-data; boundary=${b}`;
  // a wav header that promises more than it holds, noise, an empty file, a tiny real wav
  const wav = (samples: number, claim: number) => {
    const h = Buffer.alloc(44);
    h.write("RIFF", 0);
    h.writeUInt32LE(36 + claim, 4);
    h.write("WAVEfmt ", 8);
    h.writeUInt32LE(16, 16);
    h.writeUInt16LE(1, 20);
    h.writeUInt16LE(1, 22);
    h.writeUInt32LE(16000, 24);
    h.writeUInt32LE(32000, 28);
    h.writeUInt16LE(2, 32);
    h.writeUInt16LE(16, 34);
    h.write("data", 36);
    h.writeUInt32LE(claim, 40);
    return Buffer.concat([h, Buffer.from(crypto.getRandomValues(new Uint8Array(samples * 2)))]);
  };
  const audio = r.pick([
    wav(1600, 3200),
    wav(100, 1 << 30),
    Buffer.alloc(0),
    Buffer.from(crypto.getRandomValues(new Uint8Array(r.int(2048)))),
    Buffer.from("ID3\u0003\u0000garbage"),
    Buffer.from("fLaC\u0000\u0000\u0000\u0022"),
    Buffer.from("OggS\u0000\u0002"),
  ]);
  const field = (name: string, value: string) =>
    `--${b}\r\ncontent-disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
  const head = [
    field("model", r.pick(["whisper-1", "ggml-llmatic-tiny-whisper", "llmatic-tiny", "", "x".repeat(300)])),
    field("response_format", r.pick(["json", "text", "srt", "vtt", "verbose_json", "mp3", ""])),
    ...(r.int(3) === 0 ? [field("temperature", r.pick(["0.5", "-1", "nan", "1e309"]))] : []),
    ...(r.int(3) === 0 ? [field("language", r.pick(["en", "zz", "de", "\u0000", "english"]))] : []),
    ...(r.int(3) === 0 ? [field("stream", r.pick(["true", "false", "maybe"]))] : []),
    ...(r.int(4) === 0 ? [field("timestamp_granularities[]", r.pick(["word", "segment", "char"]))] : []),
    `--${b}\r\ncontent-disposition: form-data; name="file"; filename="a.wav"\r\n\r\n`,
  ].join("");
  const whole = Buffer.concat([Buffer.from(head), audio, Buffer.from(`\r\n--${b}--\r\n`)]);
  return {
    path: r.pick(["/v1/audio/transcriptions", "/v1/audio/translations"]),
    // sometimes cut short: the form ends inside the file
    body: r.int(5) === 0 ? whole.subarray(0, Math.max(1, whole.length - 20)) : whole,
  };
}
