/* tensor_enc.c - the forward kernels only an encoder needs (BERT family): LayerNorm with bias,
 * the exact (erf) GELU, and bidirectional attention over padded rows.
 *
 * Inference only: there is no backward here (encoders are not trained by raftlm). Statistics are
 * accumulated in double so that long rows of a 1e-12-eps LayerNorm stay within the 1e-4 the
 * PyTorch fixtures allow. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/tensor.h"

void rl_layernorm_forward(float *out, const float *inp, const float *w, const float *b, int N, int C, float eps) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        double mean = 0, var = 0;
        for (int c = 0; c < C; c++) mean += x[c];
        mean /= C;
        for (int c = 0; c < C; c++) var += (x[c] - mean) * (x[c] - mean);
        var /= C;
        float m = (float)mean, rstd = (float)(1.0 / sqrt(var + eps));
        for (int c = 0; c < C; c++) o[c] = (x[c] - m) * rstd * w[c] + b[c];
    }
}

void rl_gelu_forward(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
}

typedef struct enc_att {
    float *out;
    const float *q, *k, *v;
    const int *lens;
    int T, NH, HD;
} enc_att;

/* one (batch row, head) */
static void enc_att_task(void *ctx, size_t i, int thread) {
    const enc_att *a = ctx;
    int b = (int)(i / (size_t)a->NH), h = (int)(i % (size_t)a->NH), T = a->T, HD = a->HD;
    size_t C = (size_t)a->NH * HD, row0 = (size_t)b * T;
    int len = a->lens[b] < T ? a->lens[b] : T;
    float scale = 1.0f / sqrtf((float)HD);
    float *att = rl_xmalloc((size_t)(len > 0 ? len : 1) * sizeof *att);
    for (int t = 0; t < T; t++) {
        float *o = a->out + (row0 + t) * C + (size_t)h * HD;
        memset(o, 0, (size_t)HD * sizeof *o);
        if (t >= len) continue; /* padding: nobody reads it */
        const float *qt = a->q + (row0 + t) * C + (size_t)h * HD;
        float maxv = -INFINITY;
        for (int s = 0; s < len; s++) {
            const float *ks = a->k + (row0 + s) * C + (size_t)h * HD;
            float d = 0.0f;
            for (int j = 0; j < HD; j++) d += qt[j] * ks[j];
            att[s] = d * scale;
            if (att[s] > maxv) maxv = att[s];
        }
        float sum = 0.0f;
        for (int s = 0; s < len; s++) sum += (att[s] = expf(att[s] - maxv));
        float inv = 1.0f / sum;
        for (int s = 0; s < len; s++) {
            const float *vs = a->v + (row0 + s) * C + (size_t)h * HD;
            float p = att[s] * inv;
            for (int j = 0; j < HD; j++) o[j] += p * vs[j];
        }
    }
    free(att);
}

void rl_attention_encoder(float *out, const float *q, const float *k, const float *v, const int *lens, int B, int T, int NH,
                          int HD, rl_pool *pool) {
    enc_att a = {out, q, k, v, lens, T, NH, HD};
    if (pool) rl_pool_for(pool, (size_t)B * NH, enc_att_task, &a);
    else
        for (size_t i = 0; i < (size_t)B * NH; i++) enc_att_task(&a, i, 0);
}
