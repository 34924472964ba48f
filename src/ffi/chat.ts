// ChatTemplates and ChatParser: llama.cpp's jinja chat templates and tool-call
// parsing (C++ common library) behind the shim. JSON is only the wire format
// across the FFI boundary; callers get typed values.
import type { Pointer } from "bun:ffi";
import type { ImageInput } from "../engine/types";
import { DomainError } from "../errors";
import { ErrorOut, lib, NativeObject, takeString } from "./library";
import type { Model } from "./model";
import type { GrammarTrigger } from "./sampler";

/** A chat message in the OpenAI shape the common library understands. */
export interface TemplateMessage {
  role: string;
  content?: string | { type: string; text?: string }[] | null;
  name?: string;
  tool_calls?: { id?: string; type: "function"; function: { name: string; arguments: string } }[];
  tool_call_id?: string;
  reasoning_content?: string;
  /** the images its text's media markers stand for (never sent to the template) */
  images?: ImageInput[];
}

export interface TemplateTool {
  type: "function";
  function: { name: string; description?: string; parameters?: unknown };
}

export interface TemplateInput {
  messages: TemplateMessage[];
  tools?: TemplateTool[];
  /** "auto" | "none" | "required" */
  toolChoice?: string;
  parallelToolCalls?: boolean;
  /** JSON schema the output must follow */
  jsonSchema?: unknown;
  grammar?: string;
  addGenerationPrompt?: boolean;
  enableThinking?: boolean;
  templateKwargs?: Record<string, unknown>;
}

export interface TemplateOutput {
  prompt: string;
  format: number;
  grammar: string;
  grammarLazy: boolean;
  grammarTriggers: GrammarTrigger[];
  preservedTokens: string[];
  additionalStops: string[];
  generationPrompt: string;
  parser: string;
  /** the template has a think block (reasoning models) */
  supportsThinking: boolean;
  thinkingStartTag: string;
  thinkingEndTags: string[];
}

function callJson<T>(p: Pointer | null, what: string): T {
  const text = takeString(p);
  if (text === null) throw new DomainError("internal", `${what}: no result from native code`);
  const v = JSON.parse(text) as T & { error?: string };
  if (typeof v.error === "string") throw new DomainError("invalid_request", `${what}: ${v.error}`);
  return v;
}

export class ChatTemplates extends NativeObject {
  private constructor(h: Pointer) {
    super(h);
  }

  /** The model's own template, or `override` (jinja source) when given. */
  static create(model: Model, override?: string): ChatTemplates {
    const err = new ErrorOut();
    const h = lib().llmatic_chat_new(model.handle, Buffer.from(`${override ?? ""}\0`), err.ptr) as Pointer | null;
    if (!h) throw new DomainError("invalid_model", `chat template: ${err.take("could not be loaded")}`);
    return new ChatTemplates(h);
  }

  protected free(h: Pointer): void {
    lib().llmatic_chat_free(h);
  }

  apply(input: TemplateInput): TemplateOutput {
    const req = {
      messages: input.messages,
      tools: input.tools,
      tool_choice: input.toolChoice ?? "auto",
      parallel_tool_calls: input.parallelToolCalls ?? false,
      json_schema: input.jsonSchema ?? null,
      grammar: input.grammar ?? "",
      add_generation_prompt: input.addGenerationPrompt ?? true,
      enable_thinking: input.enableThinking ?? true,
      // the think block is parsed out as reasoning unless thinking is off (then what the model writes is the answer)
      reasoning_format: input.enableThinking === false ? "none" : "deepseek",
      chat_template_kwargs: input.templateKwargs ?? {},
    };
    const out = callJson<{
      prompt: string;
      format: number;
      grammar: string;
      grammar_lazy: boolean;
      grammar_triggers: GrammarTrigger[];
      preserved_tokens: string[];
      additional_stops: string[];
      generation_prompt: string;
      parser: string;
      supports_thinking: boolean;
      thinking_start_tag: string;
      thinking_end_tags: string[];
    }>(
      lib().llmatic_chat_apply(this.handle, Buffer.from(`${JSON.stringify(req)}\0`)) as Pointer | null,
      "chat template",
    );
    return {
      prompt: out.prompt,
      format: out.format,
      grammar: out.grammar,
      grammarLazy: out.grammar_lazy,
      grammarTriggers: out.grammar_triggers,
      preservedTokens: out.preserved_tokens,
      additionalStops: out.additional_stops,
      generationPrompt: out.generation_prompt,
      parser: out.parser,
      supportsThinking: out.supports_thinking,
      thinkingStartTag: out.thinking_start_tag,
      thinkingEndTags: out.thinking_end_tags,
    };
  }
}

export interface ParsedToolCall {
  id: string;
  name: string;
  arguments: string;
}

export interface ParsedMessage {
  content: string;
  reasoningContent: string;
  toolCalls: ParsedToolCall[];
}

export class ChatParser extends NativeObject {
  private constructor(h: Pointer) {
    super(h);
  }

  /** reasoning: "deepseek" moves the think block into reasoning_content; "none" leaves it in the content */
  static create(
    t: Pick<TemplateOutput, "format" | "parser" | "generationPrompt">,
    parseToolCalls: boolean,
    reasoning: "deepseek" | "none" = "none",
  ): ChatParser {
    const cfg = JSON.stringify({
      format: t.format,
      parser: t.parser,
      generation_prompt: t.generationPrompt,
      parse_tool_calls: parseToolCalls,
      reasoning_format: reasoning,
    });
    const err = new ErrorOut();
    const h = lib().llmatic_chat_parser_new(Buffer.from(`${cfg}\0`), err.ptr) as Pointer | null;
    if (!h) throw new DomainError("internal", `chat parser: ${err.take("could not be created")}`);
    return new ChatParser(h);
  }

  /** Takes over a parser another thread of this process created and released. */
  static adopt(handle: number): ChatParser {
    return new ChatParser(handle as unknown as Pointer);
  }

  protected free(h: Pointer): void {
    lib().llmatic_chat_parser_free(h);
  }

  parse(text: string, partial: boolean): ParsedMessage {
    const out = callJson<{
      content: string;
      reasoning_content: string;
      tool_calls: ParsedToolCall[];
    }>(
      lib().llmatic_chat_parser_parse(this.handle, Buffer.from(`${text}\0`), partial) as Pointer | null,
      "chat parser",
    );
    return { content: out.content, reasoningContent: out.reasoning_content, toolCalls: out.tool_calls };
  }
}

/** JSON schema -> GBNF grammar (llama.cpp's converter); throws invalid_request naming the problem. */
export function jsonSchemaToGrammar(schema: unknown): string {
  const out = callJson<{ grammar: string }>(
    lib().llmatic_json_schema_to_grammar(Buffer.from(`${JSON.stringify(schema)}\0`)) as Pointer | null,
    "json schema",
  );
  return out.grammar;
}
