// One engine: the decode thread of one model. It owns the model, its contexts
// and the decode loop; requests are prepared beside it by a preparation thread
// (prep.ts) and join the loop ready to run. It talks to the server
// (engine/client.ts) through the JSON messages of engine/types.ts over a port:
// IPC when it runs in its own process (child.ts, the default), postMessage when
// it runs in a Worker of the server (worker.ts).
import { DomainError } from "../errors";
import { Batch } from "../ffi/batch";
import { Context, FlashAttn, PoolingType } from "../ffi/context";
import { drainNativeLogs, LogLevel, lib, type NativeLogLine, setLibraryPath } from "../ffi/library";
import { Model } from "../ffi/model";
import { Vision } from "../ffi/vision";
import { isWhisperFile } from "../models/whisper-file";
import { DraftVocabMismatch, ModelDrafter } from "./draft-model";
import { prefixCacheDir } from "./prefix-store";
import type { FromPrep, ToPrep } from "./prep-protocol";
import { disposePrepared, fromWire } from "./prepare";
import { Scheduler } from "./scheduler";
import { runSpeechEngine } from "./speech";
import type {
  EmbedResultWire,
  EngineConfig,
  FromEngine,
  GenerateEvent,
  GenerateRequest,
  ModelInfo,
  ToEngine,
} from "./types";

export interface EnginePort {
  post(m: FromEngine): void;
  listen(onMessage: (m: ToEngine) => void): void;
}

/**
 * After idling, the first decode waits until requests stop arriving (GATHER_QUIET_MS
 * without a new one, GATHER_MAX_MS at most): clients often come in bursts, and
 * their prompts should share the first decode instead of waiting for it.
 */
const GATHER_QUIET_MS = 3;
const GATHER_MAX_MS = 25;
const PROGRESS_EVERY_MS = 200;

function asEngineError(e: unknown): DomainError {
  if (e instanceof DomainError) return e;
  return new DomainError("internal", e instanceof Error ? e.message : String(e));
}

export function floatsToBase64(v: Float32Array): string {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64");
}

/** Runs one engine on `port`; `onClosed` runs after a shutdown freed everything (a child process exits there). */
export function runEngine(
  port: EnginePort,
  hooks: { onInit?: (c: EngineConfig) => void; onClosed?: () => void } = {},
): void {
  let config: EngineConfig | null = null;
  let model: Model | null = null;
  let ctx: Context | null = null;
  let vision: Vision | null = null;
  let scheduler: Scheduler | null = null;
  let drafter: ModelDrafter | null = null;
  let embedCtx: { ctx: Context; batch: Batch } | null = null;
  /** the model ranks query/document pairs with a classification head */
  let rankHead = false;
  let prep: Worker | null = null;
  let nCtxSlot = 0;
  let closing = false;
  let wake: (() => void) | null = null;
  let lastStats = "";
  let lastSubmitAt = 0;
  /** requests accepted and being prepared: id -> cancelled? */
  const preparing = new Map<number, { n: number; cancelled: boolean }>();
  /** embedding requests being tokenized */
  const embedding = new Map<number, { cancelled: boolean }>();
  /** tokenize/detokenize calls answered by the preparation thread */
  const calls = new Set<number>();

  // ---- output: every event of a step in one message
  let outbox: [number, GenerateEvent][] = [];
  const flush = () => {
    if (outbox.length === 0) return;
    const events = outbox;
    outbox = [];
    port.post({ type: "events", events });
  };
  const emitFor = (id: number) => (e: GenerateEvent) => {
    if (outbox.length === 0) queueMicrotask(flush);
    outbox.push([id, e]);
  };

  const forwardLogs = (lines: NativeLogLine[] = drainNativeLogs()) => {
    for (const l of lines) port.post({ type: "log", level: l.level, text: l.text });
  };

  const toPrep = (m: ToPrep) => (prep as Worker).postMessage(m);

  function reportStats(): void {
    if (!scheduler) return;
    forwardLogs();
    const s = scheduler.stats();
    s.queued += preparing.size + embedding.size;
    const key = `${s.slotsBusy}/${s.queued}`;
    if (key === lastStats) return;
    lastStats = key;
    port.post({ type: "stats", stats: s });
  }

  function warmup(m: Model, c: Context): void {
    const b = new Batch(1);
    try {
      b.add(m.startToken, 0, 0, true);
      c.decode(b);
      c.clearMemory();
    } finally {
      b.dispose();
    }
  }

  /**
   * One input's pooled, L2-normalised vector, or a rank head's scores for one
   * query/document pair (a context of its own, made on first use).
   */
  function embedOne(tokens: Int32Array): Float32Array {
    if (!model || !config) throw new DomainError("engine_unavailable", "the model is not loaded");
    if (!embedCtx) {
      // pooled embeddings need a whole input in one micro-batch
      const n = Math.min(config.nCtx, 8192);
      const c = new Context(model, {
        nCtx: n,
        nBatch: n,
        nUbatch: n,
        nSeqMax: 1,
        nThreads: config.nThreads,
        nThreadsBatch: config.nThreadsBatch ?? config.nThreads,
        embeddings: true,
        pooling: rankHead ? PoolingType.RANK : PoolingType.MEAN,
        onLog: forwardLogs,
      });
      embedCtx = { ctx: c, batch: new Batch(n) };
    }
    const { ctx: ec, batch } = embedCtx;
    ec.clearMemory();
    batch.clear();
    for (let i = 0; i < tokens.length; i++) batch.add(tokens[i] as number, i, 0, true);
    const status = ec.decode(batch);
    if (status !== 0) throw new DomainError("internal", `embedding decode failed with status ${status}`);
    const v = ec.sequenceEmbedding(0, rankHead ? model.nClsOut : model.nEmbd);
    if (!v) throw new DomainError("internal", "the model produced no pooled embedding");
    if (rankHead) return v;
    let norm = 0;
    for (let i = 0; i < v.length; i++) norm += (v[i] as number) * (v[i] as number);
    norm = Math.sqrt(norm);
    if (norm > 0) for (let i = 0; i < v.length; i++) v[i] = (v[i] as number) / norm;
    return v;
  }

  function embedContextSize(): number {
    return Math.min((config as EngineConfig).nCtx, 8192);
  }

  /** The model is loaded (by the preparation thread): contexts, scheduler, warm-up, ready. */
  function start(handle: number, visionHandle: number | null): void {
    const cfg = config as EngineConfig;
    model = Model.fromHandle(handle, cfg.modelPath, true);
    if (visionHandle !== null) vision = Vision.adopt(visionHandle, model);
    rankHead = model.rankHead;
    const parallel = Math.max(1, cfg.parallel);
    const nBatch = cfg.nBatch ?? Math.min(2048, cfg.nCtx);
    ctx = new Context(model, {
      nCtx: cfg.nCtx,
      nBatch,
      nUbatch: cfg.nUbatch ?? Math.min(512, nBatch),
      nSeqMax: parallel,
      nThreads: cfg.nThreads,
      nThreadsBatch: cfg.nThreadsBatch ?? cfg.nThreads,
      kvUnified: cfg.kvUnified ?? false,
      flashAttn:
        cfg.flashAttn === "on" ? FlashAttn.ENABLED : cfg.flashAttn === "off" ? FlashAttn.DISABLED : FlashAttn.AUTO,
      onLog: forwardLogs,
    });
    // each slot owns ctx / parallel cells (llama.cpp: one KV stream per sequence, as llama-server -np N)
    nCtxSlot = ctx.nCtxSeq;
    if (cfg.draftModelPath && (cfg.draftMax ?? 0) > 0) drafter = loadDrafter(cfg.draftModelPath, model, parallel);
    scheduler = new Scheduler(model, ctx, {
      nBatch: ctx.nBatch,
      nCtxSlot,
      prefillChunk: 512,
      queueSize: cfg.queueSize,
      embed: embedOne,
      vision,
      maxDraft: cfg.draftMax ?? 0,
      drafter: drafter ?? undefined,
      cacheBytes: cfg.cacheRamBytes ?? 0,
      cacheDir: cfg.cacheDir ? prefixCacheDir(cfg.cacheDir, cfg.modelPath, nCtxSlot) : undefined,
      cacheDirBytes: cfg.cacheDirBytes,
    });
    if (!cfg.noWarmup) warmup(model, ctx);
    const info: ModelInfo = {
      id: cfg.id,
      path: cfg.modelPath,
      description: model.description,
      nCtx: ctx.nCtx,
      nCtxSlot,
      nCtxTrain: model.nCtxTrain,
      nEmbd: model.nEmbd,
      nVocab: model.nVocab,
      nParams: model.nParams,
      sizeBytes: model.sizeBytes,
      parallel,
      chatTemplate: model.chatTemplate(),
      eogTokens: [...model.eogTokens()],
      bosToken: model.bos >= 0 ? model.bos : null,
      fim: model.fimTokens() !== null,
      rankHead,
      vision: vision !== null,
      draftModel: drafter ? cfg.draftModelPath : undefined,
      kind: "text",
      createdAt: Math.floor(Date.now() / 1000),
    };
    forwardLogs();
    port.post({ type: "ready", info });
    void loop();
  }

  /**
   * The draft model (--model-draft), or null when its vocabulary is not this
   * model's (a server may serve several models: the others still get n-gram
   * drafts, and the log says why).
   */
  function loadDrafter(path: string, target: Model, parallel: number): ModelDrafter | null {
    const cfg = config as EngineConfig;
    try {
      const d = ModelDrafter.load(path, {
        target,
        nSeqMax: parallel,
        nCtxSeq: nCtxSlot,
        nThreads: cfg.nThreads,
        onLog: forwardLogs,
      });
      port.post({ type: "log", level: LogLevel.INFO, text: `drafts from ${path} (${d.model.description})` });
      return d;
    } catch (e) {
      if (!(e instanceof DraftVocabMismatch)) throw e;
      port.post({ type: "log", level: LogLevel.WARN, text: `${e.message}: n-gram drafts instead` });
      return null;
    }
  }

  function fail(id: number, e: unknown): void {
    const err = asEngineError(e);
    port.post({ type: "failed", id, code: err.code, message: err.message, param: err.param });
  }

  function init(cfg: EngineConfig): void {
    config = cfg;
    if (cfg.libPath) setLibraryPath(cfg.libPath);
    hooks.onInit?.(cfg);
    // the decode threads (this one and ggml's, created from it) yield to the HTTP thread
    if (cfg.niceness) lib().llmatic_thread_nice(cfg.niceness);
    if (cfg.sgemmMinBatch !== undefined) {
      // -1: where it was measured faster (CPUs with AVX512-VNNI), else stock llama.cpp
      const n = cfg.sgemmMinBatch < 0 ? (lib().llmatic_qgemm_supported() ? 8 : 0) : cfg.sgemmMinBatch;
      lib().llmatic_set_sgemm_min_batch(n);
    }
    if (cfg.qgemmMaxBatch !== undefined) {
      lib().llmatic_set_qgemm_max_batch(cfg.qgemmMaxBatch);
      // (0: all of llmatic's kernels off, its decode attention too)
      lib().llmatic_set_fast_attention(cfg.qgemmMaxBatch === 0 ? 0 : 1);
    }
    const progressBuf = new SharedArrayBuffer(4);
    const progress = new Float32Array(progressBuf);
    const timer = setInterval(() => port.post({ type: "progress", value: progress[0] as number }), PROGRESS_EVERY_MS);
    prep = new Worker(new URL("./prep.ts", import.meta.url).href);
    prep.onerror = (ev) => {
      clearInterval(timer);
      port.post({ type: "fatal", code: "internal", message: `the engine's preparation thread failed: ${ev.message}` });
    };
    prep.onmessage = (ev: MessageEvent<FromPrep>) => {
      const m = ev.data;
      switch (m.type) {
        case "logs":
          forwardLogs(m.lines);
          return;
        case "loaded":
          clearInterval(timer);
          try {
            start(m.model, m.vision);
          } catch (e) {
            const err = asEngineError(e);
            try {
              releaseAll();
            } catch {
              // best effort: the process ends after a fatal anyway
            }
            forwardLogs();
            port.post({ type: "fatal", code: err.code, message: err.message });
          }
          return;
        case "fatal":
          clearInterval(timer);
          port.post({ type: "fatal", code: m.code, message: m.message });
          return;
        case "prepared": {
          const p = fromWire(m.prepared);
          const entry = preparing.get(m.id);
          preparing.delete(m.id);
          if (!entry || entry.cancelled || closing || !scheduler) {
            disposePrepared(p);
            const emit = emitFor(m.id);
            for (let c = 0; c < p.req.n; c++)
              emit({ type: "end", choice: c, reason: "cancelled", completionTokens: 0, text: "" });
            return;
          }
          lastSubmitAt = performance.now();
          scheduler.submit(m.id, p, emitFor(m.id));
          wake?.();
          return;
        }
        case "embedded": {
          const entry = embedding.get(m.id);
          embedding.delete(m.id);
          if (!entry || entry.cancelled || !scheduler) {
            fail(m.id, new DomainError("cancelled", "the embedding request was cancelled"));
            return;
          }
          scheduler.submitEmbed(m.id, m.inputs, (r) => {
            if (r instanceof DomainError) return fail(m.id, r);
            const value: EmbedResultWire = { vectors: r.vectors.map(floatsToBase64), promptTokens: r.promptTokens };
            port.post({ type: "result", id: m.id, value });
          });
          wake?.();
          return;
        }
        case "result":
          calls.delete(m.id);
          port.post(m);
          return;
        case "failed":
          calls.delete(m.id);
          if (preparing.delete(m.id)) {
            emitFor(m.id)({ type: "error", code: m.code, message: m.message, param: m.param });
            return;
          }
          embedding.delete(m.id);
          port.post(m);
          return;
        case "closed":
          prep?.terminate();
          prep = null;
          releaseAll();
          forwardLogs();
          flush();
          port.post({ type: "closed" });
          hooks.onClosed?.();
          return;
      }
    };
    toPrep({ type: "load", config: cfg, progress: progressBuf });
  }

  async function gather(): Promise<void> {
    const startAt = performance.now();
    for (;;) {
      await Bun.sleep(1);
      const now = performance.now();
      if (now - lastSubmitAt >= GATHER_QUIET_MS || now - startAt >= GATHER_MAX_MS) return;
    }
  }

  /** The decode loop: steps while there is work, yielding to the event loop between steps. */
  async function loop(): Promise<void> {
    while (!closing) {
      if (!scheduler?.hasWork) {
        reportStats();
        await new Promise<void>((r) => {
          wake = r;
        });
        wake = null;
        await gather();
        continue;
      }
      try {
        scheduler.step();
      } catch (e) {
        // a failure no single request caused: every running request gets the error (none "completes")
        const err = asEngineError(e);
        port.post({ type: "log", level: 4, text: `decode loop error: ${err.message}` });
        scheduler.failAll("internal", `the engine failed: ${err.message}`);
      }
      flush();
      reportStats();
      // let queued messages (new requests, cancels) in before the next step
      await new Promise<void>((r) => setImmediate(r));
    }
  }

  /** Frees every native object (a worker's memory belongs to the process: terminating it would not). */
  function releaseAll(): void {
    scheduler?.dispose();
    drafter?.dispose();
    embedCtx?.batch.dispose();
    embedCtx?.ctx.dispose();
    ctx?.dispose();
    vision?.dispose();
    model?.dispose();
    vision = null;
    scheduler = null;
    drafter = null;
    embedCtx = null;
    ctx = null;
    model = null;
  }

  function generate(id: number, request: GenerateRequest): void {
    if (!scheduler || closing) throw new DomainError("engine_unavailable", "the model is not loaded");
    let arriving = 0;
    for (const p of preparing.values()) arriving += p.n;
    scheduler.checkAdmissible(request.n, arriving + embedding.size);
    preparing.set(id, { n: request.n, cancelled: false });
    toPrep({ type: "prepare", id, request, nCtxSlot });
  }

  /** a speech model's engine takes every message after "init" */
  let speech: ((m: ToEngine) => void) | null = null;

  port.listen((m) => {
    if (speech) return speech(m);
    try {
      switch (m.type) {
        case "init":
          if (isWhisperFile(m.config.modelPath)) {
            if (m.config.libPath) setLibraryPath(m.config.libPath);
            hooks.onInit?.(m.config);
            speech = runSpeechEngine((x) => port.post(x), m.config, hooks.onClosed);
            return;
          }
          init(m.config);
          return;
        case "generate":
          try {
            generate(m.id, m.request);
          } catch (e) {
            const err = asEngineError(e);
            emitFor(m.id)({ type: "error", code: err.code, message: err.message, param: err.param });
          }
          return;
        case "cancel": {
          const p = preparing.get(m.id) ?? embedding.get(m.id);
          if (p) p.cancelled = true;
          else scheduler?.cancel(m.id);
          return;
        }
        case "tokenize":
        case "detokenize":
          if (!model || closing) throw new DomainError("engine_unavailable", "the model is not loaded");
          calls.add(m.id);
          toPrep(m);
          return;
        case "count":
          if (!model || closing) throw new DomainError("engine_unavailable", "the model is not loaded");
          calls.add(m.id);
          toPrep({ ...m, nCtxSlot });
          return;
        case "embed":
          if (!scheduler || closing) throw new DomainError("engine_unavailable", "the model is not loaded");
          if (rankHead && m.rankQuery === undefined) {
            throw new DomainError(
              "invalid_request",
              `${(config as EngineConfig).id} is a reranker (rank pooling): it scores query/document pairs at /v1/rerank and makes no embeddings`,
              "model",
            );
          }
          if (!rankHead && m.rankQuery !== undefined)
            throw new DomainError("invalid_request", "this model has no rank head", "model");
          scheduler.checkAdmissible(1, preparing.size + embedding.size);
          embedding.set(m.id, { cancelled: false });
          toPrep({ type: "embed", id: m.id, inputs: m.inputs, nCtx: embedContextSize(), rankQuery: m.rankQuery });
          return;
        case "shutdown":
          closing = true;
          wake?.();
          scheduler?.failAll("engine_unavailable", "the server is shutting down");
          flush();
          if (prep) toPrep({ type: "shutdown" });
          else {
            releaseAll();
            port.post({ type: "closed" });
            hooks.onClosed?.();
          }
          return;
      }
    } catch (e) {
      if ("id" in m) fail(m.id, e);
      else port.post({ type: "log", level: 4, text: asEngineError(e).message });
    }
  });
}
