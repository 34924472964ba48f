// Training data: prompt/completion examples as token windows. Each example is
// its prompt, then its completion, then end-of-sequence, tokenized as text;
// examples are packed into windows without splitting one, in a seeded shuffled
// order. Every position's label is the next token; its loss weight is
// prompt_loss_weight where that next token belongs to the prompt, 1 where it
// belongs to the completion (or is the end), 0 for padding and across examples.

export interface Example {
  prompt: string;
  completion: string;
}

export interface TokenizedExample {
  /** prompt ++ completion ++ [eos] */
  ids: number[];
  promptLen: number;
}

export interface Span {
  /** the example's first position in the window */
  start: number;
  promptLen: number;
  /** its length (ids.length) */
  len: number;
}

export interface Window {
  tokens: Int32Array;
  labels: Int32Array;
  weights: Float32Array;
  spans: Span[];
}

export function tokenizeExample(
  ex: Example,
  tokenize: (text: string, addSpecial: boolean) => ArrayLike<number>,
  eos: number,
): TokenizedExample {
  const prompt = [...Array.from(tokenize(ex.prompt, true))];
  const completion = [...Array.from(tokenize(ex.completion, false))];
  return { ids: [...prompt, ...completion, eos], promptLen: prompt.length };
}

/** mulberry32 */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  const r = seeded(seed);
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** The smallest window (a multiple of 256, llama.cpp's padding) that holds the longest example. */
export function windowFor(examples: readonly TokenizedExample[]): number {
  const longest = Math.max(1, ...examples.map((e) => e.ids.length));
  return Math.ceil(longest / 256) * 256;
}

/** Greedily packs examples (in the given order) into windows of `W`, at most `perWindow` each. */
export function pack(
  examples: readonly TokenizedExample[],
  W: number,
  perWindow: number,
  eos: number,
  promptWeight: number,
): Window[] {
  const windows: Window[] = [];
  let cur: TokenizedExample[] = [];
  let used = 0;
  const flush = () => {
    if (cur.length === 0) return;
    const tokens = new Int32Array(W).fill(eos);
    const labels = new Int32Array(W).fill(eos);
    const weights = new Float32Array(W);
    const spans: Span[] = [];
    let pos = 0;
    for (const ex of cur) {
      spans.push({ start: pos, promptLen: ex.promptLen, len: ex.ids.length });
      for (let t = 0; t < ex.ids.length; t++) {
        tokens[pos + t] = ex.ids[t] as number;
        if (t + 1 < ex.ids.length) {
          labels[pos + t] = ex.ids[t + 1] as number;
          weights[pos + t] = t + 1 < ex.promptLen ? promptWeight : 1;
        }
      }
      pos += ex.ids.length;
    }
    windows.push({ tokens, labels, weights, spans });
    cur = [];
    used = 0;
  };
  for (const ex of examples) {
    if (ex.ids.length > W) throw new Error(`an example of ${ex.ids.length} tokens does not fit a window of ${W}`);
    if (used + ex.ids.length > W || cur.length >= perWindow) flush();
    cur.push(ex);
    used += ex.ids.length;
  }
  flush();
  return windows;
}

export interface WindowMetrics {
  /** sum(w * nll) / sum(w) over the positions that carry loss */
  loss: number;
  /** correct / all over completion positions (the completion's tokens and the end) */
  tokenCorrect: number;
  tokenTotal: number;
  /** examples whose every completion position is right */
  sequencesCorrect: number;
  sequences: number;
}

/** The metrics of a window from each position's NLL and top token. */
export function measure(w: Window, nll: Float32Array, pred: Int32Array): WindowMetrics {
  let wl = 0;
  let ws = 0;
  for (let p = 0; p < w.weights.length; p++) {
    const wt = w.weights[p] as number;
    if (wt > 0) {
      wl += wt * (nll[p] as number);
      ws += wt;
    }
  }
  let tokenCorrect = 0;
  let tokenTotal = 0;
  let sequencesCorrect = 0;
  for (const s of w.spans) {
    let all = true;
    // positions whose label is a completion token or the end: promptLen-1 .. len-2
    for (let t = Math.max(0, s.promptLen - 1); t < s.len - 1; t++) {
      const p = s.start + t;
      const ok = pred[p] === w.labels[p];
      tokenTotal++;
      if (ok) tokenCorrect++;
      else all = false;
    }
    if (all) sequencesCorrect++;
  }
  return { loss: ws > 0 ? wl / ws : 0, tokenCorrect, tokenTotal, sequencesCorrect, sequences: w.spans.length };
}
