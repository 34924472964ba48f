// Context: owns a llama_context (KV cache, compute buffers) bound to one Model.
import { type Pointer, ptr, toArrayBuffer } from "bun:ffi";
import { DomainError } from "../errors";
import type { Batch } from "./batch";
import { drainNativeLogs, LogLevel, lib, type NativeLogLine, NativeObject } from "./library";
import type { Model } from "./model";

export enum PoolingType {
  UNSPECIFIED = -1,
  NONE = 0,
  MEAN = 1,
  CLS = 2,
  LAST = 3,
  RANK = 4,
}

export enum FlashAttn {
  AUTO = -1,
  DISABLED = 0,
  ENABLED = 1,
}

export interface ContextOptions {
  nCtx: number;
  nBatch?: number;
  nUbatch?: number;
  nSeqMax?: number;
  nThreads: number;
  nThreadsBatch?: number;
  embeddings?: boolean;
  pooling?: PoolingType;
  flashAttn?: FlashAttn;
  /** one KV buffer shared by all sequences (a sequence may use the whole context) */
  kvUnified?: boolean;
  onLog?: (lines: NativeLogLine[]) => void;
}

const TOP_MAX = 20;
const topIds = new Int32Array(TOP_MAX);
const topLps = new Float32Array(TOP_MAX);

export class Context extends NativeObject {
  readonly nCtx: number;
  readonly nCtxSeq: number;
  readonly nBatch: number;
  readonly nSeqMax: number;
  readonly #memory: Pointer;

  constructor(
    readonly model: Model,
    opts: ContextOptions,
  ) {
    const l = lib();
    const nBatch = opts.nBatch ?? Math.min(opts.nCtx, 2048);
    const h = l.llmatic_context_new(
      model.handle,
      opts.nCtx,
      nBatch,
      opts.nUbatch ?? Math.min(nBatch, 512),
      opts.nSeqMax ?? 1,
      opts.nThreads,
      opts.nThreadsBatch ?? opts.nThreads,
      opts.embeddings ?? false,
      opts.pooling ?? PoolingType.UNSPECIFIED,
      opts.flashAttn ?? FlashAttn.AUTO,
      opts.kvUnified ?? false,
    ) as Pointer | null;
    const logs = drainNativeLogs();
    opts.onLog?.(logs);
    if (!h) {
      const reason = logs
        .filter((x) => x.level >= LogLevel.ERROR)
        .map((x) => x.text)
        .join("; ");
      throw new DomainError(
        "model_load_failed",
        `could not create a context of ${opts.nCtx} tokens${reason ? `: ${reason}` : ""}`,
      );
    }
    super(h);
    this.nCtx = l.llama_n_ctx(h);
    this.nCtxSeq = l.llama_n_ctx_seq(h);
    this.nBatch = l.llama_n_batch(h);
    this.nSeqMax = l.llama_n_seq_max(h);
    this.#memory = l.llama_get_memory(h) as Pointer;
  }

  protected free(h: Pointer): void {
    lib().llama_free(h);
  }

  /** The KV memory lives inside the context: checked like the context itself. */
  private get memory(): Pointer {
    void this.handle;
    return this.#memory;
  }

  /** llama_decode's status: 0 ok, 1 no KV slot, 2 aborted, < 0 error. */
  decode(batch: Batch): number {
    const h = this.handle;
    if (batch.length === 0) return 0;
    return lib().llmatic_decode(h, batch.handle, batch.length);
  }

  /** Drops positions [p0, p1) of a sequence (-1 = open end); seq -1 = all sequences. */
  seqRemove(seq: number, p0 = -1, p1 = -1): boolean {
    return lib().llama_memory_seq_rm(this.memory, seq, p0, p1);
  }

  /** Shares positions [p0, p1) of `src` with `dst` (KV cells are referenced, not recomputed). */
  seqCopy(src: number, dst: number, p0 = -1, p1 = -1): void {
    lib().llama_memory_seq_cp(this.memory, src, dst, p0, p1);
  }

  /** A sequence's KV (and its positions) as bytes, for a host-memory cache; null when it cannot be saved. */
  saveSequence(seq: number): Uint8Array | null {
    const size = Number(lib().llama_state_seq_get_size(this.handle, seq));
    if (size <= 0) return null;
    const out = new Uint8Array(size);
    const n = Number(lib().llama_state_seq_get_data(this.handle, ptr(out), BigInt(size), seq));
    return n > 0 ? out.subarray(0, n) : null;
  }

  /** Puts bytes saveSequence made back into (an empty) sequence `seq`; false when they do not fit. */
  loadSequence(seq: number, data: Uint8Array): boolean {
    return Number(lib().llama_state_seq_set_data(this.handle, ptr(data), BigInt(data.length), seq)) > 0;
  }

  clearMemory(): void {
    lib().llama_memory_clear(this.memory, true);
  }

  /**
   * Log-probabilities from the raw logits of output `idx` of the last decode:
   * the given token's, and the `k` most likely tokens (most likely first).
   */
  logprobs(idx: number, token: number, k: number): { logprob: number; top: [number, number][] } {
    const n = Math.max(0, Math.min(k, TOP_MAX));
    const logprob = lib().llmatic_logprobs(this.handle, idx, token, n, ptr(topIds), ptr(topLps));
    const top: [number, number][] = [];
    for (let i = 0; i < n; i++) top.push([topIds[i] as number, topLps[i] as number]);
    return { logprob, top };
  }

  /** Pooled embedding of a sequence after a decode (copied out of native memory). */
  sequenceEmbedding(seq: number, n = this.model.nEmbd): Float32Array | null {
    const p = lib().llama_get_embeddings_seq(this.handle, seq) as Pointer | null;
    if (!p) return null;
    return new Float32Array(toArrayBuffer(p, 0, n * 4).slice(0));
  }
}
