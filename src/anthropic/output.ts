// Engine output -> Anthropic's Messages API: the message object and the stream's
// events (message_start, ping, content_block_start / _delta / _stop for each
// block in turn, message_delta with the stop reason and usage, message_stop).
// Pure functions and one small state machine per stream, tested frame by frame.
import type { Block, BlockStep } from "../chat/blocks";
import type { FinishReason } from "../engine/types";
import { newId } from "../openai/responses";

export type StopReason = "end_turn" | "max_tokens" | "stop_sequence" | "tool_use";

export interface AnthropicUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
}

/**
 * Anthropic's usage: input_tokens are the prompt tokens that were not read from
 * the cache (cache_read_input_tokens); together they are what count_tokens says.
 */
export function anthropicUsage(prompt: number, cached: number, output: number): AnthropicUsage {
  return {
    input_tokens: prompt - cached,
    output_tokens: output,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: cached,
  };
}

export function stopReason(
  reason: FinishReason,
  toolCalls: boolean,
  stopSequence: string | undefined,
  asked: readonly string[],
): { stop_reason: StopReason; stop_sequence: string | null } {
  if (reason === "length") return { stop_reason: "max_tokens", stop_sequence: null };
  if (toolCalls) return { stop_reason: "tool_use", stop_sequence: null };
  if (stopSequence !== undefined && asked.includes(stopSequence)) {
    return { stop_reason: "stop_sequence", stop_sequence: stopSequence };
  }
  return { stop_reason: "end_turn", stop_sequence: null };
}

export type ContentBlock =
  | { type: "thinking"; thinking: string; signature: string }
  | { type: "text"; text: string }
  | { type: "tool_use"; id: string; name: string; input: unknown };

/** Tool arguments as the input object (what does not parse as an object is {}). */
function inputOf(args: string): unknown {
  try {
    const v = JSON.parse(args);
    return v !== null && typeof v === "object" && !Array.isArray(v) ? v : {};
  } catch {
    return {};
  }
}

export function contentBlock(b: Block): ContentBlock {
  if (b.kind === "reasoning") return { type: "thinking", thinking: b.text, signature: "" };
  if (b.kind === "text") return { type: "text", text: b.text };
  return { type: "tool_use", id: b.id ?? "", name: b.name ?? "", input: inputOf(b.text) };
}

export interface MessageHead {
  id: string;
  model: string;
}

export function messageHead(model: string): MessageHead {
  return { id: newId("msg").replace("-", "_"), model };
}

export function messageObject(
  head: MessageHead,
  content: ContentBlock[],
  stop: { stop_reason: StopReason | null; stop_sequence: string | null },
  usage: AnthropicUsage,
) {
  return {
    id: head.id,
    type: "message" as const,
    role: "assistant" as const,
    model: head.model,
    content,
    stop_reason: stop.stop_reason,
    stop_sequence: stop.stop_sequence,
    usage,
  };
}

export type MessageEvent = { type: string } & Record<string, unknown>;

/** One streamed message's events, block by block: each closes before the next starts. */
export class MessageEvents {
  constructor(private readonly head: MessageHead) {}

  start(usage: AnthropicUsage): MessageEvent[] {
    return [
      {
        type: "message_start",
        message: messageObject(this.head, [], { stop_reason: null, stop_sequence: null }, usage),
      },
      { type: "ping" },
    ];
  }

  step(s: BlockStep): MessageEvent[] {
    const b = s.block;
    const index = b.index;
    if (s.type === "open") {
      const content_block =
        b.kind === "reasoning"
          ? { type: "thinking", thinking: "", signature: "" }
          : b.kind === "text"
            ? { type: "text", text: "" }
            : { type: "tool_use", id: b.id ?? "", name: b.name ?? "", input: {} };
      return [{ type: "content_block_start", index, content_block }];
    }
    if (s.type === "delta") {
      const delta =
        b.kind === "reasoning"
          ? { type: "thinking_delta", thinking: s.delta }
          : b.kind === "text"
            ? { type: "text_delta", text: s.delta }
            : { type: "input_json_delta", partial_json: s.delta };
      return [{ type: "content_block_delta", index, delta }];
    }
    const out: MessageEvent[] = [];
    // a thinking block ends with its signature (empty: nothing signs a local model's thinking)
    if (b.kind === "reasoning")
      out.push({ type: "content_block_delta", index, delta: { type: "signature_delta", signature: "" } });
    out.push({ type: "content_block_stop", index });
    return out;
  }

  end(stop: { stop_reason: StopReason; stop_sequence: string | null }, usage: AnthropicUsage): MessageEvent[] {
    return [{ type: "message_delta", delta: stop, usage }, { type: "message_stop" }];
  }
}
