// Pure translations of Ollama's native API requests into the chat request every
// dialect shares (chat/request.ts): messages (thinking, tool_calls with object
// arguments, tool results by tool_name), tools, `format` ("json" or a schema),
// `think`, and `options` (num_predict, temperature, top_k, top_p, min_p, seed,
// stop, penalties). /api/generate is a one-turn chat through the model's
// template, or the prompt as written with `raw` (or for a model without a
// template), or fill-in-the-middle with `suffix`.

import { ImageList, imageFromBase64 } from "../chat/images";
import type { ChatSpec, ChatTool, Reasoning } from "../chat/request";
import { effortOf, stopList } from "../chat/request";
import type { SamplingDefaults } from "../config";
import { invalid } from "../errors";
import type { TemplateMessage } from "../ffi/chat";
import type { ChatRequest, GenerateRequest, OllamaMessage, Options } from "./schemas";

/** Ollama's model names carry a tag; ":latest" is the one a bare name means. */
export function modelName(id: string): string {
  return id.includes(":") ? id : `${id}:latest`;
}

/** The served id a name means: the name itself, or without its ":latest" tag. */
export function servedId(name: string, has: (id: string) => boolean): string {
  if (has(name)) return name;
  if (name.endsWith(":latest") && has(name.slice(0, -7))) return name.slice(0, -7);
  return name;
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * keep_alive in ms: a number is seconds; a string is a duration ("5m", "1h30m",
 * "10s", "0"); negative means forever (-1). Undefined: the server's default.
 */
export function keepAliveMs(v: string | number | null | undefined): number | null | undefined {
  if (v === null || v === undefined || v === "") return undefined;
  if (typeof v === "number") return v < 0 ? -1 : Math.round(v * 1000);
  const s = v.trim();
  if (/^-?\d+(\.\d+)?$/.test(s)) return Number(s) < 0 ? -1 : Math.round(Number(s) * 1000);
  if (s.startsWith("-")) return -1;
  let ms = 0;
  let rest = s;
  while (rest) {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)/.exec(rest);
    if (!m) throw invalid(`invalid keep_alive '${v}': use a number of seconds or a duration like 5m`, "keep_alive");
    ms += Number(m[1]) * (UNITS[m[2] as string] as number);
    rest = rest.slice(m[0].length);
  }
  return Math.round(ms);
}

/** A message's text with its images (base64, Ollama's form) as markers before it. */
function withImages(m: TemplateMessage, images: string[] | null | undefined, where: string): TemplateMessage {
  if (!images?.length) return m;
  const list = new ImageList();
  const markers = images.map((data, k) => list.add(imageFromBase64(data, `${where}.${k}`))).join("");
  return list.attach({ ...m, content: markers + (typeof m.content === "string" ? m.content : "") });
}

function argumentsOf(v: unknown): string {
  if (v === undefined || v === null) return "{}";
  return typeof v === "string" ? v : JSON.stringify(v);
}

/** Ollama's conversation -> template messages (tool results find their call by tool_name). */
export function templateMessages(messages: OllamaMessage[]): TemplateMessage[] {
  const out: TemplateMessage[] = [];
  const calls: { id: string; name: string }[] = [];
  messages.forEach((m, i) => {
    const role = m.role;
    if (role === "assistant") {
      const msg: TemplateMessage = { role, content: m.content ?? "" };
      if (m.thinking) msg.reasoning_content = m.thinking;
      if (m.tool_calls?.length) {
        msg.tool_calls = m.tool_calls.map((c, j) => {
          const id = `call_${i}_${j}`;
          calls.push({ id, name: c.function.name });
          return {
            id,
            type: "function",
            function: { name: c.function.name, arguments: argumentsOf(c.function.arguments) },
          };
        });
      }
      if (m.images?.length) {
        throw invalid(
          `messages[${i}] is an assistant message with images: only user messages show images`,
          `messages[${i}].images`,
        );
      }
      out.push(msg);
    } else if (role === "tool") {
      const name = m.tool_name ?? undefined;
      const k = name ? calls.findIndex((c) => c.name === name) : 0;
      const call = k >= 0 ? calls.splice(k, 1)[0] : undefined;
      out.push(
        withImages(
          { role: "tool", content: m.content ?? "", tool_call_id: call?.id ?? name ?? "call", name },
          m.images,
          `messages[${i}].images`,
        ),
      );
    } else if (role === "system" || role === "user")
      out.push(withImages({ role, content: m.content ?? "" }, m.images, `messages[${i}].images`));
    else
      throw invalid(`messages[${i}].role '${role}' is not one of system, user, assistant, tool`, `messages[${i}].role`);
  });
  return out;
}

/** `format`: "json" is any JSON object, an object is a JSON schema, "" is none. */
export function formatSchema(format: string | Record<string, unknown> | null | undefined): unknown {
  if (format === null || format === undefined || format === "") return undefined;
  if (typeof format === "string") {
    if (format === "json") return { type: "object" };
    throw invalid(`invalid format '${format}': use "json" or a JSON schema`, "format");
  }
  return format;
}

/** `think`: false turns thinking off; true or a level leaves it to the model (a level is its effort). */
export function reasoningOf(think: boolean | string | null | undefined): Reasoning {
  if (think === null || think === undefined || think === true) return {};
  if (think === false) return { effort: "none" };
  return { effort: effortOf(think) };
}

/** num_predict: -1 (and -2, "fill the context") mean no limit but the context. */
function maxTokensOf(o: Options | null | undefined, defaults: SamplingDefaults): number | null {
  const n = o?.num_predict;
  if (n === null || n === undefined) return defaults.maxTokens;
  if (n < 0) return null;
  if (n === 0) throw invalid("options.num_predict must be positive, or -1 for no limit", "options.num_predict");
  return n;
}

function samplingOf(o: Options | null | undefined): ChatSpec["sampling"] {
  if (!o) return {};
  return {
    temperature: o.temperature,
    top_k: o.top_k,
    top_p: o.top_p,
    min_p: o.min_p,
    seed: o.seed === null || o.seed === undefined ? undefined : o.seed >>> 0,
    repeat_penalty: o.repeat_penalty,
    repeat_last_n: o.repeat_last_n,
    presence_penalty: o.presence_penalty,
    frequency_penalty: o.frequency_penalty,
  };
}

function toolsOf(body: ChatRequest): ChatTool[] {
  return (body.tools ?? []).map((t, i) => {
    if (t.type && t.type !== "function")
      throw invalid(`tools[${i}].type '${t.type}' is not supported: use function`, `tools[${i}].type`);
    return {
      name: t.function.name,
      description: t.function.description ?? undefined,
      parameters: t.function.parameters ?? undefined,
    };
  });
}

function base(body: ChatRequest | GenerateRequest, defaults: SamplingDefaults): Omit<ChatSpec, "messages" | "tools"> {
  return {
    toolChoice: "auto",
    parallelToolCalls: true,
    jsonSchema: formatSchema(body.format),
    n: 1,
    maxTokens: maxTokensOf(body.options, defaults),
    // num_ctx caps this request's context; the slot's (--ctx-size / --parallel) is the most it can get
    contextLimit: body.options?.num_ctx || undefined,
    sampling: samplingOf(body.options),
    stop: stopList(body.options?.stop),
    logprobs: null,
    reasoning: reasoningOf(body.think),
  };
}

/** /api/chat as the shared chat request. */
export function chatSpec(body: ChatRequest, defaults: SamplingDefaults): ChatSpec {
  return { ...base(body, defaults), messages: templateMessages(body.messages ?? []), tools: toolsOf(body) };
}

/** How /api/generate's prompt reaches the model. */
export type GeneratePrompt =
  | { kind: "chat"; spec: ChatSpec }
  | { kind: "raw"; text: string; spec: ChatSpec }
  | { kind: "infill"; prefix: string; suffix: string; spec: ChatSpec };

/**
 * /api/generate: through the model's template as a user turn (with `system`),
 * unless `raw` or the model has no template; `suffix` is fill-in-the-middle.
 * A custom `template` is refused (llmatic renders the model's own jinja one).
 */
export function generatePrompt(
  body: GenerateRequest,
  defaults: SamplingDefaults,
  hasTemplate: boolean,
): GeneratePrompt {
  if (body.template)
    throw invalid("a custom template is not supported: llmatic renders the model's own chat template", "template");
  const prompt = body.prompt ?? "";
  const spec: ChatSpec = { ...base(body, defaults), messages: [], tools: [] };
  if (body.images?.length && (body.suffix || body.raw || !hasTemplate)) {
    throw invalid(
      "images need the model's chat template: they cannot be used with raw, suffix or a model without one",
      "images",
    );
  }
  if (body.suffix) return { kind: "infill", prefix: prompt, suffix: body.suffix, spec };
  if (body.raw || !hasTemplate)
    return { kind: "raw", text: body.system && !body.raw ? `${body.system}\n\n${prompt}` : prompt, spec };
  spec.messages = [
    ...(body.system ? [{ role: "system", content: body.system }] : []),
    withImages({ role: "user", content: prompt }, body.images, "images"),
  ];
  return { kind: "chat", spec };
}
