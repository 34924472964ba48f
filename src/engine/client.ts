// LlamaEngine: the main-thread handle of one engine worker (one model).
import { EngineError, type EngineErrorCode } from "../errors";
import { LogLevel } from "../ffi/library";
import { log } from "../log";
import type { Engine } from "./engine";
import type {
  EmbedResult,
  EngineConfig,
  EngineStats,
  FromWorker,
  GenerateEvent,
  GenerateRequest,
  ModelInfo,
  ToWorker,
} from "./types";

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: EngineError) => void;
}

/** An unbounded single-consumer queue of events feeding one async generator. */
class EventQueue {
  private items: GenerateEvent[] = [];
  private waiter: (() => void) | null = null;
  push(e: GenerateEvent): void {
    this.items.push(e);
    this.waiter?.();
    this.waiter = null;
  }
  async next(): Promise<GenerateEvent> {
    while (this.items.length === 0) await new Promise<void>((r) => (this.waiter = r));
    return this.items.shift() as GenerateEvent;
  }
}

export class LlamaEngine implements Engine {
  private nextId = 1;
  private readonly calls = new Map<number, Pending>();
  private readonly streams = new Map<number, EventQueue>();
  private lastStats: EngineStats;
  private closed = false;
  private closedPromise: Promise<void> | null = null;
  private onClosed: (() => void) | null = null;

  private constructor(
    private readonly worker: Worker,
    readonly info: ModelInfo,
  ) {
    this.lastStats = { slotsBusy: 0, slotsTotal: info.parallel, queued: 0 };
  }

  /** Starts a worker and loads the model; `progress` (0..1) is polled while it loads. */
  static async start(config: EngineConfig, onProgress?: (fraction: number) => void): Promise<LlamaEngine> {
    const worker = new Worker(new URL("./worker.ts", import.meta.url).href);
    const progress = new SharedArrayBuffer(4);
    const view = new Float32Array(progress);
    const timer = onProgress ? setInterval(() => onProgress(view[0] as number), 250) : null;
    try {
      const info = await new Promise<ModelInfo>((resolve, reject) => {
        worker.onmessage = (ev: MessageEvent<FromWorker>) => {
          const m = ev.data;
          if (m.type === "ready") resolve(m.info);
          else if (m.type === "fatal") reject(new EngineError(m.code, m.message));
          else if (m.type === "log") LlamaEngine.nativeLog(config.id, m.level, m.text);
        };
        worker.onerror = (ev) => reject(new EngineError("internal", `engine worker failed: ${ev.message}`));
        worker.postMessage({ type: "init", config, progress } satisfies ToWorker);
      });
      onProgress?.(1);
      const engine = new LlamaEngine(worker, info);
      worker.onmessage = (ev: MessageEvent<FromWorker>) => engine.onMessage(ev.data);
      worker.onerror = (ev) => engine.onWorkerDied(ev.message);
      return engine;
    } catch (e) {
      worker.terminate();
      throw e;
    } finally {
      if (timer) clearInterval(timer);
    }
  }

  private static nativeLog(id: string, level: number, text: string): void {
    const msg = `[${id}] ${text}`;
    if (level >= LogLevel.ERROR) log.error(msg);
    else if (level >= LogLevel.WARN) log.warn(msg);
    else log.debug(msg);
  }

  private onMessage(m: FromWorker): void {
    switch (m.type) {
      case "event":
        this.streams.get(m.id)?.push(m.event);
        return;
      case "result": {
        const p = this.calls.get(m.id);
        this.calls.delete(m.id);
        p?.resolve(m.value);
        return;
      }
      case "failed": {
        const err = new EngineError(m.code, m.message, m.param);
        const s = this.streams.get(m.id);
        if (s) s.push({ type: "error", code: m.code, message: m.message, param: m.param });
        const p = this.calls.get(m.id);
        this.calls.delete(m.id);
        p?.reject(err);
        return;
      }
      case "stats":
        this.lastStats = m.stats;
        return;
      case "log":
        LlamaEngine.nativeLog(this.info.id, m.level, m.text);
        return;
      case "closed":
        this.onClosed?.();
        return;
      case "ready":
      case "fatal":
        return;
    }
  }

  private onWorkerDied(message: string): void {
    log.error(`[${this.info.id}] engine worker died: ${message}`);
    this.closed = true;
    const err = new EngineError("engine_unavailable", `the engine for ${this.info.id} stopped: ${message}`);
    for (const [, p] of this.calls) p.reject(err);
    this.calls.clear();
    for (const [, s] of this.streams) s.push({ type: "error", code: err.code, message: err.message, param: null });
    this.streams.clear();
  }

  private call<T>(msg: (id: number) => ToWorker): Promise<T> {
    if (this.closed) return Promise.reject(new EngineError("engine_unavailable", "the engine is shut down"));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.calls.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage(msg(id));
    });
  }

  async *generate(req: GenerateRequest, signal?: AbortSignal): AsyncGenerator<GenerateEvent, void, void> {
    if (this.closed) {
      yield { type: "error", code: "engine_unavailable", message: "the engine is shut down", param: null };
      return;
    }
    const id = this.nextId++;
    const cancelBuf = new SharedArrayBuffer(4);
    const cancel = new Int32Array(cancelBuf);
    const queue = new EventQueue();
    const abort = () => Atomics.store(cancel, 0, 1);
    this.streams.set(id, queue);
    signal?.addEventListener("abort", abort, { once: true });
    let open = req.n;
    try {
      if (signal?.aborted) abort();
      this.worker.postMessage({ type: "generate", id, request: req, cancel: cancelBuf } satisfies ToWorker);
      while (open > 0) {
        const e = await queue.next();
        yield e;
        if (e.type === "error") return;
        if (e.type === "end") open--;
      }
    } finally {
      // consumer left early (client went away) or we are done: either way stop decoding
      if (open > 0) abort();
      signal?.removeEventListener("abort", abort);
      this.streams.delete(id);
    }
  }

  tokenize(text: string, addSpecial = true, parseSpecial = true): Promise<number[]> {
    return this.call((id) => ({ type: "tokenize", id, text, addSpecial, parseSpecial }));
  }

  detokenize(tokens: number[]): Promise<string> {
    return this.call((id) => ({ type: "detokenize", id, tokens }));
  }

  embed(inputs: (string | number[])[]): Promise<EmbedResult> {
    return this.call((id) => ({ type: "embed", id, inputs }));
  }

  stats(): EngineStats {
    return this.lastStats;
  }

  /** Cancels what runs, frees native memory in the worker, then stops it. Idempotent. */
  close(): Promise<void> {
    if (this.closedPromise) return this.closedPromise;
    this.closedPromise = new Promise<void>((resolve) => {
      const done = () => {
        this.worker.terminate();
        resolve();
      };
      if (this.closed) return done();
      this.closed = true;
      const timer = setTimeout(done, 10_000);
      this.onClosed = () => {
        clearTimeout(timer);
        done();
      };
      this.worker.postMessage({ type: "shutdown" } satisfies ToWorker);
    });
    return this.closedPromise;
  }
}

export type { EngineErrorCode };
