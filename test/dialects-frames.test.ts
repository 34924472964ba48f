// The dialects' pure conversions, frame by frame: engine events -> blocks ->
// Responses API events and Anthropic events; requests -> the shared chat
// request; the billing-line normaliser; schema formats and patterns.
import { describe, expect, test } from "bun:test";
import { ANTHROPIC_PARAMS, messagesSpec, templateMessages } from "../src/anthropic/convert";
import { anthropicUsage, MessageEvents, stopReason } from "../src/anthropic/output";
import { BlockStream, blocksOf } from "../src/chat/blocks";
import { chatRequest, effortOf, normalizeBillingHeader } from "../src/chat/request";
import { loadConfig } from "../src/config";
import type { GenerateEvent, ModelInfo } from "../src/engine/types";
import { chatDelta, chatMessage } from "../src/openai/responses";
import { enforceableSchema, translatePattern } from "../src/openai/schema";
import { inputMessages, RESPONSES_PARAMS, responseBase, responseSpec } from "../src/responses/convert";
import { finalOutcome, ResponseEvents, responseUsage } from "../src/responses/output";

type Text = Extract<GenerateEvent, { type: "text" }>;
type End = Extract<GenerateEvent, { type: "end" }>;

const text = (tokens: number, d: Partial<NonNullable<Text["delta"]>>): Text => ({
  type: "text",
  choice: 0,
  text: "",
  tokens,
  delta: { content: "", reasoning: "", toolCalls: [], ...d },
});

/** A reasoning model's answer: two reasoning pieces, text, then a tool call in three pieces. */
const EVENTS: Text[] = [
  text(2, { reasoning: "Let me " }),
  text(3, { reasoning: "think." }),
  text(5, { content: "Calling." }),
  text(7, { toolCalls: [{ index: 0, id: "call_1", name: "get_weather", arguments: '{"city":' }] }),
  text(9, { toolCalls: [{ index: 0, arguments: '"Paris"' }] }),
];
const END: End = {
  type: "end",
  choice: 0,
  reason: "stop",
  completionTokens: 10,
  text: "",
  message: {
    content: "Calling.",
    reasoning: "Let me think.",
    toolCalls: [{ id: "call_1", name: "get_weather", arguments: '{"city":"Paris"}' }],
  },
};

const { config } = loadConfig([], {});
const DEFAULTS = config.sampling;
const INFO = {
  id: "m",
  nCtxSlot: 4096,
  nVocab: 1000,
  parallel: 2,
} as ModelInfo;

function allSteps() {
  const bs = new BlockStream();
  const steps = EVENTS.flatMap((e) => bs.push(e));
  steps.push(...bs.finish(END));
  return { bs, steps };
}

describe("blocks", () => {
  test("each block opens, grows and closes before the next; the final parse completes the open one", () => {
    const { bs, steps } = allSteps();
    expect(steps.map((s) => `${s.type}:${s.block.kind}${s.type === "delta" ? `:${s.delta}` : ""}`)).toEqual([
      "open:reasoning",
      "delta:reasoning:Let me ",
      "delta:reasoning:think.",
      "close:reasoning",
      "open:text",
      "delta:text:Calling.",
      "close:text",
      "open:tool",
      'delta:tool:{"city":',
      'delta:tool:"Paris"',
      // the streamed arguments lacked the closing brace: the final parse adds it
      "delta:tool:}",
      "close:tool",
    ]);
    expect(bs.blocks.map((b) => b.index)).toEqual([0, 1, 2]);
    expect(bs.blocks[2]).toMatchObject({ id: "call_1", name: "get_weather", text: '{"city":"Paris"}' });
    // tokens of the events that carried reasoning
    expect(bs.reasoningTokens).toBe(3);
    expect(bs.hasToolCalls).toBe(true);
  });

  test("a finished answer's blocks come from its final message", () => {
    expect(blocksOf(END).map((b) => [b.kind, b.text])).toEqual([
      ["reasoning", "Let me think."],
      ["text", "Calling."],
      ["tool", '{"city":"Paris"}'],
    ]);
    expect(blocksOf({ ...END, message: undefined, text: "raw" }).map((b) => b.text)).toEqual(["raw"]);
  });
});

describe("Responses API events", () => {
  test("OpenAI's sequence, with sequence numbers, output and content indices", () => {
    const base = responseBase({ model: "m", input: "hi" }, "m");
    const ev = new ResponseEvents(base);
    const { steps } = allSteps();
    const events = [...ev.start(), ...steps.flatMap((s) => ev.step(s))];
    events.push(ev.end(finalOutcome("stop", ev.output, responseUsage(5, 1, 10, 3))));
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    expect(events.map((e) => e.type)).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
      "response.reasoning_text.delta",
      "response.reasoning_text.delta",
      "response.reasoning_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.output_item.added",
      "response.content_part.added",
      "response.output_text.delta",
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.output_item.added",
      "response.function_call_arguments.delta",
      "response.function_call_arguments.delta",
      "response.function_call_arguments.delta",
      "response.function_call_arguments.done",
      "response.output_item.done",
      "response.completed",
    ]);
    const added = events.filter((e) => e.type === "response.output_item.added");
    expect(added.map((e) => e.output_index)).toEqual([0, 1, 2]);
    expect(added[2]?.item).toMatchObject({
      type: "function_call",
      call_id: "call_1",
      name: "get_weather",
      arguments: "",
    });
    const done = events.at(-1)?.response as { status: string; output: { type: string; id: string }[]; usage: unknown };
    expect(done.status).toBe("completed");
    expect(done.output.map((o) => o.type)).toEqual(["reasoning", "message", "function_call"]);
    // the items keep their ids from added to done to the response
    expect(done.output.map((o) => o.id)).toEqual(added.map((e) => (e.item as { id: string }).id));
    expect(done.usage).toEqual({
      input_tokens: 5,
      input_tokens_details: { cached_tokens: 1 },
      output_tokens: 10,
      output_tokens_details: { reasoning_tokens: 3 },
      total_tokens: 15,
    });
    const args = events.find((e) => e.type === "response.function_call_arguments.done");
    expect(args).toMatchObject({ name: "get_weather", arguments: '{"city":"Paris"}' });
  });

  test("max_output_tokens reached: incomplete, with the reason and the cut item marked", () => {
    const o = finalOutcome(
      "length",
      [{ id: "msg_1", type: "message", role: "assistant", status: "completed", content: [] }],
      responseUsage(1, 0, 2, 0),
    );
    expect(o.status).toBe("incomplete");
    expect(o.incomplete_details).toEqual({ reason: "max_output_tokens" });
    expect(o.output[0]?.status).toBe("incomplete");
    const ev = new ResponseEvents(responseBase({ model: "m", input: "x" }, "m"));
    expect(ev.end(o).type).toBe("response.incomplete");
  });

  test("a failure mid-stream is an error event, then response.failed", () => {
    const ev = new ResponseEvents(responseBase({ model: "m", input: "x" }, "m"));
    ev.start();
    const out = ev.error("server_error", "engine crashed");
    expect(out.map((e) => e.type)).toEqual(["error", "response.failed"]);
    expect((out[1] as unknown as { response: { error: unknown } }).response.error).toEqual({
      code: "server_error",
      message: "engine crashed",
    });
  });
});

describe("Responses API requests", () => {
  test("items: messages, reasoning, function calls joined to their turn, their outputs as tool messages", () => {
    const m = inputMessages([
      { role: "developer", content: "Be brief." },
      {
        type: "message",
        role: "user",
        content: [
          { type: "input_text", text: "Weather in " },
          { type: "input_text", text: "Paris?" },
        ],
      },
      { type: "reasoning", id: "rs_1", summary: [], content: [{ type: "reasoning_text", text: "I should call it." }] },
      { type: "function_call", call_id: "call_9", name: "get_weather", arguments: '{"city":"Paris"}' },
      { type: "function_call_output", call_id: "call_9", output: "sunny" },
      { type: "message", role: "assistant", content: [{ type: "output_text", text: "Sunny." }] },
    ]);
    expect(m).toEqual([
      { role: "system", content: "Be brief." },
      { role: "user", content: "Weather in Paris?" },
      {
        role: "assistant",
        content: "",
        reasoning_content: "I should call it.",
        tool_calls: [
          { id: "call_9", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } },
        ],
      },
      { role: "tool", tool_call_id: "call_9", content: "sunny" },
      { role: "assistant", content: "Sunny." },
    ]);
  });

  test("hosted tools, images and unknown items are 400s that name them", () => {
    const bad = (body: object) => {
      try {
        responseSpec({ model: "m", input: "x", ...body }, [], DEFAULTS);
      } catch (e) {
        return (e as Error).message;
      }
      return "accepted";
    };
    expect(bad({ tools: [{ type: "web_search" }] })).toContain("'web_search'");
    expect(bad({ tools: [{ type: "code_interpreter" }] })).toContain("'code_interpreter'");
    expect(bad({ input: [{ role: "user", content: [{ type: "input_image" }] }] })).toContain("has no image_url");
    expect(bad({ input: [{ role: "user", content: [{ type: "input_image", file_id: "file-1" }] }] })).toContain(
      "names an uploaded file",
    );
    expect(bad({ input: [{ role: "user", content: [{ type: "input_file" }] }] })).toContain("file input");
    expect(bad({ input: [{ type: "computer_call" }] })).toContain("'computer_call'");
    expect(bad({ tool_choice: { type: "web_search_preview" } })).toContain("'web_search_preview'");
    expect(bad({ text: { format: { type: "json_schema", name: "x" } } })).toContain("needs a schema");
  });

  test("instructions, text.format, a named tool, effort and history become the chat request", () => {
    const { spec } = responseSpec(
      {
        model: "m",
        input: "next",
        instructions: "Answer in JSON.",
        tools: [{ type: "function", name: "f", parameters: { type: "object" } }],
        tool_choice: { type: "function", name: "f" },
        max_output_tokens: 9,
        reasoning: { effort: "minimal" },
        temperature: 0.5,
      },
      [
        { role: "user", content: "first" },
        { role: "assistant", content: "ok" },
      ],
      DEFAULTS,
    );
    expect(spec.messages.map((m) => m.role)).toEqual(["system", "user", "assistant", "user"]);
    expect(spec.toolChoice).toEqual({ name: "f" });
    expect(spec.maxTokens).toBe(9);
    expect(spec.reasoning?.effort).toBe("low");
    const req = chatRequest(spec, DEFAULTS, INFO, RESPONSES_PARAMS);
    expect(req.prompt.type === "chat" && req.prompt.chat.toolChoice).toBe("required");
    expect(req.sampling.temperature).toBe(0.5);
    const json = responseSpec({ model: "m", input: "x", text: { format: { type: "json_object" } } }, [], DEFAULTS);
    expect(json.spec.jsonSchema).toEqual({ type: "object" });
  });
});

describe("Anthropic events", () => {
  test("message_start, ping, blocks in order with a signature before a thinking block closes, message_delta, message_stop", () => {
    const ev = new MessageEvents({ id: "msg_1", model: "m" });
    const { steps } = allSteps();
    const events = [
      ...ev.start(anthropicUsage(10, 4, 0)),
      ...steps.flatMap((s) => ev.step(s)),
      ...ev.end(stopReason("stop", true, undefined, []), anthropicUsage(10, 4, 7)),
    ];
    const names = events.map((e) =>
      e.type === "content_block_delta"
        ? `delta:${(e.delta as { type: string }).type}`
        : `${e.type}${"index" in e ? `:${e.index}` : ""}`,
    );
    expect(names).toEqual([
      "message_start",
      "ping",
      "content_block_start:0",
      "delta:thinking_delta",
      "delta:thinking_delta",
      "delta:signature_delta",
      "content_block_stop:0",
      "content_block_start:1",
      "delta:text_delta",
      "content_block_stop:1",
      "content_block_start:2",
      "delta:input_json_delta",
      "delta:input_json_delta",
      "delta:input_json_delta",
      "content_block_stop:2",
      "message_delta",
      "message_stop",
    ]);
    expect(events[10]).toEqual({
      type: "content_block_start",
      index: 2,
      content_block: { type: "tool_use", id: "call_1", name: "get_weather", input: {} },
    });
    expect(events.at(-2)).toEqual({
      type: "message_delta",
      delta: { stop_reason: "tool_use", stop_sequence: null },
      usage: { input_tokens: 6, output_tokens: 7, cache_creation_input_tokens: 0, cache_read_input_tokens: 4 },
    });
    const start = events[0] as unknown as { message: { usage: unknown; content: unknown[] } };
    expect(start.message.content).toEqual([]);
  });

  test("stop reasons: tool_use, max_tokens, stop_sequence only for the client's own, else end_turn", () => {
    expect(stopReason("stop", true, undefined, []).stop_reason).toBe("tool_use");
    expect(stopReason("length", true, undefined, []).stop_reason).toBe("max_tokens");
    expect(stopReason("stop", false, "END", ["END"])).toEqual({ stop_reason: "stop_sequence", stop_sequence: "END" });
    expect(stopReason("stop", false, "<|im_end|>", ["END"]).stop_reason).toBe("end_turn");
  });
});

describe("Anthropic requests", () => {
  test("system blocks, tool_use / tool_result turns, thinking history; unknown blocks and roles dropped", () => {
    const m = templateMessages({
      system: [
        { type: "text", text: "You are helpful." },
        { type: "text", text: "Be brief." },
      ],
      messages: [
        { role: "user", content: [{ type: "text", text: "Weather?" }, { type: "mystery_block" }] },
        {
          role: "assistant",
          content: [
            { type: "thinking", thinking: "Call it.", signature: "" },
            { type: "text", text: "Calling." },
            { type: "tool_use", id: "toolu_1", name: "get_weather", input: { city: "Paris" } },
          ],
        },
        {
          role: "user",
          content: [
            { type: "tool_result", tool_use_id: "toolu_1", content: [{ type: "text", text: "sunny" }] },
            { type: "text", text: "Thanks" },
          ],
        },
        { role: "narrator", content: "dropped" },
      ],
    });
    expect(m).toEqual([
      { role: "system", content: "You are helpful.\nBe brief." },
      { role: "user", content: "Weather?" },
      {
        role: "assistant",
        content: "Calling.",
        reasoning_content: "Call it.",
        tool_calls: [
          { id: "toolu_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } },
        ],
      },
      { role: "tool", tool_call_id: "toolu_1", content: "sunny" },
      { role: "user", content: "Thanks" },
    ]);
  });

  test("tool_choice any / tool / none, disable_parallel_tool_use, thinking budget and disabled", () => {
    const tools = [{ name: "f", input_schema: { type: "object" } }];
    const base = { model: "m", max_tokens: 5, messages: [{ role: "user", content: "x" }], tools };
    const any = messagesSpec({ ...base, tool_choice: { type: "any", disable_parallel_tool_use: true } }, DEFAULTS);
    expect([any.toolChoice, any.parallelToolCalls]).toEqual(["required", false]);
    expect(messagesSpec({ ...base, tool_choice: { type: "tool", name: "f" } }, DEFAULTS).toolChoice).toEqual({
      name: "f",
    });
    expect(messagesSpec({ ...base, tool_choice: { type: "none" } }, DEFAULTS).toolChoice).toBe("none");
    const th = messagesSpec({ ...base, thinking: { type: "enabled", budget_tokens: 64 } }, DEFAULTS);
    expect(chatRequest(th, DEFAULTS, INFO, ANTHROPIC_PARAMS).reasoningBudget).toBe(64);
    const off = messagesSpec({ ...base, thinking: { type: "disabled" } }, DEFAULTS);
    const req = chatRequest(off, DEFAULTS, INFO, ANTHROPIC_PARAMS);
    expect(req.prompt.type === "chat" && req.prompt.chat.enableThinking).toBe(false);
    expect(() =>
      messagesSpec({ ...base, tools: [{ name: "web_search", type: "web_search_20250305" }] }, DEFAULTS),
    ).toThrow("'web_search_20250305'");
  });

  test("Claude Code's billing line: the changing cch= value becomes a fixed one, nothing else changes", () => {
    const a = "x-anthropic-billing-header: cc_version=2.1.101.e51; cc_entrypoint=cli; cch=a5145;You are Claude Code.";
    const b = a.replace("a5145", "0b9f2");
    expect(normalizeBillingHeader(a)).toBe(normalizeBillingHeader(b));
    expect(normalizeBillingHeader(a)).toBe(
      "x-anthropic-billing-header: cc_version=2.1.101.e51; cc_entrypoint=cli; cch=00000;You are Claude Code.",
    );
    expect(normalizeBillingHeader("You are helpful. cch=123;")).toBe("You are helpful. cch=123;");
    // it reaches the template through the shared request, in any dialect
    const spec = messagesSpec(
      { model: "m", max_tokens: 5, system: [{ type: "text", text: a }], messages: [{ role: "user", content: "x" }] },
      DEFAULTS,
    );
    const req = chatRequest(spec, DEFAULTS, INFO, ANTHROPIC_PARAMS);
    expect(req.prompt.type === "chat" && req.prompt.chat.messages[0]?.content).toContain("cch=00000;");
  });
});

describe("reasoning", () => {
  test("efforts map to the nearest level, never an error", () => {
    expect(["none", "minimal", "low", "medium", "high", "xhigh", "max", "bogus", undefined].map(effortOf)).toEqual([
      "none",
      "low",
      "low",
      "medium",
      "high",
      "high",
      "high",
      "medium",
      undefined,
    ]);
  });

  test("chat completions carry reasoning under both names by default, or the one configured", () => {
    const e = text(3, { reasoning: "hmm" });
    expect(chatDelta(e, "none")).toEqual({ reasoning_content: "hmm", reasoning: "hmm" });
    expect(chatDelta(e, "none", "reasoning")).toEqual({ reasoning: "hmm" });
    expect(chatMessage(END, "tools", "reasoning_content").reasoning_content).toBe("Let me think.");
    expect(chatMessage(END, "tools", "reasoning_content").reasoning).toBeUndefined();
    expect(chatMessage(END, "tools")).toMatchObject({ reasoning: "Let me think.", reasoning_content: "Let me think." });
  });

  test("effort none turns thinking off in the template; the budget comes from the request or --reasoning-budget", () => {
    const spec = (reasoning: object) => ({
      messages: [{ role: "user", content: "x" }],
      tools: [],
      toolChoice: "auto" as const,
      parallelToolCalls: true,
      n: 1,
      maxTokens: 5,
      sampling: {},
      stop: [],
      logprobs: null,
      reasoning,
    });
    const off = chatRequest(spec({ effort: "none" }), DEFAULTS, INFO);
    expect(off.prompt.type === "chat" && off.prompt.chat.enableThinking).toBe(false);
    expect(off.reasoningBudget).toBeNull();
    expect(chatRequest(spec({ budget: 12 }), DEFAULTS, INFO).reasoningBudget).toBe(12);
    expect(chatRequest(spec({}), { ...DEFAULTS, reasoningBudget: 30 }, INFO).reasoningBudget).toBe(30);
    expect(chatRequest(spec({}), DEFAULTS, INFO).reasoningBudget).toBeNull();
    const high = chatRequest(spec({ effort: "high" }), DEFAULTS, INFO);
    expect(high.prompt.type === "chat" && high.prompt.chat.templateKwargs).toEqual({ reasoning_effort: "high" });
  });
});

describe("schemas", () => {
  test("formats the converter does not know become bounded patterns; \\d \\w \\s are spelled out", () => {
    expect(enforceableSchema({ type: "string", format: "uri", maxLength: 20 })).toEqual({
      type: "string",
      maxLength: 20,
      pattern: "^[a-zA-Z][a-zA-Z0-9+.-]{0,5}:[!#-[^-~]{1,13}$",
    });
    expect(enforceableSchema({ type: "string", format: "date" })).toEqual({ type: "string", format: "date" });
    expect(translatePattern("^\\d{3}-\\w[\\d.]\\.$")).toBe("^[0-9]{3}-[a-zA-Z0-9_][0-9.]\\.$");
    // enum values are data: left alone
    expect(enforceableSchema({ enum: [{ format: "uri" }] })).toEqual({ enum: [{ format: "uri" }] });
  });
});
