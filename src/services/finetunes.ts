// Fine-tunes (the 1.2.0 contract's /v1/fine-tunes): a FIFO queue of jobs, one
// at a time, each trained in its own runner process (finetune/child.ts: training
// code aborts on what it does not support, which must never take the server
// down) at a lower CPU priority than serving. Jobs are persisted (rewritten
// atomically at every event); after a restart pending jobs run, a job that was
// running is marked failed, and succeeded models are served again. A
// succeeded job's model is served under its fine_tuned_model name and can be
// deleted (DELETE /v1/models/{model}).
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../atomic";
import type { ServerConfig } from "../config";
import { childCommand } from "../embedded";
import { invalid, notFound } from "../errors";
import type { FineTuneSpec, Hyperparams, RunnerReport, ToRunner } from "../finetune/protocol";
import { untrainable } from "../finetune/train";
import { log } from "../log";
import { resolveHubRef } from "../models/hub";
import type { FineTuneRequest } from "../openai/legacy-schemas";
import type { ModelRegistry } from "../registry";
import { type FileObject, type FileStore, newId } from "../store/files";
import { legacyModel } from "./legacy";

export type FineTuneStatus = "pending" | "running" | "succeeded" | "failed" | "cancelled";

export interface FineTuneEvent {
  object: "fine-tune-event";
  created_at: number;
  level: "info" | "warn" | "error";
  message: string;
}

export interface FineTuneObject {
  id: string;
  object: "fine-tune";
  created_at: number;
  updated_at: number;
  model: string;
  fine_tuned_model: string | null;
  organization_id: string;
  status: FineTuneStatus;
  hyperparams: Record<string, unknown>;
  training_files: FileObject[];
  validation_files: FileObject[];
  result_files: FileObject[];
  events: FineTuneEvent[];
}

/** What is kept on disk: the object and what the server needs to run and serve it. */
interface Stored {
  job: FineTuneObject;
  baseModelPath: string;
  modelPath: string | null;
  modelDeleted: boolean;
  params: Hyperparams;
  seed: number;
}

const now = () => Math.floor(Date.now() / 1000);
const ID = /^ft-[0-9A-Za-z]{24}$/;
const FINISHED: readonly FineTuneStatus[] = ["succeeded", "failed", "cancelled"];
const ORG = "org-llmatic";
const STDERR_LINES = 40;

/** "llmatic-tiny:ft-llmatic:blue-2026-12-01-18-44-20" */
function modelName(base: string, suffix: string | null | undefined, at: Date): string {
  const ts = at.toISOString().slice(0, 19).replace(/[T:]/g, "-");
  return `${base}:ft-llmatic${suffix ? `:${suffix}` : ""}-${ts}`;
}

const fileName = (model: string) => `${model.replace(/[^\w.-]+/g, "_")}.gguf`;

export class FineTunes {
  private readonly dir: string;
  private readonly modelsDir: string;
  private readonly jobs = new Map<string, Stored>();
  private readonly queue: string[] = [];
  private current: { id: string; send: (m: ToRunner) => void; kill: () => void } | null = null;
  /** listeners of a job's events (SSE) */
  private readonly listeners = new Map<string, Set<(e: FineTuneEvent | null) => void>>();
  private started = false;

  constructor(
    private readonly config: ServerConfig,
    private readonly registry: ModelRegistry,
    private readonly files: () => FileStore,
  ) {
    this.dir = join(config.dataDir, "fine-tunes");
    this.modelsDir = join(config.dataDir, "models");
  }

  /** Loads the jobs from disk: succeeded models are served again, pending jobs run, a running one failed. */
  start(): void {
    if (this.started) return;
    this.started = true;
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    mkdirSync(this.modelsDir, { recursive: true, mode: 0o700 });
    for (const n of readdirSync(this.dir)) {
      if (n.endsWith(".tmp")) rmSync(join(this.dir, n), { force: true });
      if (!n.endsWith(".json")) continue;
      try {
        const s = JSON.parse(readFileSync(join(this.dir, n), "utf8")) as Stored;
        if (ID.test(s.job.id)) this.jobs.set(s.job.id, s);
      } catch {
        // not a job
      }
    }
    const byAge = [...this.jobs.values()].sort((a, b) => a.job.created_at - b.job.created_at);
    for (const s of byAge) {
      if (s.job.status === "running") {
        this.event(s, "error", "Job failed: the server restarted while it ran.");
        this.setStatus(s, "failed");
      } else if (s.job.status === "pending") {
        this.queue.push(s.job.id);
        this.pinFiles(s);
      } else if (s.job.status === "succeeded" && s.job.fine_tuned_model && s.modelPath && !s.modelDeleted) {
        if (existsSync(s.modelPath) && !this.registry.entry(s.job.fine_tuned_model)) {
          this.registry.add(
            s.job.fine_tuned_model,
            { kind: "path", path: s.modelPath },
            { fineTuned: true, createdAt: s.job.updated_at },
          );
        }
      }
    }
    this.next();
  }

  private save(s: Stored): void {
    s.job.updated_at = now();
    writeFileAtomic(join(this.dir, `${s.job.id}.json`), JSON.stringify(s));
  }

  private event(s: Stored, level: FineTuneEvent["level"], message: string): void {
    const e: FineTuneEvent = { object: "fine-tune-event", created_at: now(), level, message };
    s.job.events.push(e);
    this.save(s);
    for (const l of this.listeners.get(s.job.id) ?? []) l(e);
  }

  private setStatus(s: Stored, status: FineTuneStatus): void {
    s.job.status = status;
    this.save(s);
    if (FINISHED.includes(status)) {
      this.unpinFiles(s);
      for (const l of this.listeners.get(s.job.id) ?? []) l(null);
      this.listeners.delete(s.job.id);
    }
  }

  private pinFiles(s: Stored): void {
    for (const f of [...s.job.training_files, ...s.job.validation_files]) {
      try {
        this.files().pin(f.id, s.job.id);
      } catch {
        // the file is gone: the job fails when it starts
      }
    }
  }

  private unpinFiles(s: Stored): void {
    for (const f of [...s.job.training_files, ...s.job.validation_files]) this.files().unpin(f.id, s.job.id);
  }

  list(): FineTuneObject[] {
    this.start();
    return [...this.jobs.values()].map((s) => s.job).sort((a, b) => a.created_at - b.created_at);
  }

  private stored(id: string): Stored {
    this.start();
    const s = ID.test(id) ? this.jobs.get(id) : undefined;
    if (!s) throw notFound(`No fine-tune job with id '${id}'`, "fine_tune_id", "fine_tune_not_found");
    return s;
  }

  get(id: string): FineTuneObject {
    return this.stored(id).job;
  }

  events(id: string): FineTuneEvent[] {
    return this.stored(id).job.events;
  }

  /** Calls `fn` with each new event of a running job, then null when it ends; returns an unsubscribe. */
  follow(id: string, fn: (e: FineTuneEvent | null) => void): () => void {
    const s = this.stored(id);
    if (FINISHED.includes(s.job.status)) {
      queueMicrotask(() => fn(null));
      return () => {};
    }
    const set = this.listeners.get(id) ?? new Set();
    set.add(fn);
    this.listeners.set(id, set);
    return () => set.delete(fn);
  }

  private async basePath(id: string): Promise<string> {
    const e = this.registry.entry(id);
    if (!e) throw notFound(`The model '${id}' does not exist`, "model", "model_not_found");
    if (e.engine) return e.engine.info.path;
    if (e.source.kind === "path") return e.source.path;
    return resolveHubRef(e.source);
  }

  async create(body: FineTuneRequest): Promise<FineTuneObject> {
    this.start();
    const files = this.files();
    const training = files.get(body.training_file, "training_file");
    if (training.purpose !== "fine-tune") {
      throw invalid(
        `File ${training.id} has purpose '${training.purpose}'; training needs a 'fine-tune' file`,
        "training_file",
      );
    }
    const validation = body.validation_file ? files.get(body.validation_file, "validation_file") : null;
    if (validation && validation.purpose !== "fine-tune") {
      throw invalid(
        `File ${validation.id} has purpose '${validation.purpose}'; validation needs a 'fine-tune' file`,
        "validation_file",
      );
    }
    if (body.compute_classification_metrics && !validation) {
      throw invalid("compute_classification_metrics needs a validation_file", "compute_classification_metrics");
    }
    if (body.suffix && !/^[\w.-]+$/.test(body.suffix))
      throw invalid("suffix may hold letters, digits, '.', '_' and '-'", "suffix");
    const base = legacyModel(this.registry, body.model, this.config.defaultModel);
    const baseModelPath = await this.basePath(base);
    const why = untrainable(baseModelPath);
    if (why) throw invalid(why, "model", "model_not_trainable");
    const examples = readFileSync(files.path(training.id), "utf8")
      .split("\n")
      .filter((l) => l.trim()).length;
    const batchSize = body.batch_size ?? Math.min(256, Math.max(1, Math.round(examples * 0.002)));
    const multiplier = body.learning_rate_multiplier ?? (batchSize >= 16 ? 0.2 : batchSize >= 4 ? 0.1 : 0.05);
    const params: Hyperparams = {
      n_epochs: body.n_epochs ?? 4,
      batch_size: batchSize,
      learning_rate: this.config.finetuneBaseLr * multiplier,
      learning_rate_multiplier: multiplier,
      prompt_loss_weight: body.prompt_loss_weight ?? 0.01,
      compute_classification_metrics: body.compute_classification_metrics ?? false,
      classification_n_classes: body.classification_n_classes ?? null,
      classification_positive_class: body.classification_positive_class ?? null,
      classification_betas: body.classification_betas ?? null,
    };
    const t = now();
    const s: Stored = {
      job: {
        id: newId("ft-"),
        object: "fine-tune",
        created_at: t,
        updated_at: t,
        model: base,
        fine_tuned_model: null,
        organization_id: ORG,
        status: "pending",
        hyperparams: {
          batch_size: params.batch_size,
          learning_rate_multiplier: params.learning_rate_multiplier,
          n_epochs: params.n_epochs,
          prompt_loss_weight: params.prompt_loss_weight,
          learning_rate: params.learning_rate,
          ...(body.suffix ? { suffix: body.suffix } : {}),
          ...(params.compute_classification_metrics
            ? {
                compute_classification_metrics: true,
                classification_n_classes: params.classification_n_classes,
                classification_positive_class: params.classification_positive_class,
                classification_betas: params.classification_betas,
              }
            : {}),
        },
        training_files: [training],
        validation_files: validation ? [validation] : [],
        result_files: [],
        events: [],
      },
      baseModelPath,
      modelPath: null,
      modelDeleted: false,
      params,
      seed: crypto.getRandomValues(new Uint32Array(1))[0] as number,
    };
    this.jobs.set(s.job.id, s);
    this.pinFiles(s);
    this.event(s, "info", `Created fine-tune: ${s.job.id}`);
    const ahead = this.queue.length + (this.current ? 1 : 0);
    this.event(s, "info", `Job enqueued. Waiting for jobs ahead to complete. Queue number: ${ahead}.`);
    this.queue.push(s.job.id);
    // the job is returned pending; it starts right after (when nothing runs)
    setImmediate(() => this.next());
    return { ...s.job, events: [...s.job.events] };
  }

  async cancel(id: string): Promise<FineTuneObject> {
    const s = this.stored(id);
    if (FINISHED.includes(s.job.status))
      throw invalid(`Job ${id} is ${s.job.status}: it cannot be cancelled`, "fine_tune_id");
    if (s.job.status === "pending") {
      this.queue.splice(this.queue.indexOf(id), 1);
      this.event(s, "info", "Job cancelled.");
      this.setStatus(s, "cancelled");
      return s.job;
    }
    // running: the runner stops at once (its model is discarded); a runner that does not stop is killed
    const cur = this.current;
    if (cur?.id === id) {
      cur.send({ type: "cancel" });
      const killer = setTimeout(() => cur.kill(), 30_000);
      await new Promise<void>((r) => {
        const stop = this.follow(id, (e) => {
          if (e === null) {
            stop();
            r();
          }
        });
      });
      clearTimeout(killer);
    }
    return s.job;
  }

  /** DELETE /v1/models/{model}: a fine-tuned model (unloaded when idle); base models cannot be. */
  async deleteModel(id: string): Promise<{ id: string; object: "model"; deleted: true }> {
    this.start();
    const e = this.registry.entry(id);
    if (!e) throw notFound(`The model '${id}' does not exist`, "model", "model_not_found");
    if (!e.fineTuned)
      throw invalid(`'${id}' is not a fine-tuned model: only those can be deleted`, "model", "model_not_deletable");
    await this.registry.remove(e.id);
    const s = [...this.jobs.values()].find((x) => x.job.fine_tuned_model === e.id);
    if (s) {
      s.modelDeleted = true;
      if (s.modelPath) rmSync(s.modelPath, { force: true });
      this.save(s);
    }
    return { id: e.id, object: "model", deleted: true };
  }

  /** Starts the next pending job when none runs. */
  private next(): void {
    if (this.current) return;
    const id = this.queue.shift();
    if (!id) return;
    const s = this.jobs.get(id);
    if (s?.job.status !== "pending") {
      this.next();
      return;
    }
    void this.run(s).finally(() => {
      this.current = null;
      this.next();
    });
  }

  private async run(s: Stored): Promise<void> {
    const files = this.files();
    const workDir = join(this.dir, `${s.job.id}.work`);
    rmSync(workDir, { recursive: true, force: true });
    mkdirSync(workDir, { recursive: true, mode: 0o700 });
    const name = modelName(s.job.model, s.job.hyperparams.suffix as string | undefined, new Date());
    const outputPath = join(this.modelsDir, fileName(name));
    let spec: FineTuneSpec;
    try {
      spec = {
        id: s.job.id,
        baseModelPath: s.baseModelPath,
        workDir,
        trainingFile: files.path(s.job.training_files[0]?.id as string),
        validationFile: s.job.validation_files[0] ? files.path(s.job.validation_files[0].id) : null,
        outputPath,
        hyperparams: s.params,
        threads: this.config.threads,
        seed: s.seed,
        maxWindow: this.config.finetuneMaxTokens,
        libPath: process.env.LLMATIC_LIB,
      };
    } catch (e) {
      this.event(s, "error", `Job failed: ${e instanceof Error ? e.message : String(e)}`);
      this.setStatus(s, "failed");
      return;
    }
    this.setStatus(s, "running");
    this.event(s, "info", "Job started.");
    const rows: Record<string, number>[] = [];
    const tail: string[] = [];
    const cmd = childCommand(new URL("../finetune/child.ts", import.meta.url));
    let outcome: RunnerReport | null = null;
    const done = new Promise<string>((resolve) => {
      const proc = Bun.spawn(cmd, {
        env: { ...process.env, LLMATIC_FINETUNE_CHILD: "1" },
        stdin: "ignore",
        stdout: "ignore",
        stderr: "pipe",
        serialization: "json",
        ipc: (raw) => {
          const r = raw as RunnerReport;
          if (r.type === "event") this.event(s, r.level, r.message);
          else if (r.type === "row") rows.push(r.row);
          else outcome = r;
        },
        onExit: (_p, code, signal) => resolve(signal ? `killed by ${signal}` : `exited with code ${code}`),
      });
      this.current = { id: s.job.id, send: (m) => proc.send(m), kill: () => proc.kill("SIGKILL") };
      void (async () => {
        const dec = new TextDecoder();
        for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) {
          for (const line of dec.decode(chunk, { stream: true }).split("\n")) {
            if (!line.trim()) continue;
            tail.push(line);
            if (tail.length > STDERR_LINES) tail.shift();
          }
        }
      })().catch(() => {});
      proc.send({ type: "start", spec });
    });
    const exit = await done;
    const result = outcome as RunnerReport | null;
    try {
      if (result?.type === "done") {
        this.event(s, "info", `Uploaded model: ${name}.`);
        s.modelPath = result.modelPath;
        s.job.fine_tuned_model = name;
        const csv = resultsCsv(rows);
        const f = files.write("compiled_results.csv", "fine-tune-results", csv);
        s.job.result_files = [f];
        this.event(s, "info", `Uploaded result file: ${f.id}.`);
        this.registry.add(name, { kind: "path", path: result.modelPath }, { fineTuned: true });
        this.event(s, "info", "Job succeeded.");
        this.setStatus(s, "succeeded");
      } else if (result?.type === "cancelled") {
        rmSync(outputPath, { force: true });
        this.event(s, "info", "Job cancelled.");
        this.setStatus(s, "cancelled");
      } else {
        rmSync(outputPath, { force: true });
        const why =
          result?.type === "failed"
            ? result.message
            : `the training process ${exit}${tail.length ? `: ${tail.slice(-5).join(" | ")}` : ""}`;
        log.error(`fine-tune ${s.job.id} failed: ${why}`);
        this.event(s, "error", `Job failed: ${why}`);
        this.setStatus(s, "failed");
      }
    } finally {
      rmSync(workDir, { recursive: true, force: true });
    }
  }

  /** Stops a running job at shutdown (it is marked failed at the next start, as the issue's contract says). */
  close(): void {
    this.current?.kill();
  }
}

/** compiled_results.csv: one row per step (and per validation), the columns OpenAI documented. */
export function resultsCsv(rows: Record<string, number>[]): string {
  const base = [
    "step",
    "elapsed_tokens",
    "elapsed_examples",
    "training_loss",
    "training_sequence_accuracy",
    "training_token_accuracy",
  ];
  const extra = [...new Set(rows.flatMap((r) => Object.keys(r)))].filter((k) => !base.includes(k) && k !== "seconds");
  const cols = [...base, ...extra.sort()];
  const fmt = (v: number | undefined) => (v === undefined ? "" : Number.isInteger(v) ? String(v) : v.toFixed(6));
  return `${cols.join(",")}\n${rows.map((r) => cols.map((c) => fmt(r[c])).join(",")).join("\n")}\n`;
}
