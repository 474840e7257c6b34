/* attn.c - attention of one query token over the KV cache for rl_infer's decoding and batched
 * prompts: rl_attention_decode's computation (scores q.k * scale, softmax, weighted sum of v),
 * with AVX-512 for the dot products and the sum of values when the head size is a multiple of
 * 16. The float sums run in another order than the scalar one (differences of a few ulp).
 *
 * Batched prompts run their tokens' attention over the context's threads (infer_attention_batch). */
#include <math.h>
#include <stdlib.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "infer/infer_internal.h"

#if defined(__x86_64__)
#define MAX_HD16 16 /* head sizes up to 256 in registers */
__attribute__((target("avx512f"))) static void attn_avx512(float *out, float *att_all, int att_stride, const float *q,
                                                           const float *kc, const float *vc, int n_pos, int NH, int NKV,
                                                           int HD, float scale) {
    int G = NH / NKV, KD = NKV * HD, n16 = HD / 16;
    for (int h = 0; h < NH; h++) {
        float *att = att_all + (size_t)h * att_stride;
        const float *kh = kc + (size_t)(h / G) * HD, *vh = vc + (size_t)(h / G) * HD;
        __m512 qv[MAX_HD16];
        for (int i = 0; i < n16; i++) qv[i] = _mm512_loadu_ps(q + (size_t)h * HD + 16 * i);
        float maxv = -INFINITY;
        for (int s = 0; s < n_pos; s++) {
            const float *ks = kh + (size_t)s * KD;
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
            const float *vs = vh + (size_t)s * KD;
            for (int i = 0; i < n16; i++) ov[i] = _mm512_fmadd_ps(a, _mm512_loadu_ps(vs + 16 * i), ov[i]);
        }
        for (int i = 0; i < n16; i++) _mm512_storeu_ps(out + (size_t)h * HD + 16 * i, ov[i]);
    }
}
#endif

void infer_attention(int simd, float *out, float *att, int att_stride, const float *q, const float *kc, const float *vc,
                     int n_pos, int NH, int NKV, int HD, float scale) {
#if defined(__x86_64__)
    if (HD % 16 == 0 && HD / 16 <= MAX_HD16 && simd >= INFER_AVX512) {
        attn_avx512(out, att, att_stride, q, kc, vc, n_pos, NH, NKV, HD, scale);
        return;
    }
#endif
    rl_attention_decode(out, att, att_stride, q, kc, vc, n_pos, NH, NKV, HD, scale);
}
