/* prefill.c - batched prompt processing: up to PREFILL_T prompt tokens through every layer at
 * once, writing their keys and values into the cache, so that each weight matrix is read once
 * per batch instead of once per token (decoding is memory-bound: this is where prompts get
 * fast). Quantized weights go through infer_qmatmul (the same dot products as one token at a
 * time, so the same bits); float32 weights through our SGEMM (rl_sgemm).
 *
 * The attention of token t looks at positions 0..pos0+t of the cache, computed exactly as in
 * rl_model_decode. Only the last token's logits are computed (the rest are not needed). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "infer/infer_internal.h"

/* out (T, rows) = x (T, cols) W^T + bias for module md of layer l (lm_head for l < 0). */
static void linear(rl_infer *inf, int l, rl_module md, float *out, const float *x, int T) {
    const rl_model_config *c = &inf->m->cfg;
    float *w, *b = NULL;
    int in, o;
    if (l >= 0) rl_params_linear(c, &inf->m->w, l, md, &w, &b, &in, &o);
    else w = inf->m->w.lm_head, in = c->dim, o = c->vocab_size;
    if (inf->q) {
        infer_qmatmul(inf, l >= 0 ? &inf->q->layers[l][md] : &inf->q->lm_head, out, x, T, b);
        return;
    }
    float beta = 0.0f;
    if (b) {
        for (int t = 0; t < T; t++) memcpy(out + (size_t)t * o, b, (size_t)o * sizeof(float));
        beta = 1.0f;
    }
    if (T == 1) cblas_sgemv(CblasRowMajor, CblasNoTrans, o, in, 1.0f, w, in, x, 1, beta, out, 1);
    else rl_sgemm(0, 1, T, o, in, 1.0f, x, in, w, in, beta, out, o, inf->pool);
}

/* The attention of the batch's tokens, one token per task over the context's threads (each
 * thread with its own score rows). */
typedef struct attn_job {
    rl_infer *inf;
    float *out;
    const float *q, *kc, *vc;
    int pos0, NH, NKV, HD;
    float scale;
} attn_job;

static void attn_token(void *ctx, size_t t, int thread) {
    const attn_job *j = ctx;
    rl_infer *inf = j->inf;
    int QD = j->NH * j->HD, max_T = inf->kv.max_T;
    float *att = inf->patt ? inf->patt + (size_t)thread * j->NH * max_T : inf->kv.att;
    infer_attention(inf->q ? inf->q->simd : INFER_SCALAR, j->out + t * QD, att, max_T, j->q + t * QD, j->kc, j->vc,
                    j->pos0 + (int)t + 1, j->NH, j->NKV, j->HD, j->scale);
}

rl_status infer_prefill(rl_infer *inf, const int32_t *tokens, int T, int pos0, float **logits, rl_error *err) {
    rl_model *m = inf->m;
    rl_kv *kv = &inf->kv;
    const rl_model_config *c = &m->cfg;
    int C = c->dim, F = c->hidden_dim, NH = c->n_heads, NKV = c->n_kv_heads, HD = c->head_dim;
    int KD = NKV * HD, QD = NH * HD, big = C > QD ? C : QD;
    if (T <= 0 || T > PREFILL_T) return rl_fail(err, RL_EINVAL, "prefill of %d tokens", T);
    if (pos0 < 0 || pos0 + T > kv->max_T) return rl_fail(err, RL_EINVAL, "positions %d..%d are outside the KV cache (%d)", pos0, pos0 + T - 1, kv->max_T);
    for (int t = 0; t < T; t++)
        if (tokens[t] < 0 || tokens[t] >= c->vocab_size)
            return rl_fail(err, RL_EINVAL, "token %d is outside the vocabulary (%d)", tokens[t], c->vocab_size);
    if (!inf->pf) {
        size_t n = (size_t)PREFILL_T * (3 * (size_t)big + 2 * (size_t)F + (size_t)QD);
        if (!(inf->pf = malloc(n * sizeof(float)))) return rl_fail(err, RL_ENOMEM, "prefill scratch");
    }
    if (inf->q && !inf->xq) return rl_fail(err, RL_EINTERNAL, "prefill: no activation scratch");
    if (inf->pool && !inf->patt) {
        size_t n = (size_t)rl_pool_size(inf->pool) * NH * kv->max_T;
        if (!(inf->patt = malloc(n * sizeof(float)))) return rl_fail(err, RL_ENOMEM, "prefill scratch");
    }
    float *X = inf->pf, *XB = X + (size_t)PREFILL_T * big, *A = XB + (size_t)PREFILL_T * big;
    float *Q = A + (size_t)PREFILL_T * big, *H1 = Q + (size_t)PREFILL_T * QD, *H2 = H1 + (size_t)PREFILL_T * F;
    int pos[PREFILL_T];
    for (int t = 0; t < T; t++) {
        pos[t] = pos0 + t;
        memcpy(X + (size_t)t * C, m->w.wte + (size_t)tokens[t] * C, (size_t)C * sizeof(float));
    }
    float scale = 1.0f / sqrtf((float)HD);
    for (int l = 0; l < c->n_layers; l++) {
        float *kc = kv->k + (size_t)l * kv->max_T * KD, *vc = kv->v + (size_t)l * kv->max_T * KD;
        rl_rmsnorm_forward(XB, NULL, X, m->w.rms_att + (size_t)l * C, T, C, c->norm_eps);
        linear(inf, l, RL_MOD_Q, Q, XB, T);
        linear(inf, l, RL_MOD_K, kc + (size_t)pos0 * KD, XB, T); // rows pos0.. of the cache
        linear(inf, l, RL_MOD_V, vc + (size_t)pos0 * KD, XB, T);
        rl_rope_forward(Q, pos, m->inv_freq, T, NH, HD);
        rl_rope_forward(kc + (size_t)pos0 * KD, pos, m->inv_freq, T, NKV, HD);
        attn_job aj = {inf, A, Q, kc, vc, pos0, NH, NKV, HD, scale};
        if (inf->patt) rl_pool_for(inf->pool, (size_t)T, attn_token, &aj);
        else
            for (int t = 0; t < T; t++) attn_token(&aj, (size_t)t, 0);
        linear(inf, l, RL_MOD_O, XB, A, T);
        rl_axpy(X, 1.0f, XB, (size_t)T * C);
        rl_rmsnorm_forward(XB, NULL, X, m->w.rms_ffn + (size_t)l * C, T, C, c->norm_eps);
        linear(inf, l, RL_MOD_GATE, H1, XB, T);
        linear(inf, l, RL_MOD_UP, H2, XB, T);
        rl_swiglu_forward(H1, H1, H2, (size_t)T * F);
        linear(inf, l, RL_MOD_DOWN, XB, H1, T);
        rl_axpy(X, 1.0f, XB, (size_t)T * C);
    }
    if (logits) {
        rl_rmsnorm_forward(kv->x, NULL, X + (size_t)(T - 1) * C, m->w.rms_final, 1, C, c->norm_eps);
        linear(inf, -1, RL_MOD_Q, kv->logits, kv->x, 1);
        *logits = kv->logits;
    }
    return RL_OK;
}
