// POST /v1/embeddings: pooled, normalised vectors as float arrays or base64 float32.
import { Elysia } from "elysia";
import { precheck } from "../http/validate";
import { embeddingInputs, embeddingToBase64 } from "../openai/convert";
import { EmbeddingRequest, openaiModels } from "../openai/schemas";
import type { Services } from "../services";
import { withModel } from "../services/generation";

export const embeddingRoutes = (svc: Services) =>
  new Elysia({ name: "routes/embeddings" })
    .use(svc)
    .use(openaiModels)
    .post(
      "/embeddings",
      ({ body, registry, config, request, server }) =>
        withModel({ registry, request, server, config }, body.model, async (engine) => {
          const inputs = embeddingInputs(body, engine.info);
          const r = await engine.embed(inputs, request.signal);
          const base64 = body.encoding_format === "base64";
          return {
            object: "list" as const,
            data: r.vectors.map((v, index) => ({
              object: "embedding" as const,
              index,
              embedding: base64 ? embeddingToBase64(v) : Array.from(v),
            })),
            model: engine.info.id,
            usage: { prompt_tokens: r.promptTokens, total_tokens: r.promptTokens },
          };
        }),
      {
        body: "EmbeddingRequest",
        transform: precheck(EmbeddingRequest),
        detail: { summary: "Create embeddings", tags: ["Embeddings"] },
      },
    );
