// GET /health: no auth; 200 "ok" when every model is ready (or unloaded: they
// load on demand), 503 "loading" while any is loading, 503 "degraded" while one
// failed to load or its engine is restarting after a crash.
// GET /metrics: Prometheus text format (needs the API key when one is set).
import { Elysia } from "elysia";
import type { Services } from "../services";

export const healthRoutes = (svc: Services) =>
  new Elysia({ name: "routes/health" })
    .use(svc)
    .get(
      "/health",
      ({ registry, set }) => {
        const now = Date.now();
        const models = registry.list().map((e) => {
          const s = e.engine?.stats();
          const waiting = (e.state === "failed" || e.state === "restarting") && e.retryAt > now;
          return {
            id: e.id,
            state: e.state,
            progress: Math.round(e.progress * 100) / 100,
            ...(e.error ? { error: e.error } : {}),
            ...(s ? { slots_busy: s.slotsBusy, slots_idle: s.slotsTotal - s.slotsBusy, queued: s.queued } : {}),
            ...(e.engine?.pid ? { pid: e.engine.pid } : {}),
            restarts: e.restarts,
            ...(e.lastExit ? { last_exit: e.lastExit } : {}),
            ...(waiting ? { retry_in_ms: e.retryAt - now } : {}),
          };
        });
        // unloaded models load on demand: only a model loading right now makes the server "loading"
        const loading = models.some((m) => m.state === "loading");
        const degraded = models.some((m) => m.state === "failed" || m.state === "restarting");
        const status = loading ? "loading" : degraded ? "degraded" : "ok";
        if (status !== "ok") set.status = 503;
        return { status, models };
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
