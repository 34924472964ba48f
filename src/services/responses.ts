// The Responses API's work: a request becomes the shared chat request
// (responses/convert.ts), runs like any generation, and its answer becomes
// output items (responses/output.ts). Responses are stored (store: true, the
// default) so previous_response_id can continue them, also after a restart;
// background responses run as jobs that can be polled and cancelled.
import { BlockStream, blocksOf } from "../chat/blocks";
import { chatRequest } from "../chat/request";
import type { ServerConfig } from "../config";
import type { Engine } from "../engine/engine";
import type { GenerateEvent, GenerateRequest } from "../engine/types";
import { DomainError, invalid } from "../errors";
import type { TemplateMessage } from "../ffi/chat";
import { toApiError } from "../http/errors";
import { type SseData, typed } from "../http/sse";
import { log } from "../log";
import type { Metrics } from "../metrics";
import { newId } from "../openai/responses";
import type { ModelRegistry } from "../registry";
import { RESPONSES_PARAMS, responseBase, responseSpec } from "../responses/convert";
import {
  failedOutcome,
  finalOutcome,
  type OutputItem,
  outputItems,
  pendingOutcome,
  type ResponseBase,
  ResponseEvents,
  type ResponseObject,
  type ResponseOutcome,
  responseObject,
  responseUsage,
} from "../responses/output";
import type { InputItem, ResponseCreateRequest } from "../responses/schemas";
import type { ResponseStore } from "../store/responses";
import { begin, type Generation } from "./generation";

type EndEvent = Extract<GenerateEvent, { type: "end" }>;

export interface ResponsePlan {
  base: ResponseBase;
  request: GenerateRequest;
  /** the conversation before this turn (from previous_response_id) */
  history: TemplateMessage[];
  /** this turn's input as messages */
  input: TemplateMessage[];
  /** this turn's input items as input_items lists them */
  inputItems: Record<string, unknown>[];
}

function itemId(prefix: string): string {
  return newId(prefix).replace("-", "_");
}

/** The input as OpenAI lists it back: every item with an id, message content as parts. */
export function listedItems(input: ResponseCreateRequest["input"]): Record<string, unknown>[] {
  if (input === null || input === undefined) return [];
  const items: InputItem[] = typeof input === "string" ? [{ type: "message", role: "user", content: input }] : input;
  return items.map((it) => {
    const type = it.type ?? "message";
    const out: Record<string, unknown> = {
      ...it,
      type,
      id: it.id ?? itemId(type === "message" ? "msg" : type === "function_call" ? "fc" : "item"),
    };
    if (type === "message") {
      out.status ??= "completed";
      if (typeof it.content === "string") {
        out.content = [{ type: it.role === "assistant" ? "output_text" : "input_text", text: it.content }];
      }
    }
    for (const k of Object.keys(out)) if (out[k] === null || out[k] === undefined) delete out[k];
    return out;
  });
}

/** The answer as the assistant turn a later request continues from. */
function assistantTurn(output: OutputItem[]): TemplateMessage[] {
  const turn: TemplateMessage = { role: "assistant", content: "" };
  for (const item of output) {
    if (item.type === "reasoning") turn.reasoning_content = item.content.map((c) => c.text).join("");
    else if (item.type === "message") turn.content = `${turn.content ?? ""}${item.content.map((c) => c.text).join("")}`;
    else {
      turn.tool_calls ??= [];
      turn.tool_calls.push({
        id: item.call_id,
        type: "function",
        function: { name: item.name, arguments: item.arguments },
      });
    }
  }
  return [turn];
}

function errorCode(e: unknown): { code: string; message: string } {
  const api = toApiError(e);
  return { code: api.status >= 500 ? "server_error" : (api.code ?? "invalid_request"), message: api.message };
}

export interface ResponsesContext {
  request: Request;
  metrics?: Metrics;
}

export class Responses {
  private readonly jobs = new Map<string, AbortController>();
  private closing = false;

  constructor(
    private readonly config: ServerConfig,
    private readonly registry: ModelRegistry,
    private readonly store: () => ResponseStore,
    private readonly metrics?: Metrics,
  ) {}

  /** The conversation previous_response_id names (400 when there is none). */
  private history(body: ResponseCreateRequest): TemplateMessage[] {
    const prev = body.previous_response_id;
    if (!prev) return [];
    if (!this.store().has(prev)) {
      throw invalid(
        `Previous response with id '${prev}' not found.`,
        "previous_response_id",
        "previous_response_not_found",
      );
    }
    const s = this.store().get(prev);
    if (s.response.status !== "completed" && s.response.status !== "incomplete") {
      throw invalid(
        `Previous response '${prev}' is ${s.response.status}: only a finished response can be continued`,
        "previous_response_id",
      );
    }
    return s.conversation;
  }

  plan(body: ResponseCreateRequest, engine: Engine): ResponsePlan {
    const history = this.history(body);
    const { spec, input } = responseSpec(body, history, this.config.sampling);
    const request = chatRequest(spec, this.config.sampling, engine.info, RESPONSES_PARAMS);
    return { base: responseBase(body, engine.info.id), request, history, input, inputItems: listedItems(body.input) };
  }

  private save(plan: ResponsePlan, outcome: ResponseOutcome): ResponseObject {
    const response = responseObject(plan.base, outcome);
    if (plan.base.store) {
      const done = outcome.status === "completed" || outcome.status === "incomplete";
      const conversation = done ? [...plan.history, ...plan.input, ...assistantTurn(outcome.output)] : [];
      this.store().put({ response, inputItems: plan.inputItems, conversation });
    }
    return response;
  }

  private usage(g: Generation, end: EndEvent, blocks: BlockStream) {
    const start = g.starts[0];
    return responseUsage(
      start?.promptTokens ?? 0,
      start?.cachedTokens ?? 0,
      end.completionTokens,
      blocks.reasoningTokens,
    );
  }

  /** Runs to the end and returns the response (stored when asked). */
  async run(plan: ResponsePlan, engine: Engine, signal: AbortSignal): Promise<ResponseObject> {
    const g = await begin(engine, [plan.request], signal, this.metrics);
    const blocks = new BlockStream();
    let end: EndEvent | null = null;
    try {
      for await (const [, e] of g.events) {
        if (e.type === "text") blocks.push(e);
        else if (e.type === "end") end = e;
        else if (e.type === "error") throw DomainError.from(e);
      }
    } finally {
      g.abort();
    }
    if (!end || end.reason === "cancelled") throw new DomainError("cancelled", "the response was cancelled");
    const output = outputItems(blocksOf(end));
    return this.save(plan, finalOutcome(end.reason, output, this.usage(g, end, blocks)));
  }

  /** The stream of a started generation; the response is stored when it ends. */
  async *stream(plan: ResponsePlan, g: Generation, release: () => void): AsyncGenerator<SseData, void, void> {
    const ev = new ResponseEvents(plan.base);
    const blocks = new BlockStream();
    const steps = function* (list: ReturnType<BlockStream["push"]>) {
      for (const s of list) for (const x of ev.step(s)) yield typed(x);
    };
    try {
      for (const x of ev.start()) yield typed(x);
      let end: EndEvent | null = null;
      for await (const [, e] of g.events) {
        if (e.type === "text") yield* steps(blocks.push(e));
        else if (e.type === "end") {
          end = e;
          yield* steps(blocks.finish(e));
        } else if (e.type === "error") {
          const { code, message } = errorCode(DomainError.from(e));
          this.save(plan, failedOutcome(code, message, ev.output));
          for (const x of ev.error(code, message)) yield typed(x);
          return;
        }
      }
      if (!end || end.reason === "cancelled") return;
      const outcome = finalOutcome(end.reason, ev.output, this.usage(g, end, blocks));
      this.save(plan, outcome);
      yield typed(ev.end(outcome));
    } catch (e) {
      const { code, message } = errorCode(e);
      for (const x of ev.error(code, message)) yield typed(x);
    } finally {
      g.abort();
      release();
    }
  }

  /**
   * A background response: stored as queued and returned at once; it runs as a
   * job (GET polls it, cancel stops it). Input errors are found before that.
   */
  background(body: ResponseCreateRequest): ResponseObject {
    if (body.store === false) throw invalid("background responses are stored: store cannot be false", "store");
    if (body.stream) {
      throw invalid("stream cannot be combined with background: poll GET /v1/responses/{id} instead", "stream");
    }
    // the input's own errors are 400s now, not a failed job later
    responseSpec(body, this.history(body), this.config.sampling);
    const base = responseBase(body, body.model);
    const queued = responseObject(base, pendingOutcome("queued"));
    const store = this.store();
    store.put({ response: queued, inputItems: listedItems(body.input), conversation: [] });
    store.started(base.id);
    const ac = new AbortController();
    this.jobs.set(base.id, ac);
    void this.runJob(base, body, ac.signal).finally(() => {
      this.jobs.delete(base.id);
      store.finished(base.id);
    });
    return queued;
  }

  private async runJob(base: ResponseBase, body: ResponseCreateRequest, signal: AbortSignal): Promise<void> {
    const store = this.store();
    let plan: ResponsePlan = {
      base,
      request: null as unknown as GenerateRequest,
      history: [],
      input: [],
      inputItems: listedItems(body.input),
    };
    try {
      const lease = await this.registry.acquire(body.model, signal);
      try {
        plan = { ...this.plan(body, lease.engine), base: { ...base, model: lease.engine.info.id } };
        if (signal.aborted) throw new DomainError("cancelled", "cancelled");
        this.save(plan, pendingOutcome("in_progress"));
        await this.run(plan, lease.engine, signal);
      } finally {
        lease.release();
      }
    } catch (e) {
      if (!store.has(base.id)) return; // deleted meanwhile
      if (signal.aborted) {
        const why = this.closing
          ? failedOutcome("server_error", "the server stopped before this background response finished")
          : null;
        this.save(plan, why ?? { ...pendingOutcome("in_progress"), status: "cancelled" });
        return;
      }
      const { code, message } = errorCode(e);
      log.warn(`background response ${base.id} failed: ${message}`);
      this.save(plan, failedOutcome(code, message));
    }
  }

  retrieve(id: string): ResponseObject {
    return this.store().get(id).response;
  }

  /** Cancels a background response (one that already ended is returned as it is). */
  cancel(id: string): ResponseObject {
    const s = this.store().get(id);
    if (!s.response.background) throw invalid("Only background responses can be cancelled", "response_id");
    const job = this.jobs.get(id);
    if (!job) return s.response;
    job.abort();
    const response: ResponseObject = { ...s.response, status: "cancelled" };
    this.store().put({ ...s, response });
    return response;
  }

  delete(id: string): { id: string; object: "response"; deleted: true } {
    this.jobs.get(id)?.abort();
    this.store().delete(id);
    return { id, object: "response", deleted: true };
  }

  inputItems(id: string, q: { limit?: number; order?: "asc" | "desc"; after?: string; before?: string }) {
    let items = this.store().get(id).inputItems;
    if ((q.order ?? "desc") === "desc") items = [...items].reverse();
    const at = (key?: string) => (key ? items.findIndex((i) => i.id === key) : -1);
    if (q.after) {
      const i = at(q.after);
      if (i < 0) throw invalid(`No input item with id '${q.after}' in response '${id}'`, "after");
      items = items.slice(i + 1);
    }
    if (q.before) {
      const i = at(q.before);
      if (i < 0) throw invalid(`No input item with id '${q.before}' in response '${id}'`, "before");
      items = items.slice(0, i);
    }
    const limit = q.limit ?? 20;
    const data = items.slice(0, limit);
    return {
      object: "list" as const,
      data,
      first_id: (data[0]?.id as string | undefined) ?? null,
      last_id: (data.at(-1)?.id as string | undefined) ?? null,
      has_more: items.length > limit,
    };
  }

  /** The input tokens the request would be charged (its usage.input_tokens). */
  async inputTokens(body: ResponseCreateRequest, engine: Engine) {
    const plan = this.plan(body, engine);
    return { object: "response.input_tokens" as const, input_tokens: await engine.countTokens(plan.request) };
  }

  /** Stops background responses (they are stored as failed: the server stopped). */
  close(): void {
    this.closing = true;
    for (const job of this.jobs.values()) job.abort();
  }
}
