// The engine's typed vocabulary, shared by the main thread and the worker.
// No JSON from the wire ever gets here: the HTTP layer translates requests into
// these types at the edge.
import type { EngineErrorCode } from "../errors";
import type { TemplateInput } from "../ffi/chat";
import type { SamplingParams } from "../ffi/sampler";

export interface EngineConfig {
  modelPath: string;
  /** model id shown to clients */
  id: string;
  nCtx: number;
  nThreads: number;
  nThreadsBatch?: number;
  /** number of sequences decoded together (slots) */
  parallel: number;
  /** requests that may wait for a slot; more are refused (queue_full) */
  queueSize?: number;
  nBatch?: number;
  nUbatch?: number;
  nGpuLayers?: number;
  useMmap?: boolean;
  /** let ggml repack quantized weights (faster); false = batch-invariant numerics */
  repack?: boolean;
  kvUnified?: boolean;
  flashAttn?: "auto" | "on" | "off";
  /** jinja source that replaces the model's chat template */
  chatTemplate?: string;
  /** lower the decode threads' CPU priority by this much, so HTTP stays responsive (0 = off) */
  niceness?: number;
  /** skip the warm-up decode (tests of load errors) */
  noWarmup?: boolean;
}

export interface ModelInfo {
  id: string;
  path: string;
  description: string;
  nCtx: number;
  nCtxSlot: number;
  nCtxTrain: number;
  nEmbd: number;
  nVocab: number;
  nParams: number;
  sizeBytes: number;
  parallel: number;
  chatTemplate: string | null;
  eogTokens: number[];
  createdAt: number;
}

export type PromptInput =
  | { type: "text"; text: string; addSpecial?: boolean; parseSpecial?: boolean }
  | { type: "tokens"; tokens: number[] }
  | { type: "chat"; chat: TemplateInput }
  /** fill-in-the-middle: the model writes what goes between prefix and suffix */
  | { type: "infill"; prefix: string; suffix: string };

export interface GenerateRequest {
  prompt: PromptInput;
  /** number of independent choices (parallel sequences sharing the prompt) */
  n: number;
  /** tokens to generate at most per choice; null = until the slot's context is full */
  maxTokens: number | null;
  sampling: SamplingParams;
  stop: string[];
  /** never end on an end-of-generation token (benchmarks) */
  ignoreEos?: boolean;
}

export type FinishReason = "stop" | "length" | "cancelled";

/** What the worker tells the main thread about one generate request. */
export type GenerateEvent =
  | { type: "start"; promptTokens: number; cachedTokens: number; prompt: string | null }
  | { type: "text"; choice: number; text: string; tokens: number }
  | { type: "end"; choice: number; reason: FinishReason; completionTokens: number; text: string }
  | { type: "error"; code: EngineErrorCode; message: string; param: string | null };

export interface EmbedResult {
  vectors: Float32Array[];
  promptTokens: number;
}

export interface EngineStats {
  slotsBusy: number;
  slotsTotal: number;
  queued: number;
}

// ---- worker protocol --------------------------------------------------------

export type ToWorker =
  | { type: "init"; config: EngineConfig; progress: SharedArrayBuffer }
  | { type: "generate"; id: number; request: GenerateRequest; cancel: SharedArrayBuffer }
  | { type: "tokenize"; id: number; text: string; addSpecial: boolean; parseSpecial: boolean }
  | { type: "detokenize"; id: number; tokens: number[] }
  | { type: "embed"; id: number; inputs: (string | number[])[] }
  | { type: "template"; id: number; chat: TemplateInput }
  | { type: "shutdown" };

export type FromWorker =
  | { type: "ready"; info: ModelInfo }
  | { type: "fatal"; code: EngineErrorCode; message: string }
  | { type: "log"; level: number; text: string }
  | { type: "event"; id: number; event: GenerateEvent }
  | { type: "result"; id: number; value: unknown }
  | { type: "failed"; id: number; code: EngineErrorCode; message: string; param: string | null }
  | { type: "stats"; stats: EngineStats }
  | { type: "closed" };
