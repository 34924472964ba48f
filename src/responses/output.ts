// Engine output -> the Responses API: output items, the response object, and
// the stream's events (OpenAI's sequence, with sequence_number, output_index and
// content_index on every event). Pure functions and one small state machine per
// stream (ResponseEvents), tested frame by frame.
import type { Block, BlockStep } from "../chat/blocks";
import type { FinishReason } from "../engine/types";
import { newId, nowSeconds } from "../openai/responses";

export type ResponseStatus = "queued" | "in_progress" | "completed" | "incomplete" | "failed" | "cancelled";

export interface OutputText {
  type: "output_text";
  text: string;
  annotations: never[];
  logprobs: never[];
}

export type OutputItem =
  | {
      id: string;
      type: "reasoning";
      summary: { type: "summary_text"; text: string }[];
      content: { type: "reasoning_text"; text: string }[];
      encrypted_content?: null;
      status?: "in_progress" | "completed" | "incomplete";
    }
  | {
      id: string;
      type: "message";
      role: "assistant";
      status: "in_progress" | "completed" | "incomplete";
      content: OutputText[];
    }
  | {
      id: string;
      type: "function_call";
      status: "in_progress" | "completed" | "incomplete";
      call_id: string;
      name: string;
      arguments: string;
    };

export interface ResponseUsage {
  input_tokens: number;
  input_tokens_details: { cached_tokens: number };
  output_tokens: number;
  output_tokens_details: { reasoning_tokens: number };
  total_tokens: number;
}

export function responseUsage(input: number, cached: number, output: number, reasoning: number): ResponseUsage {
  return {
    input_tokens: input,
    input_tokens_details: { cached_tokens: cached },
    output_tokens: output,
    output_tokens_details: { reasoning_tokens: reasoning },
    total_tokens: input + output,
  };
}

/** What a response echoes of its request (everything but its output and outcome). */
export interface ResponseBase {
  id: string;
  created_at: number;
  model: string;
  instructions: string | null;
  max_output_tokens: number | null;
  parallel_tool_calls: boolean;
  previous_response_id: string | null;
  reasoning: { effort: string | null; summary: string | null };
  store: boolean;
  background: boolean;
  temperature: number | null;
  top_p: number | null;
  text: { format: Record<string, unknown> };
  tool_choice: unknown;
  tools: unknown[];
  truncation: "disabled" | "auto";
  user: string | null;
  metadata: Record<string, string>;
}

export interface ResponseOutcome {
  status: ResponseStatus;
  output: OutputItem[];
  usage: ResponseUsage | null;
  error: { code: string; message: string } | null;
  incomplete_details: { reason: "max_output_tokens" | "content_filter" } | null;
  completed_at: number | null;
}

export type ResponseObject = ResponseBase & ResponseOutcome & { object: "response" };

export function responseObject(base: ResponseBase, outcome: ResponseOutcome): ResponseObject {
  return {
    id: base.id,
    object: "response",
    created_at: base.created_at,
    status: outcome.status,
    completed_at: outcome.completed_at,
    error: outcome.error,
    incomplete_details: outcome.incomplete_details,
    instructions: base.instructions,
    max_output_tokens: base.max_output_tokens,
    model: base.model,
    output: outcome.output,
    parallel_tool_calls: base.parallel_tool_calls,
    previous_response_id: base.previous_response_id,
    reasoning: base.reasoning,
    store: base.store,
    background: base.background,
    temperature: base.temperature,
    top_p: base.top_p,
    text: base.text,
    tool_choice: base.tool_choice,
    tools: base.tools,
    truncation: base.truncation,
    usage: outcome.usage,
    user: base.user,
    metadata: base.metadata,
  };
}

export function pendingOutcome(status: "queued" | "in_progress"): ResponseOutcome {
  return { status, output: [], usage: null, error: null, incomplete_details: null, completed_at: null };
}

/** completed, or incomplete when max_output_tokens cut the answer. */
export function finalOutcome(reason: FinishReason, output: OutputItem[], usage: ResponseUsage): ResponseOutcome {
  const cut = reason === "length";
  return {
    status: cut ? "incomplete" : "completed",
    // the last item is the one the limit cut; the others finished
    output: cut
      ? output.map((it, i) => (i === output.length - 1 ? ({ ...it, status: "incomplete" } as OutputItem) : it))
      : output,
    usage,
    error: null,
    incomplete_details: cut ? { reason: "max_output_tokens" } : null,
    completed_at: nowSeconds(),
  };
}

export function failedOutcome(code: string, message: string, output: OutputItem[] = []): ResponseOutcome {
  return {
    status: "failed",
    output,
    usage: null,
    error: { code, message },
    incomplete_details: null,
    completed_at: null,
  };
}

const PREFIX: Record<Block["kind"], string> = { reasoning: "rs", text: "msg", tool: "fc" };

function itemId(kind: Block["kind"]): string {
  return newId(PREFIX[kind]).replace("-", "_");
}

/** A block as an output item (`status` in_progress while it streams). */
function itemOf(b: Block, id: string, done: boolean): OutputItem {
  const status = done ? "completed" : "in_progress";
  if (b.kind === "reasoning") {
    return {
      id,
      type: "reasoning",
      summary: [],
      content: done ? [{ type: "reasoning_text", text: b.text }] : [],
      status,
    };
  }
  if (b.kind === "text") {
    return { id, type: "message", role: "assistant", status, content: done ? [outputText(b.text)] : [] };
  }
  return { id, type: "function_call", status, call_id: b.id ?? id, name: b.name ?? "", arguments: done ? b.text : "" };
}

function outputText(text: string): OutputText {
  return { type: "output_text", text, annotations: [], logprobs: [] };
}

/** A finished answer's blocks as output items. */
export function outputItems(blocks: Block[]): OutputItem[] {
  return blocks.map((b) => itemOf(b, itemId(b.kind), true));
}

/** The text of an answer's message items (what output_text is in the SDKs). */
export function outputTextOf(items: OutputItem[]): string {
  return items.flatMap((i) => (i.type === "message" ? i.content.map((c) => c.text) : [])).join("");
}

export type ResponseEvent = { type: string; sequence_number: number } & Record<string, unknown>;

/**
 * One streamed response's events: created and in_progress, then for each block
 * its item added, its content part added, the deltas, the done events and the
 * item done, and last completed / incomplete / failed with the whole response.
 */
export class ResponseEvents {
  private seq = 0;
  private readonly ids = new Map<number, string>();
  /** the output items finished so far, in order */
  readonly output: OutputItem[] = [];

  constructor(private readonly base: ResponseBase) {}

  private ev(type: string, body: Record<string, unknown>): ResponseEvent {
    return { type, sequence_number: this.seq++, ...body };
  }

  start(status: "queued" | "in_progress" = "in_progress"): ResponseEvent[] {
    const r = responseObject(this.base, pendingOutcome(status));
    return [
      this.ev("response.created", { response: r }),
      this.ev("response.in_progress", { response: { ...r, status: "in_progress" } }),
    ];
  }

  step(s: BlockStep): ResponseEvent[] {
    const b = s.block;
    const output_index = b.index;
    if (s.type === "open") {
      const id = itemId(b.kind);
      this.ids.set(b.index, id);
      const out = [this.ev("response.output_item.added", { output_index, item: itemOf(b, id, false) })];
      if (b.kind === "text") {
        out.push(
          this.ev("response.content_part.added", { item_id: id, output_index, content_index: 0, part: outputText("") }),
        );
      } else if (b.kind === "reasoning") {
        out.push(
          this.ev("response.content_part.added", {
            item_id: id,
            output_index,
            content_index: 0,
            part: { type: "reasoning_text", text: "" },
          }),
        );
      }
      return out;
    }
    const item_id = this.ids.get(b.index) as string;
    if (s.type === "delta") {
      if (b.kind === "text") {
        return [
          this.ev("response.output_text.delta", {
            item_id,
            output_index,
            content_index: 0,
            delta: s.delta,
            logprobs: [],
          }),
        ];
      }
      if (b.kind === "reasoning") {
        return [this.ev("response.reasoning_text.delta", { item_id, output_index, content_index: 0, delta: s.delta })];
      }
      return [this.ev("response.function_call_arguments.delta", { item_id, output_index, delta: s.delta })];
    }
    const item = itemOf(b, item_id, true);
    this.output.push(item);
    const out: ResponseEvent[] = [];
    if (b.kind === "text") {
      out.push(
        this.ev("response.output_text.done", { item_id, output_index, content_index: 0, text: b.text, logprobs: [] }),
      );
      out.push(
        this.ev("response.content_part.done", { item_id, output_index, content_index: 0, part: outputText(b.text) }),
      );
    } else if (b.kind === "reasoning") {
      out.push(this.ev("response.reasoning_text.done", { item_id, output_index, content_index: 0, text: b.text }));
      out.push(
        this.ev("response.content_part.done", {
          item_id,
          output_index,
          content_index: 0,
          part: { type: "reasoning_text", text: b.text },
        }),
      );
    } else {
      out.push(
        this.ev("response.function_call_arguments.done", { item_id, output_index, name: b.name, arguments: b.text }),
      );
    }
    out.push(this.ev("response.output_item.done", { output_index, item }));
    return out;
  }

  /** The last event: the response as it ended. */
  end(outcome: ResponseOutcome): ResponseEvent {
    // (a cancelled response ends as failed: the stream events have no cancelled one)
    const type =
      outcome.status === "incomplete"
        ? "response.incomplete"
        : outcome.status === "completed"
          ? "response.completed"
          : "response.failed";
    return this.ev(type, { response: responseObject(this.base, outcome) });
  }

  /** A failure mid-stream: an error event (the SDKs throw it), then response.failed. */
  error(code: string, message: string): ResponseEvent[] {
    return [this.ev("error", { code, message, param: null }), this.end(failedOutcome(code, message, this.output))];
  }
}
