/* tensor.c - the transformer's kernels, forward and backward side by side (see tensor.h).
 *
 * Matrix products go through rl_sgemm (gemm.c: our AVX-512 kernel or OpenBLAS); the
 * cross-entropy has an AVX-512 row kernel (exp by a polynomial, chosen at run time); the other
 * kernels are plain loops written so that the compiler can vectorize their inner loops
 * (contiguous, no aliasing surprises). Attention is the one O(T^2) kernel: its products run on
 * rl_sgemm over the pool, its softmax rows on the pool.
 *
 * Deliberately not here: quantized types, a flash-style attention that avoids the (T,T)
 * probabilities (the training engine keeps them per layer for now), GPU code.
 */
#include "tensor/tensor.h"

#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <string.h>

/* ---- matmul ---------------------------------------------------------------------------- */

void rl_matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N, int C, int OC,
                       rl_pool *pool, rl_gemm_impl impl) {
    // out (N,OC), inp (N,C), w (OC,C), bias (OC)
    if (N <= 0 || OC <= 0) return;
    float beta = 0.0f;
    if (bias) {
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, bias, (size_t)OC * sizeof(float));
        beta = 1.0f;
    }
    if (C <= 0) {
        if (!bias) memset(out, 0, (size_t)N * OC * sizeof(float));
        return;
    }
    if (N == 1) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, OC, C, 1.0f, w, C, inp, 1, beta, out, 1);
        return;
    }
    rl_sgemm_impl(impl, 0, 1, N, OC, C, 1.0f, inp, C, w, C, beta, out, OC, pool);
}

void rl_matmul_forward_add(float *out, const float *inp, const float *w, float alpha, int N, int C, int OC,
                           rl_pool *pool, rl_gemm_impl impl) {
    // out (N,OC) += alpha * inp (N,C) @ w^T (OC,C)
    if (N <= 0 || OC <= 0 || C <= 0) return;
    if (N == 1) cblas_sgemv(CblasRowMajor, CblasNoTrans, OC, C, alpha, w, C, inp, 1, 1.0f, out, 1);
    else rl_sgemm_impl(impl, 0, 1, N, OC, C, alpha, inp, C, w, C, 1.0f, out, OC, pool);
}

void rl_matmul_backward_scaled(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                               float alpha, int N, int C, int OC, rl_pool *pool, rl_gemm_impl impl) {
    // dinp (N,C), dw (OC,C), dout (N,OC), inp (N,C), w (OC,C)
    if (N <= 0 || OC <= 0 || C <= 0) return;
    if (dinp) rl_sgemm_impl(impl, 0, 0, N, C, OC, alpha, dout, OC, w, C, 1.0f, dinp, C, pool);
    if (dw) rl_sgemm_impl(impl, 1, 0, OC, C, N, alpha, dout, OC, inp, C, 1.0f, dw, C, pool);
}

void rl_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp, const float *w,
                        int N, int C, int OC, rl_pool *pool, rl_gemm_impl impl) {
    // dinp (N,C), dw (OC,C), dbias (OC), dout (N,OC), inp (N,C), w (OC,C)
    if (N <= 0 || OC <= 0 || C <= 0) return;
    rl_matmul_backward_scaled(dinp, dw, dout, inp, w, 1.0f, N, C, OC, pool, impl);
    if (dbias)
        for (int n = 0; n < N; n++) {
            const float *d = dout + (size_t)n * OC;
            for (int o = 0; o < OC; o++) dbias[o] += d[o];
        }
}

/* ---- RMSNorm --------------------------------------------------------------------------- */

void rl_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C, float eps) {
    // out (N,C), rstd (N), inp (N,C), w (C)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        float ss = 0.0f;
        for (int i = 0; i < C; i++) ss += x[i] * x[i];
        float r = 1.0f / sqrtf(ss / (float)C + eps);
        for (int i = 0; i < C; i++) o[i] = x[i] * r * w[i];
        if (rstd) rstd[n] = r;
    }
}

void rl_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                         const float *rstd, int N, int C) {
    // y_i = x_i * r * w_i, r = (mean(x^2) + eps)^-1/2
    // dx_i = r * w_i * dy_i - r^3 / C * x_i * sum_j (dy_j * w_j * x_j)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        float r = rstd[n];
        float dot = 0.0f;
        for (int i = 0; i < C; i++) dot += dy[i] * w[i] * x[i];
        float k = r * r * r * dot / (float)C;
        for (int i = 0; i < C; i++) dx[i] += r * w[i] * dy[i] - k * x[i];
        if (dw)
            for (int i = 0; i < C; i++) dw[i] += dy[i] * x[i] * r;
    }
}

/* ---- RoPE ------------------------------------------------------------------------------ */

void rl_rope_inv_freq(float *inv_freq, int HD, const rl_rope_params *p) {
    // inv_freq (HD/2); follows transformers' _compute_default/linear/llama3_parameters, in float32
    int half = HD / 2;
    for (int i = 0; i < half; i++) {
        float f = 1.0f / powf(p->theta, (float)(2 * i) / (float)HD);
        if (p->type == RL_ROPE_LINEAR) {
            f = f / p->factor;
        } else if (p->type == RL_ROPE_LLAMA3) {
            float low_wavelen = (float)p->original_max_position / p->low_freq_factor;
            float high_wavelen = (float)p->original_max_position / p->high_freq_factor;
            float wavelen = 2.0f * (float)M_PI / f;
            if (wavelen > low_wavelen) {
                f = f / p->factor;
            } else if (!(wavelen < high_wavelen)) { // medium: interpolate
                float smooth = ((float)p->original_max_position / wavelen - p->low_freq_factor) /
                               (p->high_freq_factor - p->low_freq_factor);
                f = (1.0f - smooth) * f / p->factor + smooth * f;
            }
        }
        inv_freq[i] = f;
    }
}

static void rope_apply(float *x, const int *pos, const float *inv_freq, int N, int NH, int HD, float sign) {
    // x (N,NH,HD): x1' = x1 cos - x2 sin, x2' = x2 cos + x1 sin, with (x1, x2) = (x[i], x[i+HD/2])
    int half = HD / 2;
    float cs[512], sn[512];
    RL_ASSERT(half <= 512);
    for (int n = 0; n < N; n++) {
        float p = (float)pos[n];
        for (int i = 0; i < half; i++) {
            float a = p * inv_freq[i];
            cs[i] = cosf(a);
            sn[i] = sign * sinf(a);
        }
        for (int h = 0; h < NH; h++) {
            float *v = x + ((size_t)n * NH + h) * HD;
            for (int i = 0; i < half; i++) {
                float x1 = v[i], x2 = v[i + half];
                v[i] = x1 * cs[i] - x2 * sn[i];
                v[i + half] = x2 * cs[i] + x1 * sn[i];
            }
        }
    }
}

void rl_rope_forward(float *x, const int *pos, const float *inv_freq, int N, int NH, int HD) {
    rope_apply(x, pos, inv_freq, N, NH, HD, 1.0f);
}

void rl_rope_backward(float *dx, const int *pos, const float *inv_freq, int N, int NH, int HD) {
    rope_apply(dx, pos, inv_freq, N, NH, HD, -1.0f);
}

/* ---- attention ------------------------------------------------------------------------- */

/* Per (batch, head) the products go to rl_sgemm (on the pool) over row blocks of ATT_BS queries, each against
 * the keys up to the block's end only (the causal upper triangle beyond a block is never
 * computed); the masked softmax and its backward run over rows on the pool. */
#define ATT_BS 128

typedef struct {
    float *rows;       // (T,T) probabilities (forward) or dP -> dS (backward)
    const float *p;    // (T,T) probabilities (backward)
    const int *seg;    // (T) or NULL
    int T, r0, r1;
    float scale;
} softmax_ctx;

static void softmax_row(void *vctx, size_t item, int thread) {
    // row t of block [r0, r1): scores in rows[t][0..t] -> probabilities; zero beyond t (to r1)
    softmax_ctx *c = vctx;
    int t = c->r0 + (int)item, T = c->T;
    float *row = c->rows + (size_t)t * T;
    float maxv = -INFINITY;
    for (int s = 0; s <= t; s++) {
        if (c->seg && c->seg[s] != c->seg[t]) row[s] = -INFINITY;
        maxv = row[s] > maxv ? row[s] : maxv;
    }
    float sum = 0.0f;
    for (int s = 0; s <= t; s++) {
        float e = expf(row[s] - maxv); // a masked -inf gives 0
        row[s] = e;
        sum += e;
    }
    float inv = 1.0f / sum; // s == t is always attended, so sum >= 1
    for (int s = 0; s <= t; s++) row[s] *= inv;
    for (int s = t + 1; s < c->r1; s++) row[s] = 0.0f;
    (void)thread;
}

static void softmax_row_backward(void *vctx, size_t item, int thread) {
    // dS = P * (dP - sum(P * dP)) * scale, in place over dP
    softmax_ctx *c = vctx;
    int t = c->r0 + (int)item, T = c->T;
    float *d = c->rows + (size_t)t * T;
    const float *p = c->p + (size_t)t * T;
    float dot = 0.0f;
    for (int s = 0; s <= t; s++) dot += p[s] * d[s];
    for (int s = 0; s <= t; s++) d[s] = p[s] * (d[s] - dot) * c->scale;
    for (int s = t + 1; s < c->r1; s++) d[s] = 0.0f;
    (void)thread;
}

static void run_rows(rl_pool *pool, softmax_ctx *c, void (*fn)(void *, size_t, int)) {
    size_t n = (size_t)(c->r1 - c->r0);
    if (pool) rl_pool_for(pool, n, fn, c);
    else
        for (size_t i = 0; i < n; i++) fn(c, i, 0);
}

void rl_attention_forward(float *out, float *att, const float *q, const float *k, const float *v, const int *seg,
                          int B, int T, int NH, int NKV, int HD, rl_pool *pool) {
    // out (B,T,NH,HD), att (B,NH,T,T), q (B,T,NH,HD), k, v (B,T,NKV,HD), seg (B,T)
    int QD = NH * HD, KD = NKV * HD, G = NH / NKV;
    float scale = 1.0f / sqrtf((float)HD);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *qh = q + (size_t)b * T * QD + (size_t)h * HD;
            const float *kh = k + (size_t)b * T * KD + (size_t)(h / G) * HD;
            const float *vh = v + (size_t)b * T * KD + (size_t)(h / G) * HD;
            float *oh = out + (size_t)b * T * QD + (size_t)h * HD;
            float *P = att + ((size_t)b * NH + h) * T * T;
            for (int r0 = 0; r0 < T; r0 += ATT_BS) {
                int r1 = r0 + ATT_BS < T ? r0 + ATT_BS : T, nr = r1 - r0;
                // S[r0:r1, 0:r1] = scale * Q[r0:r1] K[0:r1]^T
                rl_sgemm(0, 1, nr, r1, HD, scale, qh + (size_t)r0 * QD, QD, kh,
                            KD, 0.0f, P + (size_t)r0 * T, T, pool);
                softmax_ctx c = {.rows = P, .seg = seg ? seg + (size_t)b * T : NULL, .T = T, .r0 = r0, .r1 = r1};
                run_rows(pool, &c, softmax_row);
                // O[r0:r1] = P[r0:r1, 0:r1] V[0:r1]
                rl_sgemm(0, 0, nr, HD, r1, 1.0f, P + (size_t)r0 * T, T, vh, KD,
                            0.0f, oh + (size_t)r0 * QD, QD, pool);
            }
        }
}

void rl_attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout, const float *att,
                           const float *q, const float *k, const float *v, const int *seg, int B, int T, int NH,
                           int NKV, int HD, rl_pool *pool) {
    // scratch (T,T): dP, then dS
    int QD = NH * HD, KD = NKV * HD, G = NH / NKV;
    float scale = 1.0f / sqrtf((float)HD);
    memset(dk, 0, (size_t)B * T * KD * sizeof(float));
    memset(dv, 0, (size_t)B * T * KD * sizeof(float));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *qh = q + (size_t)b * T * QD + (size_t)h * HD;
            const float *kh = k + (size_t)b * T * KD + (size_t)(h / G) * HD;
            const float *vh = v + (size_t)b * T * KD + (size_t)(h / G) * HD;
            const float *doh = dout + (size_t)b * T * QD + (size_t)h * HD;
            float *dqh = dq + (size_t)b * T * QD + (size_t)h * HD;
            float *dkh = dk + (size_t)b * T * KD + (size_t)(h / G) * HD;
            float *dvh = dv + (size_t)b * T * KD + (size_t)(h / G) * HD;
            const float *P = att + ((size_t)b * NH + h) * T * T;
            for (int r0 = 0; r0 < T; r0 += ATT_BS) {
                int r1 = r0 + ATT_BS < T ? r0 + ATT_BS : T, nr = r1 - r0;
                const float *Pb = P + (size_t)r0 * T;
                float *D = scratch + (size_t)r0 * T;
                // dV[0:r1] += P[r0:r1, 0:r1]^T dO[r0:r1]
                rl_sgemm(1, 0, r1, HD, nr, 1.0f, Pb, T, doh + (size_t)r0 * QD, QD,
                            1.0f, dvh, KD, pool);
                // dP[r0:r1, 0:r1] = dO[r0:r1] V[0:r1]^T
                rl_sgemm(0, 1, nr, r1, HD, 1.0f, doh + (size_t)r0 * QD, QD, vh, KD,
                            0.0f, D, T, pool);
                softmax_ctx c = {.rows = scratch, .p = P, .T = T, .r0 = r0, .r1 = r1, .scale = scale};
                run_rows(pool, &c, softmax_row_backward);
                // dQ[r0:r1] = dS K[0:r1];  dK[0:r1] += dS^T Q[r0:r1]
                rl_sgemm(0, 0, nr, HD, r1, 1.0f, D, T, kh, KD, 0.0f,
                            dqh + (size_t)r0 * QD, QD, pool);
                rl_sgemm(1, 0, r1, HD, nr, 1.0f, D, T, qh + (size_t)r0 * QD, QD,
                            1.0f, dkh, KD, pool);
            }
        }
    (void)seg; // the mask is in the saved probabilities (zeros)
}

/* ---- SwiGLU ---------------------------------------------------------------------------- */

void rl_swiglu_forward(float *out, const float *g, const float *u, size_t NF) {
    for (size_t i = 0; i < NF; i++) {
        float x = g[i];
        out[i] = x / (1.0f + expf(-x)) * u[i];
    }
}

void rl_swiglu_backward(float *dg, float *du, const float *dout, const float *g, const float *u, size_t NF) {
    // silu'(x) = sig(x) * (1 + x * (1 - sig(x)))
    for (size_t i = 0; i < NF; i++) {
        float x = g[i], sig = 1.0f / (1.0f + expf(-x));
        dg[i] += dout[i] * u[i] * sig * (1.0f + x * (1.0f - sig));
        du[i] += dout[i] * x * sig;
    }
}

/* ---- softmax + cross-entropy ----------------------------------------------------------- */

/* Row helpers of the cross-entropy: max, sum of exp(x - max), and d = exp(x - max) * k. The
 * AVX-512 versions (chosen at run time) compute exp as 2^n * p(r), n = round(x / ln 2),
 * r = x - n ln 2, p a degree-7 Taylor polynomial (|r| <= ln2/2: relative error below 2 ulp). */
__attribute__((target("avx512f"))) static inline __m512 exp512(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-100.0f)); // exp(-100) is 0 in float32 as well
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145752f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860677e-6f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

__attribute__((target("avx512f"))) static void xent_row_avx512(const float *x, int V, float *maxo, double *sumo) {
    __m512 m = _mm512_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 16 <= V; i += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(x + i));
    float maxv = _mm512_reduce_max_ps(m);
    for (int j = i; j < V; j++) maxv = x[j] > maxv ? x[j] : maxv;
    __m512 vm = _mm512_set1_ps(maxv), acc = _mm512_setzero_ps();
    for (i = 0; i + 16 <= V; i += 16) acc = _mm512_add_ps(acc, exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm)));
    if (i < V) {
        __mmask16 k = (__mmask16)((1u << (V - i)) - 1);
        acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(k, exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm))));
    }
    *maxo = maxv;
    *sumo = _mm512_reduce_add_ps(acc);
}

__attribute__((target("avx512f"))) static void xent_grad_avx512(float *d, const float *x, int V, float maxv, float k) {
    __m512 vm = _mm512_set1_ps(maxv), vk = _mm512_set1_ps(k);
    int i = 0;
    for (; i + 16 <= V; i += 16) _mm512_storeu_ps(d + i, _mm512_mul_ps(exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm)), vk));
    if (i < V) {
        __mmask16 m = (__mmask16)((1u << (V - i)) - 1);
        _mm512_mask_storeu_ps(d + i, m, _mm512_mul_ps(exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vm)), vk));
    }
}

static void xent_row_scalar(const float *x, int V, float *maxo, double *sumo) {
    float maxv = x[0];
    for (int i = 1; i < V; i++) maxv = x[i] > maxv ? x[i] : maxv;
    double sum = 0.0;
    for (int i = 0; i < V; i++) sum += expf(x[i] - maxv);
    *maxo = maxv;
    *sumo = sum;
}

static void xent_grad_scalar(float *d, const float *x, int V, float maxv, float k) {
    for (int i = 0; i < V; i++) d[i] = expf(x[i] - maxv) * k;
}

double rl_xent_forward_backward(float *losses, float *dlogits, const float *logits, const int *targets, int N,
                                int V, float dscale) {
    int simd = __builtin_cpu_supports("avx512f");
    double total = 0.0;
    for (int n = 0; n < N; n++) {
        const float *x = logits + (size_t)n * V;
        float *d = dlogits ? dlogits + (size_t)n * V : NULL;
        int t = targets[n];
        if (t < 0) {
            if (losses) losses[n] = 0.0f;
            if (d) memset(d, 0, (size_t)V * sizeof(float));
            continue;
        }
        RL_ASSERT(t < V);
        float maxv;
        double sum;
        if (simd) xent_row_avx512(x, V, &maxv, &sum);
        else xent_row_scalar(x, V, &maxv, &sum);
        float lse = maxv + (float)log(sum);
        float loss = lse - x[t];
        if (losses) losses[n] = loss;
        total += loss;
        if (d) {
            float xt = x[t]; // d may alias x
            float k = (float)(1.0 / sum) * dscale;
            if (simd) xent_grad_avx512(d, x, V, maxv, k);
            else xent_grad_scalar(d, x, V, maxv, k);
            d[t] = expf(xt - maxv) * k - dscale;
        }
    }
    return total;
}

void rl_softmax(float *probs, const float *logits, int V) {
    float maxv = logits[0];
    for (int i = 1; i < V; i++) maxv = logits[i] > maxv ? logits[i] : maxv;
    double sum = 0.0;
    for (int i = 0; i < V; i++) {
        probs[i] = expf(logits[i] - maxv);
        sum += probs[i];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < V; i++) probs[i] *= inv;
}

/* ---- embedding ------------------------------------------------------------------------- */

void rl_embedding_forward(float *out, const int *tokens, const float *wte, int N, int C) {
    for (int n = 0; n < N; n++) memcpy(out + (size_t)n * C, wte + (size_t)tokens[n] * C, (size_t)C * sizeof(float));
}

void rl_embedding_backward(float *dwte, const float *dout, const int *tokens, int N, int C) {
    for (int n = 0; n < N; n++) rl_axpy(dwte + (size_t)tokens[n] * C, 1.0f, dout + (size_t)n * C, (size_t)C);
}

/* ---- helpers --------------------------------------------------------------------------- */

void rl_axpy(float *y, float a, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}

float rl_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { // subnormal: normalize
            int e = -1;
            do {
                e++;
                mant <<= 1;
            } while (!(mant & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t rl_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
    uint32_t mant = x & 0x7fffff;
    if (((x >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
    if (exp >= 31) return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10) return (uint16_t)sign;
        mant |= 0x800000;
        int shift = 14 - exp;
        uint32_t half = mant >> shift, rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t h = sign | ((uint32_t)exp << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++; // may carry into the exponent: correct
    return (uint16_t)h;
}

float rl_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t rl_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40); // NaN stays NaN
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

void rl_attention_decode(float *out, float *att_all, int att_stride, const float *q, const float *kc, const float *vc, int n_pos, int NH,
                         int NKV, int HD, float scale) {
    int G = NH / NKV, KD = NKV * HD;
    for (int h = 0; h < NH; h++) {
        const float *qh = q + (size_t)h * HD;
        float *att = att_all + (size_t)h * att_stride, *o = out + (size_t)h * HD;
        int kvh = h / G;
        float maxv = -INFINITY;
        for (int s = 0; s < n_pos; s++) {
            const float *ks = kc + (size_t)s * KD + (size_t)kvh * HD;
            float d = 0.0f;
            for (int i = 0; i < HD; i++) d += qh[i] * ks[i];
            att[s] = d * scale;
            if (att[s] > maxv) maxv = att[s];
        }
        float sum = 0.0f;
        for (int s = 0; s < n_pos; s++) sum += (att[s] = expf(att[s] - maxv));
        for (int i = 0; i < HD; i++) o[i] = 0.0f;
        for (int s = 0; s < n_pos; s++) {
            float a = att[s] / sum;
            const float *vs = vc + (size_t)s * KD + (size_t)kvh * HD;
            for (int i = 0; i < HD; i++) o[i] += a * vs[i];
        }
    }
}
