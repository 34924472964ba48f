// Ollama's native API: /api/chat and /api/generate become the shared chat
// request (ollama/convert.ts), run like any generation, and come back as
// Ollama's lines (ollama/output.ts), streamed as NDJSON or whole; embeddings,
// and the listings (/api/tags, /api/show, /api/ps) from the registry and the
// models' GGUF headers. Timings are measured here, in nanoseconds.
import { BlockStream, blocksOf } from "../chat/blocks";
import { chatRequest } from "../chat/request";
import type { SamplingDefaults } from "../config";
import type { Engine } from "../engine/engine";
import type { GenerateEvent, GenerateRequest, ModelInfo } from "../engine/types";
import { DomainError, invalid, notFound } from "../errors";
import { toApiError } from "../http/errors";
import type { Metrics } from "../metrics";
import { capabilitiesOf, describeModel, type ModelFacts } from "../models/describe";
import { chatSpec, generatePrompt, modelName, servedId } from "../ollama/convert";
import {
  assistantMessage,
  type Clock,
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
import { begin, type Generation } from "./generation";

type EndEvent = Extract<GenerateEvent, { type: "end" }>;

/** The served model a name means (a 404 in Ollama's words when none). */
export function ollamaEntry(registry: ModelRegistry, name: string | null | undefined): ModelEntry {
  if (!name) throw invalid("model is required", "model");
  const e = registry.entry(servedId(name, (id) => registry.entry(id) !== undefined));
  if (!e) throw notFound(`model '${name}' not found`, "model", "model_not_found");
  return e;
}

/** A model's facts: from its file when it is on disk (hub models before their first load have none). */
export function factsOf(e: ModelEntry): ModelFacts | null {
  const path = e.engine?.info.path ?? (e.source.kind === "path" ? e.source.path : null);
  return path ? describeModel(path) : null;
}

/** Capabilities as the model really has them: the loaded engine's, else its file's. */
export function capabilitiesOfEntry(e: ModelEntry, f: ModelFacts | null) {
  const info = e.engine?.info;
  if (!info) return f?.capabilities ?? ["completion"];
  const pooling = f?.capabilities.includes("embedding") ?? false;
  return capabilitiesOf(info.chatTemplate, { fim: info.fim, pooling });
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
  if (p.spec.jsonSchema !== undefined)
    throw invalid("format needs the model's chat template: it cannot be combined with raw or suffix", "format");
  const request = chatRequest({ ...p.spec, messages: [{ role: "user", content: "" }] }, defaults, info);
  request.parse = undefined;
  request.reasoningBudget = null;
  request.prompt =
    p.kind === "raw"
      ? { type: "text", text: p.text, addSpecial: true, parseSpecial: false }
      : { type: "infill", prefix: p.prefix, suffix: p.suffix };
  return { model, kind: "generate", request };
}

/** Nothing to say: Ollama's way to load (or, with keep_alive 0, unload) a model. */
export function isLoadOnly(body: ChatRequest | OllamaGenerate): boolean {
  if ("messages" in body && body.messages !== undefined) return (body.messages ?? []).length === 0;
  const g = body as OllamaGenerate;
  return !g.prompt && !g.suffix && !("messages" in body);
}

export function loadLine(model: string, kind: "chat" | "generate", reason: "load" | "unload") {
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

export async function runOllama(
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
export async function* ollamaStream(
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
    // Ollama's default: inputs longer than the context are cut to fit
    inputs = await Promise.all(
      texts.map(async (s) => {
        const toks = await engine.tokenize(s, true, false);
        return toks.length > info.nCtxSlot ? toks.slice(0, info.nCtxSlot) : s;
      }),
    );
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
