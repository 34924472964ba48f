// A synthetic multimodal projector ("mmproj") GGUF: random weights of a tiny
// LLaVA-1.5-style image encoder (a CLIP ViT and the 2-layer "mlp" projector) that
// llama.cpp's libmtmd (tools/mtmd/clip.cpp) loads and runs, for tests that need
// image input with the tiny text model (its n_embd, 64, is the projector's output
// width). Names and keys are those of tools/mtmd/legacy-models/
// convert_image_encoder_to_gguf.py, checked against clip.cpp's load_hparams and
// load_tensors and models/llava.cpp. Nothing is downloaded; the same seed gives
// the same file.
import { renameSync } from "node:fs";
import { GgmlType, type MetaEntry, type TensorSpec, ValueType, writeGguf } from "../gguf/gguf";
import { rng, toHalf } from "../gguf/synth";

/** What both projectors' vision towers (a ViT) are made of. */
interface VisionTower {
  name: string;
  /** the square side images are resized to (required by load_hparams even where sizes are dynamic) */
  imageSize: number;
  patchSize: number;
  /** the ViT's width, heads, FFN width and blocks */
  nEmbd: number;
  nHead: number;
  nFf: number;
  nLayer: number;
  /** the projector's output width: must equal the text model's n_embd (mtmd checks it) */
  nEmbdText: number;
  seed: number;
}

/** LLaVA's "mlp": every image is resized to imageSize (mtmd's fixed-size preprocessor). */
export interface ProjectorShape extends VisionTower {
  /** the projector's hidden width (mm.0's output) */
  nMmHidden: number;
}

/**
 * About 150 KB. 64 px / 16 px patches = a 4 x 4 grid. Two blocks, of which clip.cpp
 * runs only the first: the llava graph stops at n_layer - 1, the penultimate layer
 * LLaVA feeds its projector (the converter writes block_count as the checkpoint's
 * layers less one, after dropping the last). nFf must differ from nEmbd, or
 * load_tensors takes ffn_up/ffn_down for the legacy swapped names and swaps them.
 */
export const TINY_PROJECTOR_SHAPE: ProjectorShape = {
  name: "llmatic-tiny-mmproj (random weights)",
  imageSize: 64,
  patchSize: 16,
  nEmbd: 32,
  nHead: 4,
  nFf: 64,
  nLayer: 2,
  nMmHidden: 64,
  nEmbdText: 64,
  seed: 2468,
};

/**
 * Embeddings one image becomes with TINY_PROJECTOR_SHAPE, whatever its size:
 * (imageSize / patchSize)^2 (clip_n_output_tokens for "mlp"). mtmd adds no
 * begin/end text tokens around an "mlp" projector's image.
 */
export const TINY_PROJECTOR_IMAGE_TOKENS = (TINY_PROJECTOR_SHAPE.imageSize / TINY_PROJECTOR_SHAPE.patchSize) ** 2;

// CLIP's (OpenAI) normalisation, as a real LLaVA mmproj carries it
const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073];
const CLIP_STD = [0.26862954, 0.26130258, 0.27577711];

/** A fill of N(0, std^2) samples (from a 4096-entry table) or of a constant, as F32 or F16. */
function filler(type: GgmlType, std: number | null, constant: number, seed: number): (out: Uint8Array) => void {
  return (out) => {
    const r = rng(seed);
    const table = new Float32Array(4096);
    for (let i = 0; i < table.length; i += 2) {
      const u1 = (r() + 1) / 4294967297;
      const u2 = r() / 4294967296;
      const m = Math.sqrt(-2 * Math.log(u1)) * (std ?? 0);
      table[i] = m * Math.cos(2 * Math.PI * u2);
      table[i + 1] = m * Math.sin(2 * Math.PI * u2);
    }
    const value = std === null ? () => constant : () => table[r() & 4095] as number;
    if (type === GgmlType.F32) {
      const v = new Float32Array(out.buffer, out.byteOffset, out.length / 4);
      for (let i = 0; i < v.length; i++) v[i] = value();
    } else {
      const v = new Uint16Array(out.buffer, out.byteOffset, out.length / 2);
      for (let i = 0; i < v.length; i++) v[i] = toHalf(value());
    }
  };
}

/** Dims are ggml's order (ne[0] first: a weight is [n_in, n_out]). */
type Weight = (name: string, dims: number[], type?: GgmlType, std?: number) => TensorSpec;
type Constant = (name: string, n: number, value: number) => TensorSpec;

/** Random weights (each tensor its own seed, in order) and constant vectors. */
function makers(first: number): { w: Weight; c: Constant } {
  let seed = first;
  const w: Weight = (name, dims, type = GgmlType.F32, std = 0.02) => ({
    name,
    dims,
    type,
    fill: filler(type, std, 0, seed++),
  });
  const c: Constant = (name, n, value) => ({
    name,
    dims: [n],
    type: GgmlType.F32,
    fill: filler(GgmlType.F32, null, value, 0),
  });
  return { w, c };
}

/**
 * The ViT blocks both projectors share, as clip.cpp loads them: pre-norm
 * LayerNorms with biases, separate q/k/v with biases (attn_qkv is the fused
 * alternative; the graphs add each bias unconditionally, and attn_out.weight is
 * the one per-layer tensor load_tensors requires besides ffn_up/ffn_down), and
 * an MLP of up, quick GELU, down with the correct names (no ffn_gate).
 */
function vitBlocks(nLayer: number, e: number, nFf: number, w: Weight, c: Constant): TensorSpec[] {
  const out: TensorSpec[] = [];
  for (let i = 0; i < nLayer; i++) {
    const p = `v.blk.${i}`;
    out.push(
      c(`${p}.ln1.weight`, e, 1),
      c(`${p}.ln1.bias`, e, 0),
      w(`${p}.attn_q.weight`, [e, e]),
      c(`${p}.attn_q.bias`, e, 0),
      w(`${p}.attn_k.weight`, [e, e]),
      c(`${p}.attn_k.bias`, e, 0),
      w(`${p}.attn_v.weight`, [e, e]),
      c(`${p}.attn_v.bias`, e, 0),
      w(`${p}.attn_out.weight`, [e, e]),
      c(`${p}.attn_out.bias`, e, 0),
      c(`${p}.ln2.weight`, e, 1),
      c(`${p}.ln2.bias`, e, 0),
      w(`${p}.ffn_up.weight`, [e, nFf]),
      c(`${p}.ffn_up.bias`, nFf, 0),
      w(`${p}.ffn_down.weight`, [nFf, e]),
      c(`${p}.ffn_down.bias`, e, 0),
    );
  }
  return out;
}

function tensorsFor(s: ProjectorShape): TensorSpec[] {
  const { w, c } = makers(s.seed);
  const e = s.nEmbd;
  const nPatches = (s.imageSize / s.patchSize) ** 2;
  const out: TensorSpec[] = [
    // build_inp: ggml_conv_2d with kernel [KW, KH, C, n_embd], stride = patch size; the
    // converter always writes 4-D tensors as F16. Bias optional (CLIP has none; kept
    // here as zeros so the add is exercised).
    w("v.patch_embd.weight", [s.patchSize, s.patchSize, 3, e], GgmlType.F16),
    c("v.patch_embd.bias", e, 0),
    // optional; ggml_concat puts it after the patches, so n_pos = n_patches + 1, and the
    // rows fed to the projector ("patches") are 1..n_patches: patches 1.. and the class row
    w("v.class_embd", [e]),
    // required: get_rows by "positions" 0..n_pos-1
    w("v.position_embd.weight", [e, nPatches + 1]),
    // CLIP's pre_layrnorm (optional); post_ln is dropped by the converter for llava
    c("v.pre_ln.weight", e, 1),
    c("v.pre_ln.bias", e, 0),
  ];
  out.push(...vitBlocks(s.nLayer, e, s.nFf, w, c));
  // the "mlp" projector: mm.0, GELU, mm.2 (every add is unconditional: the biases are
  // required although loaded as optional); clip_n_mmproj_embd is mm.2.weight's ne[1]
  out.push(
    w("mm.0.weight", [e, s.nMmHidden]),
    c("mm.0.bias", s.nMmHidden, 0),
    w("mm.2.weight", [s.nMmHidden, s.nEmbdText]),
    c("mm.2.bias", s.nEmbdText, 0),
  );
  return out;
}

const str = (value: string): MetaEntry => ({ type: ValueType.STRING, value });
const u32v = (value: number): MetaEntry => ({ type: ValueType.UINT32, value });
const f32v = (value: number): MetaEntry => ({ type: ValueType.FLOAT32, value });
const boolv = (value: boolean): MetaEntry => ({ type: ValueType.BOOL, value });
const f32a = (value: number[]): MetaEntry => ({ type: ValueType.ARRAY, arrayType: ValueType.FLOAT32, value });

/**
 * clip.cpp reads integers with gguf_get_val_u32 and eps with _f32, which abort on any
 * other value type, so the types matter. Required (load_hparams throws "Key not
 * found"): projector_type, and clip.vision.{embedding_length, attention.head_count,
 * feed_forward_length, block_count, projection_dim, attention.layer_norm_epsilon,
 * image_size, patch_size}; image_mean/image_std are "optional" but must have 3 values.
 */
/** The vision tower's keys clip.cpp's load_hparams requires (in one order: the files stay byte-identical). */
function setVisionTower(m: Map<string, MetaEntry>, s: VisionTower, eps: number): void {
  m.set("clip.vision.image_size", u32v(s.imageSize));
  m.set("clip.vision.patch_size", u32v(s.patchSize));
  m.set("clip.vision.embedding_length", u32v(s.nEmbd));
  m.set("clip.vision.feed_forward_length", u32v(s.nFf));
  m.set("clip.vision.projection_dim", u32v(s.nEmbdText));
  m.set("clip.vision.attention.head_count", u32v(s.nHead));
  m.set("clip.vision.attention.layer_norm_epsilon", f32v(eps));
  m.set("clip.vision.block_count", u32v(s.nLayer));
  m.set("clip.vision.image_mean", f32a(CLIP_MEAN));
  m.set("clip.vision.image_std", f32a(CLIP_STD));
}

function metadataFor(s: ProjectorShape): Map<string, MetaEntry> {
  const m = new Map<string, MetaEntry>();
  m.set("general.architecture", str("clip"));
  m.set("general.name", str(s.name));
  m.set("general.description", str("image encoder for LLaVA"));
  m.set("general.file_type", u32v(1)); // mostly F16 as the converter counts it (unused by clip.cpp)
  // without has_vision_encoder clip_init loads no vision context at all
  m.set("clip.has_vision_encoder", boolv(true));
  m.set("clip.has_text_encoder", boolv(false)); // converter's; clip.cpp ignores it
  m.set("clip.has_llava_projector", boolv(true)); // ditto (clip.cpp derives it from the type)
  m.set("clip.projector_type", str("mlp"));
  // projection_dim: CLIP's visual_projection width; required but unused by the "mlp" graph
  setVisionTower(m, s, 1e-5);
  // false: the ViT's FFN uses quick GELU, as CLIP ViT-L does (the projector always uses GELU)
  m.set("clip.use_gelu", boolv(false));
  return m;
}

/** Writes the projector to outPath (via outPath.partial, then a rename). */
export function writeSyntheticProjector(shape: ProjectorShape, outPath: string): void {
  if (shape.imageSize % shape.patchSize !== 0)
    throw new Error("mmproj-synth: imageSize must be a multiple of patchSize");
  if (shape.nEmbd % shape.nHead !== 0) throw new Error("mmproj-synth: nEmbd must be a multiple of nHead");
  const partial = `${outPath}.partial`;
  writeGguf(partial, metadataFor(shape), tensorsFor(shape));
  renameSync(partial, outPath);
}

// ---- Qwen2-VL ("qwen2vl_merger") ---------------------------------------------
//
// A tiny Qwen2-VL vision tower as conversion/qwenvl.py (Qwen2VLVisionModel) writes
// it, checked against clip.cpp's load_hparams/load_tensors and models/qwen2vl.cpp:
// two patch convolutions (the checkpoint's Conv3D over 2 frames, split: a still
// image goes through both), pre-norm ViT blocks with LayerNorm and 2-D M-RoPE (no
// position embeddings, no class token, no patch bias: the graph asserts the last
// two are absent), then merger.ln_q as v.post_ln and the merger MLP (mm.0, GELU,
// mm.2) over each 2 x 2 block of patches. With a text model whose rope type is
// M-RoPE (arch qwen2vl), mtmd_decode_use_mrope is true and an image of nx x ny
// tokens takes max(nx, ny) positions. mtmd wraps it in <|vision_start|> ...
// <|vision_end|> (both in the Qwen2.5 vocabulary as control tokens).

/**
 * Qwen2-VL's merger: images keep their size (rounded to multiples of 2 *
 * patchSize: a token is a 2 x 2 block of patches); nEmbd must be a multiple of
 * 4 * nHead (M-RoPE needs head_dim % 4 == 0). imageSize is unused (the warmup
 * is 46 x 46 tokens).
 */
export type Qwen2vlProjectorShape = VisionTower;

/**
 * About 240 KB. Real Qwen2-VL's patch of 14 px: a token covers 28 x 28 px. clip.cpp
 * fixes the token range for qwen2vl_merger at 8..4096 (set_limit_image_tokens;
 * the GGUF's min/max pixel keys are not read for it; llama.cpp's --image-min-tokens
 * and --image-max-tokens override it), and mtmd's smart resize
 * rounds each side to a multiple of 28, then scales up to at least 8 tokens: a
 * 64 x 64 image gives 3 x 3 = 9 tokens (n_pos 3), a 40 x 30 one 4 x 3 = 12 (n_pos
 * 4), llama.cpp's test-1.jpeg (640 x 488) 23 x 17 = 391 (n_pos 23). Two blocks,
 * both run (no penultimate-layer cut as in llava). nFf must differ from nEmbd,
 * or load_tensors takes ffn_up/ffn_down for the legacy swapped names and swaps them.
 */
export const TINY_QWEN2VL_PROJECTOR_SHAPE: Qwen2vlProjectorShape = {
  name: "llmatic-tiny-qwen2vl-mmproj (random weights)",
  imageSize: 560,
  patchSize: 14,
  nEmbd: 32,
  nHead: 2,
  nFf: 64,
  nLayer: 2,
  nEmbdText: 64,
  seed: 1357,
};

/**
 * Tokens (nx, ny) and M-RoPE positions an image of w x h px becomes with `shape`:
 * mtmd's dyn-size preprocessing (calc_size_preserved_ratio with clip.cpp's limits
 * of 8 to 4096 tokens for Qwen2-VL), for tests to check counts against.
 */
export function qwen2vlImageTokens(
  w: number,
  h: number,
  shape: Qwen2vlProjectorShape = TINY_QWEN2VL_PROJECTOR_SHAPE,
): { nx: number; ny: number; nTokens: number; nPos: number } {
  const align = shape.patchSize * 2;
  const minPixels = 8 * align * align;
  const maxPixels = 4096 * align * align;
  // C's std::round rounds halves away from zero (Math.round rounds them up: the same for x > 0)
  const round = (x: number) => Math.round(x / align) * align;
  const ceil = (x: number) => Math.ceil(x / align) * align;
  const floor = (x: number) => Math.floor(x / align) * align;
  let wb = Math.max(align, round(w));
  let hb = Math.max(align, round(h));
  if (wb * hb > maxPixels) {
    const beta = Math.sqrt((h * w) / maxPixels);
    hb = Math.max(align, floor(h / beta));
    wb = Math.max(align, floor(w / beta));
  } else if (wb * hb < minPixels) {
    const beta = Math.sqrt(minPixels / (h * w));
    hb = ceil(h * beta);
    wb = ceil(w * beta);
  }
  const nx = wb / align;
  const ny = hb / align;
  return { nx, ny, nTokens: nx * ny, nPos: Math.max(nx, ny) };
}

/** Dims are ggml's order (ne[0] first: a weight is [n_in, n_out]). */
function qwen2vlTensorsFor(s: Qwen2vlProjectorShape): TensorSpec[] {
  const { w, c } = makers(s.seed);
  const e = s.nEmbd;
  const merged = 4 * e; // a 2 x 2 block of patches, concatenated
  const out: TensorSpec[] = [
    // the two temporal halves of the Conv3D kernel, [KW, KH, C, n_embd], F16 as the
    // converter writes 4-D tensors; both are required by the graph (no bias allowed)
    w("v.patch_embd.weight", [s.patchSize, s.patchSize, 3, e], GgmlType.F16),
    w("v.patch_embd.weight.1", [s.patchSize, s.patchSize, 3, e], GgmlType.F16),
  ];
  out.push(...vitBlocks(s.nLayer, e, s.nFf, w, c));
  // merger.ln_q (optional in clip.cpp, present in every real file), then
  // merger.mlp.0 (4e -> 4e), GELU, merger.mlp.2 (4e -> text n_embd); the four
  // mm tensors are required, and clip_n_mmproj_embd is mm.2.bias's length
  out.push(
    c("v.post_ln.weight", e, 1),
    c("v.post_ln.bias", e, 0),
    w("mm.0.weight", [merged, merged]),
    c("mm.0.bias", merged, 0),
    w("mm.2.weight", [merged, s.nEmbdText]),
    c("mm.2.bias", s.nEmbdText, 0),
  );
  return out;
}

/**
 * The converter's keys for Qwen2-VL (u32 integers, f32 eps, as clip.cpp reads them).
 * No n_wa_pattern (only qwen2.5vl_merger requires it: window attention) and no
 * use_gelu/use_silu: the ViT's FFN uses quick GELU, as Qwen2-VL's does; the merger
 * always uses GELU. projection_dim is required but unused by this graph.
 */
function qwen2vlMetadataFor(s: Qwen2vlProjectorShape): Map<string, MetaEntry> {
  const m = new Map<string, MetaEntry>();
  m.set("general.architecture", str("clip"));
  m.set("general.name", str(s.name));
  m.set("general.file_type", u32v(1));
  m.set("clip.has_vision_encoder", boolv(true));
  m.set("clip.projector_type", str("qwen2vl_merger"));
  // Qwen2-VL's preprocessor_config.json carries CLIP's (OpenAI) mean and std
  setVisionTower(m, s, 1e-6);
  return m;
}

/** Writes the Qwen2-VL projector to outPath (via outPath.partial, then a rename). */
export function writeSyntheticQwen2vlProjector(shape: Qwen2vlProjectorShape, outPath: string): void {
  if (shape.nEmbd % (4 * shape.nHead) !== 0)
    throw new Error("mmproj-synth: nEmbd must be a multiple of 4 * nHead (M-RoPE's head_dim % 4)");
  if (shape.nFf === shape.nEmbd) throw new Error("mmproj-synth: nFf must differ from nEmbd");
  const partial = `${outPath}.partial`;
  writeGguf(partial, qwen2vlMetadataFor(shape), qwen2vlTensorsFor(shape));
  renameSync(partial, outPath);
}
