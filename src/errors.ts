// Typed errors that cross layers (ffi -> engine -> http). The HTTP layer maps
// `code` to a status and an OpenAI error body; nothing below it knows about HTTP.

export type EngineErrorCode =
  | "model_not_found" // no such file
  | "invalid_model" // not GGUF, truncated, unsupported
  | "model_load_failed" // llama.cpp refused it
  | "context_length_exceeded" // prompt (plus what it needs) longer than the context
  | "invalid_request" // parameters the engine cannot honour (bad grammar, token out of range...)
  | "engine_unavailable" // shutting down, not loaded
  | "engine_crashed" // the engine process died (signal, abort, out of memory); it restarts
  | "queue_full" // every slot busy and the wait queue full
  | "cancelled"
  | "internal";

export class EngineError extends Error {
  constructor(
    readonly code: EngineErrorCode,
    message: string,
    readonly param: string | null = null,
  ) {
    super(message);
    this.name = "EngineError";
  }

  toJSON(): { code: EngineErrorCode; message: string; param: string | null } {
    return { code: this.code, message: this.message, param: this.param };
  }

  static from(v: { code: EngineErrorCode; message: string; param?: string | null }): EngineError {
    return new EngineError(v.code, v.message, v.param ?? null);
  }
}
