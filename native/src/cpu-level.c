// cpu-level.c: which x86-64 micro-architecture level this CPU (and its OS)
// runs, for the portable executable's choice of libllmatic-x86-64-vN.so. Built
// for plain x86-64 (no -march), so it loads anywhere; libgcc's CPU model reads
// CPUID and checks that the OS saves the AVX/AVX512 registers.
#include <stdint.h>

int32_t llmatic_cpu_level(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4") && __builtin_cpu_supports("avx512vnni")) return 4;
    if (__builtin_cpu_supports("x86-64-v3")) return 3;
    if (__builtin_cpu_supports("x86-64-v2")) return 2;
    return 1;
#else
    return 0;
#endif
}
