// Pure translations of OpenAI requests into the engine's typed requests
// (responses.ts goes the other way). No I/O here.
import type { SamplingDefaults } from "../config";
import type { GenerateRequest, ModelInfo, PromptInput } from "../engine/types";
import { invalid } from "../errors";
import type { TemplateMessage, TemplateTool } from "../ffi/chat";
import type { SamplingParams } from "../ffi/sampler";
import type { ToolStyle } from "./responses";
import { checkSchema, SchemaBudget } from "./schema";
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
  // (at most LIMITS.logitBias entries: the schema's maxProperties)
  const biases = Object.entries(body.logit_bias ?? {});
  const repeatLastN = body.repeat_last_n ?? defaults.repeatLastN;
  if (repeatLastN > info.nCtxSlot) {
    throw invalid(
      `repeat_last_n=${repeatLastN} is more than the ${info.nCtxSlot} tokens of this model's context window (-1 means all of it)`,
      "repeat_last_n",
    );
  }
  for (const [key, bias] of biases) {
    const token = Number(key);
    if (!/^\d+$/.test(key) || !Number.isSafeInteger(token) || token >= info.nVocab) {
      throw invalid(
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
    repeatLastN,
    presencePenalty: body.presence_penalty ?? 0,
    frequencyPenalty: body.frequency_penalty ?? 0,
    logitBias,
  };
}

export function stopList(stop: string | string[] | null | undefined): string[] {
  if (stop === null || stop === undefined) return [];
  return (typeof stop === "string" ? [stop] : stop).filter((s) => s.length > 0);
}

function checkN(n: number, info: ModelInfo, param = "n"): void {
  if (n > info.parallel) {
    throw invalid(
      `${param}=${n} is more than this model's ${info.parallel} parallel slots (start the server with --parallel ${n} or more)`,
      param,
    );
  }
}

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
      logprobs,
      promptLogprobs: echo && logprobs !== null ? logprobs : null,
      scoreChoices: bestOf > n,
    }),
  );
  return { requests, echo, n, bestOf, logprobs, stream, includeUsage: body.stream_options?.include_usage ?? false };
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
    throw invalid(
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
  /** how tool calls are reported back */
  toolStyle: ToolStyle;
  logprobs: boolean;
}

type ToolDef = NonNullable<ChatCompletionRequest["tools"]>[number];

/** tools/tool_choice, or the legacy functions/function_call, as the template's tools and choice. */
function toolsOf(body: ChatCompletionRequest): { tools: TemplateTool[]; choice: string; style: ToolStyle } {
  if (body.tools?.length && body.functions?.length) {
    throw invalid("Use either tools or the deprecated functions, not both", "functions");
  }
  let defs: ToolDef[] = [];
  let choice: ChatCompletionRequest["tool_choice"] = body.tool_choice ?? "auto";
  let style: ToolStyle = "none";
  let choiceParam = "tool_choice";
  if (body.tools?.length) {
    defs = body.tools;
    style = "tools";
  } else if (body.functions?.length) {
    defs = body.functions.map((f) => ({ type: "function", function: f }));
    style = "functions";
    choiceParam = "function_call";
    const fc = body.function_call ?? "auto";
    choice = typeof fc === "string" ? fc : { type: "function", function: { name: fc.name } };
  } else {
    if (body.tool_choice && body.tool_choice !== "none" && body.tool_choice !== "auto") {
      throw invalid("tool_choice needs tools", "tool_choice");
    }
    return { tools: [], choice: "auto", style };
  }
  const names = new Set<string>();
  // all tools end up in one grammar: their schemas share one budget
  const budget = new SchemaBudget();
  defs.forEach((d, i) => {
    const param = style === "tools" ? `tools[${i}]` : `functions[${i}]`;
    if (d.type !== "function")
      throw invalid(`Tool type '${d.type}' is not supported (only 'function')`, `${param}.type`);
    if (!/^[a-zA-Z0-9_-]{1,64}$/.test(d.function.name)) {
      throw invalid(
        `Invalid function name '${d.function.name}': use 1-64 letters, digits, underscores or dashes`,
        `${param}.function.name`,
      );
    }
    if (names.has(d.function.name))
      throw invalid(`Duplicate function name '${d.function.name}'`, `${param}.function.name`);
    names.add(d.function.name);
    if (d.function.parameters) checkSchema(d.function.parameters, `${param}.function.parameters`, budget);
  });
  let tools: TemplateTool[] = defs.map((d) => ({
    type: "function",
    function: {
      name: d.function.name,
      description: d.function.description ?? undefined,
      parameters: d.function.parameters ?? { type: "object", properties: {} },
    },
  }));
  let choiceText: string;
  if (typeof choice === "string") choiceText = choice;
  else {
    // a named function: only that tool, and a call is required
    const name = choice.function.name;
    if (!names.has(name)) throw invalid(`tool_choice names '${name}', which is not among the tools`, choiceParam);
    tools = tools.filter((t) => t.function.name === name);
    choiceText = "required";
  }
  return { tools, choice: choiceText, style };
}

/** response_format -> the JSON schema the output must follow (undefined: free text). */
function outputSchema(body: ChatCompletionRequest): unknown {
  const rf = body.response_format;
  if (!rf || rf.type === "text") return undefined;
  if (rf.type === "json_object") return { type: "object" };
  const schema = rf.json_schema?.schema;
  if (!schema || Object.keys(schema).length === 0) return { type: "object" };
  checkSchema(schema, "response_format.json_schema.schema");
  return schema;
}

export function chatPlan(body: ChatCompletionRequest, defaults: SamplingDefaults, info: ModelInfo): ChatPlan {
  const n = body.n ?? 1;
  checkN(n, info);
  if (body.top_logprobs !== null && body.top_logprobs !== undefined && !body.logprobs) {
    throw invalid("top_logprobs requires logprobs to be true", "top_logprobs");
  }
  const { tools, choice, style } = toolsOf(body);
  const jsonSchema = outputSchema(body);
  if (jsonSchema !== undefined && tools.length && choice !== "none") {
    throw invalid("response_format cannot be combined with tools the model may call", "response_format");
  }
  const logprobs = body.logprobs ?? false;
  return {
    request: {
      prompt: {
        type: "chat",
        chat: {
          messages: templateMessages(body.messages),
          tools: tools.length ? tools : undefined,
          toolChoice: choice,
          // the legacy functions API has one call per answer
          parallelToolCalls: style === "functions" ? false : (body.parallel_tool_calls ?? true),
          jsonSchema,
        },
      },
      n,
      maxTokens: body.max_completion_tokens ?? body.max_tokens ?? defaults.maxTokens,
      sampling: samplingFrom(body, defaults, info),
      stop: stopList(body.stop),
      ignoreEos: body.ignore_eos ?? false,
      parse: tools.length > 0 && choice !== "none" ? "tools" : jsonSchema !== undefined ? "content" : undefined,
      logprobs: logprobs ? (body.top_logprobs ?? 0) : null,
    },
    n,
    stream: body.stream ?? false,
    includeUsage: body.stream_options?.include_usage ?? false,
    toolStyle: style,
    logprobs,
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
