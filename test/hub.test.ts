// Models from the hub, against a local HTTP server that speaks the parts of the
// Hugging Face protocol llmatic uses (no internet here): listing, x-linked-size
// and x-linked-etag (sha256), Range requests; plus interrupted and corrupt
// transfers.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseModelRef, pickQuantFile } from "../src/models/hub";
import { ensureVisionModel, TINY_MODEL_PATH } from "../src/models/synthetic";
import { clientFor, type ServerProcess, startServerProcess } from "./server-process";

const ROOT = join(import.meta.dir, "..");
const model = readFileSync(TINY_MODEL_PATH);
const sha = createHash("sha256").update(model).digest("hex");
const FILES = ["tiny-Q4_K_M.gguf", "tiny-Q8_0.gguf", "README.md"];
/** a vision repository: the model and its projector, as llama.cpp's converters name them */
const VISION_FILES = new Map<string, Buffer>();

/** What the fake hub does with the next downloads. */
const hub = {
  mode: "ok" as "ok" | "cut-once" | "corrupt" | "redirect",
  /** Authorization headers the hub and the CDN it redirects to received */
  auth: { hub: [] as (string | null)[], cdn: [] as (string | null)[] },
  cutAt: 4_000_000,
  ranges: [] as (string | null)[],
  gets: 0,
};

let server: ReturnType<typeof Bun.serve>;
let cdn: ReturnType<typeof Bun.serve>;
let endpoint: string;

beforeAll(async () => {
  const vision = await ensureVisionModel();
  VISION_FILES.set("tiny-vl-Q8_0.gguf", readFileSync(vision.model));
  VISION_FILES.set("mmproj-tiny-vl-F16.gguf", readFileSync(vision.projector));
  VISION_FILES.set("mmproj-tiny-vl-Q8_0.gguf", readFileSync(vision.projector));
  // another origin: where the hub's downloads redirect to (HF's CDN)
  cdn = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch(req) {
      hub.auth.cdn.push(req.headers.get("authorization"));
      return new Response(model, { headers: { "content-type": "application/octet-stream" } });
    },
  });
  server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch(req) {
      const url = new URL(req.url);
      if (url.pathname === "/api/models/acme/tiny-VL-GGUF") {
        return Response.json({ siblings: [...VISION_FILES.keys()].map((rfilename) => ({ rfilename })) });
      }
      const vl = /^\/acme\/tiny-VL-GGUF\/resolve\/main\/(.+)$/.exec(url.pathname);
      if (vl) {
        const file = VISION_FILES.get(decodeURIComponent(vl[1] as string));
        if (!file) return new Response("not found", { status: 404 });
        const digest = createHash("sha256").update(file).digest("hex");
        const headers = { "x-linked-size": String(file.length), "x-linked-etag": `"${digest}"` };
        return new Response(req.method === "HEAD" ? null : file, { headers });
      }
      if (url.pathname === "/api/models/acme/tiny-GGUF") {
        return Response.json({ id: "acme/tiny-GGUF", siblings: FILES.map((rfilename) => ({ rfilename })) });
      }
      const m = /^\/acme\/tiny-GGUF\/resolve\/main\/(.+)$/.exec(url.pathname);
      if (!m || !FILES.includes(decodeURIComponent(m[1] as string))) return new Response("not found", { status: 404 });
      hub.auth.hub.push(req.headers.get("authorization"));
      if (hub.mode === "redirect") {
        return new Response(null, {
          status: 302,
          headers: {
            location: `http://127.0.0.1:${cdn.port}/blob/${m[1]}`,
            "x-linked-size": String(model.length),
            "x-linked-etag": `"${sha}"`,
          },
        });
      }
      const headers = {
        "accept-ranges": "bytes",
        "x-linked-size": String(model.length),
        "x-linked-etag": `"${sha}"`,
        "content-type": "application/octet-stream",
      };
      if (req.method === "HEAD")
        return new Response(null, { headers: { ...headers, "content-length": String(model.length) } });
      hub.gets++;
      const range = req.headers.get("range");
      hub.ranges.push(range);
      let body: Uint8Array = model;
      if (hub.mode === "corrupt") {
        body = Uint8Array.from(model);
        body[body.length - 100] = (body[body.length - 100] as number) ^ 0xff;
      }
      let start = 0;
      if (range) start = Number(/bytes=(\d+)-/.exec(range)?.[1] ?? 0);
      const slice = body.subarray(start);
      const status = range ? 206 : 200;
      const rangeHeaders = range ? { "content-range": `bytes ${start}-${model.length - 1}/${model.length}` } : {};
      if (hub.mode === "cut-once") {
        hub.mode = "ok";
        // send part of the file, then drop the connection
        const part = slice.subarray(0, hub.cutAt);
        const stream = new ReadableStream({
          async pull(controller) {
            controller.enqueue(part);
            await Bun.sleep(50);
            // ends the body short of its content-length: the client sees a cut transfer
            controller.close();
          },
        });
        return new Response(stream, {
          status,
          headers: { ...headers, ...rangeHeaders, "content-length": String(slice.length) },
        });
      }
      return new Response(slice, { status, headers: { ...headers, ...rangeHeaders } });
    },
  });
  endpoint = `http://127.0.0.1:${server.port}`;
});

afterAll(() => {
  server?.stop(true);
  cdn?.stop(true);
});

function freshCache(): string {
  return mkdtempSync(join(tmpdir(), "llmatic-hub-"));
}

/** `llmatic pull` in a child process (async: the fake hub lives in this process). */
async function pull(cache: string, ref: string, hfEndpoint = endpoint, extraEnv: Record<string, string> = {}) {
  const p = Bun.spawn([process.execPath, join(ROOT, "src", "main.ts"), "pull", ref], {
    env: { ...process.env, LLMATIC_CACHE: cache, HF_ENDPOINT: hfEndpoint, ...extraEnv },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out: out.trim(), err };
}

describe("model references", () => {
  test("parsing", () => {
    expect(parseModelRef("hf:acme/tiny-GGUF/tiny-Q8_0.gguf")).toMatchObject({
      kind: "hf",
      repo: "acme/tiny-GGUF",
      file: "tiny-Q8_0.gguf",
    });
    expect(parseModelRef("acme/tiny-GGUF:q8_0")).toMatchObject({
      kind: "hf",
      repo: "acme/tiny-GGUF",
      file: null,
      quant: "q8_0",
    });
    expect(parseModelRef("acme/tiny-GGUF")).toMatchObject({ kind: "hf", quant: "Q4_K_M" });
    // whisper.cpp's models are ggml-*.bin files
    expect(parseModelRef("hf:ggerganov/whisper.cpp/ggml-base.en-q5_1.bin")).toMatchObject({
      kind: "hf",
      repo: "ggerganov/whisper.cpp",
      file: "ggml-base.en-q5_1.bin",
    });
    expect(parseModelRef("./models/x.gguf")).toEqual({ kind: "path", path: "./models/x.gguf" });
    expect(parseModelRef(TINY_MODEL_PATH)).toEqual({ kind: "path", path: TINY_MODEL_PATH });
  });

  test("references that would write outside the cache are refused", () => {
    for (const bad of [
      "hf:a/b/../../x.gguf",
      "hf:a/b/../x.gguf",
      "hf:a/b/./x.gguf",
      "hf:a/b//x.gguf",
      "hf:../b/x.gguf",
      "hf:a/../x.gguf",
      "hf:a/b/sub\\..\\x.gguf",
    ]) {
      expect(() => parseModelRef(bad)).toThrow(/invalid hub reference/);
    }
    expect(parseModelRef("hf:a/b/sub/x.gguf")).toMatchObject({ repo: "a/b", file: "sub/x.gguf" });
  });

  test("a quantization picks its file (the first part of a split model)", () => {
    const files = [
      "a-Q4_K_M.gguf",
      "a-Q8_0.gguf",
      "big-Q4_K_M-00002-of-00003.gguf",
      "big-Q4_K_M-00001-of-00003.gguf",
      "mmproj-Q8_0.gguf",
    ];
    expect(pickQuantFile(files, "Q8_0")).toBe("a-Q8_0.gguf");
    expect(pickQuantFile(files.slice(2), "Q4_K_M")).toBe("big-Q4_K_M-00001-of-00003.gguf");
    expect(pickQuantFile(files, "IQ2_XS")).toBeNull();
  });
});

describe("pull", () => {
  test("downloads with progress, verifies, lands in the cache, and is reused offline", async () => {
    const cache = freshCache();
    hub.ranges = [];
    const r = await pull(cache, "hf:acme/tiny-GGUF/tiny-Q8_0.gguf");
    expect(r.code).toBe(0);
    expect(r.err).toContain("100%");
    expect(readFileSync(r.out).equals(model)).toBe(true);
    expect(r.out.startsWith(cache)).toBe(true);
    expect(readdirSync(join(cache, "models", "hf", "acme", "tiny-GGUF")).filter((f) => f.endsWith(".partial"))).toEqual(
      [],
    );
    // no hub at all now: the cached file is used
    const offline = await pull(cache, "hf:acme/tiny-GGUF/tiny-Q8_0.gguf", "http://127.0.0.1:9");
    expect(offline.code).toBe(0);
    expect(offline.out).toBe(r.out);
  }, 60_000);

  test("owner/repo:QUANT resolves a file once, then works offline", async () => {
    const cache = freshCache();
    const r = await pull(cache, "acme/tiny-GGUF:Q8_0");
    expect(r.code).toBe(0);
    expect(r.out.endsWith("tiny-Q8_0.gguf")).toBe(true);
    const dflt = await pull(cache, "acme/tiny-GGUF");
    expect(dflt.out.endsWith("tiny-Q4_K_M.gguf")).toBe(true);
    const offline = await pull(cache, "acme/tiny-GGUF:Q8_0", "http://127.0.0.1:9");
    expect(offline.code).toBe(0);
    expect(offline.out).toBe(r.out);
    const missing = await pull(cache, "acme/tiny-GGUF:IQ1_S");
    expect(missing.code).not.toBe(0);
    expect(missing.err).toContain("no IQ1_S");
  }, 60_000);

  test("an interrupted transfer resumes where it stopped (HTTP Range)", async () => {
    const cache = freshCache();
    hub.mode = "cut-once";
    hub.ranges = [];
    const r = await pull(cache, "hf:acme/tiny-GGUF/tiny-Q4_K_M.gguf");
    expect(r.code).toBe(0);
    expect(readFileSync(r.out).equals(model)).toBe(true);
    expect(hub.ranges[0]).toBeNull();
    const resumed = hub.ranges.find((x) => x !== null);
    expect(resumed).toBeDefined();
    expect(Number(/bytes=(\d+)-/.exec(resumed as string)?.[1])).toBeGreaterThan(0);
  }, 60_000);

  test("a partial file left by an earlier run is resumed, not restarted", async () => {
    const cache = freshCache();
    const dir = join(cache, "models", "hf", "acme", "tiny-GGUF");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "tiny-Q8_0.gguf.partial"), model.subarray(0, 5_000_000));
    hub.ranges = [];
    const r = await pull(cache, "hf:acme/tiny-GGUF/tiny-Q8_0.gguf");
    expect(r.code).toBe(0);
    expect(hub.ranges).toEqual(["bytes=5000000-"]);
    expect(readFileSync(r.out).equals(model)).toBe(true);
  }, 60_000);

  test("HF_TOKEN goes to the hub, never to the host a download redirects to", async () => {
    const cache = freshCache();
    hub.mode = "redirect";
    hub.auth = { hub: [], cdn: [] };
    const r = await pull(cache, "hf:acme/tiny-GGUF/tiny-Q8_0.gguf", endpoint, { HF_TOKEN: "hf_secret" });
    hub.mode = "ok";
    expect(r.code).toBe(0);
    expect(readFileSync(r.out).equals(model)).toBe(true);
    expect(hub.auth.hub.length).toBeGreaterThan(0);
    expect(hub.auth.hub.every((a) => a === "Bearer hf_secret")).toBe(true);
    expect(hub.auth.cdn.length).toBeGreaterThan(0);
    expect(hub.auth.cdn.every((a) => a === null)).toBe(true);
  }, 60_000);

  test("a corrupt download is rejected and nothing lands", async () => {
    const cache = freshCache();
    hub.mode = "corrupt";
    const r = await pull(cache, "hf:acme/tiny-GGUF/tiny-Q8_0.gguf");
    hub.mode = "ok";
    expect(r.code).not.toBe(0);
    expect(r.err).toContain("corrupt");
    expect(r.err).toContain(sha);
    const dir = join(cache, "models", "hf", "acme", "tiny-GGUF");
    expect(existsSync(join(dir, "tiny-Q8_0.gguf"))).toBe(false);
    expect(existsSync(join(dir, "tiny-Q8_0.gguf.partial"))).toBe(false);
  }, 60_000);
});

test("a vision repository's projector is pulled beside its model, and the server serves both", async () => {
  const cache = freshCache();
  let s: ServerProcess | null = null;
  try {
    const r = await pull(cache, "acme/tiny-VL-GGUF:Q8_0");
    expect(r.code).toBe(0);
    const dir = join(cache, "models", "hf", "acme", "tiny-VL-GGUF");
    // the F16 projector, not the Q8_0 one
    expect(
      readdirSync(dir)
        .filter((f) => f.endsWith(".gguf"))
        .sort(),
    ).toEqual(["mmproj-tiny-vl-F16.gguf", "tiny-vl-Q8_0.gguf"]);
    s = await startServerProcess(["-m", "acme/tiny-VL-GGUF:Q8_0"], {
      env: { LLMATIC_CACHE: cache, HF_ENDPOINT: "http://127.0.0.1:9" },
    });
    const client = clientFor(s);
    const png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGMQaPgAAAIkAYFvkeRkAAAAAElFTkSuQmCC";
    const c = await client.chat.completions.create({
      model: "acme/tiny-VL-GGUF:Q8_0",
      max_tokens: 1,
      messages: [
        {
          role: "user",
          content: [
            { type: "image_url", image_url: { url: `data:image/png;base64,${png}` } },
            { type: "text", text: "hi" },
          ],
        },
      ],
    });
    expect(c.usage?.prompt_tokens ?? 0).toBeGreaterThan(16);
  } finally {
    await s?.stop();
    rmSync(cache, { recursive: true, force: true });
  }
}, 60_000);

test("the server serves a hub model by its reference", async () => {
  const cache = freshCache();
  let s: ServerProcess | null = null;
  try {
    s = await startServerProcess(["-m", "acme/tiny-GGUF:Q8_0"], {
      env: { LLMATIC_CACHE: cache, HF_ENDPOINT: endpoint },
    });
    const client = clientFor(s);
    expect((await client.models.list()).data.map((m) => m.id)).toEqual(["acme/tiny-GGUF:Q8_0"]);
    const r = await client.chat.completions.create({
      model: "acme/tiny-GGUF:Q8_0",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 3,
    });
    expect(r.usage?.completion_tokens).toBe(3);
    expect(s.output()).toContain("[download acme/tiny-GGUF:Q8_0]");
  } finally {
    await s?.stop();
    rmSync(cache, { recursive: true, force: true });
  }
}, 60_000);
