// Token log-probabilities in the two shapes OpenAI uses: chat's
// `logprobs.content[]` entries and completions' parallel arrays.
import type { TokenLogprob } from "../engine/types";

const lossy = new TextDecoder("utf-8", { fatal: false });

/** A token's text; a fragment of a character shows as U+FFFD (its exact bytes are in `bytes`). */
export function tokenText(bytes: number[]): string {
  return lossy.decode(Uint8Array.from(bytes));
}

export interface ChatLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

export function chatLogprobs(entries: TokenLogprob[]): ChatLogprob[] {
  return entries.map((e) => ({
    token: tokenText(e.bytes),
    logprob: e.logprob ?? 0,
    bytes: e.bytes,
    top_logprobs: e.top.map((t) => ({ token: tokenText(t.bytes), logprob: t.logprob, bytes: t.bytes })),
  }));
}

export interface CompletionLogprobsJSON {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

/**
 * One completion choice's logprobs. text_offset counts characters of the
 * choice's text (the echoed prompt included), so offsets continue across
 * streamed chunks; `take()` returns what was added since the last take.
 */
export class CompletionLogprobs {
  private readonly decoder = new TextDecoder("utf-8", { fatal: false });
  private offset = 0;
  private readonly all: CompletionLogprobsJSON = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  private taken = 0;

  constructor(startOffset = 0) {
    this.offset = startOffset;
  }

  add(entries: TokenLogprob[]): void {
    for (const e of entries) {
      const text = tokenText(e.bytes);
      this.all.tokens.push(text);
      this.all.token_logprobs.push(e.logprob);
      let top: Record<string, number> | null = null;
      if (e.logprob !== null) {
        // a Map, not a plain object: tokens such as "constructor" or "__proto__" are keys like any other
        const m = new Map<string, number>();
        for (const t of e.top) {
          const k = tokenText(t.bytes);
          if (!m.has(k)) m.set(k, t.logprob);
        }
        // the sampled token is always listed, even when it is not among the most likely
        if (!m.has(text)) m.set(text, e.logprob);
        top = Object.fromEntries(m);
      }
      this.all.top_logprobs.push(top);
      this.all.text_offset.push(this.offset);
      this.offset += this.decoder.decode(Uint8Array.from(e.bytes), { stream: true }).length;
    }
  }

  toJSON(): CompletionLogprobsJSON {
    return this.all;
  }

  take(): CompletionLogprobsJSON {
    const from = this.taken;
    this.taken = this.all.tokens.length;
    return {
      tokens: this.all.tokens.slice(from),
      token_logprobs: this.all.token_logprobs.slice(from),
      top_logprobs: this.all.top_logprobs.slice(from),
      text_offset: this.all.text_offset.slice(from),
    };
  }
}
