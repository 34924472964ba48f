// GET /v1/models (with what UIs look for: state, context length, capabilities,
// size), GET /v1/models/{model}, the legacy /v1/engines shapes of the same, and
// models managed over HTTP: load, unload, pull (progress as SSE), delete.
import { Elysia, t } from "elysia";
import { ApiError } from "../http/errors";
import { pathParam, wildcardParam } from "../http/params";
import { precheck } from "../http/validate";
import { keepAliveMs } from "../ollama/convert";
import { engineObject } from "../openai/responses";
import type { Services } from "../services";
import { streamResponse } from "../services/generation";
import type { PullHandle } from "../services/library";
import { modelCard } from "../services/models";

const LoadRequest = t.Object({
  model: t.String({ maxLength: 512 }),
  keep_alive: t.Optional(t.Union([t.String({ maxLength: 32 }), t.Number(), t.Null()])),
});
const PullRequest = t.Object({
  model: t.String({ maxLength: 512 }),
  stream: t.Optional(t.Union([t.Boolean(), t.Null()])),
});

async function* pullFrames(h: PullHandle) {
  for await (const p of h.changes()) yield { ...p, object: "model.pull" };
}

export const modelRoutes = (svc: Services) =>
  new Elysia({ name: "routes/models" })
    .use(svc)
    .get("/models", ({ registry }) => ({ object: "list", data: registry.list().map((e) => modelCard(registry, e)) }), {
      detail: { summary: "List models", tags: ["Models"] },
    })
    .get(
      "/models/*",
      ({ registry, params }) => {
        const id = wildcardParam(params["*"], "model");
        const e = registry.entry(id);
        if (!e) throw ApiError.notFound(`The model '${id}' does not exist`, "model", "model_not_found");
        return modelCard(registry, e);
      },
      { detail: { summary: "Retrieve a model", tags: ["Models"] } },
    )
    .post(
      "/models/load",
      async ({ body, registry, request }) => {
        const e = await registry.loadNow(body.model, request.signal, keepAliveMs(body.keep_alive));
        return modelCard(registry, e);
      },
      {
        body: LoadRequest,
        transform: precheck(LoadRequest),
        detail: { summary: "Load a model now (resolves when it is ready)", tags: ["Models"] },
      },
    )
    .post(
      "/models/unload",
      async ({ body, registry }) => {
        const unloaded = await registry.unloadNow(body.model);
        const e = registry.entry(body.model);
        return { ...(e ? modelCard(registry, e) : {}), unloaded };
      },
      {
        body: LoadRequest,
        transform: precheck(LoadRequest),
        detail: { summary: "Unload a model (requests in flight finish first)", tags: ["Models"] },
      },
    )
    .post(
      "/models/pull",
      async ({ body, stores, registry, config, request, server }) => {
        const h = stores.library.pull(body.model);
        if (!body.stream) return { ...h.progress, object: "model.pull" };
        return streamResponse({ registry, request, server, config }, null, pullFrames(h));
      },
      {
        body: PullRequest,
        transform: precheck(PullRequest),
        detail: {
          summary: "Pull a model from the hub: its progress at once, or as SSE with stream: true",
          tags: ["Models"],
        },
      },
    )
    .get(
      "/models/pull/:id",
      ({ params, stores, registry, config, request, server }) =>
        streamResponse(
          { registry, request, server, config },
          null,
          pullFrames(stores.library.pullById(pathParam(params.id, "id"))),
        ),
      { detail: { summary: "A pull's progress as SSE, until it succeeds or fails", tags: ["Models"] } },
    )
    .delete(
      "/models/*",
      async ({ params, stores }) => {
        const id = wildcardParam(params["*"], "model");
        if (!stores.library.owns(id)) return stores.fineTunes.deleteModel(id);
        await stores.library.delete(id);
        return { id, object: "model", deleted: true };
      },
      {
        detail: {
          summary: "Delete a fine-tuned or pulled model (models served from --model cannot be deleted: 400)",
          tags: ["Models"],
        },
      },
    )
    .get(
      "/engines",
      ({ registry }) => ({
        object: "list",
        data: registry.list().map((e) => engineObject(registry.info(e), e.state === "ready")),
      }),
      { detail: { summary: "List engines (deprecated shape of /models)", tags: ["Engines"] } },
    )
    .get(
      "/engines/:engine_id",
      ({ registry, params }) => {
        const id = pathParam(params.engine_id, "engine_id");
        const e = registry.entry(id);
        if (!e) throw ApiError.notFound(`The engine '${id}' does not exist`, "engine_id", "model_not_found");
        return engineObject(registry.info(e), e.state === "ready");
      },
      { detail: { summary: "Retrieve an engine (deprecated shape of /models/{model})", tags: ["Engines"] } },
    );
