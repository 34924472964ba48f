// Ollama's native API requests as llmatic accepts them (TypeBox, declared once).
// Lenient like Ollama: unknown fields and options are ignored; what llmatic
// cannot do (a custom template, images for a model without a projector) is a
// 400 that says so.
import { type Static, type TSchema, t } from "elysia";
import { LIMITS } from "../openai/limits";

const opt = <T extends TSchema>(s: T) => t.Optional(t.Union([s, t.Null()]));

/** `options`: the ones llmatic uses are typed; the rest (num_gpu, use_mmap, ...) are read past. */
export const Options = t.Object({
  num_predict: opt(t.Integer({ minimum: -2 })),
  num_ctx: opt(t.Integer({ minimum: 0 })),
  temperature: opt(t.Number({ minimum: 0, maximum: 100 })),
  top_k: opt(t.Integer({ minimum: 0, maximum: LIMITS.topK })),
  top_p: opt(t.Number({ minimum: 0, maximum: 1 })),
  min_p: opt(t.Number({ minimum: 0, maximum: 1 })),
  seed: opt(t.Integer()),
  stop: opt(
    t.Union([
      t.String({ maxLength: LIMITS.stopLength }),
      t.Array(t.String({ maxLength: LIMITS.stopLength }), { maxItems: 16 }),
    ]),
  ),
  repeat_penalty: opt(t.Number({ minimum: 0, maximum: 100 })),
  repeat_last_n: opt(t.Integer({ minimum: -1 })),
  presence_penalty: opt(t.Number({ minimum: -2, maximum: 2 })),
  frequency_penalty: opt(t.Number({ minimum: -2, maximum: 2 })),
});
export type Options = Static<typeof Options>;

const Images = opt(t.Array(t.String(), { maxItems: 64 }));
const KeepAlive = opt(t.Union([t.String({ maxLength: 32 }), t.Number()]));
const Think = opt(t.Union([t.Boolean(), t.String({ maxLength: 16 })]));
/** "json", or a JSON schema */
const Format = opt(t.Union([t.String({ maxLength: 16 }), t.Record(t.String(), t.Unknown())]));

export const OllamaToolCall = t.Object({
  function: t.Object({
    name: t.String({ maxLength: 256 }),
    arguments: t.Optional(t.Unknown()),
  }),
});

export const OllamaMessage = t.Object({
  role: t.String({ maxLength: 32 }),
  content: opt(t.String()),
  thinking: opt(t.String()),
  images: Images,
  tool_calls: opt(t.Array(OllamaToolCall, { maxItems: LIMITS.tools })),
  tool_name: opt(t.String({ maxLength: 256 })),
});
export type OllamaMessage = Static<typeof OllamaMessage>;

export const OllamaTool = t.Object({
  type: opt(t.String({ maxLength: 32 })),
  function: t.Object({
    name: t.String({ maxLength: 256 }),
    description: opt(t.String()),
    parameters: opt(t.Record(t.String(), t.Unknown())),
  }),
});

const common = {
  model: t.String({ maxLength: 512 }),
  stream: opt(t.Boolean()),
  format: Format,
  keep_alive: KeepAlive,
  think: Think,
  options: opt(Options),
};

export const ChatRequest = t.Object(
  {
    ...common,
    messages: opt(t.Array(OllamaMessage, { maxItems: LIMITS.messages })),
    tools: opt(t.Array(OllamaTool, { maxItems: LIMITS.tools })),
  },
  { description: "POST /api/chat" },
);
export type ChatRequest = Static<typeof ChatRequest>;

export const GenerateRequest = t.Object(
  {
    ...common,
    prompt: opt(t.String()),
    suffix: opt(t.String()),
    system: opt(t.String()),
    template: opt(t.String()),
    raw: opt(t.Boolean()),
    images: Images,
    context: opt(t.Array(t.Integer(), { maxItems: LIMITS.promptTokens })),
  },
  { description: "POST /api/generate" },
);
export type GenerateRequest = Static<typeof GenerateRequest>;

export const EmbedRequest = t.Object(
  {
    model: t.String({ maxLength: 512 }),
    input: t.Union([t.String(), t.Array(t.String(), { maxItems: LIMITS.embeddingInputs })]),
    truncate: opt(t.Boolean()),
    dimensions: opt(t.Integer({ minimum: 1 })),
    keep_alive: KeepAlive,
    options: opt(Options),
  },
  { description: "POST /api/embed" },
);
export type EmbedRequest = Static<typeof EmbedRequest>;

export const EmbeddingsRequest = t.Object(
  { model: t.String({ maxLength: 512 }), prompt: t.String(), keep_alive: KeepAlive, options: opt(Options) },
  { description: "POST /api/embeddings (Ollama's older embedding route)" },
);
export type EmbeddingsRequest = Static<typeof EmbeddingsRequest>;

/** show, delete: Ollama's clients also send the older `name`. */
export const ModelName = t.Object({
  model: opt(t.String({ maxLength: 512 })),
  name: opt(t.String({ maxLength: 512 })),
  verbose: opt(t.Boolean()),
});
export type ModelName = Static<typeof ModelName>;

export const PullRequest = t.Object({
  model: opt(t.String({ maxLength: 512 })),
  name: opt(t.String({ maxLength: 512 })),
  stream: opt(t.Boolean()),
  insecure: opt(t.Boolean()),
});
export type PullRequest = Static<typeof PullRequest>;

export const CopyRequest = t.Object({
  source: t.String({ maxLength: 512 }),
  destination: t.String({ maxLength: 512 }),
});
export type CopyRequest = Static<typeof CopyRequest>;
