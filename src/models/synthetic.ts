// The project's own GGUF models, generated on demand (never downloaded):
//  - tiny: Qwen2 tokenizer + Qwen2.5 chat template, 2 small layers; for tests and the demo
//  - bench: Qwen2-0.5B shape, quantized to Q4_K_M with the llama-quantize we build
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { embedded, extractOnce } from "../embedded";
import { GgmlType } from "../gguf/gguf";
import {
  BENCH_1B_SHAPE,
  BENCH_SHAPE,
  LLAMA3_TOKENIZER,
  type ModelShape,
  QWEN3_TOKENIZER,
  R1_TOKENIZER,
  TINY_SHAPE,
  type TokenizerVariant,
  writeSyntheticModel,
} from "../gguf/synth";
import { cacheDir } from "../paths";

export const MODELS_DIR = join(import.meta.dir, "..", "..", "models");
export const TINY_MODEL_PATH = join(MODELS_DIR, "llmatic-tiny.gguf");
export const BENCH_MODEL_PATH = join(MODELS_DIR, "bench", "qwen2-0.5b-shape-q4_k_m.gguf");
export const BENCH_1B_MODEL_PATH = join(MODELS_DIR, "bench", "llama-3.2-1b-shape-q4_k_m.gguf");

/** Where the demo model goes: the repository's models/, or the cache for the compiled executable. */
export function demoModelPath(): string {
  return embedded() ? join(cacheDir(), "models", "llmatic-tiny.gguf") : TINY_MODEL_PATH;
}

async function sources(): Promise<{ vocabPath: string; templatePath: string }> {
  const e = embedded();
  if (e) return { vocabPath: extractOnce(e.vocab), templatePath: e.template };
  const { llamaSourceDir } = await import("../../native/build");
  const src = await llamaSourceDir();
  return {
    vocabPath: join(src, "models", "ggml-vocab-qwen2.gguf"),
    templatePath: join(src, "models", "templates", "Qwen-Qwen2.5-7B-Instruct.jinja"),
  };
}

/** Writes `shape` to `path` atomically (a crash never leaves a half-written model). */
async function synthesize(
  shape: ModelShape,
  path: string,
  variant?: { template: string; tokenizer: TokenizerVariant; vocab?: string },
): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.partial`;
  const src = await sources();
  if (variant) src.templatePath = join(dirname(src.templatePath), variant.template);
  if (variant?.vocab) src.vocabPath = join(dirname(src.vocabPath), variant.vocab);
  await writeSyntheticModel(shape, { ...src, tokenizer: variant?.tokenizer }, tmp);
  renameSync(tmp, path);
}

/**
 * Reasoning models of the tiny shape (random weights, so they never close a
 * think block by themselves): "r1" has DeepSeek-R1-Distill-Qwen's template,
 * which opens the think block in the prompt; "qwen3" has Qwen3's hybrid one
 * (enable_thinking). Both have their think tags as single tokens, as the real
 * vocabularies do. For tests.
 */
export const REASONING_MODELS = {
  r1: { template: "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", tokenizer: R1_TOKENIZER },
  qwen3: { template: "Qwen-Qwen3-0.6B.jinja", tokenizer: QWEN3_TOKENIZER },
} as const;

export async function ensureReasoningModel(kind: keyof typeof REASONING_MODELS): Promise<string> {
  const path = join(MODELS_DIR, `llmatic-tiny-${kind}.gguf`);
  if (!existsSync(path)) {
    await synthesize({ ...TINY_SHAPE, name: `llmatic-tiny-${kind} (random weights)` }, path, REASONING_MODELS[kind]);
  }
  return path;
}

/**
 * A reranker of the tiny shape, as llama.cpp converts Qwen3-Reranker: Qwen3's
 * architecture and template, rank pooling, a yes/no classification head and the
 * "rerank" prompt. Random weights: its scores are real outputs of the head but
 * say nothing about relevance. For tests.
 */
export async function ensureRerankerModel(): Promise<string> {
  const path = join(MODELS_DIR, "llmatic-tiny-rerank.gguf");
  if (!existsSync(path)) {
    await synthesize(
      { ...TINY_SHAPE, name: "llmatic-tiny-rerank (random weights)", arch: "qwen3", rankHead: true, seed: 4321 },
      path,
      REASONING_MODELS.qwen3,
    );
  }
  return path;
}

/** whisper.cpp's tiny shape at a smaller width, random weights: speech in, gibberish out. For tests and bench:media. */
export const TINY_WHISPER_PATH = join(MODELS_DIR, "ggml-llmatic-tiny-whisper.bin");

export async function ensureWhisperModel(): Promise<string> {
  if (!existsSync(TINY_WHISPER_PATH)) {
    const { TINY_WHISPER_SHAPE, writeSyntheticWhisper } = await import("../audio/whisper-synth");
    mkdirSync(MODELS_DIR, { recursive: true });
    await writeSyntheticWhisper(TINY_WHISPER_SHAPE, TINY_WHISPER_PATH);
  }
  return TINY_WHISPER_PATH;
}

/**
 * A vision model of the tiny shape: the tiny chat model and a tiny LLaVA-style
 * projector (random weights, 16 tokens per image) side by side in models/vision/,
 * so the server finds the projector beside the model. For tests and bench:media.
 */
export const VISION_DIR = join(MODELS_DIR, "vision");

export function ensureVisionModel(): Promise<{ model: string; projector: string }> {
  return ensureModelWithProjector(VISION_DIR, "llmatic-tiny-vision", TINY_SHAPE, async (path) => {
    const { TINY_PROJECTOR_SHAPE, writeSyntheticProjector } = await import("../vision/mmproj-synth");
    writeSyntheticProjector(TINY_PROJECTOR_SHAPE, path);
  });
}

/** `name`.gguf (of `shape`) and mmproj-`name`.gguf (what `writeProjector` writes) side by side in `dir`. */
async function ensureModelWithProjector(
  dir: string,
  name: string,
  shape: ModelShape,
  writeProjector: (path: string) => Promise<void>,
): Promise<{ model: string; projector: string }> {
  const model = join(dir, `${name}.gguf`);
  const projector = join(dir, `mmproj-${name}.gguf`);
  mkdirSync(dir, { recursive: true });
  if (!existsSync(model)) await synthesize({ ...shape, name: `${name} (random weights)` }, model);
  if (!existsSync(projector)) await writeProjector(projector);
  return { model, projector };
}

/**
 * A Qwen2-VL-style vision model of the tiny shape, for M-RoPE's image path: the
 * tiny chat model as llama.cpp arch "qwen2vl" (qwen2's tensors, rope sections
 * [2, 3, 3, 0]) and a tiny "qwen2vl_merger" projector (random weights), side by
 * side in models/vision-mrope/. Images take a dynamic number of tokens (9 for
 * 64 x 64 px, 12 for 40 x 30: see qwen2vlImageTokens) and max(nx, ny) positions.
 * For tests.
 */
export const VISION_MROPE_DIR = join(MODELS_DIR, "vision-mrope");

export function ensureQwenVisionModel(): Promise<{ model: string; projector: string }> {
  return ensureModelWithProjector(
    VISION_MROPE_DIR,
    "llmatic-tiny-qwen2vl",
    { ...TINY_SHAPE, arch: "qwen2vl" },
    async (path) => {
      const { TINY_QWEN2VL_PROJECTOR_SHAPE, writeSyntheticQwen2vlProjector } = await import("../vision/mmproj-synth");
      writeSyntheticQwen2vlProjector(TINY_QWEN2VL_PROJECTOR_SHAPE, path);
    },
  );
}

export async function ensureTinyModel(log: (s: string) => void = () => {}): Promise<string> {
  const path = demoModelPath();
  if (!existsSync(path)) {
    log(`generating the tiny test model (random weights) at ${path}`);
    await synthesize(TINY_SHAPE, path);
  }
  return path;
}

/** The bench models: "bench" (Qwen2-0.5B shape) and "bench-1b" (Llama-3.2-1B shape), both Q4_K_M. */
export const BENCH_MODELS = {
  bench: { path: BENCH_MODEL_PATH, shape: BENCH_SHAPE, variant: undefined },
  "bench-1b": {
    path: BENCH_1B_MODEL_PATH,
    shape: BENCH_1B_SHAPE,
    variant: {
      template: "meta-llama-Llama-3.2-3B-Instruct.jinja",
      tokenizer: LLAMA3_TOKENIZER,
      vocab: "ggml-vocab-llama-bpe.gguf",
    },
  },
} as const;

export async function ensureBenchModel(
  log: (s: string) => void = () => {},
  which: keyof typeof BENCH_MODELS = "bench",
): Promise<string> {
  const { path, shape, variant } = BENCH_MODELS[which];
  return ensureQ4KMModel(path, shape, variant, which, log);
}

/**
 * A 256-wide tiny model quantized to Q4_K_M (its matrices Q4_K and Q6_K), for
 * the tests of the K-quant kernels' wiring; about 30 MB, a few seconds to make.
 */
export const TINY_K_MODEL_PATH = join(MODELS_DIR, "llmatic-tiny-q4_k_m.gguf");
export function ensureTinyKQuantModel(log: (s: string) => void = () => {}): Promise<string> {
  const shape: ModelShape = {
    ...TINY_SHAPE,
    name: "llmatic-tiny-k (random weights)",
    nEmbd: 256,
    nFf: 512,
    embdType: GgmlType.F16,
    weightType: GgmlType.F16,
  };
  return ensureQ4KMModel(TINY_K_MODEL_PATH, shape, undefined, "tiny Q4_K_M", log);
}

/** writes `shape` as F16, then quantizes it to Q4_K_M with the llama-quantize built from the pinned source */
async function ensureQ4KMModel(
  path: string,
  shape: ModelShape,
  variant: Parameters<typeof synthesize>[2],
  label: string,
  log: (s: string) => void,
): Promise<string> {
  if (existsSync(path)) return path;
  const { buildNative, toolPath } = await import("../../native/build");
  await buildNative({ quiet: true });
  mkdirSync(dirname(path), { recursive: true });
  const f16 = path.replace(/\.gguf$/, ".f16.gguf");
  if (!existsSync(f16)) {
    log(`generating the F16 ${label} model (${shape.name}) at ${f16}`);
    await synthesize(shape, f16, variant);
  }
  log("quantizing it to Q4_K_M with llama-quantize");
  const tmp = `${path}.partial`;
  const p = Bun.spawnSync([toolPath("llama-quantize"), f16, tmp, "Q4_K_M"], { stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`llama-quantize failed:\n${p.stderr.toString().slice(-2000)}`);
  renameSync(tmp, path);
  rmSync(f16, { force: true });
  log(`${label} model ready: ${path} (${(statSync(path).size / 1e6).toFixed(0)} MB)`);
  return path;
}
