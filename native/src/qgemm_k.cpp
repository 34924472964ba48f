// qgemm_k.cpp: small-batch products of K-quant weights (Q4_K, Q6_K) with Q8_K
// activations, the bulk of a Q4_K_M file's matrices.
//
// ggml computes such a product one weight row by one activation column at a time
// (vec_dot_q4_K_q8_K, or the repacked 8-row kernels), so a decode step of n
// tokens unpacks every weight block n times: for n = 2..16 the products are
// compute-bound long before the weights' bytes are. These kernels unpack a weight
// block (nibbles, 6-bit scales and mins) once and multiply it with every column
// of the batch while it is in registers:
//   A: m rows of k Q4_K / Q6_K blocks (256 weights each), row stride lda blocks
//   B: n columns of k Q8_K blocks (ggml's quantized activations), stride ldb
//   C: n columns of m floats, column stride ldc
// Block formats are GGUF's (ggml-common.h); the static_asserts pin their sizes.
// Integer sums are exact, so a result differs from ggml's only in the order
// its float partial sums are added.
//
// Variants: AVX2 (with FMA and F16C), AVX-VNNI (the same code, vpdpwssd for
// vpmaddwd + vpaddd), AVX512-VNNI and AMX (tiles for the integer products,
// AVX512 for the rest), each compiled with its own target attribute (AMX's
// instructions are inline asm) and entered only after the CPU check in
// cpu_variants(), so the library itself needs no more than x86-64. The others
// also have to agree with the AVX2 one on a small product first
// (agrees_with_avx2).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "ggml.h"
#include "qgemm.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#    include <immintrin.h>

#    include "amx.h"
#    define LLMATIC_QGEMM_K_X86 1
#endif

namespace {

constexpr int QK_K = 256;

#pragma pack(push, 1)
struct block_q4_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t  scales[12];
    uint8_t  qs[QK_K / 2];
};

struct block_q6_K {
    uint8_t  ql[QK_K / 2];
    uint8_t  qh[QK_K / 4];
    int8_t   scales[QK_K / 16];
    uint16_t d;
};

struct block_q8_K {
    float   d;
    int8_t  qs[QK_K];
    int16_t bsums[QK_K / 16];
};
#pragma pack(pop)
static_assert(sizeof(block_q4_K) == 144, "Q4_K block");
static_assert(sizeof(block_q6_K) == 210, "Q6_K block");
static_assert(sizeof(block_q8_K) == 292, "Q8_K block");


// Q4_K's 12 scale bytes -> 8 six-bit scales (bytes 0..7) and 8 mins (bytes 8..15)
inline void q4k_scales_mins(const uint8_t * s, uint32_t out[4]) {
    constexpr uint32_t kmask1 = 0x3f3f3f3f, kmask2 = 0x0f0f0f0f, kmask3 = 0x03030303;
    std::memcpy(out, s, 12);
    out[3]              = ((out[2] >> 4) & kmask2) | (((out[1] >> 6) & kmask3) << 4);
    const uint32_t uaux = out[1] & kmask1;
    out[1]              = (out[2] & kmask2) | (((out[0] >> 6) & kmask3) << 4);
    out[2]              = uaux;
    out[0] &= kmask1;
}

}  // namespace

#ifdef LLMATIC_QGEMM_K_X86

#    define K_AVX2   __attribute__((target("avx2,fma,f16c")))
#    define K_AVXVNNI __attribute__((target("avx2,fma,f16c,avxvnni")))
#    define K_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512dq,avx2,fma,f16c")))
// A tile's integer sum is pinned to a register after each update: without it GCC
// reassociates a block's products into a tree whose partial products outnumber
// the registers, and spills them to the stack (seen in the disassembly).
#    define K_KEEP(v)  __asm__("" : "+x"(v))
#    define K_KEEPZ(v) __asm__("" : "+v"(v))

namespace {

// ---- AVX2 --------------------------------------------------------------------

// Each row function multiplies one weight row's blocks l0..l1 with NC columns
// (c0..c0+NC) of B and adds into `state` (NC x 8 float lanes, see Cols). A
// tile's integer sums live in registers for one block. The loops
// are written for the instruction count: on a 2-wide multiplier the kernel is
// bound by how many instructions issue, not by the multiplies alone.

// Weights stream from memory once per product: each block asks for the one
// K_AHEAD blocks on (past a row's end that is the next row's start, as rows
// are contiguous), so the loads overlap the arithmetic. Past a tensor's end the
// address may be unmapped: a prefetch is a hint and never faults.
#    define K_AHEAD 16
#    define K_PREFETCH(p, bytes)                                                   \
        do {                                                                       \
            const char * pf_ = (const char *) (p);                                 \
            for (size_t o_ = 0; o_ < (bytes); o_ += 64) _mm_prefetch(pf_ + o_, _MM_HINT_T0); \
        } while (0)

// a vector whose every 16-bit lane picks lane `i` (0..7) of a 128-bit lane of int16
#    define K_PICK16(i) _mm256_set1_epi16((short) (((2 * (i) + 1) << 8) | (2 * (i))))

// Q6_K's six-bit weights + 32 (0..63) for activations 32t..32t+31 of a half: low
// nibbles of ql[0..31] (t 0, qlA) or ql[32..63] (t 1, qlB), high nibbles (t 2, 3),
// and two bits of qh at 2t (m4, m3: 0x0F and 0x03 in every byte)
#    define K_Q6K_WEIGHTS(qlA, qlB, qh, t, m4, m3)                                                           \
        _mm256_or_si256(                                                                                    \
            _mm256_and_si256((t) < 2 ? ((t) & 1 ? (qlB) : (qlA)) : _mm256_srli_epi16((t) & 1 ? (qlB) : (qlA), 4), \
                             (m4)),                                                                         \
            _mm256_slli_epi16(_mm256_and_si256((t) == 0 ? (qh) : _mm256_srli_epi16((qh), 2 * (t)), (m3)), 4))

// the NC column pointers into B of a row function
template <int NC> struct ColPtrs {
    const block_q8_K * y[NC];

    ColPtrs(const block_q8_K * B, int64_t ldb, int c0) {
        for (int c = 0; c < NC; c++) y[c] = B + (int64_t) (c0 + c) * ldb;
    }
};

// The 256-bit row functions, written once (qgemm_k_avx2.inc) and compiled for
// AVX2 and for AVX-VNNI, whose vpdpwssd applies the scales and accumulates in
// one instruction where AVX2 takes two.
#    define K_TARGET K_AVX2
#    define K_DOT(acc, p, s) _mm256_add_epi32((acc), _mm256_madd_epi16((p), (s)))
namespace avx2 {
#    include "qgemm_k_avx2.inc"
}  // namespace avx2
#    undef K_TARGET
#    undef K_DOT
#    define K_TARGET K_AVXVNNI
#    define K_DOT(acc, p, s) _mm256_dpwssd_avx_epi32((acc), (p), (s))
namespace avxvnni {
#    include "qgemm_k_avx2.inc"
}  // namespace avxvnni
#    undef K_TARGET
#    undef K_DOT

// ---- AVX512-VNNI -------------------------------------------------------------
// The same scheme on 512-bit vectors: 64 weights per vector, and vpdpwssd to
// apply the sub-block scales and accumulate in one step. The float sums stay in
// registers (32 of them).

// Chunk j's 32 bytes are sub-block 2j (low nibbles) and 2j+1 (high nibbles): split
// into one vector of 64 weights they meet the 64 activations 64j..64j+63 in one
// load per column. (The split is on the weights, once per block; splitting the
// activations instead would cost per column.)
template <int NC>
K_AVX512 void q4k_row_avx512(const block_q4_K * x, int l0, int l1, const block_q8_K * B, int64_t ldb, int c0,
                             float * state) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    ColPtrs<NC>   cols(B, ldb, c0);
    __m512        fsum[NC];
    for (int c = 0; c < NC; c++) fsum[c] = _mm512_loadu_ps(state + 16 * c);
    for (int l = l0; l < l1; l++) {
        const block_q4_K & b = x[l];
        K_PREFETCH(x + l + K_AHEAD, sizeof(block_q4_K));
        uint32_t sm[4];
        q4k_scales_mins(b.scales, sm);
        // the 8 scales as int16 (sub-block i's in lane i), each min twice (one per 16
        // activations of Q8_K's bsums)
        const __m128i sm128  = _mm_set_epi32((int) sm[3], (int) sm[2], (int) sm[1], (int) sm[0]);
        const __m512i sc16   = _mm512_castsi128_si512(_mm_cvtepu8_epi16(sm128));
        const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(sm128, sm128));
        __m512i       acc[NC];
        for (int c = 0; c < NC; c++) acc[c] = _mm512_setzero_si512();
#    pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *) (b.qs + 32 * j));
            const __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(q, m4)),
                                                 _mm256_and_si256(_mm256_srli_epi16(q, 4), m4), 1);
            // scale 2j on the low 32 int16 products' half, 2j+1 on the high
            const __m512i s = _mm512_permutexvar_epi16(
                _mm512_inserti64x4(_mm512_set1_epi16((short) (2 * j)), _mm256_set1_epi16((short) (2 * j + 1)), 1), sc16);
            for (int c = 0; c < NC; c++) {
                const __m512i y = _mm512_loadu_si512((const void *) (cols.y[c][l].qs + 64 * j));
                acc[c]          = _mm512_dpwssd_epi32(acc[c], _mm512_maddubs_epi16(w, y), s);
                K_KEEPZ(acc[c]);
            }
        }
        const __m512 dv    = _mm512_set1_ps(_cvtsh_ss(b.d));
        const __m512 dminv = _mm512_set1_ps(-_cvtsh_ss(b.dmin));
        for (int c = 0; c < NC; c++) {
            const block_q8_K & yb = cols.y[c][l];
            // d * sums - dmin * (mins . bsums), then times the column's scale
            const __m256i mb = _mm256_madd_epi16(mins16, _mm256_loadu_si256((const __m256i *) yb.bsums));
            const __m512  t  = _mm512_fmadd_ps(dminv, _mm512_zextps256_ps512(_mm256_cvtepi32_ps(mb)),
                                               _mm512_mul_ps(dv, _mm512_cvtepi32_ps(acc[c])));
            fsum[c]          = _mm512_fmadd_ps(_mm512_set1_ps(yb.d), t, fsum[c]);
        }
    }
    for (int c = 0; c < NC; c++) _mm512_storeu_ps(state + 16 * c, fsum[c]);
}

template <int NC>
K_AVX512 void q6k_row_avx512(const block_q6_K * x, int l0, int l1, const block_q8_K * B, int64_t ldb, int c0, float * state) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512i m3 = _mm512_set1_epi8(0x03);
    // bytes 0 x8, 1 x8 | 2 x8, 3 x8 (and 4..7 for B) of the half's 8 scales
    const __m256i pick_a = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    const __m256i pick_b = _mm256_add_epi8(pick_a, _mm256_set1_epi8(4));
    ColPtrs<NC>   cols(B, ldb, c0);
    __m512        fsum[NC];
    for (int c = 0; c < NC; c++) fsum[c] = _mm512_loadu_ps(state + 16 * c);
    for (int l = l0; l < l1; l++) {
        const block_q6_K & b = x[l];
        K_PREFETCH(x + l + K_AHEAD, sizeof(block_q6_K));
        __m512i            acc[NC];
        for (int c = 0; c < NC; c++) acc[c] = _mm512_setzero_si512();
        for (int h = 0; h < 2; h++) {
            const uint8_t * ql = b.ql + 64 * h;
            const int8_t *  sc = b.scales + 8 * h;
            // vector A holds activations 0..31 | 32..63 of this half, vector B 64..95 | 96..127
            const __m512i   qlAB = _mm512_loadu_si512((const void *) ql);  // ql[0..31] | ql[32..63]
            const __m256i   qh8  = _mm256_loadu_si256((const __m256i *) (b.qh + 32 * h));
            // high bits: qh >> 0 | qh >> 2 for vector A, >> 4 | >> 6 for B
            const __m512i hA = _mm512_inserti64x4(_mm512_castsi256_si512(qh8), _mm256_srli_epi16(qh8, 2), 1);
            const __m512i hB = _mm512_srli_epi16(hA, 4);
            const __m512i wA = _mm512_or_si512(_mm512_and_si512(qlAB, m4),
                                               _mm512_slli_epi16(_mm512_and_si512(hA, m3), 4));
            const __m512i wB = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(qlAB, 4), m4),
                                               _mm512_slli_epi16(_mm512_and_si512(hB, m3), 4));
            // one scale per 16 weights: A has sub-blocks 0,1 | 2,3 of this half, B 4,5 | 6,7
            const __m256i s8 = _mm256_broadcastsi128_si256(_mm_loadl_epi64((const __m128i *) sc));
            const __m512i s0 = _mm512_cvtepi8_epi16(_mm256_shuffle_epi8(s8, pick_a));
            const __m512i s1 = _mm512_cvtepi8_epi16(_mm256_shuffle_epi8(s8, pick_b));
            for (int c = 0; c < NC; c++) {
                const int8_t * y = cols.y[c][l].qs + 128 * h;
                acc[c] = _mm512_dpwssd_epi32(acc[c], _mm512_maddubs_epi16(wA, _mm512_loadu_si512((const void *) y)), s0);
                acc[c] =
                    _mm512_dpwssd_epi32(acc[c], _mm512_maddubs_epi16(wB, _mm512_loadu_si512((const void *) (y + 64))), s1);
                K_KEEPZ(acc[c]);
            }
        }
        const float   d        = _cvtsh_ss(b.d);
        const __m256i scales16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *) b.scales));
        for (int c = 0; c < NC; c++) {
            const block_q8_K & yb = cols.y[c][l];
            // the +32 on every weight taken off exactly in int32, as in the AVX2 variant (in
            // float the two large terms would cancel and leave their rounding)
            const __m256i mb = _mm256_madd_epi16(scales16, _mm256_loadu_si256((const __m256i *) yb.bsums));
            const __m512i v  = _mm512_sub_epi32(acc[c], _mm512_zextsi256_si512(_mm256_slli_epi32(mb, 5)));
            fsum[c]          = _mm512_fmadd_ps(_mm512_set1_ps(d * yb.d), _mm512_cvtepi32_ps(v), fsum[c]);
        }
    }
    for (int c = 0; c < NC; c++) _mm512_storeu_ps(state + 16 * c, fsum[c]);
}

// ---- AMX ---------------------------------------------------------------------
// On CPUs with AMX-INT8 (Xeon since Sapphire Rapids) one tile instruction
// (tdpbusd: unsigned bytes times signed bytes, summed in int32; tdpbssd: both
// signed, for Q6_K's weights with their +32 taken off) computes a sub-block's
// integer products for 16 weight rows and up to 16 columns at once, whatever
// the number of columns. The sub-block scales, Q4_K's mins and the block scales
// are applied after, in float, with AVX512 over 16 columns at a time. Per chunk
// of up to 32 columns (two column tiles):
//   - the chunk's activations are copied once into the tiles' layout (a row per
//     4 activations: 16 columns x 4 bytes), per block, sub-block and column tile;
//   - per group of 16 weight rows and per block, the weights are unpacked to one
//     byte each, each sub-block's products are stored from the tiles (P), and a
//     float pass adds them up.
// Tiles: 0, 1 products (16 rows x one column tile), 2 weights (16 rows x S
// bytes), 3, 4 activations (S/4 rows x 4 bytes per column); 5, 6 and 7 the
// same for odd sub-blocks.
// Q4_K: sub-blocks of 32 weights (0..15), each with a 6-bit scale and min
struct AmxQ4K {
    using BA                     = block_q4_K;
    static constexpr int  S      = 32;
    static constexpr bool SIGNED = false;  // unsigned weights: tdpbusd
    static constexpr bool MINS   = true;   // a float term per sub-block: min x sum of its activations

    // A row's 256 weights, one byte each, 64 bytes of qs at a time: the low nibbles of
    // bytes 0..63 (sub-blocks 0 and 2), then the high ones (1 and 3), and so on. So the
    // sub-block at position p (w + S p) is pos(p): positions 1 and 2 of every 4 swapped.
    static constexpr int pos(int p) { return (p & ~3) | ((p & 1) << 1) | ((p >> 1) & 1); }

    // ... and its scales and mins as floats, in the same order
    static K_AVX512 void unpack(const BA & b, uint8_t * w, float * scale, float * min) {
        uint32_t sm[4];
        q4k_scales_mins(b.scales, sm);
        // the 8 scales times d and the 8 mins times -dmin, in one vector, put in position order
        const __m512  f    = _mm512_mul_ps(
            _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_set_epi32((int) sm[3], (int) sm[2], (int) sm[1], (int) sm[0]))),
            _mm512_insertf32x8(_mm512_set1_ps(_cvtsh_ss(b.d)), _mm256_set1_ps(-_cvtsh_ss(b.dmin)), 1));
        const __m512  fp   = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 2, 1, 3, 4, 6, 5, 7, 8, 10, 9, 11, 12, 14, 13, 15), f);
        _mm256_storeu_ps(scale, _mm512_castps512_ps256(fp));
        _mm256_storeu_ps(min, _mm512_extractf32x8_ps(fp, 1));
        const __m512i m4 = _mm512_set1_epi8(0x0F);
        for (int i = 0; i < 2; i++) {
            const __m512i q = _mm512_loadu_si512((const void *) (b.qs + 64 * i));
            _mm512_store_si512((void *) (w + 128 * i), _mm512_and_si512(q, m4));
            _mm512_store_si512((void *) (w + 128 * i + 64), _mm512_and_si512(_mm512_srli_epi16(q, 4), m4));
        }
    }

    // the sum of the activations of the sub-block at position p in a column, for the min term
    static float column_term(const block_q8_K & y, int p) {
        const int j = pos(p);
        return (float) (y.bsums[2 * j] + y.bsums[2 * j + 1]);
    }
};

// Q6_K: sub-blocks of 16 weights (-32..31, stored +32), each with an int8 scale
struct AmxQ6K {
    using BA                     = block_q6_K;
    static constexpr int  S      = 16;
    static constexpr bool SIGNED = true;  // signed weights: tdpbssd
    static constexpr bool MINS   = false;

    static constexpr int pos(int p) { return p; }  // sub-blocks in order

    static K_AVX512 void unpack(const BA & b, uint8_t * w, float * scale, float *) {
        _mm512_storeu_ps(scale, _mm512_mul_ps(_mm512_set1_ps(_cvtsh_ss(b.d)),
                                              _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                                                  _mm_loadu_si128((const __m128i *) b.scales)))));
        const __m512i m4  = _mm512_set1_epi8(0x0F);
        const __m512i m3  = _mm512_set1_epi8(0x03);
        const __m512i k32 = _mm512_set1_epi8(32);
        for (int h = 0; h < 2; h++) {
            // as in q6k_row_avx512: weights 128h + 0..63 from the low nibbles of ql[0..63] and
            // qh >> 0 | qh >> 2, weights 128h + 64..127 from the high nibbles and qh >> 4 | qh >> 6
            const __m512i ql  = _mm512_loadu_si512((const void *) (b.ql + 64 * h));
            const __m256i qh8 = _mm256_loadu_si256((const __m256i *) (b.qh + 32 * h));
            const __m512i hA  = _mm512_inserti64x4(_mm512_castsi256_si512(qh8), _mm256_srli_epi16(qh8, 2), 1);
            const __m512i hB  = _mm512_srli_epi16(hA, 4);
            const __m512i wA  = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_slli_epi16(_mm512_and_si512(hA, m3), 4));
            const __m512i wB  = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                                _mm512_slli_epi16(_mm512_and_si512(hB, m3), 4));
            _mm512_store_si512((void *) (w + 128 * h), _mm512_sub_epi8(wA, k32));
            _mm512_store_si512((void *) (w + 128 * h + 64), _mm512_sub_epi8(wB, k32));
        }
    }
};

template <class T>
K_AVX512 void amx_rows(int ith, int nth, int64_t m, int64_t n, int nb, const typename T::BA * A, int64_t lda,
                       const block_q8_K * B, int64_t ldb, float * C, int64_t ldc) {
    constexpr int S = T::S, NS = QK_K / S, KQ = S / 4;
    const int64_t r0 = m * ith / nth;
    const int64_t r1 = m * (ith + 1) / nth;
    if (r0 >= r1) return;
    // the chunk's activations in the tiles' layout, per block, sub-block and column tile:
    // KQ rows of 16 columns x 4 bytes; each column's block scale and sub-block terms
    thread_local std::vector<uint8_t> act;
    thread_local std::vector<float>   dy;
    thread_local std::vector<float>   term;
    act.resize((size_t) nb * NS * 2 * KQ * 64);
    dy.resize((size_t) nb * 32);
    if constexpr (T::MINS) term.resize((size_t) nb * NS * 32);
    alignas(64) uint8_t w[16][QK_K];       // one block of 16 rows' weights
    alignas(64) int32_t p[NS][2][16][16];  // the products, per sub-block and column tile
    alignas(64) float   scale[16][NS], mins[16][NS];
    alignas(64) float   acc[16][32];
    llmatic_amx::TileScope scope;
    for (int64_t c0 = 0; c0 < n; c0 += 32) {
        const int  nc  = (int) std::min<int64_t>(32, n - c0);
        const int  nc0 = std::min(16, nc), nc1 = nc - nc0;
        llmatic_amx::TileConfig cfg;
        cfg.palette = 1;
        // even sub-blocks: products 0 (1), weights 2, activations 3 (4); odd ones: 5 (6), 7, and 3 (4),
        // or 4 with one column tile: two sub-blocks in flight, as a tile's product must be stored
        // before the tile takes the next
        for (int t : { 0, 5 }) cfg.rows[t] = 16, cfg.colsb[t] = (uint16_t) (4 * nc0);
        for (int t : { 2, 7 }) cfg.rows[t] = 16, cfg.colsb[t] = S;
        cfg.rows[3] = KQ, cfg.colsb[3] = (uint16_t) (4 * nc0);
        if (nc1 > 0) {
            for (int t : { 1, 6 }) cfg.rows[t] = 16, cfg.colsb[t] = (uint16_t) (4 * nc1);
            cfg.rows[4] = KQ, cfg.colsb[4] = (uint16_t) (4 * nc1);
        } else {
            cfg.rows[4] = KQ, cfg.colsb[4] = (uint16_t) (4 * nc0);
        }
        llmatic_amx::tile_config_load(cfg);
        for (int c = 0; c < nc; c++) {
            const block_q8_K * y = B + (c0 + c) * ldb;
            const int          t = c / 16, cc = c % 16;
            for (int l = 0; l < nb; l++) {
                for (int g = 0; g < 64; g++) {
                    const int j = T::pos(g / KQ), kq = g % KQ;
                    std::memcpy(&act[((((size_t) l * NS + j) * 2 + t) * KQ + kq) * 64 + 4 * cc], y[l].qs + 4 * g, 4);
                }
                dy[(size_t) l * 32 + c] = y[l].d;
                if constexpr (T::MINS) {
                    for (int j = 0; j < NS; j++) term[((size_t) l * NS + j) * 32 + c] = T::column_term(y[l], j);
                }
            }
        }
        for (int64_t g = r0; g < r1; g += 16) {
            // (rows past the end, in the last group, give products no one reads)
            const int rows = (int) std::min<int64_t>(16, r1 - g);
            std::memset(acc, 0, sizeof(acc));
            for (int l = 0; l < nb; l++) {
                for (int r = 0; r < rows; r++) {
                    const auto * x = A + (g + r) * lda + l;
                    // the same block of the next group's row: a group reads its 16 rows side by side,
                    // which a prefetch a few blocks on in the row (K_AHEAD) would not cover
                    K_PREFETCH(x + 16 * lda, sizeof(*x));
                    T::unpack(*x, w[r], scale[r], mins[r]);
                }
                const uint8_t * al = act.data() + (size_t) l * NS * 2 * KQ * 64;
// sub-block j's products for column tile 0 (and 1) through the given tiles
#    define K_AMX_DP(c, a, b)                         \
        do {                                          \
            if constexpr (T::SIGNED) AMX_TILE_DPBSSD(c, a, b); \
            else AMX_TILE_DPBUSD(c, a, b);              \
        } while (0)
#    define K_AMX_SUB(j, ta, tc0, tb0, tc1, tb1)                       \
        do {                                                           \
            AMX_TILE_LOAD(ta, &w[0][(j) * S], QK_K);                     \
            AMX_TILE_ZERO(tc0);                                          \
            AMX_TILE_LOAD(tb0, al + ((j) * 2) * KQ * 64, 64);            \
            K_AMX_DP(tc0, ta, tb0);                                    \
            AMX_TILE_STORE(tc0, p[j][0], 64);                            \
            if (nc1 > 0) {                                             \
                AMX_TILE_ZERO(tc1);                                      \
                AMX_TILE_LOAD(tb1, al + ((j) * 2 + 1) * KQ * 64, 64);    \
                K_AMX_DP(tc1, ta, tb1);                                \
                AMX_TILE_STORE(tc1, p[j][1], 64);                        \
            }                                                          \
        } while (0)
                for (int j = 0; j < NS; j += 2) {
                    K_AMX_SUB(j, 2, 0, 3, 1, 4);
                    if (nc1 > 0) K_AMX_SUB(j + 1, 7, 5, 3, 6, 4);
                    else K_AMX_SUB(j + 1, 7, 5, 4, 6, 4);
                }
#    undef K_AMX_SUB
#    undef K_AMX_DP
                for (int t = 0; t < (nc1 > 0 ? 2 : 1); t++) {
                    const __m512 dyv = _mm512_loadu_ps(&dy[(size_t) l * 32 + 16 * t]);
                    // the column terms are the same for every row
                    __m512       tv[T::MINS ? NS : 1];
                    if constexpr (T::MINS) {
                        for (int j = 0; j < NS; j++) tv[j] = _mm512_loadu_ps(&term[((size_t) l * NS + j) * 32 + 16 * t]);
                    }
                    for (int r = 0; r < rows; r++) {
                        __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
                        for (int j = 0; j < NS; j += 2) {
                            const __m512i v0 = _mm512_load_si512((const void *) p[j][t][r]);
                            const __m512i v1 = _mm512_load_si512((const void *) p[j + 1][t][r]);
                            s0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v0), _mm512_set1_ps(scale[r][j]), s0);
                            s1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v1), _mm512_set1_ps(scale[r][j + 1]), s1);
                            if constexpr (T::MINS) {
                                s0 = _mm512_fmadd_ps(tv[j], _mm512_set1_ps(mins[r][j]), s0);
                                s1 = _mm512_fmadd_ps(tv[j + 1], _mm512_set1_ps(mins[r][j + 1]), s1);
                            }
                        }
                        float * ar = &acc[r][16 * t];
                        _mm512_store_ps(ar, _mm512_fmadd_ps(_mm512_add_ps(s0, s1), dyv, _mm512_load_ps(ar)));
                    }
                }
            }
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < nc; c++) C[(c0 + c) * ldc + g + r] = acc[r][c];
            }
        }
    }
}

// Decode-sized products (2..16 columns) on AMX. With few columns a product tile
// of one sub-block is mostly empty and its tile instructions cost as much as a
// full one's, so P sub-blocks share one product (P S = 64 bytes deep, or as
// many as P NCP <= 16 columns allow): the weight tile's rows are P sub-blocks
// of a weight row, and the activation tile is block-diagonal, sub-block s's
// activations in rows s S/4.. of column slot s (NCP columns) and zero in the
// others. A product's 16 x V integers (V = P NCP) are stored row after row and
// fill V vectors of 16 lanes, RV = 16 / V rows each (lane L: row L / V, slot
// (L / NCP) % P, column L % NCP), so the float pass takes V steps per product
// and the columns are summed over the slots at the end. Q4_K: P = 2 up to 8
// columns; Q6_K: P = 4 up to 4 columns, 2 at 8.
struct AmxActK {
    std::vector<uint8_t> q;  // per block: its NS / P products' activation tiles
    std::vector<float>   f;  // per block: 16 lanes of the columns' scale, then (MINS) per product the min terms x scale
};

thread_local AmxActK tl_act_k;

template <class T>
K_AVX512 void amx_pack_k(AmxActK & p, const block_q8_K * B, int64_t ldb, int nc, int nb, int NCP, int P) {
    constexpr int KQ = T::S / 4, NS = QK_K / T::S;
    const int     V = P * NCP, NP = NS / P;
    const size_t  prod  = (size_t) P * KQ * 4 * V;  // bytes of one product's activation tile
    const size_t  block = NP * prod;
    const int     nf    = 16 * (1 + (T::MINS ? NP : 0));
    p.q.assign(nb * block, 0);
    p.f.assign((size_t) nb * nf, 0.0f);
    // where the block's 64 groups of 4 activations go, for column 0
    alignas(64) int32_t off[64];
    for (int g = 0; g < 64; g++) {
        const int j = T::pos(g / KQ), s = j % P;
        off[g] = (int32_t) ((j / P) * prod + (s * KQ + g % KQ) * 4 * V + 4 * s * NCP);
    }
    for (int c = 0; c < nc; c++) {
        const block_q8_K * y = B + (int64_t) c * ldb;
        for (int l = 0; l < nb; l++) {
            uint8_t * base = p.q.data() + l * block + 4 * c;
            for (int u = 0; u < 8; u++) {
                _mm256_i32scatter_epi32(base, _mm256_load_si256((const __m256i *) (off + 8 * u)),
                                        _mm256_loadu_si256((const __m256i *) (y[l].qs + 32 * u)), 1);
            }
            float * f = p.f.data() + (size_t) l * nf;
            for (int L = c; L < 16; L += NCP) {
                f[L] = y[l].d;
                if constexpr (T::MINS) {
                    for (int i = 0; i < NP; i++) f[16 * (1 + i) + L] = y[l].d * T::column_term(y[l], i * P + (L / NCP) % P);
                }
            }
        }
    }
}

template <class T, int NCP, int P>
K_AVX512 void amx_chunk_k(int64_t r0, int64_t r1, int nc, int nb, const typename T::BA * A, int64_t lda,
                          const AmxActK & pb, float * C, int64_t ldc) {
    constexpr int V = P * NCP, RV = 16 / V, NS = QK_K / T::S, KQ = T::S / 4, NP = NS / P;
    constexpr int KB  = P * T::S;  // bytes per weight tile row
    constexpr int REG = RV * NS;   // the scales a vector of products needs lie in REG floats from q REG
    static_assert(V <= 16 && 16 % V == 0 && REG <= 32 && NS % (2 * P) == 0, "AMX K-quant layout");
    constexpr size_t prod  = (size_t) P * KQ * 4 * V;
    constexpr int    nf    = 16 * (1 + (T::MINS ? NP : 0));
    alignas(64) uint8_t w[16][QK_K];
    alignas(64) int32_t pr[NP][16 * V];
    // a row's scales (and mins) at r NS, and 16 floats past the last row for the loads of REG < 16
    alignas(64) float sc[16 * NS + 16], mn[T::MINS ? 16 * NS + 16 : 1];
    std::memset(w, 0, sizeof(w));
    std::memset(sc, 0, sizeof(sc));
    std::memset(mn, 0, sizeof(mn));
    // lane L of a vector takes its scale from row L / V, sub-block i P + (L / NCP) % P (add i P)
    alignas(64) int32_t ix[16];
    for (int L = 0; L < 16; L++) ix[L] = (L / V) * NS + (L / NCP) % P;
    const __m512i idx0 = _mm512_load_si512(ix);
    for (int64_t g = r0; g < r1; g += 16) {
        const int rows = (int) std::min<int64_t>(16, r1 - g);
        __m512    acc[V];
        for (int q = 0; q < V; q++) acc[q] = _mm512_setzero_ps();
        for (int l = 0; l < nb; l++) {
            for (int r = 0; r < rows; r++) {
                const auto * x = A + (g + r) * lda + l;
                // (the same block of the next group's rows: a group reads its 16 rows side by side)
                K_PREFETCH(x + 16 * lda, sizeof(*x));
                T::unpack(*x, w[r], sc + r * NS, mn + (T::MINS ? r * NS : 0));
            }
            const uint8_t * act = pb.q.data() + l * NP * prod;
            const float *   f   = pb.f.data() + (size_t) l * nf;
// product i into tile tc from weights ta and activations tb, stored to pr[i]
#    define K_AMX_PRODUCT(i, tc, ta, tb)                      \
        do {                                                  \
            AMX_TILE_LOAD(ta, &w[0][(i) * KB], QK_K);           \
            AMX_TILE_LOAD(tb, act + (i) * prod, 4 * V);         \
            AMX_TILE_ZERO(tc);                                  \
            if constexpr (T::SIGNED) AMX_TILE_DPBSSD(tc, ta, tb); \
            else AMX_TILE_DPBUSD(tc, ta, tb);                   \
            AMX_TILE_STORE(tc, pr[i], 4 * V);                   \
        } while (0)
            for (int i = 0; i < NP; i += 2) {
                K_AMX_PRODUCT(i, 0, 1, 2);
                K_AMX_PRODUCT(i + 1, 4, 5, 6);
            }
#    undef K_AMX_PRODUCT
            const __m512 dy = _mm512_loadu_ps(f);
            for (int i = 0; i < NP; i++) {
                const __m512i idx = _mm512_add_epi32(idx0, _mm512_set1_epi32(i * P));
                __m512        bt  = _mm512_setzero_ps();
                if constexpr (T::MINS) bt = _mm512_loadu_ps(f + 16 * (1 + i));
                for (int q = 0; q < V; q++) {
                    const __m512 v = _mm512_cvtepi32_ps(_mm512_load_si512((const void *) (pr[i] + 16 * q)));
                    __m512       s, mv;
                    const float * sq = sc + q * REG;
                    if constexpr (REG <= 16) s = _mm512_permutexvar_ps(idx, _mm512_loadu_ps(sq));
                    else s = _mm512_permutex2var_ps(_mm512_loadu_ps(sq), idx, _mm512_loadu_ps(sq + 16));
                    acc[q] = _mm512_fmadd_ps(v, _mm512_mul_ps(s, dy), acc[q]);
                    if constexpr (T::MINS) {
                        const float * mq = mn + q * REG;
                        if constexpr (REG <= 16) mv = _mm512_permutexvar_ps(idx, _mm512_loadu_ps(mq));
                        else mv = _mm512_permutex2var_ps(_mm512_loadu_ps(mq), idx, _mm512_loadu_ps(mq + 16));
                        acc[q] = _mm512_fmadd_ps(mv, bt, acc[q]);
                    }
                }
            }
        }
        alignas(64) float out[16 * V];  // [row][slot][column]
        for (int q = 0; q < V; q++) _mm512_store_ps(out + 16 * q, acc[q]);
        for (int c = 0; c < nc; c++) {
            float * dst = C + (int64_t) c * ldc + g;
            for (int r = 0; r < rows; r++) {
                float v = 0.0f;
                for (int s = 0; s < P; s++) v += out[r * V + s * NCP + c];
                dst[r] = v;
            }
        }
    }
}

// sub-blocks per product for NCP column slots: as many as fit 64 bytes deep and 16 columns
template <class T> constexpr int amx_slots(int ncp) {
    return std::min(64 / T::S, 16 / ncp);
}

template <class T, int NCP>
K_AVX512 void amx_small_ncp(int64_t r0, int64_t r1, int nc, int nb, const typename T::BA * A, int64_t lda,
                            const block_q8_K * B, int64_t ldb, float * C, int64_t ldc) {
    constexpr int P = amx_slots<T>(NCP), V = P * NCP;
    AmxActK &     pb = tl_act_k;
    amx_pack_k<T>(pb, B, ldb, nc, nb, NCP, P);
    llmatic_amx::TileConfig cfg;
    cfg.palette = 1;
    for (int t : { 0, 4 }) cfg.rows[t] = 16, cfg.colsb[t] = (uint16_t) (4 * V);
    for (int t : { 1, 5 }) cfg.rows[t] = 16, cfg.colsb[t] = (uint16_t) (P * T::S);
    for (int t : { 2, 6 }) cfg.rows[t] = (uint8_t) (P * T::S / 4), cfg.colsb[t] = (uint16_t) (4 * V);
    llmatic_amx::tile_config_load(cfg);
    amx_chunk_k<T, NCP, P>(r0, r1, nc, nb, A, lda, pb, C, ldc);
}

// 2..16 columns, this thread's rows
template <class T>
K_AVX512 void amx_small(int ith, int nth, int64_t m, int64_t n, int nb, const typename T::BA * A, int64_t lda,
                        const block_q8_K * B, int64_t ldb, float * C, int64_t ldc) {
    const int64_t r0 = m * ith / nth;
    const int64_t r1 = m * (ith + 1) / nth;
    if (r0 >= r1) return;
    llmatic_amx::TileScope scope;
    const int nc = (int) n;
    if (nc <= 2) amx_small_ncp<T, 2>(r0, r1, nc, nb, A, lda, B, ldb, C, ldc);
    else if (nc <= 4) amx_small_ncp<T, 4>(r0, r1, nc, nb, A, lda, B, ldb, C, ldc);
    else if (nc <= 8) amx_small_ncp<T, 8>(r0, r1, nc, nb, A, lda, B, ldb, C, ldc);
    else amx_small_ncp<T, 16>(r0, r1, nc, nb, A, lda, B, ldb, C, ldc);
}

}  // namespace
#endif

#ifdef LLMATIC_QGEMM_K_X86
namespace {

// Rows in groups of 8 and each row's blocks in chunks, so the chunk of B that
// a group multiplies (n columns x kb blocks, at most about 19 KB) stays in L1
// while the group's rows pass over it; columns in tiles of up to 8 per pass
// over a row (a tile's integer sums stay in registers). The float partial sums
// (W lanes per row and column) wait in `state` between chunks.
template <typename BA, template <int> class Row>
void run_cols(int ith, int nth, int64_t m, int64_t n, int nb, const BA * A, int64_t lda, const block_q8_K * B,
              int64_t ldb, float * C, int64_t ldc) {
    constexpr int             W  = Row<1>::W;
    constexpr int64_t         RB = 8;
    const int                 kb = (int) (n >= 32 ? 2 : 64 / n);
    thread_local std::vector<float> state;
    state.resize((size_t) (RB * n * W));
    const int64_t r0 = m * ith / nth;
    const int64_t r1 = m * (ith + 1) / nth;
    for (int64_t g = r0; g < r1; g += RB) {
        const int64_t rows = std::min(RB, r1 - g);
        std::fill(state.begin(), state.end(), 0.0f);
        for (int l0 = 0; l0 < nb; l0 += kb) {
            const int l1 = std::min(nb, l0 + kb);
            for (int64_t r = 0; r < rows; r++) {
                const BA * x  = A + (g + r) * lda;
                float *    st = state.data() + r * n * W;
                int64_t    c0 = 0;
                for (; c0 + 8 <= n; c0 += 8) Row<8>::run(x, l0, l1, B, ldb, (int) c0, st + c0 * W);
                switch (n - c0) {
                    case 7: Row<7>::run(x, l0, l1, B, ldb, (int) c0, st + c0 * W); break;
                    case 6: Row<6>::run(x, l0, l1, B, ldb, (int) c0, st + c0 * W); break;
                    case 5: Row<5>::run(x, l0, l1, B, ldb, (int) c0, st + c0 * W); break;
                    case 4: Row<4>::run(x, l0, l1, B, ldb, (int) c0, st + c0 * W); break;
                    case 3: Row<3>::run(x, l0, l1, B, ldb, (int) c0, st + c0 * W); break;
                    case 2: Row<2>::run(x, l0, l1, B, ldb, (int) c0, st + c0 * W); break;
                    case 1: Row<1>::run(x, l0, l1, B, ldb, (int) c0, st + c0 * W); break;
                    default: break;
                }
            }
        }
        for (int64_t r = 0; r < rows; r++) {
            for (int64_t c = 0; c < n; c++) {
                const float * v   = state.data() + (r * n + c) * W;
                float         sum = 0.0f;
                for (int i = 0; i < W; i++) sum += v[i];
                C[c * ldc + g + r] = sum;
            }
        }
    }
}

// A decode batch (up to 16 columns) in one pass over this thread's rows, so the
// weights stream from memory once; a prompt's product (more columns) in chunks
// of 8, each one a pass. A chunk of 8 columns is one tile per row and takes 8
// blocks of a row at a time (kb), where 32 columns took 2: the weights then
// stream in runs of 1152 bytes, not 288 across 8 rows, which the hardware
// prefetch follows. (On a Zen 5 EPYC, bench:engine pp512 on bench-1b with
// AVX512: 123 t/s with chunks of 32, 190 with 16, 208 with 8, 192 with 4;
// llama-bench 175-195 in the same runs.)
template <typename BA, template <int> class Row>
void run_rows(int ith, int nth, int64_t m, int64_t n, int nb, const BA * A, int64_t lda, const block_q8_K * B,
              int64_t ldb, float * C, int64_t ldc) {
    if (n <= 16) return run_cols<BA, Row>(ith, nth, m, n, nb, A, lda, B, ldb, C, ldc);
    constexpr int64_t CHUNK = 8;
    for (int64_t c = 0; c < n; c += CHUNK) {
        run_cols<BA, Row>(ith, nth, m, std::min(CHUNK, n - c), nb, A, lda, B + c * ldb, ldb, C + c * ldc, ldc);
    }
}

#    define LLMATIC_ROW(name, fn, BA, lanes)                                                                 \
        template <int NC> struct name {                                                                        \
            static constexpr int W = lanes;                                                                    \
            static void run(const BA * x, int l0, int l1, const block_q8_K * B, int64_t ldb, int c0,           \
                            float * state) {                                                                   \
                fn<NC>(x, l0, l1, B, ldb, c0, state);                                                          \
            }                                                                                                  \
        };
LLMATIC_ROW(Q4KAvx2, avx2::q4k_row, block_q4_K, 8)
LLMATIC_ROW(Q6KAvx2, avx2::q6k_row, block_q6_K, 8)
LLMATIC_ROW(Q4KAvxVnni, avxvnni::q4k_row, block_q4_K, 8)
LLMATIC_ROW(Q6KAvxVnni, avxvnni::q6k_row, block_q6_K, 8)
LLMATIC_ROW(Q4KAvx512, q4k_row_avx512, block_q4_K, 16)
LLMATIC_ROW(Q6KAvx512, q6k_row_avx512, block_q6_K, 16)
#    undef LLMATIC_ROW

// Pseudo-random blocks for the start-up checks (agrees_with_avx2, choose_variants).
struct Lcg {
    uint32_t seed;

    uint8_t next() {
        seed = seed * 1103515245u + 12345u;
        return (uint8_t) (seed >> 16);
    }
};

std::vector<block_q8_K> random_q8k(int count, Lcg & r) {
    std::vector<block_q8_K> B(count);
    for (auto & b : B) {
        b.d = 0.01f;
        for (int s = 0; s < 16; s++) {
            int sum = 0;
            for (int i = 0; i < 16; i++) sum += (b.qs[16 * s + i] = (int8_t) r.next());
            b.bsums[s] = (int16_t) sum;
        }
    }
    return B;
}

std::vector<block_q4_K> random_q4k(int count, Lcg & r) {
    std::vector<block_q4_K> A(count);
    for (auto & b : A) {
        for (auto & c : b.scales) c = r.next();
        for (auto & c : b.qs) c = r.next();
        b.d = b.dmin = 0x1c00;  // 1/256
    }
    return A;
}

// one product with the given variant (a single bit); false for none
bool run_variant(int variant, int ith, int nth, int64_t m, int64_t n, int nb, int atype, const void * A, int64_t lda,
                 const block_q8_K * B, int64_t ldb, float * C, int64_t ldc) {
    const bool q4 = atype == GGML_TYPE_Q4_K;
    const auto * a4 = (const block_q4_K *) A;
    const auto * a6 = (const block_q6_K *) A;
    switch (variant) {
        case LLMATIC_QGEMM_K_AMX:
            if (n >= 2 && n <= 16) {
                if (q4) amx_small<AmxQ4K>(ith, nth, m, n, nb, a4, lda, B, ldb, C, ldc);
                else amx_small<AmxQ6K>(ith, nth, m, n, nb, a6, lda, B, ldb, C, ldc);
            } else if (q4) amx_rows<AmxQ4K>(ith, nth, m, n, nb, a4, lda, B, ldb, C, ldc);
            else amx_rows<AmxQ6K>(ith, nth, m, n, nb, a6, lda, B, ldb, C, ldc);
            return true;
        case LLMATIC_QGEMM_K_AVX512_VNNI:
            if (q4) run_rows<block_q4_K, Q4KAvx512>(ith, nth, m, n, nb, a4, lda, B, ldb, C, ldc);
            else run_rows<block_q6_K, Q6KAvx512>(ith, nth, m, n, nb, a6, lda, B, ldb, C, ldc);
            return true;
        case LLMATIC_QGEMM_K_AVX_VNNI:
            if (q4) run_rows<block_q4_K, Q4KAvxVnni>(ith, nth, m, n, nb, a4, lda, B, ldb, C, ldc);
            else run_rows<block_q6_K, Q6KAvxVnni>(ith, nth, m, n, nb, a6, lda, B, ldb, C, ldc);
            return true;
        case LLMATIC_QGEMM_K_AVX2:
            if (q4) run_rows<block_q4_K, Q4KAvx2>(ith, nth, m, n, nb, a4, lda, B, ldb, C, ldc);
            else run_rows<block_q6_K, Q6KAvx2>(ith, nth, m, n, nb, a6, lda, B, ldb, C, ldc);
            return true;
        default: return false;
    }
}

// A variant other than AVX2 is used only if it computes what the AVX2 one does
// on a small product of pseudo-random blocks (checked once, on CPUs that run
// both): a wrong result there would otherwise be wrong text, with nothing to
// say why. 40 columns: two column chunks, the second of 8 (AMX: prompt-sized
// products); 3 and 12: decode-sized ones (AMX: several sub-blocks per product).
bool agrees_with_avx2(int variant, int n) {
    constexpr int           m = 24, nb = 2;
    Lcg                     r{ 12345 };
    std::vector<block_q8_K> B  = random_q8k(n * nb, r);
    std::vector<block_q4_K> A4 = random_q4k(m * nb, r);
    std::vector<block_q6_K> A6(m * nb);
    for (auto & b : A6) {
        for (auto & c : b.ql) c = r.next();
        for (auto & c : b.qh) c = r.next();
        for (auto & c : b.scales) c = (int8_t) r.next();
        b.d = 0x1c00;
    }
    std::vector<float> c2(m * n), cv(m * n);
    for (int type : { GGML_TYPE_Q4_K, GGML_TYPE_Q6_K }) {
        const void * A = type == GGML_TYPE_Q4_K ? (const void *) A4.data() : (const void *) A6.data();
        run_variant(LLMATIC_QGEMM_K_AVX2, 0, 1, m, n, nb, type, A, nb, B.data(), nb, c2.data(), m);
        run_variant(variant, 0, 1, m, n, nb, type, A, nb, B.data(), nb, cv.data(), m);
        for (int i = 0; i < m * n; i++) {
            if (!(std::abs(c2[i] - cv[i]) <= 1e-4f * (1.0f + std::abs(c2[i])))) return false;
        }
    }
    return true;
}

bool agrees_with_avx2(int variant) {
    for (int n : { 40, 3, 12 }) {
        if (!agrees_with_avx2(variant, n)) return false;
    }
    return true;
}

int cpu_variants() {
    static const int v = [] {
        int bits = 0;
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
            bits |= LLMATIC_QGEMM_K_AVX2;
            if (__builtin_cpu_supports("avxvnni") && agrees_with_avx2(LLMATIC_QGEMM_K_AVX_VNNI))
                bits |= LLMATIC_QGEMM_K_AVX_VNNI;
            if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
                __builtin_cpu_supports("avx512dq")) {
                if (agrees_with_avx2(LLMATIC_QGEMM_K_AVX512_VNNI)) bits |= LLMATIC_QGEMM_K_AVX512_VNNI;
                // (its float pass is AVX512)
                if (llmatic_amx::usable() && agrees_with_avx2(LLMATIC_QGEMM_K_AMX)) bits |= LLMATIC_QGEMM_K_AMX;
            }
        }
        return bits;
    }();
    return v;
}

int forced_variant = 0;  // 0: the faster this CPU runs (chosen_variant)

// Of the 256-bit variants AVX-VNNI, where it runs, is the one used: it gives
// AVX2's floats bit for bit with fewer instructions. Where AVX512 runs too,
// which is faster for prompts is the CPU's business: on Zen 4, whose 512-bit
// instructions take two 256-bit steps, the AVX2 variant (half the float state
// per row and column, which a prompt's 32-column chunks keep in L1) prefilled a
// 1B model 1.1-1.2x faster (in chunks of 32 columns, then). So both are timed
// once on a prompt-sized product (64 rows x 2048, 32 columns), best of 15
// alternating runs, and AVX512 serves prompts where it is 5% faster or more (a
// tie goes to the 256-bit variant, whose float order is ggml's own). The margin
// is what keeps engines started apart on the same choice: on a Zen 5 EPYC
// AVX512 timed 0.79 of AVX-VNNI, and with a 15% threshold one engine of a
// bench:engine run prefilled at AVX-VNNI's speed (0.87 of llama-bench against
// 1.08-1.12), which the 5% threshold leaves 16% away, as far as Zen 4's 1.1-1.2
// on the other side. Decode-sized products (up to 16 columns) take
// AVX512 wherever it runs: on the same Zen 4 it decoded one and 4-8 streams
// faster end to end (bench:engine tg 0.93 vs 0.84 of llama-bench, bench:http 4
// clients 1.64 vs 1.50 of llama-server), which a small timed product, resident
// in L2, does not show.
// AMX, where it runs, takes every product of 2 columns or more (prompts too);
// one column stays with AVX512, as one sub-block product per 16 rows costs AMX
// as much as 16 columns do. On a Sapphire-Rapids-class Xeon, one thread, per
// block and column, 2 / 4 / 8 / 16 columns (amx_small), 8192 x 2048 weights
// (in L3): Q4_K 4.6 / 2.7 / 1.9 / 1.3 ns against AVX512's 6.5 / 4.5 / 3.8 / 4.2,
// Q6_K 6.5 / 4.0 / 2.4 / 1.8 against 7.0 / 4.6 / 3.7 / 4.1; 393216 x 2048 (from
// memory): Q4_K 7.5 / 4.2 / 2.4 / 1.6 against 8.4 / 5.0 / 4.0 / 4.4, Q6_K 9.7 /
// 5.5 / 3.2 / 2.3 against 9.4 / 5.4 / 4.0 / 4.2 (a tie at 2 and 4). 32 columns
// (amx_rows): Q4_K 2.3 against 5.5, Q6_K 2.4 against 6.9. End to end on bench-1b
// (two threads, a decode step of n sequences, 2 / 4 / 8 / 16): 46 / 55 / 76 / 110
// ms against AVX512's 50 / 68 / 109 / 222.
// Index 0: one column, 1: 2 to 16, 2: more.
struct Choice {
    int variant[3];
};

Choice choose_variants() {
    const int have = cpu_variants();
    const int v256 = (have & LLMATIC_QGEMM_K_AVX_VNNI) ? LLMATIC_QGEMM_K_AVX_VNNI
                     : (have & LLMATIC_QGEMM_K_AVX2)   ? LLMATIC_QGEMM_K_AVX2
                                                       : 0;
    if (!(have & LLMATIC_QGEMM_K_AVX512_VNNI)) return { { v256, v256, v256 } };
    if (have & LLMATIC_QGEMM_K_AMX) return { { LLMATIC_QGEMM_K_AVX512_VNNI, LLMATIC_QGEMM_K_AMX, LLMATIC_QGEMM_K_AMX } };
    constexpr int                 m = 64, nb = 8, n = 32;
    Lcg                           r{ 777 };
    const std::vector<block_q4_K> A = random_q4k(m * nb, r);
    const std::vector<block_q8_K> B = random_q8k(n * nb, r);
    std::vector<float>            C(m * n);
    const auto                    timed = [&](int variant) {
        const auto t0 = std::chrono::steady_clock::now();
        run_variant(variant, 0, 1, m, n, nb, GGML_TYPE_Q4_K, A.data(), nb, B.data(), nb, C.data(), m);
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    double best256 = 1e9, best512 = 1e9;
    for (int i = 0; i < 15; i++) {
        best256 = std::min(best256, timed(v256));
        best512 = std::min(best512, timed(LLMATIC_QGEMM_K_AVX512_VNNI));
    }
    const int prompt = best512 < 0.95 * best256 ? LLMATIC_QGEMM_K_AVX512_VNNI : v256;
    return { { LLMATIC_QGEMM_K_AVX512_VNNI, LLMATIC_QGEMM_K_AVX512_VNNI, prompt } };
}

// Choice's index for a product of n columns
int choice_index(int64_t n) {
    return n <= 1 ? 0 : n <= 16 ? 1 : 2;
}

const int * chosen_variant() {
    static const Choice c = choose_variants();
    return c.variant;
}

}  // namespace

int llmatic_qgemm_k_variants(void) {
    return cpu_variants();
}

int llmatic_qgemm_k_chosen(int n) {
    return chosen_variant()[choice_index(n)];
}

int llmatic_qgemm_k_force(int variant) {
    const int before = __atomic_load_n(&forced_variant, __ATOMIC_RELAXED);
    if (variant != 0 && (variant & cpu_variants()) != variant) return -1;
    __atomic_store_n(&forced_variant, variant, __ATOMIC_RELAXED);
    return before;
}

bool llmatic_qgemm_k(int ith, int nth, int64_t m, int64_t n, int64_t k, const void * A, int64_t lda, const void * B,
                     int64_t ldb, void * C, int64_t ldc, int atype, int btype, int ctype) {
    if (btype != GGML_TYPE_Q8_K || ctype != GGML_TYPE_F32) return false;
    if (atype != GGML_TYPE_Q4_K && atype != GGML_TYPE_Q6_K) return false;
    if (n < 1 || k <= 0 || m <= 0 || k > INT32_MAX) return false;
    int variant = __atomic_load_n(&forced_variant, __ATOMIC_RELAXED);
    if (variant == 0) variant = chosen_variant()[choice_index(n)];
    return run_variant(variant, ith, nth, m, n, (int) k, atype, A, lda, (const block_q8_K *) B, ldb, (float *) C, ldc);
}

#else

int llmatic_qgemm_k_variants(void) {
    return 0;
}

int llmatic_qgemm_k_chosen(int) {
    return 0;
}

int llmatic_qgemm_k_force(int variant) {
    return variant == 0 ? 0 : -1;
}

bool llmatic_qgemm_k(int, int, int64_t, int64_t, int64_t, const void *, int64_t, const void *, int64_t, void *, int64_t,
                     int, int, int) {
    return false;
}

#endif
