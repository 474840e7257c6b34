/* forward.c - the one forward of rl_infer's quantized and batched paths: T tokens (up to
 * PREFILL_T) through every layer at once, each weight matrix read once for all of them.
 *
 * Three callers use it: a prompt's batch (consecutive positions of one context: keys and values
 * go straight into its cache rows), a single decoding step (T = 1), and a continuous-batching
 * step of a group (group.c: token t belongs to context seq[t] at position pos[t]; keys and values
 * are computed into scratch rows and copied into each context's cache).
 *
 * Quantized weights go through infer_qmatmul_n (per token the same dot products whatever T is,
 * so batching changes no bit); float32 weights of more than one token through our SGEMM
 * (rl_sgemm) where the caller allows other sums than one token's (prompts), else the same dot
 * products. The attention of each token is computed exactly as for one token (attn.c). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "infer/infer_internal.h"

/* Without an rl_qmodel (float32 prompts in batches): out (T, rows) = x (T, cols) W^T + bias for
 * module md of layer l (lm_head for l < 0). */
static void linear_f32(rl_infer *inf, int l, rl_module md, float *out, const float *x, int T) {
    const rl_model_config *c = &inf->m->cfg;
    float *w, *b = NULL;
    int in, o;
    if (l >= 0) rl_params_linear(c, &inf->m->w, l, md, &w, &b, &in, &o);
    else w = inf->m->w.lm_head, in = c->dim, o = c->vocab_size;
    float beta = 0.0f;
    if (b) {
        for (int t = 0; t < T; t++) memcpy(out + (size_t)t * o, b, (size_t)o * sizeof(float));
        beta = 1.0f;
    }
    if (T == 1) cblas_sgemv(CblasRowMajor, CblasNoTrans, o, in, 1.0f, w, in, x, 1, beta, out, 1);
    else rl_sgemm(0, 1, T, o, in, 1.0f, x, in, w, in, beta, out, o, inf->pool);
}

/* n products of one input x (T, cols): with an rl_qmodel in one parallel loop, else one by one. */
static void linears(rl_infer *inf, int l, const rl_module *md, float *const *out, int n, const float *x, int T, int gemm) {
    if (!inf->q) {
        for (int i = 0; i < n; i++) linear_f32(inf, l, md[i], out[i], x, T);
        return;
    }
    infer_mm mm[3];
    for (int i = 0; i < n; i++) {
        float *w, *b = NULL;
        int in, o;
        if (l >= 0) rl_params_linear(&inf->m->cfg, &inf->m->w, l, md[i], &w, &b, &in, &o);
        mm[i] = (infer_mm){l >= 0 ? &inf->q->layers[l][md[i]] : &inf->q->lm_head, out[i], b};
    }
    infer_qmatmul_n(inf, mm, n, x, T, gemm);
}

/* The attention of the batch's tokens, one token per task over the threads. */
typedef struct attn_job {
    rl_infer *inf;
    rl_infer *const *seq; /* per token, or NULL: all inf's */
    const int *pos;
    int layer;
    float *out;
    const float *q;
    float scale;
} attn_job;

static void attn_token(void *ctx, size_t t, int thread) {
    const attn_job *j = ctx;
    rl_infer *inf = j->seq ? j->seq[t] : j->inf;
    const rl_model_config *c = &inf->m->cfg;
    int NH = c->n_heads, HD = c->head_dim, QD = NH * HD, KD = c->n_kv_heads * HD, max_T = inf->kv.max_T;
    // scores: one context's tokens share it, so a row per thread; distinct contexts use their own
    float *att = !j->seq && j->inf->patt ? j->inf->patt + (size_t)thread * NH * max_T : inf->kv.att;
    size_t lo = (size_t)j->layer * max_T * KD;
    infer_attention(j->inf->q ? j->inf->q->simd : INFER_SCALAR, j->out + t * QD, att, max_T, j->q + t * QD, inf->kv.k + lo,
                    inf->kv.v + lo, j->pos[t] + 1, NH, c->n_kv_heads, HD, j->scale);
}

rl_status infer_forward(rl_infer *inf, rl_infer *const *seq, const int32_t *tokens, const int *pos, int T, int n_logits,
                        float *logits, int gemm, rl_error *err) {
    rl_model *m = inf->m;
    const rl_model_config *c = &m->cfg;
    int C = c->dim, F = c->hidden_dim, NH = c->n_heads, NKV = c->n_kv_heads, HD = c->head_dim, V = c->vocab_size;
    int KD = NKV * HD, QD = NH * HD, big = C > QD ? C : QD;
    if (T <= 0 || T > PREFILL_T || n_logits < 0 || n_logits > T) return rl_fail(err, RL_EINVAL, "forward of %d tokens", T);
    for (int t = 0; t < T; t++) {
        const rl_infer *ctx = seq ? seq[t] : inf;
        if (tokens[t] < 0 || tokens[t] >= V) return rl_fail(err, RL_EINVAL, "token %d is outside the vocabulary (%d)", tokens[t], V);
        if (pos[t] < 0 || pos[t] >= ctx->kv.max_T)
            return rl_fail(err, RL_EINVAL, "position %d is outside the KV cache (%d)", pos[t], ctx->kv.max_T);
        if (!seq && t > 0 && pos[t] != pos[0] + t) return rl_fail(err, RL_EINTERNAL, "forward: positions not consecutive");
    }
    if (!inf->pf) {
        size_t n = (size_t)PREFILL_T * (3 * (size_t)big + 2 * (size_t)F + (size_t)QD + 2 * (size_t)KD);
        if (!(inf->pf = malloc(n * sizeof(float)))) return rl_fail(err, RL_ENOMEM, "forward scratch");
    }
    if (inf->q && !inf->xq) return rl_fail(err, RL_EINTERNAL, "forward: no activation scratch");
    if (inf->pool && !inf->patt) {
        size_t n = (size_t)rl_pool_size(inf->pool) * NH * inf->kv.max_T;
        if (!(inf->patt = malloc(n * sizeof(float)))) return rl_fail(err, RL_ENOMEM, "forward scratch");
    }
    float *X = inf->pf, *XB = X + (size_t)PREFILL_T * big, *A = XB + (size_t)PREFILL_T * big;
    float *Q = A + (size_t)PREFILL_T * big, *H1 = Q + (size_t)PREFILL_T * QD, *H2 = H1 + (size_t)PREFILL_T * F;
    float *KT = H2 + (size_t)PREFILL_T * F, *VT = KT + (size_t)PREFILL_T * KD;
    for (int t = 0; t < T; t++) memcpy(X + (size_t)t * C, m->w.wte + (size_t)tokens[t] * C, (size_t)C * sizeof(float));
    float scale = 1.0f / sqrtf((float)HD);
    for (int l = 0; l < c->n_layers; l++) {
        // one context: its cache rows pos[0].. directly; several: scratch rows, copied below
        size_t lo = (size_t)l * inf->kv.max_T * KD;
        float *K = seq ? KT : inf->kv.k + lo + (size_t)pos[0] * KD, *Vv = seq ? VT : inf->kv.v + lo + (size_t)pos[0] * KD;
        rl_rmsnorm_forward(XB, NULL, X, m->w.rms_att + (size_t)l * C, T, C, c->norm_eps);
        linears(inf, l, (const rl_module[]){RL_MOD_Q, RL_MOD_K, RL_MOD_V}, (float *const[]){Q, K, Vv}, 3, XB, T, gemm);
        rl_rope_forward(Q, pos, m->inv_freq, T, NH, HD);
        rl_rope_forward(K, pos, m->inv_freq, T, NKV, HD);
        for (int t = 0; seq && t < T; t++) {
            rl_kv *kv = &seq[t]->kv;
            size_t at = ((size_t)l * kv->max_T + (size_t)pos[t]) * KD;
            memcpy(kv->k + at, K + (size_t)t * KD, (size_t)KD * sizeof(float));
            memcpy(kv->v + at, Vv + (size_t)t * KD, (size_t)KD * sizeof(float));
        }
        attn_job aj = {inf, seq, pos, l, A, Q, scale};
        if (inf->pool && T > 1) rl_pool_for(inf->pool, (size_t)T, attn_token, &aj);
        else
            for (int t = 0; t < T; t++) attn_token(&aj, (size_t)t, 0);
        linears(inf, l, (const rl_module[]){RL_MOD_O}, (float *const[]){XB}, 1, A, T, gemm);
        rl_axpy(X, 1.0f, XB, (size_t)T * C);
        rl_rmsnorm_forward(XB, NULL, X, m->w.rms_ffn + (size_t)l * C, T, C, c->norm_eps);
        linears(inf, l, (const rl_module[]){RL_MOD_GATE, RL_MOD_UP}, (float *const[]){H1, H2}, 2, XB, T, gemm);
        rl_swiglu_forward(H1, H1, H2, (size_t)T * F);
        linears(inf, l, (const rl_module[]){RL_MOD_DOWN}, (float *const[]){XB}, 1, H1, T, gemm);
        rl_axpy(X, 1.0f, XB, (size_t)T * C);
    }
    if (n_logits) { // the last n_logits tokens
        float *xl = X + (size_t)(T - n_logits) * C;
        rl_rmsnorm_forward(xl, NULL, xl, m->w.rms_final, n_logits, C, c->norm_eps);
        linears(inf, -1, (const rl_module[]){RL_MOD_Q}, (float *const[]){logits}, 1, xl, n_logits, gemm);
    }
    return RL_OK;
}
