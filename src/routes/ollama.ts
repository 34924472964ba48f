// Ollama's native API under /api: tags, show, chat, generate, embed,
// embeddings, ps, version, pull, delete, copy. One more adapter over the same
// engine request; errors on these routes are Ollama's {"error": "..."} (the
// HTTP layer picks the dialect by path). Streams are NDJSON unless stream is false.
import { Elysia } from "elysia";
import { invalid } from "../errors";
import { precheck } from "../http/validate";
import { keepAliveMs, servedId } from "../ollama/convert";
import { Clock } from "../ollama/output";
import { pullLines } from "../ollama/pull";
import {
  ChatRequest,
  CopyRequest,
  EmbeddingsRequest,
  EmbedRequest,
  GenerateRequest,
  ModelName,
  PullRequest,
} from "../ollama/schemas";
import type { Services } from "../services";
import { type RequestContext, streamResponse, withModel } from "../services/generation";
import { ollamaEmbed, ollamaEntry, ollamaTurn, ps, show, tags } from "../services/ollama";

/** The Ollama API version llmatic speaks (clients check it before using newer fields). */
export const OLLAMA_VERSION = "0.12.0";

export const ollamaRoutes = (svc: Services) =>
  new Elysia({ name: "routes/ollama", prefix: "/api" })
    .use(svc)
    .model({ OllamaChat: ChatRequest, OllamaGenerate: GenerateRequest })
    .get("/version", () => ({ version: OLLAMA_VERSION }), {
      detail: { summary: "Ollama API version", tags: ["Ollama"] },
    })
    .get("/tags", ({ registry }) => tags(registry), {
      detail: { summary: "List models, Ollama's way", tags: ["Ollama"] },
    })
    .get("/ps", ({ registry }) => ps(registry), { detail: { summary: "Loaded models", tags: ["Ollama"] } })
    .post("/show", ({ body, registry, config }) => show(registry, body.model ?? body.name, config.sampling), {
      body: ModelName,
      transform: precheck(ModelName),
      detail: { summary: "A model's details, template and capabilities", tags: ["Ollama"] },
    })
    .post(
      "/chat",
      ({ body, registry, config, metrics, request, server }) =>
        ollamaTurn({ registry, request, server, config }, body, "chat", metrics),
      {
        body: "OllamaChat",
        transform: precheck(ChatRequest),
        detail: { summary: "Chat (NDJSON stream unless stream is false)", tags: ["Ollama"] },
      },
    )
    .post(
      "/generate",
      ({ body, registry, config, metrics, request, server }) =>
        ollamaTurn({ registry, request, server, config }, body, "generate", metrics),
      {
        body: "OllamaGenerate",
        transform: precheck(GenerateRequest),
        detail: { summary: "Generate from a prompt (NDJSON stream unless stream is false)", tags: ["Ollama"] },
      },
    )
    .post(
      "/embed",
      ({ body, registry, config, request, server }) => {
        const e = ollamaEntry(registry, body.model);
        const clock = new Clock();
        return withModel(
          { registry, request, server, config },
          e.id,
          (engine) => {
            clock.loaded = performance.now();
            return ollamaEmbed(engine, body, clock, request.signal);
          },
          { keepAliveMs: keepAliveMs(body.keep_alive) },
        );
      },
      {
        body: EmbedRequest,
        transform: precheck(EmbedRequest),
        detail: { summary: "Embeddings for one or more inputs", tags: ["Ollama"] },
      },
    )
    .post(
      "/embeddings",
      async ({ body, registry, config, request, server }) => {
        const e = ollamaEntry(registry, body.model);
        const r = await withModel(
          { registry, request, server, config },
          e.id,
          (engine) =>
            ollamaEmbed(engine, { model: body.model, input: body.prompt, truncate: true }, new Clock(), request.signal),
          { keepAliveMs: keepAliveMs(body.keep_alive) },
        );
        return { embedding: r.embeddings[0] ?? [] };
      },
      {
        body: EmbeddingsRequest,
        transform: precheck(EmbeddingsRequest),
        detail: { summary: "One embedding (Ollama's older route)", tags: ["Ollama"] },
      },
    )
    .post(
      "/pull",
      async ({ body, stores, config, request, server, registry }) => {
        const model = body.model ?? body.name;
        if (!model) throw invalid("model is required", "model");
        const h = stores.library.pull(model);
        if (body.stream === false) {
          await h.done;
          return { status: "success" };
        }
        const lines = async function* () {
          let first = true;
          for await (const p of h.changes()) {
            for (const l of pullLines(p, first)) yield l;
            first = false;
          }
        };
        const ctx: RequestContext = { registry, request, server, config };
        return streamResponse(ctx, null, lines(), "ndjson");
      },
      {
        body: PullRequest,
        transform: precheck(PullRequest),
        detail: { summary: "Pull a model from the Hugging Face hub (NDJSON progress)", tags: ["Ollama"] },
      },
    )
    .delete(
      "/delete",
      async ({ body, stores, registry }) => {
        const name = body.model ?? body.name;
        if (!name) throw invalid("model is required", "model");
        await stores.library.delete(servedId(name, (id) => registry.entry(id) !== undefined));
        return new Response(null, { status: 200 });
      },
      {
        body: ModelName,
        transform: precheck(ModelName),
        detail: { summary: "Delete a model pulled or copied over HTTP", tags: ["Ollama"] },
      },
    )
    .post(
      "/copy",
      ({ body, stores, registry }) => {
        stores.library.copy(
          servedId(body.source, (id) => registry.entry(id) !== undefined),
          body.destination,
        );
        return new Response(null, { status: 200 });
      },
      {
        body: CopyRequest,
        transform: precheck(CopyRequest),
        detail: { summary: "Serve a model under another name too", tags: ["Ollama"] },
      },
    );
