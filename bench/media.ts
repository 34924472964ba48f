#!/usr/bin/env bun
// bun run bench:media [--threads N] [--reps N]
//
// Audio: seconds of speech transcribed per second of wall time, llmatic's
// POST /v1/audio/transcriptions against whisper.cpp's own whisper-cli built from
// the same source, on the same model (the generated tiny whisper model, random
// weights), the same audio (whisper.cpp's 11 s JFK clip three times: 33 s, two
// 30 s windows, so a rep is long enough to time), the same threads and
// the same decoding: greedy at temperature 0 without the temperature fallback
// (`temperature_inc=0`, whisper-cli's `-nf`), language en, so both do the same
// work every run (with the fallback, random weights decode a different number
// of windows each time); the bench checks that both wrote the same text.
// The two alternate rep by rep; medians are compared. Target: ratio >= 0.95.
// llmatic's time is the whole HTTP request (upload, decode, transcription);
// whisper-cli's is its own "total time" less its model load (llmatic's model is
// loaded once, before the first request).
//
// Images: on the tiny vision model (the tiny chat model and the generated
// LLaVA-style projector, 16 tokens an image, random weights): the projector's
// encode time for one image (llama.cpp's test-1.jpeg) through the FFI as the
// preparation thread calls it, and the time to the first token of a chat
// request with one image (a non-streamed request for one token: prefill, the
// image read, encoded and decoded, and one token), llmatic against llama-server
// --mmproj from the same source, same model, projector, context, threads; each
// rep a new image (a 320x240 PNG of its own), so neither server's cache helps.
// Both must count the same prompt tokens.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { llamaSourceDir, toolPath } from "../native/build";
import { speechSamples } from "../src/audio/samples";
import { Model } from "../src/ffi/model";
import { Vision } from "../src/ffi/vision";
import { ensureVisionModel, ensureWhisperModel } from "../src/models/synthetic";
import { png } from "../test/png";
import { startServerProcess } from "../test/server-process";
import { defaultThreads, opt, percentile, say, startBenchServer, stopBenchServers } from "./common";

const threads = opt("--threads", defaultThreads());
const reps = opt("--reps", 9);

const model = await ensureWhisperModel();
const jfk = readFileSync((await speechSamples()).wav);
// jfk.wav is 16 kHz mono 16-bit PCM: its "data" chunk three times under a plain 44-byte header
const at = jfk.indexOf("data", 12);
const pcm = jfk.subarray(at + 8, at + 8 + jfk.readUInt32LE(at + 4));
const header = Buffer.alloc(44);
header.write("RIFF", 0);
header.writeUInt32LE(36 + pcm.length * 3, 4);
header.write("WAVEfmt ", 8);
header.writeUInt32LE(16, 16);
header.writeUInt16LE(1, 20); // PCM
header.writeUInt16LE(1, 22); // mono
header.writeUInt32LE(16000, 24);
header.writeUInt32LE(32000, 28);
header.writeUInt16LE(2, 32);
header.writeUInt16LE(16, 34);
header.write("data", 36);
header.writeUInt32LE(pcm.length * 3, 40);
const audio = Buffer.concat([header, pcm, pcm, pcm]);
const wav = join(mkdtempSync(join(tmpdir(), "llmatic-bench-media-")), "jfk-x3.wav");
writeFileSync(wav, audio);
const AUDIO_SECONDS = (pcm.length * 3) / 2 / 16000;

let cliText = "";
/** whisper-cli's transcription time (ms): its total time less its model load. */
function cliOnce(): number {
  const p = Bun.spawnSync(
    [toolPath("whisper-cli"), "-m", model, "-f", wav, "-t", String(threads), "-bs", "1", "-nf", "-l", "en"],
    { stdout: "pipe", stderr: "pipe" },
  );
  // "[00:00:00.000 --> 00:00:02.000]   text" lines
  cliText = p.stdout
    .toString()
    .split("\n")
    .map((l) => l.replace(/^\[[^\]]*\]\s*/, "").trim())
    .filter(Boolean)
    .join(" ");
  const err = p.stderr.toString();
  if (p.exitCode !== 0) throw new Error(`whisper-cli failed: ${err.slice(-2000)}`);
  const ms = (what: string) => {
    const m = new RegExp(`${what} time =\\s+([\\d.]+) ms`).exec(err);
    if (!m) throw new Error(`whisper-cli printed no ${what} time`);
    return Number(m[1]);
  };
  return ms("total") - ms("load");
}

// ---- images --------------------------------------------------------------------
async function images(): Promise<void> {
  const { model: vModel, projector } = await ensureVisionModel();
  const jpeg = readFileSync(join(await llamaSourceDir(), "tools", "mtmd", "test-1.jpeg"));
  // encode time, in process
  const m = Model.load(vModel);
  const v = Vision.load(projector, m, threads);
  const encodeMs: number[] = [];
  for (let i = 0; i < reps + 1; i++) {
    const t0 = performance.now();
    using read = v.read(jpeg, 50_000_000, 0);
    for (const p of read.pieces()) if (p.kind === "image") v.encode(read, p);
    if (i > 0) encodeMs.push(performance.now() - t0);
  }
  v.dispose();
  m.dispose();
  console.log(
    `images: test-1.jpeg read and encoded by the tiny projector in ${percentile(encodeMs, 50).toFixed(2)} ms (median of ${reps}, ${threads} threads)`,
  );
  // TTFT with one image, llmatic against llama-server
  const same = ["-c", "2048", "-np", "1"];
  const ours = await startServerProcess(["-m", vModel, "--mmproj", projector, "--threads", String(threads), ...same]);
  const theirs = await startBenchServer("llama-server", [
    toolPath("llama-server"),
    "-m",
    vModel,
    "--mmproj",
    projector,
    "-t",
    String(threads),
    ...same,
    "--no-webui",
  ]);
  const theirsUrl = theirs.url;
  try {
    let n = 0;
    const once = async (url: string): Promise<{ ms: number; prompt: number }> => {
      const img = png(320, 240, (x, y) => [(x + n * 7) & 255, (y * 3 + n) & 255, (x ^ y ^ n) & 255]);
      n++;
      const body = {
        model: "llmatic-tiny-vision",
        max_tokens: 1,
        temperature: 0,
        messages: [
          {
            role: "user",
            content: [
              { type: "image_url", image_url: { url: `data:image/png;base64,${img.toString("base64")}` } },
              { type: "text", text: "What is in this picture?" },
            ],
          },
        ],
      };
      const t0 = performance.now();
      const r = await fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      const j = (await r.json()) as { usage?: { prompt_tokens: number } };
      if (!r.ok) throw new Error(`${url}: ${r.status} ${JSON.stringify(j)}`);
      return { ms: performance.now() - t0, prompt: j.usage?.prompt_tokens ?? -1 };
    };
    await once(ours.url);
    await once(theirsUrl);
    const a: number[] = [];
    const b: number[] = [];
    let prompts = "";
    for (let i = 0; i < reps; i++) {
      const x = await once(ours.url);
      const y = await once(theirsUrl);
      a.push(x.ms);
      b.push(y.ms);
      prompts = `${x.prompt} / ${y.prompt}`;
    }
    const ratio = percentile(a, 50) / percentile(b, 50);
    console.log(
      `images: time to first token with one 320x240 image: llmatic ${percentile(a, 50).toFixed(1)} ms, llama-server ${percentile(b, 50).toFixed(1)} ms (medians of ${reps}): ratio ${ratio.toFixed(3)} (lower is faster); prompt tokens llmatic / llama-server: ${prompts}`,
    );
  } finally {
    await ours.stop();
    await stopBenchServers([theirs]);
  }
}

await images();

const server = await startServerProcess(["-m", model, "--threads", String(threads)]);
let ourText = "";
async function oursOnce(): Promise<number> {
  const f = new FormData();
  f.append("file", new Blob([audio]), "jfk.wav");
  f.append("model", "whisper-1");
  f.append("language", "en");
  f.append("temperature_inc", "0");
  f.append("response_format", "verbose_json");
  const t0 = performance.now();
  const r = await fetch(`${server.url}/v1/audio/transcriptions`, { method: "POST", body: f });
  const body = await r.text();
  if (!r.ok) throw new Error(`transcription failed: ${r.status} ${body}`);
  const ms = performance.now() - t0;
  ourText = (JSON.parse(body) as { segments: { text: string }[] }).segments.map((x) => x.text.trim()).join(" ");
  return ms;
}

try {
  say(`audio: ${AUDIO_SECONDS.toFixed(1)} s of speech, ${threads} threads, ${reps} reps each, alternating`);
  await oursOnce(); // warm-up (the engine's first run allocates its buffers)
  cliOnce();
  const ours: number[] = [];
  const theirs: number[] = [];
  for (let i = 0; i < reps; i++) {
    ours.push(await oursOnce());
    theirs.push(cliOnce());
  }
  say(
    `llmatic ms: ${ours.map((x) => x.toFixed(0)).join(" ")}; whisper-cli ms: ${theirs.map((x) => x.toFixed(0)).join(" ")}`,
  );
  const same = ourText === cliText;
  say(
    `same text from both: ${same}${same ? "" : `\n  llmatic:     ${ourText.slice(0, 300)}\n  whisper-cli: ${cliText.slice(0, 300)}`}`,
  );
  const speed = (ms: number) => AUDIO_SECONDS / (ms / 1000);
  const o = speed(percentile(ours, 50));
  const w = speed(percentile(theirs, 50));
  const ratio = o / w;
  console.log(
    `audio: llmatic ${o.toFixed(1)} audio s/s (median ${percentile(ours, 50).toFixed(0)} ms), whisper-cli ${w.toFixed(1)} audio s/s (median ${percentile(theirs, 50).toFixed(0)} ms): ratio ${ratio.toFixed(3)} (target >= 0.95) ${ratio >= 0.95 ? "OK" : "BELOW TARGET"}`,
  );
} finally {
  await server.stop();
}
