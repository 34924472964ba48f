// Sampler: owns one llama.cpp common sampler (the chain llama-server uses).
// Typed parameters are serialised here, at the FFI edge, and nowhere else.
import { type Pointer, ptr } from "bun:ffi";
import { DomainError } from "../errors";
import type { Context } from "./context";
import { ErrorOut, lib, NativeObject } from "./library";
import type { Model } from "./model";

export interface GrammarTrigger {
  /** 0 token, 1 word, 2 pattern, 3 full pattern (llama.cpp's common_grammar_trigger_type) */
  type: number;
  value: string;
  token: number;
}

export interface SamplingParams {
  seed: number;
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  typicalP?: number;
  repeatPenalty: number;
  repeatLastN: number;
  presencePenalty: number;
  frequencyPenalty: number;
  /** [token, bias] pairs; -Infinity bans a token */
  logitBias: [number, number][];
  grammar?: {
    text: string;
    kind: "user" | "output_format" | "tool_calls";
    lazy: boolean;
    triggers: GrammarTrigger[];
  };
  /** text the template already put after the last turn (advances output-format grammars) */
  generationPrompt?: string;
  /** a thinking budget: after `tokens` tokens in the think block its end tag is forced */
  reasoningBudget?: { tokens: number; startTag: string; endTags: string[]; message?: string };
  /**
   * false: run llama.cpp's chain over the whole vocabulary even where the
   * one-pass top-k preselection gives the same token (tests compare the two)
   */
  fastTopK?: boolean;
}

export const DEFAULT_SAMPLING: SamplingParams = {
  seed: 0xffffffff,
  temperature: 0.8,
  topK: 40,
  topP: 0.95,
  minP: 0.05,
  repeatPenalty: 1,
  repeatLastN: 64,
  presencePenalty: 0,
  frequencyPenalty: 0,
  logitBias: [],
};

function toConfig(p: SamplingParams): string {
  return JSON.stringify({
    seed: p.seed >>> 0,
    temp: p.temperature,
    top_k: p.topK,
    top_p: p.topP,
    min_p: p.minP,
    typ_p: p.typicalP ?? 1,
    penalty_last_n: p.repeatLastN,
    penalty_repeat: p.repeatPenalty,
    penalty_freq: p.frequencyPenalty,
    penalty_present: p.presencePenalty,
    // JSON has no -Infinity: a large negative bias bans a token just as well
    logit_bias: p.logitBias.map(([t, b]) => [t, Number.isFinite(b) ? b : -1e30]),
    grammar: p.grammar?.text ?? "",
    grammar_type: p.grammar?.kind ?? "user",
    grammar_lazy: p.grammar?.lazy ?? false,
    grammar_triggers: p.grammar?.triggers ?? [],
    generation_prompt: p.generationPrompt ?? "",
    reasoning_budget_tokens: p.reasoningBudget?.tokens ?? -1,
    reasoning_start_tag: p.reasoningBudget?.startTag ?? "",
    reasoning_end_tags: p.reasoningBudget?.endTags ?? [],
    reasoning_budget_message: p.reasoningBudget?.message ?? "",
    fast_top_k: p.fastTopK ?? true,
  });
}

export class Sampler extends NativeObject {
  private constructor(handle: Pointer) {
    super(handle);
  }

  static create(model: Model, params: SamplingParams): Sampler {
    const err = new ErrorOut();
    const h = lib().llmatic_sampler_new(model.handle, Buffer.from(`${toConfig(params)}\0`), err.ptr) as Pointer | null;
    if (!h) throw new DomainError("invalid_request", `invalid sampling parameters: ${err.take("unknown error")}`);
    return new Sampler(h);
  }

  /** Takes over a sampler another thread of this process created and released. */
  static adopt(handle: number): Sampler {
    return new Sampler(handle as unknown as Pointer);
  }

  protected free(h: Pointer): void {
    lib().llmatic_sampler_free(h);
  }

  /** Samples output `idx` of the context's last decode and accepts the token (-1 on failure). */
  sample(ctx: Context, idx: number): number {
    return lib().llmatic_sampler_sample(this.handle, ctx.handle, idx);
  }

  /** Feeds prompt tokens into the repetition-penalty history. */
  acceptPrompt(tokens: Int32Array): void {
    if (tokens.length) lib().llmatic_sampler_accept_prompt(this.handle, ptr(tokens), tokens.length);
  }
}
