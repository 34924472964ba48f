// Pure translations between OpenAI JSON and the engine's typed requests and
// events (in: request -> GenerateRequest; out: events -> response objects and
// stream chunks). No I/O here: every function is tested frame by frame.
import type { SamplingDefaults } from "../config";
import type { FinishReason, GenerateRequest, ModelInfo, PromptInput } from "../engine/types";
import type { TemplateMessage } from "../ffi/chat";
import type { SamplingParams } from "../ffi/sampler";
import { ApiError } from "../http/errors";
import type { ChatCompletionRequest, ChatMessage, CompletionRequest, EmbeddingRequest } from "./schemas";

// ---- shared request pieces --------------------------------------------------

type SamplingFields = Pick<
  CompletionRequest,
  | "temperature"
  | "top_p"
  | "seed"
  | "presence_penalty"
  | "frequency_penalty"
  | "logit_bias"
  | "top_k"
  | "min_p"
  | "repeat_penalty"
  | "repeat_last_n"
>;

export function randomSeed(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0] as number;
}

export function samplingFrom(body: SamplingFields, defaults: SamplingDefaults, info: ModelInfo): SamplingParams {
  const logitBias: [number, number][] = [];
  for (const [key, bias] of Object.entries(body.logit_bias ?? {})) {
    const token = Number(key);
    if (!/^\d+$/.test(key) || !Number.isSafeInteger(token) || token >= info.nVocab) {
      throw ApiError.invalid(
        `Invalid logit_bias key '${key}': keys must be token ids between 0 and ${info.nVocab - 1}`,
        "logit_bias",
      );
    }
    // -100 bans a token outright, as OpenAI documents
    logitBias.push([token, bias <= -100 ? Number.NEGATIVE_INFINITY : bias]);
  }
  return {
    seed: body.seed ?? defaults.seed ?? randomSeed(),
    temperature: body.temperature ?? defaults.temperature,
    topK: body.top_k ?? defaults.topK,
    topP: body.top_p ?? defaults.topP,
    minP: body.min_p ?? defaults.minP,
    repeatPenalty: body.repeat_penalty ?? defaults.repeatPenalty,
    repeatLastN: body.repeat_last_n ?? defaults.repeatLastN,
    presencePenalty: body.presence_penalty ?? 0,
    frequencyPenalty: body.frequency_penalty ?? 0,
    logitBias,
  };
}

export function stopList(stop: string | string[] | null | undefined): string[] {
  if (stop === null || stop === undefined) return [];
  return (typeof stop === "string" ? [stop] : stop).filter((s) => s.length > 0);
}

function checkN(n: number, info: ModelInfo): void {
  if (n > info.parallel) {
    throw ApiError.invalid(
      `n=${n} is more than this model's ${info.parallel} parallel slots (start the server with --parallel ${n} or more)`,
      "n",
    );
  }
}

// ---- completions ----------------------------------------------------------------

export interface CompletionPlan {
  /** one engine request per prompt; choice index = promptIndex * n + choice */
  requests: GenerateRequest[];
  /** the prompt text each choice starts with when echo is on (filled later for token prompts) */
  echo: boolean;
  n: number;
  stream: boolean;
  includeUsage: boolean;
}

export function completionPlan(body: CompletionRequest, defaults: SamplingDefaults, info: ModelInfo): CompletionPlan {
  const n = body.n ?? 1;
  checkN(n, info);
  if (body.logprobs !== null && body.logprobs !== undefined) {
    throw ApiError.unsupported("logprobs on /v1/completions (coming in a later release)", "logprobs");
  }
  const bestOf = body.best_of ?? n;
  if (bestOf > n) {
    throw ApiError.unsupported(`best_of=${bestOf} greater than n=${n} (coming in a later release)`, "best_of");
  }
  if (bestOf < n) throw ApiError.invalid(`best_of (${bestOf}) must be at least n (${n})`, "best_of");
  const p = body.prompt ?? "";
  let prompts: PromptInput[];
  if (typeof p === "string") prompts = [{ type: "text", text: p }];
  else if (p.length === 0) prompts = [{ type: "text", text: "" }];
  else if (typeof p[0] === "string") prompts = (p as string[]).map((text) => ({ type: "text", text }));
  else if (typeof p[0] === "number") prompts = [{ type: "tokens", tokens: p as number[] }];
  else prompts = (p as number[][]).map((tokens) => ({ type: "tokens", tokens }));

  if (body.suffix) {
    if (body.echo) throw ApiError.invalid("echo cannot be combined with suffix", "suffix");
    prompts = prompts.map((pr) => {
      if (pr.type !== "text") throw ApiError.invalid("suffix needs a text prompt", "suffix");
      return { type: "infill", prefix: pr.text, suffix: body.suffix as string };
    });
  }
  const sampling = samplingFrom(body, defaults, info);
  const requests = prompts.map(
    (prompt): GenerateRequest => ({
      prompt,
      n,
      // the spec's default for completions is 16 tokens
      maxTokens: body.max_tokens ?? 16,
      sampling,
      stop: stopList(body.stop),
      ignoreEos: body.ignore_eos ?? false,
    }),
  );
  return {
    requests,
    echo: body.echo ?? false,
    n,
    stream: body.stream ?? false,
    includeUsage: body.stream_options?.include_usage ?? false,
  };
}

// ---- chat completions ------------------------------------------------------------

const UNSUPPORTED_PART: Record<string, string> = {
  image_url: "image input",
  input_image: "image input",
  input_audio: "audio input",
  file: "file input",
};

function messageText(content: ChatMessage["content"], i: number): string {
  if (content === null || content === undefined) return "";
  if (typeof content === "string") return content;
  const texts: string[] = [];
  content.forEach((part, j) => {
    if (part.type === "text" || part.type === "input_text" || part.type === "refusal") {
      texts.push(part.text ?? (part as { refusal?: string }).refusal ?? "");
      return;
    }
    const what = UNSUPPORTED_PART[part.type];
    throw ApiError.invalid(
      what
        ? `${what} is not supported: llmatic serves text-only models (messages[${i}].content[${j}] is of type '${part.type}')`
        : `Invalid content part type '${part.type}' in messages[${i}].content[${j}]`,
      `messages[${i}].content[${j}].type`,
    );
  });
  return texts.join("\n");
}

/** OpenAI messages -> what the model's chat template renders. */
export function templateMessages(messages: ChatMessage[]): TemplateMessage[] {
  return messages.map((m, i): TemplateMessage => {
    const content = messageText(m.content, i);
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
        if (m.reasoning_content) msg.reasoning_content = m.reasoning_content;
        return msg;
      }
      default:
        return m.name ? { role: m.role, content, name: m.name } : { role: m.role, content };
    }
  });
}

export interface ChatPlan {
  request: GenerateRequest;
  n: number;
  stream: boolean;
  includeUsage: boolean;
}

export function chatPlan(body: ChatCompletionRequest, defaults: SamplingDefaults, info: ModelInfo): ChatPlan {
  const n = body.n ?? 1;
  checkN(n, info);
  if (body.logprobs)
    throw ApiError.unsupported("logprobs on /v1/chat/completions (coming in a later release)", "logprobs");
  if (body.top_logprobs !== null && body.top_logprobs !== undefined && !body.logprobs) {
    throw ApiError.invalid("top_logprobs requires logprobs to be true", "top_logprobs");
  }
  if (body.tools?.length || body.functions?.length) {
    throw ApiError.unsupported("tools / functions (coming in a later release)", body.tools ? "tools" : "functions");
  }
  if (body.response_format && body.response_format.type !== "text") {
    throw ApiError.unsupported(
      `response_format '${body.response_format.type}' (coming in a later release)`,
      "response_format",
    );
  }
  return {
    request: {
      prompt: { type: "chat", chat: { messages: templateMessages(body.messages) } },
      n,
      maxTokens: body.max_completion_tokens ?? body.max_tokens ?? defaults.maxTokens,
      sampling: samplingFrom(body, defaults, info),
      stop: stopList(body.stop),
      ignoreEos: body.ignore_eos ?? false,
    },
    n,
    stream: body.stream ?? false,
    includeUsage: body.stream_options?.include_usage ?? false,
  };
}

// ---- embeddings ------------------------------------------------------------------

export function embeddingInputs(body: EmbeddingRequest, info: ModelInfo): (string | number[])[] {
  if (body.dimensions !== null && body.dimensions !== undefined && body.dimensions !== info.nEmbd) {
    throw ApiError.invalid(
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

// ---- responses ---------------------------------------------------------------------

export function finishReason(r: FinishReason): "stop" | "length" {
  return r === "length" ? "length" : "stop";
}

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

export interface CompletionChoice {
  text: string;
  index: number;
  logprobs: null;
  finish_reason: "stop" | "length" | null;
}

export function completionObject(meta: ResponseMeta, choices: CompletionChoice[], u: Usage) {
  return {
    id: meta.id,
    object: "text_completion" as const,
    created: meta.created,
    model: meta.model,
    system_fingerprint: meta.fingerprint,
    choices,
    usage: u,
  };
}

export function completionChunk(meta: ResponseMeta, index: number, text: string, finish: "stop" | "length" | null) {
  return {
    id: meta.id,
    object: "text_completion" as const,
    created: meta.created,
    model: meta.model,
    system_fingerprint: meta.fingerprint,
    choices: [{ text, index, logprobs: null, finish_reason: finish }],
  };
}

export function completionUsageChunk(meta: ResponseMeta, u: Usage) {
  return {
    id: meta.id,
    object: "text_completion" as const,
    created: meta.created,
    model: meta.model,
    system_fingerprint: meta.fingerprint,
    choices: [],
    usage: u,
  };
}

export interface ChatChoice {
  index: number;
  message: { role: "assistant"; content: string | null; refusal: null };
  logprobs: null;
  finish_reason: "stop" | "length";
}

export function chatObject(meta: ResponseMeta, choices: ChatChoice[], u: Usage) {
  return {
    id: meta.id,
    object: "chat.completion" as const,
    created: meta.created,
    model: meta.model,
    system_fingerprint: meta.fingerprint,
    choices,
    usage: u,
  };
}

export interface ChatDelta {
  role?: "assistant";
  content?: string;
}

export function chatChunk(meta: ResponseMeta, index: number, delta: ChatDelta, finish: "stop" | "length" | null) {
  return {
    id: meta.id,
    object: "chat.completion.chunk" as const,
    created: meta.created,
    model: meta.model,
    system_fingerprint: meta.fingerprint,
    choices: [{ index, delta, logprobs: null, finish_reason: finish }],
  };
}

export function chatUsageChunk(meta: ResponseMeta, u: Usage) {
  return {
    id: meta.id,
    object: "chat.completion.chunk" as const,
    created: meta.created,
    model: meta.model,
    system_fingerprint: meta.fingerprint,
    choices: [],
    usage: u,
  };
}

export function modelObject(info: Pick<ModelInfo, "id" | "createdAt">) {
  return { id: info.id, object: "model" as const, created: info.createdAt, owned_by: "llmatic" };
}

export function engineObject(info: Pick<ModelInfo, "id" | "createdAt">, ready: boolean) {
  return { id: info.id, object: "engine" as const, created: info.createdAt, owner: "llmatic", ready };
}

/** Changes when the model file or the engine build changes (OpenAI's system_fingerprint). */
export function fingerprint(info: Pick<ModelInfo, "path" | "sizeBytes" | "nParams" | "description">): string {
  const h = Bun.hash(`${info.path}\n${info.sizeBytes}\n${info.nParams}\n${info.description}`).toString(16);
  return `fp_${h.padStart(16, "0").slice(0, 10)}`;
}
