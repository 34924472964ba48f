// Speech to text with a generated whisper.cpp model (random weights: the text is
// gibberish, its shape is real) and whisper.cpp's own JFK clip: every response
// format, translations, the official client, streaming, bad input, and a
// transcription beside a chat stream.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI, { toFile } from "openai";
import { speechSamples } from "../src/audio/samples";
import { ensureWhisperModel, TINY_MODEL_PATH } from "../src/models/synthetic";
import { encodeFlac } from "./flac";
import { type ServerProcess, startServerProcess } from "./server-process";

setDefaultTimeout(120_000);

let server: ServerProcess;
let hub: ReturnType<typeof Bun.serve>;
const CACHE = mkdtempSync(join(tmpdir(), "llmatic-audio-cache-"));
let client: OpenAI;
let wav: Buffer;
let mp3: Buffer;
const WHISPER = "ggml-llmatic-tiny-whisper";

beforeAll(async () => {
  const samples = await speechSamples();
  wav = readFileSync(samples.wav);
  mp3 = readFileSync(samples.mp3);
  // a hub with whisper.cpp's layout: ggerganov/whisper.cpp/ggml-*.bin
  const bin = readFileSync(await ensureWhisperModel());
  const sha = createHash("sha256").update(bin).digest("hex");
  hub = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch(req) {
      if (new URL(req.url).pathname !== "/ggerganov/whisper.cpp/resolve/main/ggml-tiny.bin")
        return new Response("not found", { status: 404 });
      const headers = {
        "x-linked-size": String(bin.length),
        "x-linked-etag": `"${sha}"`,
        "content-length": String(bin.length),
      };
      return new Response(req.method === "HEAD" ? null : bin, { headers });
    },
  });
  server = await startServerProcess(
    [
      "-m",
      await ensureWhisperModel(),
      "-m",
      TINY_MODEL_PATH,
      "-m",
      "hf:ggerganov/whisper.cpp/ggml-tiny.bin",
      "--threads",
      "1",
    ],
    { env: { LLMATIC_CACHE: CACHE, HF_ENDPOINT: `http://127.0.0.1:${hub.port}` } },
  );
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "none", maxRetries: 0 });
});

afterAll(async () => {
  await server?.stop();
  hub?.stop(true);
  rmSync(CACHE, { recursive: true, force: true });
});

/** POSTs a multipart form of `fields` (a Blob is a file). */
async function form(path: string, fields: Record<string, string | Blob | string[]>): Promise<Response> {
  const f = new FormData();
  for (const [k, v] of Object.entries(fields)) {
    if (Array.isArray(v)) for (const x of v) f.append(k, x);
    else if (v instanceof Blob) f.append(k, v, "audio");
    else f.append(k, v);
  }
  return fetch(`${server.url}/v1${path}`, { method: "POST", body: f });
}

const jfk = () => new Blob([wav], { type: "audio/wav" });

describe("transcriptions", () => {
  test("every response_format has its shape", async () => {
    const json = (await (await form("/audio/transcriptions", { file: jfk(), model: "whisper-1" })).json()) as any;
    expect(typeof json.text).toBe("string");
    expect(json.text.length).toBeGreaterThan(0);
    expect(json.usage).toEqual({ type: "duration", seconds: 11 });

    const text = await form("/audio/transcriptions", { file: jfk(), model: WHISPER, response_format: "text" });
    expect(text.headers.get("content-type")).toStartWith("text/plain");
    expect((await text.text()).trim().length).toBeGreaterThan(0);

    const srt = await (
      await form("/audio/transcriptions", { file: jfk(), model: WHISPER, response_format: "srt" })
    ).text();
    expect(srt).toMatch(/^1\n\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}\n\S/);

    const vtt = await (
      await form("/audio/transcriptions", { file: jfk(), model: WHISPER, response_format: "vtt" })
    ).text();
    expect(vtt).toStartWith("WEBVTT\n\n");
    expect(vtt).toMatch(/\n\d\d:\d\d:\d\d\.\d{3} --> \d\d:\d\d:\d\d\.\d{3}\n/);

    const verbose = (await (
      await form("/audio/transcriptions", {
        file: jfk(),
        model: WHISPER,
        response_format: "verbose_json",
        "timestamp_granularities[]": ["word", "segment"],
        language: "en",
      })
    ).json()) as any;
    expect(verbose.task).toBe("transcribe");
    expect(verbose.language).toBe("english");
    expect(verbose.duration).toBeCloseTo(11, 0);
    expect(verbose.segments.length).toBeGreaterThan(0);
    for (const s of verbose.segments) {
      expect(s.end).toBeGreaterThanOrEqual(s.start);
      expect(s.end).toBeLessThanOrEqual(verbose.duration + 0.01);
      expect(s.tokens.length).toBeGreaterThan(0);
      expect(typeof s.avg_logprob).toBe("number");
    }
    expect(verbose.words.length).toBeGreaterThan(0);
    expect(verbose.words[0]).toEqual({ word: expect.any(String), start: expect.any(Number), end: expect.any(Number) });
    expect(verbose.text).toBe(
      verbose.segments
        .map((s: any) => s.text)
        .join("")
        .trim(),
    );
  });

  test("the official client: mp3, translations, a stream", async () => {
    const t = await client.audio.transcriptions.create({
      file: await toFile(mp3, "jfk.mp3"),
      model: "whisper-1",
      response_format: "verbose_json",
    });
    expect(t.duration).toBeCloseTo(11, 0);
    expect(t.text.length).toBeGreaterThan(0);
    const tr = await client.audio.translations.create({ file: await toFile(wav, "jfk.wav"), model: "whisper-1" });
    expect(tr.text.length).toBeGreaterThan(0);
    const stream = await client.audio.transcriptions.create({
      file: await toFile(wav, "jfk.wav"),
      model: "whisper-1",
      stream: true,
    });
    let deltas = "";
    let done: any = null;
    for await (const e of stream as AsyncIterable<any>) {
      if (e.type === "transcript.text.delta") deltas += e.delta;
      if (e.type === "transcript.text.done") done = e;
    }
    expect(done).not.toBeNull();
    expect(deltas.trim()).toBe(done.text);
  });

  test("FLAC decodes to the same samples as the wav: the same text", async () => {
    // jfk.wav's samples (16 kHz mono 16-bit after its "data" chunk header) as FLAC
    const at = wav.indexOf("data", 12);
    const pcm = new Int16Array(
      wav.buffer.slice(wav.byteOffset + at + 8, wav.byteOffset + at + 8 + wav.readUInt32LE(at + 4)),
    );
    const flac = encodeFlac(pcm);
    const r = (await (
      await form("/audio/transcriptions", {
        file: new Blob([flac]),
        model: WHISPER,
        response_format: "verbose_json",
        temperature_inc: "0",
      })
    ).json()) as any;
    expect(r.duration).toBeCloseTo(pcm.length / 16000, 2);
    const fromWav = (await (
      await form("/audio/transcriptions", {
        file: jfk(),
        model: WHISPER,
        response_format: "verbose_json",
        temperature_inc: "0",
      })
    ).json()) as any;
    expect(r.duration).toBe(fromWav.duration);
    // the same samples, decoded greedily without the fallback: the same text
    expect(r.text).toBe(fromWav.text);
    expect(r.text.length).toBeGreaterThan(0);
  });

  test("bad input gets 400s in OpenAI's shape", async () => {
    const cases: [Record<string, string | Blob | string[]>, RegExp][] = [
      [{ file: new Blob(["not audio at all, just text"]), model: WHISPER }, /not audio/],
      [{ file: new Blob([]), model: WHISPER }, /empty/],
      [{ model: WHISPER }, /'file'/],
      [{ file: jfk(), model: WHISPER, response_format: "mp4" }, /response_format/],
      [{ file: jfk(), model: WHISPER, temperature: "3" }, /temperature/],
      [{ file: jfk(), model: WHISPER, language: "english please" }, /language/],
      [{ file: jfk(), model: WHISPER, language: "zz" }, /unknown language/],
      [{ file: jfk(), model: WHISPER, "timestamp_granularities[]": ["word"] }, /verbose_json/],
      [{ file: jfk(), model: "llmatic-tiny" }, /not a speech-to-text model/],
    ];
    for (const [fields, message] of cases) {
      const r = await form("/audio/transcriptions", fields);
      const body = (await r.json()) as any;
      expect({ fields: Object.keys(fields), status: r.status }).toEqual({ fields: Object.keys(fields), status: 400 });
      expect(body.error.message).toMatch(message);
    }
    const big = await form("/audio/transcriptions", {
      file: new Blob([new Uint8Array(25 * 1024 * 1024 + 100_000)]),
      model: WHISPER,
    });
    expect(big.status).toBe(400);
    expect(((await big.json()) as any).error.message).toMatch(/larger than 25 MB/);
    const notFound = await form("/audio/transcriptions", { file: jfk(), model: "no-such-model" });
    expect(notFound.status).toBe(404);
    const json = await fetch(`${server.url}/v1/audio/translations`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(json.status).toBe(400);
    // the speech model answers nothing but audio
    const chat = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: WHISPER, messages: [{ role: "user", content: "hi" }] }),
    });
    expect(chat.status).toBe(400);
    expect(((await chat.json()) as any).error.message).toMatch(/speech-to-text/);
  });

  test("a whisper model from the hub (hf:owner/repo/ggml-*.bin) is downloaded on first use and transcribes", async () => {
    const r = await form("/audio/transcriptions", { file: jfk(), model: "ggml-tiny" });
    expect(r.status).toBe(200);
    expect((((await r.json()) as any).text as string).length).toBeGreaterThan(0);
  });

  test("/v1/models lists the speech model with its kind", async () => {
    const models = (await (await fetch(`${server.url}/v1/models`)).json()) as any;
    const w = models.data.find((m: any) => m.id === WHISPER);
    expect(w.kind).toBe("speech");
    expect(w.capabilities).toEqual(["transcription", "translation"]);
    expect(models.data.find((m: any) => m.id === "llmatic-tiny").kind).toBe("text");
  });

  test("a transcription runs beside a chat stream without stopping it", async () => {
    const chat = await client.chat.completions.create({
      model: "llmatic-tiny",
      messages: [{ role: "user", content: "Tell me a long story." }],
      max_tokens: 400,
      stream: true,
    });
    const times: number[] = [];
    const reading = (async () => {
      for await (const c of chat) if (c.choices[0]?.delta?.content) times.push(performance.now());
    })();
    // let the stream start, then transcribe while it runs
    while (times.length < 3) await Bun.sleep(5);
    const t0 = performance.now();
    const r = await form("/audio/transcriptions", { file: jfk(), model: WHISPER });
    const t1 = performance.now();
    expect(r.status).toBe(200);
    await reading;
    const during = times.filter((t) => t > t0 && t < t1).length;
    // the chat kept streaming while the audio was transcribed
    expect(during).toBeGreaterThan(0);
    expect(times.length).toBeGreaterThan(50);
  });
});
