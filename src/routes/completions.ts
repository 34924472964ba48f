// POST /v1/completions: prompt(s) as text or tokens, n choices each (best_of
// picks by mean logprob), echo, logprobs; streamed or not.
import { Elysia } from "elysia";
import type { TokenLogprob } from "../engine/types";
import { DomainError } from "../errors";
import { DONE, errorFrame, frame } from "../http/sse";
import { precheck } from "../http/validate";
import { type CompletionPlan, completionPlan } from "../openai/convert";
import {
  completionChunk,
  completionUsageChunk,
  finishReason,
  meta,
  type ResponseMeta,
  usage,
} from "../openai/responses";
import { CompletionRequest, openaiModels } from "../openai/schemas";
import type { Services } from "../services";
import { begin, type Generation, streamResponse, withModel } from "../services/generation";
import { ChoiceLogprobs, echoTexts, textCompletion } from "../services/openai";

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

export const completionRoutes = (svc: Services) =>
  new Elysia({ name: "routes/completions" })
    .use(svc)
    .use(openaiModels)
    .post(
      "/completions",
      ({ body, registry, config, metrics, request, server }) =>
        withModel({ registry, request, server, config }, body.model, async (engine, handOff) => {
          if (!body.stream)
            return textCompletion(engine, body, { defaults: config.sampling, signal: request.signal, metrics });
          const plan = completionPlan(body, config.sampling, engine.info);
          const m = meta("cmpl", engine.info);
          const g = await begin(engine, plan.requests, request.signal, metrics);
          const echo = plan.echo ? await echoTexts(engine, plan.requests) : null;
          return streamResponse({ registry, request, server, config }, g, stream(m, plan, g, echo, handOff()));
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
