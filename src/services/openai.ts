// The OpenAI endpoints' work, as plain functions of an engine and a validated
// body: the routes call them for non-streaming requests, and batches call them
// for every line (at low priority), so a batch line gets exactly the response
// the endpoint would give. Streaming stays in the routes.
import type { SamplingDefaults } from "../config";
import type { Engine } from "../engine/engine";
import type { GenerateEvent, GenerateRequest, Priority } from "../engine/types";
import type { Metrics } from "../metrics";
import {
  type ChatPlan,
  type CompletionPlan,
  chatPlan,
  completionPlan,
  embeddingInputs,
  embeddingToBase64,
} from "../openai/convert";
import { type ChatLogprob, CompletionLogprobs } from "../openai/logprobs";
import {
  type ChatChoice,
  type CompletionChoice,
  chatChoiceLogprobs,
  chatFinish,
  chatMessage,
  chatObject,
  completionObject,
  finishReason,
  meta,
  usage,
} from "../openai/responses";
import type { ChatCompletionRequest, CompletionRequest, EmbeddingRequest } from "../openai/schemas";
import { begin, drain } from "./generation";

export interface Exec {
  defaults: SamplingDefaults;
  /** aborted when the client goes away (or the batch is cancelled) */
  signal: AbortSignal;
  metrics?: Metrics;
  /** batch work yields to interactive requests */
  priority?: Priority;
}

function withPriority(reqs: GenerateRequest[], priority: Priority | undefined): GenerateRequest[] {
  return priority ? reqs.map((r) => ({ ...r, priority })) : reqs;
}

/** The prompt text each choice starts with when echo is on. */
export async function echoTexts(engine: Engine, requests: GenerateRequest[]): Promise<string[]> {
  return Promise.all(
    requests.map(async (r) => {
      const p = r.prompt;
      if (p.type === "text") return p.text;
      if (p.type === "tokens") return engine.detokenize(p.tokens);
      return "";
    }),
  );
}

/** Per generated choice (prompt p, choice c): its logprobs so far. */
export class ChoiceLogprobs {
  private readonly map = new Map<number, CompletionLogprobs>();
  constructor(private readonly plan: CompletionPlan) {}
  of(p: number, c: number): CompletionLogprobs {
    const k = p * this.plan.bestOf + c;
    let v = this.map.get(k);
    if (!v) {
      v = new CompletionLogprobs();
      this.map.set(k, v);
    }
    return v;
  }
}

type End = Extract<GenerateEvent, { type: "end" }>;

export const madeCalls = (e: End) => (e.message?.toolCalls.length ?? 0) > 0;

/** The whole answer at once: one choice per end event, with the logprobs its text events carried. */
function chatChoices(plan: ChatPlan, events: GenerateEvent[]): { choices: ChatChoice[]; completion: number } {
  const lps = new Map<number, ChatLogprob[]>();
  const out: ChatChoice[] = [];
  let completion = 0;
  for (const e of events) {
    if (e.type === "text" && plan.logprobs) {
      const list = lps.get(e.choice) ?? [];
      list.push(...(chatChoiceLogprobs(e.logprobs) ?? []));
      lps.set(e.choice, list);
    } else if (e.type === "end") {
      completion += e.completionTokens;
      out.push({
        index: e.choice,
        message: chatMessage(e, plan.toolStyle, plan.reasoningField),
        logprobs: plan.logprobs ? { content: lps.get(e.choice) ?? [], refusal: null } : null,
        finish_reason: chatFinish(e.reason, madeCalls(e), plan.toolStyle),
      });
    }
  }
  out.sort((a, b) => a.index - b.index);
  return { choices: out, completion };
}

/** The whole answer at once; with best_of, the n choices with the highest mean logprob per prompt. */
function completionChoices(plan: CompletionPlan, events: GenerateEvent[][], echo: string[] | null) {
  const out: CompletionChoice[] = [];
  let completion = 0;
  events.forEach((evs, p) => {
    const lps = new ChoiceLogprobs(plan);
    const prompt = evs.find((e) => e.type === "prompt");
    const ends: { choice: CompletionChoice; score: number }[] = [];
    for (const e of evs) {
      if (e.type === "text" && plan.logprobs !== null) {
        const l = lps.of(p, e.choice);
        // the echoed prompt's tokens come first in the logprobs
        if (l.toJSON().tokens.length === 0 && prompt?.type === "prompt") l.add(prompt.logprobs);
        l.add(e.logprobs ?? []);
      } else if (e.type === "end") {
        completion += e.completionTokens;
        const l = plan.logprobs !== null ? lps.of(p, e.choice) : null;
        if (l && l.toJSON().tokens.length === 0 && prompt?.type === "prompt") l.add(prompt.logprobs);
        ends.push({
          choice: {
            text: (echo ? echo[p] : "") + e.text,
            index: e.choice,
            logprobs: l ? l.toJSON() : null,
            finish_reason: finishReason(e.reason),
          },
          score: e.meanLogprob ?? 0,
        });
      }
    }
    ends.sort((a, b) => (plan.bestOf > plan.n ? b.score - a.score : a.choice.index - b.choice.index));
    ends.slice(0, plan.n).forEach((x, c) => {
      out.push({ ...x.choice, index: p * plan.n + c });
    });
  });
  return { choices: out, completion };
}

/** POST /v1/chat/completions without streaming. */
export async function chatCompletion(engine: Engine, body: ChatCompletionRequest, x: Exec) {
  const plan = chatPlan(body, x.defaults, engine.info);
  const m = meta("chatcmpl", engine.info);
  const g = await begin(engine, withPriority([plan.request], x.priority), x.signal, x.metrics);
  const [events = []] = await drain(g, 1);
  const r = chatChoices(plan, events);
  const start = g.starts[0];
  return chatObject(m, r.choices, usage(start?.promptTokens ?? 0, r.completion, start?.cachedTokens));
}

/** POST /v1/completions without streaming. */
export function textCompletion(engine: Engine, body: CompletionRequest, x: Exec) {
  return runCompletionPlan(engine, completionPlan(body, x.defaults, engine.info), x);
}

/** A completions request already planned (callers may adjust the plan: a grammar, a prompt of tokens). */
export async function runCompletionPlan(engine: Engine, plan: CompletionPlan, x: Exec) {
  const m = meta("cmpl", engine.info);
  const g = await begin(engine, withPriority(plan.requests, x.priority), x.signal, x.metrics);
  const echo = plan.echo ? await echoTexts(engine, plan.requests) : null;
  const events = await drain(g, plan.requests.length);
  const r = completionChoices(plan, events, echo);
  const prompt = g.starts.reduce((a, s) => a + s.promptTokens, 0);
  return completionObject(m, r.choices, usage(prompt, r.completion));
}

/** POST /v1/embeddings. */
export async function embeddings(engine: Engine, body: EmbeddingRequest, x: Pick<Exec, "signal">) {
  const inputs = embeddingInputs(body, engine.info);
  const r = await engine.embed(inputs, x.signal);
  const base64 = body.encoding_format === "base64";
  return {
    object: "list" as const,
    data: r.vectors.map((v, index) => ({
      object: "embedding" as const,
      index,
      embedding: base64 ? embeddingToBase64(v) : Array.from(v),
    })),
    model: engine.info.id,
    usage: { prompt_tokens: r.promptTokens, total_tokens: r.promptTokens },
  };
}
