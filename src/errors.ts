// The one error convention below the HTTP layer: everything that goes wrong is a
// DomainError with a code that says what kind of failure it is (never an HTTP
// status). Errors cross the engine boundary as JSON; each HTTP dialect maps the
// code to its status and error shape at the edge (src/http/errors.ts for OpenAI).

export type ErrorCode =
  | "invalid_request" // the request is wrong: the field is in `param`, the specific reason in `reason`
  | "not_found" // a model or other resource the request names does not exist
  | "conflict" // the resource is in a state that forbids it (a file a running job uses)
  | "context_length_exceeded" // prompt (plus what it needs) longer than the context
  | "not_implemented" // an endpoint or feature llmatic does not serve
  | "model_not_found" // no such model file (server configuration)
  | "invalid_model" // not GGUF, truncated, unsupported
  | "model_load_failed" // llama.cpp refused it; retried after a backoff
  | "model_loading" // the model is loading (or waits for room to load): try again shortly
  | "engine_restarting" // the model's engine died and restarts after a backoff
  | "engine_unavailable" // shutting down, not loaded
  | "engine_crashed" // the engine process died (signal, abort, out of memory) while serving the request
  | "queue_full" // every slot busy and the wait queue full
  | "cancelled" // the client went away, or cancelled
  | "internal";

export interface ErrorDetail {
  /** the request field at fault ("messages[0].content") */
  param?: string | null;
  /** a specific machine-readable reason ("schema_too_complex"), shown to clients as the error's code */
  reason?: string;
  /** seconds after which trying again may succeed */
  retryAfter?: number;
}

export class DomainError extends Error {
  readonly param: string | null;
  readonly reason: string | null;
  readonly retryAfter: number | null;

  constructor(
    readonly code: ErrorCode,
    message: string,
    param: string | null = null,
    detail: Omit<ErrorDetail, "param"> = {},
  ) {
    super(message);
    this.name = "DomainError";
    this.param = param;
    this.reason = detail.reason ?? null;
    this.retryAfter = detail.retryAfter ?? null;
  }

  toJSON(): { code: ErrorCode; message: string; param: string | null } {
    return { code: this.code, message: this.message, param: this.param };
  }

  static from(v: { code: ErrorCode; message: string; param?: string | null }): DomainError {
    return new DomainError(v.code, v.message, v.param ?? null);
  }
}

/** The request is wrong: 400 in every dialect. */
export function invalid(message: string, param: string | null = null, reason?: string): DomainError {
  return new DomainError("invalid_request", message, param, { reason });
}

export function notFound(message: string, param: string | null = null, reason?: string): DomainError {
  return new DomainError("not_found", message, param, { reason });
}
