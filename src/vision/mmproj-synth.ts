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

export interface ProjectorShape {
  name: string;
  /** the square side every image is resized to (mtmd's fixed-size preprocessor for "mlp") */
  imageSize: number;
  patchSize: number;
  /** the ViT's width, heads, FFN width and blocks */
  nEmbd: number;
  nHead: number;
  nFf: number;
  nLayer: number;
  /** the projector's hidden width (mm.0's output) */
  nMmHidden: number;
  /** the projector's output width: must equal the text model's n_embd (mtmd checks it) */
  nEmbdText: number;
  seed: number;
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
function tensorsFor(s: ProjectorShape): TensorSpec[] {
  let seed = s.seed;
  const w = (name: string, dims: number[], type = GgmlType.F32, std = 0.02): TensorSpec => ({
    name,
    dims,
    type,
    fill: filler(type, std, 0, seed++),
  });
  const c = (name: string, n: number, value: number): TensorSpec => ({
    name,
    dims: [n],
    type: GgmlType.F32,
    fill: filler(GgmlType.F32, null, value, 0),
  });
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
  for (let i = 0; i < s.nLayer; i++) {
    const p = `v.blk.${i}`;
    out.push(
      c(`${p}.ln1.weight`, e, 1),
      c(`${p}.ln1.bias`, e, 0),
      // separate q/k/v (attn_qkv is the fused alternative); attn_out.weight is the one
      // per-layer tensor load_tensors requires besides ffn_up/ffn_down
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
      // the correct names (up: n_embd -> n_ff); no ffn_gate, so build_ffn is up, act, down
      w(`${p}.ffn_up.weight`, [e, s.nFf]),
      c(`${p}.ffn_up.bias`, s.nFf, 0),
      w(`${p}.ffn_down.weight`, [s.nFf, e]),
      c(`${p}.ffn_down.bias`, e, 0),
    );
  }
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
  m.set("clip.vision.image_size", u32v(s.imageSize));
  m.set("clip.vision.patch_size", u32v(s.patchSize));
  m.set("clip.vision.embedding_length", u32v(s.nEmbd));
  m.set("clip.vision.feed_forward_length", u32v(s.nFf));
  // CLIP's visual_projection width; required but unused by the "mlp" graph
  m.set("clip.vision.projection_dim", u32v(s.nEmbdText));
  m.set("clip.vision.attention.head_count", u32v(s.nHead));
  m.set("clip.vision.attention.layer_norm_epsilon", f32v(1e-5));
  m.set("clip.vision.block_count", u32v(s.nLayer));
  m.set("clip.vision.image_mean", f32a(CLIP_MEAN));
  m.set("clip.vision.image_std", f32a(CLIP_STD));
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
