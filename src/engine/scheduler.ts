// The decode loop. One Scheduler owns one context; every step it puts one token
// of every generating sequence plus a chunk of pending prompts into ONE batch,
// decodes it, samples each sequence, and reports text. Runs inside the engine
// worker (never on the HTTP thread).
import { EngineError } from "../errors";
import { Batch } from "../ffi/batch";
import type { ChatTemplates } from "../ffi/chat";
import type { Context } from "../ffi/context";
import type { Model } from "../ffi/model";
import { Sampler } from "../ffi/sampler";
import { TextAssembler } from "./text";
import type { EngineStats, FinishReason, GenerateEvent, GenerateRequest } from "./types";

interface Slot {
  seq: number;
  /** tokens whose KV this sequence holds, in position order */
  tokens: number[];
  busy: boolean;
  lastUsed: number;
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
  done: boolean;
}

export interface Job {
  id: number;
  req: GenerateRequest;
  cancel: Int32Array;
  prompt: Int32Array;
  choices: Choice[];
  /** next prompt index to decode into the primary slot */
  prefillPos: number;
  /** batch index of the prompt's last token once it is in the batch */
  promptOutIdx: number;
  state: "queued" | "prefill" | "generate" | "done";
  /** the chat template's output, reported in the start event */
  promptText: string | null;
  /** an error event was sent: no end events follow it */
  failed: boolean;
  emit: (e: GenerateEvent) => void;
}

export interface SchedulerOptions {
  nBatch: number;
  /** requests that may wait for a free slot; beyond it submit() refuses */
  queueSize?: number;
  /** tokens of context each slot may use */
  nCtxSlot: number;
  /** prompt tokens decoded per step while other sequences are generating */
  prefillChunk?: number;
}

function commonPrefix(a: readonly number[], b: Int32Array): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

export class Scheduler {
  private readonly slots: Slot[];
  private readonly batch: Batch;
  private readonly queue: Job[] = [];
  private readonly active: Job[] = [];
  private readonly eog: Set<number>;
  private clock = 0;

  constructor(
    private readonly model: Model,
    private readonly ctx: Context,
    private readonly templates: ChatTemplates | null,
    private readonly opts: SchedulerOptions,
  ) {
    this.slots = Array.from({ length: ctx.nSeqMax }, (_, seq) => ({ seq, tokens: [], busy: false, lastUsed: 0 }));
    this.batch = new Batch(opts.nBatch);
    this.eog = new Set(model.eogTokens());
  }

  get hasWork(): boolean {
    return this.active.length > 0 || this.queue.length > 0;
  }

  stats(): EngineStats {
    return {
      slotsBusy: this.slots.filter((s) => s.busy).length,
      slotsTotal: this.slots.length,
      queued: this.queue.length,
    };
  }

  /** Tokenizes and validates a request; errors here reach the client before any output. */
  submit(id: number, req: GenerateRequest, cancel: Int32Array, emit: (e: GenerateEvent) => void): void {
    if (req.n < 1 || req.n > this.slots.length) {
      throw new EngineError(
        "invalid_request",
        `n=${req.n} needs ${req.n} parallel sequences but this model has ${this.slots.length} (start the server with a larger --parallel)`,
        "n",
      );
    }
    const queueSize = this.opts.queueSize ?? Number.POSITIVE_INFINITY;
    if (this.queue.length >= queueSize) {
      const free = this.slots.filter((s) => !s.busy).length;
      const demand = this.queue.reduce((a, j) => a + j.choices.length, 0) + req.n;
      if (demand > free) {
        throw new EngineError(
          "queue_full",
          `all ${this.slots.length} slots are busy and ${this.queue.length} requests are already waiting (--queue ${queueSize}); retry shortly`,
        );
      }
    }
    let promptText: string | null = null;
    let prompt: Int32Array;
    const p = req.prompt;
    if (p.type === "tokens") {
      for (const t of p.tokens) {
        if (!Number.isInteger(t) || t < 0 || t >= this.model.nVocab) {
          throw new EngineError(
            "invalid_request",
            `token id ${t} is out of range (vocabulary has ${this.model.nVocab})`,
            "prompt",
          );
        }
      }
      prompt = Int32Array.from(p.tokens);
    } else if (p.type === "text") {
      prompt = this.model.tokenize(p.text, p.addSpecial ?? true, p.parseSpecial ?? true);
    } else if (p.type === "infill") {
      const fim = this.model.fimTokens();
      if (!fim) {
        throw new EngineError(
          "invalid_request",
          "this model has no fill-in-the-middle tokens, so suffix cannot be used with it",
          "suffix",
        );
      }
      const [pre, suf, mid] = fim;
      prompt = Int32Array.from([
        pre,
        ...this.model.tokenize(p.prefix, false, false),
        suf,
        ...this.model.tokenize(p.suffix, false, false),
        mid,
      ]);
    } else {
      if (!this.templates) throw new EngineError("invalid_request", "this model has no chat template", "messages");
      promptText = this.templates.apply(p.chat).prompt;
      prompt = this.model.tokenize(promptText, true, true);
    }
    if (prompt.length === 0) {
      // nothing to condition on: start from BOS like llama.cpp does
      prompt = Int32Array.of(this.model.startToken);
    }
    if (prompt.length >= this.opts.nCtxSlot) {
      throw new EngineError(
        "context_length_exceeded",
        `the prompt has ${prompt.length} tokens but the context window is ${this.opts.nCtxSlot} tokens (it must leave room for at least one generated token)`,
        p.type === "chat" ? "messages" : "prompt",
      );
    }
    const samplers: Sampler[] = [];
    try {
      for (let i = 0; i < req.n; i++) {
        const sampling = {
          ...req.sampling,
          // choices of one request must differ: each gets its own seed
          seed: (req.sampling.seed + i) >>> 0,
          logitBias: req.ignoreEos
            ? [...req.sampling.logitBias, ...[...this.eog].map((t): [number, number] => [t, -Infinity])]
            : req.sampling.logitBias,
        };
        const s = Sampler.create(this.model, sampling);
        s.acceptPrompt(prompt);
        samplers.push(s);
      }
    } catch (e) {
      for (const s of samplers) s.dispose();
      throw e;
    }
    const job: Job = {
      id,
      req,
      cancel,
      prompt,
      choices: samplers.map((sampler, index) => ({
        index,
        // slots are chosen at admission
        slot: undefined as unknown as Slot,
        sampler,
        text: new TextAssembler(req.stop),
        generated: 0,
        pending: -1,
        outIdx: -1,
        done: false,
      })),
      prefillPos: 0,
      promptOutIdx: -1,
      state: "queued",
      promptText,
      failed: false,
      emit,
    };
    this.queue.push(job);
  }

  /** Moves queued jobs into free slots, reusing the slot whose KV shares the longest prefix. */
  private admit(): void {
    while (this.queue.length > 0) {
      const job = this.queue[0] as Job;
      if (job.cancel[0] !== 0) {
        this.queue.shift();
        this.finishJob(job, "cancelled");
        continue;
      }
      const free = this.slots.filter((s) => !s.busy);
      if (free.length < job.choices.length) return;
      this.queue.shift();
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
      // keep at least one prompt token to decode: its logits start generation
      const keep = Math.min(best, job.prompt.length - 1);
      this.ctx.seqRemove(primary.seq, keep, -1);
      primary.tokens.length = keep;
      job.prefillPos = keep;
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

  /** One decode step. Returns false when there was nothing to do. */
  step(): boolean {
    this.reapCancelled();
    this.admit();
    if (this.active.length === 0) return false;

    const batch = this.batch;
    batch.clear();
    // 1. one token for every generating sequence
    for (const job of this.active) {
      if (job.state !== "generate") continue;
      for (const c of job.choices) {
        if (c.done) continue;
        c.outIdx = batch.add(c.pending, c.slot.tokens.length, c.slot.seq, true);
        c.slot.tokens.push(c.pending);
      }
    }
    // 2. prompt chunks with what is left of the batch; while others are generating,
    //    at most prefillChunk prompt tokens per step, so their streams keep flowing
    let budget = batch.room;
    if (batch.length > 0 && this.opts.prefillChunk) budget = Math.min(budget, this.opts.prefillChunk);
    for (const job of this.active) {
      if (job.state !== "prefill") continue;
      if (budget <= 0) break;
      const slot = (job.choices[0] as Choice).slot;
      const end = Math.min(job.prompt.length, job.prefillPos + budget);
      for (let i = job.prefillPos; i < end; i++) {
        const t = job.prompt[i] as number;
        const idx = batch.add(t, slot.tokens.length, slot.seq, i === job.prompt.length - 1);
        slot.tokens.push(t);
        if (i === job.prompt.length - 1) job.promptOutIdx = idx;
      }
      budget -= end - job.prefillPos;
      job.prefillPos = end;
    }

    const status = this.ctx.decode(batch);
    if (status !== 0) {
      this.failDecode(status);
      return true;
    }

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
        }
        for (const c of job.choices) c.outIdx = job.promptOutIdx;
        job.state = "generate";
        // max_tokens 0: the prompt is processed (echo), nothing is generated
        if (job.req.maxTokens === 0) for (const c of job.choices) this.endChoice(job, c, "length");
      }
      for (const c of job.choices) {
        if (c.done || c.outIdx < 0) continue;
        this.sampleChoice(job, c);
      }
      if (job.choices.every((c) => c.done)) this.finishJob(job, null);
    }
    return true;
  }

  private sampleChoice(job: Job, c: Choice): void {
    const token = c.sampler.sample(this.ctx, c.outIdx);
    c.outIdx = -1;
    if (token < 0) {
      this.failJob(job, "sampling failed");
      return;
    }
    c.generated++;
    if (!job.req.ignoreEos && this.eog.has(token)) {
      this.endChoice(job, c, "stop");
      return;
    }
    const { text, stop } = c.text.push(this.model.piece(token));
    if (text) job.emit({ type: "text", choice: c.index, text, tokens: c.generated });
    // the next step would decode this token at position tokens.length: it must fit the slot
    const full = c.slot.tokens.length + 1 >= this.opts.nCtxSlot;
    if (stop) this.endChoice(job, c, "stop");
    else if ((job.req.maxTokens !== null && c.generated >= job.req.maxTokens) || full) this.endChoice(job, c, "length");
    else c.pending = token;
  }

  private endChoice(job: Job, c: Choice, reason: FinishReason): void {
    if (c.done) return;
    c.done = true;
    if (job.failed) return;
    const rest = reason === "cancelled" ? "" : c.text.flush();
    if (rest) job.emit({ type: "text", choice: c.index, text: rest, tokens: c.generated });
    job.emit({ type: "end", choice: c.index, reason, completionTokens: c.generated, text: c.text.text });
  }

  /** Ends a job: every open choice gets `reason` (null: they all ended on their own). */
  private finishJob(job: Job, reason: FinishReason | null): void {
    for (const c of job.choices) {
      if (!c.done) this.endChoice(job, c, reason ?? "stop");
      c.sampler.dispose();
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
    for (const job of [...this.active]) if (job.cancel[0] !== 0) this.finishJob(job, "cancelled");
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const job = this.queue[i] as Job;
      if (job.cancel[0] === 0) continue;
      this.queue.splice(i, 1);
      this.finishJob(job, "cancelled");
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
  private failJob(job: Job, message: string): void {
    if (!job.failed) job.emit({ type: "error", code: "internal", message, param: null });
    job.failed = true;
    for (const c of job.choices) {
      if (!c.slot) continue;
      this.ctx.seqRemove(c.slot.seq, -1, -1);
      c.slot.tokens = [];
    }
    this.finishJob(job, "stop");
  }

  /** Cancels everything (shutdown). */
  cancelAll(): void {
    for (const job of [...this.queue]) this.finishJob(job, "cancelled");
    this.queue.length = 0;
    for (const job of [...this.active]) this.finishJob(job, "cancelled");
  }

  dispose(): void {
    this.cancelAll();
    this.batch.dispose();
  }
}
