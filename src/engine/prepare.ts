// Everything a generation needs before it can join the decode loop: its prompt
// as tokens (the chat template applied, message text kept from becoming control
// tokens), its checks against the slot, and its samplers (grammars parsed) and
// output parsers. It runs in the engine's preparation thread (engine/prep.ts),
// never inside a decode step, so a large or slow request does not hold up the
// streams that are running.
import { DomainError } from "../errors";
import { ChatParser, type ChatTemplates, type TemplateInput, type TemplateOutput } from "../ffi/chat";
import type { Model } from "../ffi/model";
import { Sampler, type SamplingParams } from "../ffi/sampler";
import { ImagePart, type ImagePiece, type ImageTokens, type Vision } from "../ffi/vision";
import { type GenerateRequest, type ImageInput, MEDIA_MARKER, type RenderedPrompt } from "./types";

/**
 * An image in a prompt: its tokens stand at prompt[start, start + nTokens) as
 * pseudo-tokens (negative ids made from the image's hash, so the prefix cache
 * matches a repeated image as it matches text), and the decode thread decodes
 * its embeddings there instead of token ids.
 */
export interface MediaSpan {
  start: number;
  nTokens: number;
  /** positions it takes (fewer than its tokens with M-RoPE) */
  nPos: number;
  embd: Float32Array;
  part: ImagePart;
}

/** What images need in the preparation thread: the projector and the embeddings of recent images. */
export interface VisionPrep {
  vision: Vision;
  maxPixels: number;
  cache: EmbeddingCache;
}

/** Embeddings of recently seen images by hash (a second turn with the same image does not encode it again). */
export class EmbeddingCache {
  private readonly map = new Map<string, Float32Array>();
  private bytes = 0;
  constructor(private readonly maxBytes: number) {}

  get(key: string): Float32Array | undefined {
    const v = this.map.get(key);
    if (v) {
      // most recently used last
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }

  set(key: string, v: Float32Array): void {
    if (v.byteLength > this.maxBytes || this.map.has(key)) return;
    this.map.set(key, v);
    this.bytes += v.byteLength;
    for (const [k, old] of this.map) {
      if (this.bytes <= this.maxBytes) break;
      this.map.delete(k);
      this.bytes -= old.byteLength;
    }
  }
}

export interface Prepared {
  req: GenerateRequest;
  prompt: Int32Array;
  /** the chat template's output (with the messages' own text), for the start event */
  promptText: string | null;
  /** tokens rendered with their special text (the template's preserved tokens) */
  preserved: number[];
  /** one per choice, each with its own seed and the prompt in its penalty history */
  samplers: Sampler[];
  /** one per choice when the output is parsed (tools, structured output) */
  parsers: ChatParser[];
  /** the prompt's images, in prompt order */
  media: MediaSpan[];
}

/** A Prepared as it crosses from the preparation thread to the decode thread (native objects by handle). */
export interface PreparedWire extends Omit<Prepared, "samplers" | "parsers" | "media"> {
  samplers: number[];
  parsers: number[];
  media: (Omit<MediaSpan, "part"> & { part: number })[];
}

export function toWire(p: Prepared): PreparedWire {
  return {
    ...p,
    samplers: p.samplers.map((s) => s.release()),
    parsers: p.parsers.map((x) => x.release()),
    media: p.media.map((m) => ({ ...m, part: m.part.release() })),
  };
}

export function fromWire(w: PreparedWire): Prepared {
  return {
    ...w,
    samplers: w.samplers.map((h) => Sampler.adopt(h)),
    parsers: w.parsers.map((h) => ChatParser.adopt(h)),
    media: w.media.map((m) => ({ ...m, part: ImagePart.adopt(m.part) })),
  };
}

export function disposePrepared(p: Prepared): void {
  for (const s of p.samplers) s.dispose();
  for (const x of p.parsers) x.dispose();
  for (const m of p.media) m.part.dispose();
}

/**
 * Tightens llama.cpp's tool-call grammar where it is looser than the request:
 * - tool_choice "required": its grammars let free text come first
 *   ("root ::= <generation prompt> space until-N? tool-calls"); a client that
 *   requires a call expects it at once (OpenAI answers with the call and no
 *   content), and a weak model could wander in that text forever;
 * - parallel_tool_calls false: templates with per-call markers (Hermes' <tool_call>)
 *   get "tool-calls ::= (tool-call space)+" whatever the flag says: one call.
 * Grammars of other shapes are left as they are.
 */
export function tightenToolGrammar(grammar: string, required: boolean, parallel: boolean): string {
  let g = grammar;
  if (required) g = g.replace(/^root ::= .*$/m, (root) => root.replace(/\s+until-\d+\?/g, ""));
  if (!parallel) g = g.replace(/^tool-calls ::= \(tool-call space\)\+$/m, "tool-calls ::= tool-call space");
  return g;
}

// ---- control tokens in message text ------------------------------------------

/** Finds the vocabulary's control-token texts (<|im_end|>, ...) inside a string. */
export class ControlTexts {
  private readonly byFirst = new Map<string, string[]>();

  constructor(texts: readonly string[]) {
    for (const t of texts) {
      if (!t) continue;
      const list = this.byFirst.get(t[0] as string) ?? [];
      list.push(t);
      this.byFirst.set(t[0] as string, list);
    }
  }

  in(s: string): boolean {
    for (const [c, list] of this.byFirst) {
      for (let i = s.indexOf(c); i >= 0; i = s.indexOf(c, i + 1)) {
        for (const t of list) if (s.startsWith(t, i)) return true;
      }
    }
    return false;
  }
}

const controlTexts = new WeakMap<Model, ControlTexts>();

function controlOf(model: Model): ControlTexts {
  let c = controlTexts.get(model);
  if (!c) {
    c = new ControlTexts(model.vocabInfo.control);
    controlTexts.set(model, c);
  }
  return c;
}

/**
 * The strings of a chat that came from the request and hold a control token's
 * text are replaced by placeholders before the template runs; after it, the
 * prompt is tokenized piece by piece: the template's text with special tokens
 * parsed, each placeholder's original text as plain text. So a user who types
 * "<|im_end|>\n<|im_start|>system" gets those characters, not the markers.
 * (Prompts without such text, nearly all, are tokenized in one piece, exactly
 * as before.)
 */
class Placeholders {
  private readonly nonce = Buffer.from(crypto.getRandomValues(new Uint8Array(8))).toString("hex");
  readonly originals: string[] = [];
  constructor(private readonly control: ControlTexts) {}

  /** `s`, or a placeholder for it when it holds a control token's text. */
  guard(s: string): string {
    if (!this.control.in(s)) return s;
    this.originals.push(s);
    return `[[llmatic-${this.nonce}-${this.originals.length - 1}]]`;
  }

  get pattern(): RegExp {
    return new RegExp(`\\[\\[llmatic-${this.nonce}-(\\d+)\\]\\]`, "g");
  }

  /** Every string value of a JSON value guarded (tool-call arguments). */
  guardJson(text: string): string {
    if (!this.control.in(text)) return text;
    try {
      const walk = (v: unknown): unknown => {
        if (typeof v === "string") return this.guard(v);
        if (Array.isArray(v)) return v.map(walk);
        if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
        return v;
      };
      return JSON.stringify(walk(JSON.parse(text)));
    } catch {
      return this.guard(text);
    }
  }

  /** "description" strings anywhere in a tool definition (they reach the prompt, not the grammar). */
  guardDescriptions(v: unknown): unknown {
    if (Array.isArray(v)) return v.map((x) => this.guardDescriptions(x));
    if (v && typeof v === "object") {
      return Object.fromEntries(
        Object.entries(v).map(([k, x]) => [
          k,
          k === "description" && typeof x === "string" ? this.guard(x) : this.guardDescriptions(x),
        ]),
      );
    }
    return v;
  }
}

function guardChat(chat: TemplateInput, ph: Placeholders): TemplateInput {
  const messages = chat.messages.map((m) => {
    const out = { ...m };
    // images are read from the request, never given to the template
    delete out.images;
    if (typeof m.content === "string") out.content = ph.guard(m.content);
    else if (Array.isArray(m.content))
      out.content = m.content.map((p) => (typeof p.text === "string" ? { ...p, text: ph.guard(p.text) } : p));
    if (m.reasoning_content) out.reasoning_content = ph.guard(m.reasoning_content);
    if (m.name) out.name = ph.guard(m.name);
    if (m.tool_calls) {
      out.tool_calls = m.tool_calls.map((c) => ({
        ...c,
        function: { name: c.function.name, arguments: ph.guardJson(c.function.arguments) },
      }));
    }
    return out;
  });
  const tools = chat.tools?.map((t) => ph.guardDescriptions(t) as typeof t);
  return { ...chat, messages, tools };
}

/** Tokenizes a rendered prompt: the template's text with special tokens, each placeholder's original as text. */
function tokenizeGuarded(
  model: Model,
  text: string,
  ph: Placeholders,
  atStart = true,
): { tokens: Int32Array; text: string } {
  if (ph.originals.length === 0) return { tokens: model.tokenize(text, atStart, true), text };
  const parts: Int32Array[] = [];
  let shown = "";
  let last = 0;
  let first = atStart;
  const re = ph.pattern;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const original = ph.originals[Number(m[1])] as string;
    // inside a JSON string (tool arguments, tool descriptions) the text is what JSON would write
    const quoted = text[m.index - 1] === '"' && text[m.index + m[0].length] === '"';
    const value = quoted ? JSON.stringify(original).slice(1, -1) : original;
    const before = text.slice(last, m.index);
    if (before || first) parts.push(model.tokenize(before, first, true));
    parts.push(model.tokenize(value, false, false));
    shown += before + value;
    first = false;
    last = m.index + m[0].length;
  }
  const rest = text.slice(last);
  if (rest) parts.push(model.tokenize(rest, false, true));
  shown += rest;
  return { tokens: concat(parts), text: shown };
}

function concat(parts: readonly Int32Array[]): Int32Array {
  const tokens = new Int32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    tokens.set(p, o);
    o += p.length;
  }
  return tokens;
}

// ---- images -----------------------------------------------------------------------

/** A pseudo-token for the image part `key` (a hash): negative, so no vocabulary id is ever one. */
function pseudoToken(key: string): number {
  return -1 - (Number.parseInt(key.slice(0, 7), 16) & 0x0fffffff);
}

/**
 * A rendered chat prompt with images: the text between the markers tokenized as
 * any prompt is, each image read by the projector; its embeddings computed
 * (or found in the cache) only when `encode`. Counting never encodes.
 */
function tokenizeWithImages(
  model: Model,
  text: string,
  ph: Placeholders,
  images: readonly ImageInput[],
  vp: VisionPrep | null,
  encode: boolean,
  fits: (tokens: number) => boolean,
): { tokens: Int32Array; text: string; media: MediaSpan[] } {
  const pieces = text.split(MEDIA_MARKER);
  if (pieces.length - 1 !== images.length) {
    throw new DomainError(
      "invalid_request",
      pieces.length - 1 > images.length
        ? `the messages' text holds '${MEDIA_MARKER}', which stands for an image: write it another way`
        : `the chat template dropped ${images.length - (pieces.length - 1)} of the ${images.length} images`,
      "messages",
    );
  }
  if (!vp) {
    throw new DomainError(
      "invalid_request",
      "image input needs a vision model: this model is served without a projector (start it with --mmproj FILE, or put its mmproj-*.gguf beside it)",
      "messages",
    );
  }
  const parts: Int32Array[] = [];
  const media: MediaSpan[] = [];
  /** images read, to encode once the whole prompt is known to fit */
  const reads: ImageTokens[] = [];
  const toEncode: { read: ImageTokens; piece: Extract<ImagePiece, { kind: "image" }>; key: string; start: number }[] =
    [];
  let shown = "";
  let length = 0;
  const push = (t: Int32Array) => {
    parts.push(t);
    length += t.length;
  };
  try {
    pieces.forEach((piece, i) => {
      const tk = tokenizeGuarded(model, piece, ph, i === 0);
      push(tk.tokens);
      shown += tk.text;
      if (i === pieces.length - 1) return;
      const img = images[i] as ImageInput;
      if (!("data" in img))
        throw new DomainError("internal", `image ${i} was not fetched before it reached the engine`);
      const bytes = Buffer.from(img.data, "base64");
      const hash = new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
      shown += MEDIA_MARKER;
      const read = vp.vision.read(bytes, vp.maxPixels, i);
      reads.push(read);
      for (const p of read.pieces()) {
        if (p.kind === "text") {
          push(p.tokens);
          continue;
        }
        const key = `${hash}:${p.index}`;
        push(new Int32Array(p.nTokens).fill(pseudoToken(key)));
        toEncode.push({ read, piece: p, key, start: length - p.nTokens });
      }
    });
    // the vision tower runs only for a prompt that fits (one that does not is refused after this)
    if (encode && fits(length)) {
      for (const { read, piece, key, start } of toEncode) {
        let embd = vp.cache.get(key);
        if (!embd) {
          embd = vp.vision.encode(read, piece);
          vp.cache.set(key, embd);
        }
        media.push({ start, nTokens: piece.nTokens, nPos: piece.nPos, embd, part: read.take(piece.index) });
      }
    }
  } catch (e) {
    for (const m of media) m.part.dispose();
    throw e;
  } finally {
    for (const r of reads) r.dispose();
  }
  return { tokens: concat(parts), text: shown, media };
}

// ---- the prompt ---------------------------------------------------------------

function tooLong(model: Model, bytes: number, nCtxSlot: number, param: string): void {
  // every token stands for at most maxPieceBytes bytes of text (x2 for normalisation):
  // more bytes than that cannot fit the slot, whatever the tokenizer makes of them
  if (bytes > nCtxSlot * model.vocabInfo.maxPieceBytes * 2) {
    throw new DomainError(
      "context_length_exceeded",
      `the prompt is ${bytes} bytes of text, far more than this model's context window of ${nCtxSlot} tokens can hold`,
      param,
    );
  }
}

function textBytes(chat: TemplateInput): number {
  let n = 0;
  for (const m of chat.messages) {
    if (typeof m.content === "string") n += Buffer.byteLength(m.content);
    else if (Array.isArray(m.content)) for (const p of m.content) n += Buffer.byteLength(p.text ?? "");
    n += Buffer.byteLength(m.reasoning_content ?? "");
    for (const c of m.tool_calls ?? []) n += Buffer.byteLength(c.function.arguments);
  }
  return n;
}

interface PromptOf {
  prompt: Int32Array;
  template: TemplateOutput | null;
  text: string | null;
  media: MediaSpan[];
}

function promptOf(
  model: Model,
  templates: ChatTemplates | null,
  req: GenerateRequest,
  nCtxSlot: number,
  vision: VisionPrep | null = null,
  encode = false,
): PromptOf {
  const p = req.prompt;
  if (p.type === "tokens") {
    for (const t of p.tokens) {
      if (!Number.isInteger(t) || t < 0 || t >= model.nVocab) {
        throw new DomainError(
          "invalid_request",
          `token id ${t} is out of range (vocabulary has ${model.nVocab})`,
          "prompt",
        );
      }
    }
    return { prompt: Int32Array.from(p.tokens), template: null, text: null, media: [] };
  }
  if (p.type === "text") {
    tooLong(model, Buffer.byteLength(p.text), nCtxSlot, "prompt");
    return {
      prompt: model.tokenize(p.text, p.addSpecial ?? true, p.parseSpecial ?? true),
      template: null,
      text: null,
      media: [],
    };
  }
  if (p.type === "infill") {
    const fim = model.fimTokens();
    if (!fim) {
      throw new DomainError(
        "invalid_request",
        "this model has no fill-in-the-middle tokens, so suffix cannot be used with it",
        "suffix",
      );
    }
    tooLong(model, Buffer.byteLength(p.prefix) + Buffer.byteLength(p.suffix), nCtxSlot, "prompt");
    const [pre, suf, mid] = fim;
    const prompt = Int32Array.from([
      pre,
      ...model.tokenize(p.prefix, false, false),
      suf,
      ...model.tokenize(p.suffix, false, false),
      mid,
    ]);
    return { prompt, template: null, text: null, media: [] };
  }
  if (!templates) throw new DomainError("invalid_request", "this model has no chat template", "messages");
  tooLong(model, textBytes(p.chat), nCtxSlot, "messages");
  const ph = new Placeholders(controlOf(model));
  const template = templates.apply(guardChat(p.chat, ph));
  const images = p.chat.messages.flatMap((m) => m.images ?? []);
  if (images.length) {
    // the checks prepared() makes: a prompt that fails them is refused without running the vision tower
    const fits = (n: number) => n < nCtxSlot && (req.contextLimit === undefined || n < req.contextLimit);
    const { tokens, text, media } = tokenizeWithImages(model, template.prompt, ph, images, vision, encode, fits);
    return { prompt: tokens, template, text, media };
  }
  const { tokens, text } = tokenizeGuarded(model, template.prompt, ph);
  return { prompt: tokens, template, text, media: [] };
}

/** The request's sampling, with the template's grammar (structured output, tool calls) when it has one. */
function samplingOf(
  model: Model,
  req: GenerateRequest,
  template: TemplateOutput | null,
  nCtxSlot: number,
): SamplingParams {
  let sampling = req.sampling;
  // -1: the whole slot, as llama-server; more than the slot could ever hold is refused at the edge
  if (sampling.repeatLastN < 0 || sampling.repeatLastN > nCtxSlot) sampling = { ...sampling, repeatLastN: nCtxSlot };
  if (template?.grammar) {
    const chat = req.prompt.type === "chat" ? req.prompt.chat : null;
    const text =
      req.parse === "tools"
        ? tightenToolGrammar(template.grammar, chat?.toolChoice === "required", chat?.parallelToolCalls ?? true)
        : template.grammar;
    sampling = {
      ...sampling,
      grammar: {
        text,
        kind: req.parse === "tools" ? "tool_calls" : "output_format",
        lazy: template.grammarLazy,
        triggers: template.grammarTriggers,
      },
      generationPrompt: template.generationPrompt,
    };
  }
  const chat = req.prompt.type === "chat" ? req.prompt.chat : null;
  if (
    template?.supportsThinking &&
    chat?.enableThinking !== false &&
    req.reasoningBudget !== null &&
    req.reasoningBudget !== undefined
  ) {
    sampling = {
      ...sampling,
      reasoningBudget: {
        tokens: req.reasoningBudget,
        startTag: template.thinkingStartTag,
        endTags: template.thinkingEndTags,
        message: "\n\nI have to answer now.\n",
      },
      generationPrompt: template.generationPrompt,
    };
  }
  if (req.ignoreEos) {
    sampling = {
      ...sampling,
      logitBias: [
        ...sampling.logitBias,
        ...[...model.eogTokens()].map((t): [number, number] => [t, Number.NEGATIVE_INFINITY]),
      ],
    };
  }
  return sampling;
}

/** Tokenizes and checks a request and builds its samplers; errors here reach the client before any output. */
export function prepare(
  model: Model,
  templates: ChatTemplates | null,
  req: GenerateRequest,
  nCtxSlot: number,
  vision: VisionPrep | null = null,
): Prepared {
  const p = promptOf(model, templates, req, nCtxSlot, vision, true);
  try {
    return prepared(model, req, p, nCtxSlot);
  } catch (e) {
    for (const m of p.media) m.part.dispose();
    throw e;
  }
}

function prepared(model: Model, req: GenerateRequest, p: PromptOf, nCtxSlot: number): Prepared {
  let { prompt } = p;
  const { template, text, media } = p;
  if (prompt.length === 0) {
    // nothing to condition on: start from BOS like llama.cpp does
    prompt = Int32Array.of(model.startToken);
  }
  if (prompt.length >= nCtxSlot) {
    throw new DomainError(
      "context_length_exceeded",
      `the prompt has ${prompt.length} tokens but the context window is ${nCtxSlot} tokens (it must leave room for at least one generated token)`,
      req.prompt.type === "chat" ? "messages" : "prompt",
    );
  }
  if (req.contextLimit !== undefined && prompt.length >= req.contextLimit) {
    throw new DomainError(
      "context_length_exceeded",
      `the prompt has ${prompt.length} tokens but the request's context (num_ctx) is ${req.contextLimit} tokens (it must leave room for at least one generated token)`,
      "options.num_ctx",
    );
  }
  const lastImage = media[media.length - 1];
  if (lastImage && lastImage.start + lastImage.nTokens >= prompt.length) {
    throw new DomainError(
      "invalid_request",
      "the prompt ends with an image: the model needs text after it to start its answer",
      "messages",
    );
  }
  for (const t of req.scoreTokens ?? []) {
    if (!Number.isInteger(t) || t < 0 || t >= model.nVocab) {
      throw new DomainError("invalid_request", `token id ${t} is out of range (vocabulary has ${model.nVocab})`);
    }
  }
  const preserved: number[] = [];
  for (const t of template?.preservedTokens ?? []) {
    const ids = model.tokenize(t, false, true);
    if (ids.length === 1) preserved.push(ids[0] as number);
  }
  const sampling = samplingOf(model, req, template, nCtxSlot);
  // a thinking template's output is parsed so its think block becomes the reasoning (unless thinking is off:
  // then whatever the model writes is the answer)
  const thinks =
    !!template?.supportsThinking && !(req.prompt.type === "chat" && req.prompt.chat.enableThinking === false);
  const samplers: Sampler[] = [];
  const parsers: ChatParser[] = [];
  try {
    for (let i = 0; i < req.n; i++) {
      // choices of one request must differ: each gets its own seed
      const s = Sampler.create(model, { ...sampling, seed: (sampling.seed + i) >>> 0 });
      samplers.push(s);
      // an image's pseudo-tokens are no vocabulary's: the penalties see the text only
      s.acceptPrompt(media.length ? prompt.filter((t) => t >= 0) : prompt);
      if (template && (req.parse || thinks)) {
        parsers.push(ChatParser.create(template, req.parse === "tools", thinks ? "deepseek" : "none"));
      }
    }
  } catch (e) {
    for (const s of samplers) s.dispose();
    for (const p of parsers) p.dispose();
    throw e;
  }
  return { req, prompt, promptText: text, preserved, samplers, parsers, media };
}

/**
 * The prompt tokens `req` takes (what its start event reports), without
 * preparing the rest, and for chat requests the text the template rendered.
 */
export function countPrompt(
  model: Model,
  templates: ChatTemplates | null,
  req: GenerateRequest,
  nCtxSlot: number,
  vision: VisionPrep | null = null,
): RenderedPrompt {
  const p = promptOf(model, templates, req, nCtxSlot, vision, false);
  return { tokens: Math.max(1, p.prompt.length), text: p.template?.prompt ?? null };
}

/** Embedding inputs as checked token lists. */

export function prepareEmbeddings(model: Model, inputs: (string | number[])[], nCtx: number): Int32Array[] {
  return inputs.map((input, i) => {
    if (typeof input === "string") tooLong(model, Buffer.byteLength(input), nCtx, "input");
    const raw: ArrayLike<number> = typeof input === "string" ? model.tokenize(input, true, false) : input;
    for (let k = 0; k < raw.length; k++) {
      const t = raw[k] as number;
      if (!Number.isInteger(t) || t < 0 || t >= model.nVocab) {
        throw new DomainError(
          "invalid_request",
          `token id ${t} is out of range (vocabulary has ${model.nVocab})`,
          "input",
        );
      }
    }
    const toks = Int32Array.from(raw);
    if (toks.length === 0) throw new DomainError("invalid_request", `input[${i}] is empty`, "input");
    if (toks.length > nCtx) {
      throw new DomainError(
        "context_length_exceeded",
        `input[${i}] has ${toks.length} tokens but the embedding context is ${nCtx} tokens`,
        "input",
      );
    }
    return toks;
  });
}

/**
 * Query/document pairs for a rank head, as llama-server builds them: the model's
 * "rerank" prompt with {query} and {document} filled in, else BOS? query EOS? SEP?
 * document EOS? by the vocabulary's flags. The prompt's own special tokens are
 * parsed; text that spells a control token is kept as text (then the prompt's
 * pieces are tokenized one by one, so a document cannot end its turn).
 */
export function prepareRankPairs(model: Model, query: string, documents: string[], nCtx: number): Int32Array[] {
  const template = model.chatTemplate("rerank");
  const control = model.vocabInfo.control;
  const spellsControl = (t: string) => control.some((c) => c.length > 0 && t.includes(c));
  const plain = (t: string) => model.tokenize(t, false, false);
  const queryTokens = template === null ? plain(query) : null;
  const { bos, eos, sep } = model.pairTokens();
  return documents.map((doc, i) => {
    tooLong(model, Buffer.byteLength(query) + Buffer.byteLength(doc) + (template?.length ?? 0), nCtx, "documents");
    let toks: number[];
    if (template !== null) {
      if (!spellsControl(query) && !spellsControl(doc)) {
        const text = template.replaceAll("{query}", query).replaceAll("{document}", doc);
        toks = [...model.tokenize(text, false, true)];
      } else {
        toks = [];
        for (const part of template.split(/(\{query\}|\{document\})/)) {
          if (part === "{query}") toks.push(...plain(query));
          else if (part === "{document}") toks.push(...plain(doc));
          else if (part) toks.push(...model.tokenize(part, false, true));
        }
      }
    } else {
      toks = [];
      if (bos !== null) toks.push(bos);
      toks.push(...(queryTokens as Int32Array));
      if (eos !== null) toks.push(eos);
      if (sep !== null) toks.push(sep);
      toks.push(...plain(doc));
      if (eos !== null) toks.push(eos);
    }
    if (toks.length === 0)
      throw new DomainError("invalid_request", `documents[${i}] and the query are empty`, "documents");
    if (toks.length > nCtx) {
      throw new DomainError(
        "context_length_exceeded",
        `documents[${i}] with the query is ${toks.length} tokens but the ranking context is ${nCtx} tokens`,
        "documents",
      );
    }
    return Int32Array.from(toks);
  });
}
