// Request schemas of the legacy endpoints of the 1.2.0 contract (edits, search,
// answers, classifications, moderations) and of batches, declared once with `t`.
import { Elysia, type Static, type TSchema, t } from "elysia";
import { LIMITS } from "./limits";

const opt = <T extends TSchema>(s: T) => t.Optional(t.Union([s, t.Null()]));
const Text = (max = 1_000_000) => t.String({ maxLength: max });
const StopString = t.String({ maxLength: LIMITS.stopLength });
const Stop = t.Union([StopString, t.Array(StopString, { minItems: 1, maxItems: LIMITS.stop })]);
const LogitBias = t.Record(t.String(), t.Number({ minimum: -100, maximum: 100 }), { maxProperties: LIMITS.logitBias });
const Expand = t.Array(t.Unknown(), { maxItems: 8 });

export const EditRequest = t.Object(
  {
    model: t.String(),
    input: opt(Text()),
    instruction: Text(),
    n: opt(t.Integer({ minimum: 1, maximum: 20 })),
    temperature: opt(t.Number({ minimum: 0, maximum: 2 })),
    top_p: opt(t.Number({ minimum: 0, maximum: 1 })),
  },
  { description: "POST /v1/edits" },
);
export type EditRequest = Static<typeof EditRequest>;

export const SearchRequest = t.Object(
  {
    query: t.String({ minLength: 1, maxLength: 100_000 }),
    documents: opt(t.Array(Text(), { minItems: 1, maxItems: 200 })),
    file: opt(t.String()),
    max_rerank: opt(t.Integer({ minimum: 1, maximum: 10_000 })),
    return_metadata: opt(t.Boolean()),
    user: opt(t.String()),
  },
  { description: "POST /v1/engines/{engine_id}/search" },
);
export type SearchRequest = Static<typeof SearchRequest>;

const Pair = t.Array(t.String({ minLength: 1, maxLength: 100_000 }), { minItems: 2, maxItems: 2 });

export const AnswerRequest = t.Object(
  {
    model: t.String(),
    question: t.String({ minLength: 1, maxLength: 100_000 }),
    examples: t.Array(Pair, { minItems: 1, maxItems: 200 }),
    examples_context: Text(),
    documents: opt(t.Array(Text(), { maxItems: 200 })),
    file: opt(t.String()),
    search_model: opt(t.String()),
    max_rerank: opt(t.Integer({ minimum: 1, maximum: 10_000 })),
    temperature: opt(t.Number({ minimum: 0, maximum: 2 })),
    logprobs: opt(t.Integer({ minimum: 0, maximum: 5 })),
    max_tokens: opt(t.Integer({ minimum: 0, maximum: 1 << 20 })),
    stop: opt(Stop),
    n: opt(t.Integer({ minimum: 1, maximum: 10 })),
    logit_bias: opt(LogitBias),
    return_metadata: opt(t.Boolean()),
    return_prompt: opt(t.Boolean()),
    expand: opt(Expand),
    user: opt(t.String()),
  },
  { description: "POST /v1/answers" },
);
export type AnswerRequest = Static<typeof AnswerRequest>;

export const ClassificationRequest = t.Object(
  {
    model: t.String(),
    query: t.String({ minLength: 1, maxLength: 100_000 }),
    examples: opt(t.Array(Pair, { minItems: 2, maxItems: 200 })),
    file: opt(t.String()),
    labels: opt(t.Array(t.String({ minLength: 1, maxLength: 200 }), { minItems: 2, maxItems: 200 })),
    search_model: opt(t.String()),
    temperature: opt(t.Number({ minimum: 0, maximum: 2 })),
    logprobs: opt(t.Integer({ minimum: 0, maximum: 5 })),
    max_examples: opt(t.Integer({ minimum: 1, maximum: 10_000 })),
    logit_bias: opt(LogitBias),
    return_prompt: opt(t.Boolean()),
    return_metadata: opt(t.Boolean()),
    expand: opt(Expand),
    user: opt(t.String()),
  },
  { description: "POST /v1/classifications" },
);
export type ClassificationRequest = Static<typeof ClassificationRequest>;

export const ModerationRequest = t.Object(
  {
    input: t.Union([Text(), t.Array(Text(), { maxItems: 32 })]),
    model: opt(t.String()),
  },
  { description: "POST /v1/moderations" },
);
export type ModerationRequest = Static<typeof ModerationRequest>;

export const BatchRequest = t.Object(
  {
    input_file_id: t.String(),
    endpoint: t.Union([t.Literal("/v1/chat/completions"), t.Literal("/v1/completions"), t.Literal("/v1/embeddings")]),
    completion_window: t.String({ maxLength: 16 }),
    metadata: opt(t.Record(t.String({ maxLength: 64 }), t.String({ maxLength: 512 }), { maxProperties: 16 })),
  },
  { description: "POST /v1/batches" },
);
export type BatchRequest = Static<typeof BatchRequest>;

export const FineTuneRequest = t.Object(
  {
    training_file: t.String(),
    validation_file: opt(t.String()),
    model: opt(t.String()),
    n_epochs: opt(t.Integer({ minimum: 1, maximum: 100 })),
    batch_size: opt(t.Integer({ minimum: 1, maximum: 256 })),
    learning_rate_multiplier: opt(t.Number({ exclusiveMinimum: 0, maximum: 100 })),
    prompt_loss_weight: opt(t.Number({ minimum: 0, maximum: 1 })),
    compute_classification_metrics: opt(t.Boolean()),
    classification_n_classes: opt(t.Integer({ minimum: 2, maximum: 1000 })),
    classification_positive_class: opt(t.String({ maxLength: 200 })),
    classification_betas: opt(t.Array(t.Number({ exclusiveMinimum: 0, maximum: 100 }), { maxItems: 8 })),
    suffix: opt(t.String({ minLength: 1, maxLength: 40 })),
  },
  { description: "POST /v1/fine-tunes" },
);
export type FineTuneRequest = Static<typeof FineTuneRequest>;

export const legacyModels = new Elysia({ name: "legacy-models" }).model({
  FineTuneRequest,
  EditRequest,
  SearchRequest,
  AnswerRequest,
  ClassificationRequest,
  ModerationRequest,
  BatchRequest,
});
