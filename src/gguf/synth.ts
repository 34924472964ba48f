// Synthetic GGUF models: random weights of a chosen Qwen2 shape, with the real
// Qwen2 tokenizer copied from llama.cpp's models/ggml-vocab-qwen2.gguf and the
// Qwen2.5 (tool-capable) chat template from models/templates/. Nothing is
// downloaded; the same seed gives the same file.
import { GgmlType, type GgufFile, type MetaEntry, readGguf, type TensorSpec, ValueType, writeGguf } from "./gguf";

export interface ModelShape {
  name: string;
  nEmbd: number;
  nLayer: number;
  nHead: number;
  nHeadKv: number;
  nFf: number;
  nCtxTrain: number;
  /** type of token_embd (also the tied output matrix) */
  embdType: GgmlType.F32 | GgmlType.F16 | GgmlType.Q8_0;
  /** type of the other 2-D weights */
  weightType: GgmlType.F32 | GgmlType.F16 | GgmlType.Q8_0;
  seed: number;
  /**
   * "qwen2" (default), "qwen3" (adds the per-head Q/K norms), "llama" (no attention
   * biases) or "qwen2vl" (Qwen2-VL's text model: qwen2's tensors, M-RoPE)
   */
  arch?: "qwen2" | "qwen3" | "llama" | "qwen2vl";
  /**
   * qwen2vl only: M-RoPE's [time, height, width, extra] rotary pairs, summing to
   * head_dim / 2 (default qwen2vlRopeSections(head_dim)).
   */
  ropeSections?: [number, number, number, number];
  /**
   * A reranker as llama.cpp's converter writes Qwen3-Reranker: rank pooling, a
   * two-row classification head (labels "yes", "no") and a "rerank" prompt template.
   */
  rankHead?: boolean;
}

/** A few MB, fast: for tests. */
export const TINY_SHAPE: ModelShape = {
  name: "llmatic-tiny (random weights)",
  nEmbd: 64,
  nLayer: 2,
  nHead: 4,
  nHeadKv: 2,
  nFf: 128,
  nCtxTrain: 8192,
  embdType: GgmlType.Q8_0,
  weightType: GgmlType.F32,
  seed: 1234,
};

/**
 * Llama-3.2-1B's shape (tied embeddings, llama-bpe vocabulary): the second
 * bench model, whose Q4_K_M file is mostly Q4_K/Q6_K tensors (the first's
 * 896-wide ones quantize to Q5_0/Q8_0).
 */
export const BENCH_1B_SHAPE: ModelShape = {
  name: "llmatic-bench llama-3.2-1b shape (random weights)",
  nEmbd: 2048,
  nLayer: 16,
  nHead: 32,
  nHeadKv: 8,
  nFf: 8192,
  nCtxTrain: 131072,
  embdType: GgmlType.F16,
  weightType: GgmlType.F16,
  seed: 7,
  arch: "llama",
};

/** Qwen2-0.5B's shape: for benchmarks (written as F16, then quantized by llama-quantize). */
export const BENCH_SHAPE: ModelShape = {
  name: "llmatic-bench qwen2-0.5b shape (random weights)",
  nEmbd: 896,
  nLayer: 24,
  nHead: 14,
  nHeadKv: 2,
  nFf: 4864,
  nCtxTrain: 32768,
  embdType: GgmlType.F16,
  weightType: GgmlType.F16,
  seed: 42,
};

/** Qwen2.5's added tokens, which the Qwen2 vocab file holds as [PAD...] placeholders. */
const QWEN25_ADDED: [number, string, number][] = [
  [151646, "<|object_ref_start|>", 3],
  [151647, "<|object_ref_end|>", 3],
  [151648, "<|box_start|>", 3],
  [151649, "<|box_end|>", 3],
  [151650, "<|quad_start|>", 3],
  [151651, "<|quad_end|>", 3],
  [151652, "<|vision_start|>", 3],
  [151653, "<|vision_end|>", 3],
  [151654, "<|vision_pad|>", 3],
  [151655, "<|image_pad|>", 3],
  [151656, "<|video_pad|>", 3],
  [151657, "<tool_call>", 4],
  [151658, "</tool_call>", 4],
  [151659, "<|fim_prefix|>", 3],
  [151660, "<|fim_middle|>", 3],
  [151661, "<|fim_suffix|>", 3],
  [151662, "<|fim_pad|>", 3],
  [151663, "<|repo_name|>", 3],
  [151664, "<|file_sep|>", 3],
];
const IM_END = 151645;
const ENDOFTEXT = 151643;

/** Which tokens the Qwen2 vocab's placeholders become, and the special ids. */
export interface TokenizerVariant {
  added: [id: number, text: string, type: number][];
  eos: number;
  bos: number;
  addBos: boolean;
  /** the padding token (default: the end of text) */
  pad?: number;
}

/** Qwen2.5 (the tiny and bench models). */
export const QWEN25_TOKENIZER: TokenizerVariant = { added: QWEN25_ADDED, eos: IM_END, bos: ENDOFTEXT, addBos: false };

/** Qwen3: Qwen2.5's tokens plus tool responses and the think block, as Qwen3's own vocabulary has them. */
export const QWEN3_TOKENIZER: TokenizerVariant = {
  ...QWEN25_TOKENIZER,
  added: [
    ...QWEN25_ADDED,
    [151665, "<tool_response>", 4],
    [151666, "</tool_response>", 4],
    [151667, "<think>", 4],
    [151668, "</think>", 4],
  ],
};

/** Llama 3's (llama.cpp's models/ggml-vocab-llama-bpe.gguf as it is): <|begin_of_text|>, <|eot_id|>. */
export const LLAMA3_TOKENIZER: TokenizerVariant = { added: [], eos: 128009, bos: 128000, addBos: true, pad: 128004 };

/** DeepSeek-R1-Distill-Qwen: the Qwen2 vocabulary with DeepSeek's turn markers and think tags. */
export const R1_TOKENIZER: TokenizerVariant = {
  added: [
    [151643, "<｜end▁of▁sentence｜>", 3],
    [151644, "<｜User｜>", 4],
    [151645, "<｜Assistant｜>", 4],
    [151646, "<｜begin▁of▁sentence｜>", 3],
    [151647, "<|EOT|>", 4],
    [151648, "<think>", 4],
    [151649, "</think>", 4],
  ],
  eos: 151643,
  bos: 151646,
  addBos: true,
};

/**
 * Qwen2-VL's split of head_dim / 2 rotary pairs among time, height and width
 * ([16, 24, 24] of 64: a quarter, then halves of the rest), padded with a zero
 * "extra" section as the converter pads mrope_section: [2, 3, 3, 0] for head_dim 16.
 */
export function qwen2vlRopeSections(headDim: number): [number, number, number, number] {
  const pairs = headDim / 2;
  const t = Math.floor(pairs / 4);
  const h = Math.floor((pairs - t) / 2);
  return [t, h, pairs - t - h, 0];
}

// ---- random numbers ---------------------------------------------------------

/** xorshift32: fast, deterministic, good enough for weights nobody will read. */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/** 4096 standard-normal samples; weights draw from this table (fast for 0.5B values). */
function normalTable(seed: number): Float64Array {
  const r = rng(seed);
  const t = new Float64Array(4096);
  for (let i = 0; i < t.length; i += 2) {
    const u1 = (r() + 1) / 4294967297;
    const u2 = r() / 4294967296;
    const m = Math.sqrt(-2 * Math.log(u1));
    t[i] = m * Math.cos(2 * Math.PI * u2);
    t[i + 1] = m * Math.sin(2 * Math.PI * u2);
  }
  return t;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
/** float -> IEEE half bits (round to nearest even is not needed for random data). */
export function toHalf(v: number): number {
  f32[0] = v;
  const x = u32[0] as number;
  const sign = (x >>> 16) & 0x8000;
  const exp = ((x >>> 23) & 0xff) - 127 + 15;
  const mant = x & 0x7fffff;
  if (exp <= 0) {
    if (exp < -10) return sign;
    const m = (mant | 0x800000) >>> (1 - exp);
    return sign | ((m + 0x1000) >>> 13);
  }
  if (exp >= 31) return sign | 0x7c00;
  return sign | (exp << 10) | ((mant + 0x1000) >>> 13);
}

function filler(type: GgmlType, std: number, constant: number | null, seed: number): (out: Uint8Array) => void {
  return (out) => {
    const table = normalTable(seed);
    const r = rng(seed ^ 0x5bd1e995);
    const value = constant === null ? () => (table[r() & 4095] as number) * std : () => constant;
    if (type === GgmlType.F32) {
      const v = new Float32Array(out.buffer, out.byteOffset, out.length / 4);
      for (let i = 0; i < v.length; i++) v[i] = value();
    } else if (type === GgmlType.F16) {
      const v = new Uint16Array(out.buffer, out.byteOffset, out.length / 2);
      if (constant !== null) v.fill(toHalf(constant));
      else {
        const half = new Uint16Array(4096);
        for (let i = 0; i < 4096; i++) half[i] = toHalf((table[i] as number) * std);
        for (let i = 0; i < v.length; i++) v[i] = half[r() & 4095] as number;
      }
    } else if (type === GgmlType.Q8_0) {
      // block: f16 scale d, then 32 int8 quants; value = d * q
      const dv = new DataView(out.buffer, out.byteOffset, out.length);
      const block = new Float32Array(32);
      for (let b = 0; b < out.length; b += 34) {
        let amax = 0;
        for (let i = 0; i < 32; i++) {
          const x = value();
          block[i] = x;
          amax = Math.max(amax, Math.abs(x));
        }
        const d = amax / 127;
        dv.setUint16(b, toHalf(d), true);
        for (let i = 0; i < 32; i++) dv.setInt8(b + 2 + i, d ? Math.round((block[i] as number) / d) : 0);
      }
    } else {
      throw new Error(`cannot synthesise tensors of type ${type}`);
    }
  };
}

function tensorsFor(s: ModelShape, nVocab: number): TensorSpec[] {
  const headDim = s.nEmbd / s.nHead;
  const kvDim = headDim * s.nHeadKv;
  const biases = s.arch !== "llama";
  let seed = s.seed;
  const w = (name: string, dims: number[], type: GgmlType, std = 0.02): TensorSpec => ({
    name,
    dims,
    type,
    fill: filler(type, std, null, seed++),
  });
  const ones = (name: string, n: number): TensorSpec => ({
    name,
    dims: [n],
    type: GgmlType.F32,
    fill: filler(GgmlType.F32, 0, 1, 0),
  });
  const zeros = (name: string, n: number): TensorSpec => ({
    name,
    dims: [n],
    type: GgmlType.F32,
    fill: filler(GgmlType.F32, 0, 0, 0),
  });
  const out: TensorSpec[] = [
    w("token_embd.weight", [s.nEmbd, nVocab], s.embdType),
    ones("output_norm.weight", s.nEmbd),
  ];
  // wide enough that p("yes") spreads over (0, 1) after the softmax
  if (s.rankHead) out.push(w("cls.output.weight", [s.nEmbd, 2], GgmlType.F32, 0.3));
  for (let i = 0; i < s.nLayer; i++) {
    const p = `blk.${i}`;
    out.push(
      ones(`${p}.attn_norm.weight`, s.nEmbd),
      w(`${p}.attn_q.weight`, [s.nEmbd, s.nEmbd], s.weightType),
      ...(biases ? [zeros(`${p}.attn_q.bias`, s.nEmbd)] : []),
      w(`${p}.attn_k.weight`, [s.nEmbd, kvDim], s.weightType),
      ...(biases ? [zeros(`${p}.attn_k.bias`, kvDim)] : []),
      w(`${p}.attn_v.weight`, [s.nEmbd, kvDim], s.weightType),
      ...(biases ? [zeros(`${p}.attn_v.bias`, kvDim)] : []),
      w(`${p}.attn_output.weight`, [s.nEmbd, s.nEmbd], s.weightType),
      ...(s.arch === "qwen3"
        ? [ones(`${p}.attn_q_norm.weight`, headDim), ones(`${p}.attn_k_norm.weight`, headDim)]
        : []),
      ones(`${p}.ffn_norm.weight`, s.nEmbd),
      w(`${p}.ffn_gate.weight`, [s.nEmbd, s.nFf], s.weightType),
      w(`${p}.ffn_up.weight`, [s.nEmbd, s.nFf], s.weightType),
      w(`${p}.ffn_down.weight`, [s.nFf, s.nEmbd], s.weightType),
    );
  }
  return out;
}

/** The prompt llama.cpp's converter gives Qwen3-Reranker ({query} and {document} filled in per pair). */
const RERANK_TEMPLATE =
  "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct provided. " +
  'Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n<Instruct>: Given a web search query, ' +
  "retrieve relevant passages that answer the query\n<Query>: {query}\n<Document>: {document}<|im_end|>\n" +
  "<|im_start|>assistant\n<think>\n\n</think>\n\n";

const str = (value: string): MetaEntry => ({ type: ValueType.STRING, value });
const u32v = (value: number): MetaEntry => ({ type: ValueType.UINT32, value });
const f32v = (value: number): MetaEntry => ({ type: ValueType.FLOAT32, value });
const boolv = (value: boolean): MetaEntry => ({ type: ValueType.BOOL, value });

/** Metadata: architecture keys for the shape, then the vocab file's tokenizer, patched to the variant's. */
function metadataFor(
  s: ModelShape,
  vocab: GgufFile,
  chatTemplate: string,
  tok: TokenizerVariant,
): Map<string, MetaEntry> {
  const m = new Map<string, MetaEntry>();
  const mostly = s.embdType === GgmlType.Q8_0 ? s.embdType : s.weightType;
  const fileType = mostly === GgmlType.F32 ? 0 : mostly === GgmlType.F16 ? 1 : 7;
  const a = s.arch ?? "qwen2";
  m.set("general.architecture", str(a));
  m.set("general.name", str(s.name));
  m.set("general.file_type", u32v(fileType));
  m.set(`${a}.context_length`, u32v(s.nCtxTrain));
  m.set(`${a}.embedding_length`, u32v(s.nEmbd));
  m.set(`${a}.block_count`, u32v(s.nLayer));
  m.set(`${a}.feed_forward_length`, u32v(s.nFf));
  m.set(`${a}.attention.head_count`, u32v(s.nHead));
  m.set(`${a}.attention.head_count_kv`, u32v(s.nHeadKv));
  m.set(`${a}.rope.freq_base`, f32v(1000000));
  m.set(`${a}.attention.layer_norm_rms_epsilon`, f32v(a === "llama" ? 1e-5 : 1e-6));
  if (a === "llama") {
    m.set("llama.rope.freq_base", f32v(500000));
    m.set("llama.rope.dimension_count", u32v(s.nEmbd / s.nHead));
  }
  if (a === "qwen2vl") {
    // llama.cpp's qwen2vl loader requires it (an INT32 array of 4, as the converter
    // writes mrope_section); ggml_rope_multi rotates n_rot = head_dim dims, the
    // sections splitting their head_dim / 2 pairs
    const headDim = s.nEmbd / s.nHead;
    const sections = s.ropeSections ?? qwen2vlRopeSections(headDim);
    if (sections.reduce((x, y) => x + y, 0) !== headDim / 2)
      throw new Error(`rope sections ${sections} must sum to head_dim / 2 = ${headDim / 2}`);
    m.set("qwen2vl.rope.dimension_sections", { type: ValueType.ARRAY, arrayType: ValueType.INT32, value: sections });
  }
  if (s.rankHead) {
    m.set(`${a}.pooling_type`, u32v(4));
    m.set(`${a}.classifier.output_labels`, {
      type: ValueType.ARRAY,
      arrayType: ValueType.STRING,
      value: ["yes", "no"],
    });
    m.set("tokenizer.chat_template.rerank", str(RERANK_TEMPLATE));
  }
  for (const [k, v] of vocab.metadata) {
    if (!k.startsWith("tokenizer.") || k === "tokenizer.chat_template") continue;
    if (k === "tokenizer.ggml.tokens" || k === "tokenizer.ggml.token_type") {
      const arr = [...(v.value as (string | number)[])];
      for (const [id, text, type] of tok.added) arr[id] = k === "tokenizer.ggml.tokens" ? text : type;
      m.set(k, { ...v, value: arr });
    } else {
      m.set(k, v);
    }
  }
  m.set("tokenizer.ggml.eos_token_id", u32v(tok.eos));
  m.set("tokenizer.ggml.bos_token_id", u32v(tok.bos));
  m.set("tokenizer.ggml.padding_token_id", u32v(tok.eos === IM_END ? ENDOFTEXT : (tok.pad ?? tok.eos)));
  m.set("tokenizer.ggml.add_bos_token", boolv(tok.addBos));
  m.set("tokenizer.chat_template", str(chatTemplate));
  return m;
}

export interface SynthSources {
  /** llama.cpp's models/ggml-vocab-qwen2.gguf */
  vocabPath: string;
  /** a chat template of llama.cpp's models/templates/ (default Qwen-Qwen2.5-7B-Instruct.jinja) */
  templatePath: string;
  tokenizer?: TokenizerVariant;
}

export async function writeSyntheticModel(shape: ModelShape, src: SynthSources, outPath: string): Promise<void> {
  const vocab = readGguf(src.vocabPath);
  const template = await Bun.file(src.templatePath).text();
  const tokens = vocab.metadata.get("tokenizer.ggml.tokens")?.value;
  if (!Array.isArray(tokens)) throw new Error(`${src.vocabPath} holds no tokenizer.ggml.tokens`);
  const nVocab = tokens.length;
  writeGguf(outPath, metadataFor(shape, vocab, template, src.tokenizer ?? QWEN25_TOKENIZER), tensorsFor(shape, nVocab));
}
