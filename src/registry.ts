// The models a server knows, by id, and the engine of each once it is loaded.
// Requests ask the registry for an engine: unknown ids are 404, models still
// loading are 503 with Retry-After, failed loads are 500 saying why.
import type { Engine } from "./engine/engine";
import type { EngineStats, ModelInfo } from "./engine/types";
import { ApiError } from "./http/errors";

export type ModelState = "pending" | "loading" | "ready" | "failed";

export interface ModelEntry {
  id: string;
  path: string;
  state: ModelState;
  engine: Engine | null;
  error: string | null;
  /** 0..1 while loading */
  progress: number;
  createdAt: number;
}

export type EngineFactory = (entry: ModelEntry, onProgress: (fraction: number) => void) => Promise<Engine>;

export class ModelRegistry {
  private readonly entries = new Map<string, ModelEntry>();

  constructor(
    models: { id: string; path: string }[],
    private readonly factory: EngineFactory,
  ) {
    const created = Math.floor(Date.now() / 1000);
    for (const m of models) {
      if (this.entries.has(m.id)) throw new Error(`two models have the id "${m.id}" (${m.path})`);
      this.entries.set(m.id, { ...m, state: "pending", engine: null, error: null, progress: 0, createdAt: created });
    }
  }

  /** A registry over engines that are already running (tests, embedding). */
  static of(engines: Engine[]): ModelRegistry {
    const r = new ModelRegistry(
      engines.map((e) => ({ id: e.info.id, path: e.info.path })),
      async () => {
        throw new Error("static registry");
      },
    );
    for (const e of engines) {
      const entry = r.entries.get(e.info.id) as ModelEntry;
      Object.assign(entry, { state: "ready", engine: e, progress: 1, createdAt: e.info.createdAt });
    }
    return r;
  }

  list(): ModelEntry[] {
    return [...this.entries.values()];
  }

  entry(id: string): ModelEntry | undefined {
    return this.entries.get(id) ?? this.entries.get(id.replace(/\.gguf$/i, ""));
  }

  /** The engine serving `id`, or the OpenAI error a client should see. */
  engine(id: string, param = "model"): Engine {
    const e = this.entry(id);
    if (!e) {
      throw ApiError.notFound(
        `The model '${id}' does not exist. Available models: ${
          this.list()
            .map((m) => m.id)
            .join(", ") || "none"
        }`,
        param,
        "model_not_found",
      );
    }
    if (e.state === "ready" && e.engine) return e.engine;
    if (e.state === "failed")
      throw new ApiError(500, `The model '${e.id}' failed to load: ${e.error}`, "server_error", "model_load_failed");
    throw ApiError.unavailable(
      `The model '${e.id}' is loading (${Math.round(e.progress * 100)}%), try again shortly`,
      "model_loading",
      2,
    );
  }

  /** Model metadata for listing: the engine's when loaded, else what the registry knows. */
  info(e: ModelEntry): Pick<ModelInfo, "id" | "createdAt"> {
    return e.engine?.info ?? { id: e.id, createdAt: e.createdAt };
  }

  get ready(): boolean {
    return this.list().every((e) => e.state === "ready");
  }

  /** Loads every model, one after the other; failures are recorded, not thrown. */
  async loadAll(onEvent: (e: ModelEntry) => void = () => {}): Promise<void> {
    for (const e of this.entries.values()) {
      if (e.state !== "pending") continue;
      e.state = "loading";
      onEvent(e);
      try {
        e.engine = await this.factory(e, (p) => {
          e.progress = p;
          onEvent(e);
        });
        e.state = "ready";
        e.progress = 1;
      } catch (err) {
        e.state = "failed";
        e.error = err instanceof Error ? err.message : String(err);
      }
      onEvent(e);
    }
  }

  stats(): { id: string; state: ModelState; stats: EngineStats | null }[] {
    return this.list().map((e) => ({ id: e.id, state: e.state, stats: e.engine?.stats() ?? null }));
  }

  async closeAll(): Promise<void> {
    await Promise.all(
      this.list().map(async (e) => {
        const engine = e.engine;
        e.engine = null;
        e.state = "pending";
        await engine?.close();
      }),
    );
  }
}
