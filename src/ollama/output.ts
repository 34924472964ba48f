// Engine output -> Ollama's native API: /api/chat and /api/generate lines
// (NDJSON chunks, the last one `done: true` with done_reason and the timings in
// nanoseconds), tool calls with object arguments, and the model listings
// (/api/tags, /api/show, /api/ps). Pure functions, tested line by line.
import type { Block, BlockStep } from "../chat/blocks";
import type { FinishReason } from "../engine/types";
import { type Capability, type ModelFacts, parameterSize } from "../models/describe";
import { modelName } from "./convert";

export interface OllamaToolCall {
  function: { name: string; arguments: Record<string, unknown> };
}

export interface OllamaAssistant {
  role: "assistant";
  content: string;
  thinking?: string;
  tool_calls?: OllamaToolCall[];
}

/** Nanosecond timings, measured by the server around the request. */
export interface Timings {
  total_duration: number;
  load_duration: number;
  prompt_eval_count: number;
  prompt_eval_duration: number;
  eval_count: number;
  eval_duration: number;
}

export const NS_PER_MS = 1e6;

/** Marks along a request (performance.now() ms): start, model ready, first token, end. */
export class Clock {
  readonly start = performance.now();
  loaded = this.start;
  first: number | null = null;
  firstToken(): void {
    this.first ??= performance.now();
  }
  timings(promptTokens: number, evalTokens: number): Timings {
    const end = performance.now();
    const first = this.first ?? end;
    const ns = (ms: number) => Math.max(0, Math.round(ms * NS_PER_MS));
    return {
      total_duration: ns(end - this.start),
      load_duration: ns(this.loaded - this.start),
      prompt_eval_count: promptTokens,
      prompt_eval_duration: ns(first - this.loaded),
      eval_count: evalTokens,
      eval_duration: ns(end - first),
    };
  }
}

/** Tool arguments as an object (Ollama's shape); what does not parse is {}. */
export function argumentsObject(args: string): Record<string, unknown> {
  try {
    const v = JSON.parse(args);
    return v !== null && typeof v === "object" && !Array.isArray(v) ? v : {};
  } catch {
    return {};
  }
}

export function toolCall(b: Pick<Block, "name" | "text">): OllamaToolCall {
  return { function: { name: b.name ?? "", arguments: argumentsObject(b.text) } };
}

/** A finished answer's message from its blocks. */
export function assistantMessage(blocks: Block[]): OllamaAssistant {
  const m: OllamaAssistant = { role: "assistant", content: "" };
  for (const b of blocks) {
    if (b.kind === "text") m.content += b.text;
    else if (b.kind === "reasoning") m.thinking = (m.thinking ?? "") + b.text;
    else {
      m.tool_calls ??= [];
      m.tool_calls.push(toolCall(b));
    }
  }
  return m;
}

/**
 * What one block step adds to a streamed chat line: text and thinking as they
 * come, a tool call once it is whole (Ollama's clients read arguments as an
 * object, never as fragments). Null: nothing to send.
 */
export function stepDelta(s: BlockStep): Partial<OllamaAssistant> | null {
  if (s.type === "delta" && s.block.kind === "text") return { content: s.delta };
  if (s.type === "delta" && s.block.kind === "reasoning") return { thinking: s.delta };
  if (s.type === "close" && s.block.kind === "tool") return { tool_calls: [toolCall(s.block)] };
  return null;
}

export function doneReason(reason: FinishReason): string {
  return reason === "length" ? "length" : "stop";
}

const now = () => new Date().toISOString();

export function chatLine(model: string, delta: Partial<OllamaAssistant>) {
  return { model, created_at: now(), message: { role: "assistant", content: "", ...delta }, done: false };
}

export function chatDone(model: string, message: OllamaAssistant, reason: string, t: Timings) {
  return { model, created_at: now(), message, done: true, done_reason: reason, ...t };
}

export function generateLine(model: string, delta: { response?: string; thinking?: string }) {
  return { model, created_at: now(), response: "", ...delta, done: false };
}

export function generateDone(
  model: string,
  fields: { response: string; thinking?: string },
  reason: string,
  t: Timings,
  context?: number[],
) {
  return {
    model,
    created_at: now(),
    ...fields,
    done: true,
    done_reason: reason,
    ...(context ? { context } : {}),
    ...t,
  };
}

export interface ModelDetails {
  parent_model: string;
  /** "ggml" for whisper.cpp's legacy files */
  format: "gguf" | "ggml";
  family: string;
  families: string[];
  parameter_size: string;
  quantization_level: string;
}

export function details(f: ModelFacts | null): ModelDetails {
  return {
    parent_model: "",
    format: f?.architecture === "whisper" ? "ggml" : "gguf",
    family: f?.architecture ?? "",
    families: f?.architecture ? [f.architecture] : [],
    parameter_size: f ? parameterSize(f.parameterCount) : "",
    quantization_level: f?.quantization ?? "",
  };
}

/** A digest for a model: sha256 of its path, size and mtime (hashing gigabytes per listing would be too slow). */
export function digestOf(id: string, f: ModelFacts | null): string {
  return new Bun.CryptoHasher("sha256").update(`${id}\0${f?.sizeBytes ?? 0}\0${f?.modifiedAt ?? 0}`).digest("hex");
}

export function tagEntry(id: string, f: ModelFacts | null) {
  return {
    name: modelName(id),
    model: modelName(id),
    modified_at: new Date((f?.modifiedAt ?? 0) * 1000).toISOString(),
    size: f?.sizeBytes ?? 0,
    digest: digestOf(id, f),
    details: details(f),
  };
}

export function psEntry(id: string, f: ModelFacts | null, contextLength: number, expiresAt: number | null) {
  return {
    ...tagEntry(id, f),
    // no expiry: far in the future, as Ollama shows keep_alive -1
    expires_at: new Date(expiresAt ?? Date.UTC(2318, 0, 1)).toISOString(),
    size_vram: 0,
    context_length: contextLength,
  };
}

/** Ollama's parameters text: one "name value" line per default llmatic applies. */
export function parametersText(p: Record<string, string | number | string[]>): string {
  const lines: string[] = [];
  for (const [k, v] of Object.entries(p)) {
    if (Array.isArray(v)) for (const x of v) lines.push(`${k.padEnd(15)}${JSON.stringify(x)}`);
    else lines.push(`${k.padEnd(15)}${v}`);
  }
  return lines.join("\n");
}

export function showResponse(
  id: string,
  f: ModelFacts | null,
  capabilities: Capability[],
  parameters: string,
  template: string,
) {
  return {
    license: "",
    modelfile: `# served by llmatic\nFROM ${id}\n`,
    parameters,
    template,
    details: details(f),
    model_info: f?.info ?? {},
    capabilities,
    modified_at: new Date((f?.modifiedAt ?? 0) * 1000).toISOString(),
  };
}
