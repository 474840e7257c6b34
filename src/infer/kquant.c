/* kquant.c - Q4_K and Q6_K weights against Q8_K activations, and float32 rows, for rl_qmodel.
 *
 * K-quants group 256 values into a super-block with one fp16 scale (Q4_K: also an fp16 min
 * scale) and small per-group scales (Q4_K: eight 6-bit scales and mins per 32 values; Q6_K:
 * sixteen int8 scales per 16 values). As in llama.cpp, the activations are quantized to Q8_K
 * (256 int8 values, one float scale, and the sums of each 16 values) so that the inner loop is
 * integer multiply-adds and the per-group mins / offsets come from those sums:
 *   Q4_K:  sum_g d s_g dx (q4 . q8)_g  -  dmin dx sum_g m_g (sum of q8 over g)
 *   Q6_K:  d dx sum_g s_g ((q6 . q8)_g - 32 (sum of q8 over g))
 * Each has a scalar reference (always built, the definition the tests check the kernels
 * against) and an AVX2 kernel chosen at run time (RAFTLM_NO_SIMD=1 forces the scalar one).
 * Weights are quantized by the model module's ggml quantizers (src/model/ggml_quant.c).
 *
 * The float32 dot product is here too: rl_qmodel can keep float32 matrices and still decode
 * through the same threaded matrix-vector products (AVX-512 or AVX2 FMA kernels). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "infer/infer_internal.h"

void rl_q8_k_quantize(rl_block_q8_k *out, const float *x, size_t n) {
    // x (n), out (n / 256): d = amax / 127, q = round(x / d), bsums = sums of each 16 q
    for (size_t b = 0; b < n / RL_QK_K; b++) {
        const float *v = x + b * RL_QK_K;
        float amax = 0.0f;
        for (int i = 0; i < RL_QK_K; i++) amax = fmaxf(amax, fabsf(v[i]));
        float d = amax / 127.0f, id = d > 0.0f ? 1.0f / d : 0.0f;
        out[b].d = d;
        for (int g = 0; g < RL_QK_K / 16; g++) {
            int s = 0;
            for (int i = 0; i < 16; i++) {
                int q = (int)lrintf(v[g * 16 + i] * id);
                out[b].qs[g * 16 + i] = (int8_t)q;
                s += q;
            }
            out[b].bsums[g] = (int16_t)s;
        }
    }
}

/* The six-bit scales and mins of the eight groups of a Q4_K block. */
void infer_q4k_scales(const uint8_t *sc, uint8_t s[8], uint8_t m[8]) {
    for (int g = 0; g < 8; g++) {
        if (g < 4) s[g] = sc[g] & 63, m[g] = sc[g + 4] & 63;
        else s[g] = (uint8_t)((sc[g + 4] & 15) | ((sc[g - 4] >> 6) << 4)), m[g] = (uint8_t)((sc[g + 4] >> 4) | ((sc[g] >> 6) << 4));
    }
}

float rl_q4_k_dot_ref(const rl_block_q4_k *w, const rl_block_q8_k *x, size_t nb) {
    float sum = 0.0f;
    for (size_t i = 0; i < nb; i++) {
        uint8_t s[8], m[8];
        infer_q4k_scales(w[i].scales, s, m);
        int dot = 0, mins = 0;
        for (int g = 0; g < 8; g++) {
            const uint8_t *q = w[i].qs + (g / 2) * 32; // groups 2k and 2k+1 share 32 bytes: low / high nibbles
            int d = 0;
            for (int l = 0; l < 32; l++) d += ((g & 1) ? q[l] >> 4 : q[l] & 15) * x[i].qs[g * 32 + l];
            dot += s[g] * d;
            mins += m[g] * (x[i].bsums[2 * g] + x[i].bsums[2 * g + 1]);
        }
        sum += x[i].d * (rl_fp16_to_fp32(w[i].d) * (float)dot - rl_fp16_to_fp32(w[i].dmin) * (float)mins);
    }
    return sum;
}

float rl_q6_k_dot_ref(const rl_block_q6_k *w, const rl_block_q8_k *x, size_t nb) {
    float sum = 0.0f;
    for (size_t i = 0; i < nb; i++) {
        int dot = 0;
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = w[i].ql + 64 * h, *qh = w[i].qh + 32 * h;
            const int8_t *q8 = x[i].qs + 128 * h;
            const int8_t *sc = w[i].scales + 8 * h;
            for (int l = 0; l < 32; l++) {
                int q1 = ((ql[l] & 15) | ((qh[l] & 3) << 4)) - 32, q2 = ((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32, q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                int is = l / 16;
                dot += sc[is] * q1 * q8[l] + sc[is + 2] * q2 * q8[l + 32] + sc[is + 4] * q3 * q8[l + 64] + sc[is + 6] * q4 * q8[l + 96];
            }
        }
        sum += rl_fp16_to_fp32(w[i].d) * x[i].d * (float)dot;
    }
    return sum;
}

float rl_f32_dot_ref(const float *a, const float *b, size_t n) {
    float s = 0.0f;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static inline float hsum8(__m256 v) {
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

/* One Q4_K row against N tokens (N a constant after inlining: the sums stay in registers); the
 * scales are decoded and the nibbles split once per block for all N, and each token's operations
 * run in the same order whatever N is, so a token gets the same bits alone or with others. */
__attribute__((target("avx2,fma,f16c"), always_inline)) static inline void
q4k_rows_body(int N, const rl_block_q4_k *w, const rl_block_q8_k *x, size_t nb, size_t xs, float *out, size_t os) {
    const __m256i low = _mm256_set1_epi8(15);
    __m256 acc[4];
    float mins_total[4];
    for (int j = 0; j < N; j++) acc[j] = _mm256_setzero_ps(), mins_total[j] = 0.0f;
    for (size_t i = 0; i < nb; i++) {
        uint8_t s[8], m[8];
        infer_q4k_scales(w[i].scales, s, m);
        int mins[4];
        __m256i a32[4];
        for (int j = 0; j < N; j++) {
            const rl_block_q8_k *xj = x + (size_t)j * xs + i;
            mins[j] = 0;
            for (int g = 0; g < 8; g++) mins[j] += m[g] * (xj->bsums[2 * g] + xj->bsums[2 * g + 1]);
            a32[j] = _mm256_setzero_si256();
        }
        for (int k = 0; k < 4; k++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(w[i].qs + 32 * k));
            __m256i lo = _mm256_and_si256(q, low), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low);
            __m256i s0 = _mm256_set1_epi16(s[2 * k]), s1 = _mm256_set1_epi16(s[2 * k + 1]);
            for (int j = 0; j < N; j++) {
                const int8_t *xq = x[(size_t)j * xs + i].qs;
                __m256i x0 = _mm256_loadu_si256((const __m256i *)(xq + 64 * k));
                __m256i x1 = _mm256_loadu_si256((const __m256i *)(xq + 64 * k + 32));
                __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, x0), s0);
                __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, x1), s1);
                a32[j] = _mm256_add_epi32(a32[j], _mm256_add_epi32(p0, p1));
            }
        }
        float wd = _cvtsh_ss(w[i].d), wmin = _cvtsh_ss(w[i].dmin);
        for (int j = 0; j < N; j++) {
            float xd = x[(size_t)j * xs + i].d;
            acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(wd * xd), _mm256_cvtepi32_ps(a32[j]), acc[j]);
            mins_total[j] += wmin * xd * (float)mins[j];
        }
    }
    for (int j = 0; j < N; j++) out[(size_t)j * os] = hsum8(acc[j]) - mins_total[j];
}

__attribute__((target("avx2,fma,f16c"))) static float q4k_dot_avx2(const rl_block_q4_k *w, const rl_block_q8_k *x, size_t nb) {
    float out;
    q4k_rows_body(1, w, x, nb, nb, &out, 1);
    return out;
}

__attribute__((target("avx2,fma,f16c"))) static void q4k_dot_rows_avx2(const rl_block_q4_k *w, const rl_block_q8_k *x,
                                                                     size_t nb, size_t xs, int nt, float *out, size_t os) {
    int j = 0;
    for (; j + 4 <= nt; j += 4) q4k_rows_body(4, w, x + (size_t)j * xs, nb, xs, out + (size_t)j * os, os);
    switch (nt - j) {
    case 3: q4k_rows_body(3, w, x + (size_t)j * xs, nb, xs, out + (size_t)j * os, os); break;
    case 2: q4k_rows_body(2, w, x + (size_t)j * xs, nb, xs, out + (size_t)j * os, os); break;
    case 1: q4k_rows_body(1, w, x + (size_t)j * xs, nb, xs, out + (size_t)j * os, os); break;
    default: break;
    }
}

__attribute__((target("avx2,fma,f16c"))) static float q6k_dot_avx2(const rl_block_q6_k *w, const rl_block_q8_k *x, size_t nb) {
    const __m256i low = _mm256_set1_epi8(15), m3 = _mm256_set1_epi8(3), mc = _mm256_set1_epi8(0x0C),
                  m30 = _mm256_set1_epi8(0x30), mc0 = _mm256_set1_epi8((char)0xC0);
    __m256 acc = _mm256_setzero_ps();
    for (size_t i = 0; i < nb; i++) {
        const int8_t *sc = w[i].scales;
        int off = 0; // the -32 of every q, through the sums of the activations
        for (int g = 0; g < 16; g++) off += sc[g] * x[i].bsums[g];
        __m256i a32 = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i ql0 = _mm256_loadu_si256((const __m256i *)(w[i].ql + 64 * h));
            __m256i ql1 = _mm256_loadu_si256((const __m256i *)(w[i].ql + 64 * h + 32));
            __m256i qh = _mm256_loadu_si256((const __m256i *)(w[i].qh + 32 * h));
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(ql0, low), _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(ql1, low), _mm256_slli_epi16(_mm256_and_si256(qh, mc), 2));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low), _mm256_and_si256(qh, m30));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low), _mm256_srli_epi16(_mm256_and_si256(qh, mc0), 2));
            for (int r = 0; r < 4; r++) {
                __m256i xv = _mm256_loadu_si256((const __m256i *)(x[i].qs + 128 * h + 32 * r));
                int g = 8 * h + 2 * r; // bytes 0..15 are group g, 16..31 group g+1
                __m256i scv = _mm256_set_m128i(_mm_set1_epi16(sc[g + 1]), _mm_set1_epi16(sc[g]));
                a32 = _mm256_add_epi32(a32, _mm256_madd_epi16(_mm256_maddubs_epi16(q[r], xv), scv));
            }
        }
        a32 = _mm256_sub_epi32(a32, _mm256_setr_epi32(32 * off, 0, 0, 0, 0, 0, 0, 0));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(w[i].d) * x[i].d), _mm256_cvtepi32_ps(a32), acc);
    }
    return hsum8(acc);
}

__attribute__((target("avx2,fma"))) static float f32_dot_avx2(const float *a, const float *b, size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    float s = hsum8(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

/* Decoding streams a float32 matrix row after row (a is one row of it): the hardware prefetcher
 * alone leaves one core at about 3/4 of the bandwidth it gets when the lines 8 KB ahead (the next
 * rows) are asked for early, and four accumulators (64 floats a step, every line of it prefetched)
 * keep more loads in flight than two (about 5% more decoding at one thread). Past the end of a the
 * prefetches are harmless misses. */
#define F32_PREFETCH 2048 /* floats */
__attribute__((target("avx512f"))) static float f32_dot_avx512(const float *a, const float *b, size_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        uintptr_t ahead = (uintptr_t)(a + i) + F32_PREFETCH * sizeof(float); // an address only, never read
        _mm_prefetch((const char *)ahead, _MM_HINT_T0);
        _mm_prefetch((const char *)(ahead + 64), _MM_HINT_T0);
        _mm_prefetch((const char *)(ahead + 128), _MM_HINT_T0);
        _mm_prefetch((const char *)(ahead + 192), _MM_HINT_T0);
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
    }
    for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}
#endif

static int simd_ok(const char *feature) {
    return infer_simd_level() >= (!strcmp(feature, "avx512") ? INFER_AVX512 : INFER_AVX2);
}

rl_q4_k_dot_fn rl_q4_k_dot_kernel(const char **name) {
#if defined(__x86_64__)
    if (simd_ok("avx2")) {
        if (name) *name = "avx2";
        return q4k_dot_avx2;
    }
#endif
    if (name) *name = "scalar";
    return rl_q4_k_dot_ref;
}

static void q4k_dot_rows_ref(const rl_block_q4_k *w, const rl_block_q8_k *x, size_t nb, size_t xs, int nt, float *out,
                             size_t os) {
    for (int j = 0; j < nt; j++) out[(size_t)j * os] = rl_q4_k_dot_ref(w, x + (size_t)j * xs, nb);
}

rl_q4_k_dot_rows_fn rl_q4_k_dot_rows_kernel(const char **name) {
#if defined(__x86_64__)
    if (simd_ok("avx2")) {
        if (name) *name = "avx2";
        return q4k_dot_rows_avx2;
    }
#endif
    if (name) *name = "scalar";
    return q4k_dot_rows_ref;
}

rl_q6_k_dot_fn rl_q6_k_dot_kernel(const char **name) {
#if defined(__x86_64__)
    if (simd_ok("avx2")) {
        if (name) *name = "avx2";
        return q6k_dot_avx2;
    }
#endif
    if (name) *name = "scalar";
    return rl_q6_k_dot_ref;
}

rl_f32_dot_fn rl_f32_dot_kernel(const char **name) {
#if defined(__x86_64__)
    if (simd_ok("avx512")) {
        if (name) *name = "avx512";
        return f32_dot_avx512;
    }
    if (simd_ok("avx2")) {
        if (name) *name = "avx2";
        return f32_dot_avx2;
    }
#endif
    if (name) *name = "scalar";
    return rl_f32_dot_ref;
}
