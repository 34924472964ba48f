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

/** One pull: its progress as it changes, and its outcome. */
export class PullHandle {
  readonly progress: PullProgress;
  readonly done: Promise<ModelEntry>;
  private version = 0;
  private wake: (() => void)[] = [];

  constructor(id: string, model: string, run: (report: (p: Partial<PullProgress>) => void) => Promise<ModelEntry>) {
    this.progress = { id, model, status: "pulling", file: null, completed: 0, total: null, error: null };
    this.done = run((p) => this.update(p)).then(
      (e) => {
        this.update({ status: "success" });
        return e;
      },
      (err) => {
        const message = err instanceof Error ? err.message : String(err);
        this.update({ status: "failed", error: message });
        if (err instanceof DomainError) throw err;
        // the hub said no (an unknown repository or quantization, access denied) or cannot be reached
        throw /not found/.test(message)
          ? notFound(message, "model", "model_not_found")
          : new DomainError("invalid_request", message, "model");
      },
    );
    this.done.catch(() => {});
  }

  private update(p: Partial<PullProgress>): void {
    Object.assign(this.progress, p);
    this.version++;
    for (const w of this.wake.splice(0)) w();
  }

  /** Its progress from now on, the newest each time it is read, until it succeeds or fails (the last says which). */
  async *changes(): AsyncGenerator<PullProgress, void, void> {
    let seen = -1;
    for (;;) {
      if (this.version === seen) await new Promise<void>((r) => this.wake.push(r));
      seen = this.version;
      const p = { ...this.progress };
      yield p;
      if (p.status === "success" || p.status === "failed") return;
    }
  }
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
  private readonly pulls = new Map<string, PullHandle>();
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
   * Starts pulling `model` (a hub reference), or finds its pull running, and
   * returns it at once; its `done` resolves with the served entry. A model that
   * is served already is a success at once.
   */
  pull(model: string): PullHandle {
    const running = this.pulls.get(this.byModel.get(model) ?? "");
    if (running && running.progress.status !== "failed") return running;
    let ref: ModelRef;
    try {
      ref = parseModelRef(hubText(model));
    } catch (e) {
      throw invalid(e instanceof HubError ? e.message : String(e), "model");
    }
    if (ref.kind !== "hf") throw invalid(`'${model}' is not a hub reference (use owner/repo:QUANT)`, "model");
    const id = `pull_${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}`;
    const pull = new PullHandle(id, model, async (report) => {
      const existing = this.registry.entry(model);
      if (existing) return existing;
      const path = await resolveHubRef(ref, (x) =>
        report({
          file: x.file,
          completed: x.received,
          total: x.total,
          status: x.total !== null && x.received >= x.total ? "verifying" : "pulling",
        }),
      );
      this.records.set(model, { id: model, ref: ref.text, path, createdAt: Math.floor(Date.now() / 1000) });
      this.save();
      return this.registry.entry(model) ?? this.registry.add(model, { kind: "path", path }, { downloaded: true });
    });
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
    return pull;
  }

  /** A pull by its id (GET /models/pull/{id}). */
  pullById(id: string): PullHandle {
    const p = PULL_ID.test(id) ? this.pulls.get(id) : undefined;
    if (!p) throw notFound(`No pull with id '${id}'`, "id");
    return p;
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
