// Engine events -> OpenAI response objects and stream chunks. Pure functions
// and small per-request state machines, tested frame by frame.
import type { ReasoningField } from "../config";
import type { FinishReason, GenerateEvent, ModelInfo, ParsedMessage, ToolCallDelta } from "../engine/types";
import { type ChatLogprob, chatLogprobs } from "./logprobs";

export type OpenAIFinish = "stop" | "length" | "tool_calls" | "function_call";

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details?: { cached_tokens: number };
}

export function usage(prompt: number, completion: number, cached?: number): Usage {
  const u: Usage = { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
  if (cached !== undefined) u.prompt_tokens_details = { cached_tokens: cached };
  return u;
}

export interface ResponseMeta {
  id: string;
  created: number;
  model: string;
  fingerprint: string;
}

export function newId(prefix: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return `${prefix}-${Buffer.from(bytes).toString("base64url")}`;
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** Changes when the model file or the engine build changes (OpenAI's system_fingerprint). */
export function fingerprint(info: Pick<ModelInfo, "path" | "sizeBytes" | "nParams" | "description">): string {
  const h = Bun.hash(`${info.path}\n${info.sizeBytes}\n${info.nParams}\n${info.description}`).toString(16);
  return `fp_${h.padStart(16, "0").slice(0, 10)}`;
}

export function meta(prefix: string, info: ModelInfo): ResponseMeta {
  return { id: newId(prefix), created: nowSeconds(), model: info.id, fingerprint: fingerprint(info) };
}

export function finishReason(r: FinishReason): "stop" | "length" {
  return r === "length" ? "length" : "stop";
}

/** The fields every response object and stream chunk starts with. */
function head<O extends string>(m: ResponseMeta, object: O) {
  return { id: m.id, object, created: m.created, model: m.model, system_fingerprint: m.fingerprint };
}

export function modelObject(info: Pick<ModelInfo, "id" | "createdAt">) {
  return { id: info.id, object: "model" as const, created: info.createdAt, owned_by: "llmatic" };
}

export function engineObject(info: Pick<ModelInfo, "id" | "createdAt">, ready: boolean) {
  return { id: info.id, object: "engine" as const, created: info.createdAt, owner: "llmatic", ready };
}

// ---- completions ------------------------------------------------------------------

export interface CompletionChoice {
  text: string;
  index: number;
  logprobs: unknown;
  finish_reason: "stop" | "length" | null;
}

export function completionObject(m: ResponseMeta, choices: CompletionChoice[], u: Usage) {
  return {
    ...head(m, "text_completion"),
    choices,
    usage: u,
  };
}

export function completionChunk(m: ResponseMeta, choice: CompletionChoice) {
  return {
    ...head(m, "text_completion"),
    choices: [choice],
  };
}

export function completionUsageChunk(m: ResponseMeta, u: Usage) {
  return {
    ...head(m, "text_completion"),
    choices: [],
    usage: u,
  };
}

// ---- chat completions ------------------------------------------------------------

export interface ToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

export interface ChatMessageOut {
  role: "assistant";
  content: string | null;
  refusal: null;
  tool_calls?: ToolCall[];
  function_call?: { name: string; arguments: string };
  reasoning_content?: string;
  reasoning?: string;
}

/** Reasoning under the field names the server was told to use (both by default). */
export function reasoningFields(
  text: string,
  field: ReasoningField,
): { reasoning_content?: string; reasoning?: string } {
  if (field === "reasoning_content") return { reasoning_content: text };
  if (field === "reasoning") return { reasoning: text };
  return { reasoning_content: text, reasoning: text };
}

export interface ChatChoice {
  index: number;
  message: ChatMessageOut;
  logprobs: { content: ChatLogprob[]; refusal: null } | null;
  finish_reason: OpenAIFinish;
}

export function chatObject(m: ResponseMeta, choices: ChatChoice[], u: Usage) {
  return {
    ...head(m, "chat.completion"),
    choices,
    usage: u,
  };
}

export interface ChatDelta {
  role?: "assistant";
  content?: string | null;
  reasoning_content?: string;
  reasoning?: string;
  tool_calls?: { index: number; id?: string; type?: "function"; function: { name?: string; arguments: string } }[];
  function_call?: { name?: string; arguments: string };
}

export function chatChunk(
  m: ResponseMeta,
  index: number,
  delta: ChatDelta,
  finish: OpenAIFinish | null,
  logprobs: ChatLogprob[] | null = null,
) {
  return {
    ...head(m, "chat.completion.chunk"),
    choices: [
      { index, delta, logprobs: logprobs ? { content: logprobs, refusal: null } : null, finish_reason: finish },
    ],
  };
}

export function chatUsageChunk(m: ResponseMeta, u: Usage) {
  return {
    ...head(m, "chat.completion.chunk"),
    choices: [],
    usage: u,
  };
}

/** How the client asked for tools: modern `tools`, legacy `functions`, or neither. */
export type ToolStyle = "none" | "tools" | "functions";

/** The finish reason a client expects: calls made end with tool_calls (or function_call). */
export function chatFinish(reason: FinishReason, madeCalls: boolean, style: ToolStyle): OpenAIFinish {
  if (reason === "length") return "length";
  if (madeCalls) return style === "functions" ? "function_call" : "tool_calls";
  return "stop";
}

/** The final assistant message of one choice. */
export function chatMessage(
  end: Extract<GenerateEvent, { type: "end" }>,
  style: ToolStyle,
  field: ReasoningField = "both",
): ChatMessageOut {
  const parsed: ParsedMessage | undefined = end.message;
  if (!parsed) return { role: "assistant", content: end.text, refusal: null };
  const msg: ChatMessageOut = {
    role: "assistant",
    content: parsed.content || (parsed.toolCalls.length ? null : ""),
    refusal: null,
  };
  if (parsed.reasoning) Object.assign(msg, reasoningFields(parsed.reasoning, field));
  if (parsed.toolCalls.length) {
    if (style === "functions") {
      const first = parsed.toolCalls[0] as { name: string; arguments: string };
      msg.function_call = { name: first.name, arguments: first.arguments };
    } else {
      msg.tool_calls = parsed.toolCalls.map((c) => ({
        id: c.id,
        type: "function" as const,
        function: { name: c.name, arguments: c.arguments },
      }));
    }
  }
  return msg;
}

/** What one text event adds to a streamed choice (null: nothing to send). */
export function chatDelta(
  e: Extract<GenerateEvent, { type: "text" }>,
  style: ToolStyle,
  field: ReasoningField = "both",
): ChatDelta | null {
  if (!e.delta) return e.text ? { content: e.text } : null;
  const d: ChatDelta = {};
  if (e.delta.content) d.content = e.delta.content;
  if (e.delta.reasoning) Object.assign(d, reasoningFields(e.delta.reasoning, field));
  const calls = e.delta.toolCalls;
  if (calls.length) {
    if (style === "functions") {
      // the legacy shape has one call: stream the first
      const first = calls.filter((c) => c.index === 0);
      if (first.length) d.function_call = mergeFunctionDeltas(first);
    } else {
      d.tool_calls = calls.map((c) => ({
        index: c.index,
        ...(c.id ? { id: c.id, type: "function" as const } : {}),
        function: c.name !== undefined ? { name: c.name, arguments: c.arguments } : { arguments: c.arguments },
      }));
    }
  }
  return Object.keys(d).length ? d : null;
}

function mergeFunctionDeltas(calls: ToolCallDelta[]): { name?: string; arguments: string } {
  const name = calls.find((c) => c.name)?.name;
  const args = calls.map((c) => c.arguments).join("");
  return name !== undefined ? { name, arguments: args } : { arguments: args };
}

export function chatChoiceLogprobs(entries: Parameters<typeof chatLogprobs>[0] | undefined): ChatLogprob[] | null {
  return entries?.length ? chatLogprobs(entries) : null;
}
