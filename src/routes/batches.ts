// /v1/batches: a file of requests run at batch priority, with output and error
// files in OpenAI's shapes; state persisted, resumed after a restart.
import { Elysia, t } from "elysia";
import { pathParam } from "../http/params";
import { precheck } from "../http/validate";
import { BatchRequest, legacyModels } from "../openai/legacy-schemas";
import type { Services } from "../services";

export const batchRoutes = (svc: Services) =>
  new Elysia({ name: "routes/batches" })
    .use(svc)
    .use(legacyModels)
    .post("/batches", ({ body, stores }) => stores.batches.create(body), {
      body: "BatchRequest",
      transform: precheck(BatchRequest),
      detail: { summary: "Create a batch from a file of requests", tags: ["Batches"] },
    })
    .get(
      "/batches",
      ({ stores, query }) => {
        const all = stores.batches.list();
        const start = query.after ? all.findIndex((b) => b.id === query.after) + 1 : 0;
        const data = all.slice(start, start + (query.limit ?? 20));
        return {
          object: "list" as const,
          data,
          first_id: data[0]?.id ?? null,
          last_id: data.at(-1)?.id ?? null,
          has_more: start + data.length < all.length,
        };
      },
      {
        query: t.Object({ limit: t.Optional(t.Integer({ minimum: 1, maximum: 100 })), after: t.Optional(t.String()) }),
        detail: { summary: "List batches, newest first", tags: ["Batches"] },
      },
    )
    .get("/batches/:batch_id", ({ stores, params }) => stores.batches.get(pathParam(params.batch_id, "batch_id")), {
      detail: { summary: "Retrieve a batch", tags: ["Batches"] },
    })
    .post(
      "/batches/:batch_id/cancel",
      ({ stores, params }) => stores.batches.cancel(pathParam(params.batch_id, "batch_id")),
      {
        parse: () => null,
        detail: { summary: "Cancel a batch (what finished stays in its output file)", tags: ["Batches"] },
      },
    );
