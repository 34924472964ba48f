// Structured output, tools, logprobs, best_of and reproducibility, with the
// official openai client against a real server running the tiny model (whose
// GGUF carries Qwen2.5's tool-capable chat template).
import { describe, expect, test } from "bun:test";
import OpenAI from "openai";
import { zodResponseFormat } from "openai/helpers/zod";
import { z } from "zod";
import { ChatTemplates } from "../src/ffi/chat";
import { Model } from "../src/ffi/model";
import { TINY_MODEL_PATH } from "../src/models/synthetic";
import { useServer } from "./server-process";

const MODEL = "llmatic-tiny";
/** The function of a tool call (the SDK's union also has custom tools). */
const fn = (call: unknown) => (call as OpenAI.ChatCompletionMessageFunctionToolCall | undefined)?.function;
let client: OpenAI;

useServer(["-m", TINY_MODEL_PATH, "--parallel", "4", "--ctx-size", "8192"], (_, c) => {
  client = c;
});

const Person = z.object({
  name: z.string().max(12),
  age: z.number().int().min(0).max(120),
  role: z.enum(["admin", "user", "guest"]),
  tags: z.array(z.enum(["a", "b", "c"])).max(3),
});

describe("structured output", () => {
  test("parse() with a zod schema gives a valid object for 20 different seeds", async () => {
    for (let seed = 1; seed <= 20; seed++) {
      const r = await client.chat.completions.parse({
        model: MODEL,
        messages: [{ role: "user", content: "Describe a person." }],
        response_format: zodResponseFormat(Person, "person"),
        seed,
      });
      const parsed = r.choices[0]?.message.parsed;
      expect(parsed).not.toBeNull();
      expect(Person.parse(parsed)).toEqual(parsed as z.infer<typeof Person>);
      expect(r.choices[0]?.finish_reason).toBe("stop");
    }
  }, 120_000);

  test("a plain JSON schema and json_object mode give JSON that parses and matches", async () => {
    const schema = {
      type: "object",
      properties: {
        id: { type: "integer", minimum: 1, maximum: 999 },
        ok: { type: "boolean" },
        day: { type: "string", format: "date" },
      },
      required: ["id", "ok", "day"],
      additionalProperties: false,
    };
    const r = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "x" }],
      response_format: { type: "json_schema", json_schema: { name: "thing", schema, strict: true } },
      seed: 7,
    });
    const v = JSON.parse(r.choices[0]?.message.content ?? "");
    expect(Object.keys(v).sort()).toEqual(["day", "id", "ok"]);
    expect(Number.isInteger(v.id) && v.id >= 1 && v.id <= 999).toBe(true);
    expect(typeof v.ok).toBe("boolean");
    expect(v.day).toMatch(/^\d{4}-\d{2}-\d{2}$/);

    const obj = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "x" }],
      response_format: { type: "json_object" },
      max_tokens: 400,
      seed: 3,
    });
    if (obj.choices[0]?.finish_reason === "stop") {
      const parsed = JSON.parse(obj.choices[0]?.message.content ?? "");
      expect(typeof parsed).toBe("object");
    } else {
      // cut by max_tokens: still a JSON object's beginning
      expect(obj.choices[0]?.message.content?.trimStart().startsWith("{")).toBe(true);
    }
  }, 60_000);

  test("a schema llmatic cannot enforce is a 400 naming the problem", async () => {
    const bad = async (schema: Record<string, unknown>) =>
      client.chat.completions
        .create({
          model: MODEL,
          messages: [{ role: "user", content: "x" }],
          response_format: { type: "json_schema", json_schema: { name: "x", schema } },
        })
        .catch((e) => e);
    const notKeyword = await bad({ type: "object", properties: { a: { not: { type: "string" } } } });
    expect(notKeyword).toBeInstanceOf(OpenAI.BadRequestError);
    expect(notKeyword.message).toContain("'not'");
    expect(notKeyword.message).toContain("#/properties/a/not");
    expect(notKeyword.param).toBe("response_format.json_schema.schema");
    const ipv6 = await bad({ type: "string", format: "ipv6" });
    expect(ipv6.message).toContain("'ipv6'");
    // a pattern the grammar cannot express fails closed (llama.cpp alone would accept any string)
    const loose = await bad({ type: "string", pattern: "[a-z]+" });
    expect(loose).toBeInstanceOf(OpenAI.BadRequestError);
    expect(loose.message).toContain("cannot be enforced");
    const ref = await bad({ type: "object", properties: { a: { $ref: "#/$defs/missing" } } });
    expect(ref).toBeInstanceOf(OpenAI.BadRequestError);
    expect(ref.message).toContain("missing");
    const type = await bad({ type: "strange" });
    expect(type).toBeInstanceOf(OpenAI.BadRequestError);
  });
});

const weatherTool = {
  type: "function" as const,
  function: {
    name: "get_weather",
    description: "Current weather in a city",
    parameters: {
      type: "object",
      properties: { city: { type: "string", maxLength: 10 }, unit: { type: "string", enum: ["c", "f"] } },
      required: ["city", "unit"],
      additionalProperties: false,
    },
  },
};

test("formats the converter does not know are enforced as patterns: uri, email, ipv4; \\d in patterns", async () => {
  const schema = {
    type: "object",
    properties: {
      site: { type: "string", format: "uri", maxLength: 24 },
      mail: { type: "string", format: "email", maxLength: 16 },
      ip: { type: "string", format: "ipv4" },
      code: { type: "string", pattern: "^\\d{3}-\\w$" },
    },
    required: ["site", "mail", "ip", "code"],
    additionalProperties: false,
  };
  // (pattern grammars are slow to sample against: ~2 s a request with the tiny model)
  for (const seed of [1, 2]) {
    const r = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "x" }],
      response_format: { type: "json_schema", json_schema: { name: "x", schema } },
      seed,
    });
    const v = JSON.parse(r.choices[0]?.message.content ?? "{}");
    expect(v.site).toMatch(/^[a-zA-Z][a-zA-Z0-9+.-]*:\S+$/);
    expect([...v.site].length).toBeLessThanOrEqual(24);
    expect(v.mail).toMatch(/^[^@\s]+@[a-zA-Z0-9.-]+$/);
    expect(v.ip).toMatch(/^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/);
    expect(v.code).toMatch(/^\d{3}-\w$/);
  }
}, 60_000);

describe("tools", () => {
  test("runTools completes a round trip with a tool the test implements", async () => {
    const calls: { city: string; unit: string }[] = [];
    const runner = client.chat.completions.runTools({
      model: MODEL,
      messages: [{ role: "user", content: "What is the weather in Paris?" }],
      tool_choice: { type: "function", function: { name: "get_weather" } },
      parallel_tool_calls: false,
      max_tokens: 400,
      seed: 11,
      tools: [
        {
          type: "function",
          function: {
            name: "get_weather",
            description: weatherTool.function.description,
            parameters: weatherTool.function.parameters,
            parse: JSON.parse,
            function: (args: { city: string; unit: string }) => {
              calls.push(args);
              return { temperature: 21, unit: args.unit };
            },
          },
        },
      ],
    });
    await runner.done();
    expect(calls).toHaveLength(1);
    expect(typeof calls[0]?.city).toBe("string");
    expect(["c", "f"]).toContain(calls[0]?.unit as string);
    const msgs = runner.messages;
    const assistant = msgs.find((m) => m.role === "assistant") as OpenAI.ChatCompletionAssistantMessageParam;
    expect(fn(assistant.tool_calls?.[0])?.name).toBe("get_weather");
    const tool = msgs.find((m) => m.role === "tool") as OpenAI.ChatCompletionToolMessageParam;
    expect(tool.tool_call_id).toBe(assistant.tool_calls?.[0]?.id as string);
    expect(JSON.parse(tool.content as string)).toEqual({ temperature: 21, unit: calls[0]?.unit });
    // the tool result goes back through the template: the model answers
    const final = await client.chat.completions.create({
      model: MODEL,
      messages: msgs,
      tools: [weatherTool],
      tool_choice: "none",
      max_tokens: 5,
    });
    expect(final.choices[0]?.message.role).toBe("assistant");
    expect(final.usage?.prompt_tokens).toBeGreaterThan(60);
  }, 60_000);

  test("streamed tool-call fragments reassemble to valid JSON arguments", async () => {
    for (const seed of [1, 2, 3]) {
      const stream = client.chat.completions.stream({
        model: MODEL,
        messages: [{ role: "user", content: "weather please" }],
        tools: [weatherTool],
        tool_choice: "required",
        parallel_tool_calls: false,
        max_tokens: 400,
        seed,
      });
      const byIndex = new Map<number, { id?: string; name?: string; args: string }>();
      let finish: string | null = null;
      for await (const chunk of stream) {
        const ch = chunk.choices[0];
        finish = ch?.finish_reason ?? finish;
        for (const d of ch?.delta.tool_calls ?? []) {
          const cur = byIndex.get(d.index) ?? { args: "" };
          if (d.id) cur.id = d.id;
          if (d.function?.name) cur.name = d.function.name;
          cur.args += d.function?.arguments ?? "";
          byIndex.set(d.index, cur);
        }
      }
      expect(finish).toBe("tool_calls");
      const first = byIndex.get(0);
      expect(first?.name).toBe("get_weather");
      expect(first?.id).toMatch(/^call_/);
      const args = JSON.parse(first?.args ?? "");
      expect(Object.keys(args).sort()).toEqual(["city", "unit"]);
      const final = await stream.finalChatCompletion();
      expect(fn(final.choices[0]?.message.tool_calls?.[0])?.arguments).toBe(first?.args as string);
    }
  }, 60_000);

  test("non-streamed: tool_calls with finish_reason tool_calls and null content", async () => {
    const r = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "weather" }],
      tools: [weatherTool],
      tool_choice: "required",
      // one call: random weights would otherwise go on calling (each call is bounded, their number is not)
      parallel_tool_calls: false,
      max_tokens: 400,
      seed: 5,
    });
    const m = r.choices[0]?.message;
    expect(r.choices[0]?.finish_reason).toBe("tool_calls");
    expect(m?.content).toBeNull();
    expect(m?.tool_calls?.[0]?.type).toBe("function");
    expect(JSON.parse(fn(m?.tool_calls?.[0])?.arguments ?? "").unit).toMatch(/^[cf]$/);
  }, 30_000);

  test("the legacy functions / function_call fields use the same machinery", async () => {
    const r = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "weather" }],
      functions: [weatherTool.function],
      function_call: { name: "get_weather" },
      max_tokens: 400,
      seed: 6,
    });
    expect(r.choices[0]?.finish_reason).toBe("function_call");
    const fc = r.choices[0]?.message.function_call;
    expect(fc?.name).toBe("get_weather");
    expect(Object.keys(JSON.parse(fc?.arguments ?? "")).sort()).toEqual(["city", "unit"]);
  }, 30_000);

  test("bad tool definitions are 400s", async () => {
    const err = await client.chat.completions
      .create({
        model: MODEL,
        messages: [{ role: "user", content: "x" }],
        tools: [weatherTool],
        tool_choice: { type: "function", function: { name: "nope" } },
      })
      .catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.param).toBe("tool_choice");
  });

  test("the template renders tool calls and tool results", () => {
    const vocab = Model.load(TINY_MODEL_PATH, { vocabOnly: true });
    const t = ChatTemplates.create(vocab);
    try {
      const out = t.apply({
        messages: [
          { role: "user", content: "weather?" },
          {
            role: "assistant",
            content: "",
            tool_calls: [
              {
                id: "call_1",
                type: "function",
                function: { name: "get_weather", arguments: '{"city":"Oslo","unit":"c"}' },
              },
            ],
          },
          { role: "tool", content: '{"temperature":3}', tool_call_id: "call_1" },
        ],
        tools: [weatherTool],
      });
      expect(out.prompt).toContain("<tool_call>");
      expect(out.prompt).toContain('"name": "get_weather"');
      expect(out.prompt).toContain('<tool_response>\n{"temperature":3}\n</tool_response>');
      expect(out.prompt).toContain('"description": "Current weather in a city"');
    } finally {
      t.dispose();
      vocab.dispose();
    }
  });
});

describe("logprobs", () => {
  test("chat: logprobs with top_logprobs, sorted, probabilities summing to at most 1", async () => {
    const r = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "hello" }],
      logprobs: true,
      top_logprobs: 5,
      max_tokens: 8,
      seed: 1,
    });
    const content = r.choices[0]?.logprobs?.content ?? [];
    expect(content).toHaveLength(8);
    expect(content.map((c) => c.token).join("")).toBe(r.choices[0]?.message.content as string);
    for (const c of content) {
      expect(c.logprob).toBeLessThanOrEqual(0);
      expect(Array.isArray(c.bytes)).toBe(true);
      expect(c.top_logprobs).toHaveLength(5);
      const lps = c.top_logprobs.map((t) => t.logprob);
      expect([...lps].sort((a, b) => b - a)).toEqual(lps);
      expect(lps.reduce((a, lp) => a + Math.exp(lp), 0)).toBeLessThanOrEqual(1);
      // the sampled token is no more likely than the most likely one
      expect(c.logprob).toBeLessThanOrEqual((lps[0] as number) + 1e-6);
    }
  });

  test("chat: logprobs stream along with the text", async () => {
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "hello" }],
      logprobs: true,
      top_logprobs: 2,
      max_tokens: 10,
      seed: 2,
      stream: true,
    });
    let n = 0;
    let text = "";
    let fromTokens = "";
    for await (const chunk of stream) {
      const ch = chunk.choices[0];
      text += ch?.delta.content ?? "";
      for (const c of ch?.logprobs?.content ?? []) {
        n++;
        fromTokens += c.token;
        expect(c.top_logprobs).toHaveLength(2);
      }
    }
    expect(n).toBe(10);
    expect(fromTokens).toBe(text);
  });

  test("completions: parallel arrays, echo returns the prompt verbatim with its logprobs", async () => {
    const prompt = "The capital of France is";
    const r = await client.completions.create({
      model: MODEL,
      prompt,
      max_tokens: 5,
      logprobs: 3,
      echo: true,
      seed: 4,
    });
    const c = r.choices[0];
    expect(c?.text.startsWith(prompt)).toBe(true);
    const lp = c?.logprobs;
    const n = lp?.tokens?.length ?? 0;
    expect(lp?.token_logprobs).toHaveLength(n);
    expect(lp?.top_logprobs).toHaveLength(n);
    expect(lp?.text_offset).toHaveLength(n);
    expect(n).toBe((r.usage?.prompt_tokens ?? 0) + 5);
    expect(lp?.token_logprobs?.[0]).toBeNull();
    expect(lp?.tokens?.join("")).toBe(c?.text as string);
    expect(lp?.text_offset?.[0]).toBe(0);
    for (let i = 1; i < n; i++) {
      const top = lp?.top_logprobs?.[i] as Record<string, number>;
      expect(Object.keys(top).length).toBeGreaterThanOrEqual(1);
      expect(Object.keys(top).length).toBeLessThanOrEqual(4);
      expect(top[lp?.tokens?.[i] as string]).toBeDefined();
      expect(lp?.text_offset?.[i]).toBe((lp?.tokens ?? []).slice(0, i).join("").length);
    }
    const plain = await client.completions.create({ model: MODEL, prompt, max_tokens: 3, echo: true, seed: 4 });
    expect(plain.choices[0]?.text.slice(0, prompt.length)).toBe(prompt);
  });

  test("completions: streamed logprobs add up to the same as non-streamed", async () => {
    const args = { model: MODEL, prompt: "abc", max_tokens: 6, logprobs: 2, seed: 8 } as const;
    const whole = await client.completions.create(args);
    const stream = await client.completions.create({ ...args, stream: true });
    const tokens: string[] = [];
    for await (const chunk of stream) tokens.push(...(chunk.choices[0]?.logprobs?.tokens ?? []));
    expect(tokens).toEqual(whole.choices[0]?.logprobs?.tokens as string[]);
  });

  test("best_of: the n candidates with the highest mean logprob, best first", async () => {
    const args = { model: MODEL, prompt: "Once", max_tokens: 6, seed: 9 } as const;
    // the same 4 candidates (choice i samples with seed + i), all returned, with their token logprobs
    const all = await client.completions.create({ ...args, n: 4, best_of: 4, logprobs: 0 });
    const mean = (c: (typeof all.choices)[number]) => {
      const lps = (c.logprobs?.token_logprobs ?? []) as number[];
      return lps.reduce((a, b) => a + b, 0) / Math.max(1, lps.length);
    };
    const ranked = [...all.choices].sort((a, b) => mean(b) - mean(a)).map((c) => c.text);
    expect(new Set(ranked).size).toBe(4);
    const r = await client.completions.create({ ...args, n: 2, best_of: 4 });
    expect(r.choices.map((c) => c.index)).toEqual([0, 1]);
    expect(r.choices.map((c) => c.text)).toEqual(ranked.slice(0, 2));
    expect(r.usage?.completion_tokens).toBe(24);
    const bad = await client.completions.create({ model: MODEL, prompt: "x", n: 3, best_of: 2 }).catch((e) => e);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect(bad.param).toBe("best_of");
  });
});

describe("reproducibility", () => {
  test("same seed and parameters give the same output and fingerprint", async () => {
    const args = {
      model: MODEL,
      messages: [{ role: "user" as const, content: "repeat" }],
      max_tokens: 20,
      seed: 77,
      temperature: 1,
    };
    const a = await client.chat.completions.create(args);
    const b = await client.chat.completions.create(args);
    expect(b.choices[0]?.message.content).toBe(a.choices[0]?.message.content as string);
    expect(a.system_fingerprint).toMatch(/^fp_/);
    expect(b.system_fingerprint).toBe(a.system_fingerprint);
  });
});
