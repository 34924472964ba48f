// qgemm.cpp: small-batch products of Q8_0 / Q5_0 weights with Q8_0 activations
// on x86 CPUs with AVX512-VNNI (one vpdpbusd per 64 byte pairs).
//
// ggml hands these products to llamafile's tinyBLAS (256-bit AVX2 code) or to its
// per-column dot products; for the few columns of a decode batch both leave most
// of an AVX512-VNNI core unused. This kernel computes C = A * B for such a product:
//   A: m rows of k/32 weight blocks (Q8_0 or Q5_0), row stride lda blocks
//   B: n columns of k/32 Q8_0 blocks (the quantized activations), stride ldb
//   C: n columns of m floats, column stride ldc
// Block formats are GGUF's (ggml-common.h). Unsigned x signed products: each
// weight gets an offset (Q8_0 +128, Q5_0 +16) that the block's column sum takes
// off again, folded into the accumulator's start value.
#include "qgemm.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#    include <immintrin.h>
#    define LLMATIC_QGEMM_X86 1
#endif

namespace {

#pragma pack(push, 1)
struct block_q8 {
    uint16_t d;
    int8_t   qs[32];
};

struct block_q5 {
    uint16_t d;
    uint8_t  qh[4];
    uint8_t  qs[16];
};
#pragma pack(pop)
static_assert(sizeof(block_q8) == 34, "Q8_0 block");
static_assert(sizeof(block_q5) == 22, "Q5_0 block");

constexpr int GGML_TYPE_Q5_0 = 6;
constexpr int GGML_TYPE_Q8_0 = 8;
constexpr int GGML_TYPE_F32  = 0;

}  // namespace

#ifdef LLMATIC_QGEMM_X86

#    define QGEMM_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512dq,f16c,fma")))

namespace {

// B repacked per pair of blocks: 64 activation bytes, the 16 lane scales, and the
// start value that removes the weights' offset (lane 0 and 8 of each half).
// (one record per pair: three separate arrays can sit 4 KiB multiples apart and
// evict each other from L1)
struct alignas(64) pair_b {
    int8_t  q[64];      // 64 activation bytes
    float   scale[16];  // the blocks' scales, 8 lanes each
    int32_t init[16];   // -offset * block sum in lanes 0 and 8
};

struct packed_b {
    int32_t             nbp = 0;  // block pairs
    int32_t             n   = 0;
    std::vector<pair_b> pairs;    // [col][pair]
};

thread_local packed_b tl_b;

QGEMM_TARGET static inline float h2f(uint16_t h) {
    return _cvtsh_ss(h);
}

QGEMM_TARGET static void pack_b(packed_b & p, const block_q8 * B, int64_t ldb, int n, int nb, int offset) {
    p.n   = n;
    p.nbp = (nb + 1) / 2;
    p.pairs.resize((size_t) n * p.nbp);
    for (int c = 0; c < n; c++) {
        const block_q8 * col = B + (int64_t) c * ldb;
        for (int pi = 0; pi < p.nbp; pi++) {
            pair_b & out = p.pairs[(size_t) c * p.nbp + pi];
            std::memset(&out, 0, sizeof(out));
            for (int h = 0; h < 2; h++) {
                const int l = 2 * pi + h;
                if (l >= nb) break;
                std::memcpy(out.q + 32 * h, col[l].qs, 32);
                int32_t sum = 0;
                for (int i = 0; i < 32; i++) sum += col[l].qs[i];
                const float d = h2f(col[l].d);
                for (int i = 0; i < 8; i++) out.scale[8 * h + i] = d;
                out.init[8 * h] = -offset * sum;
            }
        }
    }
}

// one weight block as 32 unsigned bytes (value + offset)
QGEMM_TARGET static inline __m256i unpack(const block_q8 * b) {
    return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *) b->qs), _mm256_set1_epi8((char) 0x80));
}

QGEMM_TARGET static inline __m256i unpack(const block_q5 * b) {
    const __m128i q  = _mm_loadu_si128((const __m128i *) b->qs);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    const __m256i v  = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m4), _mm_and_si128(q, m4));
    uint32_t      qh;
    std::memcpy(&qh, b->qh, 4);
    return _mm256_or_si256(v, _mm256_maskz_mov_epi8((__mmask32) qh, _mm256_set1_epi8(0x10)));
}

template <typename BA> QGEMM_TARGET static inline __m512i unpack_pair(const BA * row, int l, int nb) {
    const __m256i lo = unpack(row + l);
    const __m256i hi = l + 1 < nb ? unpack(row + l + 1) : _mm256_setzero_si256();
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

template <typename BA> QGEMM_TARGET static inline __m512 scale_pair(const BA * row, int l, int nb) {
    const float d0 = h2f(row[l].d);
    const float d1 = l + 1 < nb ? h2f(row[l + 1].d) : 0.0f;
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_set1_ps(d0)), _mm256_set1_ps(d1), 1);
}

// R rows x NC columns of C
template <typename BA, int R, int NC>
QGEMM_TARGET static void tile(const BA * A, int64_t lda, const packed_b & p, int c0, int nb, float * C, int64_t ldc,
                              int64_t r0) {
    __m512 acc[R][NC];
    for (int r = 0; r < R; r++) {
        for (int c = 0; c < NC; c++) acc[r][c] = _mm512_setzero_ps();
    }
    for (int pi = 0; pi < p.nbp; pi++) {
        const int l = 2 * pi;
        __m512i   ua[R];
        __m512    da[R];
        for (int r = 0; r < R; r++) {
            const BA * row = A + (r0 + r) * lda;
            ua[r]          = unpack_pair(row, l, nb);
            da[r]          = scale_pair(row, l, nb);
        }
        for (int c = 0; c < NC; c++) {
            const pair_b & pb = p.pairs[(size_t) (c0 + c) * p.nbp + pi];
            const __m512i  qb = _mm512_load_si512(pb.q);
            const __m512   db = _mm512_load_ps(pb.scale);
            const __m512i  in = _mm512_load_si512(pb.init);
            for (int r = 0; r < R; r++) {
                const __m512i dot = _mm512_dpbusd_epi32(in, ua[r], qb);
                acc[r][c]         = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(da[r], db), acc[r][c]);
            }
        }
    }
    for (int r = 0; r < R; r++) {
        for (int c = 0; c < NC; c++) C[(int64_t) (c0 + c) * ldc + r0 + r] = _mm512_reduce_add_ps(acc[r][c]);
    }
}

template <typename BA, int R>
QGEMM_TARGET static void rows(const BA * A, int64_t lda, const packed_b & p, int nb, float * C, int64_t ldc,
                              int64_t r0) {
    int c0 = 0;
    for (; c0 + 8 <= p.n; c0 += 8) tile<BA, R, 8>(A, lda, p, c0, nb, C, ldc, r0);
    switch (p.n - c0) {
        case 7: tile<BA, R, 7>(A, lda, p, c0, nb, C, ldc, r0); break;
        case 6: tile<BA, R, 6>(A, lda, p, c0, nb, C, ldc, r0); break;
        case 5: tile<BA, R, 5>(A, lda, p, c0, nb, C, ldc, r0); break;
        case 4: tile<BA, R, 4>(A, lda, p, c0, nb, C, ldc, r0); break;
        case 3: tile<BA, R, 3>(A, lda, p, c0, nb, C, ldc, r0); break;
        case 2: tile<BA, R, 2>(A, lda, p, c0, nb, C, ldc, r0); break;
        case 1: tile<BA, R, 1>(A, lda, p, c0, nb, C, ldc, r0); break;
        default: break;
    }
}

template <typename BA>
QGEMM_TARGET static void run(int ith, int nth, int64_t m, const BA * A, int64_t lda, const packed_b & p, int nb,
                             float * C, int64_t ldc) {
    // this thread's share of row pairs
    const int64_t pairs = (m + 1) / 2;
    const int64_t p0    = pairs * ith / nth;
    const int64_t p1    = pairs * (ith + 1) / nth;
    for (int64_t pr = p0; pr < p1; pr++) {
        const int64_t r0 = 2 * pr;
        if (r0 + 1 < m) rows<BA, 2>(A, lda, p, nb, C, ldc, r0);
        else rows<BA, 1>(A, lda, p, nb, C, ldc, r0);
    }
}

}  // namespace

static bool cpu_has_vnni() {
    static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
                           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("f16c") &&
                           __builtin_cpu_supports("fma");
    return ok;
}

bool llmatic_qgemm_supported(void) {
    return cpu_has_vnni();
}

// Compiled for AVX512: only ever entered after the CPU check below (a function
// with this target may use AVX512 registers from its first instruction on).
QGEMM_TARGET static void qgemm_avx512(int ith, int nth, int64_t m, int64_t n, int nb, const void * A, int64_t lda,
                                      const void * B, int64_t ldb, float * C, int64_t ldc, int atype) {
    packed_b & p = tl_b;
    pack_b(p, (const block_q8 *) B, ldb, (int) n, nb, atype == GGML_TYPE_Q8_0 ? 128 : 16);
    if (atype == GGML_TYPE_Q8_0) run(ith, nth, m, (const block_q8 *) A, lda, p, nb, C, ldc);
    else run(ith, nth, m, (const block_q5 *) A, lda, p, nb, C, ldc);
}

bool llmatic_qgemm(int ith, int nth, int64_t m, int64_t n, int64_t k, const void * A, int64_t lda, const void * B,
                   int64_t ldb, void * C, int64_t ldc, int atype, int btype, int ctype) {
    if (!cpu_has_vnni() || btype != GGML_TYPE_Q8_0 || ctype != GGML_TYPE_F32) return false;
    if (atype != GGML_TYPE_Q8_0 && atype != GGML_TYPE_Q5_0) return false;
    if (n < 1 || k <= 0 || m <= 0) return false;
    // ggml passes k in blocks
    qgemm_avx512(ith, nth, m, n, (int) k, A, lda, B, ldb, (float *) C, ldc, atype);
    return true;
}

#else

bool llmatic_qgemm_supported(void) {
    return false;
}

bool llmatic_qgemm(int, int, int64_t, int64_t, int64_t, const void *, int64_t, const void *, int64_t, void *, int64_t,
                   int, int, int) {
    return false;
}

#endif
