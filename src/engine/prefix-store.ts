// Prefixes evicted from the slots, kept in host memory (--cache-ram): when a
// slot is given to a request that keeps little of what it held, its KV is
// saved here first; a later request whose prompt starts the same gets it back
// instead of computing it again (llama-server's --cache-ram). Least recently
// used entries go first once the bytes are over the budget.

/** An image among a saved prefix's tokens (as the scheduler's slots keep them). */
export interface SavedImage {
  start: number;
  nTokens: number;
  nPos: number;
}

export interface SavedPrefix {
  tokens: number[];
  images: SavedImage[];
  /** the sequence's state as llama_state_seq_get_data wrote it */
  data: Uint8Array;
}

function commonPrefix(a: readonly number[], b: ArrayLike<number>): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

export class PrefixStore {
  /** least recently used first */
  private entries: SavedPrefix[] = [];
  private total = 0;
  /** prompt tokens given back from here, since start */
  restored = 0;

  constructor(readonly maxBytes: number) {}

  get bytes(): number {
    return this.total;
  }

  get size(): number {
    return this.entries.length;
  }

  /** The entry sharing the longest prefix with `prompt`, and that length. */
  best(prompt: ArrayLike<number>): { entry: SavedPrefix; n: number } | null {
    let best: { entry: SavedPrefix; n: number } | null = null;
    for (const e of this.entries) {
      const n = commonPrefix(e.tokens, prompt);
      if (n > (best?.n ?? 0)) best = { entry: e, n };
    }
    return best;
  }

  /** Marks an entry used (it goes last in the eviction order). */
  touch(e: SavedPrefix): void {
    const i = this.entries.indexOf(e);
    if (i >= 0) this.entries.push(...this.entries.splice(i, 1));
  }

  /** Whether `tokens` are already all in some entry. */
  holds(tokens: readonly number[]): boolean {
    return this.entries.some(
      (e) => e.tokens.length >= tokens.length && commonPrefix(e.tokens, tokens) === tokens.length,
    );
  }

  add(e: SavedPrefix): void {
    if (e.data.byteLength > this.maxBytes) return;
    // entries the new one extends are dropped: it holds all they hold
    for (const old of [...this.entries]) {
      if (old.tokens.length <= e.tokens.length && commonPrefix(old.tokens, e.tokens) === old.tokens.length)
        this.drop(old);
    }
    this.entries.push(e);
    this.total += e.data.byteLength;
    while (this.total > this.maxBytes && this.entries.length > 0) this.drop(this.entries[0] as SavedPrefix);
  }

  private drop(e: SavedPrefix): void {
    const i = this.entries.indexOf(e);
    if (i < 0) return;
    this.entries.splice(i, 1);
    this.total -= e.data.byteLength;
  }
}
