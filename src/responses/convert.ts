// Pure translations of Responses API requests into the chat request every
// dialect shares (chat/request.ts): input items -> template messages, function
// tools, tool_choice, text.format -> the output schema, reasoning. No I/O here:
// the stored conversation a previous_response_id names is handed in.

import { ImageList, imageFromUrl } from "../chat/images";
import { type ChatSpec, type ChatTool, effortOf, type ParamNames, type ToolChoice } from "../chat/request";
import type { SamplingDefaults } from "../config";
import { invalid } from "../errors";
import type { TemplateMessage } from "../ffi/chat";
import { newId, nowSeconds } from "../openai/responses";
import type { ResponseBase } from "./output";
import type { InputItem, ResponseCreateRequest } from "./schemas";

export const RESPONSES_PARAMS: ParamNames = {
  tool: (i) => `tools[${i}]`,
  toolName: (i) => `tools[${i}].name`,
  toolSchema: (i) => `tools[${i}].parameters`,
  toolChoice: "tool_choice",
  schema: "text.format.schema",
};

const MEDIA_PARTS: Record<string, string> = {
  input_file: "file input",
  input_audio: "audio input",
};

const TEXT_PARTS = new Set(["input_text", "output_text", "text", "summary_text", "reasoning_text"]);

function partsText(
  content: InputItem["content"] | InputItem["output"],
  param: string,
  images: ImageList | null = null,
): string {
  if (content === null || content === undefined) return "";
  if (typeof content === "string") return content;
  const texts: string[] = [];
  content.forEach((p, j) => {
    if (TEXT_PARTS.has(p.type)) texts.push(p.text ?? "");
    else if (p.type === "refusal") texts.push(p.refusal ?? p.text ?? "");
    else if ((p.type === "input_image" || p.type === "image_url") && images) {
      if (p.file_id && !p.image_url) {
        throw invalid(
          `${param}[${j}] names an uploaded file: send the image itself as image_url (a data: URI)`,
          `${param}[${j}].file_id`,
        );
      }
      if (!p.image_url) throw invalid(`${param}[${j}] has no image_url`, `${param}[${j}].image_url`);
      texts.push(images.add(imageFromUrl(p.image_url, `${param}[${j}].image_url`)));
    } else {
      const what = MEDIA_PARTS[p.type] ?? (p.type === "input_image" ? "image input" : undefined);
      throw invalid(
        what
          ? `${what} is not supported here: llmatic reads text and images of user messages (${param}[${j}] is of type '${p.type}')`
          : `Invalid content part type '${p.type}' in ${param}[${j}]`,
        `${param}[${j}].type`,
      );
    }
  });
  return texts.join("");
}

/** Input items -> template messages (function calls join the assistant turn they belong to). */
export function inputMessages(input: ResponseCreateRequest["input"]): TemplateMessage[] {
  if (input === null || input === undefined) return [];
  if (typeof input === "string") return [{ role: "user", content: input }];
  const out: TemplateMessage[] = [];
  /** the assistant turn being built: reasoning, then text, then calls */
  let turn: TemplateMessage | null = null;
  const assistant = (): TemplateMessage => {
    if (!turn) {
      turn = { role: "assistant", content: "" };
      out.push(turn);
    }
    return turn;
  };
  input.forEach((item, i) => {
    const param = `input[${i}]`;
    const type = item.type ?? "message";
    switch (type) {
      case "message": {
        const role = item.role ?? "user";
        const images = new ImageList();
        const content = partsText(item.content, `${param}.content`, role === "assistant" ? null : images);
        if (role === "assistant") {
          const t = assistant();
          // text after calls starts a new turn
          if (t.tool_calls?.length) {
            turn = null;
            assistant().content = content;
          } else t.content = (t.content ? `${t.content}` : "") + content;
          return;
        }
        turn = null;
        if (role === "user" || role === "system") out.push(images.attach({ role, content }));
        else if (role === "developer") out.push(images.attach({ role: "system", content }));
        else
          throw invalid(
            `Invalid role '${role}' in ${param}: use user, assistant, system or developer`,
            `${param}.role`,
          );
        return;
      }
      case "function_call": {
        if (!item.name) throw invalid(`${param} is a function_call without a name`, `${param}.name`);
        const t = assistant();
        t.tool_calls ??= [];
        t.tool_calls.push({
          id: item.call_id || item.id || `call_${i}`,
          type: "function",
          function: { name: item.name, arguments: item.arguments ?? "{}" },
        });
        return;
      }
      case "function_call_output": {
        if (!item.call_id) throw invalid(`${param} is a function_call_output without a call_id`, `${param}.call_id`);
        turn = null;
        const images = new ImageList();
        const content = partsText(item.output, `${param}.output`, images);
        out.push(images.attach({ role: "tool", tool_call_id: item.call_id, content }));
        return;
      }
      case "reasoning": {
        const text =
          partsText(item.content ?? null, `${param}.content`) || partsText(item.summary ?? null, `${param}.summary`);
        // reasoning opens an assistant turn (it comes before that turn's message or calls)
        if (turn && (turn.content || turn.tool_calls?.length)) turn = null;
        const t = assistant();
        if (text) t.reasoning_content = (t.reasoning_content ?? "") + text;
        return;
      }
      case "item_reference":
        throw invalid(
          `${param} is an item_reference: refer to earlier output with previous_response_id instead`,
          `${param}.type`,
        );
      default:
        throw invalid(`Input item type '${type}' (${param}) is not supported by llmatic`, `${param}.type`);
    }
  });
  return out;
}

function toolsOf(body: ResponseCreateRequest): { tools: ChatTool[]; choice: ToolChoice } {
  const tools: ChatTool[] = [];
  (body.tools ?? []).forEach((tool, i) => {
    if (tool.type !== "function") {
      throw invalid(
        `Tool type '${tool.type}' (tools[${i}]) is not supported: llmatic runs local models, which can call function tools only`,
        `tools[${i}].type`,
      );
    }
    if (!tool.name) throw invalid(`tools[${i}] is a function tool without a name`, `tools[${i}].name`);
    tools.push({
      name: tool.name,
      description: tool.description ?? undefined,
      parameters: tool.parameters ?? undefined,
    });
  });
  const c = body.tool_choice ?? "auto";
  if (typeof c === "string") {
    if (c !== "auto" && c !== "none" && c !== "required") {
      throw invalid(`Invalid tool_choice '${c}': use auto, none, required or a function`, "tool_choice");
    }
    return { tools, choice: c };
  }
  if (c.type === "function") {
    if (!c.name) throw invalid("tool_choice of type function needs a name", "tool_choice.name");
    return { tools, choice: { name: c.name } };
  }
  if (c.type === "allowed_tools") {
    const allowed = new Set((c.tools ?? []).map((t) => t.name ?? ""));
    const mode = c.mode ?? "auto";
    if (mode !== "auto" && mode !== "required") throw invalid(`Invalid tool_choice.mode '${mode}'`, "tool_choice.mode");
    const kept = tools.filter((t) => allowed.has(t.name));
    if (kept.length === 0) throw invalid("tool_choice.tools names none of the tools", "tool_choice.tools");
    return { tools: kept, choice: mode };
  }
  throw invalid(
    `tool_choice of type '${c.type}' is not supported: llmatic runs function tools only`,
    "tool_choice.type",
  );
}

function schemaOf(body: ResponseCreateRequest): unknown {
  const f = body.text?.format;
  if (!f || f.type === "text") return undefined;
  if (f.type === "json_object") return { type: "object" };
  if (f.type === "json_schema") {
    if (!f.schema) throw invalid("text.format of type json_schema needs a schema", "text.format.schema");
    return Object.keys(f.schema).length ? f.schema : { type: "object" };
  }
  throw invalid(`Invalid text.format type '${f.type}': use text, json_object or json_schema`, "text.format.type");
}

/**
 * A Responses request as the shared chat request. `history` is the
 * conversation of the response previous_response_id names (its input and
 * output, without its instructions: OpenAI does not carry those over).
 */
export function responseSpec(
  body: ResponseCreateRequest,
  history: TemplateMessage[],
  defaults: SamplingDefaults,
): { spec: ChatSpec; input: TemplateMessage[] } {
  const input = inputMessages(body.input);
  const messages = [...history, ...input];
  if (body.instructions) messages.unshift({ role: "system", content: body.instructions });
  if (!messages.some((m) => m.role !== "system")) throw invalid("input is required", "input");
  const { tools, choice } = toolsOf(body);
  const spec: ChatSpec = {
    messages,
    tools,
    toolChoice: choice,
    parallelToolCalls: body.parallel_tool_calls ?? true,
    jsonSchema: schemaOf(body),
    n: 1,
    maxTokens: body.max_output_tokens ?? defaults.maxTokens,
    sampling: { temperature: body.temperature, top_p: body.top_p, top_k: body.top_k, seed: body.seed },
    stop: [],
    logprobs: null,
    ignoreEos: body.ignore_eos ?? false,
    speculative: body.speculative ?? undefined,
    reasoning: { effort: effortOf(body.reasoning?.effort), budget: body.reasoning_budget ?? null },
    templateKwargs: body.chat_template_kwargs ?? undefined,
  };
  return { spec, input };
}

/** What the response object echoes of its request. */
export function responseBase(body: ResponseCreateRequest, model: string): ResponseBase {
  const f = body.text?.format;
  return {
    id: newId("resp").replace("-", "_"),
    created_at: nowSeconds(),
    model,
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    previous_response_id: body.previous_response_id ?? null,
    reasoning: { effort: body.reasoning?.effort ?? null, summary: body.reasoning?.summary ?? null },
    store: body.store ?? true,
    background: body.background ?? false,
    temperature: body.temperature ?? null,
    top_p: body.top_p ?? null,
    text: { format: f ? { ...f } : { type: "text" } },
    tool_choice: body.tool_choice ?? "auto",
    tools: (body.tools ?? []).map((t) => ({ ...t, strict: t.strict ?? true })),
    truncation: "disabled",
    user: body.user ?? null,
    metadata: body.metadata ?? {},
  };
}
