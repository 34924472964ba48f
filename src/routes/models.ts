// GET /v1/models, GET /v1/models/{model}, and the legacy /v1/engines shapes of the same.
import { Elysia } from "elysia";
import { ApiError } from "../http/errors";
import { pathParam, wildcardParam } from "../http/params";
import { engineObject, modelObject } from "../openai/responses";
import type { Services } from "../services";

export const modelRoutes = (svc: Services) =>
  new Elysia({ name: "routes/models" })
    .use(svc)
    .get(
      "/models",
      ({ registry }) => ({ object: "list", data: registry.list().map((e) => modelObject(registry.info(e))) }),
      {
        detail: { summary: "List models", tags: ["Models"] },
      },
    )
    .get(
      "/models/*",
      ({ registry, params }) => {
        const id = wildcardParam(params["*"], "model");
        const e = registry.entry(id);
        if (!e) throw ApiError.notFound(`The model '${id}' does not exist`, "model", "model_not_found");
        return modelObject(registry.info(e));
      },
      { detail: { summary: "Retrieve a model", tags: ["Models"] } },
    )
    .delete("/models/*", ({ params, stores }) => stores.fineTunes.deleteModel(wildcardParam(params["*"], "model")), {
      detail: { summary: "Delete a fine-tuned model (base models cannot be deleted: 400)", tags: ["Models"] },
    })
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
