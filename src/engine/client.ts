// LlamaEngine: the server's handle of one engine (one model). The engine runs
// in its own child process (default: a native crash, an abort or the OOM killer
// ends that model's requests only) or in a Worker thread (--isolation thread).
// Both speak the JSON messages of engine/types.ts; this class turns them into
// the Engine interface and notices when the engine dies.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Isolation } from "../config";
import { childCommand } from "../embedded";
import { DomainError, type ErrorCode } from "../errors";
import { LogLevel } from "../ffi/library";
import { log } from "../log";
import type { Engine } from "./engine";
import { DEFAULT_IMAGE_POLICY, type ImagePolicy, resolveImages } from "./images";
import type {
  EmbedResult,
  EmbedResultWire,
  EngineConfig,
  EngineStats,
  FromEngine,
  GenerateEvent,
  GenerateRequest,
  ModelInfo,
  RankResult,
  RenderedPrompt,
  ToEngine,
  TranscribeEvent,
  TranscribeOptions,
} from "./types";

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: DomainError) => void;
}

/** An unbounded single-consumer queue of events feeding one async generator. */
type StreamEvent = GenerateEvent | TranscribeEvent;

class EventQueue<T extends StreamEvent = StreamEvent> {
  private items: T[] = [];
  private waiter: (() => void) | null = null;
  push(e: StreamEvent): void {
    // a stream only receives its own kind of events (and errors, which both share)
    this.items.push(e as T);
    this.waiter?.();
    this.waiter = null;
  }
  async next(): Promise<T> {
    while (this.items.length === 0) await new Promise<void>((r) => (this.waiter = r));
    return this.items.shift() as T;
  }
}

/** Where an engine runs: messages in and out, and one notice when it is gone. */
interface Transport {
  send(m: ToEngine): void;
  /** ends it at once (SIGKILL / terminate) */
  kill(): void;
  readonly pid: number | null;
}

interface TransportHooks {
  onMessage: (m: FromEngine) => void;
  /** the engine is gone; `reason` says how (a signal, an exit code) */
  onExit: (reason: string) => void;
}

const STDERR_LINES = 40;

/** Bun's own crash banner says nothing about the model: the lines before and the panic line are what matter. */
const BANNER =
  /^(=+|Bun v|Linux Kernel|CPU:|Args:|Features:|Builtins:|Elapsed:|RSS:|oh no|To send a redacted|please file a GitHub|\s*https:\/\/bun\.report|Crashed while)/;

export function crashLines(tail: string[]): string[] {
  return tail.filter((l) => !BANNER.test(l.trim())).slice(-5);
}

/** The engine in a child process: `bun src/engine/child.ts`, or the executable itself with LLMATIC_ENGINE_CHILD=1. */
function processTransport(id: string, hooks: TransportHooks, stderrTail: string[]): Transport {
  const cmd = childCommand(new URL("./child.ts", import.meta.url));
  const proc = Bun.spawn(cmd, {
    env: { ...process.env, LLMATIC_ENGINE_CHILD: "1" },
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
    serialization: "json",
    ipc: (m) => hooks.onMessage(m as FromEngine),
    onExit: (_p, code, signal) => hooks.onExit(signal ? `killed by ${signal}` : `exited with code ${code}`),
  });
  // the engine reports through IPC; its stderr only carries what native code prints before it dies
  void (async () => {
    const dec = new TextDecoder();
    let carry = "";
    for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) {
      const lines = (carry + dec.decode(chunk, { stream: true })).split("\n");
      carry = lines.pop() ?? "";
      for (const line of lines) {
        if (!line.trim()) continue;
        stderrTail.push(line);
        if (stderrTail.length > STDERR_LINES) stderrTail.shift();
        log.warn(`[${id}] ${line}`);
      }
    }
  })().catch(() => {});
  return {
    send: (m) => {
      try {
        proc.send(m);
      } catch {
        // the process is gone: onExit says so
      }
    },
    kill: () => proc.kill("SIGKILL"),
    get pid() {
      return proc.pid;
    },
  };
}

/** The engine in a Worker thread of this process (no isolation: for comparison and constrained systems). */
function threadTransport(hooks: TransportHooks): Transport {
  const worker = new Worker(new URL("./worker.ts", import.meta.url).href);
  let gone = false;
  const exit = (reason: string) => {
    if (gone) return;
    gone = true;
    hooks.onExit(reason);
  };
  worker.onmessage = (ev: MessageEvent<FromEngine>) => hooks.onMessage(ev.data);
  worker.onerror = (ev) => exit(`failed: ${ev.message}`);
  worker.addEventListener("close", () => exit("stopped"));
  return {
    send: (m) => worker.postMessage(m),
    kill: () => worker.terminate(),
    pid: null,
  };
}

export interface EngineStartOptions {
  /** 0..1 while the model loads */
  onProgress?: (fraction: number) => void;
  /** the engine died after it was ready (not when closed) */
  onExit?: (reason: string) => void;
  isolation?: Isolation;
  /** how images of chat requests may come (URLs fetched or not, their size) */
  images?: ImagePolicy;
}

export class LlamaEngine implements Engine {
  private nextId = 1;
  private readonly calls = new Map<number, Pending>();
  private readonly streams = new Map<number, EventQueue>();
  private lastStats: EngineStats;
  private closed = false;
  private closedPromise: Promise<void> | null = null;
  private onClosed: (() => void) | null = null;
  private exitReason: string | null = null;
  private transport!: Transport;
  private readonly stderrTail: string[] = [];
  info!: ModelInfo;

  private constructor(
    readonly config: EngineConfig,
    private readonly opts: EngineStartOptions,
  ) {
    this.lastStats = { slotsBusy: 0, slotsTotal: config.parallel, queued: 0 };
  }

  /** The engine process's pid (null in a thread). */
  get pid(): number | null {
    return this.transport.pid;
  }

  /** Why the engine stopped, once it has. */
  get exited(): string | null {
    return this.exitReason;
  }

  /** Starts an engine and loads the model. */
  static async start(config: EngineConfig, opts: EngineStartOptions = {}): Promise<LlamaEngine> {
    const engine = new LlamaEngine(config, opts);
    await engine.boot(opts.isolation ?? "process");
    return engine;
  }

  private boot(isolation: Isolation): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let ready = false;
      const hooks: TransportHooks = {
        onMessage: (m) => {
          if (ready) return this.onMessage(m);
          if (m.type === "ready") {
            ready = true;
            this.info = m.info;
            this.opts.onProgress?.(1);
            resolve();
          } else if (m.type === "fatal") {
            reject(new DomainError(m.code, m.message));
            this.closed = true;
            this.transport.kill();
          } else if (m.type === "progress") this.opts.onProgress?.(m.value);
          else if (m.type === "log") this.nativeLog(m.level, m.text);
        },
        onExit: (reason) => {
          this.exitReason = reason;
          if (!ready) {
            if (this.closed) return; // after a fatal, already rejected
            this.closed = true;
            const tail = crashLines(this.stderrTail).join(" | ");
            reject(
              new DomainError(
                "model_load_failed",
                `the engine ${reason} while loading ${this.config.modelPath}${tail ? `: ${tail}` : ""}`,
              ),
            );
            return;
          }
          this.onDied(reason);
        },
      };
      this.transport =
        isolation === "thread" ? threadTransport(hooks) : processTransport(this.config.id, hooks, this.stderrTail);
      this.transport.send({ type: "init", config: this.config });
    });
  }

  private nativeLog(level: number, text: string): void {
    const msg = `[${this.config.id}] ${text}`;
    if (level >= LogLevel.ERROR) log.error(msg);
    else if (level >= LogLevel.WARN) log.warn(msg);
    else log.debug(msg);
  }

  private onMessage(m: FromEngine): void {
    switch (m.type) {
      case "events":
        for (const [id, e] of m.events) this.streams.get(id)?.push(e);
        return;
      case "result": {
        const p = this.calls.get(m.id);
        this.calls.delete(m.id);
        p?.resolve(m.value);
        return;
      }
      case "failed": {
        const s = this.streams.get(m.id);
        if (s) s.push({ type: "error", code: m.code, message: m.message, param: m.param });
        const p = this.calls.get(m.id);
        this.calls.delete(m.id);
        p?.reject(new DomainError(m.code, m.message, m.param));
        return;
      }
      case "stats":
        this.lastStats = m.stats;
        return;
      case "log":
        this.nativeLog(m.level, m.text);
        return;
      case "closed":
        this.onClosed?.();
        return;
      case "fatal":
        // the engine cannot go on (its preparation thread failed): end it, and it restarts like a crash
        log.error(`[${this.config.id}] ${m.message}`);
        this.transport.kill();
        return;
      default:
        return;
    }
  }

  /** The engine died on its own: every request in flight gets a retryable error. */
  private onDied(reason: string): void {
    const wasClosing = this.closed;
    this.closed = true;
    this.onClosed?.();
    if (wasClosing) return;
    // a thread that failed at the JS level may still be there: make sure it is gone
    this.transport.kill();
    const tail = crashLines(this.stderrTail).join(" | ");
    log.error(`[${this.config.id}] the engine ${reason}${tail ? ` (last output: ${tail})` : ""}`);
    this.failEverything(
      "engine_crashed",
      `the engine of model '${this.config.id}' stopped (${reason}) while serving this request; it restarts by itself: retry shortly`,
    );
    this.lastStats = { slotsBusy: 0, slotsTotal: this.config.parallel, queued: 0 };
    this.opts.onExit?.(reason);
  }

  private failEverything(code: ErrorCode, message: string): void {
    const err = new DomainError(code, message);
    for (const [, p] of this.calls) p.reject(err);
    this.calls.clear();
    for (const [, s] of this.streams) s.push({ type: "error", code, message, param: null });
    this.streams.clear();
  }

  private unavailable(): DomainError {
    return this.exitReason
      ? new DomainError(
          "engine_crashed",
          `the engine of model '${this.config.id}' stopped (${this.exitReason}); retry shortly`,
        )
      : new DomainError("engine_unavailable", "the engine is shut down");
  }

  private call<T>(msg: (id: number) => ToEngine, signal?: AbortSignal): Promise<T> {
    if (this.closed) return Promise.reject(this.unavailable());
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const abort = () => this.transport.send({ type: "cancel", id });
      signal?.addEventListener("abort", abort, { once: true });
      this.calls.set(id, {
        resolve: (v) => {
          signal?.removeEventListener("abort", abort);
          resolve(v as T);
        },
        reject: (e) => {
          signal?.removeEventListener("abort", abort);
          reject(e);
        },
      });
      this.transport.send(msg(id));
    });
  }

  /**
   * One request whose answer streams: its events until `ends` says the last one
   * came. Aborting `signal`, or the consumer leaving early, cancels it in the
   * engine (once, and only while it runs).
   */
  private async *stream<T extends StreamEvent>(
    send: (id: number) => ToEngine,
    ends: (e: T) => boolean,
    signal?: AbortSignal,
  ): AsyncGenerator<T, void, void> {
    if (this.closed) {
      const e = this.unavailable();
      yield { type: "error", code: e.code, message: e.message, param: null } as T;
      return;
    }
    const id = this.nextId++;
    const queue = new EventQueue<T>();
    let finished = false;
    let cancelled = false;
    const abort = () => {
      if (finished || cancelled) return;
      cancelled = true;
      this.transport.send({ type: "cancel", id });
    };
    this.streams.set(id, queue);
    try {
      this.transport.send(send(id));
      // an abort before the request was sent still reaches the engine (right after it)
      if (signal?.aborted) abort();
      else signal?.addEventListener("abort", abort, { once: true });
      while (!finished) {
        const e = await queue.next();
        finished = e.type === "error" || ends(e);
        yield e;
      }
    } finally {
      // consumer left early (client went away) or we are done: either way stop the work
      abort();
      signal?.removeEventListener("abort", abort);
      this.streams.delete(id);
    }
  }

  async *generate(req: GenerateRequest, signal?: AbortSignal): AsyncGenerator<GenerateEvent, void, void> {
    let request: GenerateRequest;
    try {
      request = await resolveImages(req, this.opts.images ?? DEFAULT_IMAGE_POLICY, signal);
    } catch (e) {
      const err = e instanceof DomainError ? e : new DomainError("internal", String(e));
      yield { type: "error", code: err.code, message: err.message, param: err.param };
      return;
    }
    let open = req.n;
    yield* this.stream<GenerateEvent>(
      (id) => ({ type: "generate", id, request }),
      (e) => e.type === "end" && --open === 0,
      signal,
    );
  }

  /** A speech model transcribes (or translates) an audio file: segments as they are decoded, then "done". */
  async *transcribe(
    audio: Uint8Array,
    options: TranscribeOptions,
    signal?: AbortSignal,
  ): AsyncGenerator<TranscribeEvent, void, void> {
    // the audio goes to the engine as a private file: large bytes stay off the IPC channel
    const dir = mkdtempSync(join(tmpdir(), "llmatic-audio-"));
    const audioPath = join(dir, "audio");
    writeFileSync(audioPath, audio, { mode: 0o600 });
    try {
      yield* this.stream<TranscribeEvent>(
        (id) => ({ type: "transcribe", id, audioPath, options }),
        (e) => e.type === "done",
        signal,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  tokenize(text: string, addSpecial = true, parseSpecial = true): Promise<number[]> {
    return this.call((id) => ({ type: "tokenize", id, text, addSpecial, parseSpecial }));
  }

  detokenize(tokens: number[]): Promise<string> {
    return this.call((id) => ({ type: "detokenize", id, tokens }));
  }

  async countTokens(request: GenerateRequest): Promise<number> {
    return (await this.renderPrompt(request)).tokens;
  }

  async renderPrompt(req: GenerateRequest): Promise<RenderedPrompt> {
    const request = await resolveImages(req, this.opts.images ?? DEFAULT_IMAGE_POLICY);
    return this.call((id) => ({ type: "count", id, request }));
  }

  async embed(inputs: (string | number[])[], signal?: AbortSignal, rankQuery?: string): Promise<EmbedResult> {
    const r = await this.call<EmbedResultWire>((id) => ({ type: "embed", id, inputs, rankQuery }), signal);
    return {
      vectors: r.vectors.map((b) => {
        const bytes = Buffer.from(b, "base64");
        return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
      }),
      promptTokens: r.promptTokens,
    };
  }

  async rank(query: string, documents: string[], signal?: AbortSignal): Promise<RankResult> {
    const r = await this.embed(documents, signal, query);
    return { scores: r.vectors.map((v) => v[0] as number), promptTokens: r.promptTokens };
  }

  stats(): EngineStats {
    return this.lastStats;
  }

  /** Ends the engine at once, as a crash would (tests, and a stuck engine). */
  kill(): void {
    this.transport.kill();
  }

  /** Cancels what runs, frees native memory in the engine, then stops it. Idempotent. */
  close(): Promise<void> {
    if (this.closedPromise) return this.closedPromise;
    this.closedPromise = new Promise<void>((resolve) => {
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.transport.kill();
        resolve();
      };
      const timer = setTimeout(finish, 10_000);
      this.onClosed = finish;
      if (this.closed) return finish();
      this.closed = true;
      this.transport.send({ type: "shutdown" });
    });
    return this.closedPromise;
  }
}

export type { ErrorCode };
