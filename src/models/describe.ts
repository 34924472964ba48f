// What a model file says about itself, read from its GGUF header without
// loading it (so unloaded models can be listed and shown as UIs expect):
// architecture, context length, parameters, quantization, chat template, and
// the capabilities Ollama's clients look for. Cached per file (path, size, mtime).
import { statSync } from "node:fs";
import { type MetaValue, readGguf } from "../gguf/gguf";
import { projectorBeside } from "./projector";
import { readWhisperHeader } from "./whisper-file";

export type Capability =
  | "completion"
  | "tools"
  | "insert"
  | "embedding"
  | "rerank"
  | "thinking"
  | "vision"
  | "transcription"
  | "translation";

export interface ModelFacts {
  architecture: string | null;
  /** what it was trained for (the served context is --ctx-size / --parallel) */
  contextLength: number | null;
  embeddingLength: number | null;
  parameterCount: number;
  /** "Q4_K_M", "F16", ... */
  quantization: string;
  fileType: number | null;
  sizeBytes: number;
  modifiedAt: number;
  chatTemplate: string | null;
  capabilities: Capability[];
  /** scalar metadata for Ollama's model_info (arrays and the template left out) */
  info: Record<string, string | number | boolean>;
}

// llama.cpp's enum llama_ftype
const FILE_TYPES: Record<number, string> = {
  0: "F32",
  1: "F16",
  2: "Q4_0",
  3: "Q4_1",
  7: "Q8_0",
  8: "Q5_0",
  9: "Q5_1",
  10: "Q2_K",
  11: "Q3_K_S",
  12: "Q3_K_M",
  13: "Q3_K_L",
  14: "Q4_K_S",
  15: "Q4_K_M",
  16: "Q5_K_S",
  17: "Q5_K_M",
  18: "Q6_K",
  19: "IQ2_XXS",
  20: "IQ2_XS",
  21: "Q2_K_S",
  22: "IQ3_XS",
  23: "IQ3_XXS",
  24: "IQ1_S",
  25: "IQ4_NL",
  26: "IQ3_S",
  27: "IQ3_M",
  28: "IQ2_S",
  29: "IQ2_M",
  30: "IQ4_XS",
  31: "IQ1_M",
  32: "BF16",
  36: "TQ1_0",
  37: "TQ2_0",
  38: "MXFP4_MOE",
};

/** Which capabilities a template and its metadata show (vision: a projector is served with the model). */
export function capabilitiesOf(
  template: string | null,
  meta: { fim: boolean; pooling: boolean; rankHead: boolean; vision?: boolean },
): Capability[] {
  const caps: Capability[] = ["completion"];
  if (meta.vision) caps.push("vision");
  if (template && /\btools\b/.test(template)) caps.push("tools");
  if (meta.fim) caps.push("insert");
  // a rank head scores pairs; its pooled output is no embedding
  if (meta.rankHead) caps.push("rerank");
  else if (meta.pooling) caps.push("embedding");
  if (template && /<think>|enable_thinking|reasoning_content|<\|channel\|>/.test(template)) caps.push("thinking");
  return caps;
}

/** 494032768 -> "494.03M", 1235814400 -> "1.24B" (Ollama's parameter_size). */
export function parameterSize(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2).replace(/\.?0+$/, "")}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2).replace(/\.?0+$/, "")}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(2).replace(/\.?0+$/, "")}K`;
  return String(n);
}

const cache = new Map<string, { key: string; facts: ModelFacts }>();

function scalar(v: MetaValue): string | number | boolean | null {
  if (typeof v === "bigint") return Number(v);
  if (Array.isArray(v)) return null;
  return v;
}

/** The facts of a GGUF file, or null when it cannot be read (not there yet, not GGUF). */
export function describeModel(path: string): ModelFacts | null {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch {
    return null;
  }
  const key = `${st.size}:${st.mtimeMs}`;
  const hit = cache.get(path);
  if (hit?.key === key) return hit.facts;
  let g: ReturnType<typeof readGguf>;
  try {
    g = readGguf(path, { arrays: false });
  } catch {
    const facts = speechFacts(path, st);
    if (facts) cache.set(path, { key, facts });
    return facts;
  }
  const get = (k: string): MetaValue | undefined => g.metadata.get(k)?.value;
  const arch = (get("general.architecture") as string | undefined) ?? null;
  const num = (k: string): number | null => {
    const v = get(k);
    return typeof v === "number" ? v : typeof v === "bigint" ? Number(v) : null;
  };
  const info: Record<string, string | number | boolean> = {};
  for (const [k, e] of g.metadata) {
    if (k === "tokenizer.chat_template" || (k.startsWith("tokenizer.ggml.") && Array.isArray(e.value))) continue;
    const v = scalar(e.value);
    if (v !== null && !(typeof v === "string" && v.length > 1024)) info[k] = v;
  }
  let params = 0;
  for (const t of g.tensors) params += t.dims.reduce((a, b) => a * b, 1);
  info["general.parameter_count"] = params;
  const fileType = num("general.file_type");
  const template = (get("tokenizer.chat_template") as string | undefined) ?? null;
  const facts: ModelFacts = {
    architecture: arch,
    contextLength: arch ? num(`${arch}.context_length`) : null,
    embeddingLength: arch ? num(`${arch}.embedding_length`) : null,
    parameterCount: params,
    quantization: fileType === null ? "unknown" : (FILE_TYPES[fileType] ?? `type ${fileType}`),
    fileType,
    sizeBytes: st.size,
    modifiedAt: Math.floor(st.mtimeMs / 1000),
    chatTemplate: template,
    capabilities: capabilitiesOf(template, {
      fim: g.metadata.has("tokenizer.ggml.fim_pre_token_id") || g.metadata.has("tokenizer.ggml.prefix_token_id"),
      pooling: arch !== null && g.metadata.has(`${arch}.pooling_type`),
      rankHead: arch !== null && num(`${arch}.pooling_type`) === 4,
      // before it is loaded: the projector it would be served with
      vision: projectorBeside(path) !== null,
    }),
    info,
  };
  cache.set(path, { key, facts });
  return facts;
}

/** whisper.cpp's ggml-*.bin: a speech model (transcription; translation when multilingual). */
function speechFacts(path: string, st: { size: number; mtimeMs: number }): ModelFacts | null {
  const h = readWhisperHeader(path);
  if (!h) return null;
  const info: Record<string, number | boolean> = {
    "whisper.vocab_size": h.nVocab,
    "whisper.audio_context_length": h.nAudioCtx,
    "whisper.audio_embedding_length": h.nAudioState,
    "whisper.audio_block_count": h.nAudioLayer,
    "whisper.text_context_length": h.nTextCtx,
    "whisper.text_block_count": h.nTextLayer,
    "whisper.mel_count": h.nMels,
    "whisper.multilingual": h.multilingual,
  };
  const fileType = h.ftype % 1000;
  return {
    architecture: "whisper",
    contextLength: h.nTextCtx,
    embeddingLength: h.nAudioState,
    parameterCount: 0,
    quantization: FILE_TYPES[fileType] ?? `type ${fileType}`,
    fileType,
    sizeBytes: st.size,
    modifiedAt: Math.floor(st.mtimeMs / 1000),
    chatTemplate: null,
    capabilities: h.multilingual ? ["transcription", "translation"] : ["transcription"],
    info,
  };
}
