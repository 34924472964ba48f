// attn.cpp: attention for decode-sized batches (GGML_OP_FLASH_ATTN_EXT with
// fewer than 64 query rows per stream), in place of ggml-cpu's per-cell loop.
//
// ggml computes such a row one KV cell at a time: a function call for the
// 64-wide dot product, a scalar expf, and the weighted V row added into an f16
// accumulator, for every query head on its own. With 8 streams of a few
// hundred tokens on a Llama-3.2-1B shape that was a third of a decode step.
// Here the query heads that share a KV head (GQA) are taken together, the KV
// cells in blocks of 16: a block's K and V rows are converted to f32 once for
// all of them, the scores of 8 cells are summed in one pass, the softmax is
// updated once per block (vectorized exp), and the output is kept in f32.
// Each query row is computed by itself, whatever else is in the batch, so a
// sequence's result does not depend on its neighbours or on how many of its
// own rows a batch holds (1..63: decode, drafts).
//
// The library is linked with --wrap=ggml_compute_forward_flash_attn_ext (see
// CMakeLists.txt, which checks the declaration in ggml-cpu's ops.h). Anything
// this does not cover (other K/V types, ALiBi, soft-capping, attention sinks,
// prompts of 64 rows or more, CPUs without AVX2) goes to ggml's own code.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "ggml-cpu.h"
#include "ggml.h"
#include "llmatic.h"

struct ggml_compute_params;

#ifdef LLMATIC_WRAP_FA
extern "C" void __real_ggml_compute_forward_flash_attn_ext(const ggml_compute_params * params, ggml_tensor * dst);
#endif

namespace {

int      fast_attention = 1;
uint32_t attention_calls = 0;

// the head of ggml's struct ggml_compute_params (ggml-cpu-impl.h; CMakeLists.txt checks it)
struct compute_params_head {
    int ith, nth;
};

}  // namespace

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#    include <immintrin.h>

#    define A_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace {

constexpr int BLOCK = 16;   // KV cells per step
constexpr int GMAX  = 8;    // query heads per pass (more share a KV head: several passes)
constexpr int DMAX  = 256;  // head sizes up to this

// e^x for 8 floats (Cephes' polynomial after a power-of-two split, about 1 ulp in range);
// below -87.3 (and -inf) exactly 0
A_AVX2 inline __m256 exp8(__m256 x) {
    const __m256 lo  = _mm256_set1_ps(-87.3f);
    const __m256 ok  = _mm256_cmp_ps(x, lo, _CMP_GE_OQ);
    x                = _mm256_min_ps(_mm256_max_ps(x, lo), _mm256_set1_ps(88.3f));
    const __m256 fx  = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                       _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    // x - fx ln 2, in two steps for precision
    __m256       r   = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    r                = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256       p   = _mm256_set1_ps(1.9875691500E-4f);
    p                = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
    p                = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
    p                = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
    p                = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
    p                = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
    p                = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i e  = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)), ok);
}

A_AVX2 inline float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m        = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m        = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

A_AVX2 inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s        = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s        = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// the 8 sums of a0..a7's lanes, in one vector
A_AVX2 inline __m256 sums8(const __m256 * a) {
    const __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
    const __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
    const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

// n f16 values to f32 (n a multiple of 8)
A_AVX2 inline void to_f32(const ggml_fp16_t * src, float * dst, int64_t n) {
    for (int64_t i = 0; i < n; i += 8) {
        _mm256_store_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (src + i))));
    }
}

struct Shape {
    const ggml_tensor *q, *k, *v, *mask;
    ggml_tensor *      dst;
    int64_t            DK, DV, N, nkv, G;
    float              scale;
};

// query rows (h0 .. h0 + ng - 1, iq1, iq3) against their KV head ik2 of stream ik3
A_AVX2 void attn_rows(const Shape & s, int64_t iq1, int64_t iq3, int64_t h0, int ng, int64_t ik2, int64_t ik3) {
    const int64_t DK = s.DK, DV = s.DV;
    alignas(32) float qf[GMAX][DMAX];
    alignas(32) float kf[BLOCK][DMAX];
    alignas(32) float vf[BLOCK][DMAX];
    alignas(32) float o[GMAX][DMAX];
    alignas(32) float sc[GMAX][BLOCK];
    float             M[GMAX], S[GMAX];
    const ggml_fp16_t * mp[GMAX];
    for (int g = 0; g < ng; g++) {
        const int64_t h  = h0 + g;
        const float * pq = (const float *) ((const char *) s.q->data + iq1 * s.q->nb[1] + h * s.q->nb[2] + iq3 * s.q->nb[3]);
        for (int64_t d = 0; d < DK; d += 8) {
            _mm256_store_ps(qf[g] + d, _mm256_mul_ps(_mm256_loadu_ps(pq + d), _mm256_set1_ps(s.scale)));
        }
        std::memset(o[g], 0, sizeof(float) * DV);
        M[g]  = -INFINITY;
        S[g]  = 0.0f;
        mp[g] = s.mask ? (const ggml_fp16_t *) ((const char *) s.mask->data + iq1 * s.mask->nb[1] +
                                                (h % s.mask->ne[2]) * s.mask->nb[2] + (iq3 % s.mask->ne[3]) * s.mask->nb[3])
                       : nullptr;
    }
    const char * kbase = (const char *) s.k->data + ik2 * s.k->nb[2] + ik3 * s.k->nb[3];
    const char * vbase = (const char *) s.v->data + ik2 * s.v->nb[2] + ik3 * s.v->nb[3];
    for (int64_t c0 = 0; c0 < s.nkv; c0 += BLOCK) {
        const int nc = (int) std::min<int64_t>(BLOCK, s.nkv - c0);
        // the block's mask for each head (-inf past the cells); nothing to do if it hides every cell
        alignas(32) float mk[GMAX][BLOCK];
        bool              any = false;
        for (int g = 0; g < ng; g++) {
            if (!mp[g]) {
                for (int c = 0; c < BLOCK; c++) mk[g][c] = c < nc ? 0.0f : -INFINITY;
                any = true;
                continue;
            }
            if (nc == BLOCK) {
                const __m128i * m16 = (const __m128i *) (mp[g] + c0);
                _mm256_store_ps(mk[g], _mm256_cvtph_ps(_mm_loadu_si128(m16)));
                _mm256_store_ps(mk[g] + 8, _mm256_cvtph_ps(_mm_loadu_si128(m16 + 1)));
            } else {
                for (int c = 0; c < BLOCK; c++) mk[g][c] = c < nc ? _cvtsh_ss(mp[g][c0 + c]) : -INFINITY;
            }
            const __m256 ninf = _mm256_set1_ps(-INFINITY);
            const __m256 hid  = _mm256_and_ps(_mm256_cmp_ps(_mm256_load_ps(mk[g]), ninf, _CMP_EQ_OQ),
                                              _mm256_cmp_ps(_mm256_load_ps(mk[g] + 8), ninf, _CMP_EQ_OQ));
            any |= _mm256_movemask_ps(hid) != 0xff;
        }
        if (!any) continue;
        for (int c = 0; c < nc; c++) {
            to_f32((const ggml_fp16_t *) (kbase + (c0 + c) * s.k->nb[1]), kf[c], DK);
            to_f32((const ggml_fp16_t *) (vbase + (c0 + c) * s.v->nb[1]), vf[c], DV);
        }
        for (int c = nc; c < BLOCK; c++) {
            std::memset(kf[c], 0, sizeof(float) * DK);
            std::memset(vf[c], 0, sizeof(float) * DV);
        }
        for (int g = 0; g < ng; g++) {
            // scores of the block's cells: 8 at a time, one accumulator each
            for (int c8 = 0; c8 < BLOCK; c8 += 8) {
                __m256 a[8];
                for (int c = 0; c < 8; c++) a[c] = _mm256_setzero_ps();
                for (int64_t d = 0; d < DK; d += 8) {
                    const __m256 qv = _mm256_load_ps(qf[g] + d);
                    for (int c = 0; c < 8; c++) a[c] = _mm256_fmadd_ps(qv, _mm256_load_ps(kf[c8 + c] + d), a[c]);
                }
                _mm256_store_ps(sc[g] + c8, _mm256_add_ps(sums8(a), _mm256_load_ps(mk[g] + c8)));
            }
            const __m256 s0 = _mm256_load_ps(sc[g]), s1 = _mm256_load_ps(sc[g] + 8);
            const float  bm = hmax8(_mm256_max_ps(s0, s1));
            if (bm == -INFINITY) continue;
            const float  Mn    = std::max(M[g], bm);
            const float  alpha = std::exp(M[g] - Mn);  // 0 on the first block
            const __m256 mv    = _mm256_set1_ps(Mn);
            const __m256 p0 = exp8(_mm256_sub_ps(s0, mv)), p1 = exp8(_mm256_sub_ps(s1, mv));
            S[g] = S[g] * alpha + hsum8(_mm256_add_ps(p0, p1));
            M[g] = Mn;
            alignas(32) float p[BLOCK];
            _mm256_store_ps(p, p0);
            _mm256_store_ps(p + 8, p1);
            const __m256 av = _mm256_set1_ps(alpha);
            // o = o alpha + sum of p_c v_c, 64 dimensions at a time in registers
            for (int64_t d0 = 0; d0 < DV; d0 += 64) {
                const int nd = (int) std::min<int64_t>(8, (DV - d0) / 8);
                __m256    acc[8];
                for (int i = 0; i < nd; i++) acc[i] = _mm256_mul_ps(_mm256_load_ps(o[g] + d0 + 8 * i), av);
                for (int c = 0; c < nc; c++) {
                    const __m256 pc = _mm256_set1_ps(p[c]);
                    for (int i = 0; i < nd; i++) acc[i] = _mm256_fmadd_ps(pc, _mm256_load_ps(vf[c] + d0 + 8 * i), acc[i]);
                }
                for (int i = 0; i < nd; i++) _mm256_store_ps(o[g] + d0 + 8 * i, acc[i]);
            }
        }
    }
    const int64_t ne1 = s.dst->ne[1], ne2 = s.dst->ne[2];
    for (int g = 0; g < ng; g++) {
        const int64_t h   = h0 + g;
        const float   inv = S[g] == 0.0f ? 0.0f : 1.0f / S[g];
        // (ggml's layout: dst is the permuted (0, 2, 1, 3) output)
        float * out = (float *) ((char *) s.dst->data + (iq3 * ne2 * ne1 + h + iq1 * ne1) * s.dst->nb[1]);
        for (int64_t d = 0; d < DV; d++) out[d] = o[g][d] * inv;
    }
}

bool cpu_ok() {
    static const bool ok =
        __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    return ok;
}

// false: not a case this covers (ggml's code takes it)
bool attend(int ith, int nth, ggml_tensor * dst) {
    const ggml_tensor * q = dst->src[0];
    const ggml_tensor * k = dst->src[1];
    const ggml_tensor * v = dst->src[2];
    const ggml_tensor * m = dst->src[3];
    if (!cpu_ok() || dst->src[4] != nullptr) return false;  // attention sinks
    if (q->type != GGML_TYPE_F32 || k->type != GGML_TYPE_F16 || v->type != GGML_TYPE_F16 || dst->type != GGML_TYPE_F32)
        return false;
    float scale = 1.0f, max_bias = 0.0f, softcap = 0.0f;
    std::memcpy(&scale, (const float *) dst->op_params + 0, sizeof(float));
    std::memcpy(&max_bias, (const float *) dst->op_params + 1, sizeof(float));
    std::memcpy(&softcap, (const float *) dst->op_params + 2, sizeof(float));
    if (max_bias != 0.0f || softcap != 0.0f) return false;
    const int64_t DK = k->ne[0], DV = v->ne[0], N = q->ne[1];
    if (q->ne[0] != DK || DK % 8 != 0 || DV % 8 != 0 || DK > DMAX || DV > DMAX || N >= 64) return false;
    if (q->nb[0] != sizeof(float) || k->nb[0] != 2 || v->nb[0] != 2 || dst->nb[0] != sizeof(float)) return false;
    if (v->ne[1] != k->ne[1] || k->ne[2] == 0 || k->ne[3] == 0 || q->ne[2] % k->ne[2] != 0 || q->ne[3] % k->ne[3] != 0 ||
        v->ne[2] != k->ne[2] || v->ne[3] != k->ne[3])
        return false;
    if (dst->ne[0] != DV || dst->ne[1] != q->ne[2] || dst->ne[2] != N) return false;
    if (m && (m->type != GGML_TYPE_F16 || m->nb[0] != 2 || m->ne[0] < k->ne[1] || m->ne[1] < N || m->ne[2] == 0 ||
              m->ne[3] == 0))
        return false;
    Shape s{ q, k, v, m, dst, DK, DV, N, k->ne[1], q->ne[2] / k->ne[2], scale };
    const int64_t rk3 = q->ne[3] / k->ne[3];
    // work items: (stream, KV head, query row, pass over its heads), dealt round-robin
    const int64_t passes = (s.G + GMAX - 1) / GMAX;
    const int64_t items  = q->ne[3] * k->ne[2] * N * passes;
    for (int64_t it = ith; it < items; it += nth) {
        int64_t       r    = it;
        const int64_t pass = r % passes;
        r /= passes;
        const int64_t iq1 = r % N;
        r /= N;
        const int64_t ik2 = r % k->ne[2];
        const int64_t iq3 = r / k->ne[2];
        const int64_t h0  = ik2 * s.G + pass * GMAX;
        const int     ng  = (int) std::min<int64_t>(GMAX, s.G - pass * GMAX);
        attn_rows(s, iq1, iq3, h0, ng, ik2, iq3 / rk3);
    }
    return true;
}

}  // namespace

#else

namespace {
bool attend(int, int, ggml_tensor *) {
    return false;
}
}  // namespace

#endif

#ifdef LLMATIC_WRAP_FA
extern "C" void __wrap_ggml_compute_forward_flash_attn_ext(const ggml_compute_params * params, ggml_tensor * dst) {
    const auto * head = (const compute_params_head *) params;
    // (every thread of the op decides alike: the switch changes between decodes only)
    if (__atomic_load_n(&fast_attention, __ATOMIC_RELAXED) && attend(head->ith, head->nth, dst)) {
        if (head->ith == 0) __atomic_add_fetch(&attention_calls, 1, __ATOMIC_RELAXED);
        return;
    }
    __real_ggml_compute_forward_flash_attn_ext(params, dst);
}
#endif

int32_t llmatic_set_fast_attention(int32_t on) {
    return __atomic_exchange_n(&fast_attention, on ? 1 : 0, __ATOMIC_RELAXED);
}

uint32_t llmatic_attention_calls(void) {
    return __atomic_load_n(&attention_calls, __ATOMIC_RELAXED);
}

// One FLASH_ATTN_EXT op on the given data through ggml's CPU backend (a graph
// of its own), with llmatic's attention on or off: what the tests compare with
// an exact reference. q: [DK, N, HQ, NS] f32; k: [DK, NKV, HKV, NS] and v: [DV,
// NKV, HKV, NS] f16; mask: [NKV, N, 1, NS] f16 or null; out: [DV, HQ, N, NS].
bool llmatic_attention_probe(const float * q, const uint16_t * k, const uint16_t * v, const uint16_t * mask, int32_t DK,
                             int32_t DV, int32_t N, int32_t NKV, int32_t HQ, int32_t HKV, int32_t NS, float scale,
                             int32_t threads, int32_t on, float * out) {
    if (DK <= 0 || DV <= 0 || N <= 0 || NKV <= 0 || HQ <= 0 || HKV <= 0 || NS <= 0 || HQ % HKV != 0 || threads <= 0)
        return false;
    const size_t bytes = sizeof(float) * ((size_t) DK * N * HQ + (size_t) DV * HQ * N) * NS +
                         2 * ((size_t) (DK + DV) * NKV * HKV + (size_t) NKV * N) * NS + 16 * 1024 * 1024;
    ggml_init_params ip{ bytes, nullptr, false };
    ggml_context *   ctx = ggml_init(ip);
    if (!ctx) return false;
    ggml_tensor * tq = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, DK, N, HQ, NS);
    ggml_tensor * tk = ggml_new_tensor_4d(ctx, GGML_TYPE_F16, DK, NKV, HKV, NS);
    ggml_tensor * tv = ggml_new_tensor_4d(ctx, GGML_TYPE_F16, DV, NKV, HKV, NS);
    ggml_tensor * tm = mask ? ggml_new_tensor_4d(ctx, GGML_TYPE_F16, NKV, N, 1, NS) : nullptr;
    std::memcpy(tq->data, q, ggml_nbytes(tq));
    std::memcpy(tk->data, k, ggml_nbytes(tk));
    std::memcpy(tv->data, v, ggml_nbytes(tv));
    if (tm) std::memcpy(tm->data, mask, ggml_nbytes(tm));
    ggml_tensor * r = ggml_flash_attn_ext(ctx, tq, tk, tv, tm, scale, 0.0f, 0.0f);
    ggml_flash_attn_ext_set_prec(r, GGML_PREC_F32);
    ggml_cgraph * gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, r);
    const int32_t before = llmatic_set_fast_attention(on);
    const bool    ok     = ggml_graph_compute_with_ctx(ctx, gf, threads) == GGML_STATUS_SUCCESS;
    llmatic_set_fast_attention(before);
    if (ok) std::memcpy(out, r->data, ggml_nbytes(r));
    ggml_free(ctx);
    return ok;
}
