// Models managed over HTTP: pulled from the hub (POST /models/pull, Ollama's
// /api/pull), copied under another name (/api/copy), deleted (DELETE
// /models/{id}, /api/delete), loaded and unloaded. What was pulled or copied is
// recorded in <data>/models.json (temp file, fsync, rename), and served again
// after a restart; the files themselves live in the hub cache like any
// downloaded model. A pull runs once per reference: concurrent pulls of the same
// one share its progress. Every pull's progress can be read while it runs.
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../atomic";
import { DomainError, invalid, notFound } from "../errors";
import { log } from "../log";
import { HubError, type ModelRef, parseModelRef, resolveHubRef } from "../models/hub";
import type { ModelEntry, ModelRegistry } from "../registry";

interface Record_ {
  id: string;
  /** the hub reference it was pulled by (copies: their source's) */
  ref: string | null;
  path: string;
  createdAt: number;
}

export interface PullProgress {
  id: string;
  model: string;
  status: "pulling" | "verifying" | "success" | "failed";
  file: string | null;
  completed: number;
  total: number | null;
  error: string | null;
}

type Listener = (p: PullProgress) => void;

interface Pull {
  progress: PullProgress;
  listeners: Set<Listener>;
  done: Promise<ModelEntry>;
}

const PULL_ID = /^pull_[a-z0-9]{1,32}$/;

/** Ollama's "hf.co/owner/repo:Q4_K_M" and "huggingface.co/..." are hub references too. */
export function hubText(model: string): string {
  const m = /^(?:https?:\/\/)?(?:hf\.co|huggingface\.co)\/(.+)$/.exec(model);
  return m ? `hf:${m[1]}` : model.startsWith("hf:") ? model : `hf:${model}`;
}

export class ModelLibrary {
  private readonly file: string;
  private readonly records = new Map<string, Record_>();
  private readonly pulls = new Map<string, Pull>();
  private readonly byModel = new Map<string, string>();

  constructor(
    dataDir: string,
    private readonly registry: ModelRegistry,
  ) {
    this.file = join(dataDir, "models.json");
    this.restore();
  }

  /** The models pulled or copied before, served again (a missing file is skipped with a warning). */
  private restore(): void {
    if (!existsSync(this.file)) return;
    let list: Record_[] = [];
    try {
      list = JSON.parse(readFileSync(this.file, "utf8")) as Record_[];
    } catch (e) {
      log.error(`cannot read ${this.file}: ${(e as Error).message}; pulled models are not listed`);
      return;
    }
    for (const r of list) {
      if (!existsSync(r.path)) {
        log.warn(`the pulled model ${r.id} is gone from ${r.path}; not served`);
        continue;
      }
      this.records.set(r.id, r);
      if (!this.registry.entry(r.id))
        this.registry.add(r.id, { kind: "path", path: r.path }, { downloaded: true, createdAt: r.createdAt });
    }
  }

  private save(): void {
    writeFileAtomic(this.file, JSON.stringify([...this.records.values()], null, 1));
  }

  /**
   * Starts pulling `model` (a hub reference) and returns its progress record at
   * once; `done` resolves with the served entry. An id that is served already
   * is a success at once.
   */
  pull(model: string): { progress: PullProgress; done: Promise<ModelEntry>; subscribe: (l: Listener) => () => void } {
    const running = this.byModel.get(model);
    const p = running ? this.pulls.get(running) : undefined;
    if (p && p.progress.status !== "failed") return this.handle(p);
    let ref: ModelRef;
    try {
      ref = parseModelRef(hubText(model));
    } catch (e) {
      throw invalid(e instanceof HubError ? e.message : String(e), "model");
    }
    if (ref.kind !== "hf") throw invalid(`'${model}' is not a hub reference (use owner/repo:QUANT)`, "model");
    const id = `pull_${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}`;
    const progress: PullProgress = {
      id,
      model,
      status: "pulling",
      file: null,
      completed: 0,
      total: null,
      error: null,
    };
    const pull: Pull = { progress, listeners: new Set(), done: Promise.resolve(null as unknown as ModelEntry) };
    const emit = () => {
      for (const l of pull.listeners) l({ ...progress });
    };
    const existing = this.registry.entry(model);
    pull.done = (async () => {
      if (existing) return existing;
      const path = await resolveHubRef(ref, (x) => {
        progress.file = x.file;
        progress.completed = x.received;
        progress.total = x.total;
        progress.status = x.total !== null && x.received >= x.total ? "verifying" : "pulling";
        emit();
      });
      const r: Record_ = { id: model, ref: ref.text, path, createdAt: Math.floor(Date.now() / 1000) };
      this.records.set(model, r);
      this.save();
      return this.registry.entry(model) ?? this.registry.add(model, { kind: "path", path }, { downloaded: true });
    })().then(
      (e) => {
        progress.status = "success";
        emit();
        return e;
      },
      (err) => {
        progress.status = "failed";
        progress.error = err instanceof Error ? err.message : String(err);
        emit();
        if (err instanceof DomainError) throw err;
        // the hub said no (an unknown repository or quantization, access denied) or cannot be reached
        throw /not found/.test(progress.error)
          ? notFound(progress.error, "model", "model_not_found")
          : new DomainError("invalid_request", progress.error, "model");
      },
    );
    pull.done.catch(() => {});
    this.pulls.set(id, pull);
    this.byModel.set(model, id);
    // finished pulls stay readable for a while
    void pull.done
      .catch(() => {})
      .finally(() => {
        const t = setTimeout(() => {
          this.pulls.delete(id);
          if (this.byModel.get(model) === id) this.byModel.delete(model);
        }, 600_000);
        t.unref?.();
      });
    return this.handle(pull);
  }

  private handle(p: Pull) {
    return {
      progress: { ...p.progress },
      done: p.done,
      subscribe: (l: Listener) => {
        p.listeners.add(l);
        return () => p.listeners.delete(l);
      },
    };
  }

  /** A pull by its id (GET /models/pull/{id}). */
  pullById(id: string) {
    const p = PULL_ID.test(id) ? this.pulls.get(id) : undefined;
    if (!p) throw notFound(`No pull with id '${id}'`, "id");
    return this.handle(p);
  }

  /** Serves `source` under the name `destination` too (Ollama's copy). */
  copy(source: string, destination: string): ModelEntry {
    const e = this.registry.entry(source);
    if (!e) throw notFound(`model '${source}' not found`, "source", "model_not_found");
    if (this.registry.entry(destination))
      throw new DomainError("conflict", `a model named '${destination}' exists already`, "destination");
    if (!/^[\w.:/-]{1,128}$/.test(destination) || destination.includes(".."))
      throw invalid(`'${destination}' is not a valid model name`, "destination");
    const path =
      e.source.kind === "path" ? e.source.path : (e.engine?.info.path ?? this.records.get(e.id)?.path ?? null);
    if (!path) throw invalid(`'${source}' has not been downloaded yet; load it once first`, "source");
    const r: Record_ = {
      id: destination,
      ref: this.records.get(e.id)?.ref ?? null,
      path,
      createdAt: Math.floor(Date.now() / 1000),
    };
    this.records.set(destination, r);
    this.save();
    return this.registry.add(destination, { kind: "path", path }, { downloaded: true, createdAt: r.createdAt });
  }

  /** Whether `id` was pulled or copied here (only those can be deleted this way). */
  owns(id: string): boolean {
    return this.records.has(this.registry.entry(id)?.id ?? id);
  }

  /**
   * Stops serving a pulled or copied model and deletes its file when no other
   * name (and no --model) uses it. Requests in flight finish first.
   */
  async delete(id: string): Promise<void> {
    const e = this.registry.entry(id);
    const r = e ? this.records.get(e.id) : undefined;
    if (!e) throw notFound(`model '${id}' not found`, "model", "model_not_found");
    if (!r)
      throw invalid(
        `'${id}' was not pulled over HTTP (it is served from --model or is fine-tuned); it cannot be deleted this way`,
        "model",
        "model_not_deletable",
      );
    this.records.delete(r.id);
    this.save();
    await this.registry.remove(r.id);
    const used =
      [...this.records.values()].some((x) => x.path === r.path) ||
      this.registry.list().some((x) => x.source.kind === "path" && x.source.path === r.path);
    if (!used) {
      rmSync(r.path, { force: true });
      rmSync(`${r.path}.json`, { force: true });
    }
  }
}

/** A pull's progress as it changes, until it succeeds or fails (the last snapshot says which). */
export async function* pullEvents(h: ReturnType<ModelLibrary["pull"]>): AsyncGenerator<PullProgress, void, void> {
  const queue: PullProgress[] = [h.progress];
  let wake: (() => void) | null = null;
  const off = h.subscribe((p) => {
    // progress comes faster than a client reads: keep the newest of a kind
    const last = queue[queue.length - 1];
    if (last && last.status === p.status && last.file === p.file) queue[queue.length - 1] = p;
    else queue.push(p);
    wake?.();
  });
  let ended = h.progress.status === "success" || h.progress.status === "failed";
  void h.done.then(
    () => {
      ended = true;
      wake?.();
    },
    () => {
      ended = true;
      wake?.();
    },
  );
  try {
    for (;;) {
      const p = queue.shift();
      if (p) {
        yield p;
        if (p.status === "success" || p.status === "failed") return;
        continue;
      }
      if (ended) {
        // the last snapshot may have come before subscribing
        const final = await h.done.then(
          (): PullProgress => ({ ...h.progress, status: "success" }),
          (e): PullProgress => ({ ...h.progress, status: "failed", error: e instanceof Error ? e.message : String(e) }),
        );
        yield final;
        return;
      }
      await new Promise<void>((r) => {
        wake = r;
      });
      wake = null;
    }
  } finally {
    off();
  }
}
