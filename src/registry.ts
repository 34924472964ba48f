// The models a server knows, by id, and the engine of each while it is loaded.
// A request acquires a model: loaded ones are used at once; the first request
// for an unloaded one loads it and later ones wait for that load. With
// maxLoaded, the least recently used idle model is unloaded to make room; a
// model with requests in flight is never unloaded, so loading and unloading
// never disturb running streams. A load that fails is not retried per request:
// requests get 503 model_load_failed with Retry-After until a backoff passes.
// An engine that dies (a native crash, the OOM killer) is restarted after a
// backoff, and requests meanwhile get 503 engine_restarting.
import type { Engine } from "./engine/engine";
import type { EngineStats, ModelInfo } from "./engine/types";
import { DomainError, notFound } from "./errors";
import type { ModelRef } from "./models/hub";

export type ModelState = "unloaded" | "loading" | "ready" | "failed" | "restarting";

export interface ModelEntry {
  id: string;
  /** where the model comes from: a file, or a hub reference downloaded on first load */
  source: ModelRef;
  state: ModelState;
  engine: Engine | null;
  error: string | null;
  /** 0..1 while loading */
  progress: number;
  createdAt: number;
  /** requests using the engine right now */
  active: number;
  loading: Promise<Engine> | null;
  /** failed loads and crashes in a row (the backoff grows with them) */
  failures: number;
  /** no load before this time (ms since the epoch) after a failure or a crash */
  retryAt: number;
  /** times the engine died and was restarted */
  restarts: number;
  /** how the engine last died */
  lastExit: string | null;
  readySince: number;
  /** made by a fine-tune here (it can be deleted) */
  fineTuned: boolean;
  /** pulled or copied over HTTP (it can be deleted) */
  downloaded: boolean;
  /** when a request last took or gave it back (ms since the epoch, sub-ms: least-recently-used order and idle time) */
  lastUsedAt: number;
  /** how long it stays loaded once idle, as the last request asked (Ollama's keep_alive); null: the server's --idle-unload */
  keepAliveMs: number | null;
}

/** The wall clock in ms with sub-millisecond steps (two uses in one ms stay ordered). */
const now = () => performance.timeOrigin + performance.now();

/** A model that is known and not loaded yet. */
function newEntry(
  id: string,
  source: ModelRef,
  opts: { fineTuned?: boolean; downloaded?: boolean; createdAt?: number },
): ModelEntry {
  return {
    id,
    source,
    state: "unloaded",
    engine: null,
    error: null,
    progress: 0,
    createdAt: opts.createdAt ?? Math.floor(Date.now() / 1000),
    active: 0,
    loading: null,
    failures: 0,
    retryAt: 0,
    restarts: 0,
    lastExit: null,
    readySince: 0,
    fineTuned: opts.fineTuned ?? false,
    downloaded: opts.downloaded ?? false,
    lastUsedAt: 0,
    keepAliveMs: null,
  };
}

/** `onExit`: the engine died by itself after it was ready. */
export type EngineFactory = (
  entry: ModelEntry,
  onProgress: (fraction: number) => void,
  onExit: (reason: string) => void,
) => Promise<Engine>;

/** 1 s, 2 s, 4 s ... up to a minute; a model that stayed up for a minute starts again at 1 s. */
export function backoffMs(failures: number): number {
  return Math.min(60_000, 1000 * 2 ** Math.max(0, failures - 1));
}
const STABLE_MS = 60_000;

export interface Lease {
  engine: Engine;
  /** idempotent */
  release: () => void;
}

export interface RegistryOptions {
  /** models loaded at once (Infinity: no limit) */
  maxLoaded?: number;
  /** how long a request waits for its model to load (or for room to load it) before a 503 */
  waitMs?: number;
  /** idle models are unloaded after this long (0 or undefined: never) */
  idleUnloadMs?: number;
  onEvent?: (e: ModelEntry, what: "loading" | "progress" | "ready" | "failed" | "unloaded" | "crashed") => void;
}

/** What a lease asks for besides the engine. */
export interface AcquireOptions {
  /** the parameter an unknown model is reported on */
  param?: string;
  /** keep the model loaded this long after the request (0: unload when idle; negative: forever) */
  keepAliveMs?: number | null;
}

export class ModelRegistry {
  private readonly entries = new Map<string, ModelEntry>();
  /** wakes requests waiting for a model to become idle (so it can be unloaded) */
  private released: (() => void)[] = [];
  readonly maxLoaded: number;
  private readonly waitMs: number;

  constructor(
    models: { id: string; source: ModelRef }[],
    private readonly factory: EngineFactory,
    private readonly opts: RegistryOptions = {},
  ) {
    this.maxLoaded = opts.maxLoaded ?? Number.POSITIVE_INFINITY;
    this.waitMs = opts.waitMs ?? 300_000;
    const created = Math.floor(Date.now() / 1000);
    for (const m of models) {
      if (this.entries.has(m.id)) throw new Error(`two models have the id "${m.id}"`);
      this.entries.set(m.id, newEntry(m.id, m.source, { createdAt: created }));
    }
  }

  /** A registry over engines that are already running (tests, embedding). */
  static of(engines: Engine[], opts: RegistryOptions = {}): ModelRegistry {
    const r = new ModelRegistry(
      engines.map((e) => ({ id: e.info.id, source: { kind: "path", path: e.info.path } })),
      async () => {
        throw new Error("static registry");
      },
      opts,
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

  /** The model a request without one (or with another API's model name) means: --default-model, else the first. */
  defaultId(configured: string | null): string | null {
    return configured ?? this.list()[0]?.id ?? null;
  }

  /** Serves one more model from now on (a fine-tune's result); it loads on its first request. */
  add(
    id: string,
    source: ModelRef,
    opts: { fineTuned?: boolean; downloaded?: boolean; createdAt?: number } = {},
  ): ModelEntry {
    if (this.entries.has(id)) throw new DomainError("conflict", `a model with the id '${id}' exists already`);
    const e = newEntry(id, source, opts);
    this.entries.set(id, e);
    return e;
  }

  /**
   * Stops serving a model: it is gone from the list and new requests get 404 at
   * once; requests in flight finish, then its engine is closed.
   */
  async remove(id: string): Promise<void> {
    const e = this.entries.get(id);
    if (!e) throw notFound(`The model '${id}' does not exist`, "model", "model_not_found");
    this.entries.delete(id);
    if (e.loading) await e.loading.catch(() => {});
    while (e.active > 0) await new Promise<void>((r) => this.released.push(r));
    const engine = e.engine;
    e.engine = null;
    e.state = "unloaded";
    await engine?.close();
  }

  entry(id: string): ModelEntry | undefined {
    return this.entries.get(id) ?? this.entries.get(id.replace(/\.gguf$/i, ""));
  }

  private known(id: string, param: string): ModelEntry {
    const e = this.entry(id);
    if (!e) {
      const ids = this.list().map((m) => m.id);
      throw notFound(
        `The model '${id}' does not exist. Available models: ${ids.join(", ") || "none"}`,
        param,
        "model_not_found",
      );
    }
    return e;
  }

  /** The engine of `id` for one request; loads the model first when needed. Release when done. */
  async acquire(id: string, signal?: AbortSignal, opts: AcquireOptions | string = {}): Promise<Lease> {
    const o = typeof opts === "string" ? { param: opts } : opts;
    const e = this.known(id, o.param ?? "model");
    if (o.keepAliveMs !== undefined) e.keepAliveMs = o.keepAliveMs;
    const deadline = Date.now() + this.waitMs;
    const gone = () => new DomainError("cancelled", "the client went away");
    while (!(e.state === "ready" && e.engine)) {
      if (signal?.aborted) throw gone();
      const wait = Math.ceil((e.retryAt - Date.now()) / 1000);
      if (e.state === "restarting") {
        throw new DomainError(
          "engine_restarting",
          `The engine of model '${e.id}' stopped (${e.lastExit}) and restarts in ${Math.max(1, wait)} s; retry then`,
          null,
          { retryAfter: Math.max(1, wait) },
        );
      }
      if (e.state === "failed" && wait > 0) {
        throw new DomainError(
          "model_load_failed",
          `The model '${e.id}' failed to load (${e.error}); the next attempt is in ${wait} s`,
          null,
          { retryAfter: wait },
        );
      }
      if (e.state === "unloaded" || e.state === "failed") {
        // make room first; a model busy with requests is never unloaded
        if (!(await this.makeRoom(e, deadline, signal))) {
          if (signal?.aborted) throw gone();
          throw new DomainError(
            "model_loading",
            `The model '${e.id}' cannot be loaded yet: ${this.loadedCount()} models are loaded (--max-loaded ${this.maxLoaded}) and all are busy; try again shortly`,
            null,
            { retryAfter: 5 },
          );
        }
        if (e.state === "unloaded" || e.state === "failed") void this.load(e).catch(() => {});
      }
      if (e.state === "loading" && e.loading) {
        const left = deadline - Date.now();
        const done = await Promise.race([
          e.loading.then(
            () => "ready",
            () => "failed",
          ),
          Bun.sleep(Math.max(0, left)).then(() => "timeout"),
          ...(signal
            ? [new Promise<string>((r) => signal.addEventListener("abort", () => r("gone"), { once: true }))]
            : []),
        ]);
        if (done === "gone") throw gone();
        if (done === "failed") {
          throw new DomainError("model_load_failed", `The model '${e.id}' failed to load: ${e.error}`, null, {
            retryAfter: Math.max(1, Math.ceil((e.retryAt - Date.now()) / 1000)),
          });
        }
        if (done === "timeout") {
          throw new DomainError(
            "model_loading",
            `The model '${e.id}' is loading (${Math.round(e.progress * 100)}%), try again shortly`,
            null,
            { retryAfter: 2 },
          );
        }
      }
    }
    // a client that left while its model loaded gets nothing generated
    if (signal?.aborted) throw gone();
    const engine = e.engine as Engine;
    e.active++;
    e.lastUsedAt = now();
    let released = false;
    return {
      engine,
      release: () => {
        if (released) return;
        released = true;
        e.active--;
        e.lastUsedAt = now();
        for (const wake of this.released.splice(0)) wake();
        if (e.active === 0 && e.keepAliveMs === 0) void this.unloadIdle(e);
      },
    };
  }

  private loadedCount(): number {
    return this.list().filter((m) => m.state === "ready" || m.state === "loading" || m.state === "restarting").length;
  }

  /** Unloads least recently used idle models until `e` fits; waits for one to become idle when none is. */
  private async makeRoom(e: ModelEntry, deadline: number, signal?: AbortSignal): Promise<boolean> {
    // another request may have started loading `e` while this one waited: it needs no more room
    while (e.state !== "loading" && e.state !== "ready" && this.loadedCount() >= this.maxLoaded) {
      const idle = this.list()
        .filter((m) => m !== e && m.state === "ready" && m.active === 0 && (m.engine?.stats().slotsBusy ?? 0) === 0)
        .sort((a, b) => a.lastUsedAt - b.lastUsedAt)[0];
      if (idle) {
        await this.unload(idle);
        continue;
      }
      const left = deadline - Date.now();
      if (left <= 0 || signal?.aborted) return false;
      await Promise.race([new Promise<void>((r) => this.released.push(r)), Bun.sleep(Math.min(left, 1000))]);
    }
    return true;
  }

  private load(e: ModelEntry): Promise<Engine> {
    if (e.loading) return e.loading;
    e.state = "loading";
    e.progress = 0;
    e.error = null;
    this.opts.onEvent?.(e, "loading");
    let engine: Engine | null = null;
    e.loading = this.factory(
      e,
      (p) => {
        e.progress = p;
        this.opts.onEvent?.(e, "progress");
      },
      (reason) => {
        if (engine) this.crashed(e, engine, reason);
      },
    ).then(
      (started) => {
        engine = started;
        e.engine = started;
        e.state = "ready";
        e.progress = 1;
        e.loading = null;
        e.readySince = Date.now();
        this.opts.onEvent?.(e, "ready");
        return started;
      },
      (err) => {
        e.state = "failed";
        e.error = err instanceof Error ? err.message : String(err);
        e.loading = null;
        e.failures++;
        e.retryAt = Date.now() + backoffMs(e.failures);
        this.opts.onEvent?.(e, "failed");
        throw err;
      },
    );
    return e.loading;
  }

  /** The engine of `e` died by itself: restart it after a backoff (requests meanwhile get a retryable 503). */
  private crashed(e: ModelEntry, engine: Engine, reason: string): void {
    if (e.engine !== engine) return;
    e.engine = null;
    e.state = "restarting";
    e.restarts++;
    e.lastExit = reason;
    if (Date.now() - e.readySince > STABLE_MS) e.failures = 0;
    e.failures++;
    const delay = backoffMs(e.failures);
    e.retryAt = Date.now() + delay;
    this.opts.onEvent?.(e, "crashed");
    const timer = setTimeout(() => {
      if (e.state === "restarting" && !this.closing) void this.load(e).catch(() => {});
    }, delay);
    timer.unref?.();
    for (const wake of this.released.splice(0)) wake();
  }

  private async unload(e: ModelEntry): Promise<void> {
    const engine = e.engine;
    e.engine = null;
    e.state = "unloaded";
    e.progress = 0;
    this.opts.onEvent?.(e, "unloaded");
    await engine?.close();
  }

  /** When an idle model is due to be unloaded (ms since the epoch), or null when it stays. */
  expiresAt(e: ModelEntry): number | null {
    if (e.state !== "ready") return null;
    const keep = e.keepAliveMs ?? (this.opts.idleUnloadMs ? this.opts.idleUnloadMs : -1);
    if (keep < 0) return null;
    return Math.max(e.lastUsedAt, e.readySince) + keep;
  }

  private sweeper: ReturnType<typeof setInterval> | null = null;

  /** Unloads idle models whose keep-alive has passed, checked every second (--idle-unload, keep_alive). */
  startIdleSweep(everyMs = 1000): void {
    if (this.sweeper) return;
    this.sweeper = setInterval(() => {
      const now = Date.now();
      for (const e of this.list()) {
        const at = this.expiresAt(e);
        if (at !== null && now >= at) void this.unloadIdle(e);
      }
    }, everyMs);
    this.sweeper.unref?.();
  }

  /** Unloads `e` if nothing uses it (a keep-alive ran out). */
  private async unloadIdle(e: ModelEntry): Promise<void> {
    if (e.state !== "ready" || e.active > 0 || (e.engine?.stats().slotsBusy ?? 0) > 0) return;
    await this.unload(e);
  }

  /** Loads a model now (POST /models/load): resolves when it is ready. */
  async loadNow(id: string, signal?: AbortSignal, keepAliveMs?: number | null): Promise<ModelEntry> {
    const lease = await this.acquire(id, signal, { keepAliveMs });
    lease.release();
    return this.known(id, "model");
  }

  /**
   * Unloads a model now (POST /models/unload, keep_alive 0): requests in flight
   * finish first; new ones would load it again. False when it was not loaded.
   */
  async unloadNow(id: string): Promise<boolean> {
    const e = this.known(id, "model");
    if (e.loading) await e.loading.catch(() => {});
    if (e.state !== "ready") return false;
    while (e.active > 0) await new Promise<void>((r) => this.released.push(r));
    if (e.state !== "ready") return false;
    await this.unload(e);
    return true;
  }

  /** Loads models in order until maxLoaded are loaded (server start); failures are recorded. */
  async preload(): Promise<void> {
    for (const e of this.list()) {
      if (this.loadedCount() >= this.maxLoaded) break;
      if (e.state === "unloaded") await this.load(e).catch(() => {});
    }
  }

  /** Model metadata for listing: the engine's when loaded, else what the registry knows. */
  info(e: ModelEntry): Pick<ModelInfo, "id" | "createdAt"> {
    return { id: e.id, createdAt: e.engine?.info.createdAt ?? e.createdAt };
  }

  stats(): { id: string; state: ModelState; stats: EngineStats | null; restarts: number; failures: number }[] {
    return this.list().map((e) => ({
      id: e.id,
      state: e.state,
      stats: e.engine?.stats() ?? null,
      restarts: e.restarts,
      failures: e.failures,
    }));
  }

  private closing = false;

  async closeAll(): Promise<void> {
    this.closing = true;
    if (this.sweeper) clearInterval(this.sweeper);
    await Promise.all(
      this.list().map(async (e) => {
        if (e.loading) await e.loading.catch(() => {});
        const engine = e.engine;
        e.engine = null;
        e.state = "unloaded";
        await engine?.close();
      }),
    );
  }
}
