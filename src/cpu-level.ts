// The portable executable's choice of native library: libllmatic-cpu.so (built
// for plain x86-64) reads CPUID and says which x86-64 level this CPU runs; the
// executable then loads the library whose ggml CPU code was built for that
// level (native/CMakeLists.txt). Reading /proc/cpuinfo instead would be wrong
// under an emulator, which reports the host's flags, not the emulated CPU's.
import { dlopen, FFIType } from "bun:ffi";

export const LEVELS = ["x86-64-v2", "x86-64-v3", "x86-64-v4"] as const;
export type Level = (typeof LEVELS)[number];

/** what a level needs, for the message when a CPU runs none */
const NEEDS: Record<Level, string> = {
  "x86-64-v2": "SSE4.2 and POPCNT (2009 and later)",
  "x86-64-v3": "AVX2, FMA, F16C, BMI2 (Haswell, Zen and later)",
  "x86-64-v4": "AVX512 F/BW/DQ/VL and AVX512-VNNI (Cascade Lake, Ice Lake, Zen 4 and later)",
};

/** the x86-64 level the probe library reports for this CPU: 0 (not x86-64), 1 (below v2), 2, 3 or 4 */
export function probeLevel(probePath: string): number {
  const lib = dlopen(probePath, { llmatic_cpu_level: { args: [], returns: FFIType.i32 } });
  try {
    return lib.symbols.llmatic_cpu_level();
  } finally {
    lib.close();
  }
}

/**
 * The level to load: the best the CPU runs, or `forced` (LLMATIC_CPU_LEVEL)
 * when the CPU runs that one too. Throws with what the CPU lacks.
 */
export function chooseLevel(cpu: number, forced?: string): Level {
  const best = cpu >= 4 ? "x86-64-v4" : cpu === 3 ? "x86-64-v3" : cpu === 2 ? "x86-64-v2" : null;
  if (!best) {
    throw new Error(
      cpu === 0
        ? "this executable is for x86-64 CPUs"
        : `this CPU lacks what the oldest build needs: ${NEEDS["x86-64-v2"]}`,
    );
  }
  if (!forced) return best;
  const i = LEVELS.indexOf(forced as Level);
  if (i < 0) throw new Error(`LLMATIC_CPU_LEVEL must be one of ${LEVELS.join(", ")} (got "${forced}")`);
  if (i > LEVELS.indexOf(best)) {
    throw new Error(`LLMATIC_CPU_LEVEL=${forced} needs ${NEEDS[forced as Level]}; this CPU runs up to ${best}`);
  }
  return forced as Level;
}
