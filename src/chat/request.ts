// The one chat request every dialect translates into (OpenAI chat completions,
// the Responses API, Anthropic Messages; Ollama's API later): messages for the
// model's template, tools and how they may be used, an output schema, sampling
// and reasoning. chatRequest() checks it and makes the engine's typed
// GenerateRequest, so templates, grammars, tool and reasoning parsing, logprobs,
// the prefix cache and cancellation exist once, whatever the dialect.
import type { SamplingDefaults } from "../config";
import type { GenerateRequest, ModelInfo } from "../engine/types";
import { invalid } from "../errors";
import type { TemplateMessage, TemplateTool } from "../ffi/chat";
import type { SamplingParams } from "../ffi/sampler";
import { checkSchema, enforceableSchema, SchemaBudget } from "../openai/schema";

/** Sampling fields, by their OpenAI names (the other dialects map onto them). */
export interface SamplingFields {
  temperature?: number | null;
  top_p?: number | null;
  top_k?: number | null;
  min_p?: number | null;
  seed?: number | null;
  presence_penalty?: number | null;
  frequency_penalty?: number | null;
  logit_bias?: Record<string, number> | null;
  repeat_penalty?: number | null;
  repeat_last_n?: number | null;
}

export function randomSeed(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0] as number;
}

export function samplingFrom(body: SamplingFields, defaults: SamplingDefaults, info: ModelInfo): SamplingParams {
  const logitBias: [number, number][] = [];
  // (at most LIMITS.logitBias entries: the schemas' maxProperties)
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

export function checkN(n: number, info: ModelInfo, param = "n"): void {
  if (n > info.parallel) {
    throw invalid(
      `${param}=${n} is more than this model's ${info.parallel} parallel slots (start the server with --parallel ${n} or more)`,
      param,
    );
  }
}

// ---- reasoning ------------------------------------------------------------------

export type Effort = "none" | "low" | "medium" | "high";

/**
 * A reasoning effort as some template understands it. OpenAI's and others'
 * extra levels are mapped to the nearest, never refused: minimal -> low,
 * xhigh/max/ultra -> high, anything else unknown -> medium.
 */
export function effortOf(effort: string | null | undefined): Effort | undefined {
  if (effort === null || effort === undefined || effort === "") return undefined;
  const e = effort.toLowerCase();
  if (e === "none" || e === "off" || e === "false") return "none";
  if (e === "minimal" || e === "low") return "low";
  if (e === "medium" || e === "default") return "medium";
  if (e === "high" || e === "xhigh" || e === "max" || e === "ultra") return "high";
  return "medium";
}

export interface Reasoning {
  /** none: thinking off (the template's enable_thinking false; whatever the model writes is the answer) */
  effort?: Effort;
  /** tokens the think block may take before its end is forced (null: no limit) */
  budget?: number | null;
}

// ---- the request ---------------------------------------------------------------------

export interface ChatTool {
  name: string;
  description?: string;
  parameters?: unknown;
}

/** "required": some tool must be called; { name }: that one. */
export type ToolChoice = "auto" | "none" | "required" | { name: string };

export interface ChatSpec {
  messages: TemplateMessage[];
  tools: ChatTool[];
  toolChoice: ToolChoice;
  parallelToolCalls: boolean;
  /** the JSON schema the answer must follow ({type: "object"}: any JSON object) */
  jsonSchema?: unknown;
  n: number;
  maxTokens: number | null;
  /** the request's own context cap (GenerateRequest.contextLimit) */
  contextLimit?: number;
  sampling: SamplingFields;
  stop: string[];
  /** top alternatives per generated token; null: no logprobs */
  logprobs: number | null;
  ignoreEos?: boolean;
  /** false: no speculative decoding for this request */
  speculative?: boolean;
  reasoning?: Reasoning;
  /** the client's own chat_template_kwargs */
  templateKwargs?: Record<string, unknown>;
}

/** How the dialect names the fields a problem is reported on. */
export interface ParamNames {
  tool: (i: number) => string;
  toolName: (i: number) => string;
  toolSchema: (i: number) => string;
  toolChoice: string;
  schema: string;
}

export const OPENAI_PARAMS: ParamNames = {
  tool: (i) => `tools[${i}]`,
  toolName: (i) => `tools[${i}].function.name`,
  toolSchema: (i) => `tools[${i}].function.parameters`,
  toolChoice: "tool_choice",
  schema: "response_format.json_schema.schema",
};

const TOOL_NAME = /^[a-zA-Z0-9_.-]{1,64}$/;

const BILLING_PREFIX = "x-anthropic-billing-header:";

/**
 * Claude Code starts its system prompt with a line like
 * "x-anthropic-billing-header: cc_version=2.1.101.e51; cc_entrypoint=cli; cch=a5145;"
 * whose cch= value changes on every request, so no prefix cache would get past
 * it. The value is replaced by a fixed one (as llama-server does); any other
 * text is left alone.
 */
export function normalizeBillingHeader(text: string): string {
  if (!text.startsWith(BILLING_PREFIX)) return text;
  const end = text.indexOf("\n");
  const line = end < 0 ? text : text.slice(0, end);
  const fixed = line.replace(/\bcch=[^;\s]*/, "cch=00000");
  return fixed === line ? text : fixed + (end < 0 ? "" : text.slice(end));
}

/** System messages with the billing line normalised (the rest as given). */
function normalizeSystem(messages: TemplateMessage[]): TemplateMessage[] {
  return messages.map((m) => {
    if (m.role !== "system") return m;
    if (typeof m.content === "string") {
      const content = normalizeBillingHeader(m.content);
      return content === m.content ? m : { ...m, content };
    }
    if (Array.isArray(m.content)) {
      return { ...m, content: m.content.map((p) => (p.text ? { ...p, text: normalizeBillingHeader(p.text) } : p)) };
    }
    return m;
  });
}

/** Checks a chat request and makes the engine's request of it. */
export function chatRequest(
  spec: ChatSpec,
  defaults: SamplingDefaults,
  info: ModelInfo,
  names: ParamNames = OPENAI_PARAMS,
): GenerateRequest {
  checkN(spec.n, info);
  if (!info.vision && spec.messages.some((m) => m.images?.length)) {
    throw invalid(
      `image input needs a vision model: ${info.id} is served without a projector (start it with --mmproj FILE, or put its mmproj-*.gguf beside it)`,
      "messages",
    );
  }
  const toolNames = new Set<string>();
  // all tools end up in one grammar: their schemas share one budget
  const budget = new SchemaBudget();
  spec.tools.forEach((t, i) => {
    if (!TOOL_NAME.test(t.name)) {
      throw invalid(
        `Invalid function name '${t.name}': use 1-64 letters, digits, underscores, dots or dashes`,
        names.toolName(i),
      );
    }
    if (toolNames.has(t.name)) throw invalid(`Duplicate function name '${t.name}'`, names.toolName(i));
    toolNames.add(t.name);
    if (t.parameters) checkSchema(t.parameters, names.toolSchema(i), budget);
  });
  let tools: TemplateTool[] = spec.tools.map((t) => ({
    type: "function",
    function: {
      name: t.name,
      description: t.description,
      parameters: t.parameters ? enforceableSchema(t.parameters) : { type: "object", properties: {} },
    },
  }));
  let choice: "auto" | "none" | "required";
  if (typeof spec.toolChoice === "object") {
    // a named tool: only that one, and a call is required
    const name = spec.toolChoice.name;
    if (!toolNames.has(name))
      throw invalid(`tool_choice names '${name}', which is not among the tools`, names.toolChoice);
    tools = tools.filter((t) => t.function.name === name);
    choice = "required";
  } else choice = spec.toolChoice;
  if (tools.length === 0 && choice === "required")
    throw invalid("tool_choice requires a tool call but no tools are given", names.toolChoice);
  if (spec.jsonSchema !== undefined) {
    if (tools.length && choice !== "none") {
      throw invalid("an output schema cannot be combined with tools the model may call", names.schema);
    }
    checkSchema(spec.jsonSchema, names.schema);
  }
  const effort = spec.reasoning?.effort;
  const kwargs: Record<string, unknown> = { ...spec.templateKwargs };
  // templates that know reasoning_effort (gpt-oss and others) get it; the rest ignore it
  if (effort && effort !== "none" && kwargs.reasoning_effort === undefined) kwargs.reasoning_effort = effort;
  const thinkingOff = effort === "none" || kwargs.enable_thinking === false;
  const reasoningBudget = spec.reasoning?.budget ?? defaults.reasoningBudget;
  return {
    prompt: {
      type: "chat",
      chat: {
        messages: normalizeSystem(spec.messages),
        tools: tools.length ? tools : undefined,
        toolChoice: choice,
        parallelToolCalls: spec.parallelToolCalls,
        jsonSchema: spec.jsonSchema === undefined ? undefined : enforceableSchema(spec.jsonSchema),
        enableThinking: thinkingOff ? false : undefined,
        templateKwargs: Object.keys(kwargs).length ? kwargs : undefined,
      },
    },
    n: spec.n,
    maxTokens: spec.maxTokens,
    contextLimit: spec.contextLimit,
    sampling: samplingFrom(spec.sampling, defaults, info),
    stop: spec.stop,
    ignoreEos: spec.ignoreEos ?? false,
    speculative: spec.speculative,
    parse: tools.length > 0 && choice !== "none" ? "tools" : spec.jsonSchema !== undefined ? "content" : undefined,
    logprobs: spec.logprobs,
    reasoningBudget: thinkingOff || reasoningBudget < 0 ? null : reasoningBudget,
  };
}
