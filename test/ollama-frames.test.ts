// Ollama's conversions, pure and line by line: requests in, lines out.
import { describe, expect, test } from "bun:test";
import { BlockStream } from "../src/chat/blocks";
import { loadConfig } from "../src/config";
import { DomainError } from "../src/errors";
import {
  formatSchema,
  generatePrompt,
  keepAliveMs,
  modelName,
  reasoningOf,
  servedId,
  templateMessages,
} from "../src/ollama/convert";
import { argumentsObject, assistantMessage, stepDelta } from "../src/ollama/output";
import { pullLines } from "../src/ollama/pull";

const DEFAULT_SAMPLING = loadConfig([], {}).config.sampling;

describe("Ollama in", () => {
  test("names: a bare id is :latest; :latest finds the bare id", () => {
    expect(modelName("tiny")).toBe("tiny:latest");
    expect(modelName("hf.co/a/b:Q8_0")).toBe("hf.co/a/b:Q8_0");
    const has = (id: string) => id === "tiny";
    expect(servedId("tiny:latest", has)).toBe("tiny");
    expect(servedId("tiny", has)).toBe("tiny");
    expect(servedId("other:latest", has)).toBe("other:latest");
  });

  test("keep_alive: seconds, durations, forever, and a clear 400", () => {
    expect(keepAliveMs(undefined)).toBeUndefined();
    expect(keepAliveMs(0)).toBe(0);
    expect(keepAliveMs(30)).toBe(30_000);
    expect(keepAliveMs("5m")).toBe(300_000);
    expect(keepAliveMs("1h30m")).toBe(5_400_000);
    expect(keepAliveMs("10s")).toBe(10_000);
    expect(keepAliveMs("0")).toBe(0);
    expect(keepAliveMs(-1)).toBe(-1);
    expect(keepAliveMs("-1m")).toBe(-1);
    expect(() => keepAliveMs("soon")).toThrow(DomainError);
  });

  test("messages: thinking and tool calls in history; a result finds its call by tool_name", () => {
    const m = templateMessages([
      { role: "user", content: "hi" },
      {
        role: "assistant",
        content: "",
        thinking: "hmm",
        tool_calls: [
          { function: { name: "a", arguments: { x: 1 } } },
          { function: { name: "b", arguments: { y: 2 } } },
        ],
      },
      { role: "tool", content: "B", tool_name: "b" },
      { role: "tool", content: "A", tool_name: "a" },
    ]);
    expect(m[1]).toEqual({
      role: "assistant",
      content: "",
      reasoning_content: "hmm",
      tool_calls: [
        { id: "call_1_0", type: "function", function: { name: "a", arguments: '{"x":1}' } },
        { id: "call_1_1", type: "function", function: { name: "b", arguments: '{"y":2}' } },
      ],
    });
    expect(m[2]).toMatchObject({ role: "tool", tool_call_id: "call_1_1", content: "B" });
    expect(m[3]).toMatchObject({ role: "tool", tool_call_id: "call_1_0", content: "A" });
    expect(templateMessages([{ role: "user", content: "x", images: ["aGk="] }])[0]).toEqual({
      role: "user",
      content: "<__media__>x",
      images: [{ data: "aGk=" }],
    });
    expect(() => templateMessages([{ role: "user", content: "x", images: ["not base64!"] }])).toThrow("base64");
    expect(() => templateMessages([{ role: "robot", content: "x" }])).toThrow("role");
  });

  test("format, think", () => {
    expect(formatSchema("json")).toEqual({ type: "object" });
    expect(formatSchema("")).toBeUndefined();
    expect(formatSchema({ type: "object", properties: {} })).toEqual({ type: "object", properties: {} });
    expect(() => formatSchema("yaml")).toThrow("format");
    expect(reasoningOf(false)).toEqual({ effort: "none" });
    expect(reasoningOf(true)).toEqual({});
    expect(reasoningOf("high")).toEqual({ effort: "high" });
  });

  test("generate: a user turn through the template, raw as written, suffix as fill-in-the-middle", () => {
    const d = DEFAULT_SAMPLING;
    const chat = generatePrompt({ model: "m", prompt: "hi", system: "be brief" }, d, true);
    expect(chat.kind).toBe("chat");
    expect(chat.spec.messages).toEqual([
      { role: "system", content: "be brief" },
      { role: "user", content: "hi" },
    ]);
    expect(generatePrompt({ model: "m", prompt: "hi", raw: true }, d, true)).toMatchObject({ kind: "raw", text: "hi" });
    expect(generatePrompt({ model: "m", prompt: "hi" }, d, false)).toMatchObject({ kind: "raw", text: "hi" });
    expect(generatePrompt({ model: "m", prompt: "def f(", suffix: "return 1" }, d, true)).toMatchObject({
      kind: "infill",
      prefix: "def f(",
      suffix: "return 1",
    });
    expect(() => generatePrompt({ model: "m", prompt: "x", template: "{{ .Prompt }}" }, d, true)).toThrow("template");
    const limited = generatePrompt(
      { model: "m", prompt: "x", options: { num_predict: 7, stop: "\n", seed: 3 } },
      d,
      true,
    );
    expect(limited.spec.maxTokens).toBe(7);
    expect(limited.spec.stop).toEqual(["\n"]);
    expect(limited.spec.sampling.seed).toBe(3);
    expect(
      generatePrompt({ model: "m", prompt: "x", options: { num_predict: -1 } }, d, true).spec.maxTokens,
    ).toBeNull();
  });
});

describe("Ollama out", () => {
  test("stream lines: text and thinking as they come, a tool call once whole with object arguments", () => {
    const bs = new BlockStream();
    const lines = [
      ...bs.push({
        type: "text",
        choice: 0,
        text: "",
        tokens: 1,
        delta: { content: "", reasoning: "why", toolCalls: [] },
      }),
      ...bs.push({
        type: "text",
        choice: 0,
        text: "",
        tokens: 2,
        delta: { content: "so", reasoning: "", toolCalls: [] },
      }),
      ...bs.push({
        type: "text",
        choice: 0,
        text: "",
        tokens: 3,
        delta: { content: "", reasoning: "", toolCalls: [{ index: 0, id: "c", name: "f", arguments: '{"a"' }] },
      }),
      ...bs.push({
        type: "text",
        choice: 0,
        text: "",
        tokens: 4,
        delta: { content: "", reasoning: "", toolCalls: [{ index: 0, arguments: ":1}" }] },
      }),
      ...bs.finish(),
    ]
      .map(stepDelta)
      .filter((x) => x !== null);
    expect(lines).toEqual([
      { thinking: "why" },
      { content: "so" },
      { tool_calls: [{ function: { name: "f", arguments: { a: 1 } } }] },
    ]);
    expect(assistantMessage(bs.blocks)).toEqual({
      role: "assistant",
      content: "so",
      thinking: "why",
      tool_calls: [{ function: { name: "f", arguments: { a: 1 } } }],
    });
    expect(argumentsObject("[1]")).toEqual({});
    expect(argumentsObject("{bad")).toEqual({});
  });

  test("pull lines as Ollama's client reads them", () => {
    const base = { id: "pull_x", model: "a/b:Q8_0", file: "b.gguf", total: 10, error: null };
    expect(pullLines({ ...base, status: "pulling", completed: 4 }, true)).toEqual([
      { status: "pulling manifest" },
      { status: "pulling b.gguf", digest: "b.gguf", total: 10, completed: 4 },
    ]);
    expect(pullLines({ ...base, status: "verifying", completed: 10 }, false)).toEqual([
      { status: "pulling b.gguf", digest: "b.gguf", total: 10, completed: 10 },
      { status: "verifying sha256 digest" },
    ]);
    expect(pullLines({ ...base, status: "success", completed: 10 }, false)).toEqual([
      { status: "writing manifest" },
      { status: "success" },
    ]);
    expect(pullLines({ ...base, status: "failed", completed: 0, error: "gone" }, false)).toEqual([{ error: "gone" }]);
  });
});
