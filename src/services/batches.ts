// Batches (OpenAI's /v1/batches): a JSONL file of chat completions, completions
// or embeddings requests runs through the models at batch priority (interactive
// requests go first and keep most of their speed), with an output file and an
// error file in OpenAI's shapes. State is on disk: the batch's metadata
// (rewritten atomically at each change of status) and its output and error
// lines (appended as each request finishes). The lines are the record of what
// is done: after a restart a batch resumes with the requests that have no line
// yet, so none is done twice and none is lost.
import {
  closeSync,
  existsSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { TypeCompiler } from "@sinclair/typebox/compiler";
import { writeFileAtomic } from "../atomic";
import type { ServerConfig } from "../config";
import { invalid, notFound } from "../errors";
import { toApiError } from "../http/errors";
import { fieldError } from "../http/validate";
import { log } from "../log";
import type { Metrics } from "../metrics";
import type { BatchRequest } from "../openai/legacy-schemas";
import { ChatCompletionRequest, CompletionRequest, EmbeddingRequest } from "../openai/schemas";
import type { ModelRegistry } from "../registry";
import { type FileStore, newId } from "../store/files";
import { readLines } from "../store/jsonl";
import { chatCompletion, embeddings, textCompletion } from "./openai";

export type BatchStatus =
  | "validating"
  | "failed"
  | "in_progress"
  | "finalizing"
  | "completed"
  | "expired"
  | "cancelling"
  | "cancelled";

export interface BatchObject {
  id: string;
  object: "batch";
  endpoint: string;
  errors: {
    object: "list";
    data: { code: string; message: string; param: string | null; line: number | null }[];
  } | null;
  input_file_id: string;
  completion_window: string;
  status: BatchStatus;
  output_file_id: string | null;
  error_file_id: string | null;
  created_at: number;
  in_progress_at: number | null;
  expires_at: number;
  finalizing_at: number | null;
  completed_at: number | null;
  failed_at: number | null;
  expired_at: number | null;
  cancelling_at: number | null;
  cancelled_at: number | null;
  request_counts: { total: number; completed: number; failed: number };
  metadata: Record<string, string> | null;
}

const ENDPOINTS = {
  "/v1/chat/completions": TypeCompiler.Compile(ChatCompletionRequest),
  "/v1/completions": TypeCompiler.Compile(CompletionRequest),
  "/v1/embeddings": TypeCompiler.Compile(EmbeddingRequest),
} as const;
type Endpoint = keyof typeof ENDPOINTS;

const now = () => Math.floor(Date.now() / 1000);
const ID = /^batch_[0-9A-Za-z]{24}$/;
/** attempts for a line that meets a "try later" answer (a model loading or restarting) */
const RETRIES = 8;

interface Line {
  custom_id: string;
  method: string;
  url: string;
  body: Record<string, unknown>;
}

interface Running {
  batch: BatchObject;
  abort: AbortController;
  done: Promise<void>;
}

/** Appends whole lines to a file and fsyncs them now and then (and at the end). */
class LineLog {
  private fd: number;
  private dirty = false;
  private timer: ReturnType<typeof setInterval>;
  constructor(path: string) {
    this.fd = openSync(path, "a", 0o600);
    this.timer = setInterval(() => this.sync(), 200);
  }
  append(obj: unknown): void {
    const bytes = Buffer.from(`${JSON.stringify(obj)}\n`);
    let off = 0;
    while (off < bytes.length) off += writeSync(this.fd, bytes, off, bytes.length - off);
    this.dirty = true;
  }
  sync(): void {
    if (!this.dirty) return;
    this.dirty = false;
    fsyncSync(this.fd);
  }
  close(): void {
    clearInterval(this.timer);
    this.sync();
    closeSync(this.fd);
  }
}

/** The custom_ids a line log holds; a last line cut by a crash is removed first. */
function recover(path: string): Set<string> {
  const ids = new Set<string>();
  if (!existsSync(path)) return ids;
  const text = readFileSync(path, "utf8");
  const end = text.lastIndexOf("\n") + 1;
  if (end < text.length) {
    const fd = openSync(path, "r+");
    ftruncateSync(fd, Buffer.byteLength(text.slice(0, end)));
    fsyncSync(fd);
    closeSync(fd);
  }
  for (const line of text.slice(0, end).split("\n")) {
    if (!line) continue;
    try {
      ids.add((JSON.parse(line) as { custom_id: string }).custom_id);
    } catch {
      // not ours
    }
  }
  return ids;
}

export class Batches {
  private readonly dir: string;
  private readonly batches = new Map<string, BatchObject>();
  private readonly running = new Map<string, Running>();
  private started = false;

  constructor(
    private readonly config: ServerConfig,
    private readonly registry: ModelRegistry,
    private readonly files: () => FileStore,
    private readonly metrics?: Metrics,
  ) {
    this.dir = join(config.dataDir, "batches");
  }

  private path(id: string, ext: string): string {
    return join(this.dir, `${id}${ext}`);
  }

  /** Loads every batch from disk and resumes the unfinished ones (server start; idempotent). */
  start(): void {
    if (this.started) return;
    this.started = true;
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    for (const n of readdirSync(this.dir)) {
      if (n.endsWith(".tmp")) rmSync(join(this.dir, n), { force: true });
      if (!n.endsWith(".json")) continue;
      try {
        const b = JSON.parse(readFileSync(join(this.dir, n), "utf8")) as BatchObject;
        if (!ID.test(b.id)) continue;
        this.batches.set(b.id, b);
      } catch {
        // a batch file a crash cut would have been a .tmp: skip garbage
      }
    }
    for (const b of this.batches.values()) {
      if (["validating", "in_progress", "finalizing", "cancelling"].includes(b.status)) {
        log.info(`resuming batch ${b.id} (${b.status})`);
        this.launch(b);
      }
    }
  }

  private save(b: BatchObject): void {
    writeFileAtomic(this.path(b.id, ".json"), JSON.stringify(b));
  }

  list(): BatchObject[] {
    this.start();
    return [...this.batches.values()].sort((a, b) => b.created_at - a.created_at || b.id.localeCompare(a.id));
  }

  get(id: string): BatchObject {
    this.start();
    const b = ID.test(id) ? this.batches.get(id) : undefined;
    if (!b) throw notFound(`No batch with id '${id}'`, "batch_id", "batch_not_found");
    return b;
  }

  async create(body: BatchRequest): Promise<BatchObject> {
    this.start();
    if (body.completion_window !== "24h") throw invalid("completion_window must be '24h'", "completion_window");
    const files = this.files();
    const input = files.get(body.input_file_id, "input_file_id");
    if (input.purpose !== "batch") {
      throw invalid(
        `File ${input.id} has purpose '${input.purpose}'; a batch needs a file uploaded with purpose 'batch'`,
        "input_file_id",
      );
    }
    // every line must call the batch's endpoint
    let total = 0;
    for await (const lines of readLines(files.path(input.id))) {
      for (const raw of lines) {
        if (!raw.trim()) continue;
        total++;
        const url = (JSON.parse(raw) as Line).url;
        if (url !== body.endpoint) {
          throw invalid(
            `Line ${total} of ${input.id} calls ${url}, but this batch's endpoint is ${body.endpoint}`,
            "input_file_id",
          );
        }
      }
    }
    const t = now();
    const b: BatchObject = {
      id: newId("batch_"),
      object: "batch",
      endpoint: body.endpoint,
      errors: null,
      input_file_id: input.id,
      completion_window: body.completion_window,
      status: "validating",
      output_file_id: null,
      error_file_id: null,
      created_at: t,
      in_progress_at: null,
      expires_at: t + 24 * 3600,
      finalizing_at: null,
      completed_at: null,
      failed_at: null,
      expired_at: null,
      cancelling_at: null,
      cancelled_at: null,
      request_counts: { total, completed: 0, failed: 0 },
      metadata: body.metadata ?? null,
    };
    this.save(b);
    this.batches.set(b.id, b);
    this.launch(b);
    return b;
  }

  async cancel(id: string): Promise<BatchObject> {
    const b = this.get(id);
    if (["completed", "failed", "expired", "cancelled"].includes(b.status)) {
      throw invalid(`Batch ${id} is ${b.status}: it cannot be cancelled`, "batch_id");
    }
    if (b.status !== "cancelling") {
      b.status = "cancelling";
      b.cancelling_at = now();
      this.save(b);
    }
    this.running.get(id)?.abort.abort();
    return b;
  }

  /** Waits for running batches to stop at a clean point (shutdown: their state is on disk). */
  async close(): Promise<void> {
    for (const r of this.running.values()) r.abort.abort();
    await Promise.all([...this.running.values()].map((r) => r.done));
  }

  private launch(b: BatchObject): void {
    const abort = new AbortController();
    const r: Running = { batch: b, abort, done: Promise.resolve() };
    this.running.set(b.id, r);
    try {
      this.files().pin(b.input_file_id, b.id);
    } catch {
      // the input file is gone: the run fails below
    }
    r.done = this.run(b, abort.signal)
      .catch((e) => {
        log.error(`batch ${b.id} failed: ${e instanceof Error ? e.message : String(e)}`);
        b.status = "failed";
        b.failed_at = now();
        b.errors = {
          object: "list",
          data: [
            { code: "batch_failed", message: String(e instanceof Error ? e.message : e), param: null, line: null },
          ],
        };
        this.save(b);
      })
      .finally(() => {
        this.running.delete(b.id);
        this.files().unpin(b.input_file_id, b.id);
      });
  }

  private async run(b: BatchObject, signal: AbortSignal): Promise<void> {
    const files = this.files();
    const outPath = this.path(b.id, ".out.jsonl");
    const errPath = this.path(b.id, ".err.jsonl");
    const okIds = recover(outPath);
    const errIds = recover(errPath);
    b.request_counts.completed = okIds.size;
    b.request_counts.failed = errIds.size;
    if (b.status === "validating") {
      b.status = "in_progress";
      b.in_progress_at = now();
      this.save(b);
    }
    const out = new LineLog(outPath);
    const err = new LineLog(errPath);
    try {
      if (b.status === "in_progress") {
        const inflight = new Set<Promise<void>>();
        const limit = Math.max(1, this.config.parallel);
        for await (const lines of readLines(files.path(b.input_file_id))) {
          for (const raw of lines) {
            if (!raw.trim()) continue;
            if (signal.aborted) break;
            const line = JSON.parse(raw) as Line;
            if (okIds.has(line.custom_id) || errIds.has(line.custom_id)) continue;
            while (inflight.size >= limit) await Promise.race(inflight);
            if (signal.aborted) break;
            const p: Promise<void> = this.runLine(b, line, signal, out, err).finally(() => inflight.delete(p));
            inflight.add(p);
          }
          if (signal.aborted) break;
        }
        await Promise.all(inflight);
      }
    } finally {
      out.close();
      err.close();
    }
    // stopped by shutdown (not a cancel): the batch resumes at the next start
    if (signal.aborted && b.status === "in_progress") return;
    b.finalizing_at ??= now();
    if (b.status === "in_progress") {
      b.status = "finalizing";
      this.save(b);
    }
    const output = files.adopt(outPath, `${b.id}_output.jsonl`, "batch_output");
    b.output_file_id = output.id;
    if (existsSync(errPath) && readFileSync(errPath).length > 0) {
      b.error_file_id = files.adopt(errPath, `${b.id}_error.jsonl`, "batch_output").id;
    } else rmSync(errPath, { force: true });
    if (b.status === "cancelling") {
      b.status = "cancelled";
      b.cancelled_at = now();
    } else {
      b.status = "completed";
      b.completed_at = now();
    }
    this.save(b);
  }

  /** One request of the batch, answered as its endpoint would; the line is written when it is done. */
  private async runLine(b: BatchObject, line: Line, signal: AbortSignal, out: LineLog, err: LineLog): Promise<void> {
    const requestId = newId("req_");
    let status = 200;
    let body: unknown;
    for (let attempt = 1; ; attempt++) {
      try {
        body = await this.answer(b.endpoint as Endpoint, line.body, signal);
        status = 200;
        break;
      } catch (e) {
        if (signal.aborted) return; // cancelled or shutting down: no line, so it runs again or never
        const api = toApiError(e);
        // "try later" (a model loading, restarting, a full queue): wait and try again
        if (api.status === 503 && attempt < RETRIES) {
          await Bun.sleep(1000 * Math.min(30, Number(api.headers["retry-after"] ?? 1)));
          if (signal.aborted) return;
          continue;
        }
        status = api.status;
        body = api.body();
        break;
      }
    }
    const record = {
      id: newId("batch_req_"),
      custom_id: line.custom_id,
      response: { status_code: status, request_id: requestId, body },
      error: null,
    };
    if (status === 200) {
      out.append(record);
      b.request_counts.completed++;
    } else {
      err.append(record);
      b.request_counts.failed++;
    }
  }

  /** The endpoint's own answer to a line's body (validated like the route validates it). */
  private async answer(endpoint: Endpoint, body: Record<string, unknown>, signal: AbortSignal): Promise<unknown> {
    const check = ENDPOINTS[endpoint];
    if (!check.Check(body)) throw fieldError(body, check.Errors(body).First());
    if ((body as { stream?: unknown }).stream === true) throw invalid("Requests in a batch cannot stream", "stream");
    const lease = await this.registry.acquire(String(body.model), signal);
    try {
      const x = { defaults: this.config.sampling, signal, metrics: this.metrics, priority: "batch" as const };
      if (endpoint === "/v1/chat/completions")
        return await chatCompletion(lease.engine, body as ChatCompletionRequest, x);
      if (endpoint === "/v1/completions") return await textCompletion(lease.engine, body as CompletionRequest, x);
      return await embeddings(lease.engine, body as EmbeddingRequest, x);
    } finally {
      lease.release();
    }
  }
}
