#!/usr/bin/env bun
// bun run models [--bench] [--bench-1b]: generates the project's own models (git-ignored):
// the tiny chat model, the tiny reranker, the tiny whisper model and the tiny vision model; with --bench
// and --bench-1b the bench models too.
import {
  ensureBenchModel,
  ensureQwenVisionModel,
  ensureRerankerModel,
  ensureTinyModel,
  ensureVisionModel,
  ensureWhisperModel,
} from "../src/models/synthetic";

const log = (s: string) => process.stderr.write(`[models] ${s}\n`);
console.log(await ensureTinyModel(log));
console.log(await ensureRerankerModel());
console.log(await ensureWhisperModel());
const vision = await ensureVisionModel();
console.log(vision.model);
console.log(vision.projector);
const mrope = await ensureQwenVisionModel();
console.log(mrope.model);
console.log(mrope.projector);
if (process.argv.includes("--bench")) console.log(await ensureBenchModel(log));
if (process.argv.includes("--bench-1b")) console.log(await ensureBenchModel(log, "bench-1b"));
