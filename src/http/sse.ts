// Server-sent events as OpenAI streams them: `data: {json}` frames, an error
// after the first frame as `data: {"error":{...}}`, and `data: [DONE]` last.
import { sse } from "elysia";
import { toApiError } from "./errors";

export const DONE = sse({ data: "[DONE]" });

export function frame(data: object) {
  return sse({ data: data as Record<string, unknown> });
}

export function errorFrame(e: unknown) {
  return frame(toApiError(e).body());
}

/** Long prefills can be silent for a while: a stream must not hit the idle timeout. */
export function keepOpen(server: { timeout(req: Request, seconds: number): void } | null, request: Request): void {
  server?.timeout(request, 0);
}
