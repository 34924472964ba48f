// Anthropic's Messages API: a request becomes the shared chat request
// (anthropic/convert.ts), runs like any generation, and its answer becomes
// content blocks (anthropic/output.ts). Streaming and non-streaming, and
// count_tokens with the same templating and tokenizing as the request itself.

import { ANTHROPIC_PARAMS, messagesSpec } from "../anthropic/convert";
import {
  anthropicUsage,
  contentBlock,
  MessageEvents,
  type MessageHead,
  messageHead,
  messageObject,
  stopReason,
} from "../anthropic/output";
import type { CountTokensRequest, MessagesRequest } from "../anthropic/schemas";
import { BlockStream, blocksOf } from "../chat/blocks";
import { chatRequest } from "../chat/request";
import type { SamplingDefaults } from "../config";
import type { Engine } from "../engine/engine";
import type { GenerateEvent, GenerateRequest } from "../engine/types";
import { DomainError } from "../errors";
import { anthropicErrorFrame, type SseData, typed } from "../http/sse";
import type { Metrics } from "../metrics";
import type { ModelRegistry } from "../registry";
import { begin, drain, type Generation } from "./generation";

type EndEvent = Extract<GenerateEvent, { type: "end" }>;

const CLAUDE = /^claude-/i;

/**
 * The model a request means: a served model by its id; Claude's names (what
 * Claude Code asks for unless told otherwise) stand for --default-model, else
 * the first model.
 */
export function anthropicModel(registry: ModelRegistry, id: string, fallback: string | null): string {
  if (registry.entry(id) || !CLAUDE.test(id)) return id;
  return registry.defaultId(fallback) ?? id;
}

export interface MessagesPlan {
  head: MessageHead;
  request: GenerateRequest;
  stop: string[];
}

export function messagesPlan(body: MessagesRequest, defaults: SamplingDefaults, engine: Engine): MessagesPlan {
  const spec = messagesSpec(body, defaults);
  return {
    head: messageHead(engine.info.id),
    request: chatRequest(spec, defaults, engine.info, ANTHROPIC_PARAMS),
    stop: spec.stop,
  };
}

function endOf(g: Generation, end: EndEvent, stop: string[], toolCalls: boolean) {
  const start = g.starts[0];
  return {
    stop: stopReason(end.reason, toolCalls, end.stopSequence, stop),
    usage: anthropicUsage(start?.promptTokens ?? 0, start?.cachedTokens ?? 0, end.completionTokens),
  };
}

export async function createMessage(
  engine: Engine,
  body: MessagesRequest,
  x: { defaults: SamplingDefaults; signal: AbortSignal; metrics?: Metrics },
) {
  const plan = messagesPlan(body, x.defaults, engine);
  const g = await begin(engine, [plan.request], x.signal, x.metrics);
  const events = (await drain(g, 1))[0] as GenerateEvent[];
  const end = events.find((e): e is EndEvent => e.type === "end");
  if (!end || end.reason === "cancelled") throw new DomainError("cancelled", "the request was cancelled");
  const blocks = blocksOf(end);
  const { stop, usage } = endOf(
    g,
    end,
    plan.stop,
    blocks.some((b) => b.kind === "tool"),
  );
  return messageObject(plan.head, blocks.map(contentBlock), stop, usage);
}

export async function* messageStream(
  plan: MessagesPlan,
  g: Generation,
  release: () => void,
): AsyncGenerator<SseData, void, void> {
  const ev = new MessageEvents(plan.head);
  const blocks = new BlockStream();
  const steps = function* (list: ReturnType<BlockStream["push"]>) {
    for (const s of list) for (const x of ev.step(s)) yield typed(x);
  };
  try {
    const start = g.starts[0];
    for (const x of ev.start(anthropicUsage(start?.promptTokens ?? 0, start?.cachedTokens ?? 0, 0))) yield typed(x);
    for await (const [, e] of g.events) {
      if (e.type === "text") yield* steps(blocks.push(e));
      else if (e.type === "end") {
        if (e.reason === "cancelled") return;
        yield* steps(blocks.finish(e));
        const { stop, usage } = endOf(g, e, plan.stop, blocks.hasToolCalls);
        for (const x of ev.end(stop, usage)) yield typed(x);
      } else if (e.type === "error") {
        yield anthropicErrorFrame(DomainError.from(e));
        return;
      }
    }
  } catch (e) {
    yield anthropicErrorFrame(e);
  } finally {
    g.abort();
    release();
  }
}

/** count_tokens: what usage.input_tokens + usage.cache_read_input_tokens of the same request come to. */
export async function countMessageTokens(engine: Engine, body: CountTokensRequest, defaults: SamplingDefaults) {
  const spec = messagesSpec(body, defaults);
  const request = chatRequest(spec, defaults, engine.info, ANTHROPIC_PARAMS);
  return { input_tokens: await engine.countTokens(request) };
}
