// Batch: owns a native token batch whose arrays JS fills in place (no copies),
// one sequence id per token. Context.decode submits the first `length` entries.
import { type Pointer, toArrayBuffer } from "bun:ffi";
import { lib, NativeObject } from "./library";

export class Batch extends NativeObject {
  readonly capacity: number;
  tokens: Int32Array;
  pos: Int32Array;
  seq: Int32Array;
  logits: Int8Array;
  length = 0;

  constructor(capacity: number) {
    const l = lib();
    const h = l.llmatic_batch_new(capacity) as Pointer | null;
    if (!h) throw new Error(`could not allocate a batch of ${capacity} tokens`);
    super(h);
    this.capacity = capacity;
    // views over native memory owned by this batch; valid until dispose()
    this.tokens = new Int32Array(toArrayBuffer(l.llmatic_batch_tokens(h) as Pointer, 0, capacity * 4));
    this.pos = new Int32Array(toArrayBuffer(l.llmatic_batch_pos(h) as Pointer, 0, capacity * 4));
    this.seq = new Int32Array(toArrayBuffer(l.llmatic_batch_seq(h) as Pointer, 0, capacity * 4));
    this.logits = new Int8Array(toArrayBuffer(l.llmatic_batch_logits(h) as Pointer, 0, capacity));
  }

  get room(): number {
    return this.capacity - this.length;
  }

  clear(): void {
    this.length = 0;
  }

  /** Appends one token; returns its index in the batch (the output index when `output`). */
  add(token: number, pos: number, seq: number, output: boolean): number {
    const i = this.length;
    if (i >= this.capacity) throw new Error("batch is full");
    this.tokens[i] = token;
    this.pos[i] = pos;
    this.seq[i] = seq;
    this.logits[i] = output ? 1 : 0;
    this.length = i + 1;
    return i;
  }

  protected free(h: Pointer): void {
    const empty = new ArrayBuffer(0);
    this.tokens = new Int32Array(empty);
    this.pos = new Int32Array(empty);
    this.seq = new Int32Array(empty);
    this.logits = new Int8Array(empty);
    this.length = 0;
    lib().llmatic_batch_free(h);
  }
}
