// Model: owns a llama_model and answers vocabulary questions (tokenize, pieces, EOG).
import { type Pointer, ptr } from "bun:ffi";
import { existsSync, statSync } from "node:fs";
import { DomainError } from "../errors";
import { expectedFileSize, GgufError, readGguf } from "../gguf/gguf";
import { drainNativeLogs, LogLevel, lib, type NativeLogLine, NativeObject, takeString } from "./library";

export interface ModelLoadOptions {
  nGpuLayers?: number;
  useMmap?: boolean;
  vocabOnly?: boolean;
  /** repack quantized weights for faster CPU kernels (default true) */
  repack?: boolean;
  /** receives load progress 0..1 (may live in a SharedArrayBuffer) */
  progress?: Float32Array;
  /** loading stops when [0] becomes non-zero */
  cancel?: Int32Array;
  /** receives llama.cpp's log lines produced while loading */
  onLog?: (lines: NativeLogLine[]) => void;
}

/** Checks a model file before llama.cpp sees it, so users get a reason, not a NULL. */
export function validateModelFile(path: string): void {
  if (!existsSync(path)) throw new DomainError("model_not_found", `model file not found: ${path}`);
  const st = statSync(path);
  if (st.isDirectory()) throw new DomainError("invalid_model", `model path is a directory, not a .gguf file: ${path}`);
  let g: ReturnType<typeof readGguf>;
  try {
    // only the tensor table matters here: llama.cpp reads the metadata itself
    g = readGguf(path, { arrays: false });
  } catch (e) {
    if (e instanceof GgufError) {
      const truncated = /unexpected end of file/.test(e.message);
      throw new DomainError(
        "invalid_model",
        truncated ? `model file is truncated (${e.message}): ${path}` : `${e.message}: ${path}`,
      );
    }
    throw e;
  }
  const need = expectedFileSize(g);
  if (need !== undefined && need > g.fileSize) {
    throw new DomainError(
      "invalid_model",
      `model file is truncated: it has ${g.fileSize} bytes but its tensors need ${need}: ${path}`,
    );
  }
}

export interface VocabInfo {
  control: string[];
  maxPieceBytes: number;
}

const pieceScratch = new Uint8Array(256);

export class Model extends NativeObject {
  readonly #vocab: Pointer;
  readonly nVocab: number;
  readonly nEmbd: number;
  /** the width of an input embedding (what a projector must produce) */
  readonly nEmbdInput: number;
  readonly nCtxTrain: number;
  readonly nLayer: number;
  readonly description: string;
  readonly sizeBytes: number;
  readonly nParams: number;
  readonly hasEncoder: boolean;
  readonly hasDecoder: boolean;
  private readonly pieces: (Uint8Array | undefined)[];
  private readonly specialPieces: (Uint8Array | undefined)[];
  private eogCache: Int32Array | null = null;

  private constructor(
    handle: Pointer,
    readonly path: string,
    owned = true,
  ) {
    super(handle, owned);
    const l = lib();
    this.#vocab = l.llama_model_get_vocab(handle) as Pointer;
    this.nVocab = l.llama_vocab_n_tokens(this.#vocab);
    this.nEmbd = l.llama_model_n_embd(handle);
    this.nEmbdInput = l.llama_model_n_embd_inp(handle);
    this.nCtxTrain = l.llama_model_n_ctx_train(handle);
    this.nLayer = l.llama_model_n_layer(handle);
    this.sizeBytes = Number(l.llama_model_size(handle));
    this.nParams = Number(l.llama_model_n_params(handle));
    this.hasEncoder = l.llama_model_has_encoder(handle);
    this.hasDecoder = l.llama_model_has_decoder(handle);
    const buf = new Uint8Array(256);
    const n = l.llama_model_desc(handle, ptr(buf), BigInt(buf.length));
    this.description = new TextDecoder().decode(buf.subarray(0, Math.max(0, Math.min(n, buf.length - 1))));
    this.pieces = new Array(this.nVocab);
    this.specialPieces = new Array(this.nVocab);
  }

  static load(path: string, opts: ModelLoadOptions = {}): Model {
    validateModelFile(path);
    const l = lib();
    const handle = l.llmatic_model_load(
      Buffer.from(`${path}\0`),
      opts.nGpuLayers ?? 0,
      opts.useMmap ?? true,
      opts.vocabOnly ?? false,
      opts.repack ?? true,
      opts.progress ? ptr(opts.progress) : null,
      opts.cancel ? ptr(opts.cancel) : null,
    ) as Pointer | null;
    const logs = drainNativeLogs();
    opts.onLog?.(logs);
    if (!handle) {
      if (opts.cancel && opts.cancel[0] !== 0) throw new DomainError("cancelled", `loading ${path} was cancelled`);
      const reason = logs
        .filter((x) => x.level >= LogLevel.ERROR)
        .map((x) => x.text)
        .join("; ");
      throw new DomainError("model_load_failed", `llama.cpp could not load ${path}${reason ? `: ${reason}` : ""}`);
    }
    return new Model(handle, path);
  }

  /**
   * A model loaded by another thread of this process: `owned` takes over
   * freeing it; otherwise this is a view that never frees (the owner must
   * outlive it).
   */
  static fromHandle(handle: number, path: string, owned: boolean): Model {
    return new Model(handle as unknown as Pointer, path, owned);
  }

  protected free(handle: Pointer): void {
    lib().llama_model_free(handle);
  }

  #vocabInfo: VocabInfo | null = null;

  /** The control tokens' texts (only parse_special turns them into tokens) and the longest token's bytes. */
  get vocabInfo(): VocabInfo {
    if (!this.#vocabInfo) {
      const text = takeString(lib().llmatic_vocab_info(this.vocab) as Pointer | null);
      const v = JSON.parse(text ?? "{}") as { control?: string[]; max_piece?: number };
      this.#vocabInfo = { control: v.control ?? [], maxPieceBytes: Math.max(1, v.max_piece ?? 1) };
    }
    return this.#vocabInfo;
  }

  /** The vocabulary lives inside the model: checked like the model itself. */
  get vocab(): Pointer {
    void this.handle;
    return this.#vocab;
  }

  /** The model's default chat template (jinja source), or a named one ("rerank"), or null. */
  chatTemplate(name: string | null = null): string | null {
    const p = lib().llama_model_chat_template(this.handle, name === null ? null : Buffer.from(`${name}\0`));
    return p ? String(p) : null;
  }

  /** A metadata value as text, or null. */
  meta(key: string): string | null {
    const l = lib();
    const buf = new Uint8Array(256);
    const n = l.llama_model_meta_val_str(this.handle, Buffer.from(`${key}\0`), ptr(buf), BigInt(buf.length));
    return n < 0 ? null : new TextDecoder().decode(buf.subarray(0, Math.min(n, buf.length - 1)));
  }

  /**
   * The model scores query/document pairs with a classification head
   * (rank pooling, as llama.cpp converts rerankers): it ranks, it does not embed.
   */
  get rankHead(): boolean {
    const arch = this.meta("general.architecture");
    return arch !== null && this.meta(`${arch}.pooling_type`) === "4";
  }

  /** How many scores the rank head gives per pair (its labels). */
  get nClsOut(): number {
    return lib().llama_model_n_cls_out(this.handle);
  }

  /** The special tokens a query/document pair is joined with when the model has no rerank prompt. */
  pairTokens(): { bos: number | null; eos: number | null; sep: number | null } {
    const l = lib();
    const v = this.vocab;
    const eos = l.llama_vocab_eos(v) >= 0 ? l.llama_vocab_eos(v) : l.llama_vocab_sep(v);
    return {
      bos: l.llama_vocab_get_add_bos(v) ? this.bos : null,
      eos: l.llama_vocab_get_add_eos(v) && eos >= 0 ? eos : null,
      sep: l.llama_vocab_get_add_sep(v) && l.llama_vocab_sep(v) >= 0 ? l.llama_vocab_sep(v) : null,
    };
  }

  get bos(): number {
    return lib().llama_vocab_bos(this.vocab);
  }

  /** The token a sequence starts from when there is nothing else: BOS, or token 0 without one. */
  get startToken(): number {
    return Math.max(this.bos, 0);
  }

  tokenize(text: string, addSpecial = true, parseSpecial = false): Int32Array {
    const bytes = Buffer.from(text, "utf8");
    let out = new Int32Array(bytes.length + 8);
    const l = lib();
    // an empty JS buffer has no address: give llama.cpp a valid one
    const src = bytes.length ? bytes : Buffer.alloc(1);
    let n = l.llama_tokenize(this.vocab, ptr(src), bytes.length, ptr(out), out.length, addSpecial, parseSpecial);
    if (n < 0) {
      if (n === -2147483648) throw new DomainError("invalid_request", "text is too long to tokenize");
      out = new Int32Array(-n);
      n = l.llama_tokenize(this.vocab, ptr(src), bytes.length, ptr(out), out.length, addSpecial, parseSpecial);
    }
    return out.slice(0, n);
  }

  /** The raw bytes of one token (cached; special tokens rendered only when `special`). */
  piece(token: number, special = false): Uint8Array {
    const cache = special ? this.specialPieces : this.pieces;
    const hit = cache[token];
    if (hit) return hit;
    if (token < 0 || token >= this.nVocab)
      throw new DomainError("invalid_request", `token id ${token} is out of range`);
    const l = lib();
    let buf = pieceScratch;
    let n = l.llama_token_to_piece(this.vocab, token, ptr(buf), buf.length, 0, special);
    if (n < 0) {
      buf = new Uint8Array(-n);
      n = l.llama_token_to_piece(this.vocab, token, ptr(buf), buf.length, 0, special);
    }
    const bytes = buf.slice(0, n);
    cache[token] = bytes;
    return bytes;
  }

  detokenize(tokens: ArrayLike<number>, special = false): string {
    const parts: Uint8Array[] = [];
    let len = 0;
    for (let i = 0; i < tokens.length; i++) {
      const p = this.piece(tokens[i] as number, special);
      parts.push(p);
      len += p.length;
    }
    const all = new Uint8Array(len);
    let o = 0;
    for (const p of parts) {
      all.set(p, o);
      o += p.length;
    }
    return new TextDecoder().decode(all);
  }

  /** Fill-in-the-middle tokens [prefix, suffix, middle], or null when the vocabulary has none. */
  fimTokens(): [number, number, number] | null {
    const l = lib();
    const t: [number, number, number] = [
      l.llama_vocab_fim_pre(this.vocab),
      l.llama_vocab_fim_suf(this.vocab),
      l.llama_vocab_fim_mid(this.vocab),
    ];
    return t.every((x) => x >= 0) ? t : null;
  }

  isEog(token: number): boolean {
    return lib().llama_vocab_is_eog(this.vocab, token);
  }

  /** Every end-of-generation token of the vocabulary. */
  eogTokens(): Int32Array {
    if (!this.eogCache) {
      const l = lib();
      const out: number[] = [];
      for (let t = 0; t < this.nVocab; t++) if (l.llama_vocab_is_eog(this.vocab, t)) out.push(t);
      this.eogCache = Int32Array.from(out);
    }
    return this.eogCache;
  }
}
