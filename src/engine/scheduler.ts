// The decode loop. One Scheduler owns one context; every step it puts one token
// of every generating sequence plus a chunk of pending prompts into ONE batch,
// decodes it, samples each sequence, and reports text; embedding requests are
// jobs of the same queue, one input per step. Runs in the engine (never on the
// HTTP thread); requests arrive already prepared (engine/prepare.ts).
import { DomainError, type ErrorCode } from "../errors";
import { Batch } from "../ffi/batch";
import type { ChatParser } from "../ffi/chat";
import type { Context } from "../ffi/context";
import type { Model } from "../ffi/model";
import type { Sampler } from "../ffi/sampler";
import type { Vision } from "../ffi/vision";
import { type Drafter, DraftPolicy, ngramDrafter } from "./draft";
import { commonPrefix, PrefixDisk, PrefixStore, type SavedImage, type SavedPrefix } from "./prefix-store";
import type { MediaSpan, Prepared } from "./prepare";
import { TextAssembler } from "./text";
import type {
  EmbedResult,
  EngineStats,
  FinishReason,
  GenerateEvent,
  GenerateRequest,
  ParsedMessage,
  TokenLogprob,
  ToolCallDelta,
} from "./types";

interface Slot {
  seq: number;
  /** tokens whose KV this sequence holds, in position order (an image's as its pseudo-tokens) */
  tokens: number[];
  /** the images among them (where they start, their tokens and positions) */
  images: SavedImage[];
  busy: boolean;
  lastUsed: number;
}

/** The position the slot's next token takes: M-RoPE images take fewer positions than tokens. */
function nextPos(s: Slot): number {
  let lag = 0;
  for (const im of s.images) lag += im.nTokens - im.nPos;
  return s.tokens.length - lag;
}

/** `n`, or less where the n-th token is inside one of `images` (a prefix never holds half an image). */
function imageSafe(images: readonly SavedImage[], n: number): number {
  let k = n;
  for (const im of images) if (im.start < k && k < im.start + im.nTokens) k = im.start;
  return k;
}

/** Keeps the slot's first `keep` tokens (never half an image: it keeps less then); returns what it kept. */
function truncate(s: Slot, keep: number): number {
  const k = imageSafe(s.images, keep);
  s.images = s.images.filter((im) => im.start + im.nTokens <= k);
  s.tokens.length = k;
  return k;
}

interface Choice {
  index: number;
  slot: Slot;
  sampler: Sampler;
  text: TextAssembler;
  generated: number;
  /** sampled but not yet decoded */
  pending: number;
  /** batch index whose logits this choice samples next, -1 if none */
  outIdx: number;
  /** this step's draft (decoded after the pending token) and the batch index of each draft token */
  draft: number[];
  draftIdx: number[];
  /** how long its drafts are */
  policy: DraftPolicy;
  done: boolean;
  /** logprobs of tokens whose text has not been sent yet */
  pendingLogprobs: TokenLogprob[];
  logprobSum: number;
  /** scoreTokens' log-probabilities at the first generated position */
  scores: number[] | undefined;
  /** output parsing (chat with tools or structured output) */
  parser: ChatParser | null;
  /** the latest parse of everything generated so far */
  parsed: ParsedMessage;
  /** what has been reported in deltas (only ever grows) */
  sent: ParsedMessage;
  toolCallIds: string[];
}

export interface Job {
  id: number;
  req: GenerateRequest;
  /** set by cancel(): the job ends at the next step */
  cancelled: boolean;
  prompt: Int32Array;
  choices: Choice[];
  /** next prompt index to decode into the primary slot */
  prefillPos: number;
  /** batch index of the prompt's last token once it is in the batch */
  promptOutIdx: number;
  state: "queued" | "prefill" | "generate" | "done";
  /** the chat template's output, reported in the start event */
  promptText: string | null;
  /** tokens rendered with their special text (the template's preserved tokens) */
  preserved: Set<number>;
  /** prompt logprobs collected during prefill (promptLogprobs) */
  promptLogprobs: TokenLogprob[] | null;
  /** an error event was sent: no end events follow it */
  failed: boolean;
  /** the prompt's images, in order, and the next one to decode */
  media: MediaSpan[];
  nextMedia: number;
  emit: (e: GenerateEvent) => void;
}

/** An embedding request: its inputs are decoded one per step in the embedding context. */
interface EmbedJob {
  id: number;
  inputs: Int32Array[];
  vectors: Float32Array[];
  promptTokens: number;
  cancelled: boolean;
  done: (r: EmbedResult | DomainError) => void;
}

export interface SchedulerOptions {
  nBatch: number;
  /** requests that may wait for a free slot; beyond it submit() refuses */
  queueSize?: number;
  /** tokens of context each slot may use */
  nCtxSlot: number;
  /** prompt tokens decoded per step while other sequences are generating */
  prefillChunk?: number;
  /** one embedding input -> its pooled, normalised vector (the engine's embedding context) */
  embed?: (tokens: Int32Array) => Float32Array;
  /** the projector, when prompts may hold images */
  vision?: Vision | null;
  /** speculative decoding: at most this many draft tokens per sequence and step (0 or unset: off) */
  maxDraft?: number;
  /** where drafts come from (default: n-gram lookups in the sequence itself) */
  drafter?: Drafter;
  /** host memory for prefixes evicted from the slots (bytes; 0 or unset: none) */
  cacheBytes?: number;
  /** and a directory (this model's) that keeps them across restarts, with its budget in bytes */
  cacheDir?: string;
  cacheDirBytes?: number;
}

const DEFAULT_CACHE_DIR_BYTES = 8192 * 1024 * 1024;

/** Sequences generating at once up to which they draft (speculative decoding). */
const SPECULATE_UP_TO = 2;

/** A prefix shorter than this is recomputed rather than copied from another slot. */
const MIN_BORROW = 32;
/** A slot's cache this long or longer goes to host memory before the slot is reused. */
const MIN_SAVE = 256;

/** Prompt tokens per step when every prompt position needs its logits (their buffer is n_vocab floats each). */
const LOGPROB_PREFILL_CHUNK = 64;

function callId(): string {
  return `call_${Buffer.from(crypto.getRandomValues(new Uint8Array(12))).toString("base64url")}`;
}

const EMPTY_MESSAGE: ParsedMessage = { content: "", reasoning: "", toolCalls: [] };

/** Batch work (the batches API) yields to interactive requests. */
const isBatch = (job: Job) => job.req.priority === "batch";

/**
 * While interactive requests run, decode steps that carry batch work too may
 * make them this much slower at most (0.1: interactive streams keep about 90%
 * of their speed): batch work joins a step only while it has budget, earned by
 * the interactive-only steps and spent by what its steps cost beyond them.
 */
export const BATCH_SHARE = 0.1;
/** prompt tokens of batch work in one step beside interactive work (a big chunk would overshoot the budget) */
const BATCH_PREFILL_BESIDE = 64;

export class Scheduler {
  /** time batch work may add to interactive decoding (ms; see BATCH_SHARE) */
  private batchBudgetMs = 0;
  /** the recent cost of an interactive-only step (ms) */
  private soloStepMs = 0;
  private readonly slots: Slot[];
  private readonly batch: Batch;
  private readonly queue: Job[] = [];
  private readonly active: Job[] = [];
  private readonly embeds: EmbedJob[] = [];
  private readonly eog: Set<number>;
  private clock = 0;
  /** prompt tokens copied from another slot's KV (borrowPrefix) */
  private borrowed = 0;
  /** draft tokens decoded, and kept */
  private drafted = 0;
  private kept = 0;
  /** recent decode time (ms) of a step of w tokens of one generating sequence, by w */
  private readonly stepMs: number[] = [];
  /** prefixes evicted from the slots (--cache-ram) */
  private readonly store: PrefixStore | null;
  private readonly drafter: Drafter;

  constructor(
    private readonly model: Model,
    private readonly ctx: Context,
    private readonly opts: SchedulerOptions,
  ) {
    this.slots = Array.from({ length: ctx.nSeqMax }, (_, seq) => ({
      seq,
      tokens: [],
      images: [],
      busy: false,
      lastUsed: 0,
    }));
    this.batch = new Batch(opts.nBatch);
    this.store =
      opts.cacheBytes || opts.cacheDir
        ? new PrefixStore(
            opts.cacheBytes ?? 0,
            opts.cacheDir ? new PrefixDisk(opts.cacheDir, opts.cacheDirBytes ?? DEFAULT_CACHE_DIR_BYTES) : null,
          )
        : null;
    this.eog = new Set(model.eogTokens());
    this.drafter = opts.drafter ?? ngramDrafter;
  }

  get hasWork(): boolean {
    return this.active.length > 0 || this.queue.length > 0 || this.embeds.length > 0;
  }

  stats(): EngineStats {
    return {
      slotsBusy: this.slots.filter((s) => s.busy).length,
      slotsTotal: this.slots.length,
      queued: this.queue.length + this.embeds.length,
      prefixCopied: this.borrowed,
      prefixRestored: this.store?.restored ?? 0,
      hostCacheBytes: this.store?.bytes ?? 0,
      draftProposed: this.drafted,
      draftAccepted: this.kept,
    };
  }

  /**
   * Whether a request of `n` choices may join now; `arriving` requests are
   * already accepted but still being prepared (they count as queued).
   * Throws invalid_request or queue_full.
   */
  checkAdmissible(n: number, arriving = 0): void {
    if (n < 1 || n > this.slots.length) {
      throw new DomainError(
        "invalid_request",
        `n=${n} needs ${n} parallel sequences but this model has ${this.slots.length} (start the server with a larger --parallel)`,
        "n",
      );
    }
    const queueSize = this.opts.queueSize ?? Number.POSITIVE_INFINITY;
    // batch work limits itself (one request per slot at most): only interactive requests fill the queue
    const queued = this.queue.filter((j) => !isBatch(j));
    const waiting = queued.length + this.embeds.length + arriving;
    if (waiting >= queueSize) {
      const free = this.slots.filter((s) => !s.busy).length;
      const demand = queued.reduce((a, j) => a + j.choices.length, 0) + arriving + n;
      if (demand > free || this.embeds.length > 0) {
        throw new DomainError(
          "queue_full",
          `all ${this.slots.length} slots are busy and ${waiting} requests are already waiting (--queue ${queueSize}); retry shortly`,
        );
      }
    }
  }

  /** Queues a prepared request (engine/prepare.ts); the scheduler owns its samplers and parsers from now on. */
  submit(id: number, p: Prepared, emit: (e: GenerateEvent) => void): void {
    const req = p.req;
    const job: Job = {
      id,
      req,
      cancelled: false,
      prompt: p.prompt,
      choices: p.samplers.map((sampler, index) => ({
        index,
        // slots are chosen at admission
        slot: undefined as unknown as Slot,
        sampler,
        text: new TextAssembler(req.stop),
        generated: 0,
        pending: -1,
        outIdx: -1,
        draft: [],
        draftIdx: [],
        policy: new DraftPolicy(this.opts.maxDraft ?? 0),
        done: false,
        pendingLogprobs: [],
        logprobSum: 0,
        scores: undefined,
        parser: p.parsers[index] ?? null,
        parsed: EMPTY_MESSAGE,
        sent: EMPTY_MESSAGE,
        toolCallIds: [],
      })),
      prefillPos: 0,
      promptOutIdx: -1,
      state: "queued",
      promptText: p.promptText,
      preserved: new Set(p.preserved),
      promptLogprobs: req.promptLogprobs !== null && req.promptLogprobs !== undefined ? [] : null,
      failed: false,
      media: p.media,
      nextMedia: 0,
      emit,
    };
    this.queue.push(job);
  }

  /** Queues an embedding request; `done` gets the vectors, or the error that ended it. */
  submitEmbed(id: number, inputs: Int32Array[], done: (r: EmbedResult | DomainError) => void): void {
    if (!this.opts.embed) throw new DomainError("invalid_request", "this engine computes no embeddings");
    this.embeds.push({ id, inputs, vectors: [], promptTokens: 0, cancelled: false, done });
  }

  /** Cancels a request by id, wherever it is; it ends at the next step. False when unknown (already over). */
  cancel(id: number): boolean {
    for (const list of [this.active, this.queue, this.embeds]) {
      const job = (list as { id: number; cancelled: boolean }[]).find((j) => j.id === id);
      if (job) {
        job.cancelled = true;
        return true;
      }
    }
    return false;
  }

  /** The next job to admit: interactive ones first (in arrival order), then batch work. */
  private nextQueued(): Job | undefined {
    return this.queue.find((j) => !isBatch(j)) ?? this.queue[0];
  }

  /**
   * Moves queued jobs into free slots, reusing the slot whose KV shares the
   * longest prefix. Batch work never takes the last free slot while there are
   * several (an interactive request that arrives always finds one).
   */
  private admit(): void {
    while (this.queue.length > 0) {
      const job = this.nextQueued() as Job;
      if (job.cancelled) {
        this.queue.splice(this.queue.indexOf(job), 1);
        this.finishJob(job, "cancelled");
        continue;
      }
      const free = this.slots.filter((s) => !s.busy);
      const reserve = isBatch(job) && this.slots.length > 1 ? 1 : 0;
      if (free.length < job.choices.length + reserve) return;
      this.queue.splice(this.queue.indexOf(job), 1);
      // primary slot: longest common prefix, then least recently used
      let primary = free[0] as Slot;
      let best = -1;
      for (const s of free) {
        const lcp = commonPrefix(s.tokens, job.prompt);
        if (lcp > best || (lcp === best && s.lastUsed < primary.lastUsed)) {
          best = lcp;
          primary = s;
        }
      }
      // keep at least one prompt token to decode: its logits start generation;
      // prompt logprobs need every position's logits, so nothing is reused then
      // (positions before promptLogprobsFrom - 1 need no logits: their cache can be reused)
      // a longer prefix in another slot (one busy generating, or a free one kept for its own
      // next request) or in host memory is copied over instead of computed again
      best = this.reusePrefix(primary, best, job.prompt);
      const keep = truncate(
        primary,
        Math.min(best, job.prompt.length - 1, job.promptLogprobs ? Math.max(0, this.logitsFrom(job)) : best),
      );
      this.ctx.seqRemove(primary.seq, nextPos(primary), -1);
      job.prefillPos = keep;
      // images the cache already holds are not decoded again
      while (job.nextMedia < job.media.length && (job.media[job.nextMedia] as MediaSpan).start < keep) job.nextMedia++;
      if (job.promptLogprobs && job.prompt.length > 0 && (job.req.promptLogprobsFrom ?? 0) === 0) {
        job.promptLogprobs.push({
          token: job.prompt[0] as number,
          bytes: this.bytesOf(job, job.prompt[0] as number),
          logprob: null,
          top: [],
        });
      }
      const others = free.filter((s) => s !== primary).sort((a, b) => a.tokens.length - b.tokens.length);
      job.choices.forEach((c, i) => {
        c.slot = i === 0 ? primary : (others[i - 1] as Slot);
        c.slot.busy = true;
        c.slot.lastUsed = ++this.clock;
      });
      job.state = "prefill";
      this.active.push(job);
      job.emit({ type: "start", promptTokens: job.prompt.length, cachedTokens: keep, prompt: job.promptText });
    }
  }

  /**
   * The longest prefix of `prompt` this engine holds, put into `slot` (which
   * holds `own` tokens of it): its own cache, another slot's (copied), or one
   * saved in host memory (loaded), whichever is longest by MIN_BORROW tokens.
   * What the slot held beyond what the request keeps goes to host memory
   * first, when it is long enough to be worth it. Returns the length.
   */
  private reusePrefix(slot: Slot, own: number, prompt: Int32Array): number {
    let donor: Slot | null = null;
    let fromSlot = own + MIN_BORROW - 1;
    for (const s of this.slots) {
      if (s === slot || s.tokens.length <= fromSlot) continue;
      const lcp = commonPrefix(s.tokens, prompt);
      if (lcp > fromSlot) {
        fromSlot = lcp;
        donor = s;
      }
    }
    const saved = this.store?.best(prompt) ?? null;
    const useSaved = saved !== null && saved.n >= Math.max(own, donor ? fromSlot : 0) + MIN_BORROW;
    const keeps = useSaved || donor ? 0 : Math.min(own, prompt.length - 1);
    if (this.store && slot.tokens.length - keeps >= MIN_SAVE && !this.store.holds(slot.tokens)) {
      const data = this.ctx.saveSequence(slot.seq);
      if (data)
        this.store.add({ tokens: slot.tokens.slice(), images: slot.images.slice(), data, bytes: data.byteLength });
    }
    if (useSaved) return this.restore(slot, saved.entry, saved.n);
    if (!donor) return own;
    return this.borrowFrom(donor, slot, fromSlot, own);
  }

  /** Loads a prefix saved in host memory into `slot`; `n` of its tokens are the prompt's. */
  private restore(slot: Slot, e: SavedPrefix, n: number): number {
    this.ctx.seqRemove(slot.seq, -1, -1);
    const data = (this.store as PrefixStore).dataOf(e);
    if (!data || !this.ctx.loadSequence(slot.seq, data)) return this.forget(slot);
    (this.store as PrefixStore).touch(e);
    const kept = this.keepPrefix(slot, e, n);
    (this.store as PrefixStore).restored += kept;
    return kept;
  }

  /**
   * Copies `n` tokens of another slot's prefix into `slot` (llama.cpp copies the
   * cells between the sequences' streams at its next decode). The other slot
   * keeps its cells and goes on.
   */
  private borrowFrom(donor: Slot, slot: Slot, n: number, own: number): number {
    if (imageSafe(donor.images, n) <= own) return own;
    this.ctx.seqRemove(slot.seq, -1, -1);
    // between two slots' streams llama.cpp copies whole sequences only: all of it, then the tail goes
    this.ctx.seqCopy(donor.seq, slot.seq, -1, -1);
    const kept = this.keepPrefix(slot, donor, n);
    this.borrowed += kept;
    return kept;
  }

  /** `slot`'s KV is now a whole sequence holding `from`'s tokens: keeps the first `n` of them. */
  private keepPrefix(slot: Slot, from: { tokens: number[]; images: SavedImage[] }, n: number): number {
    slot.tokens = from.tokens.slice();
    slot.images = from.images.slice();
    const kept = truncate(slot, n);
    // a memory that cannot drop a tail (recurrent state) keeps nothing
    return this.ctx.seqRemove(slot.seq, nextPos(slot), -1) ? kept : this.forget(slot);
  }

  /** Empties `slot` (its KV and what it records); returns 0, the tokens it now holds. */
  private forget(slot: Slot): number {
    this.ctx.seqRemove(slot.seq, -1, -1);
    truncate(slot, 0);
    return 0;
  }

  /** One decode step (and at most one embedding input). Returns false when there was nothing to do. */
  step(): boolean {
    this.reapCancelled();
    const embedded = this.embedStep();
    this.admit();
    if (this.active.length === 0) return embedded;

    this.decodeImages();
    const batch = this.batch;
    batch.clear();
    // batch work decodes beside interactive work only as far as its time budget goes
    const interactive = this.active.some((j) => !isBatch(j));
    const withBatch = !interactive || this.batchBudgetMs > 0;
    const included = (job: Job) => withBatch || !isBatch(job);
    let mixed = false;
    // 1. one token for every generating sequence, and its draft when it speculates
    let generating = 0;
    for (const job of this.active) {
      if (job.state === "generate" && included(job)) for (const c of job.choices) if (!c.done) generating++;
    }
    // drafts pay while the batch is narrow; beside several sequences they would only widen it
    const speculate = (this.opts.maxDraft ?? 0) > 0 && generating <= SPECULATE_UP_TO;
    for (const job of this.active) {
      if (job.state !== "generate" || !included(job)) continue;
      if (isBatch(job)) mixed = true;
      for (const c of job.choices) {
        if (c.done) continue;
        c.outIdx = batch.add(c.pending, nextPos(c.slot), c.slot.seq, true);
        c.slot.tokens.push(c.pending);
        if (speculate && job.req.speculative !== false) this.addDraft(job, c, generating);
      }
    }
    // 2. prompt chunks with what is left of the batch; while others are generating,
    //    at most prefillChunk prompt tokens per step, so their streams keep flowing
    let budget = batch.room;
    if (batch.length > 0 && this.opts.prefillChunk) budget = Math.min(budget, this.opts.prefillChunk);
    const prefilled: { job: Job; from: number; firstIdx: number }[] = [];
    let batchPrefill = interactive ? BATCH_PREFILL_BESIDE : Number.POSITIVE_INFINITY;
    for (const job of this.active) {
      if (job.state !== "prefill" || !included(job)) continue;
      if (budget <= 0) break;
      if (isBatch(job)) {
        if (batchPrefill <= 0) continue;
        mixed = true;
      }
      const slot = (job.choices[0] as Choice).slot;
      const room = isBatch(job) ? Math.min(budget, batchPrefill) : budget;
      // positions whose logits are kept cost n_vocab floats each: few of them per step
      const chunk = job.promptLogprobs
        ? Math.min(room, Math.max(0, this.logitsFrom(job) - job.prefillPos) + LOGPROB_PREFILL_CHUNK)
        : room;
      // text up to the next image (decoded on its own at the start of a step)
      const image = job.media[job.nextMedia];
      const end = Math.min(job.prompt.length, job.prefillPos + chunk, image ? image.start : Number.POSITIVE_INFINITY);
      const firstIdx = batch.length;
      for (let i = job.prefillPos; i < end; i++) {
        const t = job.prompt[i] as number;
        const last = i === job.prompt.length - 1;
        const idx = batch.add(
          t,
          nextPos(slot),
          slot.seq,
          last || (job.promptLogprobs !== null && i >= this.logitsFrom(job)),
        );
        slot.tokens.push(t);
        if (last) job.promptOutIdx = idx;
      }
      prefilled.push({ job, from: job.prefillPos, firstIdx });
      budget -= end - job.prefillPos;
      if (isBatch(job)) batchPrefill -= end - job.prefillPos;
      job.prefillPos = end;
    }

    const t0 = performance.now();
    const status = this.ctx.decode(batch);
    if (status !== 0) {
      this.failDecode(status);
      return true;
    }
    const stepMs = performance.now() - t0;
    if (interactive) this.chargeBatch(stepMs, mixed);
    // what a draft's wider step costs: timed on steps of one sequence's tokens only
    if (prefilled.length === 0 && generating === 1) {
      const w = batch.length;
      const before = this.stepMs[w];
      this.stepMs[w] = before === undefined ? stepMs : 0.8 * before + 0.2 * stepMs;
    }
    for (const p of prefilled) if (p.job.promptLogprobs) this.collectPromptLogprobs(p.job, p.from, p.firstIdx);

    for (const job of [...this.active]) {
      if (job.state === "prefill") {
        if (job.prefillPos < job.prompt.length) continue;
        // the prompt is in: share its cells with the other choices' sequences
        const primary = (job.choices[0] as Choice).slot;
        for (const c of job.choices) {
          if (c.slot === primary) continue;
          this.ctx.seqRemove(c.slot.seq, -1, -1);
          this.ctx.seqCopy(primary.seq, c.slot.seq, -1, -1);
          c.slot.tokens = primary.tokens.slice();
          c.slot.images = primary.images.slice();
        }
        for (const c of job.choices) c.outIdx = job.promptOutIdx;
        job.state = "generate";
        if (job.promptLogprobs) job.emit({ type: "prompt", logprobs: job.promptLogprobs });
        // max_tokens 0: the prompt is processed (echo), nothing is generated
        if (job.req.maxTokens === 0) for (const c of job.choices) this.endChoice(job, c, "length");
      }
      try {
        for (const c of job.choices) {
          if (c.done || c.outIdx < 0) continue;
          this.sampleWithDraft(job, c);
        }
      } catch (e) {
        // one request's failure (a parser, a sampler) ends that request only
        this.failJob(job, e instanceof Error ? e.message : String(e), e instanceof DomainError ? e.code : "internal");
        continue;
      }
      if (job.choices.every((c) => c.done)) this.finishJob(job, null);
    }
    return true;
  }

  /**
   * Decodes the image each prefilling job has reached, into its primary slot:
   * the embeddings the preparation thread encoded go in through their own
   * decode (they are not tokens of the shared batch). A job whose image fails
   * ends with the error; the others go on.
   */
  private decodeImages(): void {
    for (const job of [...this.active]) {
      if (job.state !== "prefill") continue;
      let image = job.media[job.nextMedia];
      while (image && image.start === job.prefillPos) {
        const slot = (job.choices[0] as Choice).slot;
        try {
          if (!this.opts.vision) throw new DomainError("internal", "an image reached an engine without a projector");
          this.opts.vision.decode(this.ctx, image.part, image.embd, nextPos(slot), slot.seq, this.opts.nBatch);
        } catch (e) {
          this.failJob(job, e instanceof Error ? e.message : String(e));
          break;
        }
        for (let i = 0; i < image.nTokens; i++) slot.tokens.push(job.prompt[image.start + i] as number);
        slot.images.push({ start: image.start, nTokens: image.nTokens, nPos: image.nPos });
        job.prefillPos += image.nTokens;
        job.nextMedia++;
        image = job.media[job.nextMedia];
      }
    }
  }

  /**
   * Puts up to the policy's length of draft after the choice's pending token
   * (from the drafter: an n-gram lookup or a draft model). Never more than the
   * slot, the request's tokens left, or the batch can take.
   */
  private addDraft(job: Job, c: Choice, generating: number): void {
    const slot = c.slot;
    const left = job.req.maxTokens === null ? Number.POSITIVE_INFINITY : job.req.maxTokens - c.generated - 1;
    const room = Math.min(this.opts.nCtxSlot, job.req.contextLimit ?? Infinity) - slot.tokens.length - 2;
    const k = Math.min(c.policy.next(this.costRatio), left, room, this.batch.room - generating);
    if (k <= 0) return;
    const draft = this.drafter.draft(slot.seq, slot.tokens, k);
    // an image's pseudo-tokens are no vocabulary's: a draft stops before one
    const image = draft.findIndex((t) => t < 0);
    if (image >= 0) draft.length = image;
    const pos = nextPos(slot);
    for (let i = 0; i < draft.length; i++) {
      c.draftIdx.push(this.batch.add(draft[i] as number, pos + i, slot.seq, true));
    }
    c.draft = draft;
  }

  /**
   * Samples the choice's next token; while it is the draft's next token, that
   * token's KV is already in and the logits after it give the token after
   * that. The draft's tokens the model did not pick leave the slot's KV. With
   * greedy sampling the text is the one plain decoding gives; with sampling,
   * every token is still drawn from the model's distribution after the tokens
   * before it.
   */
  private sampleWithDraft(job: Job, c: Choice): void {
    const draft = c.draft;
    const idx = c.draftIdx;
    c.draft = [];
    c.draftIdx = [];
    if (draft.length === 0) {
      this.sampleChoice(job, c);
      return;
    }
    let kept = 0;
    for (;;) {
      this.sampleChoice(job, c);
      if (c.done || job.failed || kept === draft.length || c.pending !== draft[kept]) break;
      // the model picked the draft's token: it is decoded already
      c.slot.tokens.push(draft[kept] as number);
      c.outIdx = idx[kept] as number;
      kept++;
    }
    if (kept < draft.length && !job.failed) this.ctx.seqRemove(c.slot.seq, nextPos(c.slot), -1);
    c.policy.record(draft.length, kept);
    this.drafted += draft.length;
    this.kept += kept;
  }

  /**
   * What a step of `width` tokens (the pending one and a draft) costs over a
   * one-token step; a draft model's time counts too. Unknown (undefined: draft
   * and time it) until that width was timed; until a one-token step was timed,
   * too much (a step without a draft times it: drafts that are always kept
   * would never let one happen).
   */
  private readonly costRatio = (width: number): number | undefined => {
    const one = this.stepMs[1];
    const wide = this.stepMs[width];
    if (wide === undefined) return undefined;
    if (one === undefined || one <= 0) return Number.POSITIVE_INFINITY;
    return (wide + (width - 1) * this.drafter.tokenMs) / one;
  };

  /** Books a step's time against batch work's budget (only while interactive work runs). */
  private chargeBatch(ms: number, mixed: boolean): void {
    if (!mixed) {
      this.soloStepMs = this.soloStepMs ? this.soloStepMs * 0.8 + ms * 0.2 : ms;
      // the budget never builds up beyond a few steps' worth
      this.batchBudgetMs = Math.min(this.batchBudgetMs + BATCH_SHARE * ms, 4 * this.soloStepMs);
    } else {
      this.batchBudgetMs -= Math.max(0, ms - this.soloStepMs);
    }
  }

  /** Decodes the next input of the oldest embedding request. */
  private embedStep(): boolean {
    const job = this.embeds[0];
    if (!job) return false;
    const tokens = job.inputs[job.vectors.length] as Int32Array;
    try {
      job.vectors.push((this.opts.embed as (t: Int32Array) => Float32Array)(tokens));
      job.promptTokens += tokens.length;
    } catch (e) {
      this.embeds.shift();
      job.done(e instanceof DomainError ? e : new DomainError("internal", e instanceof Error ? e.message : String(e)));
      return true;
    }
    if (job.vectors.length === job.inputs.length) {
      this.embeds.shift();
      job.done({ vectors: job.vectors, promptTokens: job.promptTokens });
    }
    return true;
  }

  private bytesOf(job: Job, token: number): number[] {
    return [...this.model.piece(token, job.preserved.has(token))];
  }

  private entry(job: Job, idx: number, token: number, k: number): TokenLogprob {
    const { logprob, top } = this.ctx.logprobs(idx, token, k);
    return {
      token,
      bytes: this.bytesOf(job, token),
      logprob,
      top: top.map(([t, lp]) => ({ token: t, bytes: this.bytesOf(job, t), logprob: lp })),
    };
  }

  /** The first prompt position whose logits the job's prompt logprobs need (token i's come from position i - 1). */
  private logitsFrom(job: Job): number {
    return Math.max(0, (job.req.promptLogprobsFrom ?? 0) - 1);
  }

  /** After a prefill chunk: the logprob of each next prompt token, from the logits before it. */
  private collectPromptLogprobs(job: Job, from: number, firstIdx: number): void {
    const k = job.req.promptLogprobs ?? 0;
    const out = job.promptLogprobs as TokenLogprob[];
    for (let i = Math.max(from, this.logitsFrom(job)); i < job.prefillPos; i++) {
      if (i + 1 >= job.prompt.length) break; // the last position's logits are for the first generated token
      out.push(this.entry(job, firstIdx + (i - from), job.prompt[i + 1] as number, k));
    }
  }

  private sampleChoice(job: Job, c: Choice): void {
    if (job.req.scoreTokens && c.generated === 0) {
      c.scores = job.req.scoreTokens.map((t) => this.ctx.logprobs(c.outIdx, t, 0).logprob);
    }
    const token = c.sampler.sample(this.ctx, c.outIdx);
    if (token < 0) {
      c.outIdx = -1;
      this.failJob(job, "sampling failed");
      return;
    }
    const wantLogprobs = job.req.logprobs !== null && job.req.logprobs !== undefined;
    if (wantLogprobs || job.req.scoreChoices) {
      const e = this.entry(job, c.outIdx, token, job.req.logprobs ?? 0);
      c.logprobSum += e.logprob ?? 0;
      if (wantLogprobs) c.pendingLogprobs.push(e);
    }
    c.outIdx = -1;
    c.generated++;
    if (!job.req.ignoreEos && this.eog.has(token)) {
      this.endChoice(job, c, "stop");
      return;
    }
    const { text, stop } = c.text.push(this.model.piece(token, job.preserved.has(token)));
    if (text) this.emitText(job, c, text, true);
    // the next step would decode this token at position tokens.length: it must fit the slot
    const full = c.slot.tokens.length + 1 >= Math.min(this.opts.nCtxSlot, job.req.contextLimit ?? Infinity);
    if (stop) this.endChoice(job, c, "stop");
    else if ((job.req.maxTokens !== null && c.generated >= job.req.maxTokens) || full) this.endChoice(job, c, "length");
    else c.pending = token;
  }

  /** Sends text with the logprobs of the tokens it completes and, when parsing, what it adds to the message. */
  private emitText(job: Job, c: Choice, text: string, partial: boolean): void {
    const logprobs = c.pendingLogprobs.length ? c.pendingLogprobs : undefined;
    c.pendingLogprobs = [];
    const delta = c.parser ? this.parseDelta(c, partial) : undefined;
    if (!text && !logprobs && !(delta && (delta.content || delta.reasoning || delta.toolCalls.length))) return;
    job.emit({ type: "text", choice: c.index, text, tokens: c.generated, logprobs, delta });
  }

  /**
   * Re-parses everything generated so far and returns what it adds to what was
   * already reported. The final parse (partial = false) is the message of record.
   */
  private parseDelta(c: Choice, partial: boolean): { content: string; reasoning: string; toolCalls: ToolCallDelta[] } {
    let next: ParsedMessage;
    try {
      const m = (c.parser as ChatParser).parse(c.text.text, partial);
      next = { content: m.content, reasoning: m.reasoningContent, toolCalls: m.toolCalls };
    } catch {
      // an unparsable partial is simply not ready yet; at the end it is reported as plain content
      if (partial) return { content: "", reasoning: "", toolCalls: [] };
      next = { content: c.text.text, reasoning: "", toolCalls: [] };
    }
    next.toolCalls.forEach((call, i) => {
      if (call.name) c.toolCallIds[i] ??= call.id || callId();
      call.id = c.toolCallIds[i] ?? call.id;
    });
    c.parsed = next;
    // deltas only ever extend what was sent; a parse that rewrites the past is reported in the final message
    const sent = c.sent;
    const grow = (a: string, b: string) => (b.startsWith(a) ? b.slice(a.length) : "");
    const toolCalls: ToolCallDelta[] = [];
    const sentCalls = sent.toolCalls.slice();
    next.toolCalls.forEach((call, i) => {
      if (!call.name) return;
      const before = sentCalls[i];
      if (!before) {
        toolCalls.push({ index: i, id: call.id, name: call.name, arguments: call.arguments });
        sentCalls[i] = { ...call };
        return;
      }
      const more = grow(before.arguments, call.arguments);
      if (more) {
        toolCalls.push({ index: i, arguments: more });
        sentCalls[i] = { ...before, arguments: before.arguments + more };
      }
    });
    const content = grow(sent.content, next.content);
    const reasoning = grow(sent.reasoning, next.reasoning);
    c.sent = { content: sent.content + content, reasoning: sent.reasoning + reasoning, toolCalls: sentCalls };
    return { content, reasoning, toolCalls };
  }

  private endChoice(job: Job, c: Choice, reason: FinishReason): void {
    if (c.done) return;
    c.done = true;
    if (job.failed) return;
    if (reason !== "cancelled") {
      const rest = c.text.flush();
      // tokens held back for a stop string that did match are not part of the answer
      if (reason === "stop" && c.text.isStopped) c.pendingLogprobs = [];
      this.emitText(job, c, rest, false);
    }
    job.emit({
      type: "end",
      choice: c.index,
      reason,
      completionTokens: c.generated,
      text: c.text.text,
      // after the final (non-partial) parse in emitText above
      message: c.parser ? c.parsed : undefined,
      stopSequence: reason === "stop" ? (c.text.matched ?? undefined) : undefined,
      meanLogprob: job.req.scoreChoices ? c.logprobSum / Math.max(1, c.generated) : undefined,
      scores: c.scores,
    });
  }

  /** Ends a job: every open choice gets `reason` (null: they all ended on their own). */
  private finishJob(job: Job, reason: FinishReason | null): void {
    for (const c of job.choices) {
      if (!c.done) this.endChoice(job, c, reason ?? "stop");
      c.sampler.dispose();
      c.parser?.dispose();
      for (const m of job.media) m.part.dispose();
      if (c.slot) {
        c.slot.busy = false;
        c.slot.lastUsed = ++this.clock;
      }
    }
    job.state = "done";
    const i = this.active.indexOf(job);
    if (i >= 0) this.active.splice(i, 1);
  }

  private reapCancelled(): void {
    for (const job of [...this.active]) if (job.cancelled) this.finishJob(job, "cancelled");
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const job = this.queue[i] as Job;
      if (!job.cancelled) continue;
      this.queue.splice(i, 1);
      this.finishJob(job, "cancelled");
    }
    for (let i = this.embeds.length - 1; i >= 0; i--) {
      const job = this.embeds[i] as EmbedJob;
      if (!job.cancelled) continue;
      this.embeds.splice(i, 1);
      job.done(new DomainError("cancelled", "the embedding request was cancelled"));
    }
  }

  private failDecode(status: number): void {
    const msg =
      status === 1
        ? "the context is full (no free KV cells for this batch)"
        : `llama_decode failed with status ${status}`;
    for (const job of [...this.active]) this.failJob(job, msg);
  }

  /** Reports an error for the job and ends it; its slots forget their cache (their KV is unknown). */
  private failJob(job: Job, message: string, code: ErrorCode = "internal"): void {
    if (!job.failed) job.emit({ type: "error", code, message, param: null });
    job.failed = true;
    for (const c of job.choices) {
      if (c.slot) this.forget(c.slot);
    }
    this.finishJob(job, "stop");
  }

  /**
   * Ends every request with an error (shutdown, or a failure no single request
   * caused): none of them is reported as complete.
   */
  failAll(code: ErrorCode, message: string): void {
    for (const job of this.queue.splice(0)) this.failJob(job, message, code);
    for (const job of [...this.active]) this.failJob(job, message, code);
    for (const job of this.embeds.splice(0)) job.done(new DomainError(code, message));
  }

  dispose(): void {
    this.failAll("engine_unavailable", "the engine is shutting down");
    this.batch.dispose();
  }
}
