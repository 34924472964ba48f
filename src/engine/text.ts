// Turns a stream of token bytes into text that is safe to send: a partial UTF-8
// sequence is held until it completes, and text that could be the beginning of a
// stop string is held until it either becomes the stop string (generation ends,
// the stop string is never sent) or cannot be one any more.

/** Length of the longest suffix of `text` that is a proper prefix of some stop string. */
export function partialStopLength(text: string, stops: readonly string[]): number {
  let best = 0;
  for (const s of stops) {
    const max = Math.min(s.length - 1, text.length);
    for (let k = max; k > best; k--) {
      if (text.endsWith(s.slice(0, k))) {
        best = k;
        break;
      }
    }
  }
  return best;
}

/** Index of the earliest complete stop string in `text`, or -1. */
export function findStop(text: string, stops: readonly string[]): number {
  let at = -1;
  for (const s of stops) {
    const i = text.indexOf(s);
    if (i >= 0 && (at < 0 || i < at)) at = i;
  }
  return at;
}

export class TextAssembler {
  private readonly decoder = new TextDecoder("utf-8", { fatal: false });
  private pending = "";
  private stopped = false;
  /** everything emitted so far */
  text = "";
  /** the stop string that ended the text (null: none did) */
  matched: string | null = null;

  constructor(private readonly stops: readonly string[]) {}

  get isStopped(): boolean {
    return this.stopped;
  }

  /**
   * Adds one token's bytes; returns the text that may be sent now (possibly "")
   * and whether a stop string was reached (then nothing more is accepted).
   */
  push(bytes: Uint8Array): { text: string; stop: boolean } {
    if (this.stopped) return { text: "", stop: true };
    // stream: true keeps an incomplete trailing UTF-8 sequence inside the decoder
    this.pending += this.decoder.decode(bytes, { stream: true });
    if (this.stops.length === 0) return this.emit(this.pending.length, false);
    const at = findStop(this.pending, this.stops);
    if (at >= 0) {
      this.stopped = true;
      this.matched = this.stops.find((s) => this.pending.startsWith(s, at)) ?? null;
      return this.emit(at, true);
    }
    return this.emit(this.pending.length - partialStopLength(this.pending, this.stops), false);
  }

  /** At the end of generation: whatever was held back is real output (a dangling byte becomes U+FFFD). */
  flush(): string {
    if (this.stopped) return "";
    this.pending += this.decoder.decode();
    return this.emit(this.pending.length, false).text;
  }

  private emit(n: number, stop: boolean): { text: string; stop: boolean } {
    const out = this.pending.slice(0, n);
    this.pending = stop ? "" : this.pending.slice(n);
    this.text += out;
    return { text: out, stop };
  }
}
