/* forward.c - the one forward of rl_infer's quantized and batched paths: T tokens (up to
 * PREFILL_T) through every layer at once, each weight matrix read once for all of them.
 *
 * Three callers use it: a prompt's batch (consecutive positions of one context: keys and values
 * go straight into its cache rows), a single decoding step (T = 1), and a continuous-batching
 * step of a group (group.c: token t belongs to context seq[t] at position pos[t]; keys and values
 * are computed into scratch rows and copied into each context's cache).
 *
 * Threads: the context's team (team.c) runs the whole forward as one parallel region. Every
 * thread walks the same steps, each cut into units that the threads take from an atomic counter;
 * a step waits until all its units are done (not for every thread to arrive: a late thread
 * finds the done steps done and joins the current one). The steps of a layer:
 *   norm + quantize (tokens) | q, k, v (16-row groups) | rope, cache writes (token x head) |
 *   attention (token x head) | quantize (tokens) | o (groups) | residual, norm, quantize (tokens) |
 *   gate, up (groups) | SwiGLU + quantize (slices of whole blocks) | down (groups)
 * Each output value is computed the same way whichever thread computes it, so the result does
 * not depend on the thread count (bit for bit).
 *
 * Quantized weights: per token the same dot products whatever T is, so batching changes no bit
 * either. Float32 weights of more than one token go through our SGEMM (rl_sgemm over the
 * context's rl_pool) where the caller allows other sums than one token's (prompts); that forward
 * runs on the caller's thread, the products and the attention spread by the pool. The attention
 * of each token is computed exactly as for one token (attn.c). */
#include <cblas.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "infer/infer_internal.h"

#define CHUNK_MAX 64 /* 16-row groups per chunk handed out at most */

typedef struct fwd {
    rl_infer *inf;
    rl_infer *const *seq; /* context of each token, or NULL: all inf's */
    const int32_t *tokens;
    const int *pos;
    int T, n_logits;
    int pooled; /* one thread; products through BLAS / rl_sgemm and attention over inf->pool */
    float *logits;
    float *X, *XB, *A, *Q, *H1, *H2, *KT, *VT; /* scratch, see infer_forward */
    float *cs, *sn;                            /* (T, HD/2) RoPE cosines and sines */
} fwd;

typedef struct fw_thread {
    fwd *f;
    int ith, nth;
    int k; /* steps this thread has walked: the next one's counter */
} fw_thread;

/* ---- steps -------------------------------------------------------------------------------- */

/* A step's counters: units handed out, units done (a cache line per step). */
struct infer_ctr {
    _Alignas(64) atomic_size_t claimed;
    atomic_size_t done;
};
#define STEPS_PER_LAYER 10
#define STEPS_MORE 3 /* embeddings; final norm; output matrix */

typedef struct step {
    struct infer_ctr *c; /* NULL: one thread does it all */
    size_t n, chunk, at;
    size_t mine; /* units this thread did */
} step;

/* The thread's next step, of n units handed out chunk at a time. */
static step step_begin(fw_thread *th, size_t n, size_t chunk) {
    step s = {NULL, n, chunk, 0, 0};
    RL_ASSERT(th->k < th->f->inf->n_ctr);
    if (th->nth > 1) s.c = &th->f->inf->ctr[th->k];
    th->k++;
    return s;
}

/* The next units [*u0, *u1) for this thread; 0 when none are left. */
static int step_next(step *s, size_t *u0, size_t *u1) {
    size_t a = s->c ? atomic_fetch_add_explicit(&s->c->claimed, s->chunk, memory_order_relaxed) : s->at;
    if (a >= s->n) return 0;
    *u0 = a;
    *u1 = a + s->chunk < s->n ? a + s->chunk : s->n;
    s->at = *u1;
    s->mine += *u1 - a;
    return 1;
}

/* Waits until every unit of the step is done (by any thread). */
static void step_end(step *s) {
    if (!s->c) return;
    if (s->mine) atomic_fetch_add_explicit(&s->c->done, s->mine, memory_order_release);
    for (unsigned k = 0; atomic_load_explicit(&s->c->done, memory_order_acquire) < s->n; k++) infer_pause(k);
}

/* ---- matrix products ------------------------------------------------------------------------ */

/* One matrix of a product set. */
typedef struct prod {
    const rl_qmat *w;
    float *out;        /* (T, w->rows) */
    const float *bias; /* (w->rows) or NULL */
} prod;

/* The matrices of module md[0..n) of layer l (the output matrix for l < 0). */
static int prod_set(prod *p, const rl_infer *inf, int l, const rl_module *md, float *const *out, int n) {
    for (int i = 0; i < n; i++) {
        float *w, *b = NULL;
        int in, o;
        if (l >= 0) rl_params_linear(&inf->m->cfg, &inf->m->w, l, md[i], &w, &b, &in, &o);
        p[i] = (prod){l >= 0 ? &inf->q->layers[l][md[i]] : &inf->q->lm_head, out[i], b};
    }
    return n;
}

/* Rows r0..r1 (one 16-row group) of matrix w for all T inputs: out[t * rows + r]. The input is
 * x (T, cols) as floats, inf->xq / xk (Q8_0 / Q8_K blocks) or inf->xp (packed kernels). Each
 * weight row is read once for all T inputs (it stays in cache): the batched prompt's gain. */
static void rows_product(const rl_infer *inf, const prod *p, int r0, int r1, const float *x, int T) {
    const rl_qmodel *q = inf->q;
    const rl_qmat *w = p->w;
    int rows = w->rows, C = w->cols;
    size_t nb = (size_t)C / RL_Q8_0_BLOCK, nk = (size_t)C / RL_QK_K;
    float *out = p->out;
    if (w->packed && w->type == RL_WTYPE_Q4_K) { // one group of 16 rows for all T tokens
        const infer_q4_kx16 *W = (const infer_q4_kx16 *)w->blocks + (size_t)(r0 / QPACK_R) * nk;
        infer_q4_kx16_mm(out + r0, (size_t)rows, W, inf->xk, nk, r1 - r0, T);
    } else if (w->packed && w->type == RL_WTYPE_Q6_K) {
        const infer_q6_kx16 *W = (const infer_q6_kx16 *)w->blocks + (size_t)(r0 / QPACK_R) * nk;
        infer_q6_kx16_mm(out + r0, (size_t)rows, W, inf->xk, nk, r1 - r0, T);
    } else if (w->packed) {
        size_t gb = w->type == RL_WTYPE_Q8_0 ? sizeof(infer_q8_0x16) : sizeof(infer_q4_0x16);
        const void *W = (const char *)w->blocks + (size_t)(r0 / QPACK_R) * nb * gb;
        if (w->type == RL_WTYPE_Q8_0) infer_q8_0x16_mm(out + r0, (size_t)rows, W, inf->xp, nb, r1 - r0, T);
        else infer_q4_0x16_mm(out + r0, (size_t)rows, W, inf->xp, nb, r1 - r0, T);
    } else switch (w->type) {
    case RL_WTYPE_Q8_0: {
        const rl_block_q8_0 *W = w->blocks, *X = inf->xq;
        for (int r = r0; r < r1; r++)
            for (int t = 0; t < T; t++) out[(size_t)t * rows + r] = q->dot(W + (size_t)r * nb, X + t * nb, nb);
        break;
    }
    case RL_WTYPE_Q4_0: {
        const rl_block_q4_0 *W = w->blocks;
        const rl_block_q8_0 *X = inf->xq;
        for (int r = r0; r < r1; r++)
            for (int t = 0; t < T; t++) out[(size_t)t * rows + r] = q->dot4(W + (size_t)r * nb, X + t * nb, nb);
        break;
    }
    case RL_WTYPE_Q4_K: {
        const rl_block_q4_k *W = w->blocks;
        const rl_block_q8_k *X = inf->xk;
        for (int r = r0; r < r1; r++) q->dot4k_rows(W + (size_t)r * nk, X, nk, nk, T, out + r, (size_t)rows);
        break;
    }
    case RL_WTYPE_Q6_K: {
        const rl_block_q6_k *W = w->blocks;
        const rl_block_q8_k *X = inf->xk;
        for (int r = r0; r < r1; r++)
            for (int t = 0; t < T; t++) out[(size_t)t * rows + r] = q->dot6k(W + (size_t)r * nk, X + t * nk, nk);
        break;
    }
    default:
        for (int r = r0; r < r1; r++)
            for (int t = 0; t < T; t++) out[(size_t)t * rows + r] = q->dotf(w->f32 + (size_t)r * C, x + (size_t)t * C, (size_t)C);
    }
    if (p->bias)
        for (int t = 0; t < T; t++)
            for (int r = r0; r < r1; r++) out[(size_t)t * rows + r] += p->bias[r];
}

/* Token t's values [off, off + len) of x (T, cols), quantized into the block formats that the
 * set's matrices read (len a multiple of 256 where Q8_K is needed, of 32 otherwise). */
static void quantize_input(const rl_infer *inf, const prod *p, int n, const float *x, int t, size_t off, size_t len) {
    size_t C = (size_t)p[0].w->cols;
    int need8 = 0, needk = 0, needp = 0;
    for (int i = 0; i < n; i++) {
        rl_wtype ty = p[i].w->type;
        needk |= ty == RL_WTYPE_Q4_K || ty == RL_WTYPE_Q6_K;
        need8 |= (ty == RL_WTYPE_Q8_0 || ty == RL_WTYPE_Q4_0) && !p[i].w->packed;
        needp |= p[i].w->packed && (ty == RL_WTYPE_Q8_0 || ty == RL_WTYPE_Q4_0);
    }
    const float *xt = x + (size_t)t * C + off;
    if (needk) rl_q8_k_quantize(inf->xk + t * (C / RL_QK_K) + off / RL_QK_K, xt, len);
    if (need8) rl_q8_0_quantize(inf->xq + t * (C / RL_Q8_0_BLOCK) + off / RL_Q8_0_BLOCK, xt, len);
    if (needp) infer_xq_quantize(inf->xp + t * (C / RL_Q8_0_BLOCK) + off / RL_Q8_0_BLOCK, xt, len, inf->q->simd);
}

/* The slice of a row of n values that a unit of the SwiGLU step takes: the whole row when there
 * are enough tokens for the threads, else about n / (2 nth), in whole quantization blocks (Q8_K's
 * 256 where a matrix of the set reads them, else 32); the whole row when nothing is quantized. */
static size_t slice_len(const prod *p, int np, size_t n, int T, int nth) {
    size_t unit = 0;
    for (int i = 0; i < np; i++) {
        rl_wtype ty = p[i].w->type;
        if (ty == RL_WTYPE_Q4_K || ty == RL_WTYPE_Q6_K) unit = RL_QK_K;
        else if (ty != RL_WTYPE_F32 && !unit) unit = RL_Q8_0_BLOCK;
    }
    if (!unit || T >= nth) return n;
    size_t blocks = n / unit, per = (blocks + 2 * (size_t)nth - 1) / (2 * (size_t)nth);
    return per * unit;
}

/* The product set as a step: chunks of 16-row groups (the input already quantized). */
static void products(fw_thread *th, const prod *p, int n, const float *x, int T) {
    size_t first[8] = {0};
    for (int i = 0; i < n; i++) first[i + 1] = first[i] + ((size_t)p[i].w->rows + QPACK_R - 1) / QPACK_R;
    size_t groups = first[n], chunk = groups / ((size_t)th->nth * 8), g0, g1;
    chunk = chunk < 1 ? 1 : chunk > CHUNK_MAX ? CHUNK_MAX : chunk;
    step s = step_begin(th, groups, th->nth > 1 ? chunk : groups);
    while (step_next(&s, &g0, &g1))
        for (size_t g = g0; g < g1; g++) {
            int i = 0;
            while (g >= first[i + 1]) i++;
            int r0 = (int)(g - first[i]) * QPACK_R, r1 = r0 + QPACK_R < p[i].w->rows ? r0 + QPACK_R : p[i].w->rows;
            rows_product(th->f->inf, &p[i], r0, r1, x, T);
        }
    step_end(&s);
}

/* Without the team: out (T, rows) = x (T, cols) W^T + bias for module md of layer l (lm_head for
 * l < 0) on the model's float32 weights (a float32 rl_qmodel borrows them), through BLAS or
 * rl_sgemm over inf->pool. */
static void product_pooled(rl_infer *inf, int l, rl_module md, float *out, const float *x, int T) {
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

/* Module md[0..n) of layer l on x (T, cols); the input was quantized by the step before. */
static void linears(fw_thread *th, int l, const rl_module *md, float *const *out, int n, const float *x) {
    fwd *f = th->f;
    if (f->pooled) { // one thread
        th->k++;
        for (int i = 0; i < n; i++) product_pooled(f->inf, l, md[i], out[i], x, f->T);
        return;
    }
    prod p[3];
    products(th, p, prod_set(p, f->inf, l, md, out, n), x, f->T);
}

/* Token t of x (T, cols) quantized for module md[0..n) of layer l, all of it. */
static void quantize_token(const fwd *f, int l, const rl_module *md, int n, const float *x, int t) {
    if (f->pooled) return;
    prod p[3];
    float *none[3] = {0};
    prod_set(p, f->inf, l, md, none, n);
    quantize_input(f->inf, p, n, x, t, 0, (size_t)p[0].w->cols);
}

/* ---- the small steps ------------------------------------------------------------------------ */

/* RoPE of one head (HD values) of token t with the table: rl_rope_forward's arithmetic. */
static void rope_head(const fwd *f, float *v, int t, int HD) {
    int half = HD / 2;
    const float *cs = f->cs + (size_t)t * half, *sn = f->sn + (size_t)t * half;
    for (int i = 0; i < half; i++) {
        float x1 = v[i], x2 = v[i + half];
        v[i] = x1 * cs[i] - x2 * sn[i];
        v[i + half] = x2 * cs[i] + x1 * sn[i];
    }
}

/* Unit u of the rope step (token u / (NH + NKV), then its query heads and key heads): keys of a
 * group step also go to the token's context's cache, with the values. */
static void rope_unit(const fwd *f, int l, size_t u) {
    const rl_model_config *c = &f->inf->m->cfg;
    int NH = c->n_heads, NKV = c->n_kv_heads, HD = c->head_dim, KD = NKV * HD;
    int t = (int)(u / (size_t)(NH + NKV)), h = (int)(u % (size_t)(NH + NKV));
    if (h < NH) {
        rope_head(f, f->Q + (size_t)t * NH * HD + (size_t)h * HD, t, HD);
        return;
    }
    h -= NH;
    if (!f->seq) { // one context: the keys are in its cache rows already
        const rl_kv *kv = &f->inf->kv;
        rope_head(f, kv->k + ((size_t)l * kv->max_T + (size_t)f->pos[t]) * KD + (size_t)h * HD, t, HD);
        return;
    }
    float *k = f->KT + (size_t)t * KD + (size_t)h * HD;
    rope_head(f, k, t, HD);
    rl_kv *kv = &f->seq[t]->kv;
    size_t at = ((size_t)l * kv->max_T + (size_t)f->pos[t]) * KD + (size_t)h * HD;
    memcpy(kv->k + at, k, (size_t)HD * sizeof(float));
    memcpy(kv->v + at, f->VT + (size_t)t * KD + (size_t)h * HD, (size_t)HD * sizeof(float));
}

/* Unit u of the attention step: head u % NH of token u / NH. Scores go to a row of scratch that
 * no other unit of the step uses: the context's own rows (one token per context), or with
 * several tokens of one context a row per thread. */
static void attn_unit(const fwd *f, int l, size_t u, int thread) {
    rl_infer *inf = f->seq ? f->seq[u / (size_t)f->inf->m->cfg.n_heads] : f->inf;
    const rl_model_config *c = &inf->m->cfg;
    int NH = c->n_heads, NKV = c->n_kv_heads, HD = c->head_dim, QD = NH * HD, KD = NKV * HD, max_T = inf->kv.max_T;
    int t = (int)(u / (size_t)NH), h = (int)(u % (size_t)NH), kvh = h / (NH / NKV);
    float *att = f->seq || f->T == 1 ? inf->kv.att + (size_t)h * max_T : f->inf->patt + (size_t)thread * max_T;
    size_t lo = (size_t)l * max_T * KD + (size_t)kvh * HD;
    infer_attention_head(f->inf->q ? f->inf->q->simd : INFER_SCALAR, f->A + (size_t)t * QD + (size_t)h * HD, att,
                         f->Q + (size_t)t * QD + (size_t)h * HD, inf->kv.k + lo, inf->kv.v + lo, KD, f->pos[t] + 1, HD,
                         1.0f / sqrtf((float)HD));
}

typedef struct attn_pool_job {
    const fwd *f;
    int l;
} attn_pool_job;

static void attn_pool_unit(void *ctx, size_t u, int thread) {
    const attn_pool_job *j = ctx;
    attn_unit(j->f, j->l, u, thread);
}

/* Residual (X += XB, unless first), then the norm of token t into XB. */
static void residual_norm(const fwd *f, int t, const float *w, int first) {
    const rl_model_config *c = &f->inf->m->cfg;
    size_t C = (size_t)c->dim;
    float *x = f->X + (size_t)t * C, *xb = f->XB + (size_t)t * C;
    if (!first) rl_axpy(x, 1.0f, xb, C);
    rl_rmsnorm_forward(xb, NULL, x, w, 1, (int)C, c->norm_eps);
}

/* ---- one thread's walk through the forward ---------------------------------------------------- */

/* Loops over this thread's units [u0, u1) of a step of n units, chunk at a time, then waits for
 * the step's end. */
#define FOR_UNITS(th, n, chunk, u)                                                                 \
    for (step s_ = step_begin(th, n, chunk), *once_ = &s_; once_; step_end(&s_), once_ = NULL)     \
        for (size_t u0_, u1_; step_next(&s_, &u0_, &u1_);)                                         \
            for (size_t u = u0_; u < u1_; u++)

static void fwd_thread(void *ctx, int ith, int nth) {
    fw_thread th = {ctx, ith, nth, 0};
    fwd *f = ctx;
    rl_infer *inf = f->inf;
    rl_model *m = inf->m;
    const rl_model_config *c = &m->cfg;
    int T = f->T, C = c->dim, F = c->hidden_dim, NH = c->n_heads, NKV = c->n_kv_heads, HD = c->head_dim, half = HD / 2;
    size_t NT = (size_t)T;
    static const rl_module QKV[3] = {RL_MOD_Q, RL_MOD_K, RL_MOD_V}, O[1] = {RL_MOD_O}, GU[2] = {RL_MOD_GATE, RL_MOD_UP},
                           DOWN[1] = {RL_MOD_DOWN};
    // the embeddings and the RoPE table (the same angles for every layer)
    FOR_UNITS(&th, NT, 1, t) {
        memcpy(f->X + t * C, m->w.wte + (size_t)f->tokens[t] * C, (size_t)C * sizeof(float));
        float p = (float)f->pos[t];
        for (int i = 0; i < half; i++) {
            float a = p * m->inv_freq[i];
            f->cs[t * half + i] = cosf(a);
            f->sn[t * half + i] = sinf(a);
        }
    }
    for (int l = 0; l < c->n_layers; l++) {
        // one context: k and v straight into its cache rows; several: scratch rows (rope_unit copies)
        size_t lo = (size_t)l * inf->kv.max_T * NKV * HD + (size_t)f->pos[0] * NKV * HD;
        float *K = f->seq ? f->KT : inf->kv.k + lo, *V = f->seq ? f->VT : inf->kv.v + lo;
        FOR_UNITS(&th, NT, 1, t) {
            residual_norm(f, (int)t, m->w.rms_att + (size_t)l * C, l == 0);
            quantize_token(f, l, QKV, 3, f->XB, (int)t);
        }
        linears(&th, l, QKV, (float *const[]){f->Q, K, V}, 3, f->XB);
        FOR_UNITS(&th, NT * (NH + NKV), 1, u) rope_unit(f, l, u);
        if (f->pooled && inf->pool && T > 1) {
            attn_pool_job j = {f, l};
            th.k++;
            rl_pool_for(inf->pool, NT * NH, attn_pool_unit, &j);
        } else {
            FOR_UNITS(&th, NT * NH, 1, u) attn_unit(f, l, u, ith);
        }
        FOR_UNITS(&th, NT, 1, t) quantize_token(f, l, O, 1, f->A, (int)t);
        linears(&th, l, O, (float *const[]){f->XB}, 1, f->A);
        FOR_UNITS(&th, NT, 1, t) {
            residual_norm(f, (int)t, m->w.rms_ffn + (size_t)l * C, 0);
            quantize_token(f, l, GU, 2, f->XB, (int)t);
        }
        linears(&th, l, GU, (float *const[]){f->H1, f->H2}, 2, f->XB);
        // SwiGLU and the down product's input, in slices of whole quantization blocks
        prod p[1];
        size_t sl = f->pooled ? (size_t)F : slice_len(p, prod_set(p, inf, l, DOWN, (float *const[]){NULL}, 1), (size_t)F, T, nth);
        size_t ns = ((size_t)F + sl - 1) / sl;
        FOR_UNITS(&th, NT * ns, 1, u) {
            size_t t = u / ns, off = u % ns * sl, len = off + sl < (size_t)F ? sl : (size_t)F - off;
            float *h = f->H1 + t * F + off;
            rl_swiglu_forward(h, h, f->H2 + t * F + off, len);
            if (!f->pooled) quantize_input(inf, p, 1, f->H1, (int)t, off, len);
        }
        linears(&th, l, DOWN, (float *const[]){f->XB}, 1, f->H1);
    }
    if (!f->n_logits) return;
    // the last n_logits tokens: the last residual, the final norm, the output matrix (its input
    // quantized into rows 0.. of the scratch: the product reads n_logits rows from there)
    size_t n = (size_t)f->n_logits, t0 = NT - n;
    float *xb = f->XB + t0 * C;
    FOR_UNITS(&th, n, 1, t) {
        residual_norm(f, (int)(t0 + t), m->w.rms_final, 0);
        quantize_token(f, -1, O, 1, xb, (int)t);
    }
    if (f->pooled) {
        product_pooled(inf, -1, RL_MOD_Q, f->logits, xb, (int)n);
        return;
    }
    prod p[1];
    products(&th, p, prod_set(p, inf, -1, O, (float *const[]){f->logits}, 1), xb, (int)n);
}

rl_status infer_forward(rl_infer *inf, rl_infer *const *seq, const int32_t *tokens, const int *pos, int T, int n_logits,
                        float *logits, int gemm, rl_error *err) {
    const rl_model_config *c = &inf->m->cfg;
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
        size_t n = (size_t)PREFILL_T * (3 * (size_t)big + 2 * (size_t)F + (size_t)QD + 2 * (size_t)KD + (size_t)HD);
        if (!(inf->pf = malloc(n * sizeof(float)))) return rl_fail(err, RL_ENOMEM, "forward scratch");
    }
    if (inf->q && !inf->xq) return rl_fail(err, RL_EINTERNAL, "forward: no activation scratch");
    if (!inf->patt) { // a row of attention scores per thread for batches of one context
        int nt = infer_team_size(inf->team) > rl_pool_size(inf->pool) ? infer_team_size(inf->team) : rl_pool_size(inf->pool);
        if (!(inf->patt = malloc((size_t)nt * inf->kv.max_T * sizeof(float)))) return rl_fail(err, RL_ENOMEM, "forward scratch");
    }
    fwd f = {.inf = inf, .seq = seq, .tokens = tokens, .pos = pos, .T = T, .n_logits = n_logits, .logits = logits};
    // float32 prompts (other sums allowed) and float32 weights without an rl_qmodel: BLAS / SGEMM
    f.pooled = !inf->q || (gemm && T > 1 && inf->q->type == RL_WTYPE_F32);
    f.X = inf->pf;
    f.XB = f.X + (size_t)PREFILL_T * big;
    f.A = f.XB + (size_t)PREFILL_T * big;
    f.Q = f.A + (size_t)PREFILL_T * big;
    f.H1 = f.Q + (size_t)PREFILL_T * QD;
    f.H2 = f.H1 + (size_t)PREFILL_T * F;
    f.KT = f.H2 + (size_t)PREFILL_T * F;
    f.VT = f.KT + (size_t)PREFILL_T * KD;
    f.cs = f.VT + (size_t)PREFILL_T * KD;
    f.sn = f.cs + (size_t)PREFILL_T * (HD / 2);
    int n_ctr = STEPS_PER_LAYER * c->n_layers + STEPS_MORE;
    if (inf->n_ctr < n_ctr) {
        free(inf->ctr);
        inf->n_ctr = 0;
        if (!(inf->ctr = aligned_alloc(64, (size_t)n_ctr * sizeof *inf->ctr))) return rl_fail(err, RL_ENOMEM, "forward scratch");
        inf->n_ctr = n_ctr;
    }
    memset(inf->ctr, 0, (size_t)n_ctr * sizeof *inf->ctr); // no thread is inside a run here
    if (f.pooled) fwd_thread(&f, 0, 1);
    else infer_team_run(inf->team, fwd_thread, &f);
    return RL_OK;
}
