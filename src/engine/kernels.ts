// Which CPU kernels a model's matrices get: ggml's repacked layouts or
// llmatic's K-quant small-batch kernels (native/src/qgemm_k.cpp).
//
// ggml repacks Q4_K weights (and Q4_0, IQ4_NL) into 8-row interleaved blocks on
// AVX2 CPUs, and on AMX CPUs (built with native flags) its AMX buffers take
// Q4_K/Q6_K/Q8_0 weights before that; weights in either never reach the
// matrix-product seam where llmatic's kernels sit. For a file whose repackable
// bytes are mostly Q4_K (a Q4_K_M file), llmatic's kernels measured faster for
// decode batches and as fast for one token and prompts (bench:engine and
// bench:http on the 1B bench model: on a Zen 3, and on an AMX Xeon against
// ggml's AMX kernels; on a Zen 5 EPYC, with prompts in chunks of 8 columns; on
// a Zen 4 ggml's repacked ones prefill faster), so such a model loads without
// repacking where the CPU runs them.
import { lib } from "../ffi/library";
import { GgmlType, readGguf, tensorBytes } from "../gguf/gguf";

/** types ggml-cpu repacks on x86 (repack.cpp's ggml_repack_get_optimal_repack_type) */
const REPACKED_ELSEWHERE = new Set<number>([GgmlType.Q4_0, GgmlType.IQ4_NL, GgmlType.Q2_K]);

/** llmatic_qgemm_k's variant bits (native/src/qgemm.h) */
const VARIANT_NAMES: Record<number, string> = { 1: "AVX2", 2: "AVX512-VNNI", 4: "AVX-VNNI", 8: "AMX" };

export interface KernelChoice {
  /** load with ggml's weight repacking */
  repack: boolean;
  /** why, for the log */
  reason: string;
}

/**
 * repack: what the configuration asks (false: batch-invariant numerics);
 * qgemmMaxBatch: 0 turns llmatic's kernels off.
 */
export function chooseKernels(modelPath: string, repack: boolean, qgemmMaxBatch: number | undefined): KernelChoice {
  if (!repack) return { repack: false, reason: "repacking is off" };
  if (qgemmMaxBatch === 0) return { repack: true, reason: "llmatic's kernels are off (--qgemm-max-batch 0)" };
  if (lib().llmatic_qgemm_k_variants() === 0) return { repack: true, reason: "this CPU has no AVX2" };
  let q4k = 0;
  let other = 0;
  try {
    for (const t of readGguf(modelPath).tensors) {
      const bytes = tensorBytes(t.type, t.dims) ?? 0;
      if (t.type === GgmlType.Q4_K) q4k += bytes;
      else if (REPACKED_ELSEWHERE.has(t.type)) other += bytes;
    }
  } catch {
    return { repack: true, reason: "the file's tensor table could not be read here" };
  }
  if (q4k > other) {
    const name = (v: number) => VARIANT_NAMES[v] ?? "none";
    const [one, batch, prompt] = [1, 2, 17].map((n) => name(lib().llmatic_qgemm_k_chosen(n)));
    return {
      repack: false,
      reason: `Q4_K weights use llmatic's small-batch kernels instead of ggml's repacked ones (${one} for one token, ${batch} for 2 to 16, ${prompt} beyond: the faster here)`,
    };
  }
  return { repack: true, reason: q4k > 0 ? "most repackable weights are not Q4_K" : "no Q4_K weights" };
}
