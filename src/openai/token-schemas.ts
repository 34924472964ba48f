// Requests of llama-server's token tools (/tokenize, /detokenize,
// /apply-template) and of rerank (Jina/Cohere's shape), declared once.
import { type Static, type TSchema, t } from "elysia";
import { LIMITS } from "./limits";
import { ChatCompletionRequest } from "./schemas";

const opt = <T extends TSchema>(s: T) => t.Optional(t.Union([s, t.Null()]));

/** Bytes of text one tokenize call takes (a few hundred thousand tokens). */
const MAX_TEXT = 1 << 20;

export const TokenizeRequest = t.Object({
  model: opt(t.String({ maxLength: 512 })),
  content: t.String({ maxLength: MAX_TEXT }),
  add_special: opt(t.Boolean()),
  parse_special: opt(t.Boolean()),
  with_pieces: opt(t.Boolean()),
});
export const DetokenizeRequest = t.Object({
  model: opt(t.String({ maxLength: 512 })),
  tokens: t.Array(t.Integer({ minimum: 0 }), { maxItems: LIMITS.promptTokens }),
});
/** A chat completions body whose model is optional: what the template renders is what chat would send. */
export const ApplyTemplateRequest = t.Composite([
  t.Omit(ChatCompletionRequest, ["model"]),
  t.Object({ model: opt(t.String({ maxLength: 512 })) }),
]);
const Document = t.Union([t.String(), t.Object({ text: t.String() })]);
export const RerankRequest = t.Object({
  model: opt(t.String({ maxLength: 512 })),
  query: t.String({ minLength: 1, maxLength: 1 << 16 }),
  documents: t.Array(Document, { minItems: 1, maxItems: 1024 }),
  top_n: opt(t.Integer({ minimum: 1 })),
  return_documents: opt(t.Boolean()),
});
export type RerankRequest = Static<typeof RerankRequest>;
