// llmatic's small-batch kernels for K-quant weights (native/src/qgemm_k.cpp):
// every variant this CPU can run, against ggml's own dequantization of the
// same weights times the activations.
import { ptr } from "bun:ffi";
import { describe, expect, test } from "bun:test";

import { chooseKernels } from "../src/engine/kernels";
import { Batch } from "../src/ffi/batch";
import { Context } from "../src/ffi/context";
import { lib } from "../src/ffi/library";
import { Model } from "../src/ffi/model";
import { toHalf } from "../src/gguf/synth";
import { ensureTinyKQuantModel, TINY_MODEL_PATH } from "../src/models/synthetic";
import { cpuFlags } from "./helpers";

const Q4_K = 12;
const Q6_K = 14;
const Q8_K = 15;
const QK = 256;
const SIZE: Record<number, number> = { [Q4_K]: 144, [Q6_K]: 210 };
const Q8K_SIZE = 292;
const VARIANTS = { avx2: 1, "avx512-vnni": 2, "avx-vnni": 4, amx: 8 } as const;
/** the CPU flags (Linux) each variant needs: a CPU with them must run it */
const NEEDS: Record<keyof typeof VARIANTS, string[]> = {
  avx2: ["avx2", "fma", "f16c"],
  "avx512-vnni": ["avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512dq"],
  "avx-vnni": ["avx2", "fma", "f16c", "avx_vnni"],
  // (and Linux's permission to use its registers, which it gives from 5.16 on)
  amx: ["avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512dq", "amx_tile", "amx_int8"],
};

let seed = 11;
const rnd = () => {
  seed = (seed * 1103515245 + 12345) >>> 0;
  return seed >>> 8;
};

/** `count` random weight blocks with sane scales (random bytes elsewhere) */
function weights(type: number, count: number): Uint8Array {
  const size = SIZE[type] as number;
  const buf = new Uint8Array(count * size);
  const dv = new DataView(buf.buffer);
  for (let i = 0; i < buf.length; i++) buf[i] = rnd() & 255;
  for (let b = 0; b < count; b++) {
    const at = b * size;
    if (type === Q4_K) {
      dv.setUint16(at, toHalf(0.001 + (rnd() % 100) / 10000), true); // d
      dv.setUint16(at + 2, toHalf((rnd() % 100) / 10000), true); // dmin
    } else {
      dv.setUint16(at + 208, toHalf(0.001 + (rnd() % 100) / 10000), true); // d (scales are int8, any byte)
    }
  }
  return buf;
}

/** `count` Q8_K activation blocks: f32 scale, 256 int8 (full range, -128 too), 16 sums of 16 */
function activations(count: number): { bytes: Uint8Array; values: Float64Array } {
  const bytes = new Uint8Array(count * Q8K_SIZE);
  const dv = new DataView(bytes.buffer);
  const values = new Float64Array(count * QK);
  for (let b = 0; b < count; b++) {
    const at = b * Q8K_SIZE;
    const d = 0.001 + (rnd() % 1000) / 100000;
    dv.setFloat32(at, d, true);
    const dq = dv.getFloat32(at, true);
    for (let s = 0; s < 16; s++) {
      let sum = 0;
      for (let i = 0; i < 16; i++) {
        const q = (rnd() % 256) - 128;
        dv.setInt8(at + 4 + s * 16 + i, q);
        values[b * QK + s * 16 + i] = q * dq;
        sum += q;
      }
      dv.setInt16(at + 4 + QK + 2 * s, sum, true);
    }
  }
  return { bytes, values };
}

function dequantize(type: number, A: Uint8Array, blocks: number): Float32Array {
  const out = new Float32Array(blocks * QK);
  expect(lib().llmatic_dequantize(type, ptr(A), ptr(out), blocks * QK)).toBe(true);
  return out;
}

/** C = A x B by the kernel, over nth threads */
function product(type: number, A: Uint8Array, B: Uint8Array, m: number, n: number, nb: number, nth: number) {
  const C = new Float32Array(m * n).fill(Number.NaN);
  for (let ith = 0; ith < nth; ith++) {
    const ok = lib().llmatic_qgemm_k(ith, nth, m, n, nb, ptr(A), nb, ptr(B), nb, ptr(C), m, type, Q8_K, 0);
    expect(ok).toBe(true);
  }
  return C;
}

/** runs the kernel over nth threads and checks every entry of C */
function check(type: number, m: number, n: number, nb: number, nth: number): void {
  const A = weights(type, m * nb);
  const B = activations(n * nb);
  const ref = dequantize(type, A, m * nb);
  const C = product(type, A, B.bytes, m, n, nb, nth);
  let worst = 0;
  for (let r = 0; r < m; r++) {
    for (let c = 0; c < n; c++) {
      let want = 0;
      let scale = 0;
      for (let i = 0; i < nb * QK; i++) {
        const p = (ref[r * nb * QK + i] as number) * (B.values[c * nb * QK + i] as number);
        want += p;
        scale += Math.abs(p);
      }
      const got = C[c * m + r] as number;
      worst = Math.max(worst, Math.abs(got - want) / Math.max(scale, 1e-30));
    }
  }
  // integer sums are exact; what is left is float rounding of the partial sums
  expect(worst).toBeLessThan(1e-5);
}

describe("K-quant small-batch kernels", () => {
  const have = lib().llmatic_qgemm_k_variants();

  for (const [name, bit] of Object.entries(VARIANTS)) {
    const runs = (have & bit) !== 0;
    test(`${name}: ${runs ? "Q4_K and Q6_K products equal the dequantized weights times the activations" : "this CPU does not run it, and forcing it is refused"}`, () => {
      const l = lib();
      // a variant is also left out when it disagrees with the AVX2 one at start (agrees_with_avx2):
      // on a CPU that has its instructions, that is a bug, not a missing feature
      if (cpuFlags.size > 1 && NEEDS[name as keyof typeof VARIANTS].every((f) => cpuFlags.has(f)))
        expect(runs).toBe(true);
      if (!runs) {
        expect(l.llmatic_qgemm_k_force(bit)).toBe(-1);
        return;
      }
      const before = l.llmatic_qgemm_k_force(bit);
      try {
        for (const type of [Q4_K, Q6_K]) {
          // odd rows over 3 threads, every column tile (1..4 and a remainder), 1 and 3 blocks per row
          // (40: a prompt's product, in chunks of 32 columns; 17 and 40: AMX's second column tile)
          for (const n of [1, 2, 3, 4, 5, 7, 8, 16, 17, 40]) check(type, 37, n, 3, 3);
          check(type, 8, 4, 1, 1);
        }
      } finally {
        l.llmatic_qgemm_k_force(before);
      }
    });
  }

  const both = VARIANTS.avx2 | VARIANTS["avx-vnni"];
  test(`avx-vnni: ${(have & both) === both ? "the same floats as AVX2, bit for bit" : "this CPU does not run both AVX2 and AVX-VNNI"}`, () => {
    const l = lib();
    if ((have & both) !== both) return;
    const before = l.llmatic_qgemm_k_force(0);
    try {
      for (const type of [Q4_K, Q6_K]) {
        for (const n of [1, 3, 8, 13, 40]) {
          const A = weights(type, 21 * 4);
          const B = activations(n * 4).bytes;
          l.llmatic_qgemm_k_force(VARIANTS.avx2);
          const want = product(type, A, B, 21, n, 4, 2);
          l.llmatic_qgemm_k_force(VARIANTS["avx-vnni"]);
          // the same integer sums, added in the same order
          expect(product(type, A, B, 21, n, 4, 2)).toEqual(want);
        }
      }
    } finally {
      l.llmatic_qgemm_k_force(before);
    }
  });

  test("other types and shapes are handed back to ggml", () => {
    const l = lib();
    const A = weights(Q4_K, 4);
    const B = activations(4);
    const C = new Float32Array(16);
    const call = (atype: number, btype: number, ctype: number, n = 2) =>
      l.llmatic_qgemm_k(0, 1, 2, n, 2, ptr(A), 2, ptr(B.bytes), 2, ptr(C), 2, atype, btype, ctype);
    expect(call(8, Q8_K, 0)).toBe(false); // Q8_0 weights
    expect(call(Q4_K, 8, 0)).toBe(false); // Q8_0 activations
    expect(call(Q4_K, Q8_K, 1)).toBe(false); // F16 output
    expect(call(Q4_K, Q8_K, 0, 0)).toBe(false); // no columns
    expect(call(Q4_K, Q8_K, 0)).toBe(have !== 0);
  });
});

describe("K-quant kernels in a model's decode", () => {
  test("a Q4_K_M model loads without repacking, decodes of 1, 3 and 8 sequences go through the kernels, and the logits match ggml's", async () => {
    const path = await ensureTinyKQuantModel();
    const l = lib();
    const have = l.llmatic_qgemm_k_variants();
    const choice = chooseKernels(path, true, 16);
    expect(choice.repack).toBe(have === 0);
    expect(chooseKernels(path, true, 0).repack).toBe(true); // kernels off: ggml repacks as usual
    expect(chooseKernels(path, false, 16).repack).toBe(false); // --deterministic
    expect(chooseKernels(TINY_MODEL_PATH, true, 16).repack).toBe(true); // no Q4_K weights

    const model = Model.load(path, { repack: false });
    const ctx = new Context(model, { nCtx: 1024, nThreads: 2, nSeqMax: 8 });
    const batch = new Batch(64);
    const before = l.llmatic_set_qgemm_max_batch(16);
    /** 8 sequences of 5 prompt tokens, then one step of n of them; the logprobs of 6 fixed tokens */
    const step = (n: number): { calls: number; lps: number[] } => {
      ctx.clearMemory();
      batch.clear();
      for (let s = 0; s < 8; s++) for (let p = 0; p < 5; p++) batch.add(1000 + 37 * s + p, p, s, false);
      expect(ctx.decode(batch)).toBe(0);
      batch.clear();
      for (let s = 0; s < n; s++) batch.add(500 + s, 5, s, true);
      const c0 = l.llmatic_qgemm_calls();
      expect(ctx.decode(batch)).toBe(0);
      const calls = l.llmatic_qgemm_calls() - c0;
      const lps: number[] = [];
      for (let s = 0; s < n; s++)
        for (const t of [0, 13, 220, 1000, 5000, 70000]) lps.push(ctx.logprobs(s, t, 0).logprob);
      return { calls, lps };
    };
    // every variant this CPU runs (none: the kernels decline and ggml computes)
    const variants = Object.values(VARIANTS).filter((bit) => (have & bit) !== 0);
    const forced = l.llmatic_qgemm_k_force(0);
    try {
      for (const variant of variants.length ? variants : [0]) {
        l.llmatic_qgemm_k_force(variant);
        for (const n of [1, 3, 8]) {
          const on = step(n);
          l.llmatic_set_qgemm_max_batch(0);
          const off = step(n);
          l.llmatic_set_qgemm_max_batch(16);
          expect(off.calls).toBe(0);
          // every matrix of the model is Q4_K or Q6_K: each product of the step is one kernel
          // call, one token's (one column) too
          if (have !== 0) expect(on.calls).toBeGreaterThanOrEqual(2 * 7 + 1);
          else expect(on.calls).toBe(0);
          // Activations are quantized to 8 bits again before each product: a last-bit
          // difference in a float sum (the AVX512 variant adds in another order than
          // ggml) can move a value across a rounding step and a sequence's logprobs by
          // about 5e-3 (seen on a Zen 4); a wrong kernel (the Q4_K min term's sign
          // flipped) moves them by 0.8 to 1.2
          for (let i = 0; i < on.lps.length; i++)
            expect(Math.abs((on.lps[i] as number) - (off.lps[i] as number))).toBeLessThan(2e-2);
        }
      }
    } finally {
      l.llmatic_qgemm_k_force(forced);
      l.llmatic_set_qgemm_max_batch(before);
      batch.dispose();
      ctx.dispose();
      model.dispose();
    }
  }, 120_000);
});
