// Request schemas of the OpenAI API as llmatic accepts them, declared once with
// Elysia's `t` (TypeBox) and registered as models. They follow
// ../shared/spec/openai-api-1.2.0.yaml and what today's clients send on top of
// it: nulls for any optional field, extra fields (ignored), content parts,
// developer/tool roles, max_completion_tokens, stream_options.
import { Elysia, type Static, type TSchema, t } from "elysia";
import { LIMITS } from "./limits";

/** An optional field that may also be null (clients send both). */
const opt = <T extends TSchema>(s: T) => t.Optional(t.Union([s, t.Null()]));

const TokenArray = t.Array(t.Integer({ minimum: 0, maximum: 0x7fffffff }), {
  minItems: 1,
  maxItems: LIMITS.promptTokens,
});

const StopString = t.String({ maxLength: LIMITS.stopLength });
const Stop = t.Union([StopString, t.Array(StopString, { maxItems: LIMITS.stop })], {
  description: "Up to 4 sequences where generation stops; the stop sequence is not returned",
});

/** Sampling fields shared by completions and chat completions (plus llama.cpp's common extras). */
const sampling = {
  temperature: opt(t.Number({ minimum: 0, maximum: 2 })),
  top_p: opt(t.Number({ minimum: 0, maximum: 1 })),
  n: opt(t.Integer({ minimum: 1, maximum: 128 })),
  stream: opt(t.Boolean()),
  stream_options: opt(t.Object({ include_usage: opt(t.Boolean()) })),
  stop: opt(Stop),
  presence_penalty: opt(t.Number({ minimum: -2, maximum: 2 })),
  frequency_penalty: opt(t.Number({ minimum: -2, maximum: 2 })),
  logit_bias: opt(t.Record(t.String(), t.Number({ minimum: -100, maximum: 100 }), { maxProperties: LIMITS.logitBias })),
  seed: opt(t.Integer({ minimum: -(2 ** 63), maximum: 2 ** 64 })),
  user: opt(t.String()),
  // llama.cpp server extensions, accepted because many clients send them
  top_k: opt(t.Integer({ minimum: 0, maximum: LIMITS.topK })),
  min_p: opt(t.Number({ minimum: 0, maximum: 1 })),
  repeat_penalty: opt(t.Number({ minimum: 0 })),
  repeat_last_n: opt(t.Integer({ minimum: -1, maximum: 1 << 24 })),
  ignore_eos: opt(t.Boolean()),
  // llmatic: false turns speculative (n-gram) decoding off for this request
  speculative: opt(t.Boolean()),
};

export const CompletionRequest = t.Object(
  {
    model: t.String(),
    prompt: opt(
      t.Union([
        t.String(),
        t.Array(t.String(), { maxItems: LIMITS.prompts }),
        TokenArray,
        t.Array(TokenArray, { minItems: 1, maxItems: LIMITS.prompts }),
      ]),
    ),
    suffix: opt(t.String()),
    max_tokens: opt(t.Integer({ minimum: 0 })),
    echo: opt(t.Boolean()),
    best_of: opt(t.Integer({ minimum: 0, maximum: 20 })),
    logprobs: opt(t.Integer({ minimum: 0, maximum: 5 })),
    ...sampling,
  },
  { description: "POST /v1/completions" },
);
export type CompletionRequest = Static<typeof CompletionRequest>;

const ContentPart = t.Object(
  {
    type: t.String(),
    text: t.Optional(t.String()),
  },
  { additionalProperties: true },
);

const ToolCall = t.Object({
  id: t.Optional(t.String()),
  type: t.Optional(t.String()),
  function: t.Object({ name: t.String(), arguments: t.String() }),
});

export const ChatMessage = t.Object(
  {
    role: t.Union([
      t.Literal("system"),
      t.Literal("developer"),
      t.Literal("user"),
      t.Literal("assistant"),
      t.Literal("tool"),
      t.Literal("function"),
    ]),
    content: opt(t.Union([t.String(), t.Array(ContentPart, { maxItems: LIMITS.contentParts })])),
    name: opt(t.String()),
    tool_calls: opt(t.Array(ToolCall)),
    tool_call_id: opt(t.String()),
    function_call: opt(t.Object({ name: t.String(), arguments: t.String() })),
    refusal: opt(t.String()),
    // an earlier turn's reasoning: either name (peers use both)
    reasoning_content: opt(t.String()),
    reasoning: opt(t.String()),
  },
  { additionalProperties: true },
);
export type ChatMessage = Static<typeof ChatMessage>;

const FunctionDef = t.Object({
  name: t.String({ minLength: 1 }),
  description: opt(t.String()),
  parameters: opt(t.Record(t.String(), t.Unknown())),
  strict: opt(t.Boolean()),
});

export const ChatCompletionRequest = t.Object(
  {
    model: t.String(),
    messages: t.Array(ChatMessage, { minItems: 1, maxItems: LIMITS.messages }),
    max_tokens: opt(t.Integer({ minimum: 0 })),
    max_completion_tokens: opt(t.Integer({ minimum: 0 })),
    logprobs: opt(t.Boolean()),
    top_logprobs: opt(t.Integer({ minimum: 0, maximum: 20 })),
    response_format: opt(
      t.Object(
        {
          type: t.Union([t.Literal("text"), t.Literal("json_object"), t.Literal("json_schema")]),
          json_schema: t.Optional(
            t.Object({
              name: t.Optional(t.String()),
              description: t.Optional(t.String()),
              schema: t.Optional(t.Record(t.String(), t.Unknown())),
              strict: opt(t.Boolean()),
            }),
          ),
        },
        { additionalProperties: true },
      ),
    ),
    tools: opt(t.Array(t.Object({ type: t.String(), function: FunctionDef }), { maxItems: LIMITS.tools })),
    tool_choice: opt(
      t.Union([
        t.Literal("none"),
        t.Literal("auto"),
        t.Literal("required"),
        t.Object({ type: t.String(), function: t.Object({ name: t.String() }) }),
      ]),
    ),
    parallel_tool_calls: opt(t.Boolean()),
    // reasoning models: OpenAI's effort (and its Responses-style spelling), the template's
    // own switches, and a thinking budget (llama.cpp's name too)
    reasoning_effort: opt(t.String({ maxLength: 32 })),
    reasoning: opt(t.Object({ effort: opt(t.String({ maxLength: 32 })) })),
    chat_template_kwargs: opt(t.Record(t.String(), t.Unknown())),
    reasoning_budget: opt(t.Integer({ minimum: -1 })),
    thinking_budget_tokens: opt(t.Integer({ minimum: -1 })),
    functions: opt(t.Array(FunctionDef, { maxItems: LIMITS.tools })),
    function_call: opt(t.Union([t.Literal("none"), t.Literal("auto"), t.Object({ name: t.String() })])),
    ...sampling,
  },
  { description: "POST /v1/chat/completions" },
);
export type ChatCompletionRequest = Static<typeof ChatCompletionRequest>;

export const EmbeddingRequest = t.Object(
  {
    model: t.String(),
    input: t.Union([
      t.String(),
      t.Array(t.String(), { minItems: 1, maxItems: LIMITS.embeddingInputs }),
      TokenArray,
      t.Array(TokenArray, { minItems: 1, maxItems: LIMITS.embeddingInputs }),
    ]),
    encoding_format: opt(t.Union([t.Literal("float"), t.Literal("base64")])),
    dimensions: opt(t.Integer({ minimum: 1 })),
    user: opt(t.String()),
  },
  { description: "POST /v1/embeddings" },
);
export type EmbeddingRequest = Static<typeof EmbeddingRequest>;

/** The schemas as Elysia models, referenced by name from the routes and the OpenAPI document. */
export const openaiModels = new Elysia({ name: "openai-models" }).model({
  CompletionRequest,
  ChatCompletionRequest,
  EmbeddingRequest,
});
