// GET /health: no auth; 200 when every model is ready, 503 while any is loading.
import { Elysia } from "elysia";
import type { Services } from "../services";

export const healthRoutes = (svc: Services) =>
  new Elysia({ name: "routes/health" }).use(svc).get(
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
      const loading = models.some((m) => m.state === "pending" || m.state === "loading");
      if (loading) set.status = 503;
      return { status: loading ? "loading" : "ok", models };
    },
    { detail: { summary: "Health, model states and slots", tags: ["Server"] } },
  );
