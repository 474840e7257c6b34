/* attn.c - attention of one query head of one token over the KV cache, for rl_infer's forward
 * (forward.c splits a step's tokens x heads over its threads): rl_attention_decode's computation
 * (scores q.k * scale, softmax, weighted sum of v) for that head, with AVX-512 for the dot
 * products and the sum of values when the head size is a multiple of 16. The AVX-512 sums run in
 * another order than the scalar ones (differences of a few ulp); the scalar loop is
 * rl_attention_decode's, in its order. */
#include <math.h>
#include <stdlib.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "infer/infer_internal.h"

#if defined(__x86_64__)
#define MAX_HD16 16 /* head sizes up to 256 in registers */
__attribute__((target("avx512f"))) static void attn_head_avx512(float *out, float *att, const float *q, const float *kc,
                                                                const float *vc, int KD, int n_pos, int HD, float scale) {
    int n16 = HD / 16;
    __m512 qv[MAX_HD16];
    for (int i = 0; i < n16; i++) qv[i] = _mm512_loadu_ps(q + 16 * i);
    float maxv = -INFINITY;
    for (int s = 0; s < n_pos; s++) {
        const float *ks = kc + (size_t)s * KD;
        __m512 d = _mm512_mul_ps(qv[0], _mm512_loadu_ps(ks));
        for (int i = 1; i < n16; i++) d = _mm512_fmadd_ps(qv[i], _mm512_loadu_ps(ks + 16 * i), d);
        att[s] = _mm512_reduce_add_ps(d) * scale;
        if (att[s] > maxv) maxv = att[s];
    }
    float sum = 0.0f;
    for (int s = 0; s < n_pos; s++) sum += (att[s] = expf(att[s] - maxv));
    __m512 ov[MAX_HD16];
    for (int i = 0; i < n16; i++) ov[i] = _mm512_setzero_ps();
    float inv = 1.0f / sum;
    for (int s = 0; s < n_pos; s++) {
        __m512 a = _mm512_set1_ps(att[s] * inv);
        const float *vs = vc + (size_t)s * KD;
        for (int i = 0; i < n16; i++) ov[i] = _mm512_fmadd_ps(a, _mm512_loadu_ps(vs + 16 * i), ov[i]);
    }
    for (int i = 0; i < n16; i++) _mm512_storeu_ps(out + 16 * i, ov[i]);
}
#endif

void infer_attention_head(int simd, float *out, float *att, const float *q, const float *kc, const float *vc, int KD,
                          int n_pos, int HD, float scale) {
#if defined(__x86_64__)
    if (HD % 16 == 0 && HD / 16 <= MAX_HD16 && simd >= INFER_AVX512) {
        attn_head_avx512(out, att, q, kc, vc, KD, n_pos, HD, scale);
        return;
    }
#endif
    float maxv = -INFINITY;
    for (int s = 0; s < n_pos; s++) {
        const float *ks = kc + (size_t)s * KD;
        float d = 0.0f;
        for (int i = 0; i < HD; i++) d += q[i] * ks[i];
        att[s] = d * scale;
        if (att[s] > maxv) maxv = att[s];
    }
    float sum = 0.0f;
    for (int s = 0; s < n_pos; s++) sum += (att[s] = expf(att[s] - maxv));
    for (int i = 0; i < HD; i++) out[i] = 0.0f;
    for (int s = 0; s < n_pos; s++) {
        float a = att[s] / sum;
        const float *vs = vc + (size_t)s * KD;
        for (int i = 0; i < HD; i++) out[i] += a * vs[i];
    }
}
