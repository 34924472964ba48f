// Drafts from a second, smaller model of the same vocabulary (--model-draft):
// its own context holds, per sequence, the tokens it has seen; before each
// draft it catches up with what the sequence really holds (dropping what it
// drafted and the model did not keep), then decodes its greedy guesses one by
// one. It runs on the decode thread, beside the model it drafts for.
import { DomainError } from "../errors";
import { Batch } from "../ffi/batch";
import { Context } from "../ffi/context";
import type { NativeLogLine } from "../ffi/library";
import { Model } from "../ffi/model";
import { DEFAULT_SAMPLING, Sampler } from "../ffi/sampler";
import type { Drafter } from "./draft";
import { commonPrefix } from "./prefix-store";

/** Tokens a lagging sequence catches up per step: a long new prompt must not stall the others' step. */
const CATCH_UP = 512;

export interface DraftModelOptions {
  /** the model drafted for: the vocabularies must agree */
  target: Model;
  nSeqMax: number;
  nCtxSeq: number;
  nThreads: number;
  onLog?: (lines: NativeLogLine[]) => void;
}

/**
 * Why `draft` cannot draft for `target` (their tokens mean different things),
 * or null: same vocabulary size, same start and end tokens, same pieces on a
 * sample of ids (llama.cpp's speculative example checks the same).
 */
export function vocabMismatch(target: Model, draft: Model): string | null {
  if (target.nVocab !== draft.nVocab) return `vocabulary sizes differ (${target.nVocab} and ${draft.nVocab})`;
  if (target.bos !== draft.bos) return `start tokens differ (${target.bos} and ${draft.bos})`;
  const eogA = [...target.eogTokens()].sort((a, b) => a - b).join(",");
  const eogB = [...draft.eogTokens()].sort((a, b) => a - b).join(",");
  if (eogA !== eogB) return `end-of-generation tokens differ (${eogA} and ${eogB})`;
  const step = Math.max(1, Math.floor(target.nVocab / 256));
  for (let id = 0; id < target.nVocab; id += step) {
    if (Buffer.compare(target.piece(id, true), draft.piece(id, true)) !== 0) return `token ${id} differs`;
  }
  return null;
}

/** The draft model's tokens mean other things than the target's. */
export class DraftVocabMismatch extends DomainError {
  constructor(message: string) {
    super("invalid_model", message, "model_draft");
  }
}

export class ModelDrafter implements Drafter {
  /** what each sequence's KV holds (positions 0..) */
  private readonly seen: number[][];
  /** recent decode time of one drafted token (ms) */
  tokenMs = 0;

  private constructor(
    readonly model: Model,
    private readonly ctx: Context,
    private readonly batch: Batch,
    private readonly sampler: Sampler,
  ) {
    this.seen = Array.from({ length: ctx.nSeqMax }, () => []);
  }

  /** Loads the draft model; throws DraftVocabMismatch when its vocabulary is not the target's. */
  static load(path: string, opts: DraftModelOptions): ModelDrafter {
    const model = Model.load(path, { onLog: opts.onLog });
    const owned: { dispose(): void }[] = [model];
    try {
      const why = vocabMismatch(opts.target, model);
      if (why) {
        throw new DraftVocabMismatch(`the draft model ${path} cannot draft for ${opts.target.path}: ${why}`);
      }
      const ctx = new Context(model, {
        nCtx: opts.nCtxSeq * opts.nSeqMax,
        nBatch: CATCH_UP,
        nUbatch: CATCH_UP,
        nSeqMax: opts.nSeqMax,
        nThreads: opts.nThreads,
        onLog: opts.onLog,
      });
      owned.push(ctx);
      const batch = new Batch(CATCH_UP);
      owned.push(batch);
      const sampler = Sampler.create(model, { ...DEFAULT_SAMPLING, temperature: 0 });
      return new ModelDrafter(model, ctx, batch, sampler);
    } catch (e) {
      for (const o of owned.reverse()) o.dispose();
      throw e;
    }
  }

  draft(seq: number, tokens: readonly number[], max: number): number[] {
    const seen = this.seen[seq];
    if (!seen || max <= 0 || tokens.length === 0) return [];
    // keep what the sequence still holds; the last token is decoded again for its logits
    let common = Math.min(commonPrefix(seen, tokens), tokens.length - 1);
    if (common < seen.length && !this.ctx.seqRemove(seq, common, -1)) {
      this.ctx.seqRemove(seq, -1, -1);
      common = 0;
    }
    seen.length = common;
    const end = Math.min(tokens.length, common + CATCH_UP);
    const batch = this.batch;
    batch.clear();
    for (let i = common; i < end; i++) {
      const t = tokens[i] as number;
      // an image's pseudo-tokens are no vocabulary's: nothing to draft from
      if (t < 0) return [];
      batch.add(t, i, seq, i === tokens.length - 1);
    }
    const t0 = performance.now();
    if (this.ctx.decode(batch) !== 0) return this.reset(seq);
    for (let i = common; i < end; i++) seen.push(tokens[i] as number);
    // a long prompt catches up over several steps (and is not what a draft costs)
    if (end < tokens.length || end - common > 16) return [];
    const out: number[] = [];
    let idx = batch.length - 1;
    for (;;) {
      const t = this.sampler.sample(this.ctx, idx);
      if (t < 0) break;
      out.push(t);
      if (out.length === max || this.model.isEog(t)) break;
      batch.clear();
      idx = batch.add(t, tokens.length + out.length - 1, seq, true);
      if (this.ctx.decode(batch) !== 0) return this.reset(seq);
      seen.push(t);
    }
    const ms = (performance.now() - t0) / out.length;
    this.tokenMs = this.tokenMs === 0 ? ms : 0.8 * this.tokenMs + 0.2 * ms;
    return out;
  }

  /** a failed decode: the sequence starts over (its cells may be half written) */
  private reset(seq: number): number[] {
    this.ctx.seqRemove(seq, -1, -1);
    (this.seen[seq] as number[]).length = 0;
    return [];
  }

  /** idempotent: each native object's dispose() is */
  dispose(): void {
    this.sampler.dispose();
    this.batch.dispose();
    this.ctx.dispose();
    this.model.dispose();
  }
}
