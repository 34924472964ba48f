// POST /v1/completions: prompt(s) as text or tokens, n choices each, streamed or not.
import { Elysia } from "elysia";
import type { Engine } from "../engine/engine";
import type { GenerateRequest } from "../engine/types";
import { EngineError } from "../errors";
import { fromEngineError } from "../http/errors";
import { DONE, errorFrame, frame, keepOpen } from "../http/sse";
import {
  type CompletionChoice,
  type CompletionPlan,
  completionChunk,
  completionObject,
  completionPlan,
  completionUsageChunk,
  fingerprint,
  finishReason,
  newId,
  nowSeconds,
  type ResponseMeta,
  usage,
} from "../openai/convert";
import { openaiModels } from "../openai/schemas";
import type { Services } from "../services";
import { begin, drain, type Generation } from "../services/generation";

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

async function* stream(meta: ResponseMeta, plan: CompletionPlan, g: Generation, echo: string[] | null) {
  try {
    if (echo) {
      for (let p = 0; p < plan.requests.length; p++) {
        for (let c = 0; c < plan.n; c++) yield frame(completionChunk(meta, p * plan.n + c, echo[p] as string, null));
      }
    }
    let completion = 0;
    for await (const [p, e] of g.events) {
      if (e.type === "text") yield frame(completionChunk(meta, p * plan.n + e.choice, e.text, null));
      else if (e.type === "end") {
        completion += e.completionTokens;
        yield frame(completionChunk(meta, p * plan.n + e.choice, "", finishReason(e.reason)));
      } else if (e.type === "error") {
        yield errorFrame(fromEngineError(EngineError.from(e)));
        return;
      }
    }
    if (plan.includeUsage) {
      const prompt = g.starts.reduce((a, s) => a + s.promptTokens, 0);
      yield frame(completionUsageChunk(meta, usage(prompt, completion)));
    }
    yield DONE;
  } catch (e) {
    yield errorFrame(e);
  } finally {
    g.abort();
  }
}

export const completionRoutes = (svc: Services) =>
  new Elysia({ name: "routes/completions" })
    .use(svc)
    .use(openaiModels)
    .post(
      "/completions",
      async ({ body, registry, config, metrics, request, server }) => {
        const engine = registry.engine(body.model);
        const plan = completionPlan(body, config.sampling, engine.info);
        const meta: ResponseMeta = {
          id: newId("cmpl"),
          created: nowSeconds(),
          model: engine.info.id,
          fingerprint: fingerprint(engine.info),
        };
        // generation can be silent for longer than the idle timeout (long prompts, non-streamed answers)
        keepOpen(server, request);
        const g = await begin(engine, plan.requests, request.signal, metrics);
        const echo = plan.echo ? await echoTexts(engine, plan.requests) : null;
        if (plan.stream) {
          return stream(meta, plan, g, echo);
        }
        const events = await drain(g, plan.requests.length);
        const choices: CompletionChoice[] = [];
        let completion = 0;
        events.forEach((evs, p) => {
          for (const e of evs) {
            if (e.type !== "end") continue;
            completion += e.completionTokens;
            choices.push({
              text: (echo ? echo[p] : "") + e.text,
              index: p * plan.n + e.choice,
              logprobs: null,
              finish_reason: finishReason(e.reason),
            });
          }
        });
        choices.sort((a, b) => a.index - b.index);
        const prompt = g.starts.reduce((a, s) => a + s.promptTokens, 0);
        return completionObject(meta, choices, usage(prompt, completion));
      },
      {
        body: "CompletionRequest",
        detail: { summary: "Create a completion (stream with SSE when stream is true)", tags: ["Completions"] },
      },
    );
