/* attention.c - causal self-attention for training, forward and backward, flash style
 * (tensor.h: rl_attention_forward / rl_attention_backward).
 *
 * Why: the (T,T) probabilities of every head are the largest activation of a training step
 * (9 heads x 1024^2 floats = 38 MB per layer at T=1024) and the passes that write, normalise
 * and read them back cost more than their products. Here they are never stored.
 *
 * How: per (batch row, head) the queries are cut into BQ-row tiles and the keys into BK-key
 * tiles. Forward: a query tile walks its key tiles left to right keeping each row's running max
 * m and sum l (online softmax) and its output rows, rescaled when m grows; a 32 x 32 tile of
 * scores lives in L1. Only each row's log-sum-exp (m + log l) is kept for backward, which
 * recomputes a tile's probabilities from it: P = exp(S - lse), dS = P (dP - D) with
 * D = rowsum(dO * O), then dV += P^T dO, dK += dS^T Q, dQ += dS K.
 * Tiles above the causal diagonal are never visited. With sample packing (segment ids that do
 * not decrease along a row, as rl_batch_build writes them) a query tile starts at the key tile
 * that holds the start of its first row's sample, so the keys of earlier samples are skipped
 * tile by tile; segment ids in any other order are still right (masked element by element, no
 * skipping).
 * Products: two register-blocked AVX-512 kernels, scores = A Bt against a transposed copy of K
 * (or V) padded to whole tiles, and C += W X for the accumulating products (W read with any
 * strides, so P^T needs no copy); plain C without AVX-512 (RAFTLM_NO_AVX512=1 forces it; the
 * tests compare both with a float64 reference).
 * Threads: forward over (row, head, query tile), the longest tiles first; backward over
 * (row, head), each query head writing its own dK/dV, summed over the heads of a GQA group
 * afterwards, so that the result does not depend on the number of threads.
 *
 * Not here: decoding attention (rl_attention_decode, tensor.c), encoders (tensor_enc.c).
 */
#include "tensor/tensor.h"
#include "tensor/tensor_simd.h"

#include <math.h>
#include <string.h>

#define BQ 32 /* query rows per tile */
#define BK 32 /* keys per tile: two zmm of scores per row (the kernels assume 32) */

typedef struct {
    float *out, *lse, *dq, *dk, *dv;
    const float *q, *k, *v, *dout, *o;
    const int *seg;
    float *kt, *vt;   /* (B, NKV, HD, TP) transposed K and V, zero beyond T */
    float *dkh, *dvh; /* (B, NH, T, HD) per-head dK, dV when G > 1 */
    int *ss;          /* (B, T) sample_starts of each row (with seg) */
    int B, T, TP, NH, NKV, HD, G, nqt, simd;
    float scale;
} att_ctx;

static int imin(int a, int b) { return a < b ? a : b; }

static void run(rl_pool *pool, size_t n, void (*fn)(void *, size_t, int), void *ctx) {
    if (pool) rl_pool_for(pool, n, fn, ctx);
    else
        for (size_t i = 0; i < n; i++) fn(ctx, i, 0);
}

/* ---- micro-kernels ------------------------------------------------------------------------ */

/* S (nr, BK) = alpha * A (nr, n) @ Bt (n, BK); A rows of stride lda, Bt rows of stride ldb. */
static void scores_ref(float *S, const float *A, int lda, const float *Bt, int ldb, int nr, int n, float alpha) {
    for (int r = 0; r < nr; r++) {
        float acc[BK] = {0};
        for (int d = 0; d < n; d++) {
            float a = A[(size_t)r * lda + d];
            const float *b = Bt + (size_t)d * ldb;
            for (int s = 0; s < BK; s++) acc[s] += a * b[s];
        }
        for (int s = 0; s < BK; s++) S[r * BK + s] = alpha * acc[s];
    }
}

__attribute__((target("avx512f"))) static void scores_avx512(float *S, const float *A, int lda, const float *Bt, int ldb,
                                                             int nr, int n, float alpha) {
    __m512 va = _mm512_set1_ps(alpha);
    int r = 0;
    for (; r + 8 <= nr; r += 8) { // 8 rows x 32 keys: 16 accumulators
        __m512 c[8][2];
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) c[i][0] = c[i][1] = _mm512_setzero_ps();
        const float *a = A + (size_t)r * lda;
        for (int d = 0; d < n; d++) {
            __m512 b0 = _mm512_loadu_ps(Bt + (size_t)d * ldb), b1 = _mm512_loadu_ps(Bt + (size_t)d * ldb + 16);
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) {
                __m512 x = _mm512_set1_ps(a[(size_t)i * lda + d]);
                c[i][0] = _mm512_fmadd_ps(x, b0, c[i][0]);
                c[i][1] = _mm512_fmadd_ps(x, b1, c[i][1]);
            }
        }
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) {
            _mm512_storeu_ps(S + (r + i) * BK, _mm512_mul_ps(c[i][0], va));
            _mm512_storeu_ps(S + (r + i) * BK + 16, _mm512_mul_ps(c[i][1], va));
        }
    }
    for (; r < nr; r++) {
        __m512 c0 = _mm512_setzero_ps(), c1 = _mm512_setzero_ps();
        for (int d = 0; d < n; d++) {
            __m512 x = _mm512_set1_ps(A[(size_t)r * lda + d]);
            c0 = _mm512_fmadd_ps(x, _mm512_loadu_ps(Bt + (size_t)d * ldb), c0);
            c1 = _mm512_fmadd_ps(x, _mm512_loadu_ps(Bt + (size_t)d * ldb + 16), c1);
        }
        _mm512_storeu_ps(S + r * BK, _mm512_mul_ps(c0, va));
        _mm512_storeu_ps(S + r * BK + 16, _mm512_mul_ps(c1, va));
    }
}

/* C (nr, n) += W (nr, ns) @ X (ns, n); W[r][s] at W[r * wr + s * wc], X and C rows of stride
 * ldx, ldc. */
static void acc_ref(float *C, int ldc, const float *W, int wr, int wc, int nr, int ns, const float *X, int ldx, int n) {
    for (int r = 0; r < nr; r++) {
        float *c = C + (size_t)r * ldc;
        for (int s = 0; s < ns; s++) {
            float w = W[(size_t)r * wr + (size_t)s * wc];
            const float *x = X + (size_t)s * ldx;
            for (int j = 0; j < n; j++) c[j] += w * x[j];
        }
    }
}

/* R rows x NV vectors of 16 columns (constants after inlining: the accumulators stay in registers). */
__attribute__((always_inline, target("avx512f"))) static inline void acc_block(int R, int NV, float *C, int ldc, const float *W,
                                                                             int wr, int wc, int ns, const float *X, int ldx,
                                                                             const __mmask16 *mk) {
    __m512 c[8][4];
#pragma GCC unroll 8
    for (int i = 0; i < R; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NV; j++) c[i][j] = _mm512_maskz_loadu_ps(mk[j], C + (size_t)i * ldc + 16 * j);
    for (int s = 0; s < ns; s++) {
        __m512 x[4];
#pragma GCC unroll 4
        for (int j = 0; j < NV; j++) x[j] = _mm512_maskz_loadu_ps(mk[j], X + (size_t)s * ldx + 16 * j);
#pragma GCC unroll 8
        for (int i = 0; i < R; i++) {
            __m512 w = _mm512_set1_ps(W[(size_t)i * wr + (size_t)s * wc]);
#pragma GCC unroll 4
            for (int j = 0; j < NV; j++) c[i][j] = _mm512_fmadd_ps(w, x[j], c[i][j]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < R; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NV; j++) _mm512_mask_storeu_ps(C + (size_t)i * ldc + 16 * j, mk[j], c[i][j]);
}

__attribute__((target("avx512f"))) static void acc_avx512(float *C, int ldc, const float *W, int wr, int wc, int nr, int ns,
                                                          const float *X, int ldx, int n) {
    for (int j0 = 0; j0 < n; j0 += 64) { // 64 columns (4 vectors) at a time; the last ones masked
        int nj = imin(64, n - j0), nv = (nj + 15) / 16, r = 0;
        __mmask16 mk[4];
        for (int j = 0; j < 4; j++) mk[j] = tensor_lanes(nj - 16 * j);
        float *Cj = C + j0;
        const float *Xj = X + j0;
#define ACC(R_, NV_) acc_block(R_, NV_, Cj + (size_t)r * ldc, ldc, W + (size_t)r * wr, wr, wc, ns, Xj, ldx, mk)
        switch (nv) {
        case 4: for (; r + 4 <= nr; r += 4) ACC(4, 4); for (; r < nr; r++) ACC(1, 4); break;
        case 3: for (; r + 4 <= nr; r += 4) ACC(4, 3); for (; r < nr; r++) ACC(1, 3); break;
        case 2: for (; r + 8 <= nr; r += 8) ACC(8, 2); for (; r < nr; r++) ACC(1, 2); break;
        default: for (; r + 8 <= nr; r += 8) ACC(8, 1); for (; r < nr; r++) ACC(1, 1); break;
        }
#undef ACC
    }
}

static void scores(int simd, float *S, const float *A, int lda, const float *Bt, int ldb, int nr, int n, float alpha) {
    if (simd) scores_avx512(S, A, lda, Bt, ldb, nr, n, alpha);
    else scores_ref(S, A, lda, Bt, ldb, nr, n, alpha);
}

static void acc(int simd, float *C, int ldc, const float *W, int wr, int wc, int nr, int ns, const float *X, int ldx, int n) {
    if (nr <= 0 || ns <= 0) return;
    if (simd) acc_avx512(C, ldc, W, wr, wc, nr, ns, X, ldx, n);
    else acc_ref(C, ldc, W, wr, wc, nr, ns, X, ldx, n);
}

/* x[0..n) *= a: an output row rescaled when its running max grows, and normalised at the end. */
__attribute__((target("avx512f"))) static void scale_row_avx512(float *x, int n, float a) {
    __m512 va = _mm512_set1_ps(a);
    for (int d = 0; d < n; d += 16) {
        __mmask16 m = tensor_lanes(n - d);
        _mm512_mask_storeu_ps(x + d, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + d), va));
    }
}

static void scale_row(int simd, float *x, int n, float a) {
    if (simd) scale_row_avx512(x, n, a);
    else
        for (int d = 0; d < n; d++) x[d] *= a;
}

/* ---- tiles and masks ------------------------------------------------------------------------ */

/* ss (T) of one batch row: the first position of each token's sample when the segment ids never
 * decrease along the row (sample packing), else -1 everywhere (masked element by element). */
static void sample_starts(int *ss, const int *seg, int T) {
    int ordered = 1;
    for (int t = 1; t < T && ordered; t++) ordered = seg[t] >= seg[t - 1];
    for (int t = 0; t < T; t++) ss[t] = !ordered ? -1 : t > 0 && seg[t] == seg[t - 1] ? ss[t - 1] : t;
}

/* The first key tile the query tile starting at q0 may attend: the one holding the start of
 * row q0's sample (earlier samples are skipped whole). */
static int key_start(const int *ss, int q0) { return ss && ss[q0] > 0 ? ss[q0] / BK * BK : 0; }

/* 1 when positions [lo, hi] all belong to one sample (always without segments). */
static int one_segment(const int *seg, const int *ss, int lo, int hi) {
    if (!seg) return 1;
    if (ss[hi] >= 0) return ss[hi] <= lo;
    for (int s = lo + 1; s <= hi; s++)
        if (seg[s] != seg[lo]) return 0;
    return 1;
}

/* Whether a tile of keys [k0, k0 + BK) x queries [q0, q0 + nq) needs mask_tile: it reaches above
 * the diagonal, or it mixes samples (keys after the last query are above the diagonal anyway). */
static int tile_needs_mask(const int *seg, const int *ss, int q0, int nq, int k0) {
    return k0 + BK - 1 > q0 || !one_segment(seg, ss, k0, q0 + nq - 1);
}

/* Sets the scores that row t = q0 + i may not see to -inf: keys after t, keys of other samples. */
static void mask_tile(float *S, int nq, int q0, int k0, const int *seg, const int *ss) {
    for (int i = 0; i < nq; i++) {
        int t = q0 + i;
        float *row = S + i * BK;
        if (!seg || ss[t] >= 0) { // visible keys: one range [sample start, t]
            int lo = seg ? ss[t] - k0 : 0, hi = t - k0;
            for (int s = 0; s < BK; s++)
                if (s < lo || s > hi) row[s] = -INFINITY;
        } else {
            for (int s = 0; s < BK; s++) {
                int ks = k0 + s;
                if (ks > t || seg[ks] != seg[t]) row[s] = -INFINITY; // ks > t first: ks may be >= T
            }
        }
    }
}

/* Online softmax over a tile of scores S (nq, BK): m, l the running max and sum of each row;
 * S becomes exp(S - m_new) (0 where -inf) and alpha[i] = exp(m_old - m_new). */
static void online_rows_ref(float *S, int nq, float *m, float *l, float *alpha) {
    for (int i = 0; i < nq; i++) {
        float *row = S + i * BK, mx = m[i];
        for (int s = 0; s < BK; s++) mx = row[s] > mx ? row[s] : mx;
        if (mx == -INFINITY) { // nothing visible yet in this row
            memset(row, 0, BK * sizeof(float));
            alpha[i] = 1.0f;
            continue;
        }
        float sum = 0.0f;
        for (int s = 0; s < BK; s++) sum += (row[s] = row[s] == -INFINITY ? 0.0f : expf(row[s] - mx));
        alpha[i] = expf(m[i] - mx);
        l[i] = l[i] * alpha[i] + sum;
        m[i] = mx;
    }
}

__attribute__((target("avx512f"))) static void online_rows_avx512(float *S, int nq, float *m, float *l, float *alpha) {
    __m512 ninf = _mm512_set1_ps(-INFINITY);
    for (int i = 0; i < nq; i++) {
        float *row = S + i * BK;
        __m512 s0 = _mm512_loadu_ps(row), s1 = _mm512_loadu_ps(row + 16);
        float mx = _mm512_reduce_max_ps(_mm512_max_ps(s0, s1));
        mx = mx > m[i] ? mx : m[i];
        if (mx == -INFINITY) {
            memset(row, 0, BK * sizeof(float));
            alpha[i] = 1.0f;
            continue;
        }
        __m512 vm = _mm512_set1_ps(mx);
        __mmask16 k0 = _mm512_cmp_ps_mask(s0, ninf, _CMP_GT_OQ), k1 = _mm512_cmp_ps_mask(s1, ninf, _CMP_GT_OQ);
        __m512 p0 = _mm512_maskz_mov_ps(k0, tensor_exp512(_mm512_sub_ps(s0, vm)));
        __m512 p1 = _mm512_maskz_mov_ps(k1, tensor_exp512(_mm512_sub_ps(s1, vm)));
        _mm512_storeu_ps(row, p0);
        _mm512_storeu_ps(row + 16, p1);
        alpha[i] = expf(m[i] - mx);
        l[i] = l[i] * alpha[i] + _mm512_reduce_add_ps(_mm512_add_ps(p0, p1));
        m[i] = mx;
    }
}

static void online_rows(int simd, float *S, int nq, float *m, float *l, float *alpha) {
    if (simd) online_rows_avx512(S, nq, m, l, alpha);
    else online_rows_ref(S, nq, m, l, alpha);
}

/* Backward tile: P = exp(S - lse) (0 where -inf) in S; dS = P (dP - D) * scale in dP. */
static void grad_rows_ref(float *S, float *dP, int nq, const float *lse, const float *D, float scale) {
    for (int i = 0; i < nq; i++)
        for (int s = 0; s < BK; s++) {
            float *p = S + i * BK + s, *d = dP + i * BK + s;
            *p = *p == -INFINITY ? 0.0f : expf(*p - lse[i]);
            *d = *p * (*d - D[i]) * scale;
        }
}

__attribute__((target("avx512f"))) static void grad_rows_avx512(float *S, float *dP, int nq, const float *lse, const float *D,
                                                                float scale) {
    __m512 ninf = _mm512_set1_ps(-INFINITY), vs = _mm512_set1_ps(scale);
    for (int i = 0; i < nq; i++) {
        __m512 vl = _mm512_set1_ps(lse[i]), vd = _mm512_set1_ps(D[i]);
        for (int h = 0; h < BK; h += 16) {
            float *p = S + i * BK + h, *d = dP + i * BK + h;
            __m512 s = _mm512_loadu_ps(p);
            __m512 e = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(s, ninf, _CMP_GT_OQ), tensor_exp512(_mm512_sub_ps(s, vl)));
            _mm512_storeu_ps(p, e);
            _mm512_storeu_ps(d, _mm512_mul_ps(_mm512_mul_ps(e, _mm512_sub_ps(_mm512_loadu_ps(d), vd)), vs));
        }
    }
}

/* ---- forward -------------------------------------------------------------------------------- */

/* kt (and vt) of one (row, KV head): (HD, TP) transposed, zero beyond T. */
static void transpose_item(void *vc, size_t item, int thread) {
    att_ctx *c = vc;
    int b = (int)item / c->NKV, h = (int)item % c->NKV, T = c->T, TP = c->TP, HD = c->HD, KD = c->NKV * HD;
    for (int w = 0; w < 2; w++) {
        const float *src = w ? c->v : c->k;
        float *dst = w ? c->vt : c->kt;
        if (!dst) continue;
        src += (size_t)b * T * KD + (size_t)h * HD;
        dst += item * (size_t)HD * TP;
        for (int t0 = 0; t0 < TP; t0 += 16) // 16 positions at a time: rows of dst are written in runs
            for (int d = 0; d < HD; d++)
                for (int t = t0; t < t0 + 16; t++) dst[(size_t)d * TP + t] = t < T ? src[(size_t)t * KD + d] : 0.0f;
    }
    (void)thread;
}

static void fwd_item(void *vc, size_t item, int thread) {
    att_ctx *c = vc;
    int qi = c->nqt - 1 - (int)(item % c->nqt), bh = (int)(item / c->nqt), b = bh / c->NH, h = bh % c->NH;
    int T = c->T, HD = c->HD, QD = c->NH * HD, KD = c->NKV * HD, kvh = h / c->G;
    int q0 = qi * BQ, nq = imin(BQ, T - q0), qe = q0 + nq;
    const float *qh = c->q + ((size_t)b * T + q0) * QD + (size_t)h * HD;
    float *oh = c->out + ((size_t)b * T + q0) * QD + (size_t)h * HD;
    const float *kt = c->kt + ((size_t)b * c->NKV + kvh) * HD * c->TP;
    const float *vh = c->v + (size_t)b * T * KD + (size_t)kvh * HD;
    const int *seg = c->seg ? c->seg + (size_t)b * T : NULL, *ss = c->seg ? c->ss + (size_t)b * T : NULL;
    float S[BQ * BK], m[BQ], l[BQ], alpha[BQ];
    for (int i = 0; i < nq; i++) {
        m[i] = -INFINITY, l[i] = 0.0f;
        memset(oh + (size_t)i * QD, 0, (size_t)HD * sizeof(float));
    }
    for (int k0 = key_start(ss, q0); k0 < qe; k0 += BK) {
        scores(c->simd, S, qh, QD, kt + k0, c->TP, nq, HD, c->scale);
        if (tile_needs_mask(seg, ss, q0, nq, k0)) mask_tile(S, nq, q0, k0, seg, ss);
        online_rows(c->simd, S, nq, m, l, alpha);
        for (int i = 0; i < nq; i++)
            if (alpha[i] != 1.0f) scale_row(c->simd, oh + (size_t)i * QD, HD, alpha[i]);
        acc(c->simd, oh, QD, S, BK, 1, nq, imin(BK, qe - k0), vh + (size_t)k0 * KD, KD, HD);
    }
    float *lse = c->lse + ((size_t)b * c->NH + h) * T + q0;
    for (int i = 0; i < nq; i++) { // every row sees at least itself: l >= 1
        scale_row(c->simd, oh + (size_t)i * QD, HD, 1.0f / l[i]);
        lse[i] = m[i] + logf(l[i]);
    }
    (void)thread;
}

size_t rl_attention_scratch_floats(int B, int T, int NH, int NKV, int HD) {
    size_t TP = (size_t)(T + BK - 1) / BK * BK;
    size_t n = 2 * (size_t)B * NKV * HD * TP; // kt, vt
    if (NH != NKV) n += 2 * (size_t)B * NH * T * HD; // per-head dK, dV
    return n + (size_t)B * T; // sample starts (ints)
}

static att_ctx ctx_make(float *scratch, const float *q, const float *k, const float *v, const int *seg, int B, int T, int NH,
                        int NKV, int HD, int want_vt) {
    att_ctx c = {.q = q, .k = k, .v = v, .seg = seg, .B = B, .T = T, .TP = (T + BK - 1) / BK * BK, .NH = NH, .NKV = NKV,
                 .HD = HD, .G = NH / NKV, .nqt = (T + BQ - 1) / BQ, .simd = tensor_avx512(), .scale = 1.0f / sqrtf((float)HD)};
    RL_ASSERT(NH % NKV == 0);
    size_t nt = (size_t)B * NKV * HD * c.TP;
    c.kt = scratch;
    c.vt = want_vt ? scratch + nt : NULL;
    float *rest = scratch + 2 * nt;
    if (c.G > 1) {
        c.dkh = rest;
        c.dvh = c.dkh + (size_t)B * NH * T * HD;
        rest = c.dvh + (size_t)B * NH * T * HD;
    }
    c.ss = (int *)rest; // this part of the scratch only ever holds ints
    if (seg)
        for (int b = 0; b < B; b++) sample_starts(c.ss + (size_t)b * T, seg + (size_t)b * T, T);
    return c;
}

void rl_attention_forward(float *out, float *lse, float *scratch, const float *q, const float *k, const float *v,
                          const int *seg, int B, int T, int NH, int NKV, int HD, rl_pool *pool) {
    // out (B,T,NH,HD), lse (B,NH,T), q (B,T,NH,HD), k, v (B,T,NKV,HD), seg (B,T)
    att_ctx c = ctx_make(scratch, q, k, v, seg, B, T, NH, NKV, HD, 0);
    c.out = out;
    c.lse = lse;
    run(pool, (size_t)B * NKV, transpose_item, &c);
    run(pool, (size_t)B * NH * c.nqt, fwd_item, &c);
}

/* ---- backward ------------------------------------------------------------------------------- */

static void bwd_item(void *vc, size_t item, int thread) {
    att_ctx *c = vc;
    int b = (int)item / c->NH, h = (int)item % c->NH, T = c->T, HD = c->HD, QD = c->NH * HD, KD = c->NKV * HD;
    int kvh = h / c->G, TP = c->TP;
    float *dkh, *dvh;
    int ldk;
    if (c->G == 1) {
        dkh = c->dk + (size_t)b * T * KD + (size_t)kvh * HD, dvh = c->dv + (size_t)b * T * KD + (size_t)kvh * HD, ldk = KD;
    } else {
        dkh = c->dkh + ((size_t)b * c->NH + h) * T * HD, dvh = c->dvh + ((size_t)b * c->NH + h) * T * HD, ldk = HD;
    }
    for (int t = 0; t < T; t++) {
        memset(dkh + (size_t)t * ldk, 0, (size_t)HD * sizeof(float));
        memset(dvh + (size_t)t * ldk, 0, (size_t)HD * sizeof(float));
    }
    const float *kt = c->kt + ((size_t)b * c->NKV + kvh) * HD * TP, *vt = c->vt + ((size_t)b * c->NKV + kvh) * HD * TP;
    const float *kh = c->k + (size_t)b * T * KD + (size_t)kvh * HD;
    const int *seg = c->seg ? c->seg + (size_t)b * T : NULL, *ss = c->seg ? c->ss + (size_t)b * T : NULL;
    float S[BQ * BK], dP[BQ * BK], D[BQ];
    for (int q0 = 0; q0 < T; q0 += BQ) {
        int nq = imin(BQ, T - q0), qe = q0 + nq;
        size_t row0 = ((size_t)b * T + q0) * QD + (size_t)h * HD;
        const float *qh = c->q + row0, *doh = c->dout + row0, *oh = c->o + row0;
        float *dqh = c->dq + row0;
        const float *lse = c->lse + ((size_t)b * c->NH + h) * T + q0;
        for (int i = 0; i < nq; i++) {
            float s = 0.0f;
            for (int d = 0; d < HD; d++) s += doh[(size_t)i * QD + d] * oh[(size_t)i * QD + d];
            D[i] = s;
            memset(dqh + (size_t)i * QD, 0, (size_t)HD * sizeof(float));
        }
        for (int k0 = key_start(ss, q0); k0 < qe; k0 += BK) {
            int nk = imin(BK, qe - k0);
            scores(c->simd, S, qh, QD, kt + k0, TP, nq, HD, c->scale);
            if (tile_needs_mask(seg, ss, q0, nq, k0)) mask_tile(S, nq, q0, k0, seg, ss);
            scores(c->simd, dP, doh, QD, vt + k0, TP, nq, HD, 1.0f);
            if (c->simd) grad_rows_avx512(S, dP, nq, lse, D, c->scale);
            else grad_rows_ref(S, dP, nq, lse, D, c->scale);
            acc(c->simd, dvh + (size_t)k0 * ldk, ldk, S, 1, BK, nk, nq, doh, QD, HD);      // dV += P^T dO
            acc(c->simd, dkh + (size_t)k0 * ldk, ldk, dP, 1, BK, nk, nq, qh, QD, HD);      // dK += dS^T Q
            acc(c->simd, dqh, QD, dP, BK, 1, nq, nk, kh + (size_t)k0 * KD, KD, HD);        // dQ += dS K
        }
    }
    (void)thread;
}

/* dk, dv of KV head (b, kvh) = the sum of its G query heads' dK, dV. */
static void group_sum_item(void *vc, size_t item, int thread) {
    att_ctx *c = vc;
    int b = (int)item / c->NKV, kvh = (int)item % c->NKV, T = c->T, HD = c->HD, KD = c->NKV * HD;
    for (int w = 0; w < 2; w++) {
        const float *src = (w ? c->dvh : c->dkh) + ((size_t)b * c->NH + (size_t)kvh * c->G) * T * HD;
        float *dst = (w ? c->dv : c->dk) + (size_t)b * T * KD + (size_t)kvh * HD;
        for (int t = 0; t < T; t++) {
            float *o = dst + (size_t)t * KD;
            memcpy(o, src + (size_t)t * HD, (size_t)HD * sizeof(float));
            for (int g = 1; g < c->G; g++) {
                const float *x = src + ((size_t)g * T + t) * HD;
                for (int d = 0; d < HD; d++) o[d] += x[d];
            }
        }
    }
    (void)thread;
}

void rl_attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout, const float *out,
                           const float *lse, const float *q, const float *k, const float *v, const int *seg, int B, int T,
                           int NH, int NKV, int HD, rl_pool *pool) {
    att_ctx c = ctx_make(scratch, q, k, v, seg, B, T, NH, NKV, HD, 1);
    c.dq = dq, c.dk = dk, c.dv = dv, c.dout = dout, c.o = out, c.lse = (float *)lse;
    run(pool, (size_t)B * NKV, transpose_item, &c);
    run(pool, (size_t)B * NH, bwd_item, &c);
    if (c.G > 1) run(pool, (size_t)B * NKV, group_sum_item, &c);
}
