// Ollama's native API: /api/chat and /api/generate become the shared chat
// request (ollama/convert.ts), run like any generation, and come back as
// Ollama's lines (ollama/output.ts), streamed as NDJSON or whole; embeddings,
// and the listings (/api/tags, /api/show, /api/ps) from the registry and the
// models' GGUF headers. Timings are measured here, in nanoseconds.
import { BlockStream, blocksOf } from "../chat/blocks";
import { chatRequest, samplingFrom } from "../chat/request";
import type { SamplingDefaults, ServerConfig } from "../config";
import type { Engine } from "../engine/engine";
import type { GenerateEvent, GenerateRequest, ModelInfo } from "../engine/types";
import { DomainError, invalid, notFound } from "../errors";
import { toApiError } from "../http/errors";
import type { Metrics } from "../metrics";
import { chatSpec, generatePrompt, keepAliveMs, modelName, servedId } from "../ollama/convert";
import {
  assistantMessage,
  Clock,
  chatDone,
  chatLine,
  doneReason,
  generateDone,
  generateLine,
  parametersText,
  psEntry,
  showResponse,
  stepDelta,
  tagEntry,
} from "../ollama/output";
import type { ChatRequest, EmbedRequest, GenerateRequest as OllamaGenerate } from "../ollama/schemas";
import type { ModelEntry, ModelRegistry } from "../registry";
import { begin, type Generation, type RequestContext, streamResponse, withModel } from "./generation";
import { capabilitiesOfEntry, factsOf } from "./models";

type EndEvent = Extract<GenerateEvent, { type: "end" }>;

/** The served model a name means (a 404 in Ollama's words when none). */
export function ollamaEntry(registry: ModelRegistry, name: string | null | undefined): ModelEntry {
  if (!name) throw invalid("model is required", "model");
  const e = registry.entry(servedId(name, (id) => registry.entry(id) !== undefined));
  if (!e) throw notFound(`model '${name}' not found`, "model", "model_not_found");
  return e;
}

export function tags(registry: ModelRegistry) {
  return { models: registry.list().map((e) => tagEntry(e.id, factsOf(e))) };
}

export function ps(registry: ModelRegistry) {
  return {
    models: registry
      .list()
      .filter((e) => e.state === "ready" && e.engine)
      .map((e) => psEntry(e.id, factsOf(e), e.engine?.info.nCtxSlot ?? 0, registry.expiresAt(e))),
  };
}

export function show(registry: ModelRegistry, name: string | null | undefined, defaults: SamplingDefaults) {
  const e = ollamaEntry(registry, name);
  const f = factsOf(e);
  const params: Record<string, string | number | string[]> = {
    temperature: defaults.temperature,
    top_k: defaults.topK,
    top_p: defaults.topP,
    min_p: defaults.minP,
    repeat_penalty: defaults.repeatPenalty,
  };
  if (e.engine) params.num_ctx = e.engine.info.nCtxSlot;
  const template = e.engine?.info.chatTemplate ?? f?.chatTemplate ?? "";
  return showResponse(e.id, f, capabilitiesOfEntry(e, f), parametersText(params), template);
}

// ---- chat and generate ----------------------------------------------------------------

export interface OllamaPlan {
  model: string;
  kind: "chat" | "generate";
  request: GenerateRequest;
}

export function chatPlan(body: ChatRequest, defaults: SamplingDefaults, info: ModelInfo): OllamaPlan {
  return { model: modelName(info.id), kind: "chat", request: chatRequest(chatSpec(body, defaults), defaults, info) };
}

export function generatePlan(body: OllamaGenerate, defaults: SamplingDefaults, info: ModelInfo): OllamaPlan {
  const p = generatePrompt(body, defaults, info.chatTemplate !== null);
  const model = modelName(info.id);
  if (p.kind === "chat") return { model, kind: "generate", request: chatRequest(p.spec, defaults, info) };
  // the prompt as written: no template, so no grammar from it, no parsing, no think block
  if (p.spec.jsonSchema !== undefined)
    throw invalid("format needs the model's chat template: it cannot be combined with raw or suffix", "format");
  const request: GenerateRequest = {
    prompt:
      p.kind === "raw"
        ? { type: "text", text: p.text, addSpecial: true, parseSpecial: false }
        : { type: "infill", prefix: p.prefix, suffix: p.suffix },
    n: 1,
    maxTokens: p.spec.maxTokens,
    contextLimit: p.spec.contextLimit,
    sampling: samplingFrom(p.spec.sampling, defaults, info),
    stop: p.spec.stop,
  };
  return { model, kind: "generate", request };
}

/** Nothing to say: Ollama's way to load (or, with keep_alive 0, unload) a model. */
function isLoadOnly(body: ChatRequest | OllamaGenerate, kind: "chat" | "generate"): boolean {
  if (kind === "chat") return ((body as ChatRequest).messages ?? []).length === 0;
  const g = body as OllamaGenerate;
  return !g.prompt && !g.suffix;
}

function loadLine(model: string, kind: "chat" | "generate", reason: "load" | "unload") {
  const base = { model: modelName(model), created_at: new Date().toISOString(), done: true, done_reason: reason };
  return kind === "chat" ? { ...base, message: { role: "assistant", content: "" } } : { ...base, response: "" };
}

function finalOf(plan: OllamaPlan, g: Generation, end: EndEvent, clock: Clock, blocks = blocksOf(end)) {
  const t = clock.timings(g.starts[0]?.promptTokens ?? 0, end.completionTokens);
  const m = assistantMessage(blocks);
  const reason = doneReason(end.reason);
  if (plan.kind === "chat") return chatDone(plan.model, m, reason, t);
  return generateDone(plan.model, { response: m.content, ...(m.thinking ? { thinking: m.thinking } : {}) }, reason, t);
}

/**
 * One /api/chat or /api/generate request: a load or unload when it says nothing
 * (Ollama's way), else a generation, streamed as NDJSON unless stream is false.
 */
export async function ollamaTurn(
  ctx: RequestContext & { config: Pick<ServerConfig, "sampling" | "sseKeepAlive" | "stallTimeout"> },
  body: ChatRequest | OllamaGenerate,
  kind: "chat" | "generate",
  metrics?: Metrics,
) {
  const { registry, request, config } = ctx;
  const e = ollamaEntry(registry, body.model);
  const keep = keepAliveMs(body.keep_alive);
  if (isLoadOnly(body, kind)) {
    if (keep === 0) await registry.unloadNow(e.id);
    else await registry.loadNow(e.id, request.signal, keep);
    return loadLine(e.id, kind, keep === 0 ? "unload" : "load");
  }
  const clock = new Clock();
  return withModel(
    ctx,
    e.id,
    async (engine, handOff) => {
      clock.loaded = performance.now();
      const plan =
        kind === "chat"
          ? chatPlan(body as ChatRequest, config.sampling, engine.info)
          : generatePlan(body as OllamaGenerate, config.sampling, engine.info);
      if (body.stream === false) return runOllama(engine, plan, clock, { signal: request.signal, metrics });
      const g = await begin(engine, [plan.request], request.signal, metrics);
      return streamResponse(ctx, g, ollamaStream(plan, g, clock, handOff()), "ndjson");
    },
    { keepAliveMs: keep },
  );
}

async function runOllama(
  engine: Engine,
  plan: OllamaPlan,
  clock: Clock,
  x: { signal: AbortSignal; metrics?: Metrics },
) {
  const g = await begin(engine, [plan.request], x.signal, x.metrics);
  let end: EndEvent | undefined;
  for await (const [, e] of g.events) {
    if (e.type === "text") clock.firstToken();
    else if (e.type === "end") end = e;
    else if (e.type === "error") throw DomainError.from(e);
  }
  if (!end || end.reason === "cancelled") throw new DomainError("cancelled", "the request was cancelled");
  return finalOf(plan, g, end, clock);
}

/** The NDJSON lines of a streamed chat or generate; an error after the first line is an {error} line. */
async function* ollamaStream(
  plan: OllamaPlan,
  g: Generation,
  clock: Clock,
  release: () => void,
): AsyncGenerator<object, void, void> {
  const blocks = new BlockStream();
  const line = (d: ReturnType<typeof stepDelta>) => {
    if (!d) return null;
    if (plan.kind === "chat") return chatLine(plan.model, d);
    if (d.tool_calls) return null;
    return generateLine(
      plan.model,
      d.thinking !== undefined ? { thinking: d.thinking } : { response: d.content ?? "" },
    );
  };
  try {
    for await (const [, e] of g.events) {
      if (e.type === "text") {
        clock.firstToken();
        for (const s of blocks.push(e)) {
          const l = line(stepDelta(s));
          if (l) yield l;
        }
      } else if (e.type === "end") {
        if (e.reason === "cancelled") return;
        for (const s of blocks.finish(e)) {
          const l = line(stepDelta(s));
          if (l) yield l;
        }
        // the streamed lines carried the text and the calls already: the last one carries what ends it
        const final = finalOf(plan, g, e, clock, []);
        yield plan.kind === "chat" ? final : { ...final, response: "" };
      } else if (e.type === "error") {
        yield { error: DomainError.from(e).message };
        return;
      }
    }
  } catch (e) {
    yield { error: toApiError(e).message };
  } finally {
    g.abort();
    release();
  }
}

// ---- embeddings --------------------------------------------------------------------

export async function ollamaEmbed(engine: Engine, body: EmbedRequest, clock: Clock, signal: AbortSignal) {
  const info = engine.info;
  if (body.dimensions !== null && body.dimensions !== undefined && body.dimensions !== info.nEmbd) {
    throw invalid(
      `dimensions=${body.dimensions} is not available: ${info.id} produces ${info.nEmbd}-dimensional embeddings`,
      "dimensions",
    );
  }
  const texts = typeof body.input === "string" ? [body.input] : body.input;
  if (texts.length === 0) throw invalid("input must not be empty", "input");
  let inputs: (string | number[])[] = texts;
  if (body.truncate !== false) {
    // Ollama's default: inputs longer than the context are cut to fit (tokenized here as the engine would)
    inputs = await Promise.all(texts.map(async (s) => (await engine.tokenize(s, true, false)).slice(0, info.nCtxSlot)));
  }
  clock.firstToken();
  const r = await engine.embed(inputs, signal);
  const t = clock.timings(r.promptTokens, 0);
  return {
    model: modelName(info.id),
    embeddings: r.vectors.map((v) => Array.from(v)),
    total_duration: t.total_duration,
    load_duration: t.load_duration,
    prompt_eval_count: r.promptTokens,
  };
}
