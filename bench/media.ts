#!/usr/bin/env bun
// bun run bench:media [--threads N] [--reps N]
//
// Audio: seconds of speech transcribed per second of wall time, llmatic's
// POST /v1/audio/transcriptions against whisper.cpp's own whisper-cli built from
// the same source, on the same model (the generated tiny whisper model, random
// weights), the same audio (whisper.cpp's 11 s JFK clip), the same threads and
// the same decoding (greedy, whisper.cpp's temperature fallback, language en).
// The two alternate rep by rep; medians are compared. Target: ratio >= 0.95.
// llmatic's time is the whole HTTP request (upload, decode, transcription);
// whisper-cli's is its own "total time" less its model load (llmatic's model is
// loaded once, before the first request).
//
// Images: not measured: llmatic does not serve vision models yet (issue 15's
// first half).
import { readFileSync } from "node:fs";
import { toolPath } from "../native/build";
import { speechSamples } from "../src/audio/samples";
import { ensureWhisperModel } from "../src/models/synthetic";
import { startServerProcess } from "../test/server-process";
import { defaultThreads, opt, percentile, say } from "./common";

const threads = opt("--threads", defaultThreads());
const reps = opt("--reps", 5);

const model = await ensureWhisperModel();
const { wav } = await speechSamples();
const audio = readFileSync(wav);
const AUDIO_SECONDS = (audio.length - 44) / 2 / 16000; // jfk.wav: 16 kHz mono 16-bit

/** whisper-cli's transcription time (ms): its total time less its model load. */
function cliOnce(): number {
  const p = Bun.spawnSync(
    [toolPath("whisper-cli"), "-m", model, "-f", wav, "-t", String(threads), "-bs", "1", "-l", "en"],
    { stdout: "pipe", stderr: "pipe" },
  );
  const err = p.stderr.toString();
  if (p.exitCode !== 0) throw new Error(`whisper-cli failed: ${err.slice(-2000)}`);
  const ms = (what: string) => {
    const m = new RegExp(`${what} time =\\s+([\\d.]+) ms`).exec(err);
    if (!m) throw new Error(`whisper-cli printed no ${what} time`);
    return Number(m[1]);
  };
  return ms("total") - ms("load");
}

const server = await startServerProcess(["-m", model, "--threads", String(threads)]);
async function oursOnce(): Promise<number> {
  const f = new FormData();
  f.append("file", new Blob([audio]), "jfk.wav");
  f.append("model", "whisper-1");
  f.append("language", "en");
  const t0 = performance.now();
  const r = await fetch(`${server.url}/v1/audio/transcriptions`, { method: "POST", body: f });
  const body = await r.text();
  if (!r.ok) throw new Error(`transcription failed: ${r.status} ${body}`);
  return performance.now() - t0;
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
  const speed = (ms: number) => AUDIO_SECONDS / (ms / 1000);
  const o = speed(percentile(ours, 50));
  const w = speed(percentile(theirs, 50));
  const ratio = o / w;
  console.log(
    `audio: llmatic ${o.toFixed(1)} audio s/s (median ${percentile(ours, 50).toFixed(0)} ms), whisper-cli ${w.toFixed(1)} audio s/s (median ${percentile(theirs, 50).toFixed(0)} ms): ratio ${ratio.toFixed(3)} (target >= 0.95) ${ratio >= 0.95 ? "OK" : "BELOW TARGET"}`,
  );
  console.log("images: not measured (vision models are not served yet)");
} finally {
  await server.stop();
}
