// Server-sent events as OpenAI streams them: `data: {json}` frames, an error
// after the first frame as `data: {"error":{...}}`, and `data: [DONE]` last;
// the Responses API and Anthropic name each frame (`event: type`) and send no
// [DONE].
// The response is a pull stream: a frame is produced when the connection can
// take it. A silent stream (a long prefill, a model thinking) gets keep-alive
// comments; a client that stops reading (the connection's buffers are full and
// nothing is taken for `stallMs`) is cut off, so its slot is freed.
import { toApiError } from "./errors";

export const DONE = "[DONE]" as const;

/** A frame with an event name: `event: name` before its data. */
export class Named {
  constructor(
    readonly event: string,
    readonly data: object,
  ) {}
}

export type SseData = object | typeof DONE | Named;

export function frame(data: object): SseData {
  return data;
}

/** A frame named by its data's own type (the Responses API's and Anthropic's events). */
export function typed(data: { type: string }): SseData {
  return new Named(data.type, data);
}

export function errorFrame(e: unknown): SseData {
  return toApiError(e).body();
}

/** An error after the first frame, Anthropic's way: `event: error` with its error body. */
export function anthropicErrorFrame(e: unknown): SseData {
  return new Named("error", toApiError(e).body("anthropic"));
}

const enc = new TextEncoder();
const KEEPALIVE = enc.encode(": keep-alive\n\n");

function encode(d: SseData): Uint8Array {
  if (d instanceof Named) return enc.encode(`event: ${d.event}\ndata: ${JSON.stringify(d.data)}\n\n`);
  return enc.encode(`data: ${d === DONE ? DONE : JSON.stringify(d)}\n\n`);
}

export interface SseOptions {
  keepAliveMs: number;
  stallMs: number;
  /** the client stopped reading: stop the work behind the stream (the stream then ends) */
  onStall: () => void;
  headers?: Record<string, string>;
}

export function sseResponse(frames: AsyncGenerator<SseData, void, void>, opts: SseOptions): Response {
  return pullResponse(frames, encode, KEEPALIVE, "text/event-stream; charset=utf-8", opts);
}

/**
 * Newline-delimited JSON (Ollama's streams), with the same flow control. NDJSON
 * has no comments, so there is no keep-alive line: the idle timeout is off for
 * these requests instead (keepOpen), and the stall cut-off still applies.
 */
export function ndjsonResponse(lines: AsyncGenerator<object, void, void>, opts: SseOptions): Response {
  return pullResponse(lines, (d) => enc.encode(`${JSON.stringify(d)}\n`), null, "application/x-ndjson", opts);
}

function pullResponse<T>(
  frames: AsyncGenerator<T, void, void>,
  encodeOne: (d: T) => Uint8Array,
  keepAlive: Uint8Array | null,
  contentType: string,
  opts: SseOptions,
): Response {
  let pending: Promise<IteratorResult<T, void>> | null = null;
  let stallTimer: ReturnType<typeof setTimeout> | null = null;
  let finished = false;
  const stop = () => {
    if (finished) return;
    finished = true;
    if (stallTimer) clearTimeout(stallTimer);
    // runs the producer's finally (abort, release) once its current step is over
    void frames.return(undefined).catch(() => {});
  };
  const stream = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (stallTimer) clearTimeout(stallTimer);
        stallTimer = null;
        if (finished) return;
        pending ??= frames.next();
        let tick: ReturnType<typeof setTimeout> | undefined;
        const r = keepAlive
          ? await Promise.race([
              pending,
              new Promise<"tick">((resolve) => {
                tick = setTimeout(() => resolve("tick"), opts.keepAliveMs);
              }),
            ]).finally(() => clearTimeout(tick))
          : await pending;
        if (finished) return;
        if (r === "tick") controller.enqueue(keepAlive as Uint8Array);
        else {
          pending = null;
          if (r.done) {
            finished = true;
            controller.close();
            return;
          }
          controller.enqueue(encodeOne(r.value));
        }
        // the next pull comes when the connection took this chunk; if it never does, the reader is gone
        stallTimer = setTimeout(() => {
          opts.onStall();
          stop();
          try {
            controller.close();
          } catch {
            // already closed
          }
        }, opts.stallMs);
      },
      cancel() {
        // the client went away
        stop();
      },
    },
    { highWaterMark: 0 },
  );
  return new Response(stream, {
    headers: {
      "content-type": contentType,
      "cache-control": "no-cache",
      "x-accel-buffering": "no",
      ...opts.headers,
    },
  });
}

/** Long prefills can be silent for a while: a stream must not hit the idle timeout. */
export function keepOpen(server: { timeout(req: Request, seconds: number): void } | null, request: Request): void {
  server?.timeout(request, 0);
}
