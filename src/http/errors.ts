// One error layer: everything that goes wrong becomes an error body with the
// right status, in the dialect of the route: OpenAI's
// {"error":{"message","type","param","code"}}, on Anthropic's routes
// {"type":"error","error":{"type","message"}}, on Ollama's (/api/*) {"error":"..."}.
import { DomainError, type ErrorCode } from "../errors";

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export interface AnthropicErrorBody {
  type: "error";
  error: { type: string; message: string };
}

export interface OllamaErrorBody {
  error: string;
}

export type Dialect = "openai" | "anthropic" | "ollama";

/** The dialect a path's errors are written in: Anthropic's for /v1/messages and below, Ollama's for /api/. */
export function dialectOf(path: string): Dialect {
  if (path === "/v1/messages" || path.startsWith("/v1/messages/")) return "anthropic";
  if (path === "/api" || path.startsWith("/api/")) return "ollama";
  return "openai";
}

/** Anthropic's error type for a status. */
function anthropicType(status: number): string {
  switch (status) {
    case 400:
    case 409:
    case 422:
      return "invalid_request_error";
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 413:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    case 503:
    case 529:
      return "overloaded_error";
    default:
      return status < 500 ? "invalid_request_error" : "api_error";
  }
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

  body(dialect?: "openai"): OpenAIErrorBody;
  body(dialect: "anthropic"): AnthropicErrorBody;
  body(dialect: "ollama"): OllamaErrorBody;
  body(dialect?: Dialect): OpenAIErrorBody | AnthropicErrorBody | OllamaErrorBody;
  body(dialect: Dialect = "openai"): OpenAIErrorBody | AnthropicErrorBody | OllamaErrorBody {
    if (dialect === "ollama") return { error: this.message };
    if (dialect === "anthropic")
      return { type: "error", error: { type: anthropicType(this.status), message: this.message } };
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }

  toResponse(dialect: Dialect = "openai"): Response {
    return Response.json(this.body(dialect), {
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

/** A domain error's HTTP status: the client's fault (4xx) or ours (5xx). Shared by every dialect. */
export function statusOf(e: DomainError): number {
  switch (e.code) {
    case "invalid_request":
    case "context_length_exceeded":
      return 400;
    case "not_found":
      return 404;
    case "conflict":
      return 409;
    case "cancelled":
      return 499;
    case "not_implemented":
      return 501;
    case "model_not_found":
    case "invalid_model":
    case "model_load_failed":
    case "model_loading":
    case "engine_restarting":
    case "engine_unavailable":
    case "engine_crashed":
    case "queue_full":
      return 503;
    default:
      return 500;
  }
}

const DEFAULT_RETRY_AFTER: Partial<Record<ErrorCode, number>> = {
  engine_unavailable: 5,
  engine_crashed: 1,
  queue_full: 1,
  model_loading: 2,
  model_not_found: 5,
  invalid_model: 5,
  model_load_failed: 5,
  engine_restarting: 1,
};

/** A domain error in OpenAI's shape. */
export function fromDomainError(e: DomainError): ApiError {
  const status = statusOf(e);
  const code = e.reason ?? (e.code === "invalid_request" ? null : e.code === "internal" ? "internal_error" : e.code);
  const type = status >= 500 && status !== 501 ? "server_error" : "invalid_request_error";
  const retry = e.retryAfter ?? DEFAULT_RETRY_AFTER[e.code];
  return new ApiError(
    status,
    e.message,
    type,
    code,
    e.param,
    retry && status === 503 ? { "retry-after": String(retry) } : {},
  );
}

export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof DomainError) return fromDomainError(e);
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
