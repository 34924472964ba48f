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

// C (n columns of m floats, stride ldc) = A (m rows of k blocks, stride lda) x
// B (n columns of k Q8_0 blocks, stride ldb), rows split over nth threads; this
// call computes thread ith's share. Returns false (and does nothing) for types
// or CPUs it does not handle: the caller then computes the product itself.
bool llmatic_qgemm(int ith, int nth, int64_t m, int64_t n, int64_t k, const void * A, int64_t lda, const void * B,
                   int64_t ldb, void * C, int64_t ldc, int atype, int btype, int ctype);

#ifdef __cplusplus
}
#endif
