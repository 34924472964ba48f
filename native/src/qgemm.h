// qgemm.h: llmatic's own kernel for small-batch products of Q8_0 / Q5_0 weights
// (see qgemm.cpp). Called from the llamafile_sgemm wrapper in shim.c.
#pragma once

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// true when this CPU runs the kernel (x86-64 with AVX512-VNNI)
bool llmatic_qgemm_supported(void);

// Variants, as bits (the same values as LLMATIC_QGEMM_K_*):
#define LLMATIC_QGEMM_AVX512_VNNI 2
#define LLMATIC_QGEMM_AMX         8
// the variants this CPU runs (0: none, the caller computes every product); each
// product takes AMX wherever it runs, else AVX512-VNNI
int llmatic_qgemm_variants(void);
// use only this variant (0: the usual choice); returns the one set before, or -1
// (and changes nothing) for a variant this CPU does not run. For tests.
int llmatic_qgemm_force(int variant);

// C (n columns of m floats, stride ldc) = A (m rows of k blocks, stride lda) x
// B (n columns of k Q8_0 blocks, stride ldb), rows split over nth threads; this
// call computes thread ith's share. Returns false (and does nothing) for types
// or CPUs it does not handle: the caller then computes the product itself.
bool llmatic_qgemm(int ith, int nth, int64_t m, int64_t n, int64_t k, const void * A, int64_t lda, const void * B,
                   int64_t ldb, void * C, int64_t ldc, int atype, int btype, int ctype);

// K-quant weights (Q4_K, Q6_K) x Q8_K activations, the same contract as
// llmatic_qgemm (see qgemm_k.cpp). Variants, as bits:
#define LLMATIC_QGEMM_K_AVX2        1
#define LLMATIC_QGEMM_K_AVX512_VNNI 2
#define LLMATIC_QGEMM_K_AVX_VNNI    4
#define LLMATIC_QGEMM_K_AMX         8
// the variants this CPU runs
int  llmatic_qgemm_k_variants(void);
// the variant used for a product of n columns: up to 7, AVX512 where it runs,
// else AVX-VNNI where it runs, else AVX2; 8 or more, AMX where it runs; past
// 16, where AVX512 runs and AMX does not, AVX512 only if it timed 5% faster
// than the 256-bit one on this CPU at first use
int  llmatic_qgemm_k_chosen(int n);
// use only this variant (0: the best the CPU runs); returns the one set before,
// or -1 (and changes nothing) for a variant this CPU does not run. For tests.
int  llmatic_qgemm_k_force(int variant);
bool llmatic_qgemm_k(int ith, int nth, int64_t m, int64_t n, int64_t k, const void * A, int64_t lda, const void * B,
                     int64_t ldb, void * C, int64_t ldc, int atype, int btype, int ctype);

#ifdef __cplusplus
}
#endif
