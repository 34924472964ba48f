// The three dialects with their official clients against a real server: the
// Responses API (openai: responses.create / stream / parse / retrieve / delete /
// inputItems / inputTokens, and @openai/agents running an agent with a
// function tool), Anthropic's Messages API (@anthropic-ai/sdk: messages.create,
// messages.stream with text and tool use, countTokens), and reasoning models
// (generated: a DeepSeek-R1-style template that opens the think block, and
// Qwen3's hybrid one with enable_thinking). Random weights never close a think
// block or a JSON string by themselves: budgets and schema bounds end them.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Anthropic from "@anthropic-ai/sdk";
import { Agent, run, setDefaultOpenAIClient, setOpenAIAPI, setTracingDisabled, tool } from "@openai/agents";
import type OpenAI from "openai";
import { zodTextFormat } from "openai/helpers/zod";
import { z } from "zod";
import { ensureReasoningModel, TINY_MODEL_PATH } from "../src/models/synthetic";
import { clientFor, type ServerProcess, startServerProcess } from "./server-process";

const TINY = "llmatic-tiny";
const R1 = "llmatic-tiny-r1";
const QWEN3 = "llmatic-tiny-qwen3";
const KEY = "dialects-key";
const DATA = mkdtempSync(join(tmpdir(), "llmatic-dialects-"));
const ARGS = ["--parallel", "2", "--ctx-size", "8192", "--api-key", KEY, "--data-dir", DATA];

// tool calls run a few hundred tokens and a restart takes seconds: more than the default 5 s on a busy machine
setDefaultTimeout(60_000);

let server: ServerProcess;
let openai: OpenAI;
let anthropic: Anthropic;
let models: string[];

async function start(): Promise<void> {
  server = await startServerProcess([...models.flatMap((m) => ["-m", m]), ...ARGS]);
  openai = clientFor(server, KEY);
  anthropic = new Anthropic({ baseURL: server.url, apiKey: KEY, maxRetries: 0 });
}

beforeAll(async () => {
  models = [TINY_MODEL_PATH, await ensureReasoningModel("r1"), await ensureReasoningModel("qwen3")];
  await start();
});

afterAll(async () => {
  await server?.stop();
});

const post = (path: string, body: unknown, headers: Record<string, string> = { authorization: `Bearer ${KEY}` }) =>
  fetch(`${server.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });

/** A bounded tool: random weights fill the string up to its maxLength, then the grammar closes the call. */
const WEATHER_SCHEMA = {
  type: "object" as const,
  properties: { city: { type: "string", maxLength: 8 } },
  required: ["city"],
  additionalProperties: false,
};

describe("Responses API with the openai client", () => {
  test("create: a stored response with output items, usage, and output_text", async () => {
    // seed: llmatic's (and llama.cpp's) extension of the Responses API
    const body = {
      model: TINY,
      input: "Say hello.",
      max_output_tokens: 6,
      seed: 3,
    } as OpenAI.Responses.ResponseCreateParamsNonStreaming;
    const r = await openai.responses.create(body);
    expect(r.id).toMatch(/^resp_/);
    expect(r.object).toBe("response");
    expect(r.status).toBe("incomplete");
    expect(r.incomplete_details).toEqual({ reason: "max_output_tokens" });
    expect(r.output).toHaveLength(1);
    expect(r.output[0]).toMatchObject({ type: "message", role: "assistant" });
    expect(r.output_text.length).toBeGreaterThan(0);
    expect(r.usage?.output_tokens).toBe(6);
    const count = await openai.responses.inputTokens.count({ model: TINY, input: "Say hello." });
    expect(count.input_tokens).toBe(r.usage?.input_tokens as number);
    // the same seed gives the same answer
    const again = await openai.responses.create(body);
    expect(again.output_text).toBe(r.output_text);
  });

  test("stream: OpenAI's events in order with sequence numbers; the final response is what retrieve returns", async () => {
    const stream = openai.responses.stream({
      model: TINY,
      input: "Count.",
      max_output_tokens: 5,
      instructions: "Be brief.",
    });
    const events: { type: string; sequence_number: number }[] = [];
    for await (const e of stream) events.push(e);
    const final = await stream.finalResponse();
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    const types = events.map((e) => e.type);
    expect(types.slice(0, 4)).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
    ]);
    expect(types.filter((t) => t === "response.output_text.delta").length).toBeGreaterThan(0);
    expect(types.slice(-4)).toEqual([
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.incomplete",
    ]);
    const got = await openai.responses.retrieve(final.id);
    // (the SDK adds a parsed field to the final response's message content; the wire has none)
    const wire = JSON.parse(JSON.stringify(final.output, (k, v) => (k === "parsed" ? undefined : v)));
    expect(got.output).toEqual(wire);
    expect(got.instructions as string).toBe("Be brief.");
    expect(got.usage).toEqual(final.usage);
  });

  test("parse: text.format with a zod schema gives a parsed object", async () => {
    const Answer = z.object({ verdict: z.enum(["yes", "no"]), confidence: z.number().int().min(0).max(9) });
    const r = await openai.responses.parse({
      model: TINY,
      input: "Is water wet?",
      text: { format: zodTextFormat(Answer, "answer") },
      seed: 5,
    });
    expect(r.status).toBe("completed");
    expect(Answer.parse(r.output_parsed)).toEqual(r.output_parsed as z.infer<typeof Answer>);
  });

  test("function tools: a named tool_choice forces that call, with a call_id; its output continues the turn", async () => {
    const tools = [
      {
        type: "function" as const,
        name: "get_weather",
        description: "Weather",
        parameters: WEATHER_SCHEMA,
        strict: true,
      },
      {
        type: "function" as const,
        name: "get_time",
        description: "Time",
        parameters: { type: "object", properties: {} },
        strict: true,
      },
    ];
    const r = await openai.responses.create({
      model: TINY,
      input: "Weather in Paris?",
      tools,
      tool_choice: { type: "function", name: "get_weather" },
      parallel_tool_calls: false,
      max_output_tokens: 400,
    });
    expect(r.status).toBe("completed");
    const call = r.output.find((o) => o.type === "function_call");
    expect(call).toMatchObject({ type: "function_call", name: "get_weather" });
    if (call?.type !== "function_call") throw new Error("no call");
    expect(call.call_id.length).toBeGreaterThan(0);
    // maxLength counts code points (the grammar's characters), not UTF-16 units
    expect([...JSON.parse(call.arguments).city].length).toBeLessThanOrEqual(8);
    // the call and its output go back as items (stateless, as Codex does)
    const next = await openai.responses.create({
      model: TINY,
      input: [
        { role: "user", content: "Weather in Paris?" },
        { type: "function_call", call_id: call.call_id, name: call.name, arguments: call.arguments },
        { type: "function_call_output", call_id: call.call_id, output: "sunny" },
      ],
      tools,
      max_output_tokens: 4,
      store: false,
    });
    expect(next.output.length).toBeGreaterThan(0);
    // store: false is not stored
    const gone = await openai.responses.retrieve(next.id).catch((e) => e);
    expect(gone.status).toBe(404);
  });

  test("streamed tool calls: function_call_arguments deltas and done", async () => {
    const stream = openai.responses.stream({
      model: TINY,
      input: "Weather?",
      tools: [{ type: "function", name: "get_weather", parameters: WEATHER_SCHEMA, strict: true }],
      tool_choice: "required",
      parallel_tool_calls: false,
      max_output_tokens: 400,
    });
    const types: string[] = [];
    for await (const e of stream) types.push(e.type);
    const final = await stream.finalResponse();
    expect(types).toContain("response.function_call_arguments.delta");
    expect(types).toContain("response.function_call_arguments.done");
    expect(types.at(-1)).toBe("response.completed");
    const call = final.output.find((o) => o.type === "function_call");
    expect(call?.type === "function_call" && JSON.parse(call.arguments)).toHaveProperty("city");
  });

  test("previous_response_id continues a stored response; retrieve, inputItems, delete", async () => {
    const first = await openai.responses.create({ model: TINY, input: "My name is Ada.", max_output_tokens: 4 });
    const second = await openai.responses.create({
      model: TINY,
      previous_response_id: first.id,
      input: [{ role: "user", content: "What is my name?" }],
      max_output_tokens: 4,
    });
    expect(second.previous_response_id).toBe(first.id);
    // the conversation so far is in the prompt, and the prefix cache holds it
    const alone = await openai.responses.inputTokens.count({ model: TINY, input: "What is my name?" });
    expect(second.usage?.input_tokens as number).toBeGreaterThan(alone.input_tokens + 5);
    expect(second.usage?.input_tokens_details.cached_tokens as number).toBeGreaterThan(0);
    const counted = await openai.responses.inputTokens.count({
      model: TINY,
      previous_response_id: first.id,
      input: [{ role: "user", content: "What is my name?" }],
    });
    expect(counted.input_tokens).toBe(second.usage?.input_tokens as number);

    const items = await openai.responses.inputItems.list(second.id);
    expect(items.data).toHaveLength(1);
    expect(items.data[0]).toMatchObject({
      type: "message",
      role: "user",
      content: [{ type: "input_text", text: "What is my name?" }],
    });

    const del = await openai.responses.delete(second.id);
    expect(del).toMatchObject({ id: second.id, object: "response", deleted: true });
    expect((await openai.responses.retrieve(second.id).catch((e) => e)).status).toBe(404);
    // an unknown previous response is a 400 naming it, never an empty success
    const bad = await openai.responses
      .create({ model: TINY, previous_response_id: second.id, input: "x" })
      .catch((e) => e);
    expect(bad.status).toBe(400);
    expect(bad.error.param).toBe("previous_response_id");
  });

  test("background: queued at once, polled to completion; a cancelled one stays cancelled", async () => {
    const r = await openai.responses.create({ model: TINY, input: "Write.", max_output_tokens: 8, background: true });
    expect(["queued", "in_progress"]).toContain(r.status as string);
    let got = r;
    for (let i = 0; i < 200 && (got.status === "queued" || got.status === "in_progress"); i++) {
      await Bun.sleep(50);
      got = await openai.responses.retrieve(r.id);
    }
    expect(got.status).toBe("incomplete");
    expect(got.output_text.length).toBeGreaterThan(0);

    const long = await openai.responses.create({
      model: TINY,
      input: "Write.",
      max_output_tokens: 3000,
      background: true,
    });
    await Bun.sleep(200);
    const cancelled = await openai.responses.cancel(long.id);
    expect(cancelled.status).toBe("cancelled");
    await Bun.sleep(200);
    expect((await openai.responses.retrieve(long.id)).status).toBe("cancelled");
    // only background responses can be cancelled
    const plain = await openai.responses.create({ model: TINY, input: "x", max_output_tokens: 1 });
    expect((await openai.responses.cancel(plain.id).catch((e) => e)).status).toBe(400);
  });

  test("what cannot be served is a 400 that says so; unknown fields are ignored", async () => {
    const web = await openai.responses
      .create({ model: TINY, input: "x", tools: [{ type: "web_search" }] })
      .catch((e) => e);
    expect(web.status).toBe(400);
    expect(web.message).toContain("'web_search'");
    const schema = await openai.responses
      .create({
        model: TINY,
        input: "x",
        text: { format: { type: "json_schema", name: "s", schema: { type: "string", pattern: "[a-z]+" } } },
      })
      .catch((e) => e);
    expect(schema.status).toBe(400);
    expect(schema.message).toContain("cannot be enforced");
    const r = await post("/v1/responses", {
      model: TINY,
      input: "x",
      max_output_tokens: 1,
      some_future_field: { a: 1 },
    });
    expect(r.status).toBe(200);
  });

  test("an agent of @openai/agents calls a function tool over the Responses API", async () => {
    setDefaultOpenAIClient(openai);
    setOpenAIAPI("responses");
    setTracingDisabled(true);
    const cities: string[] = [];
    const weather = tool({
      name: "get_weather",
      description: "The weather in a city",
      parameters: z.object({ city: z.string().max(8) }),
      execute: async ({ city }) => {
        cities.push(city);
        return `sunny in ${city}`;
      },
    });
    const agent = new Agent({
      name: "weather",
      instructions: "Answer with the weather.",
      model: TINY,
      tools: [weather],
      modelSettings: { toolChoice: "required", maxTokens: 400, parallelToolCalls: false },
      // the tool's answer is the agent's: a random model would never end a text turn by itself
      toolUseBehavior: "stop_on_first_tool",
    });
    const result = await run(agent, "What is the weather in Paris?", { maxTurns: 3 });
    expect(cities).toHaveLength(1);
    expect(result.finalOutput).toBe(`sunny in ${cities[0]}`);
    expect(result.newItems.map((i) => i.type)).toEqual(["tool_call_item", "tool_call_output_item"]);
  });
});

describe("Anthropic Messages API with @anthropic-ai/sdk", () => {
  test("create: a message with usage; countTokens is what the usage says", async () => {
    const body = {
      model: TINY,
      max_tokens: 5,
      system: "Be brief.",
      messages: [{ role: "user" as const, content: "Hello" }],
    };
    const count = await anthropic.messages.countTokens({ model: TINY, system: body.system, messages: body.messages });
    const m = await anthropic.messages.create(body);
    expect(m).toMatchObject({
      type: "message",
      role: "assistant",
      model: TINY,
      stop_reason: "max_tokens",
      stop_sequence: null,
    });
    expect(m.content[0]?.type).toBe("text");
    expect(m.usage.output_tokens).toBe(5);
    expect(m.usage.input_tokens + (m.usage.cache_read_input_tokens ?? 0)).toBe(count.input_tokens);
  });

  test("stream: text blocks and Anthropic's event sequence", async () => {
    const stream = anthropic.messages.stream({
      model: TINY,
      max_tokens: 6,
      messages: [{ role: "user", content: "Hi" }],
    });
    const types: string[] = [];
    for await (const e of stream) types.push(e.type);
    const final = await stream.finalMessage();
    expect(types[0]).toBe("message_start");
    expect(types[1]).toBe("content_block_start");
    expect(types.slice(-3)).toEqual(["content_block_stop", "message_delta", "message_stop"]);
    expect(final.content[0]?.type === "text" && final.content[0].text.length).toBeGreaterThan(0);
    expect(final.usage.output_tokens).toBe(6);
  });

  test("tool use: any with disable_parallel_tool_use ends with stop_reason tool_use; a named tool is forced", async () => {
    const tools = [
      { name: "get_weather", description: "Weather", input_schema: WEATHER_SCHEMA },
      { name: "get_time", description: "Time", input_schema: { type: "object" as const, properties: {} } },
    ];
    const stream = anthropic.messages.stream({
      model: TINY,
      max_tokens: 400,
      messages: [{ role: "user", content: "Weather in Paris?" }],
      tools,
      tool_choice: { type: "any", disable_parallel_tool_use: true },
    });
    const deltas: string[] = [];
    for await (const e of stream) if (e.type === "content_block_delta") deltas.push(e.delta.type);
    const final = await stream.finalMessage();
    expect(deltas).toContain("input_json_delta");
    expect(final.stop_reason).toBe("tool_use");
    const use = final.content.find((b) => b.type === "tool_use");
    expect(use?.type === "tool_use" && use.id.length).toBeGreaterThan(0);

    const named = await anthropic.messages.create({
      model: TINY,
      max_tokens: 400,
      messages: [{ role: "user", content: "What time is it?" }],
      tools,
      tool_choice: { type: "tool", name: "get_weather", disable_parallel_tool_use: true },
    });
    expect(named.stop_reason).toBe("tool_use");
    const call = named.content.find((b) => b.type === "tool_use");
    expect(call).toMatchObject({ type: "tool_use", name: "get_weather" });
    if (call?.type !== "tool_use") throw new Error("no tool_use");
    // the result goes back as a tool_result block
    const next = await anthropic.messages.create({
      model: TINY,
      max_tokens: 3,
      tools,
      messages: [
        { role: "user", content: "What time is it?" },
        { role: "assistant", content: named.content },
        { role: "user", content: [{ type: "tool_result", tool_use_id: call.id, content: "sunny" }] },
      ],
    });
    expect(next.usage.output_tokens).toBeGreaterThan(0);
  });

  test("a stop sequence is reported as stop_sequence", async () => {
    // temperature 0: the same text twice (cast: this SDK version's types leave temperature out)
    const free = await anthropic.messages.create({
      model: TINY,
      max_tokens: 20,
      temperature: 0,
      messages: [{ role: "user", content: "Go" }],
    } as Anthropic.MessageCreateParamsNonStreaming);
    const text = free.content[0]?.type === "text" ? free.content[0].text : "";
    const stop = text.slice(6, 9);
    const cut = await anthropic.messages.create({
      model: TINY,
      max_tokens: 20,
      temperature: 0,
      stop_sequences: [stop],
      messages: [{ role: "user", content: "Go" }],
    } as Anthropic.MessageCreateParamsNonStreaming);
    expect(cut.stop_reason).toBe("stop_sequence");
    expect(cut.stop_sequence).toBe(stop);
  });

  test("errors in Anthropic's shape: a bad key, a bad body, an image, an unknown model; unknown blocks dropped", async () => {
    const bad = await new Anthropic({ baseURL: server.url, apiKey: "wrong", maxRetries: 0 }).messages
      .create({ model: TINY, max_tokens: 1, messages: [{ role: "user", content: "x" }] })
      .catch((e) => e);
    expect(bad.status).toBe(401);
    expect(bad.error).toEqual({
      type: "error",
      error: { type: "authentication_error", message: "Incorrect API key provided." },
    });
    const h = { "x-api-key": KEY, "anthropic-version": "2023-06-01" };
    const r1 = await post("/v1/messages", { model: TINY, max_tokens: 1, messages: "nope" }, h);
    expect(r1.status).toBe(400);
    expect(await r1.json()).toMatchObject({ type: "error", error: { type: "invalid_request_error" } });
    const img = await post(
      "/v1/messages",
      {
        model: TINY,
        max_tokens: 1,
        messages: [
          {
            role: "user",
            content: [{ type: "image", source: { type: "base64", media_type: "image/png", data: "AA" } }],
          },
        ],
      },
      h,
    );
    expect(img.status).toBe(400);
    // the tiny model has no projector
    expect(((await img.json()) as { error: { message: string } }).error.message).toContain("needs a vision model");
    const unknown = await post(
      "/v1/messages",
      { model: "nope", max_tokens: 1, messages: [{ role: "user", content: "x" }] },
      h,
    );
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ type: "error", error: { type: "not_found_error" } });
    const lenient = await post(
      "/v1/messages",
      {
        model: TINY,
        max_tokens: 1,
        messages: [
          {
            role: "user",
            content: [{ type: "text", text: "x", cache_control: { type: "ephemeral" } }, { type: "future_block" }],
          },
        ],
        metadata: { user_id: "u" },
        a_new_field: true,
      },
      h,
    );
    expect(lenient.status).toBe(200);
  });

  test("Claude Code's per-request billing line does not defeat the prefix cache", async () => {
    const system = (cch: string) => [
      {
        type: "text" as const,
        text: `x-anthropic-billing-header: cc_version=2.1.101.e51; cc_entrypoint=cli; cch=${cch};`,
      },
      {
        type: "text" as const,
        text: `You are a coding agent. ${"Follow the rules of the project carefully. ".repeat(40)}`,
      },
    ];
    const turn = (cch: string) =>
      anthropic.messages.create({
        model: TINY,
        max_tokens: 1,
        system: system(cch),
        messages: [{ role: "user", content: "Go" }],
      });
    const first = await turn("a5145");
    const second = await turn("0b9f2");
    const total = second.usage.input_tokens + (second.usage.cache_read_input_tokens ?? 0);
    expect(total).toBeGreaterThan(300);
    // all but the last few tokens come from the cache, although the line changed
    expect(second.usage.cache_read_input_tokens ?? 0).toBeGreaterThan(total - 5);
    expect(first.usage.input_tokens + (first.usage.cache_read_input_tokens ?? 0)).toBe(total);
  });

  test("Claude's model names stand for the default model", async () => {
    const m = await anthropic.messages.create({
      model: "claude-sonnet-4-5",
      max_tokens: 1,
      messages: [{ role: "user", content: "x" }],
    });
    expect(m.model).toBe(TINY);
  });
});

describe("reasoning models", () => {
  test("R1-style (the template opens the think block): reasoning_content and reasoning, a budget that closes it", async () => {
    const r = await openai.chat.completions.create({
      model: R1,
      messages: [{ role: "user", content: "Think." }],
      max_tokens: 24,
      reasoning_budget: 4,
      seed: 1,
    } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    const msg = r.choices[0]?.message as OpenAI.ChatCompletionMessage & {
      reasoning_content?: string;
      reasoning?: string;
    };
    expect(msg.reasoning_content?.length).toBeGreaterThan(0);
    expect(msg.reasoning).toBe(msg.reasoning_content as string);
    // the budget closed the think block: the rest is the answer
    expect(msg.content?.length).toBeGreaterThan(0);
    expect(msg.content).not.toContain("</think>");

    const stream = await openai.chat.completions.create({
      model: R1,
      messages: [{ role: "user", content: "Think." }],
      max_tokens: 24,
      reasoning_budget: 4,
      seed: 1,
      stream: true,
    } as OpenAI.ChatCompletionCreateParamsStreaming);
    let reasoning = "";
    let alias = "";
    let content = "";
    for await (const c of stream) {
      const d = c.choices[0]?.delta as { content?: string; reasoning_content?: string; reasoning?: string } | undefined;
      reasoning += d?.reasoning_content ?? "";
      alias += d?.reasoning ?? "";
      content += d?.content ?? "";
    }
    expect(reasoning).toBe(msg.reasoning_content as string);
    expect(alias).toBe(reasoning);
    expect(content).toBe(msg.content as string);
  });

  test("effort none: thinking off, the whole output is the answer (never an empty answer)", async () => {
    for (const model of [R1, QWEN3]) {
      const r = await openai.chat.completions.create({
        model,
        messages: [{ role: "user", content: "Quick." }],
        max_tokens: 8,
        reasoning_effort: "none",
      } as OpenAI.ChatCompletionCreateParamsNonStreaming);
      const msg = r.choices[0]?.message as OpenAI.ChatCompletionMessage & { reasoning_content?: string };
      expect(msg.content?.length).toBeGreaterThan(0);
      expect(msg.reasoning_content).toBeUndefined();
    }
    // Qwen3's template writes an empty think block when thinking is off: the prompt grows by it
    const on = await openai.responses.inputTokens.count({ model: QWEN3, input: "Quick." });
    const off = await openai.responses.inputTokens.count({
      model: QWEN3,
      input: "Quick.",
      reasoning: { effort: "none" },
    });
    expect(off.input_tokens).toBeGreaterThan(on.input_tokens);
    // an unknown level is mapped, never refused
    const x = await openai.chat.completions.create({
      model: QWEN3,
      messages: [{ role: "user", content: "x" }],
      max_tokens: 1,
      reasoning_effort: "xhigh" as "high",
    });
    expect(x.choices).toHaveLength(1);
  });

  test("history: either field name is accepted on an assistant turn", async () => {
    for (const field of ["reasoning_content", "reasoning"]) {
      const r = await post("/v1/chat/completions", {
        model: R1,
        max_tokens: 1,
        messages: [
          { role: "user", content: "a" },
          { role: "assistant", content: "b", [field]: "thought" },
          { role: "user", content: "c" },
        ],
      });
      expect(r.status).toBe(200);
    }
  });

  test("Responses: a reasoning item with reasoning_text deltas; reasoning tokens in the usage", async () => {
    const stream = openai.responses.stream({
      model: R1,
      input: "Think.",
      max_output_tokens: 20,
      reasoning_budget: 4,
    } as never);
    const types: string[] = [];
    for await (const e of stream) types.push((e as { type: string }).type);
    const final = await stream.finalResponse();
    expect(types).toContain("response.reasoning_text.delta");
    expect(final.output[0]?.type).toBe("reasoning");
    expect(final.output[1]?.type).toBe("message");
    const reasoningTokens = final.usage?.output_tokens_details.reasoning_tokens as number;
    expect(reasoningTokens).toBeGreaterThan(0);
    expect(reasoningTokens).toBeLessThan(final.usage?.output_tokens as number);
  });

  test("Anthropic: thinking blocks with a signature, budget_tokens, and thinking disabled", async () => {
    const stream = anthropic.messages.stream({
      model: R1,
      max_tokens: 20,
      thinking: { type: "enabled", budget_tokens: 1024 },
      messages: [{ role: "user", content: "Think." }],
    });
    const deltas: string[] = [];
    for await (const e of stream) if (e.type === "content_block_delta") deltas.push(e.delta.type);
    const final = await stream.finalMessage();
    expect(deltas).toContain("thinking_delta");
    expect(deltas).toContain("signature_delta");
    expect(final.content[0]?.type).toBe("thinking");

    const off = await anthropic.messages.create({
      model: R1,
      max_tokens: 6,
      thinking: { type: "disabled" },
      messages: [{ role: "user", content: "Quick." }],
    });
    expect(off.content.map((b) => b.type)).toEqual(["text"]);
  });
});

describe("restarts", () => {
  test("a response stored before a restart is retrievable and continuable after it", async () => {
    const before = await openai.responses.create({ model: TINY, input: "Remember me.", max_output_tokens: 3 });
    await server.stop();
    await start();
    const after = await openai.responses.retrieve(before.id);
    expect(after.output).toEqual(before.output);
    expect(after.usage).toEqual(before.usage);
    const next = await openai.responses.create({
      model: TINY,
      previous_response_id: before.id,
      input: "Again.",
      max_output_tokens: 2,
    });
    expect(next.status).toBe("incomplete");
    expect(next.usage?.input_tokens as number).toBeGreaterThan(before.usage?.input_tokens as number);
  });
});
