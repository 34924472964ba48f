// llama-server's token tools, by its names and under /v1 too: POST /tokenize,
// /detokenize, /apply-template; and rerank (POST /rerank, /v1/rerank) in the
// Jina/Cohere shape. The model is optional: --default-model, else the first.
import { Elysia, type Static, t } from "elysia";
import { invalid } from "../errors";
import { precheck } from "../http/validate";
import { chatPlan } from "../openai/convert";
import { LIMITS } from "../openai/limits";
import { ChatMessage } from "../openai/schemas";
import type { Services } from "../services";
import { withModel } from "../services/generation";
import { rerank } from "../services/rerank";

const opt = <T extends import("elysia").TSchema>(s: T) => t.Optional(t.Union([s, t.Null()]));

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
export const ApplyTemplateRequest = t.Object(
  {
    model: opt(t.String({ maxLength: 512 })),
    messages: t.Array(ChatMessage, { minItems: 1, maxItems: LIMITS.messages }),
    tools: t.Optional(t.Unknown()),
    chat_template_kwargs: opt(t.Record(t.String(), t.Unknown())),
    reasoning_effort: opt(t.String({ maxLength: 32 })),
  },
  { additionalProperties: true },
);
const Document = t.Union([t.String(), t.Object({ text: t.String() })]);
export const RerankRequest = t.Object({
  model: opt(t.String({ maxLength: 512 })),
  query: t.String({ minLength: 1, maxLength: 1 << 16 }),
  documents: t.Array(Document, { minItems: 1, maxItems: 1024 }),
  top_n: opt(t.Integer({ minimum: 1 })),
  return_documents: opt(t.Boolean()),
});
export type RerankRequest = Static<typeof RerankRequest>;

/** Ollama and llama-server accept a missing model: the default one. */
function modelOf(
  svc: { registry: Services["decorator"]["registry"]; config: Services["decorator"]["config"] },
  id: string | null | undefined,
): string {
  if (id) return id;
  const fallback = svc.config.defaultModel ?? svc.registry.list()[0]?.id;
  if (!fallback) throw invalid("no model is served", "model");
  return fallback;
}

/** Mounted twice: at the root (llama-server's paths) and under /v1; `at` tells the two apart. */
export const tokenRoutes = (svc: Services, at: "root" | "v1") =>
  new Elysia({ name: `routes/tokens/${at}` })
    .use(svc)
    .post(
      "/tokenize",
      ({ body, registry, config, request, server }) =>
        withModel({ registry, request, server, config }, modelOf({ registry, config }, body.model), async (engine) => {
          const tokens = await engine.tokenize(body.content, body.add_special ?? false, body.parse_special ?? true);
          if (!body.with_pieces) return { tokens };
          const pieces = await Promise.all(tokens.map((id) => engine.detokenize([id])));
          return { tokens: tokens.map((id, i) => ({ id, piece: pieces[i] as string })) };
        }),
      {
        body: TokenizeRequest,
        transform: precheck(TokenizeRequest),
        detail: { summary: "Tokenize text (llama-server's /tokenize)", tags: ["Tokens"] },
      },
    )
    .post(
      "/detokenize",
      ({ body, registry, config, request, server }) =>
        withModel({ registry, request, server, config }, modelOf({ registry, config }, body.model), async (engine) => {
          const bad = body.tokens.findIndex((x) => x >= engine.info.nVocab);
          if (bad >= 0)
            throw invalid(
              `token id ${body.tokens[bad]} is out of range (vocabulary has ${engine.info.nVocab})`,
              `tokens[${bad}]`,
            );
          return { content: await engine.detokenize(body.tokens) };
        }),
      {
        body: DetokenizeRequest,
        transform: precheck(DetokenizeRequest),
        detail: { summary: "Tokens back to text (llama-server's /detokenize)", tags: ["Tokens"] },
      },
    )
    .post(
      "/apply-template",
      ({ body, registry, config, request, server }) =>
        withModel({ registry, request, server, config }, modelOf({ registry, config }, body.model), async (engine) => {
          const chat = { ...body, model: engine.info.id } as unknown as Parameters<typeof chatPlan>[0];
          const plan = chatPlan(chat, config.sampling, engine.info);
          const r = await engine.renderPrompt(plan.request);
          return { prompt: r.text ?? "" };
        }),
      {
        body: ApplyTemplateRequest,
        transform: precheck(ApplyTemplateRequest),
        detail: {
          summary: "Messages rendered by the model's chat template (llama-server's /apply-template)",
          tags: ["Tokens"],
        },
      },
    )
    .post(
      "/rerank",
      ({ body, registry, config, metrics, request, server }) =>
        withModel({ registry, request, server, config }, modelOf({ registry, config }, body.model), (engine) =>
          rerank(engine, body, { defaults: config.sampling, signal: request.signal, metrics }),
        ),
      {
        body: RerankRequest,
        transform: precheck(RerankRequest),
        detail: { summary: "Rerank documents for a query (Jina/Cohere shape)", tags: ["Rerank"] },
      },
    );
