// /v1/fine-tunes: jobs that train a local model on a prompt/completion file and
// serve the result under its fine_tuned_model name (services/finetunes.ts).
import { Elysia, t } from "elysia";
import { pathParam } from "../http/params";
import { DONE, type SseData, sseResponse } from "../http/sse";
import { precheck } from "../http/validate";
import { FineTuneRequest, legacyModels } from "../openai/legacy-schemas";
import type { Services } from "../services";
import type { FineTuneEvent } from "../services/finetunes";

export const fineTuneRoutes = (svc: Services) =>
  new Elysia({ name: "routes/fine-tunes" })
    .use(svc)
    .use(legacyModels)
    .post("/fine-tunes", ({ body, stores }) => stores.fineTunes.create(body), {
      body: "FineTuneRequest",
      transform: precheck(FineTuneRequest),
      detail: {
        summary: "Fine-tune a model on a prompt/completion file (trained here, then served)",
        tags: ["Fine-tunes"],
      },
    })
    .get("/fine-tunes", ({ stores }) => ({ object: "list" as const, data: stores.fineTunes.list() }), {
      detail: { summary: "List fine-tune jobs", tags: ["Fine-tunes"] },
    })
    .get(
      "/fine-tunes/:fine_tune_id",
      ({ stores, params }) => stores.fineTunes.get(pathParam(params.fine_tune_id, "fine_tune_id")),
      {
        detail: { summary: "Retrieve a fine-tune job", tags: ["Fine-tunes"] },
      },
    )
    .post(
      "/fine-tunes/:fine_tune_id/cancel",
      ({ stores, params }) => stores.fineTunes.cancel(pathParam(params.fine_tune_id, "fine_tune_id")),
      {
        parse: () => null,
        detail: { summary: "Cancel a fine-tune job (400 once it has finished)", tags: ["Fine-tunes"] },
      },
    )
    .get(
      "/fine-tunes/:fine_tune_id/events",
      ({ stores, params, query, config }) => {
        const id = pathParam(params.fine_tune_id, "fine_tune_id");
        const ft = stores.fineTunes;
        const past = ft.events(id);
        if (!query.stream) return { object: "list" as const, data: past };
        // the events so far, then each new one, then [DONE] when the job ends
        const pending: (FineTuneEvent | null)[] = [];
        let wake: (() => void) | null = null;
        const stop = ft.follow(id, (e) => {
          pending.push(e);
          wake?.();
        });
        async function* frames(): AsyncGenerator<SseData, void, void> {
          try {
            for (const e of [...past]) yield e;
            for (;;) {
              while (pending.length === 0) await new Promise<void>((r) => (wake = r));
              const e = pending.shift();
              if (!e) break;
              yield e;
            }
            yield DONE;
          } finally {
            stop();
          }
        }
        return sseResponse(frames(), {
          keepAliveMs: config.sseKeepAlive * 1000,
          stallMs: config.stallTimeout * 1000,
          onStall: stop,
        });
      },
      {
        query: t.Object({ stream: t.Optional(t.BooleanString()) }),
        detail: { summary: "A fine-tune job's events (an SSE stream with stream=true)", tags: ["Fine-tunes"] },
      },
    );
