#!/usr/bin/env bun
// bun run models [--bench]: generates the project's own GGUF models (git-ignored).
import { ensureBenchModel, ensureTinyModel } from "../src/models/synthetic";

const log = (s: string) => process.stderr.write(`[models] ${s}\n`);
console.log(await ensureTinyModel(log));
if (process.argv.includes("--bench")) console.log(await ensureBenchModel(log));
