// POST /v1/embeddings: pooled, normalised vectors as float arrays or base64 float32.
import { Elysia } from "elysia";
import { precheck } from "../http/validate";
import { EmbeddingRequest, openaiModels } from "../openai/schemas";
import type { Services } from "../services";
import { withModel } from "../services/generation";
import { embeddings } from "../services/openai";

export const embeddingRoutes = (svc: Services) =>
  new Elysia({ name: "routes/embeddings" })
    .use(svc)
    .use(openaiModels)
    .post(
      "/embeddings",
      ({ body, registry, config, request, server }) =>
        withModel({ registry, request, server, config }, body.model, (engine) =>
          embeddings(engine, body, { signal: request.signal }),
        ),
      {
        body: "EmbeddingRequest",
        transform: precheck(EmbeddingRequest),
        detail: { summary: "Create embeddings", tags: ["Embeddings"] },
      },
    );
