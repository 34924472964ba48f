// POST /v1/chat/completions: the model's own chat template, streamed or not.
import { Elysia } from "elysia";
import { EngineError } from "../errors";
import { fromEngineError } from "../http/errors";
import { DONE, errorFrame, frame, keepOpen } from "../http/sse";
import {
  type ChatChoice,
  type ChatPlan,
  chatChunk,
  chatObject,
  chatPlan,
  chatUsageChunk,
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

async function* stream(meta: ResponseMeta, plan: ChatPlan, g: Generation) {
  try {
    // clients read the role from the first delta of each choice
    for (let c = 0; c < plan.n; c++) yield frame(chatChunk(meta, c, { role: "assistant", content: "" }, null));
    let completion = 0;
    for await (const [, e] of g.events) {
      if (e.type === "text") yield frame(chatChunk(meta, e.choice, { content: e.text }, null));
      else if (e.type === "end") {
        completion += e.completionTokens;
        yield frame(chatChunk(meta, e.choice, {}, finishReason(e.reason)));
      } else if (e.type === "error") {
        yield errorFrame(fromEngineError(EngineError.from(e)));
        return;
      }
    }
    if (plan.includeUsage) {
      const start = g.starts[0];
      yield frame(chatUsageChunk(meta, usage(start?.promptTokens ?? 0, completion, start?.cachedTokens)));
    }
    yield DONE;
  } catch (e) {
    yield errorFrame(e);
  } finally {
    g.abort();
  }
}

export const chatRoutes = (svc: Services) =>
  new Elysia({ name: "routes/chat" })
    .use(svc)
    .use(openaiModels)
    .post(
      "/chat/completions",
      async ({ body, registry, config, metrics, request, server }) => {
        const engine = registry.engine(body.model);
        const plan = chatPlan(body, config.sampling, engine.info);
        const meta: ResponseMeta = {
          id: newId("chatcmpl"),
          created: nowSeconds(),
          model: engine.info.id,
          fingerprint: fingerprint(engine.info),
        };
        // generation can be silent for longer than the idle timeout (long prompts, non-streamed answers)
        keepOpen(server, request);
        const g = await begin(engine, [plan.request], request.signal, metrics);
        if (plan.stream) {
          return stream(meta, plan, g);
        }
        const [events = []] = await drain(g, 1);
        const choices: ChatChoice[] = [];
        let completion = 0;
        for (const e of events) {
          if (e.type !== "end") continue;
          completion += e.completionTokens;
          choices.push({
            index: e.choice,
            message: { role: "assistant", content: e.text, refusal: null },
            logprobs: null,
            finish_reason: finishReason(e.reason),
          });
        }
        choices.sort((a, b) => a.index - b.index);
        const start = g.starts[0];
        return chatObject(meta, choices, usage(start?.promptTokens ?? 0, completion, start?.cachedTokens));
      },
      {
        body: "ChatCompletionRequest",
        detail: { summary: "Create a chat completion (stream with SSE when stream is true)", tags: ["Chat"] },
      },
    );
