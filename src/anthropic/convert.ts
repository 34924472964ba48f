// Pure translations of Anthropic Messages requests into the chat request every
// dialect shares (chat/request.ts): system and content blocks -> template
// messages, tools with input_schema, tool_choice (auto/any/tool/none and
// disable_parallel_tool_use), thinking -> the reasoning controls; image blocks
// become the media marker and the message's images. Unknown block types are
// dropped, not refused; what cannot be served (documents, images in assistant
// turns) is a 400 that says so. The billing line Claude Code puts in the system
// prompt is normalised by chatRequest, as for every dialect.

import { ImageList, imageFromBase64, imageFromUrl, joinParts } from "../chat/images";
import type { ChatSpec, ChatTool, ParamNames, Reasoning, ToolChoice } from "../chat/request";
import type { SamplingDefaults } from "../config";
import type { ImageInput } from "../engine/types";
import { invalid } from "../errors";
import type { TemplateMessage } from "../ffi/chat";
import type { Block, CountTokensRequest, MessagesRequest } from "./schemas";

export const ANTHROPIC_PARAMS: ParamNames = {
  tool: (i) => `tools.${i}`,
  toolName: (i) => `tools.${i}.name`,
  toolSchema: (i) => `tools.${i}.input_schema`,
  toolChoice: "tool_choice",
  schema: "output_format.schema",
};

const MEDIA = new Set(["image", "document", "search_result", "container_upload"]);

function unsupported(type: string, where: string): never {
  const what = type === "image" ? "image input" : `${type} blocks`;
  throw invalid(
    `${what} is not supported here: llmatic reads text, and images of user turns (${where} is of type '${type}')`,
    `${where}.type`,
  );
}

type ImageSource = NonNullable<Block["source"]>;

/** An image block's source: base64 bytes, or a URL (fetched by the server when it may). */
function imageOf(source: ImageSource | null | undefined, where: string): ImageInput {
  if (!source) throw invalid(`${where} is an image block without a source`, `${where}.source`);
  if (source.type === "base64") {
    if (source.media_type && !/^image\//i.test(source.media_type)) {
      throw invalid(`${where} holds '${source.media_type}', not an image`, `${where}.source.media_type`);
    }
    return imageFromBase64(source.data ?? "", `${where}.source.data`);
  }
  if (source.type === "url") return imageFromUrl(source.url ?? "", `${where}.source.url`);
  throw invalid(
    `image source type '${source.type}' (${where}) is not supported: use base64 or url`,
    `${where}.source.type`,
  );
}

/** Text of a string or of the text blocks of a list, images as markers (other blocks dropped; other media refused). */
function textOf(
  content: string | { type: string; text?: string | null; source?: ImageSource | null }[] | null | undefined,
  where: string,
  images: ImageList | null = null,
): string {
  if (content === null || content === undefined) return "";
  if (typeof content === "string") return content;
  const parts: { text: string; image: boolean }[] = [];
  content.forEach((b, j) => {
    if (b.type === "text") parts.push({ text: b.text ?? "", image: false });
    else if (b.type === "image" && images)
      parts.push({ text: images.add(imageOf(b.source, `${where}.${j}`)), image: true });
    else if (MEDIA.has(b.type)) unsupported(b.type, `${where}.${j}`);
  });
  return joinParts(parts, "\n");
}

function argumentsOf(input: unknown): string {
  if (input === undefined || input === null) return "{}";
  return typeof input === "string" ? input : JSON.stringify(input);
}

/** Anthropic's conversation -> template messages. */
export function templateMessages(body: Pick<MessagesRequest, "system" | "messages">): TemplateMessage[] {
  const out: TemplateMessage[] = [];
  const system = textOf(body.system, "system");
  if (system) out.push({ role: "system", content: system });
  body.messages.forEach((m, i) => {
    const where = `messages.${i}.content`;
    if (m.role === "system") {
      // not Anthropic's, but clients send it: it is a system message
      out.push({ role: "system", content: textOf(m.content, where) });
      return;
    }
    if (m.role !== "user" && m.role !== "assistant") return; // unknown roles are dropped
    if (typeof m.content === "string") {
      out.push({ role: m.role, content: m.content });
      return;
    }
    if (m.role === "assistant") {
      const msg: TemplateMessage = { role: "assistant", content: "" };
      const texts: string[] = [];
      m.content.forEach((b: Block, j) => {
        if (b.type === "text") texts.push(b.text ?? "");
        else if (b.type === "thinking") msg.reasoning_content = (msg.reasoning_content ?? "") + (b.thinking ?? "");
        else if (b.type === "tool_use" || b.type === "server_tool_use") {
          msg.tool_calls ??= [];
          msg.tool_calls.push({
            id: b.id || `toolu_${i}_${j}`,
            type: "function",
            function: { name: b.name ?? "", arguments: argumentsOf(b.input) },
          });
        } else if (MEDIA.has(b.type)) unsupported(b.type, `${where}.${j}`);
        // redacted_thinking and unknown blocks are dropped
      });
      msg.content = texts.join("\n");
      out.push(msg);
      return;
    }
    // a user turn: tool results first (each its own tool message), then its text and images
    const texts: { text: string; image: boolean }[] = [];
    const images = new ImageList();
    m.content.forEach((b: Block, j) => {
      if (b.type === "tool_result") {
        if (!b.tool_use_id)
          throw invalid(`${where}.${j} is a tool_result without a tool_use_id`, `${where}.${j}.tool_use_id`);
        const shown = new ImageList();
        const text = textOf(b.content, `${where}.${j}.content`, shown);
        out.push(
          shown.attach({ role: "tool", tool_call_id: b.tool_use_id, content: b.is_error ? `Error: ${text}` : text }),
        );
      } else if (b.type === "text") texts.push({ text: b.text ?? "", image: false });
      else if (b.type === "image") texts.push({ text: images.add(imageOf(b.source, `${where}.${j}`)), image: true });
      else if (MEDIA.has(b.type)) unsupported(b.type, `${where}.${j}`);
    });
    if (texts.length) out.push(images.attach({ role: "user", content: joinParts(texts, "\n") }));
  });
  return out;
}

function toolsOf(body: CountTokensRequest): { tools: ChatTool[]; choice: ToolChoice; parallel: boolean } {
  const tools: ChatTool[] = [];
  (body.tools ?? []).forEach((tool, i) => {
    // custom tools have an input_schema; server tools (web_search_..., code_execution_...) have a type and none
    if (!tool.input_schema && tool.type && tool.type !== "custom") {
      throw invalid(
        `Tool type '${tool.type}' (tools.${i}) is not supported: llmatic runs local models, which can call tools with an input_schema only`,
        `tools.${i}.type`,
      );
    }
    tools.push({
      name: tool.name,
      description: tool.description ?? undefined,
      parameters: tool.input_schema ?? undefined,
    });
  });
  const c = body.tool_choice;
  const parallel = !(c?.disable_parallel_tool_use ?? false);
  if (!c || c.type === "auto") return { tools, choice: "auto", parallel };
  if (c.type === "any") return { tools, choice: "required", parallel };
  if (c.type === "none") return { tools, choice: "none", parallel };
  if (c.type === "tool") {
    if (!c.name) throw invalid("tool_choice of type tool needs a name", "tool_choice.name");
    return { tools, choice: { name: c.name }, parallel };
  }
  throw invalid(`Invalid tool_choice type '${c.type}': use auto, any, tool or none`, "tool_choice.type");
}

function reasoningOf(body: CountTokensRequest): Reasoning {
  const th = body.thinking;
  if (!th || th.type === "adaptive") return {};
  if (th.type === "disabled") return { effort: "none" };
  if (th.type === "enabled") return { budget: th.budget_tokens ?? null };
  throw invalid(`Invalid thinking type '${th.type}': use enabled, disabled or adaptive`, "thinking.type");
}

function schemaOf(body: CountTokensRequest): unknown {
  const f = body.output_format;
  if (!f) return undefined;
  if (f.type !== "json_schema")
    throw invalid(`Invalid output_format type '${f.type}': use json_schema`, "output_format.type");
  if (!f.schema) throw invalid("output_format needs a schema", "output_format.schema");
  return f.schema;
}

/** An Anthropic request as the shared chat request (count_tokens bodies have no sampling fields). */
export function messagesSpec(body: MessagesRequest | CountTokensRequest, defaults: SamplingDefaults): ChatSpec {
  const b = body as MessagesRequest;
  if (body.messages.length === 0) throw invalid("messages: at least one message is required", "messages");
  const { tools, choice, parallel } = toolsOf(body);
  return {
    messages: templateMessages(body),
    tools,
    toolChoice: choice,
    parallelToolCalls: parallel,
    jsonSchema: schemaOf(body),
    n: 1,
    maxTokens: b.max_tokens ?? defaults.maxTokens,
    sampling: { temperature: b.temperature, top_p: b.top_p, top_k: b.top_k },
    stop: (b.stop_sequences ?? []).filter((s) => s.length > 0),
    logprobs: null,
    ignoreEos: b.ignore_eos ?? false,
    speculative: b.speculative ?? undefined,
    reasoning: reasoningOf(body),
    templateKwargs: body.chat_template_kwargs ?? undefined,
  };
}
