// Trainer: owns one llmatic_trainer (a training context over a private model
// loaded without mmap or repacking). One window per step() call; between calls
// the caller reads the metrics, checks for cancel and sets the learning rate.
import { type Pointer, ptr } from "bun:ffi";
import { DomainError } from "../errors";
import { ErrorOut, lib, NativeObject } from "./library";
import type { Model } from "./model";

export interface StepResult {
  /** ggml's mean loss over every position (what it optimised before the weights) */
  ggmlLoss: number;
  /** each position's negative log-likelihood of its label */
  nll: Float32Array;
  /** the model's most likely token at each position */
  pred: Int32Array;
  cancelled: boolean;
}

export class Trainer extends NativeObject {
  readonly window: number;
  readonly trainable: number;
  private readonly nll: Float32Array;
  private readonly pred: Int32Array;
  private readonly loss = new Float64Array(1);

  private constructor(h: Pointer) {
    super(h);
    const l = lib();
    this.window = l.llmatic_trainer_window(h);
    this.trainable = Number(l.llmatic_trainer_n_trainable(h));
    this.nll = new Float32Array(this.window);
    this.pred = new Int32Array(this.window);
  }

  /** `cancel[0]` non-zero aborts the step in progress (it may live in a SharedArrayBuffer). */
  static create(model: Model, window: number, ubatch: number, threads: number, cancel: Int32Array): Trainer {
    const err = new ErrorOut();
    const h = lib().llmatic_trainer_new(model.handle, window, ubatch, threads, ptr(cancel), err.ptr) as Pointer | null;
    if (!h) throw new DomainError("invalid_request", `cannot train this model: ${err.take("unknown error")}`);
    return new Trainer(h);
  }

  protected free(h: Pointer): void {
    lib().llmatic_trainer_free(h);
  }

  /** How often the per-position loss hook ran (0: weights other than 1 had no effect). */
  get hookCalls(): number {
    return Number(lib().llmatic_trainer_hook_calls(this.handle));
  }

  setAdamW(lr: number, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, wd = 0): void {
    lib().llmatic_trainer_set_adamw(this.handle, lr, beta1, beta2, eps, wd);
  }

  step(tokens: Int32Array, labels: Int32Array, weights: Float32Array, train: boolean): StepResult {
    if (tokens.length !== this.window || labels.length !== this.window || weights.length !== this.window) {
      throw new DomainError("internal", `a training window must have ${this.window} positions`);
    }
    const s = lib().llmatic_trainer_step(
      this.handle,
      ptr(tokens),
      ptr(labels),
      ptr(weights),
      train,
      ptr(this.nll),
      ptr(this.pred),
      ptr(this.loss),
    );
    if (s < 0) throw new DomainError("internal", "the training step failed (the loss hook never ran)");
    return { ggmlLoss: this.loss[0] as number, nll: this.nll.slice(), pred: this.pred.slice(), cancelled: s === 1 };
  }

  /** The trained tensors: name and F32 bytes. */
  tensors(): { name: string; bytes: Uint8Array }[] {
    const l = lib();
    const out: { name: string; bytes: Uint8Array }[] = [];
    const n = l.llmatic_trainer_tensor_count(this.handle);
    for (let i = 0; i < n; i++) {
      const name = String(l.llmatic_trainer_tensor_name(this.handle, i));
      const size = -Number(l.llmatic_trainer_tensor_read(this.handle, i, null, 0n));
      const bytes = new Uint8Array(size);
      const got = Number(l.llmatic_trainer_tensor_read(this.handle, i, ptr(bytes), BigInt(size)));
      if (got !== size) throw new DomainError("internal", `reading tensor ${name} failed`);
      out.push({ name, bytes });
    }
    return out;
  }
}

/** llama_model_quantize (ftype 0: all F32, 1: F16, 7: Q8_0), keeping the embedding in `embdType` (-1: ftype's). */
export function quantizeModel(input: string, output: string, ftype: number, embdType: number, threads: number): void {
  const s = lib().llmatic_quantize(Buffer.from(`${input}\0`), Buffer.from(`${output}\0`), ftype, embdType, threads);
  if (s !== 0) throw new DomainError("internal", `converting ${input} failed (status ${s})`);
}
