/* optim.c - AdamW, gradient clipping, learning-rate schedules and the optimizer step over a
 * model (see train.h for the conventions they follow). The AdamW update and the sum of squares
 * have AVX-512 versions chosen at run time; the update gives the plain loop's values bit for bit
 * (same operations, no fused multiply-adds). */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/train.h"

rl_status rl_adamw_init(rl_adamw *o, size_t n, float beta1, float beta2, float eps, rl_error *err) {
    memset(o, 0, sizeof *o);
    o->m = rl_big_calloc(n ? n : 1, sizeof(float));
    o->v = rl_big_calloc(n ? n : 1, sizeof(float));
    if (!o->m || !o->v) {
        rl_adamw_free(o);
        return rl_fail(err, RL_ENOMEM, "cannot allocate optimizer state for %zu parameters", n);
    }
    o->n = n;
    o->beta1 = beta1;
    o->beta2 = beta2;
    o->eps = eps;
    return RL_OK;
}

void rl_adamw_free(rl_adamw *o) {
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof *o);
}

void rl_adamw_begin(rl_adamw *o) { o->t++; }

static int simd_ok(void) { return __builtin_cpu_supports("avx512f") && !getenv("RAFTLM_NO_AVX512"); }

/* The whole vectors of the update; returns how many elements it did. */
__attribute__((target("avx512f"))) static size_t adamw_avx512(float *p, float *m, float *v, const float *g, size_t n, float b1,
                                                              float b2, float gscale, float step, float rbc2, float decay,
                                                              float eps) {
    __m512 vb1 = _mm512_set1_ps(b1), vb2 = _mm512_set1_ps(b2), c1 = _mm512_set1_ps(1.0f - b1), c2 = _mm512_set1_ps(1.0f - b2);
    __m512 vgs = _mm512_set1_ps(gscale), vst = _mm512_set1_ps(step), vr = _mm512_set1_ps(rbc2), vd = _mm512_set1_ps(decay);
    __m512 ve = _mm512_set1_ps(eps);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 gi = _mm512_mul_ps(_mm512_loadu_ps(g + i), vgs);
        __m512 mi = _mm512_add_ps(_mm512_mul_ps(vb1, _mm512_loadu_ps(m + i)), _mm512_mul_ps(c1, gi));
        __m512 vi = _mm512_add_ps(_mm512_mul_ps(vb2, _mm512_loadu_ps(v + i)), _mm512_mul_ps(_mm512_mul_ps(c2, gi), gi));
        __m512 den = _mm512_add_ps(_mm512_mul_ps(_mm512_sqrt_ps(vi), vr), ve);
        __m512 pi = _mm512_sub_ps(_mm512_mul_ps(_mm512_loadu_ps(p + i), vd), _mm512_div_ps(_mm512_mul_ps(vst, mi), den));
        _mm512_storeu_ps(m + i, mi);
        _mm512_storeu_ps(v + i, vi);
        _mm512_storeu_ps(p + i, pi);
    }
    return i;
}

void rl_adamw_update(rl_adamw *o, float *p, const float *g, size_t off, size_t n, float lr, float wd, float gscale) {
    RL_ASSERT(off + n <= o->n && o->t > 0);
    float *m = o->m + off, *v = o->v + off;
    float b1 = o->beta1, b2 = o->beta2;
    // torch: step_size = lr / bc1; denom = sqrt(v) / sqrt(bc2) + eps
    double bc1 = 1.0 - pow(b1, (double)o->t), bc2 = 1.0 - pow(b2, (double)o->t);
    float step = (float)(lr / bc1), rbc2 = (float)(1.0 / sqrt(bc2)), decay = 1.0f - lr * wd;
    size_t i = 0;
    if (n >= 16 && simd_ok()) i = adamw_avx512(p, m, v, g, n, b1, b2, gscale, step, rbc2, decay, o->eps);
    for (; i < n; i++) {
        float gi = g[i] * gscale;
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        p[i] = p[i] * decay - step * m[i] / (sqrtf(v[i]) * rbc2 + o->eps);
    }
}

__attribute__((target("avx512f"))) static double sumsq_avx512(const float *g, size_t n, size_t *done) {
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 x = _mm512_loadu_ps(g + i);
        __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(x)), hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
        a0 = _mm512_fmadd_pd(lo, lo, a0);
        a1 = _mm512_fmadd_pd(hi, hi, a1);
    }
    *done = i;
    return _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
}

double rl_sumsq(const float *g, size_t n) {
    double s = 0;
    size_t i = 0;
    if (n >= 16 && simd_ok()) s = sumsq_avx512(g, n, &i);
    for (; i < n; i++) s += (double)g[i] * g[i];
    return s;
}

float rl_clip_coef(double norm, float max_norm) {
    if (max_norm <= 0) return 1.0f;
    double c = max_norm / (norm + 1e-6);
    return c < 1.0 ? (float)c : 1.0f;
}

int rl_sched_parse(const char *name) {
    if (!strcmp(name, "constant")) return RL_SCHED_CONSTANT;
    if (!strcmp(name, "linear")) return RL_SCHED_LINEAR;
    if (!strcmp(name, "cosine")) return RL_SCHED_COSINE;
    return -1;
}

float rl_sched_lr(rl_sched kind, float lr, int64_t step, int64_t warmup, int64_t total) {
    if (step < warmup) return lr * (float)step / (float)(warmup > 1 ? warmup : 1);
    if (kind == RL_SCHED_CONSTANT) return lr;
    double span = (double)(total - warmup), progress = span > 0 ? (double)(step - warmup) / span : 1.0;
    if (progress > 1.0) progress = 1.0;
    if (kind == RL_SCHED_LINEAR) return (float)(lr * (1.0 - progress));
    return (float)(lr * 0.5 * (1.0 + cos(M_PI * progress)));
}

/* The passes over every parameter run on the pool in SLICES fixed slices of n (the same slices
 * for any thread count). */
#define SLICES 16
static void slice_of(size_t n, size_t i, size_t *lo, size_t *hi) {
    *lo = n * i / SLICES;
    *hi = n * (i + 1) / SLICES;
}

/* AdamW over slices of n on the pool (elementwise, so the result does not depend on the threads). */
typedef struct {
    rl_adamw *o;
    float *p;
    const float *g;
    size_t off, n;
    float lr, wd, gscale;
} adam_ctx;

static void adam_item(void *vc, size_t i, int thread) {
    adam_ctx *c = vc;
    size_t lo, hi;
    slice_of(c->n, i, &lo, &hi);
    if (hi > lo) rl_adamw_update(c->o, c->p + lo, c->g + lo, c->off + lo, hi - lo, c->lr, c->wd, c->gscale);
    (void)thread;
}

static void adamw_update_par(rl_pool *pool, rl_adamw *o, float *p, const float *g, size_t off, size_t n, float lr, float wd,
                             float gscale) {
    if (!pool || n < 65536) {
        rl_adamw_update(o, p, g, off, n, lr, wd, gscale);
        return;
    }
    adam_ctx c = {o, p, g, off, n, lr, wd, gscale};
    rl_pool_for(pool, SLICES, adam_item, &c);
}

/* The sum of squares of all the gradients over the pool: the slices' sums added in order, so
 * the norm does not depend on the thread count (one core alone reads ~540 MB for SmolLM2-135M
 * at a fraction of the memory bandwidth two can use). */
typedef struct {
    const float *g;
    size_t n;
    double part[SLICES];
} sumsq_ctx;

static void sumsq_item(void *vc, size_t i, int thread) {
    sumsq_ctx *c = vc;
    size_t lo, hi;
    slice_of(c->n, i, &lo, &hi);
    c->part[i] = rl_sumsq(c->g + lo, hi - lo);
    (void)thread;
}

static double sumsq_par(rl_pool *pool, const float *g, size_t n) {
    if (!pool || n < 65536) return rl_sumsq(g, n);
    sumsq_ctx c = {.g = g, .n = n};
    rl_pool_for(pool, SLICES, sumsq_item, &c);
    double s = 0;
    for (int i = 0; i < SLICES; i++) s += c.part[i];
    return s;
}

/* ---- the trainer ------------------------------------------------------------------------- */

rl_status rl_trainer_init(rl_trainer *tr, rl_model *m, int lora, float weight_decay, float max_grad_norm,
                          rl_error *err) {
    memset(tr, 0, sizeof *tr);
    tr->m = m;
    tr->lora = lora;
    tr->weight_decay = weight_decay;
    tr->max_grad_norm = max_grad_norm;
    rl_status s;
    if (lora) {
        if (!m->lora) return rl_fail(err, RL_EINVAL, "LoRA training needs adapters attached to the model");
        const rl_lora *lo = m->lora;
        if ((s = rl_lora_init(&tr->lg, &m->cfg, lo->r, lo->alpha, lo->rslora, lo->targets, 0, 1, err))) return s;
        s = rl_adamw_init(&tr->opt, lo->n, 0.9f, 0.999f, 1e-8f, err);
    } else {
        if ((s = rl_params_init(&tr->g, &m->cfg, err))) return s;
        s = rl_adamw_init(&tr->opt, m->w.n, 0.9f, 0.999f, 1e-8f, err);
    }
    if (s) rl_trainer_free(tr);
    return s;
}

void rl_trainer_free(rl_trainer *tr) {
    if (tr->lora) rl_lora_free(&tr->lg);
    else rl_params_free(&tr->g);
    rl_adamw_free(&tr->opt);
    memset(tr, 0, sizeof *tr);
}

typedef struct {
    float *p;
    size_t n;
} zero_ctx;

static void zero_item(void *vc, size_t i, int thread) {
    zero_ctx *c = vc;
    size_t lo, hi;
    slice_of(c->n, i, &lo, &hi);
    memset(c->p + lo, 0, (hi - lo) * sizeof(float));
    (void)thread;
}

/* Over the pool: full fine-tuning's gradients are as large as the model (540 MB for 135M). */
static void zero_grads_now(rl_trainer *tr) {
    zero_ctx c = {tr->lora ? tr->lg.mem : tr->g.mem, tr->lora ? tr->lg.n : tr->g.n};
    rl_pool_for(c.n >= 65536 ? tr->m->pool : NULL, SLICES, zero_item, &c);
}

void rl_trainer_zero_grad(rl_trainer *tr) {
    if (tr->lora) zero_grads_now(tr); // a few MB: the adapters' products keep adding
    else tr->grads_stale = 1;
}

void rl_trainer_backward(rl_trainer *tr, rl_acts *a, float dscale) {
    rl_model_backward_ex(tr->m, a, tr->lora ? NULL : &tr->g, tr->lora ? &tr->lg : NULL, dscale,
                         tr->grads_stale ? RL_BWD_OVERWRITE : 0);
    tr->grads_stale = 0;
}

double rl_trainer_step(rl_trainer *tr, float lr) {
    rl_model *m = tr->m;
    if (tr->grads_stale) { // no backward since zero_grad (every micro-batch was empty)
        zero_grads_now(tr);
        tr->grads_stale = 0;
    }
    rl_adamw_begin(&tr->opt);
    if (tr->lora) { // every adapter is a matrix: one update over the whole allocation
        double norm = sqrt(sumsq_par(m->pool, tr->lg.mem, tr->lg.n));
        float c = rl_clip_coef(norm, tr->max_grad_norm);
        adamw_update_par(m->pool, &tr->opt, m->lora->mem, tr->lg.mem, 0, tr->lg.n, lr, tr->weight_decay, c);
        return tr->last_grad_norm = norm;
    }
    double norm = sqrt(sumsq_par(m->pool, tr->g.mem, tr->g.n)); // a tied lm_head has no slot of its own
    float c = rl_clip_coef(norm, tr->max_grad_norm);
    int nt = rl_params_count(&m->cfg);
    rl_tensor_ref *pr = rl_xcalloc((size_t)nt, sizeof *pr), *gr = rl_xcalloc((size_t)nt, sizeof *gr);
    rl_params_list(&m->cfg, &m->w, pr);
    rl_params_list(&m->cfg, &tr->g, gr);
    for (int i = 0; i < nt; i++) {
        size_t off = (size_t)(pr[i].data - m->w.mem);
        adamw_update_par(m->pool, &tr->opt, pr[i].data, gr[i].data, off, pr[i].n, lr, pr[i].ndim == 2 ? tr->weight_decay : 0.0f, c);
    }
    free(pr);
    free(gr);
    return tr->last_grad_norm = norm;
}
