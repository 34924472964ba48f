// GET /health: no auth; 200 when every model is ready, 503 while any is loading.
// GET /metrics: Prometheus text format (needs the API key when one is set).
import { Elysia } from "elysia";
import type { Services } from "../services";

export const healthRoutes = (svc: Services) =>
  new Elysia({ name: "routes/health" })
    .use(svc)
    .get(
      "/health",
      ({ registry, set }) => {
        const models = registry.list().map((e) => {
          const s = e.engine?.stats();
          return {
            id: e.id,
            state: e.state,
            progress: Math.round(e.progress * 100) / 100,
            ...(e.error ? { error: e.error } : {}),
            ...(s ? { slots_busy: s.slotsBusy, slots_idle: s.slotsTotal - s.slotsBusy, queued: s.queued } : {}),
          };
        });
        // unloaded models load on demand: only a model loading right now makes the server "loading"
        const loading = models.some((m) => m.state === "loading");
        if (loading) set.status = 503;
        return { status: loading ? "loading" : "ok", models };
      },
      { detail: { summary: "Health, model states and slots", tags: ["Server"] } },
    )
    .get(
      "/metrics",
      ({ registry, metrics }) =>
        new Response(metrics.render(registry), {
          headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
        }),
      { detail: { summary: "Prometheus metrics", tags: ["Server"] } },
    );
