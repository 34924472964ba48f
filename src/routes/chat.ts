// POST /v1/chat/completions: the model's own chat template, structured output,
// tools (and the legacy functions), logprobs; streamed or not.
import { Elysia } from "elysia";
import { DomainError } from "../errors";
import { DONE, errorFrame, frame } from "../http/sse";
import { precheck } from "../http/validate";
import { type ChatPlan, chatPlan } from "../openai/convert";
import {
  chatChoiceLogprobs,
  chatChunk,
  chatDelta,
  chatFinish,
  chatUsageChunk,
  meta,
  type ResponseMeta,
  usage,
} from "../openai/responses";
import { ChatCompletionRequest, openaiModels } from "../openai/schemas";
import type { Services } from "../services";
import { begin, type Generation, streamResponse, withModel } from "../services/generation";
import { chatCompletion, madeCalls } from "../services/openai";

async function* stream(m: ResponseMeta, plan: ChatPlan, g: Generation, release: () => void) {
  try {
    // clients read the role from the first delta of each choice
    for (let c = 0; c < plan.n; c++) yield frame(chatChunk(m, c, { role: "assistant", content: "" }, null));
    let completion = 0;
    for await (const [, e] of g.events) {
      if (e.type === "text") {
        const delta = chatDelta(e, plan.toolStyle, plan.reasoningField);
        const lp = plan.logprobs ? chatChoiceLogprobs(e.logprobs) : null;
        if (delta || lp) yield frame(chatChunk(m, e.choice, delta ?? {}, null, lp));
      } else if (e.type === "end") {
        completion += e.completionTokens;
        yield frame(chatChunk(m, e.choice, {}, chatFinish(e.reason, madeCalls(e), plan.toolStyle)));
      } else if (e.type === "error") {
        yield errorFrame(DomainError.from(e));
        return;
      }
    }
    if (plan.includeUsage) {
      const start = g.starts[0];
      yield frame(chatUsageChunk(m, usage(start?.promptTokens ?? 0, completion, start?.cachedTokens)));
    }
    yield DONE;
  } catch (e) {
    yield errorFrame(e);
  } finally {
    g.abort();
    release();
  }
}

export const chatRoutes = (svc: Services) =>
  new Elysia({ name: "routes/chat" })
    .use(svc)
    .use(openaiModels)
    .post(
      "/chat/completions",
      ({ body, registry, config, metrics, request, server }) =>
        withModel({ registry, request, server, config }, body.model, async (engine, handOff) => {
          if (!body.stream)
            return chatCompletion(engine, body, { defaults: config.sampling, signal: request.signal, metrics });
          const plan = chatPlan(body, config.sampling, engine.info);
          const m = meta("chatcmpl", engine.info);
          const g = await begin(engine, [plan.request], request.signal, metrics);
          return streamResponse({ registry, request, server, config }, g, stream(m, plan, g, handOff()));
        }),
      {
        body: "ChatCompletionRequest",
        transform: precheck(ChatCompletionRequest),
        detail: {
          summary: "Create a chat completion (tools, structured output, logprobs; SSE when stream is true)",
          tags: ["Chat"],
        },
      },
    );
