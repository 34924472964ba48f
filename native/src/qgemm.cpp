// qgemm.cpp: small-batch products of Q8_0 / Q5_0 weights with Q8_0 activations
// on x86 CPUs with AVX512-VNNI (one vpdpbusd per 64 byte pairs) or AMX-INT8.
//
// ggml hands these products to llamafile's tinyBLAS (256-bit AVX2 code) or to its
// per-column dot products; for the few columns of a decode batch both leave most
// of an AVX512-VNNI core unused. This kernel computes C = A * B for such a product:
//   A: m rows of k/32 weight blocks (Q8_0 or Q5_0), row stride lda blocks
//   B: n columns of k/32 Q8_0 blocks (the quantized activations), stride ldb
//   C: n columns of m floats, column stride ldc
// Block formats are GGUF's (ggml-common.h). AVX512: unsigned x signed products,
// each weight with an offset (Q8_0 +128, Q5_0 +16) that the block's column sum
// takes off again, folded into the accumulator's start value. AMX: signed x
// signed tiles (see below), used wherever the CPU has it and it agrees with the
// AVX512 kernel on a small product at first use.
#include "qgemm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#    include <immintrin.h>

#    include "amx.h"
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

// Software prefetch of the weights, 4 KiB ahead of where the tile reads: without
// it a matrix streamed from memory at about half the speed of the same product
// in L3 (on a Zen 5 EPYC, 65536 x 896 Q8_0 weights, one thread, 8 / 12 / 16
// columns: 7.8 / 9.7 / 17.1 ms without, 4.3 / 6.5 / 9.2 with; 1 KiB ahead gave
// 6.7 / 8.7 / 10.1, 8 KiB the same as 4; no change in L3)
constexpr int PREFETCH_AHEAD = 4096;

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
            // the weights PREFETCH_AHEAD bytes on (a pair of blocks is 68 or 44 bytes)
            const char * ahead = (const char *) (row + l) + PREFETCH_AHEAD;
            _mm_prefetch(ahead, _MM_HINT_T0);
            _mm_prefetch(ahead + 64, _MM_HINT_T0);
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
    // Under 8 columns (one column too: bench:engine tg128 on the bench model, Zen 5
    // EPYC, 93.5 t/s this way against 63.0 through ggml's vec_dot) a row at a time: pairs of rows, read two blocks of each in
    // turn, streamed from memory slower on a Zen 5 EPYC (65536 x 896 Q8_0
    // weights, one thread, 2 / 4 / 7 columns: 2.8 / 3.1 / 3.9 ms as pairs, 1.9 /
    // 2.5 / 3.9 one row at a time, both with the prefetch; without it 6.3 / 6.9 /
    // 8.0 against 2.2 / 2.6 / 6.7); from 8 columns on pairs were as fast or
    // faster; in L3 the two tie)
    if (p.n < 8) {
        const int64_t r0 = m * ith / nth;
        const int64_t r1 = m * (ith + 1) / nth;
        for (int64_t r = r0; r < r1; r++) rows<BA, 1>(A, lda, p, nb, C, ldc, r);
        return;
    }
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


// ---- AMX ---------------------------------------------------------------------
// On CPUs with AMX-INT8 one tdpbssd multiplies 16 weight rows with up to 16
// columns, 64 bytes deep. Blocks have 32 weights and scales of their own, so a
// product tile holds one block's products (9..16 columns) or, for up to 8
// columns, two blocks' side by side: the weight tile's rows are two blocks (64
// bytes) and the activation tile puts block 2t's activations in the first 32
// bytes of its first column slot and block 2t+1's in the last 32 of its second
// (the other half zero). Weights are unpacked to signed bytes (Q8_0 ones are
// read in place for one block per product). Each product tile is stored and
// scaled in float with AVX512 (the weight rows' and the columns' block scales),
// two in flight, as a tile's products must be stored before it takes the next.
// Per chunk of up to 16 columns the activations are copied once into the
// tiles' layout. Tiles: 0 products, 1 weights, 2 activations; 4, 5, 6 the
// same for the second product in flight.
struct amx_b {
    std::vector<uint8_t> q;  // per step (S blocks): 8 S rows of S * NCP columns x 4 bytes
    std::vector<float>   d;  // [block][16], 0 past the chunk's columns and blocks
};

thread_local amx_b tl_amx;

// S blocks per product, NCP column slots per block (a power of two >= nc)
QGEMM_TARGET static void amx_pack_b(amx_b & p, const block_q8 * B, int64_t ldb, int nc, int nb, int S, int NCP) {
    const int    steps = (nb + S - 1) / S;
    const int    row   = 4 * S * NCP;  // bytes per tile row
    const size_t step  = (size_t) 8 * S * row;
    p.q.assign(steps * step, 0);
    p.d.assign((size_t) steps * S * 16, 0.0f);
    // a block's 8 groups of 4 activations go to 8 tile rows
    const __m256i rows = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(row));
    for (int c = 0; c < nc; c++) {
        const block_q8 * col = B + (int64_t) c * ldb;
        for (int l = 0; l < nb; l++) {
            const int j = l % S;
            _mm256_i32scatter_epi32(p.q.data() + (l / S) * step + (size_t) 8 * j * row + 4 * (j * NCP + c), rows,
                                    _mm256_loadu_si256((const __m256i *) col[l].qs), 1);
            p.d[(size_t) l * 16 + c] = h2f(col[l].d);
        }
    }
}

// one block of a weight row as 32 signed bytes
QGEMM_TARGET static inline __m256i amx_weights(const block_q8 * b) {
    return _mm256_loadu_si256((const __m256i *) b->qs);
}

QGEMM_TARGET static inline __m256i amx_weights(const block_q5 * b) {
    return _mm256_sub_epi8(unpack(b), _mm256_set1_epi8(16));
}

// S blocks of a weight row from x on (S * 32 bytes; a block past the row's last, nb, is zero)
template <typename BA, int S>
QGEMM_TARGET static inline void amx_unpack(const BA * x, int l, int nb, int8_t * w) {
    _mm256_store_si256((__m256i *) w, amx_weights(x));
    if constexpr (S == 2) {
        _mm256_store_si256((__m256i *) (w + 32), l + 1 < nb ? amx_weights(x + 1) : _mm256_setzero_si256());
    }
}

// One chunk of nc <= NCP columns (NCP: 1, 2, 4, 8 or 16) for this thread's groups of
// 16 weight rows, S = 2 blocks per product up to 8 columns, else 1. A product's
// 16 x S NCP integers are stored row after row and fill V = S NCP vectors of 16
// lanes (16 / V rows each): its float pass takes V steps.
template <typename BA, int NCP, int S>
QGEMM_TARGET static void amx_chunk(int64_t g0, int64_t g1, int64_t m, int nc, int nb, const BA * A, int64_t lda,
                                   const amx_b & pb, float * C, int64_t ldc) {
    constexpr int  V        = S * NCP;
    constexpr int  RV       = 16 / V;  // rows per vector of products
    constexpr int  K        = 32 * S;  // bytes per weight tile row
    constexpr bool IN_PLACE = S == 1 && sizeof(BA) == sizeof(block_q8);
    const int      steps    = (nb + S - 1) / S;
    const size_t   step     = (size_t) 8 * S * 4 * V;  // activation bytes per step
    alignas(64) int8_t  w[2][16][K];
    alignas(64) int32_t prod[2][16 * V];
    // lane i of vector q: row q RV + i / V, block slot (i / NCP) % S, column i % NCP; the
    // weight scales of a step are 16 x S floats (slot-major), the columns' 16 x S
    __m512i rowpick[V];
    for (int q = 0; q < V; q++) {
        alignas(64) int32_t idx[16];
        for (int i = 0; i < 16; i++) idx[i] = q * RV + i / V + 16 * ((i / NCP) % S);
        rowpick[q] = _mm512_load_si512(idx);
    }
    alignas(64) int32_t cidx[16];
    for (int i = 0; i < 16; i++) cidx[i] = i % NCP + 16 * ((i / NCP) % S);
    const __m512i colpick = _mm512_load_si512(cidx);
    // the weight scales' offsets from a group's first row
    const __m512i rowoff = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                              _mm512_set1_epi32((int32_t) (lda * (int64_t) sizeof(BA))));
    for (int64_t gi = g0; gi < g1; gi++) {
        const int64_t   g      = 16 * gi;
        const int       rows   = (int) std::min<int64_t>(16, m - g);
        const bool      direct = IN_PLACE && rows == 16;
        const __mmask16 valid  = (__mmask16) ((1u << rows) - 1);
        __m512          acc[V];
        for (int q = 0; q < V; q++) acc[q] = _mm512_setzero_ps();
        if (rows < 16) std::memset(w, 0, sizeof(w));
        __m512 dw[2][2];  // [product in flight][block slot]
        for (int t = 0; t < steps; t += 2) {
            const int nh = std::min(2, steps - t);
            for (int h = 0; h < nh; h++) {
                const int  l  = S * (t + h);
                const BA * x0 = A + g * lda + l;
                // the 16 rows' scales: 4 bytes from each (the scale and what follows it in the block)
                for (int j = 0; j < S; j++) {
                    const __mmask16 k   = l + j < nb ? valid : 0;
                    const __m512i   d32 = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), k, rowoff, x0 + j, 1);
                    dw[h][j]            = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(d32));
                }
                // (the same blocks of the next group's rows: a group reads its rows side by side)
                for (int r = 0; r < rows; r++) _mm_prefetch((const char *) (x0 + (r + 16) * lda), _MM_HINT_T0);
                if (!direct) {
                    for (int r = 0; r < rows; r++) amx_unpack<BA, S>(x0 + r * lda, l, nb, w[h][r]);
                }
                const uint8_t * act = pb.q.data() + (t + h) * step;
// products into tile tc from weights ta (in place or unpacked) and activations tb, stored to prod[h]
#    define QGEMM_AMX_PRODUCT(tc, ta, tb)                                                \
        do {                                                                             \
            if (direct) AMX_TILE_LOAD(ta, x0->qs, lda * (int64_t) sizeof(BA));           \
            else AMX_TILE_LOAD(ta, w[h], K);                                             \
            AMX_TILE_LOAD(tb, act, 4 * V);                                               \
            AMX_TILE_ZERO(tc);                                                           \
            AMX_TILE_DPBSSD(tc, ta, tb);                                                 \
            AMX_TILE_STORE(tc, prod[h], 4 * V);                                          \
        } while (0)
                if (h == 0) QGEMM_AMX_PRODUCT(0, 1, 2);
                else QGEMM_AMX_PRODUCT(4, 5, 6);
#    undef QGEMM_AMX_PRODUCT
            }
            for (int h = 0; h < nh; h++) {
                const float * d0 = &pb.d[(size_t) S * (t + h) * 16];
                const __m512  dy = S == 2 ? _mm512_permutex2var_ps(_mm512_loadu_ps(d0), colpick, _mm512_loadu_ps(d0 + 16))
                                          : _mm512_permutexvar_ps(colpick, _mm512_loadu_ps(d0));
                for (int q = 0; q < V; q++) {
                    const __m512 v  = _mm512_cvtepi32_ps(_mm512_load_si512((const void *) (prod[h] + 16 * q)));
                    const __m512 sw = S == 2 ? _mm512_permutex2var_ps(dw[h][0], rowpick[q], dw[h][1])
                                             : _mm512_permutexvar_ps(rowpick[q], dw[h][0]);
                    acc[q]          = _mm512_fmadd_ps(v, _mm512_mul_ps(dy, sw), acc[q]);
                }
            }
        }
        alignas(64) float out[16 * V];  // [row][block slot][column]
        for (int q = 0; q < V; q++) _mm512_store_ps(out + 16 * q, acc[q]);
        for (int c = 0; c < nc; c++) {
            float * dst = C + (int64_t) c * ldc + g;
            for (int r = 0; r < rows; r++) {
                float v = 0.0f;
                for (int j = 0; j < S; j++) v += out[r * V + j * NCP + c];
                dst[r] = v;
            }
        }
    }
}

// Two blocks per product for Q5_0 up to 8 columns (its weights are unpacked anyway,
// and it halves the tile instructions: 4 columns 1.45x faster than one block per
// product, one thread); Q8_0's are read in place, one block per product, which
// was faster at every column count than copying them in pairs.
template <typename BA> static constexpr bool amx_pair(int ncp) {
    return sizeof(BA) == sizeof(block_q5) && ncp <= 8;
}

template <typename BA>
QGEMM_TARGET static void amx_run(int ith, int nth, int64_t m, int64_t n, int nb, const BA * A, int64_t lda,
                                 const block_q8 * B, int64_t ldb, float * C, int64_t ldc) {
    const int64_t groups = (m + 15) / 16;
    const int64_t g0 = groups * ith / nth, g1 = groups * (ith + 1) / nth;
    if (g0 >= g1) return;
    amx_b &                pb = tl_amx;
    llmatic_amx::TileScope scope;
    for (int64_t c0 = 0; c0 < n; c0 += 16) {
        const int nc  = (int) std::min<int64_t>(16, n - c0);
        const int ncp = nc <= 1 ? 1 : nc <= 2 ? 2 : nc <= 4 ? 4 : nc <= 8 ? 8 : 16;
        const int S   = amx_pair<BA>(ncp) ? 2 : 1;
        amx_pack_b(pb, B + c0 * ldb, ldb, nc, nb, S, ncp);
        llmatic_amx::TileConfig cfg;
        cfg.palette = 1;
        for (int t : { 0, 4 }) cfg.rows[t] = 16, cfg.colsb[t] = (uint16_t) (4 * S * ncp);
        for (int t : { 1, 5 }) cfg.rows[t] = 16, cfg.colsb[t] = (uint16_t) (32 * S);
        for (int t : { 2, 6 }) cfg.rows[t] = (uint8_t) (8 * S), cfg.colsb[t] = (uint16_t) (4 * S * ncp);
        llmatic_amx::tile_config_load(cfg);
        float * c = C + c0 * ldc;
        switch (ncp) {
            case 1: S == 2 ? amx_chunk<BA, 1, 2>(g0, g1, m, nc, nb, A, lda, pb, c, ldc) : amx_chunk<BA, 1, 1>(g0, g1, m, nc, nb, A, lda, pb, c, ldc); break;
            case 2: S == 2 ? amx_chunk<BA, 2, 2>(g0, g1, m, nc, nb, A, lda, pb, c, ldc) : amx_chunk<BA, 2, 1>(g0, g1, m, nc, nb, A, lda, pb, c, ldc); break;
            case 4: S == 2 ? amx_chunk<BA, 4, 2>(g0, g1, m, nc, nb, A, lda, pb, c, ldc) : amx_chunk<BA, 4, 1>(g0, g1, m, nc, nb, A, lda, pb, c, ldc); break;
            case 8: S == 2 ? amx_chunk<BA, 8, 2>(g0, g1, m, nc, nb, A, lda, pb, c, ldc) : amx_chunk<BA, 8, 1>(g0, g1, m, nc, nb, A, lda, pb, c, ldc); break;
            default: amx_chunk<BA, 16, 1>(g0, g1, m, nc, nb, A, lda, pb, c, ldc); break;
        }
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

// one product with the given variant (a single bit)
static void run_variant(int variant, int ith, int nth, int64_t m, int64_t n, int nb, const void * A, int64_t lda,
                        const void * B, int64_t ldb, float * C, int64_t ldc, int atype) {
    // (AMX gathers a group's 16 weight scales with 32-bit offsets)
    if (variant == LLMATIC_QGEMM_AMX && lda <= INT32_MAX / 16 / (int64_t) sizeof(block_q8)) {
        if (atype == GGML_TYPE_Q8_0) amx_run(ith, nth, m, n, nb, (const block_q8 *) A, lda, (const block_q8 *) B, ldb, C, ldc);
        else amx_run(ith, nth, m, n, nb, (const block_q5 *) A, lda, (const block_q8 *) B, ldb, C, ldc);
    } else {
        qgemm_avx512(ith, nth, m, n, nb, A, lda, B, ldb, C, ldc, atype);
    }
}

// AMX is used only if it computes what the AVX512 kernel does on a small product
// of pseudo-random blocks (both types; 24 rows: a partial group of 16; 20
// columns: two chunks, the second of 4)
static bool amx_agrees() {
    constexpr int m = 24, n = 20, nb = 3;
    uint32_t      seed = 4242;
    const auto    next = [&] {
        seed = seed * 1103515245u + 12345u;
        return (uint8_t) (seed >> 16);
    };
    const auto blocks = [&](int count, size_t size) {
        std::vector<uint8_t> v(count * size);
        for (int i = 0; i < count; i++) {
            const uint16_t d = (uint16_t) (0x1c00 + (next() & 0xff));  // about 1/256
            std::memcpy(&v[i * size], &d, 2);
            for (size_t j = 2; j < size; j++) v[i * size + j] = next();
        }
        return v;
    };
    const std::vector<uint8_t> B = blocks(n * nb, sizeof(block_q8));
    for (int atype : { GGML_TYPE_Q8_0, GGML_TYPE_Q5_0 }) {
        const std::vector<uint8_t> A = blocks(m * nb, atype == GGML_TYPE_Q8_0 ? sizeof(block_q8) : sizeof(block_q5));
        std::vector<float>         want(m * n), got(m * n);
        run_variant(LLMATIC_QGEMM_AVX512_VNNI, 0, 1, m, n, nb, A.data(), nb, B.data(), nb, want.data(), m, atype);
        run_variant(LLMATIC_QGEMM_AMX, 0, 1, m, n, nb, A.data(), nb, B.data(), nb, got.data(), m, atype);
        for (int i = 0; i < m * n; i++) {
            if (!(std::abs(want[i] - got[i]) <= 1e-4f * (1.0f + std::abs(want[i])))) return false;
        }
    }
    return true;
}

static int qgemm_variants() {
    static const int v = [] {
        if (!cpu_has_vnni()) return 0;
        int bits = LLMATIC_QGEMM_AVX512_VNNI;
        if (llmatic_amx::usable() && amx_agrees()) bits |= LLMATIC_QGEMM_AMX;
        return bits;
    }();
    return v;
}

// AMX wherever it runs (on a Sapphire-Rapids-class Xeon it decoded the bench
// model's one token in 23 ms against AVX512's 34, and 4 sequences in 33 against 55)
static int chosen_variant() {
    const int have = qgemm_variants();
    return (have & LLMATIC_QGEMM_AMX) ? LLMATIC_QGEMM_AMX : have & LLMATIC_QGEMM_AVX512_VNNI;
}

static int qgemm_forced = 0;  // 0: chosen_variant()

int llmatic_qgemm_variants(void) {
    return qgemm_variants();
}

int llmatic_qgemm_force(int variant) {
    const int before = __atomic_load_n(&qgemm_forced, __ATOMIC_RELAXED);
    if (variant != 0 && (variant & qgemm_variants()) != variant) return -1;
    __atomic_store_n(&qgemm_forced, variant, __ATOMIC_RELAXED);
    return before;
}

bool llmatic_qgemm(int ith, int nth, int64_t m, int64_t n, int64_t k, const void * A, int64_t lda, const void * B,
                   int64_t ldb, void * C, int64_t ldc, int atype, int btype, int ctype) {
    if (!cpu_has_vnni() || btype != GGML_TYPE_Q8_0 || ctype != GGML_TYPE_F32) return false;
    if (atype != GGML_TYPE_Q8_0 && atype != GGML_TYPE_Q5_0) return false;
    if (n < 1 || k <= 0 || m <= 0 || k > INT32_MAX) return false;
    int variant = __atomic_load_n(&qgemm_forced, __ATOMIC_RELAXED);
    if (variant == 0) variant = chosen_variant();
    // ggml passes k in blocks
    run_variant(variant, ith, nth, m, n, (int) k, A, lda, B, ldb, (float *) C, ldc, atype);
    return true;
}

#else

bool llmatic_qgemm_supported(void) {
    return false;
}

int llmatic_qgemm_variants(void) {
    return 0;
}

int llmatic_qgemm_force(int variant) {
    return variant == 0 ? 0 : -1;
}

bool llmatic_qgemm(int, int, int64_t, int64_t, int64_t, const void *, int64_t, const void *, int64_t, void *, int64_t,
                   int, int, int) {
    return false;
}

#endif
