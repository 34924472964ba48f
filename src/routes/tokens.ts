// llama-server's token tools, by its names and under /v1 too: POST /tokenize,
// /detokenize, /apply-template; and rerank (POST /rerank, /v1/rerank) in the
// Jina/Cohere shape. The model is optional: --default-model, else the first.
import { Elysia } from "elysia";
import { invalid } from "../errors";
import { precheck } from "../http/validate";
import { chatPlan } from "../openai/convert";
import { ApplyTemplateRequest, DetokenizeRequest, RerankRequest, TokenizeRequest } from "../openai/token-schemas";
import type { Services } from "../services";
import { withModel } from "../services/generation";
import { rerank } from "../services/rerank";

/** llama-server's tools take a missing model as the default one. */
function modelOf(
  registry: Services["decorator"]["registry"],
  configured: string | null,
  id: string | null | undefined,
) {
  const model = id || registry.defaultId(configured);
  if (!model) throw invalid("no model is served", "model");
  return model;
}

/** Mounted twice: at the root (llama-server's paths) and under /v1; `at` tells the two apart. */
export const tokenRoutes = (svc: Services, at: "root" | "v1") =>
  new Elysia({ name: `routes/tokens/${at}` })
    .use(svc)
    .post(
      "/tokenize",
      ({ body, registry, config, request, server }) =>
        withModel(
          { registry, request, server, config },
          modelOf(registry, config.defaultModel, body.model),
          async (engine) => {
            const tokens = await engine.tokenize(body.content, body.add_special ?? false, body.parse_special ?? true);
            if (!body.with_pieces) return { tokens };
            const pieces = await Promise.all(tokens.map((id) => engine.detokenize([id])));
            return { tokens: tokens.map((id, i) => ({ id, piece: pieces[i] as string })) };
          },
        ),
      {
        body: TokenizeRequest,
        transform: precheck(TokenizeRequest),
        detail: { summary: "Tokenize text (llama-server's /tokenize)", tags: ["Tokens"] },
      },
    )
    .post(
      "/detokenize",
      ({ body, registry, config, request, server }) =>
        withModel(
          { registry, request, server, config },
          modelOf(registry, config.defaultModel, body.model),
          async (engine) => {
            const bad = body.tokens.findIndex((x) => x >= engine.info.nVocab);
            if (bad >= 0)
              throw invalid(
                `token id ${body.tokens[bad]} is out of range (vocabulary has ${engine.info.nVocab})`,
                `tokens[${bad}]`,
              );
            return { content: await engine.detokenize(body.tokens) };
          },
        ),
      {
        body: DetokenizeRequest,
        transform: precheck(DetokenizeRequest),
        detail: { summary: "Tokens back to text (llama-server's /detokenize)", tags: ["Tokens"] },
      },
    )
    .post(
      "/apply-template",
      ({ body, registry, config, request, server }) =>
        withModel(
          { registry, request, server, config },
          modelOf(registry, config.defaultModel, body.model),
          async (engine) => {
            const plan = chatPlan({ ...body, model: engine.info.id }, config.sampling, engine.info);
            const r = await engine.renderPrompt(plan.request);
            return { prompt: r.text ?? "" };
          },
        ),
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
        withModel({ registry, request, server, config }, modelOf(registry, config.defaultModel, body.model), (engine) =>
          rerank(engine, body, { defaults: config.sampling, signal: request.signal, metrics }),
        ),
      {
        body: RerankRequest,
        transform: precheck(RerankRequest),
        detail: { summary: "Rerank documents for a query (Jina/Cohere shape)", tags: ["Rerank"] },
      },
    );
