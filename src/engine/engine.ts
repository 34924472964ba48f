// The engine as the HTTP layer sees it. LlamaEngine (engine/client.ts) runs the
// real one in a child process (or a worker); tests inject fakes that implement
// the same interface.
import type {
  EmbedResult,
  EngineStats,
  GenerateEvent,
  GenerateRequest,
  ModelInfo,
  RankResult,
  RenderedPrompt,
  TranscribeEvent,
  TranscribeOptions,
} from "./types";

export interface Engine {
  readonly info: ModelInfo;
  /**
   * Streams events for one request. The first event is "start" or "error" (the
   * request was rejected before decoding); then "text" and one "end" per choice.
   * Aborting `signal` (or leaving the loop early) cancels within one decode step.
   */
  generate(req: GenerateRequest, signal?: AbortSignal): AsyncGenerator<GenerateEvent, void, void>;
  tokenize(text: string, addSpecial?: boolean, parseSpecial?: boolean): Promise<number[]>;
  detokenize(tokens: number[]): Promise<string>;
  /** the prompt tokens `req` would take (its start event's promptTokens), without running it */
  countTokens(req: GenerateRequest): Promise<number>;
  /** the same, with the prompt text a chat template renders (POST /apply-template) */
  renderPrompt(req: GenerateRequest): Promise<RenderedPrompt>;
  /** queued like generations; aborting `signal` cancels between inputs */
  embed(inputs: (string | number[])[], signal?: AbortSignal): Promise<EmbedResult>;
  /** each document's score for `query` from the model's rank head (`info.rankHead`); queued as embed is */
  rank(query: string, documents: string[], signal?: AbortSignal): Promise<RankResult>;
  /** a speech model (`info.kind` "speech"): segments as they are decoded, then "done"; aborting cancels */
  transcribe(audio: Uint8Array, options: TranscribeOptions, signal?: AbortSignal): AsyncGenerator<TranscribeEvent>;
  stats(): EngineStats;
  /** the engine process's pid, when it has its own process */
  readonly pid?: number | null;
  close(): Promise<void>;
}
