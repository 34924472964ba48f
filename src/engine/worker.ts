// The engine worker: owns the model, its contexts and the decode loop, so no
// FFI call ever blocks the HTTP thread. Talks to engine/client.ts through the
// typed messages of engine/types.ts.
declare const self: Worker;

import { EngineError } from "../errors";
import { Batch } from "../ffi/batch";
import { ChatTemplates } from "../ffi/chat";
import { Context, FlashAttn, PoolingType } from "../ffi/context";
import { drainNativeLogs, lib, type NativeLogLine, setLibraryPath } from "../ffi/library";
import { Model } from "../ffi/model";
import { Scheduler } from "./scheduler";
import type { EmbedResult, EngineConfig, FromWorker, ModelInfo, ToWorker } from "./types";

let model: Model | null = null;
let ctx: Context | null = null;
let templates: ChatTemplates | null = null;
let scheduler: Scheduler | null = null;
let config: EngineConfig | null = null;
let embedCtx: { ctx: Context; batch: Batch } | null = null;
let closing = false;
let wake: (() => void) | null = null;
let lastStats = "";
let lastSubmitAt = 0;
/**
 * After idling, the first decode waits until requests stop arriving (GATHER_QUIET_MS
 * without a new one, GATHER_MAX_MS at most): clients often come in bursts, and
 * their prompts should share the first decode instead of waiting for it.
 */
const GATHER_QUIET_MS = 3;
const GATHER_MAX_MS = 25;

async function gather(): Promise<void> {
  const start = performance.now();
  for (;;) {
    await Bun.sleep(1);
    const now = performance.now();
    if (now - lastSubmitAt >= GATHER_QUIET_MS || now - start >= GATHER_MAX_MS) return;
  }
}

function post(m: FromWorker): void {
  self.postMessage(m);
}

function forwardLogs(lines: NativeLogLine[] = drainNativeLogs()): void {
  for (const l of lines) post({ type: "log", level: l.level, text: l.text });
}

function asEngineError(e: unknown): EngineError {
  if (e instanceof EngineError) return e;
  return new EngineError("internal", e instanceof Error ? e.message : String(e));
}

function init(cfg: EngineConfig, progressBuf: SharedArrayBuffer): void {
  config = cfg;
  if (cfg.libPath) setLibraryPath(cfg.libPath);
  // the decode threads (this one and ggml's, created from it) yield to the HTTP thread
  if (cfg.niceness) lib().llmatic_thread_nice(cfg.niceness);
  if (cfg.sgemmMinBatch !== undefined) lib().llmatic_set_sgemm_min_batch(cfg.sgemmMinBatch);
  if (cfg.qgemmMaxBatch !== undefined) lib().llmatic_set_qgemm_max_batch(cfg.qgemmMaxBatch);
  const progress = new Float32Array(progressBuf);
  model = Model.load(cfg.modelPath, {
    nGpuLayers: cfg.nGpuLayers ?? 0,
    useMmap: cfg.useMmap ?? true,
    repack: cfg.repack ?? true,
    progress,
    onLog: forwardLogs,
  });
  if (!model.hasDecoder)
    throw new EngineError("invalid_model", `${cfg.modelPath} has no decoder: it cannot generate text`);
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
  templates = ChatTemplates.create(model, cfg.chatTemplate);
  forwardLogs();
  // each slot owns ctx / parallel cells (llama.cpp: one KV stream per sequence, as llama-server -np N)
  const nCtxSlot = ctx.nCtxSeq;
  scheduler = new Scheduler(model, ctx, templates, {
    nBatch: ctx.nBatch,
    nCtxSlot,
    prefillChunk: 512,
    queueSize: cfg.queueSize,
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
    createdAt: Math.floor(Date.now() / 1000),
  };
  progress[0] = 1;
  post({ type: "ready", info });
}

/** One throw-away decode so the first request does not pay for graph allocation. */
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

function embed(inputs: (string | number[])[]): EmbedResult {
  if (!model || !config) throw new EngineError("engine_unavailable", "the model is not loaded");
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
      pooling: PoolingType.MEAN,
      onLog: forwardLogs,
    });
    embedCtx = { ctx: c, batch: new Batch(n) };
  }
  const { ctx: ec, batch } = embedCtx;
  const tokenized = inputs.map((input, i) => {
    const toks = typeof input === "string" ? [...model!.tokenize(input, true, false)] : input;
    for (const t of toks) {
      if (!Number.isInteger(t) || t < 0 || t >= model!.nVocab) {
        throw new EngineError(
          "invalid_request",
          `token id ${t} is out of range (vocabulary has ${model!.nVocab})`,
          "input",
        );
      }
    }
    if (toks.length === 0) throw new EngineError("invalid_request", `input[${i}] is empty`, "input");
    if (toks.length > ec.nCtx) {
      throw new EngineError(
        "context_length_exceeded",
        `input[${i}] has ${toks.length} tokens but the embedding context is ${ec.nCtx} tokens`,
        "input",
      );
    }
    return toks;
  });
  const vectors: Float32Array[] = [];
  let promptTokens = 0;
  for (const toks of tokenized) {
    ec.clearMemory();
    batch.clear();
    for (let i = 0; i < toks.length; i++) batch.add(toks[i] as number, i, 0, true);
    const status = ec.decode(batch);
    if (status !== 0) throw new EngineError("internal", `embedding decode failed with status ${status}`);
    const v = ec.sequenceEmbedding(0);
    if (!v) throw new EngineError("internal", "the model produced no pooled embedding");
    let norm = 0;
    for (let i = 0; i < v.length; i++) norm += (v[i] as number) * (v[i] as number);
    norm = Math.sqrt(norm);
    if (norm > 0) for (let i = 0; i < v.length; i++) v[i] = (v[i] as number) / norm;
    vectors.push(v);
    promptTokens += toks.length;
  }
  return { vectors, promptTokens };
}

function reportStats(): void {
  if (!scheduler) return;
  const s = scheduler.stats();
  const key = `${s.slotsBusy}/${s.queued}`;
  if (key === lastStats) return;
  lastStats = key;
  post({ type: "stats", stats: s });
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
      const err = asEngineError(e);
      post({ type: "log", level: 4, text: `decode loop error: ${err.message}` });
      scheduler.cancelAll();
    }
    reportStats();
    // let queued messages (new requests) in before the next step
    await new Promise<void>((r) => setImmediate(r));
  }
}

/** Frees every native object (terminating a worker would not: its memory belongs to the process). */
function releaseAll(): void {
  scheduler?.dispose();
  embedCtx?.batch.dispose();
  embedCtx?.ctx.dispose();
  templates?.dispose();
  ctx?.dispose();
  model?.dispose();
  scheduler = null;
  embedCtx = null;
  templates = null;
  ctx = null;
  model = null;
}

function shutdown(): void {
  closing = true;
  releaseAll();
  forwardLogs();
  post({ type: "closed" });
  wake?.();
}

self.onmessage = (ev: MessageEvent<ToWorker>) => {
  const m = ev.data;
  try {
    switch (m.type) {
      case "init":
        try {
          init(m.config, m.progress);
        } catch (e) {
          const err = asEngineError(e);
          try {
            // a model loaded before the context failed must not stay in memory
            releaseAll();
            forwardLogs();
          } catch {
            // the library itself may be what failed to load
          }
          post({ type: "fatal", code: err.code, message: err.message });
        }
        return;
      case "generate": {
        if (!scheduler) throw new EngineError("engine_unavailable", "the model is not loaded");
        const id = m.id;
        lastSubmitAt = performance.now();
        scheduler.submit(id, m.request, new Int32Array(m.cancel), (event) => post({ type: "event", id, event }));
        wake?.();
        return;
      }
      case "tokenize":
        if (!model) throw new EngineError("engine_unavailable", "the model is not loaded");
        post({ type: "result", id: m.id, value: [...model.tokenize(m.text, m.addSpecial, m.parseSpecial)] });
        return;
      case "detokenize":
        if (!model) throw new EngineError("engine_unavailable", "the model is not loaded");
        post({ type: "result", id: m.id, value: model.detokenize(m.tokens) });
        return;
      case "embed":
        post({ type: "result", id: m.id, value: embed(m.inputs) });
        return;
      case "shutdown":
        shutdown();
        return;
    }
  } catch (e) {
    const err = asEngineError(e);
    if ("id" in m) post({ type: "failed", id: m.id, code: err.code, message: err.message, param: err.param });
    else post({ type: "log", level: 4, text: err.message });
  }
};

void loop();
