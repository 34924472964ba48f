// Running engine requests for the routes: every check happens before the first
// byte is sent (begin), then events are read as they come (events / drain).

import type { ServerConfig } from "../config";
import type { Engine } from "../engine/engine";
import type { GenerateEvent, GenerateRequest } from "../engine/types";
import { DomainError } from "../errors";
import { keepOpen, ndjsonResponse, type SseData, sseResponse } from "../http/sse";
import type { Metrics } from "../metrics";
import type { AcquireOptions, ModelRegistry } from "../registry";

export type StartEvent = Extract<GenerateEvent, { type: "start" }>;

export interface Generation {
  /** the admission of each request, in request order */
  starts: StartEvent[];
  /** every later event of every request, interleaved as they come: [request index, event] */
  events: AsyncGenerator<[number, GenerateEvent], void, void>;
  /** stops every request (idempotent) */
  abort: () => void;
}

/**
 * Submits the requests and waits until each is admitted (its "start") or
 * refused. A refusal throws its error and cancels the others, so a client
 * never gets a 200 for a request that cannot run. Aborting `signal`
 * (the client went away) cancels everything.
 */
export async function begin(
  engine: Engine,
  requests: GenerateRequest[],
  signal: AbortSignal,
  metrics?: Metrics,
): Promise<Generation> {
  const startedAt = performance.now();
  const local = new AbortController();
  const abort = () => local.abort();
  // a client that left before we got here gets nothing generated
  if (signal.aborted) abort();
  else signal.addEventListener("abort", abort, { once: true });
  const gens = requests.map((r) => engine.generate(r, local.signal));
  try {
    const firsts = await Promise.all(gens.map((g) => g.next()));
    const starts = firsts.map((f): StartEvent => {
      if (f.done || (f.value.type === "end" && f.value.reason === "cancelled")) {
        throw new DomainError("cancelled", "the request was cancelled before it started");
      }
      if (f.value.type === "error") throw DomainError.from(f.value);
      if (f.value.type !== "start") throw new DomainError("internal", `unexpected first event ${f.value.type}`);
      return f.value;
    });
    if (metrics) for (const s of starts) metrics.prompt(s.promptTokens, s.cachedTokens);
    return { starts, events: merge(gens, abort, metrics ? observe(metrics, startedAt) : undefined), abort };
  } catch (e) {
    abort();
    await Promise.all(gens.map((g) => g.return()));
    throw e;
  }
}

/** Feeds time to first token and generated tokens into the metrics. */
function observe(metrics: Metrics, startedAt: number): (i: number, e: GenerateEvent) => void {
  const seen = new Set<number>();
  return (i, e) => {
    if (e.type === "text" && !seen.has(i)) {
      seen.add(i);
      metrics.firstToken((performance.now() - startedAt) / 1000);
    } else if (e.type === "end") metrics.generated(e.completionTokens);
  };
}

async function* merge(
  streams: AsyncGenerator<GenerateEvent, void, void>[],
  abort: () => void,
  onEvent?: (i: number, e: GenerateEvent) => void,
): AsyncGenerator<[number, GenerateEvent], void, void> {
  const pending = new Map<number, Promise<[number, IteratorResult<GenerateEvent, void>]>>();
  const pull = (i: number) =>
    pending.set(
      i,
      (streams[i] as AsyncGenerator<GenerateEvent, void, void>).next().then((r): [number, typeof r] => [i, r]),
    );
  streams.forEach((_, i) => {
    pull(i);
  });
  let finished = false;
  try {
    while (pending.size > 0) {
      const [i, r] = await Promise.race(pending.values());
      if (r.done) {
        pending.delete(i);
        continue;
      }
      pull(i);
      onEvent?.(i, r.value);
      yield [i, r.value];
    }
    finished = true;
  } finally {
    // left early (client gone, error): stop decoding before waiting for the streams to close
    if (!finished) abort();
    await Promise.all(streams.map((s) => s.return()));
  }
}

/** What a route hands over about its request. */
export interface RequestContext {
  registry: ModelRegistry;
  request: Request;
  server: { timeout(req: Request, seconds: number): void } | null;
  config: Pick<ServerConfig, "sseKeepAlive" | "stallTimeout">;
}

/**
 * The SSE response of a generation: keep-alive comments while it is silent, and
 * a client that stops reading is cut off after --stall-timeout (its request is
 * aborted, which frees its slot, and the connection is closed).
 */
export function streamResponse(
  { request, server, config }: RequestContext,
  /** what a stalled reader stops (null: nothing runs behind the stream but its frames) */
  g: Pick<Generation, "abort"> | null,
  frames: AsyncGenerator<SseData, void, void>,
  format: "sse" | "ndjson" = "sse",
): Response {
  // NDJSON has no keep-alive line, and a pull's stream can be silent: no idle timeout for streams
  keepOpen(server, request);
  const respond = format === "ndjson" ? ndjsonResponse : sseResponse;
  return respond(frames as AsyncGenerator<object, void, void>, {
    keepAliveMs: config.sseKeepAlive * 1000,
    stallMs: config.stallTimeout * 1000,
    onStall: () => {
      g?.abort();
      server?.timeout(request, 1);
    },
  });
}

/**
 * Runs a request on the model `id` holding it loaded: `run` gets the engine and
 * `handOff()`, which a streaming response calls to keep the model until its
 * stream ends (it then calls the release `handOff` returned). Loading a model
 * and generating can be silent for longer than the idle timeout: it is off.
 */
export async function withModel<T>(
  { registry, request, server }: RequestContext,
  id: string,
  run: (engine: Engine, handOff: () => () => void) => Promise<T>,
  opts: AcquireOptions = {},
): Promise<T> {
  keepOpen(server, request);
  const lease = await registry.acquire(id, request.signal, opts);
  let handedOff = false;
  try {
    return await run(lease.engine, () => {
      handedOff = true;
      return lease.release;
    });
  } finally {
    if (!handedOff) lease.release();
  }
}

/** Reads every remaining event (non-streaming responses); an engine error is thrown. */
export async function drain(g: Generation, count: number): Promise<GenerateEvent[][]> {
  const out: GenerateEvent[][] = Array.from({ length: count }, () => []);
  for await (const [i, e] of g.events) {
    if (e.type === "error") throw DomainError.from(e);
    (out[i] as GenerateEvent[]).push(e);
  }
  return out;
}
