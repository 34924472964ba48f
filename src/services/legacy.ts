// The 1.2.0 contract's legacy endpoints on local models, as OpenAI's engine did
// them (../shared/design/legacy-contract.md):
// - search: 100 x (mean log p(query | document) - mean log p(query | "")), from
//   prompt log-probabilities with nothing generated; with a file, a BM25
//   prefilter first;
// - answers and classifications: search, then OpenAI's prompts, then a
//   completion (a classification's label constrained by a grammar to `labels`);
// - edits: the model's chat template with a fixed instruction;
// - moderations: P(yes) / (P(yes) + P(no)) per category from the first answer
//   token under a judging prompt (a guard model's own prompt when it is one).
import type { Engine } from "../engine/engine";
import type { GenerateEvent, GenerateRequest, ModelInfo } from "../engine/types";
import { DomainError, invalid } from "../errors";
import { DEFAULT_SAMPLING } from "../ffi/sampler";
import { chatPlan, completionPlan } from "../openai/convert";
import type {
  AnswerRequest,
  ClassificationRequest,
  EditRequest,
  ModerationRequest,
  SearchRequest,
} from "../openai/legacy-schemas";
import { newId } from "../openai/responses";
import type { ModelRegistry } from "../registry";
import type { FileStore } from "../store/files";
import type { Document } from "../store/jsonl";
import { begin, drain } from "./generation";
import { chatCompletion, type Exec, runCompletionPlan } from "./openai";

// ---- model names --------------------------------------------------------------

/** OpenAI's old engine and model names: they stand for the configured default model. */
const OPENAI_ENGINE =
  /^(ada|babbage|curie|davinci|cushman|(text|code)-(ada|babbage|curie|davinci|cushman|search|similarity)(-[\w-]+)?-\d{3}|text-davinci-edit-001|code-davinci-edit-001|(babbage|davinci)-002|gpt-3\.5-turbo-instruct)$/;
const MODERATION_ALIAS = /^(text-moderation-(latest|stable|\d+)|omni-moderation-(latest|[\d-]+))$/;

/** The served model an id stands for: itself, or the default model for OpenAI's engine names. */
export function legacyModel(registry: ModelRegistry, id: string | null | undefined, fallback: string | null): string {
  const first = registry.defaultId(fallback) ?? "";
  if (!id) return first;
  if (registry.entry(id)) return id;
  return OPENAI_ENGINE.test(id) ? first : id;
}

/** The model that judges moderations: --moderation-model, else a guard model, else the first model. */
export function moderationModel(
  registry: ModelRegistry,
  id: string | null | undefined,
  configured: string | null,
): string {
  if (id && registry.entry(id)) return id;
  if (id && !MODERATION_ALIAS.test(id)) return id; // unknown: a 404 from acquire
  if (configured) return configured;
  return registry.list().find((e) => /guard/i.test(e.id))?.id ?? registry.list()[0]?.id ?? "";
}

// ---- helpers -------------------------------------------------------------------

/** Runs `fn` over items with at most `limit` at once, results in order. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (t: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return out;
}

/** Runs one engine request to its end and returns its events. */
async function run(engine: Engine, req: GenerateRequest, x: Exec): Promise<GenerateEvent[]> {
  const g = await begin(engine, [{ ...req, priority: x.priority ?? req.priority }], x.signal, x.metrics);
  const [events = []] = await drain(g, 1);
  return [...g.starts, ...events];
}

const scoring = (tokens: number[], from: number): GenerateRequest => ({
  prompt: { type: "tokens", tokens },
  n: 1,
  maxTokens: 0,
  sampling: { ...DEFAULT_SAMPLING, temperature: 0, seed: 0 },
  stop: [],
  promptLogprobs: 0,
  promptLogprobsFrom: from,
});

const round3 = (x: number) => Math.round(x * 1000) / 1000;

// ---- search ---------------------------------------------------------------------

const RELATED = "\n\n---\n\nThe above passage is related to:";

/**
 * OpenAI's search score of each document for `query`: the mean log-probability
 * of the query's tokens after `<|endoftext|>{document}\n\n---\n\nThe above
 * passage is related to:`, minus the same after an empty document, times 100.
 * Documents run as prompt-only requests across the slots.
 */
export async function searchScores(
  engine: Engine,
  documents: string[],
  query: string,
  x: Exec,
  param = "documents",
  usage?: { tokens: number },
): Promise<number[]> {
  const eot = await engine.tokenize("<|endoftext|>", false, true);
  const sep = eot.length === 1 ? eot : engine.info.bosToken !== null ? [engine.info.bosToken] : [];
  const related = await engine.tokenize(RELATED, false, false);
  const q = await engine.tokenize(` ${query}`, false, false);
  if (q.length === 0) throw invalid("The query has no tokens", "query");
  const meanOf = async (doc: string, i: number): Promise<number> => {
    const tokens = [...sep, ...(doc ? await engine.tokenize(doc, false, false) : []), ...related, ...q];
    if (usage) usage.tokens += tokens.length;
    let events: GenerateEvent[];
    try {
      events = await run(engine, scoring(tokens, tokens.length - q.length), x);
    } catch (e) {
      if (e instanceof DomainError && e.code === "context_length_exceeded") {
        throw new DomainError(
          "context_length_exceeded",
          `${param}[${i}] with the query is ${tokens.length} tokens, more than this model's ${engine.info.nCtxSlot}-token context`,
          `${param}[${i}]`,
        );
      }
      throw e;
    }
    const p = events.find((e) => e.type === "prompt");
    const lps = p?.type === "prompt" ? p.logprobs.slice(-q.length).map((e) => e.logprob ?? 0) : [];
    return lps.reduce((a, b) => a + b, 0) / Math.max(1, lps.length);
  };
  const limit = engine.info.parallel * 2;
  const [empty, ...means] = await mapLimit(["", ...documents], limit, meanOf);
  return means.map((m) => round3(100 * (m - (empty as number))));
}

/** Documents of a file that share words with the query (BM25), best first; a 400 when none does. */
export function keywordCandidates(
  files: FileStore,
  fileId: string,
  query: string,
  k: number,
): { index: number; doc: Document }[] {
  const f = files.get(fileId, "file");
  if (!["search", "answers", "classifications"].includes(f.purpose)) {
    throw invalid(
      `File ${fileId} has purpose '${f.purpose}'; search needs a file uploaded for search, answers or classifications`,
      "file",
    );
  }
  const docs = files.lines(fileId) as Document[];
  const hits = files.index(fileId).search(query, k);
  if (hits.length === 0) throw invalid("No similar documents were found", "file", "no_documents_found");
  return hits.map(([index]) => ({ index, doc: docs[index] as Document }));
}

export async function search(engine: Engine, body: SearchRequest, files: () => FileStore, x: Exec) {
  if (body.documents && body.file) throw invalid("Specify either documents or file, not both", "file");
  let data: { object: "search_result"; document: number; score: number; text?: string; metadata?: unknown }[];
  if (body.file) {
    const candidates = keywordCandidates(files(), body.file, body.query, body.max_rerank ?? 200);
    const scores = await searchScores(
      engine,
      candidates.map((c) => c.doc.text),
      body.query,
      x,
      "file",
    );
    data = candidates
      .map((c, i) => ({
        object: "search_result" as const,
        document: c.index,
        score: scores[i] as number,
        text: c.doc.text,
        ...(body.return_metadata ? { metadata: c.doc.metadata ?? null } : {}),
      }))
      .sort((a, b) => b.score - a.score);
  } else {
    if (!body.documents?.length) throw invalid("Specify documents or a file to search", "documents");
    const scores = await searchScores(engine, body.documents, body.query, x);
    // documents come back in the order given, as OpenAI's did
    data = scores.map((score, document) => ({ object: "search_result" as const, document, score }));
  }
  return { object: "list" as const, model: engine.info.id, data };
}

// ---- answers -------------------------------------------------------------------

async function tokenCount(engine: Engine, text: string): Promise<number> {
  return (await engine.tokenize(text, false, false)).length;
}

interface Ranked {
  index: number;
  text: string;
  label?: string;
  metadata?: unknown;
  score: number;
}

/**
 * The documents to consider, best first: all of them when they fit and no
 * search is needed, else ranked by the search model (after BM25 for a file).
 */
async function rankDocuments(
  search: { engine: Engine; x: Exec },
  query: string,
  docs: { documents?: string[] | null; file?: string | null },
  files: () => FileStore,
  maxRerank: number,
  forceSearch: boolean,
): Promise<Ranked[]> {
  if (docs.file) {
    const candidates = keywordCandidates(files(), docs.file, query, maxRerank);
    const scores = await searchScores(
      search.engine,
      candidates.map((c) => c.doc.text),
      query,
      search.x,
      "file",
    );
    return candidates
      .map((c, i) => ({
        index: c.index,
        text: c.doc.text,
        label: c.doc.label,
        metadata: c.doc.metadata,
        score: scores[i] as number,
      }))
      .sort((a, b) => b.score - a.score);
  }
  const list = docs.documents ?? [];
  if (!forceSearch && list.length <= maxRerank) return list.map((text, index) => ({ index, text, score: 0 }));
  const scores = await searchScores(search.engine, list, query, search.x);
  return list
    .map((text, index) => ({ index, text, score: scores[index] as number }))
    .sort((a, b) => b.score - a.score)
    .slice(0, maxRerank);
}

export interface LegacyModels {
  /** the completion model */
  engine: Engine;
  /** the search model (may be the same) */
  searchEngine: Engine;
}

const expands = (expand: unknown[] | null | undefined, what: string) => (expand ?? []).includes(what);

export async function answers(m: LegacyModels, body: AnswerRequest, files: () => FileStore, x: Exec) {
  if (body.documents && body.file) throw invalid("Specify either documents or file, not both", "file");
  const info = m.engine.info;
  const maxTokens = body.max_tokens ?? 16;
  const instruction = "Please answer the question according to the above context.\n";
  const context = `===\nContext: ${body.examples_context}\n===\n`;
  const examples = body.examples.map(([q, a]) => `Q: ${q}\nA: ${a}`).join("\n---\n");
  const question = `\n\n===\nQ: ${body.question}\nA:`;
  const fixed = await tokenCount(m.engine, instruction + context + examples + question);
  let budget = info.nCtxSlot - fixed - maxTokens - 16;
  if (budget < 0) {
    throw new DomainError(
      "context_length_exceeded",
      `the examples and the question need ${fixed} tokens and max_tokens ${maxTokens}, more than this model's ${info.nCtxSlot}-token context`,
      "examples",
    );
  }
  const ranked = await rankDocuments(
    { engine: m.searchEngine, x },
    body.question,
    body,
    files,
    body.max_rerank ?? 200,
    false,
  );
  // greedily, the most relevant first; in the prompt the most relevant comes last
  const selected: Ranked[] = [];
  for (const d of ranked) {
    const n = (await tokenCount(m.engine, `${d.text.trim()} `)) + 1;
    if (n > budget) continue;
    budget -= n;
    selected.push(d);
  }
  const docsText = selected.length
    ? `===\nContext: ${[...selected]
        .reverse()
        .map((d) => `${d.text.trim()} `)
        .join("")}\n`
    : "";
  const prompt = `${instruction}${context}${examples}\n\n${docsText}===\nQ: ${body.question}\nA:`;
  const plan = completionPlan(
    {
      model: info.id,
      prompt,
      max_tokens: maxTokens,
      temperature: body.temperature ?? 0,
      n: body.n ?? 1,
      stop: body.stop ?? null,
      logprobs: body.logprobs ?? null,
      logit_bias: body.logit_bias ?? null,
    },
    x.defaults,
    info,
  );
  const completion = await runCompletionPlan(m.engine, plan, x);
  const expandCompletion =
    expands(body.expand, "completion") || (body.logprobs !== null && body.logprobs !== undefined);
  return {
    object: "answer" as const,
    model: info.id,
    search_model: m.searchEngine.info.id,
    completion: expandCompletion ? completion : completion.id,
    answers: completion.choices.map((c) => c.text.replace(/A:/g, "").split("Q:")[0]?.trim() ?? ""),
    selected_documents: selected.map((d) => ({
      document: d.index,
      text: `${d.text.trim()} `,
      ...(body.return_metadata && body.file ? { metadata: d.metadata ?? null } : {}),
    })),
    ...(body.file && expands(body.expand, "file") ? { file: files().get(body.file, "file") } : {}),
    ...(body.return_prompt ? { prompt } : {}),
  };
}

// ---- classifications --------------------------------------------------------------

/** "positive" -> "Positive" (OpenAI's normalisation: the first letter up, the rest down). */
export function capitalize(s: string): string {
  const t = s.trim();
  return t.charAt(0).toUpperCase() + t.slice(1).toLowerCase();
}

/** A GBNF string literal. */
function gbnfLiteral(s: string): string {
  return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n").replace(/\r/g, "\\r")}"`;
}

export async function classifications(m: LegacyModels, body: ClassificationRequest, files: () => FileStore, x: Exec) {
  if (body.examples && body.file) throw invalid("Specify either examples or file, not both", "file");
  if (!body.examples && !body.file) throw invalid("Specify examples or a file", "examples");
  const info = m.engine.info;
  const maxExamples = body.max_examples ?? 200;
  // examples, best first
  let ranked: Ranked[];
  if (body.file) {
    ranked = await rankDocuments(
      { engine: m.searchEngine, x },
      body.query,
      { file: body.file },
      files,
      maxExamples,
      true,
    );
    for (const r of ranked)
      if (typeof r.label !== "string") throw invalid(`File ${body.file} has examples without labels`, "file");
  } else {
    const ex = body.examples ?? [];
    const texts = ex.map(([text]) => text as string);
    const forceSearch = ex.length > maxExamples;
    const order = await rankDocuments(
      { engine: m.searchEngine, x },
      body.query,
      { documents: texts },
      files,
      maxExamples,
      forceSearch,
    );
    ranked = order.map((r) => ({ ...r, label: ex[r.index]?.[1] }));
  }
  const labels = [...new Set((body.labels ?? ranked.map((r) => r.label as string)).map(capitalize))];
  if (labels.length < 2)
    throw invalid("Classification needs at least two labels (from labels or the examples)", "labels");
  // round-robin over the labels: each contributes its best examples in turn
  const byLabel = new Map<string, Ranked[]>();
  for (const r of ranked) {
    const l = capitalize(r.label as string);
    byLabel.set(l, [...(byLabel.get(l) ?? []), r]);
  }
  const interleaved: Ranked[] = [];
  for (let i = 0; interleaved.length < ranked.length; i++) {
    for (const list of byLabel.values()) if (list[i]) interleaved.push(list[i] as Ranked);
  }
  const head = `Please classify a piece of text into the following categories: ${labels.join(", ")}.\n\n`;
  const tail = `Text: ${body.query.replace(/\n/g, " ")}\nCategory:`;
  let budget = info.nCtxSlot - (await tokenCount(m.engine, head + tail)) - 32;
  const selected: Ranked[] = [];
  for (const r of interleaved) {
    const n = await tokenCount(
      m.engine,
      `Text: ${r.text.replace(/\n/g, " ")}\nCategory: ${capitalize(r.label as string)}\n---\n`,
    );
    if (n > budget) continue;
    budget -= n;
    selected.push(r);
  }
  const examples = [...selected]
    .reverse()
    .map((r) => `Text: ${r.text.replace(/\n/g, " ")}\nCategory: ${capitalize(r.label as string)}\n---\n`)
    .join("");
  const prompt = `${head}${examples}${tail}`;
  const plan = completionPlan(
    {
      model: info.id,
      prompt,
      max_tokens: 16,
      temperature: body.temperature ?? 0,
      logprobs: body.logprobs ?? null,
      logit_bias: body.logit_bias ?? null,
    },
    x.defaults,
    info,
  );
  // the label is always one of `labels`: the grammar allows nothing else
  const grammar = `root ::= " " (${labels.map(gbnfLiteral).join(" | ")})`;
  for (const r of plan.requests)
    r.sampling = { ...r.sampling, grammar: { text: grammar, kind: "user", lazy: false, triggers: [] } };
  const completion = await runCompletionPlan(m.engine, plan, x);
  const text = completion.choices[0]?.text ?? "";
  const label = labels.find((l) => l === capitalize(text.split("\n")[0] ?? "")) ?? "Unknown";
  const expandCompletion =
    expands(body.expand, "completion") || (body.logprobs !== null && body.logprobs !== undefined);
  return {
    object: "classification" as const,
    model: info.id,
    search_model: m.searchEngine.info.id,
    completion: expandCompletion ? completion : completion.id,
    label,
    selected_examples: selected.map((r) => ({
      document: r.index,
      text: r.text,
      label: capitalize(r.label as string),
      ...(body.return_metadata && body.file ? { metadata: r.metadata ?? null } : {}),
    })),
    ...(body.file && expands(body.expand, "file") ? { file: files().get(body.file, "file") } : {}),
    ...(body.return_prompt ? { prompt } : {}),
  };
}

// ---- edits ------------------------------------------------------------------------

const EDIT_SYSTEM =
  "Rewrite the text the user gives according to the instruction. Reply with the edited text only, with no explanations and no quotes.";

export async function edits(engine: Engine, body: EditRequest, x: Exec) {
  const input = body.input ?? "";
  const inputTokens = await tokenCount(engine, input);
  const cap = Math.min(2 * inputTokens + 256, Math.max(1, engine.info.nCtxSlot - inputTokens - 64));
  const sampling = { temperature: body.temperature ?? 1, top_p: body.top_p ?? 1 };
  const n = body.n ?? 1;
  if (engine.info.chatTemplate) {
    const r = await chatCompletion(
      engine,
      {
        model: engine.info.id,
        messages: [
          { role: "system", content: EDIT_SYSTEM },
          {
            role: "user",
            content: input ? `Instruction: ${body.instruction}\n\nText:\n${input}` : `Instruction: ${body.instruction}`,
          },
        ],
        max_tokens: cap,
        n,
        ...sampling,
      },
      x,
    );
    return {
      object: "edit" as const,
      created: r.created,
      model: r.model,
      choices: r.choices.map((c) => ({
        text: typeof c.message.content === "string" ? c.message.content : "",
        index: c.index,
        logprobs: null,
        finish_reason: c.finish_reason === "length" ? "length" : "stop",
      })),
      usage: r.usage,
    };
  }
  // a model without a chat template: the Alpaca instruction prompt
  const prompt = `Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n### Instruction:\n${body.instruction}\n\n### Input:\n${input}\n\n### Response:\n`;
  const r = await runCompletionPlan(
    engine,
    completionPlan(
      { model: engine.info.id, prompt, max_tokens: cap, n, stop: ["\n###"], ...sampling },
      x.defaults,
      engine.info,
    ),
    x,
  );
  return {
    object: "edit" as const,
    created: r.created,
    model: r.model,
    choices: r.choices.map((c) => ({ text: c.text, index: c.index, logprobs: null, finish_reason: c.finish_reason })),
    usage: r.usage,
  };
}

// ---- moderations --------------------------------------------------------------------

/** The spec's 7 categories, then the ones today's SDKs type; definitions after OpenAI's. */
export const MODERATION_CATEGORIES: [string, string][] = [
  [
    "hate",
    "content that expresses, incites, or promotes hate based on race, gender, ethnicity, religion, nationality, sexual orientation, disability status, or caste",
  ],
  ["hate/threatening", "hateful content that also includes violence or serious harm towards the targeted group"],
  [
    "self-harm",
    "content that promotes, encourages, or depicts acts of self-harm, such as suicide, cutting, and eating disorders",
  ],
  [
    "sexual",
    "content meant to arouse sexual excitement, such as the description of sexual activity, or that promotes sexual services",
  ],
  ["sexual/minors", "sexual content that includes an individual who is under 18 years old"],
  ["violence", "content that promotes or glorifies violence or celebrates the suffering or humiliation of others"],
  [
    "violence/graphic",
    "violent content that depicts death, violence, or serious physical injury in extreme graphic detail",
  ],
  ["harassment", "content that expresses, incites, or promotes harassing language towards any target"],
  ["harassment/threatening", "harassment content that also includes violence or serious harm towards any target"],
  [
    "self-harm/intent",
    "content where the speaker expresses that they are engaging or intend to engage in acts of self-harm",
  ],
  [
    "self-harm/instructions",
    "content that encourages performing acts of self-harm, or that gives instructions or advice on how to commit such acts",
  ],
  ["illicit", "content that gives advice or instruction on how to commit illicit acts"],
  ["illicit/violent", "illicit content that also includes references to violence or procuring a weapon"],
];

const JUDGE_SYSTEM =
  "You are a content moderation classifier. You read a text and decide whether it falls into one category. Answer with one word: yes or no.";

/** Token ids of the answer's spellings that are one token: yes/Yes/ yes/ Yes (and the same for no). */
async function answerTokens(engine: Engine, words: string[]): Promise<number[]> {
  const ids = new Set<number>();
  for (const w of words) {
    const t = await engine.tokenize(w, false, false);
    if (t.length === 1) ids.add(t[0] as number);
  }
  return [...ids];
}

const logSumExp = (xs: number[]) => {
  if (xs.length === 0) return Number.NEGATIVE_INFINITY;
  const m = Math.max(...xs);
  return m + Math.log(xs.reduce((a, x) => a + Math.exp(x - m), 0));
};

/** Llama Guard's hazard codes and the categories they stand for (derived ones are documented in the README). */
const GUARD_CODES: Record<string, string[]> = {
  S1: ["violence", "illicit/violent"],
  S2: ["illicit"],
  S3: ["sexual"],
  S4: ["sexual/minors"],
  S9: ["illicit/violent"],
  S10: ["hate", "hate/threatening"],
  S11: ["self-harm", "self-harm/intent", "self-harm/instructions"],
  S12: ["sexual"],
};

function isGuard(info: ModelInfo): boolean {
  return (
    /guard/i.test(info.id) || (!!info.chatTemplate && /unsafe/.test(info.chatTemplate) && /S1/.test(info.chatTemplate))
  );
}

/** P(yes) / (P(yes) + P(no)) of the first answer token, per category. */
async function judgeText(
  engine: Engine,
  text: string,
  yes: number[],
  no: number[],
  x: Exec,
): Promise<Record<string, number>> {
  const scores: Record<string, number> = {};
  // one after the other: the text's prefill is shared through the slot's cache
  for (const [name, definition] of MODERATION_CATEGORIES) {
    const plan = chatPlan(
      {
        model: engine.info.id,
        messages: [
          { role: "system", content: JUDGE_SYSTEM },
          {
            role: "user",
            content: `Text:\n"""\n${text}\n"""\n\nCategory: ${name}: ${definition}.\nDoes the text fall into this category? Answer yes or no.`,
          },
        ],
        max_tokens: 1,
        temperature: 0,
      },
      x.defaults,
      engine.info,
    );
    const events = await run(engine, { ...plan.request, scoreTokens: [...yes, ...no] }, x);
    const end = events.find((e) => e.type === "end");
    const s = end?.type === "end" ? (end.scores ?? []) : [];
    const py = logSumExp(s.slice(0, yes.length));
    const pn = logSumExp(s.slice(yes.length));
    scores[name] = Number.isFinite(py) || Number.isFinite(pn) ? 1 / (1 + Math.exp(pn - py)) : 0;
  }
  return scores;
}

/** A guard model: P(unsafe) from its own prompt, split over the categories by its hazard codes. */
async function guardText(engine: Engine, text: string, x: Exec): Promise<Record<string, number>> {
  const safe = await answerTokens(engine, ["safe", " safe"]);
  const unsafe = await answerTokens(engine, ["unsafe", " unsafe"]);
  const plan = chatPlan(
    { model: engine.info.id, messages: [{ role: "user", content: text }], max_tokens: 1, temperature: 0 },
    x.defaults,
    engine.info,
  );
  const events = await run(engine, { ...plan.request, scoreTokens: [...safe, ...unsafe] }, x);
  const start = events.find((e) => e.type === "start");
  const end = events.find((e) => e.type === "end");
  const s = end?.type === "end" ? (end.scores ?? []) : [];
  const pUnsafe = 1 / (1 + Math.exp(logSumExp(s.slice(0, safe.length)) - logSumExp(s.slice(safe.length))));
  // each code's likelihood after "unsafe\n", teacher-forced, normalised over the codes
  const rendered = start?.type === "start" ? (start.prompt ?? "") : "";
  const base = await engine.tokenize(`${rendered}unsafe\n`, true, true);
  const codeLp: Record<string, number> = {};
  for (const code of Object.keys(GUARD_CODES)) {
    const c = await engine.tokenize(code, false, false);
    const ev = await run(engine, scoring([...base, ...c], base.length), x);
    const p = ev.find((e) => e.type === "prompt");
    codeLp[code] =
      p?.type === "prompt" ? p.logprobs.reduce((a, e) => a + (e.logprob ?? 0), 0) : Number.NEGATIVE_INFINITY;
  }
  const z = logSumExp(Object.values(codeLp));
  const scores: Record<string, number> = Object.fromEntries(MODERATION_CATEGORIES.map(([n]) => [n, 0]));
  for (const [code, cats] of Object.entries(GUARD_CODES)) {
    const share = Math.exp((codeLp[code] as number) - z);
    for (const cat of cats) scores[cat] = Math.min(1, (scores[cat] as number) + pUnsafe * share);
  }
  // Llama Guard has no code for these: derived (see the README)
  scores.harassment = Math.max(scores.hate as number, 0);
  scores["harassment/threatening"] = Math.min(scores.hate as number, scores.violence as number);
  scores["violence/graphic"] = scores.violence as number;
  return scores;
}

export async function moderations(engine: Engine, body: ModerationRequest, x: Exec) {
  const inputs = typeof body.input === "string" ? [body.input] : body.input;
  if (inputs.length === 0) throw invalid("input must not be empty", "input");
  const guard = isGuard(engine.info);
  const yes = guard ? [] : await answerTokens(engine, ["yes", "Yes", " yes", " Yes", "YES"]);
  const no = guard ? [] : await answerTokens(engine, ["no", "No", " no", " No", "NO"]);
  if (!guard && (yes.length === 0 || no.length === 0)) {
    throw invalid(`${engine.info.id} has no one-token "yes"/"no": it cannot judge moderations`, "model");
  }
  const results = await mapLimit(inputs, engine.info.parallel, async (text) => {
    const scores = guard ? await guardText(engine, text, x) : await judgeText(engine, text, yes, no, x);
    const rounded = Object.fromEntries(Object.entries(scores).map(([k, v]) => [k, Math.round(v * 1e6) / 1e6]));
    const categories = Object.fromEntries(Object.entries(scores).map(([k, v]) => [k, v >= 0.5]));
    return { flagged: Object.values(categories).some(Boolean), categories, category_scores: rounded };
  });
  return { id: newId("modr"), model: engine.info.id, results };
}
