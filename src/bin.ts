#!/usr/bin/env bun
// Entry point of the single executable (`bun run compile` -> dist/llmatic): the
// native library (one build per x86-64 level, see src/cpu-level.ts) and the demo
// model's tokenizer and template are embedded. The executable is also each
// model's engine process and each fine-tune's runner: the server spawns itself
// with LLMATIC_ENGINE_CHILD=1 / LLMATIC_FINETUNE_CHILD=1 (they inherit
// LLMATIC_LIB, so only the first process probes the CPU).
import probe from "../native/lib/cpu/libllmatic-cpu.so" with { type: "file" };
import v2 from "../native/lib/cpu/libllmatic-x86-64-v2.so" with { type: "file" };
import v3 from "../native/lib/cpu/libllmatic-x86-64-v3.so" with { type: "file" };
import v4 from "../native/lib/cpu/libllmatic-x86-64-v4.so" with { type: "file" };
import vocab from "../native/lib/ggml-vocab-qwen2.gguf" with { type: "file" };
import template from "../native/lib/qwen2.5-instruct.jinja" with { type: "file" };
import { chooseLevel, type Level, probeLevel } from "./cpu-level";
import { extractOnce, useEmbedded } from "./embedded";

const libs: Record<Level, string> = { "x86-64-v2": v2, "x86-64-v3": v3, "x86-64-v4": v4 };
// scripts/compile.ts defines this: each embedded library's content hash, so a
// start need not read a library to find its extracted copy
declare const LLMATIC_EMBEDDED_HASHES: Record<"probe" | Level, string>;
const hashes: Partial<Record<"probe" | Level, string>> =
  typeof LLMATIC_EMBEDDED_HASHES === "object" ? LLMATIC_EMBEDDED_HASHES : {};
if (!process.env.LLMATIC_LIB) {
  let level: Level;
  try {
    level = chooseLevel(probeLevel(extractOnce(probe, hashes.probe)), process.env.LLMATIC_CPU_LEVEL || undefined);
  } catch (e) {
    process.stderr.write(`llmatic: ${(e as Error).message}\n`);
    process.exit(1);
  }
  process.env.LLMATIC_CPU_CODE = level;
  // the engines open the library from this path
  process.env.LLMATIC_LIB = extractOnce(libs[level], hashes[level]);
}
useEmbedded({ lib: process.env.LLMATIC_LIB, vocab, template });
if (process.env.LLMATIC_ENGINE_CHILD === "1") await import("./engine/child");
else if (process.env.LLMATIC_FINETUNE_CHILD === "1") await import("./finetune/child");
else await import("./main");
