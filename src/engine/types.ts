// The engine's typed vocabulary, shared by the main thread and the worker.
// No JSON from the wire ever gets here: the HTTP layer translates requests into
// these types at the edge.
import type { TranscriptSegment } from "../audio/formats";
import type { ErrorCode } from "../errors";
import type { TemplateInput } from "../ffi/chat";
import type { SamplingParams } from "../ffi/sampler";

export interface EngineConfig {
  modelPath: string;
  /** libllmatic.so to open (default: LLMATIC_LIB, then native/lib/) */
  libPath?: string;
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
  /** batches of fewer tokens skip llamafile's tinyBLAS on quantized weights (per engine process; -1: 8 with AVX512-VNNI, else 0) */
  sgemmMinBatch?: number;
  /** llmatic's kernels: K-quants in every batch of 2+ tokens (AVX2/AVX512-VNNI), Q8_0/Q5_0 in batches of 2..N (AVX512-VNNI); process-wide, default 16, 0 off */
  qgemmMaxBatch?: number;
  kvUnified?: boolean;
  flashAttn?: "auto" | "on" | "off";
  /** jinja source that replaces the model's chat template */
  chatTemplate?: string;
  /** lower the decode threads' CPU priority by this much, so HTTP stays responsive (0 = off) */
  niceness?: number;
  /** the multimodal projector (mmproj-*.gguf) loaded beside the model: images in chat */
  mmprojPath?: string;
  /** an image with more pixels is refused (default 50 million) */
  maxImagePixels?: number;
  /** speculative decoding: at most this many draft tokens per step and sequence (0: off) */
  draftMax?: number;
  /** drafts come from this model (same vocabulary) instead of n-gram lookups */
  draftModelPath?: string;
  /** host memory for prefixes evicted from the slots, in bytes (0: none) */
  cacheRamBytes?: number;
  /** a directory that keeps evicted prefixes across restarts (each model in its own subdirectory), and its budget */
  cacheDir?: string;
  cacheDirBytes?: number;
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
  /** the token a document starts with (BOS), or null when the vocabulary has none */
  bosToken: number | null;
  /** the vocabulary has fill-in-the-middle tokens (suffix, Ollama's "insert") */
  fim: boolean;
  /** rank pooling with a classification head: the model scores query/document pairs (rerank), it does not embed */
  rankHead: boolean;
  /** "text": a llama.cpp model; "speech": a whisper.cpp model (speech to text, nothing else) */
  kind: "text" | "speech";
  /** a projector is loaded: chat messages may hold images */
  vision?: boolean;
  /** a speech model transcribes more than English and translates */
  multilingual?: boolean;
  /** speculative decoding's drafts come from this model (--model-draft); unset: n-gram lookups */
  draftModel?: string;
  createdAt: number;
}

/** A prompt as the engine would run it: its token count, and a chat template's rendered text. */
export interface RenderedPrompt {
  tokens: number;
  text: string | null;
}

/**
 * Where an image of a chat message stands in its text: the dialects write it
 * there, and the engine splits the rendered prompt on it (libmtmd's default marker).
 */
export const MEDIA_MARKER = "<__media__>";

/** An image file's bytes (base64), or a URL the server fetches first (only with --allow-image-urls). */
export type ImageInput = { data: string } | { url: string };

export type PromptInput =
  | { type: "text"; text: string; addSpecial?: boolean; parseSpecial?: boolean }
  | { type: "tokens"; tokens: number[] }
  /** a message's images stand where MEDIA_MARKER stands in its text (TemplateMessage.images) */
  | { type: "chat"; chat: TemplateInput }
  /** fill-in-the-middle: the model writes what goes between prefix and suffix */
  | { type: "infill"; prefix: string; suffix: string };

/** interactive requests go first; batch work takes what they leave (see Scheduler) */
export type Priority = "interactive" | "batch";

export interface GenerateRequest {
  prompt: PromptInput;
  /** default interactive */
  priority?: Priority;
  /** number of independent choices (parallel sequences sharing the prompt) */
  n: number;
  /** tokens to generate at most per choice; null = until the slot's context is full */
  maxTokens: number | null;
  /**
   * the most context (prompt plus generated tokens) this request may use, when
   * smaller than the slot's (Ollama's num_ctx); unset: the slot's
   */
  contextLimit?: number;
  sampling: SamplingParams;
  stop: string[];
  /** never end on an end-of-generation token (benchmarks) */
  ignoreEos?: boolean;
  /** false: decode one token per step (no n-gram drafts), whatever the engine's --draft-max */
  speculative?: boolean;
  /**
   * chat: parse the output with the template's parser: "content" strips what the
   * format wraps around the answer (e.g. code fences around JSON), "tools" also
   * extracts tool calls. Unset: the raw text is the answer.
   */
  parse?: "content" | "tools";
  /** report the log-probability of each generated token and its `n` most likely alternatives (0..20) */
  logprobs?: number | null;
  /**
   * chat with a thinking template: how many tokens the think block may take
   * before its end is forced (null: no limit). Thinking itself is switched by
   * prompt.chat.enableThinking.
   */
  reasoningBudget?: number | null;
  /** also report the prompt's tokens with their log-probabilities (completions echo); top `n` alternatives */
  promptLogprobs?: number | null;
  /** with promptLogprobs: only the tokens from this prompt position on (scorers; the rest needs no logits) */
  promptLogprobsFrom?: number;
  /** report each choice's mean token log-probability in its end event (best_of) */
  scoreChoices?: boolean;
  /** report the log-probabilities these tokens had at the first generated position (end event `scores`; judges) */
  scoreTokens?: number[];
}

/** One token with its log-probability; `bytes` is its raw UTF-8 (possibly a fragment of a character). */
export interface TokenLogprob {
  token: number;
  bytes: number[];
  /** null for a prompt's first token, which has nothing before it */
  logprob: number | null;
  top: { token: number; bytes: number[]; logprob: number }[];
}

export interface ToolCallDelta {
  index: number;
  /** set on a call's first delta */
  id?: string;
  name?: string;
  arguments: string;
}

export interface ParsedMessage {
  content: string;
  reasoning: string;
  toolCalls: { id: string; name: string; arguments: string }[];
}

export type FinishReason = "stop" | "length" | "cancelled";

/** What the worker tells the main thread about one generate request. */
export type GenerateEvent =
  | { type: "start"; promptTokens: number; cachedTokens: number; prompt: string | null }
  /** the prompt's tokens with log-probabilities (only when promptLogprobs was asked) */
  | { type: "prompt"; logprobs: TokenLogprob[] }
  | {
      type: "text";
      choice: number;
      /** raw text (tool-call markup included) */
      text: string;
      tokens: number;
      /** the tokens whose text this event completes */
      logprobs?: TokenLogprob[];
      /** with parse: what the text adds to the parsed message */
      delta?: { content: string; reasoning: string; toolCalls: ToolCallDelta[] };
    }
  | {
      type: "end";
      choice: number;
      reason: FinishReason;
      completionTokens: number;
      text: string;
      /** with parse: the final parsed message */
      message?: ParsedMessage;
      /** the stop string that ended the text, if one did */
      stopSequence?: string;
      /** with scoreChoices */
      meanLogprob?: number;
      /** with scoreTokens: one log-probability per token asked for */
      scores?: number[];
    }
  | { type: "error"; code: ErrorCode; message: string; param: string | null };

export interface TranscribeOptions {
  /** ISO-639-1 code; unset: detected */
  language?: string;
  prompt?: string;
  translate?: boolean;
  temperature?: number;
  /** how much the temperature rises when a window decodes badly (whisper.cpp's 0.2 when unset; 0: never) */
  temperatureInc?: number;
  /** per-token times (the "word" granularity) */
  tokenTimestamps?: boolean;
}

/** A transcription as it runs: segments as they are decoded, then one "done" (or an error). */
export type TranscribeEvent =
  | { type: "segments"; segments: TranscriptSegment[] }
  | { type: "done"; language: string; duration: number }
  | { type: "error"; code: ErrorCode; message: string; param: string | null };

export interface EmbedResult {
  vectors: Float32Array[];
  promptTokens: number;
}

/** A rank head's score for each document (the first label's: "yes" for Qwen3-Reranker). */
export interface RankResult {
  scores: number[];
  promptTokens: number;
}

export interface EngineStats {
  slotsBusy: number;
  slotsTotal: number;
  queued: number;
  /** prompt tokens whose KV was copied from another slot instead of computed (since start) */
  prefixCopied?: number;
  /** prompt tokens loaded back from the host-memory prefix cache, and the bytes it holds */
  prefixRestored?: number;
  hostCacheBytes?: number;
  /** speculative decoding since start: draft tokens decoded, and those kept */
  draftProposed?: number;
  draftAccepted?: number;
}

// ---- engine protocol ----------------------------------------------------------
// Between the server (engine/client.ts) and one engine (engine/runtime.ts), which
// runs in a child process (Bun IPC, JSON) or a Worker thread. Every message is
// plain JSON: no shared memory crosses the boundary.

export type ToEngine =
  | { type: "init"; config: EngineConfig }
  | { type: "generate"; id: number; request: GenerateRequest }
  | { type: "cancel"; id: number }
  | { type: "tokenize"; id: number; text: string; addSpecial: boolean; parseSpecial: boolean }
  | { type: "detokenize"; id: number; tokens: number[] }
  /** the prompt tokens of a generate request (templated and tokenized, not run) */
  | { type: "count"; id: number; request: GenerateRequest }
  /** with `rankQuery`, the inputs are documents scored against it by the model's rank head */
  | { type: "embed"; id: number; inputs: (string | number[])[]; rankQuery?: string }
  /** a speech model: the audio file, written by the server to a private temporary file (large bytes stay off the IPC channel) */
  | { type: "transcribe"; id: number; audioPath: string; options: TranscribeOptions }
  | { type: "shutdown" };

export type FromEngine =
  | { type: "progress"; value: number }
  | { type: "ready"; info: ModelInfo }
  | { type: "fatal"; code: ErrorCode; message: string }
  | { type: "log"; level: number; text: string }
  /** every event of one decode step, in order: [request id, event] */
  | { type: "events"; events: [number, GenerateEvent | TranscribeEvent][] }
  | { type: "result"; id: number; value: unknown }
  | { type: "failed"; id: number; code: ErrorCode; message: string; param: string | null }
  | { type: "stats"; stats: EngineStats }
  | { type: "closed" };

/** Embedding vectors cross the boundary as base64 of their float32 bytes (exact, compact). */
export interface EmbedResultWire {
  vectors: string[];
  promptTokens: number;
}
