// One error layer: everything that goes wrong becomes OpenAI's error body
// {"error":{"message","type","param","code"}} with the right status.
import { EngineError } from "../errors";

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "ApiError";
  }

  body(): OpenAIErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }

  toResponse(): Response {
    return Response.json(this.body(), {
      status: this.status,
      headers: {
        ...this.headers,
        // the SDKs retry 5xx and 429 unless told not to; only "try later" answers are worth a retry
        "x-should-retry": this.status === 503 || this.status === 429 ? "true" : "false",
      },
    });
  }

  static invalid(message: string, param: string | null = null, code: string | null = null): ApiError {
    return new ApiError(400, message, "invalid_request_error", code, param);
  }

  static notFound(message: string, param: string | null = null, code: string | null = null): ApiError {
    return new ApiError(404, message, "invalid_request_error", code, param);
  }

  static unsupported(what: string, param: string | null): ApiError {
    return new ApiError(
      400,
      `${what} is not supported by llmatic`,
      "invalid_request_error",
      "unsupported_parameter",
      param,
    );
  }

  static notImplemented(endpoint: string, why?: string): ApiError {
    return new ApiError(
      501,
      `${endpoint} is not implemented by llmatic${why ? `: ${why}` : " (it serves local GGUF models: completions, chat completions, embeddings and models)"}`,
      "invalid_request_error",
      "not_implemented",
    );
  }

  static unavailable(message: string, code: string, retryAfterSeconds: number): ApiError {
    return new ApiError(503, message, "server_error", code, null, { "retry-after": String(retryAfterSeconds) });
  }
}

/** Maps engine errors to HTTP: the client's fault (4xx) or ours (5xx). */
export function fromEngineError(e: EngineError): ApiError {
  switch (e.code) {
    case "context_length_exceeded":
      return ApiError.invalid(e.message, e.param, "context_length_exceeded");
    case "invalid_request":
      return ApiError.invalid(e.message, e.param);
    case "engine_unavailable":
      return ApiError.unavailable(e.message, "engine_unavailable", 5);
    case "engine_crashed":
      return ApiError.unavailable(e.message, "engine_crashed", 1);
    case "queue_full":
      return ApiError.unavailable(e.message, "queue_full", 1);
    case "cancelled":
      return new ApiError(499, e.message, "invalid_request_error", "cancelled");
    case "model_not_found":
    case "invalid_model":
    case "model_load_failed":
      return ApiError.unavailable(e.message, e.code, 5);
    default:
      return new ApiError(500, e.message, "server_error", "internal_error");
  }
}

export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof EngineError) return fromEngineError(e);
  return new ApiError(500, e instanceof Error ? e.message : String(e), "server_error", "internal_error");
}

/** "/messages/0/content" -> "messages[0].content" (the way OpenAI names parameters). */
export function paramFromPath(path: string): string | null {
  const parts = path.split("/").filter(Boolean);
  if (parts.length === 0) return null;
  let out = "";
  for (const p of parts) out += /^\d+$/.test(p) ? `[${p}]` : out ? `.${p}` : p;
  return out;
}
