// Speculative decoding without a second model: prompt-lookup (n-gram) drafts.
// The last few tokens of a sequence are looked up earlier in it (its prompt and
// what it generated); the tokens that followed them there are the draft. The
// scheduler decodes the pending token and the draft in one batch and keeps the
// draft's tokens as long as sampling the model picks them, so the output is the
// one plain decoding gives (each token is still sampled from the model's
// distribution after the tokens before it). Pure.

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
 * so a sequence whose text does not repeat soon stops paying for them.
 */
export class DraftPolicy {
  private k: number;
  private pause = 0;
  private misses = 0;
  proposed = 0;
  accepted = 0;

  constructor(private readonly maxDraft: number) {
    this.k = Math.min(2, maxDraft);
  }

  /** the draft length for this step (0: do not draft) */
  next(): number {
    if (this.pause > 0) {
      this.pause--;
      return 0;
    }
    return this.k;
  }

  /** `accepted` of `proposed` draft tokens were kept. */
  record(proposed: number, accepted: number): void {
    if (proposed === 0) return;
    this.proposed += proposed;
    this.accepted += accepted;
    if (accepted === proposed) {
      this.k = Math.min(this.maxDraft, this.k * 2);
      this.misses = 0;
    } else if (accepted === 0) {
      this.k = Math.max(1, this.k >> 1);
      // a few misses in a row: stop drafting for longer and longer
      this.misses++;
      if (this.misses >= 2) this.pause = Math.min(64, 4 << (this.misses - 2));
    } else {
      this.k = Math.max(1, accepted + 1);
      this.misses = 0;
    }
  }
}
