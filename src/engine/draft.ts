// Speculative decoding: where drafts come from, and how long they are. By
// default they are prompt-lookup (n-gram) drafts: the last few tokens of a
// sequence are looked up earlier in it (its prompt and what it generated); the
// tokens that followed them there are the draft. With --model-draft a small
// model of the same vocabulary writes them (draft-model.ts). The scheduler
// decodes the pending token and the draft in one batch and keeps the draft's
// tokens as long as sampling the model picks them, so the output is the one
// plain decoding gives (each token is still sampled from the model's
// distribution after the tokens before it). Pure.

/** Where a sequence's drafts come from. */
export interface Drafter {
  /** up to `max` tokens likely to follow `tokens` (sequence `seq`'s tokens, the pending one last) */
  draft(seq: number, tokens: readonly number[], max: number): number[];
  /** what drafting one token costs, in ms of the decode thread (0 for a lookup) */
  readonly tokenMs: number;
  dispose(): void;
}

/** Drafts by prompt lookup (ngramDraft). */
export const ngramDrafter: Drafter = {
  draft: (_seq, tokens, max) => ngramDraft(tokens, max),
  tokenMs: 0,
  dispose() {},
};

/** Longest and shortest suffix looked up. */
const MAX_NGRAM = 4;
const MIN_NGRAM = 2;
/** How far back a lookup goes (tokens): it runs once per step per sequence. */
const WINDOW = 8192;

/**
 * Up to `max` tokens that followed the most recent earlier occurrence of the
 * longest suffix (MIN_NGRAM..MAX_NGRAM tokens) of `history`; empty when the
 * suffix never occurred before.
 */
export function ngramDraft(history: ArrayLike<number>, max: number): number[] {
  const n = history.length;
  if (max <= 0 || n < MIN_NGRAM + 1) return [];
  const from = Math.max(0, n - WINDOW);
  for (let len = Math.min(MAX_NGRAM, n - 1); len >= MIN_NGRAM; len--) {
    // the most recent match ending before the suffix itself
    for (let end = n - 1; end - len >= from; end--) {
      let k = 0;
      while (k < len && history[end - 1 - k] === history[n - 1 - k]) k++;
      if (k < len) continue;
      // what followed it; past the end of the history the text repeats with the same period
      // ((history + draft)[i] is draft[i - n] there)
      const out: number[] = [];
      for (let i = end; out.length < max; i++) out.push(i < n ? (history[i] as number) : (out[i - n] as number));
      return out;
    }
  }
  return [];
}

/**
 * How many tokens a sequence drafts next: grows while drafts are accepted,
 * shrinks when they are not, and pauses after drafts that were all rejected,
 * so a sequence whose text does not repeat soon stops paying for them. Given
 * what a step of w tokens costs against a one-token step (measured by the
 * scheduler), it also pauses when the tokens a draft is expected to give do
 * not pay for the wider step: on a CPU where a few more tokens per step cost
 * nearly as much as that many steps, rarely kept drafts are a loss.
 */
export class DraftPolicy {
  private k: number;
  private pause = 0;
  private probe = false;
  private misses = 0;
  /** decayed counts of draft tokens tried and kept (a token after a rejected one is not tried) */
  private tried = 0;
  private kept = 0;
  proposed = 0;
  accepted = 0;

  constructor(private readonly maxDraft: number) {
    this.k = Math.min(2, maxDraft);
  }

  /** the chance that the next draft token is kept: recent drafts' rate, from a prior of 1/2 */
  get acceptance(): number {
    return (this.kept + 1) / (this.tried + 2);
  }

  /**
   * The draft length for this step (0: do not draft). `costRatio(w)`: what a
   * step of w tokens costs over a one-token step, when known.
   */
  next(costRatio?: (width: number) => number | undefined): number {
    if (this.pause > 0) {
      this.pause--;
      this.probe = this.pause === 0;
      return 0;
    }
    // the draft after a pause is a probe: it measures the acceptance again
    if (this.probe) {
      this.probe = false;
      return this.k;
    }
    // the longest draft up to k whose expected tokens pay for its step (or whose step is not timed yet)
    for (let k = this.k; k >= 1; k--) {
      const ratio = costRatio?.(1 + k);
      if (ratio === undefined || expectedTokens(this.acceptance, k) >= ratio) return k;
    }
    // none does: pause as after a miss
    this.miss();
    return 0;
  }

  /** `accepted` of `proposed` draft tokens were kept. */
  record(proposed: number, accepted: number): void {
    if (proposed === 0) return;
    this.proposed += proposed;
    this.accepted += accepted;
    this.tried = 0.9 * this.tried + accepted + (accepted < proposed ? 1 : 0);
    this.kept = 0.9 * this.kept + accepted;
    if (accepted === proposed) {
      this.k = Math.min(this.maxDraft, this.k * 2);
      this.misses = 0;
    } else if (accepted === 0) {
      this.k = Math.max(1, this.k >> 1);
      this.miss();
    } else {
      this.k = Math.max(1, accepted + 1);
      this.misses = 0;
    }
  }

  /** a few misses in a row: stop drafting for longer and longer */
  private miss(): void {
    this.misses++;
    if (this.misses >= 2) this.pause = Math.min(64, 4 << (this.misses - 2));
  }
}

/**
 * Tokens one step gives with a draft of k tokens each kept with chance a
 * (given the ones before it): the pending token plus a + a^2 + ... + a^k.
 */
export function expectedTokens(a: number, k: number): number {
  let sum = 1;
  let p = 1;
  for (let i = 0; i < k; i++) {
    p *= a;
    sum += p;
  }
  return sum;
}
