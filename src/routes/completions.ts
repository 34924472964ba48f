// POST /v1/completions: prompt(s) as text or tokens, n choices each (best_of
// picks by mean logprob), echo, logprobs; streamed or not.
import { Elysia } from "elysia";
import type { Engine } from "../engine/engine";
import type { GenerateEvent, GenerateRequest, TokenLogprob } from "../engine/types";
import { DomainError } from "../errors";
import { DONE, errorFrame, frame } from "../http/sse";
import { precheck } from "../http/validate";
import { type CompletionPlan, completionPlan } from "../openai/convert";
import { CompletionLogprobs } from "../openai/logprobs";
import {
  type CompletionChoice,
  completionChunk,
  completionObject,
  completionUsageChunk,
  finishReason,
  meta,
  type ResponseMeta,
  usage,
} from "../openai/responses";
import { CompletionRequest, openaiModels } from "../openai/schemas";
import type { Services } from "../services";
import { begin, drain, type Generation, streamResponse, withModel } from "../services/generation";

/** The prompt text each choice starts with when echo is on. */
async function echoTexts(engine: Engine, requests: GenerateRequest[]): Promise<string[]> {
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
class ChoiceLogprobs {
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

async function* stream(
  m: ResponseMeta,
  plan: CompletionPlan,
  g: Generation,
  echo: string[] | null,
  release: () => void,
) {
  const lps = new ChoiceLogprobs(plan);
  const index = (p: number, c: number) => p * plan.n + c;
  try {
    let completion = 0;
    // the prompt goes first; with logprobs each prompt's echo waits for its logprobs (its "prompt" event)
    const echoChunks = function* (p: number, entries: TokenLogprob[] | null) {
      for (let c = 0; c < plan.n; c++) {
        let logprobs: unknown = null;
        if (entries) {
          const l = lps.of(p, c);
          l.add(entries);
          logprobs = l.take();
        }
        yield frame(
          completionChunk(m, {
            text: (echo as string[])[p] as string,
            index: index(p, c),
            logprobs,
            finish_reason: null,
          }),
        );
      }
    };
    if (echo && plan.logprobs === null) for (let p = 0; p < plan.requests.length; p++) yield* echoChunks(p, null);
    for await (const [p, e] of g.events) {
      if (e.type === "prompt") {
        if (echo) yield* echoChunks(p, e.logprobs);
      } else if (e.type === "text") {
        let logprobs: unknown = null;
        if (plan.logprobs !== null) {
          const l = lps.of(p, e.choice);
          l.add(e.logprobs ?? []);
          logprobs = l.take();
        }
        yield frame(completionChunk(m, { text: e.text, index: index(p, e.choice), logprobs, finish_reason: null }));
      } else if (e.type === "end") {
        completion += e.completionTokens;
        const logprobs = plan.logprobs !== null ? lps.of(p, e.choice).take() : null;
        yield frame(
          completionChunk(m, { text: "", index: index(p, e.choice), logprobs, finish_reason: finishReason(e.reason) }),
        );
      } else if (e.type === "error") {
        yield errorFrame(DomainError.from(e));
        return;
      }
    }
    if (plan.includeUsage) {
      const prompt = g.starts.reduce((a, s) => a + s.promptTokens, 0);
      yield frame(completionUsageChunk(m, usage(prompt, completion)));
    }
    yield DONE;
  } catch (e) {
    yield errorFrame(e);
  } finally {
    g.abort();
    release();
  }
}

/** The whole answer at once; with best_of, the n choices with the highest mean logprob per prompt. */
function choices(plan: CompletionPlan, events: GenerateEvent[][], echo: string[] | null) {
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

export const completionRoutes = (svc: Services) =>
  new Elysia({ name: "routes/completions" })
    .use(svc)
    .use(openaiModels)
    .post(
      "/completions",
      ({ body, registry, config, metrics, request, server }) =>
        withModel({ registry, request, server, config }, body.model, async (engine, handOff) => {
          const plan = completionPlan(body, config.sampling, engine.info);
          const m = meta("cmpl", engine.info);
          const g = await begin(engine, plan.requests, request.signal, metrics);
          const echo = plan.echo ? await echoTexts(engine, plan.requests) : null;
          if (plan.stream)
            return streamResponse({ registry, request, server, config }, g, stream(m, plan, g, echo, handOff()));
          const events = await drain(g, plan.requests.length);
          const r = choices(plan, events, echo);
          const prompt = g.starts.reduce((a, s) => a + s.promptTokens, 0);
          return completionObject(m, r.choices, usage(prompt, r.completion));
        }),
      {
        body: "CompletionRequest",
        transform: precheck(CompletionRequest),
        detail: {
          summary: "Create a completion (echo, logprobs, best_of; SSE when stream is true)",
          tags: ["Completions"],
        },
      },
    );
