// Pure translations of OpenAI requests into the engine's typed requests
// (responses.ts goes the other way); chat completions go through the chat
// request every dialect shares (chat/request.ts). No I/O here.

import { ImageList, imageFromUrl, joinParts } from "../chat/images";
import {
  type ChatSpec,
  type ChatTool,
  chatRequest,
  checkN,
  effortOf,
  samplingFrom,
  stopList,
  type ToolChoice,
} from "../chat/request";
import type { ReasoningField, SamplingDefaults } from "../config";
import type { GenerateRequest, ModelInfo, PromptInput } from "../engine/types";
import { invalid } from "../errors";
import type { TemplateMessage } from "../ffi/chat";
import type { ToolStyle } from "./responses";
import type { ChatCompletionRequest, ChatMessage, CompletionRequest, EmbeddingRequest } from "./schemas";

export { randomSeed, samplingFrom, stopList } from "../chat/request";

// ---- completions ----------------------------------------------------------------

export interface CompletionPlan {
  /** one engine request per prompt; choice index = promptIndex * n + choice */
  requests: GenerateRequest[];
  /** the prompt is sent back before each choice's text */
  echo: boolean;
  /** choices returned per prompt */
  n: number;
  /** choices generated per prompt (best_of); the n with the highest mean logprob are returned */
  bestOf: number;
  /** top alternatives per token in the logprobs (null: no logprobs) */
  logprobs: number | null;
  stream: boolean;
  includeUsage: boolean;
}

export function completionPlan(body: CompletionRequest, defaults: SamplingDefaults, info: ModelInfo): CompletionPlan {
  const n = body.n ?? 1;
  const bestOf = body.best_of ?? n;
  if (bestOf < n) throw invalid(`best_of (${bestOf}) must be at least n (${n})`, "best_of");
  const stream = body.stream ?? false;
  if (stream && bestOf > n) throw invalid("best_of cannot be used with stream", "best_of");
  checkN(bestOf, info, bestOf > n ? "best_of" : "n");
  const p = body.prompt ?? "";
  let prompts: PromptInput[];
  if (typeof p === "string") prompts = [{ type: "text", text: p }];
  else if (p.length === 0) prompts = [{ type: "text", text: "" }];
  else if (typeof p[0] === "string") prompts = (p as string[]).map((text) => ({ type: "text", text }));
  else if (typeof p[0] === "number") prompts = [{ type: "tokens", tokens: p as number[] }];
  else prompts = (p as number[][]).map((tokens) => ({ type: "tokens", tokens }));

  if (body.suffix) {
    if (body.echo) throw invalid("echo cannot be combined with suffix", "suffix");
    prompts = prompts.map((pr) => {
      if (pr.type !== "text") throw invalid("suffix needs a text prompt", "suffix");
      return { type: "infill", prefix: pr.text, suffix: body.suffix as string };
    });
  }
  const logprobs = body.logprobs ?? null;
  const echo = body.echo ?? false;
  const sampling = samplingFrom(body, defaults, info);
  const requests = prompts.map(
    (prompt): GenerateRequest => ({
      prompt,
      n: bestOf,
      // the spec's default for completions is 16 tokens
      maxTokens: body.max_tokens ?? 16,
      sampling,
      stop: stopList(body.stop),
      ignoreEos: body.ignore_eos ?? false,
      speculative: body.speculative ?? undefined,
      logprobs,
      promptLogprobs: echo && logprobs !== null ? logprobs : null,
      scoreChoices: bestOf > n,
    }),
  );
  return { requests, echo, n, bestOf, logprobs, stream, includeUsage: body.stream_options?.include_usage ?? false };
}

// ---- chat completions ------------------------------------------------------------

const UNSUPPORTED_PART: Record<string, string> = {
  input_audio: "audio input",
  file: "file input",
};

/** An image_url part's URL (the object form, or a bare string as some clients send). */
function partImageUrl(part: NonNullable<ChatMessage["content"]>[number]): string | undefined {
  const v = (part as { image_url?: unknown }).image_url;
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as { url?: unknown }).url === "string") return (v as { url: string }).url;
  return undefined;
}

function messageText(content: ChatMessage["content"], i: number, images: ImageList): string {
  if (content === null || content === undefined) return "";
  if (typeof content === "string") return content;
  const texts: { text: string; image: boolean }[] = [];
  content.forEach((part, j) => {
    const param = `messages[${i}].content[${j}]`;
    if (part.type === "text" || part.type === "input_text" || part.type === "refusal") {
      texts.push({ text: part.text ?? (part as { refusal?: string }).refusal ?? "", image: false });
      return;
    }
    if (part.type === "image_url" || part.type === "input_image") {
      const url = partImageUrl(part);
      if (url === undefined) throw invalid(`${param} has no image_url.url`, `${param}.image_url`);
      texts.push({ text: images.add(imageFromUrl(url, `${param}.image_url`)), image: true });
      return;
    }
    const what = UNSUPPORTED_PART[part.type];
    throw invalid(
      what
        ? `${what} is not supported: llmatic serves text and image input (${param} is of type '${part.type}')`
        : `Invalid content part type '${part.type}' in ${param}`,
      `${param}.type`,
    );
  });
  return joinParts(texts, "\n");
}

/** OpenAI messages -> what the model's chat template renders. */
export function templateMessages(messages: ChatMessage[]): TemplateMessage[] {
  return messages.map((m, i) => withImages(m, i));
}

function withImages(m: ChatMessage, i: number): TemplateMessage {
  const images = new ImageList();
  const msg = templateMessage(m, i, messageText(m.content, i, images));
  return images.attach(msg);
}

function templateMessage(m: ChatMessage, i: number, content: string): TemplateMessage {
  switch (m.role) {
    case "developer":
      // developer messages are the newer name for system messages
      return { role: "system", content };
    case "function":
      // the legacy function-result message is a tool message
      return { role: "tool", content, name: m.name ?? undefined, tool_call_id: m.name ?? undefined };
    case "tool":
      return { role: "tool", content, tool_call_id: m.tool_call_id ?? undefined };
    case "assistant": {
      const calls = m.tool_calls ?? (m.function_call ? [{ id: undefined, function: m.function_call }] : null);
      const msg: TemplateMessage = { role: "assistant", content };
      if (calls?.length) {
        msg.tool_calls = calls.map((c, k) => ({
          id: c.id ?? `call_${i}_${k}`,
          type: "function",
          function: { name: c.function.name, arguments: c.function.arguments },
        }));
      }
      // reasoning from an earlier turn: either name (peers use both)
      const reasoning = m.reasoning_content ?? m.reasoning;
      if (reasoning) msg.reasoning_content = reasoning;
      return msg;
    }
    default:
      return m.name ? { role: m.role, content, name: m.name } : { role: m.role, content };
  }
}

export interface ChatPlan {
  request: GenerateRequest;
  n: number;
  stream: boolean;
  includeUsage: boolean;
  /** how tool calls are reported back */
  toolStyle: ToolStyle;
  logprobs: boolean;
  reasoningField: ReasoningField;
}

/** tools/tool_choice, or the legacy functions/function_call, as the chat request's tools and choice. */
function toolsOf(body: ChatCompletionRequest): { tools: ChatTool[]; choice: ToolChoice; style: ToolStyle } {
  if (body.tools?.length && body.functions?.length) {
    throw invalid("Use either tools or the deprecated functions, not both", "functions");
  }
  if (body.tools?.length) {
    body.tools.forEach((d, i) => {
      if (d.type !== "function")
        throw invalid(`Tool type '${d.type}' is not supported (only 'function')`, `tools[${i}].type`);
    });
    const c = body.tool_choice ?? "auto";
    return {
      tools: body.tools.map((d) => ({
        name: d.function.name,
        description: d.function.description ?? undefined,
        parameters: d.function.parameters ?? undefined,
      })),
      choice: typeof c === "string" ? c : { name: c.function.name },
      style: "tools",
    };
  }
  if (body.functions?.length) {
    const fc = body.function_call ?? "auto";
    return {
      tools: body.functions.map((f) => ({
        name: f.name,
        description: f.description ?? undefined,
        parameters: f.parameters ?? undefined,
      })),
      choice: typeof fc === "string" ? fc : { name: fc.name },
      style: "functions",
    };
  }
  if (body.tool_choice && body.tool_choice !== "none" && body.tool_choice !== "auto") {
    throw invalid("tool_choice needs tools", "tool_choice");
  }
  return { tools: [], choice: "auto", style: "none" };
}

/** response_format -> the JSON schema the output must follow (undefined: free text). */
function outputSchema(body: ChatCompletionRequest): unknown {
  const rf = body.response_format;
  if (!rf || rf.type === "text") return undefined;
  if (rf.type === "json_object") return { type: "object" };
  const schema = rf.json_schema?.schema;
  if (!schema || Object.keys(schema).length === 0) return { type: "object" };
  return schema;
}

/** An OpenAI chat completions body as the chat request every dialect makes. */
export function chatSpec(
  body: ChatCompletionRequest,
  defaults: SamplingDefaults,
): { spec: ChatSpec; style: ToolStyle } {
  if (body.top_logprobs !== null && body.top_logprobs !== undefined && !body.logprobs) {
    throw invalid("top_logprobs requires logprobs to be true", "top_logprobs");
  }
  const { tools, choice, style } = toolsOf(body);
  const b = body;
  const spec: ChatSpec = {
    messages: templateMessages(body.messages),
    tools,
    toolChoice: choice,
    // the legacy functions API has one call per answer
    parallelToolCalls: style === "functions" ? false : (body.parallel_tool_calls ?? true),
    jsonSchema: outputSchema(body),
    n: body.n ?? 1,
    maxTokens: body.max_completion_tokens ?? body.max_tokens ?? defaults.maxTokens,
    sampling: body,
    stop: stopList(body.stop),
    logprobs: body.logprobs ? (body.top_logprobs ?? 0) : null,
    ignoreEos: body.ignore_eos ?? false,
    speculative: body.speculative ?? undefined,
    reasoning: {
      effort: effortOf(b.reasoning_effort ?? b.reasoning?.effort),
      budget: b.reasoning_budget ?? b.thinking_budget_tokens ?? null,
    },
    templateKwargs: b.chat_template_kwargs ?? undefined,
  };
  return { spec, style };
}

export function chatPlan(body: ChatCompletionRequest, defaults: SamplingDefaults, info: ModelInfo): ChatPlan {
  const { spec, style } = chatSpec(body, defaults);
  const names =
    style === "functions"
      ? {
          tool: (i: number) => `functions[${i}]`,
          toolName: (i: number) => `functions[${i}].name`,
          toolSchema: (i: number) => `functions[${i}].parameters`,
          toolChoice: "function_call",
          schema: "response_format.json_schema.schema",
        }
      : undefined;
  return {
    request: chatRequest(spec, defaults, info, names),
    n: spec.n,
    stream: body.stream ?? false,
    includeUsage: body.stream_options?.include_usage ?? false,
    toolStyle: style,
    logprobs: body.logprobs ?? false,
    reasoningField: defaults.reasoningField,
  };
}

// ---- embeddings ------------------------------------------------------------------

export function embeddingInputs(body: EmbeddingRequest, info: ModelInfo): (string | number[])[] {
  if (body.dimensions !== null && body.dimensions !== undefined && body.dimensions !== info.nEmbd) {
    throw invalid(
      `dimensions=${body.dimensions} is not available: ${info.id} produces ${info.nEmbd}-dimensional embeddings`,
      "dimensions",
    );
  }
  const input = body.input;
  if (typeof input === "string") return [input];
  if (typeof input[0] === "number") return [input as number[]];
  return input as string[] | number[][];
}

/** Little-endian float32 bytes, base64-encoded: what the SDKs decode for encoding_format "base64". */
export function embeddingToBase64(v: Float32Array): string {
  const bytes = new Uint8Array(v.length * 4);
  const dv = new DataView(bytes.buffer);
  for (let i = 0; i < v.length; i++) dv.setFloat32(i * 4, v[i] as number, true);
  return Buffer.from(bytes).toString("base64");
}
