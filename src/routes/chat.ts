// POST /v1/chat/completions: the model's own chat template, structured output,
// tools (and the legacy functions), logprobs; streamed or not.
import { Elysia } from "elysia";
import type { GenerateEvent } from "../engine/types";
import { DomainError } from "../errors";
import { DONE, errorFrame, frame } from "../http/sse";
import { precheck } from "../http/validate";
import { type ChatPlan, chatPlan } from "../openai/convert";
import type { ChatLogprob } from "../openai/logprobs";
import {
  type ChatChoice,
  chatChoiceLogprobs,
  chatChunk,
  chatDelta,
  chatFinish,
  chatMessage,
  chatObject,
  chatUsageChunk,
  meta,
  type ResponseMeta,
  usage,
} from "../openai/responses";
import { ChatCompletionRequest, openaiModels } from "../openai/schemas";
import type { Services } from "../services";
import { begin, drain, type Generation, streamResponse, withModel } from "../services/generation";

type End = Extract<GenerateEvent, { type: "end" }>;

const madeCalls = (e: End) => (e.message?.toolCalls.length ?? 0) > 0;

async function* stream(m: ResponseMeta, plan: ChatPlan, g: Generation, release: () => void) {
  try {
    // clients read the role from the first delta of each choice
    for (let c = 0; c < plan.n; c++) yield frame(chatChunk(m, c, { role: "assistant", content: "" }, null));
    let completion = 0;
    for await (const [, e] of g.events) {
      if (e.type === "text") {
        const delta = chatDelta(e, plan.toolStyle);
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

/** The whole answer at once: one choice per end event, with the logprobs its text events carried. */
function choices(plan: ChatPlan, events: GenerateEvent[]): { choices: ChatChoice[]; completion: number } {
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
        message: chatMessage(e, plan.toolStyle),
        logprobs: plan.logprobs ? { content: lps.get(e.choice) ?? [], refusal: null } : null,
        finish_reason: chatFinish(e.reason, madeCalls(e), plan.toolStyle),
      });
    }
  }
  out.sort((a, b) => a.index - b.index);
  return { choices: out, completion };
}

export const chatRoutes = (svc: Services) =>
  new Elysia({ name: "routes/chat" })
    .use(svc)
    .use(openaiModels)
    .post(
      "/chat/completions",
      ({ body, registry, config, metrics, request, server }) =>
        withModel({ registry, request, server, config }, body.model, async (engine, handOff) => {
          const plan = chatPlan(body, config.sampling, engine.info);
          const m = meta("chatcmpl", engine.info);
          const g = await begin(engine, [plan.request], request.signal, metrics);
          if (plan.stream)
            return streamResponse({ registry, request, server, config }, g, stream(m, plan, g, handOff()));
          const [events = []] = await drain(g, 1);
          const r = choices(plan, events);
          const start = g.starts[0];
          return chatObject(m, r.choices, usage(start?.promptTokens ?? 0, r.completion, start?.cachedTokens));
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
