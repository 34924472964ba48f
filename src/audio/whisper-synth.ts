// Synthetic whisper models: random weights of a chosen shape in whisper.cpp's
// legacy ggml .bin format, as models/convert-pt-to-ggml.py writes it (magic,
// hparams, mel filters, vocabulary, then tensors), for tests that need a model
// whisper.cpp loads and runs fast. The mel filters are real (librosa's Slaney
// filters); the vocabulary is made up but printable. The decoder's embeddings are
// shaped (see decoderEmbeddings) so that each 30 s window decodes confidently to
// about 50-60 words and a closing timestamp, with no temperature fallback.
// Nothing is downloaded; the same seed gives the same file.
import { rename } from "node:fs/promises";
import { rng, toHalf } from "../gguf/synth";
import type { WhisperHparams } from "../models/whisper-file";

/**
 * A model's hyperparameters (nVocab 51865 or more: multilingual, so whisper.cpp
 * derives the special tokens as for real models; nAudioCtx 1500: the 30 s window;
 * nTextState must equal nAudioState) and the seed of its weights.
 */
export interface WhisperShape extends WhisperHparams {
  seed: number;
}

/**
 * About 8 MB (mostly the 51865-row token embedding). Head size 64 as in every real
 * whisper model (flash attention is on by default; GPU kernels exist for 64). One
 * text layer, not two: whisper.cpp takes 2 text layers (with n_vocab != 51866) for a
 * distilled model and forces no_timestamps.
 */
export const TINY_WHISPER_SHAPE: WhisperShape = {
  nVocab: 51865,
  nAudioCtx: 1500,
  nAudioState: 64,
  nAudioHead: 1,
  nAudioLayer: 2,
  nTextCtx: 448,
  nTextState: 64,
  nTextHead: 1,
  nTextLayer: 1,
  nMels: 80,
  seed: 4321,
};

const GGML_FILE_MAGIC = 0x67676d6c; // "ggml"
const N_FFT = 400;
const SAMPLE_RATE = 16000;
const F32 = 0;
const F16 = 1;

// the decoder's embeddings and its SOT anchor (see decoderEmbeddings, anchorClock);
// every other weight is N(0, 0.02), every norm 1 and every bias 0
const TOKEN_STD = 1;
const POS_STD = 6;
const PRIOR_B = 10;
const CLOCK_RATE = 0.25;
const CLOCK_ROW = 5;
const SOT_MARK = 1000;
const SOT_QUERY = 20;
const TS_PRIOR = 15.5;
const TS_SLOPE = 0.05;
const EOT_OVER_TS = 1.5;

// ---- random numbers ---------------------------------------------------------

/** n samples of N(0, std^2), drawn from a table of 4096 (fast for millions of values). */
function normals(n: number, std: number, seed: number): Float32Array {
  const r = rng(seed);
  const table = new Float32Array(4096);
  for (let i = 0; i < table.length; i += 2) {
    const u1 = (r() + 1) / 4294967297;
    const u2 = r() / 4294967296;
    const m = Math.sqrt(-2 * Math.log(u1)) * std;
    table[i] = m * Math.cos(2 * Math.PI * u2);
    table[i + 1] = m * Math.sin(2 * Math.PI * u2);
  }
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = table[r() & 4095] as number;
  return out;
}

// ---- tensors ----------------------------------------------------------------

interface Tensor {
  name: string;
  /** ggml order (ne[0] first): the PyTorch shape reversed */
  ne: number[];
  type: typeof F32 | typeof F16;
  data: Float32Array;
}

/** Whisper's encoder positional embedding: [sin | cos] of position times geometric timescales. */
function sinusoids(length: number, channels: number): Float32Array {
  const half = channels / 2;
  const inc = Math.log(10000) / (half - 1);
  const out = new Float32Array(length * channels);
  for (let t = 0; t < length; t++) {
    for (let i = 0; i < half; i++) {
      const x = t * Math.exp(-inc * i);
      out[t * channels + i] = Math.sin(x);
      out[t * channels + half + i] = Math.cos(x);
    }
  }
  return out;
}

/**
 * The decoder's token and positional embeddings and its final LayerNorm bias. The
 * random layers add little (anchorClock's aside), so the last hidden state is about
 * LN(pe[pos] + te[tok]) + bias, and the logits are its product with te. So:
 * - wide token rows under a wider positional embedding give confident steps that do
 *   not repeat the last token (average logprob about -0.6: no temperature fallback);
 * - channel 0 is a prior: the bias is PRIOR_B there, so a row's channel 0 of
 *   prior / PRIOR_B adds prior to its logit (0 for text, rising over the timestamps);
 * - channel 1 is a clock: pe grows along it with the position (counted from SOT, see
 *   anchorClock), and only EOT and the timestamp rows have it, so after about 55
 *   words the timestamps' mass beats the best text token and whisper.cpp forces
 *   <|30.00|>, then EOT (1.5 above it) ends the window; without timestamps EOT
 *   itself wins a few words later;
 * - <|0.00|> is lifted well above <|0.02|>..<|1.00|> (still far below text), so it is
 *   the likeliest first timestamp and its probability does not underflow to 0 at a
 *   fallback temperature (whisper.cpp would then start the segment at id 0: -1007 s).
 */
function decoderEmbeddings(s: WhisperShape, seed: number) {
  const d = s.nTextState;
  const eot = s.nVocab >= 51865 ? 50257 : 50256;
  const tsBegin = s.nVocab - 1501; // <|0.00|> .. <|30.00|> are the last 1501 ids
  const tsPrior = (k: number) => TS_PRIOR - (k === 0 ? 20 : TS_SLOPE * (1500 - k));
  const te = normals(s.nVocab * d, TOKEN_STD, seed);
  for (let j = 0; j < s.nVocab; j++) {
    const special = j === eot || j >= tsBegin;
    if (special || j === eot + 1) te.fill(0, j * d, (j + 1) * d);
    te[j * d] = (j === eot ? TS_PRIOR + EOT_OVER_TS : special ? tsPrior(j - tsBegin) : 0) / PRIOR_B;
    te[j * d + 1] = special ? CLOCK_ROW : 0;
    te[j * d + 2] = j === eot + 1 ? SOT_MARK : 0;
  }
  const pe = normals(s.nTextCtx * d, POS_STD, seed ^ 0x9e3779b9);
  for (let p = 0; p < s.nTextCtx; p++) {
    pe[p * d] = 0;
    pe[p * d + 1] = CLOCK_RATE * p;
    pe[p * d + 2] = 0;
  }
  const lnBias = new Float32Array(d);
  lnBias[0] = PRIOR_B;
  return { te, pe, lnBias };
}

/**
 * Decoder layer 0's self-attention looks only at SOT (channel 2, set only in SOT's
 * row, against a constant query) and subtracts SOT's clock reading, so the clock
 * counts from SOT: a prompt before it (the previous window's text, an initial
 * prompt) does not make the window end early. SOT's row is nothing but a huge
 * channel 2, so LN(pe + te[SOT]) has a fixed scale and the reading is linear.
 */
function anchorClock(tensors: Tensor[], d: number): void {
  const get = (n: string) => tensors.find((t) => t.name === `decoder.blocks.0.attn.${n}`)?.data as Float32Array;
  const only = (w: Float32Array, row: number, col: number, v: number) => {
    w.fill(0, row * d, (row + 1) * d); // torch [out, in]: row `row` is output channel `row`
    w[row * d + col] = v;
  };
  only(get("query.weight"), 2, 2, 0);
  get("query.bias")[2] = SOT_QUERY;
  only(get("key.weight"), 2, 2, 1);
  only(get("value.weight"), 1, 1, 1);
  only(get("out.weight"), 1, 1, (-SOT_MARK * Math.sqrt(d - 1)) / d); // undo the LayerNorm's scale
  get("out.bias")[1] = -SOT_MARK / d; // and its mean
}

function tensorsFor(s: WhisperShape): Tensor[] {
  if (s.nAudioState !== s.nTextState) throw new Error("whisper needs nAudioState === nTextState");
  let seed = s.seed;
  const n = (ne: number[]) => ne.reduce((a, b) => a * b, 1);
  const w = (name: string, ...ne: number[]): Tensor => ({ name, ne, type: F16, data: normals(n(ne), 0.02, seed++) });
  const fill = (name: string, v: number, ...ne: number[]): Tensor => ({
    name,
    ne,
    type: F32,
    data: new Float32Array(n(ne)).fill(v),
  });
  /** a LayerNorm: weight 1, bias 0 */
  const ln = (p: string, n: number) => [fill(`${p}.weight`, 1, n), fill(`${p}.bias`, 0, n)];

  const d = s.nTextState;
  const { te, pe, lnBias } = decoderEmbeddings(s, seed++);

  const out: Tensor[] = [
    {
      name: "encoder.positional_embedding",
      ne: [s.nAudioState, s.nAudioCtx],
      type: F32,
      data: sinusoids(s.nAudioCtx, s.nAudioState),
    },
    w("encoder.conv1.weight", 3, s.nMels, s.nAudioState),
    fill("encoder.conv1.bias", 0, 1, s.nAudioState),
    w("encoder.conv2.weight", 3, s.nAudioState, s.nAudioState),
    fill("encoder.conv2.bias", 0, 1, s.nAudioState),
  ];
  /** attention: q, v and out have biases, k has none */
  const attn = (p: string, n: number) => [
    w(`${p}.query.weight`, n, n),
    fill(`${p}.query.bias`, 0, n),
    w(`${p}.key.weight`, n, n),
    w(`${p}.value.weight`, n, n),
    fill(`${p}.value.bias`, 0, n),
    w(`${p}.out.weight`, n, n),
    fill(`${p}.out.bias`, 0, n),
  ];
  const mlp = (p: string, n: number) => [
    ...ln(`${p}.mlp_ln`, n),
    w(`${p}.mlp.0.weight`, n, 4 * n),
    fill(`${p}.mlp.0.bias`, 0, 4 * n),
    w(`${p}.mlp.2.weight`, 4 * n, n),
    fill(`${p}.mlp.2.bias`, 0, n),
  ];
  for (let i = 0; i < s.nAudioLayer; i++) {
    const p = `encoder.blocks.${i}`;
    out.push(...ln(`${p}.attn_ln`, s.nAudioState), ...attn(`${p}.attn`, s.nAudioState), ...mlp(p, s.nAudioState));
  }
  out.push(
    ...ln("encoder.ln_post", s.nAudioState),
    { name: "decoder.positional_embedding", ne: [d, s.nTextCtx], type: F32, data: pe },
    { name: "decoder.token_embedding.weight", ne: [d, s.nVocab], type: F16, data: te },
  );
  for (let i = 0; i < s.nTextLayer; i++) {
    const p = `decoder.blocks.${i}`;
    out.push(
      ...ln(`${p}.attn_ln`, d),
      ...attn(`${p}.attn`, d),
      ...ln(`${p}.cross_attn_ln`, d),
      ...attn(`${p}.cross_attn`, d),
      ...mlp(p, d),
    );
  }
  anchorClock(out, d);
  out.push(fill("decoder.ln.weight", 1, d), { name: "decoder.ln.bias", ne: [d], type: F32, data: lnBias });
  return out;
}

// ---- mel filters and vocabulary ---------------------------------------------

/** Slaney's mel scale: linear below 1 kHz, logarithmic above (librosa's default). */
const LOG_STEP = Math.log(6.4) / 27;
const hzToMel = (hz: number) => (hz < 1000 ? (hz * 3) / 200 : 15 + Math.log(hz / 1000) / LOG_STEP);
const melToHz = (mel: number) => (mel < 15 ? (mel * 200) / 3 : 1000 * Math.exp(LOG_STEP * (mel - 15)));

/** librosa.filters.mel(sr=16000, n_fft=400, n_mels): triangles with Slaney area normalisation, [nMels x 201]. */
function melFilters(nMels: number): Float32Array {
  const nFft = N_FFT / 2 + 1;
  const maxMel = hzToMel(SAMPLE_RATE / 2);
  const f = Array.from({ length: nMels + 2 }, (_, i) => melToHz((maxMel * i) / (nMels + 1)));
  const out = new Float32Array(nMels * nFft);
  for (let m = 0; m < nMels; m++) {
    const [lo, mid, hi] = [f[m] as number, f[m + 1] as number, f[m + 2] as number];
    const norm = 2 / (hi - lo);
    for (let k = 0; k < nFft; k++) {
      const hz = (k * SAMPLE_RATE) / N_FFT;
      const v = Math.min((hz - lo) / (mid - lo), (hi - hz) / (hi - mid));
      out[m * nFft + k] = Math.max(0, v) * norm;
    }
  }
  return out;
}

/**
 * The base vocabulary the file holds: whisper.cpp adds the special tokens (EOT, SOT,
 * languages, tasks, timestamps) itself above it. Ids 0..94 are the printable ASCII
 * characters (so any ASCII prompt tokenizes), the rest distinct made-up words with a
 * leading space, so every id decodes to printable text.
 */
function vocabFor(s: WhisperShape): string[] {
  const nBase = s.nVocab >= 51865 ? 50257 : 50256;
  const words: string[] = [];
  for (let c = 0x20; c < 0x7f; c++) words.push(String.fromCharCode(c));
  const syl: string[] = [];
  for (const c of "bdfghjklmnprstvwyzcq") for (const v of "aeiou") syl.push(c + v);
  const word = (k: number) => {
    let out = "";
    do {
      out += syl[k % syl.length];
      k = Math.floor(k / syl.length);
    } while (k > 0);
    return ` ${out}`;
  };
  for (let k = 0; words.length < nBase; k++) words.push(word(k));
  return words;
}

// ---- file -------------------------------------------------------------------

/** Writes a whisper.cpp ggml model of the shape to outPath (via outPath.partial, then a rename). */
export async function writeSyntheticWhisper(shape: WhisperShape, outPath: string): Promise<void> {
  const s = shape;
  const enc = new TextEncoder();
  const tensors = tensorsFor(s);
  const vocab = vocabFor(s).map((t) => enc.encode(t));
  const filters = melFilters(s.nMels);
  const nFft = N_FFT / 2 + 1;

  let size = 4 * 12 + 8 + filters.byteLength + 4;
  for (const v of vocab) size += 4 + v.length;
  for (const t of tensors) {
    const n = t.ne.reduce((a, b) => a * b, 1);
    size += 12 + 4 * t.ne.length + t.name.length + n * (t.type === F16 ? 2 : 4);
  }
  const buf = new Uint8Array(size);
  const dv = new DataView(buf.buffer);
  let off = 0;
  const i32 = (v: number) => {
    dv.setInt32(off, v, true);
    off += 4;
  };
  const f16 = (v: number) => {
    dv.setUint16(off, toHalf(v), true);
    off += 2;
  };
  const bytes = (b: Uint8Array) => {
    buf.set(b, off);
    off += b.length;
  };

  for (const v of [GGML_FILE_MAGIC | 0, s.nVocab, s.nAudioCtx, s.nAudioState, s.nAudioHead, s.nAudioLayer]) i32(v);
  for (const v of [s.nTextCtx, s.nTextState, s.nTextHead, s.nTextLayer, s.nMels, F16]) i32(v); // ftype 1: mostly F16
  i32(s.nMels);
  i32(nFft);
  bytes(new Uint8Array(filters.buffer));
  i32(vocab.length);
  for (const v of vocab) {
    i32(v.length);
    bytes(v);
  }

  for (const t of tensors) {
    const name = enc.encode(t.name);
    i32(t.ne.length);
    i32(name.length);
    i32(t.type);
    for (const d of t.ne) i32(d);
    bytes(name);
    if (t.type === F32) bytes(new Uint8Array(t.data.buffer));
    else for (const v of t.data) f16(v);
  }
  if (off !== size) throw new Error(`whisper-synth: wrote ${off} of ${size} bytes`);

  const partial = `${outPath}.partial`;
  await Bun.write(partial, buf);
  await rename(partial, outPath);
}
