/* tensor.c - the transformer's kernels, forward and backward side by side (see tensor.h).
 *
 * Matrix products go through rl_sgemm (gemm.c: our AVX-512 kernel or OpenBLAS); the
 * cross-entropy has an AVX-512 row kernel (exp by a polynomial, chosen at run time); the other
 * kernels are plain loops written so that the compiler can vectorize their inner loops
 * (contiguous, no aliasing surprises). The training attention is in attention.c.
 *
 * Deliberately not here: quantized types, GPU code.
 */
#include "tensor/tensor.h"
#include "tensor/tensor_simd.h"

#include <cblas.h>
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
                               float alpha, float dw_beta, int N, int C, int OC, rl_pool *pool, rl_gemm_impl impl) {
    // dinp (N,C), dw (OC,C), dout (N,OC), inp (N,C), w (OC,C)
    if (N <= 0 || OC <= 0 || C <= 0) return;
    if (dinp) rl_sgemm_impl(impl, 0, 0, N, C, OC, alpha, dout, OC, w, C, 1.0f, dinp, C, pool);
    if (dw) rl_sgemm_impl(impl, 1, 0, OC, C, N, alpha, dout, OC, inp, C, dw_beta, dw, C, pool);
}

void rl_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp, const float *w,
                        int N, int C, int OC, rl_pool *pool, rl_gemm_impl impl) {
    // dinp (N,C), dw (OC,C), dbias (OC), dout (N,OC), inp (N,C), w (OC,C)
    if (N <= 0 || OC <= 0 || C <= 0) return;
    rl_matmul_backward_scaled(dinp, dw, dout, inp, w, 1.0f, 1.0f, N, C, OC, pool, impl);
    if (dbias)
        for (int n = 0; n < N; n++) {
            const float *d = dout + (size_t)n * OC;
            for (int o = 0; o < OC; o++) dbias[o] += d[o];
        }
}

/* ---- RMSNorm --------------------------------------------------------------------------- */

/* Each kernel below has a plain-C version (the reference, and the path without AVX-512) and an
 * AVX-512 one chosen at run time; tests/test_engine.c (tensor_simd_kernels_agree) compares them. */

static void rmsnorm_fwd_ref(float *out, float *rstd, const float *inp, const float *w, int N, int C, float eps) {
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

__attribute__((target("avx512f"))) static void rmsnorm_fwd_avx512(float *out, float *rstd, const float *inp, const float *w,
                                                                  int N, int C, float eps) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        __m512 acc = _mm512_setzero_ps();
        for (int i = 0; i < C; i += 16) {
            __m512 v = _mm512_maskz_loadu_ps(tensor_lanes(C - i), x + i);
            acc = _mm512_fmadd_ps(v, v, acc);
        }
        float r = 1.0f / sqrtf(_mm512_reduce_add_ps(acc) / (float)C + eps);
        __m512 vr = _mm512_set1_ps(r);
        for (int i = 0; i < C; i += 16) {
            __mmask16 m = tensor_lanes(C - i);
            _mm512_mask_storeu_ps(o + i, m, _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vr), _mm512_maskz_loadu_ps(m, w + i)));
        }
        if (rstd) rstd[n] = r;
    }
}

void rl_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C, float eps) {
    // out (N,C), rstd (N), inp (N,C), w (C)
    if (tensor_avx512()) rmsnorm_fwd_avx512(out, rstd, inp, w, N, C, eps);
    else rmsnorm_fwd_ref(out, rstd, inp, w, N, C, eps);
}

// y_i = x_i * r * w_i, r = (mean(x^2) + eps)^-1/2
// dx_i = r * w_i * dy_i - r^3 / C * x_i * sum_j (dy_j * w_j * x_j)
static void rmsnorm_bwd_ref(float *dinp, float *dw, const float *dout, const float *inp, const float *w, const float *rstd,
                            int N, int C) {
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

__attribute__((target("avx512f"))) static void rmsnorm_bwd_avx512(float *dinp, float *dw, const float *dout, const float *inp,
                                                                  const float *w, const float *rstd, int N, int C) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        float r = rstd[n];
        __m512 acc = _mm512_setzero_ps();
        for (int i = 0; i < C; i += 16) {
            __mmask16 m = tensor_lanes(C - i);
            acc = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, dy + i), _mm512_maskz_loadu_ps(m, w + i)),
                                  _mm512_maskz_loadu_ps(m, x + i), acc);
        }
        float k = r * r * r * _mm512_reduce_add_ps(acc) / (float)C;
        __m512 vr = _mm512_set1_ps(r), vk = _mm512_set1_ps(k);
        for (int i = 0; i < C; i += 16) {
            __mmask16 m = tensor_lanes(C - i);
            __m512 vx = _mm512_maskz_loadu_ps(m, x + i), vdy = _mm512_maskz_loadu_ps(m, dy + i);
            __m512 d = _mm512_fnmadd_ps(vk, vx, _mm512_mul_ps(_mm512_mul_ps(vr, _mm512_maskz_loadu_ps(m, w + i)), vdy));
            _mm512_mask_storeu_ps(dx + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, dx + i), d));
            if (dw) _mm512_mask_storeu_ps(dw + i, m, _mm512_fmadd_ps(_mm512_mul_ps(vdy, vx), vr, _mm512_maskz_loadu_ps(m, dw + i)));
        }
    }
}

void rl_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                         const float *rstd, int N, int C) {
    if (tensor_avx512()) rmsnorm_bwd_avx512(dinp, dw, dout, inp, w, rstd, N, C);
    else rmsnorm_bwd_ref(dinp, dw, dout, inp, w, rstd, N, C);
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

void rl_rope_table(float *cs, const int *pos, const float *inv_freq, int N, int HD) {
    // cs (N,HD): cos of pos[n] * inv_freq[i] at i, its sin at HD/2 + i
    int half = HD / 2;
    for (int n = 0; n < N; n++) {
        float p = (float)pos[n], *c = cs + (size_t)n * HD;
        for (int i = 0; i < half; i++) {
            float a = p * inv_freq[i];
            c[i] = cosf(a);
            c[half + i] = sinf(a);
        }
    }
}

// x (N,NH,HD): x1' = x1 cos - x2 sin, x2' = x2 cos + x1 sin, with (x1, x2) = (x[i], x[i+HD/2]);
// sign -1 rotates back (the backward). Products and sums rounded separately (no FMA), so that
// both versions give the same bits.
static void rope_cs_ref(float *x, const float *cs, int N, int NH, int HD, float sign) {
    int half = HD / 2;
    for (int n = 0; n < N; n++) {
        const float *c = cs + (size_t)n * HD, *sn = c + half;
        for (int h = 0; h < NH; h++) {
            float *v = x + ((size_t)n * NH + h) * HD;
            for (int i = 0; i < half; i++) {
                float x1 = v[i], x2 = v[i + half], si = sign * sn[i];
                v[i] = x1 * c[i] - x2 * si;
                v[i + half] = x2 * c[i] + x1 * si;
            }
        }
    }
}

__attribute__((target("avx512f"))) static void rope_cs_avx512(float *x, const float *cs, int N, int NH, int HD, float sign) {
    int half = HD / 2;
    __m512 vsign = _mm512_set1_ps(sign);
    for (int n = 0; n < N; n++) {
        const float *c = cs + (size_t)n * HD, *sn = c + half;
        for (int i = 0; i < half; i += 16) {
            __mmask16 m = tensor_lanes(half - i);
            __m512 vc = _mm512_maskz_loadu_ps(m, c + i), vs = _mm512_mul_ps(vsign, _mm512_maskz_loadu_ps(m, sn + i));
            for (int h = 0; h < NH; h++) {
                float *v = x + ((size_t)n * NH + h) * HD + i;
                __m512 x1 = _mm512_maskz_loadu_ps(m, v), x2 = _mm512_maskz_loadu_ps(m, v + half);
                _mm512_mask_storeu_ps(v, m, _mm512_sub_ps(_mm512_mul_ps(x1, vc), _mm512_mul_ps(x2, vs)));
                _mm512_mask_storeu_ps(v + half, m, _mm512_add_ps(_mm512_mul_ps(x2, vc), _mm512_mul_ps(x1, vs)));
            }
        }
    }
}

void rl_rope_apply(float *x, const float *cs, int N, int NH, int HD, int backward) {
    if (tensor_avx512()) rope_cs_avx512(x, cs, N, NH, HD, backward ? -1.0f : 1.0f);
    else rope_cs_ref(x, cs, N, NH, HD, backward ? -1.0f : 1.0f);
}

static void rope_apply(float *x, const int *pos, const float *inv_freq, int N, int NH, int HD, int backward) {
    float cs[1024];
    RL_ASSERT(HD <= 1024);
    for (int n = 0; n < N; n++) { // one row's table at a time
        rl_rope_table(cs, pos + n, inv_freq, 1, HD);
        rl_rope_apply(x + (size_t)n * NH * HD, cs, 1, NH, HD, backward);
    }
}

void rl_rope_forward(float *x, const int *pos, const float *inv_freq, int N, int NH, int HD) {
    rope_apply(x, pos, inv_freq, N, NH, HD, 0);
}

void rl_rope_backward(float *dx, const int *pos, const float *inv_freq, int N, int NH, int HD) {
    rope_apply(dx, pos, inv_freq, N, NH, HD, 1);
}

/* ---- SwiGLU ---------------------------------------------------------------------------- */

static void swiglu_fwd_ref(float *out, const float *g, const float *u, size_t NF) {
    for (size_t i = 0; i < NF; i++) {
        float x = g[i];
        out[i] = x / (1.0f + expf(-x)) * u[i];
    }
}

// silu'(x) = sig(x) * (1 + x * (1 - sig(x)))
static void swiglu_bwd_ref(float *dg, float *du, const float *dout, const float *g, const float *u, size_t NF) {
    for (size_t i = 0; i < NF; i++) {
        float x = g[i], sig = 1.0f / (1.0f + expf(-x));
        dg[i] = dout[i] * u[i] * sig * (1.0f + x * (1.0f - sig));
        du[i] = dout[i] * x * sig;
    }
}

/* sigmoid(x) = 1 / (1 + exp(-x)); exp(-x) overflows to inf for x < -88, giving 0 as it should. */
__attribute__((target("avx512f"))) static inline __m512 sigmoid512(__m512 x) {
    __m512 e = tensor_exp512(_mm512_min_ps(_mm512_sub_ps(_mm512_setzero_ps(), x), _mm512_set1_ps(88.0f)));
    return _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

__attribute__((target("avx512f"))) static void swiglu_fwd_avx512(float *out, const float *g, const float *u, size_t NF) {
    for (size_t i = 0; i < NF; i += 16) {
        __mmask16 m = tensor_lanes((int)(NF - i < 16 ? NF - i : 16));
        __m512 x = _mm512_maskz_loadu_ps(m, g + i);
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(_mm512_mul_ps(x, sigmoid512(x)), _mm512_maskz_loadu_ps(m, u + i)));
    }
}

__attribute__((target("avx512f"))) static void swiglu_bwd_avx512(float *dg, float *du, const float *dout, const float *g,
                                                                 const float *u, size_t NF) {
    __m512 one = _mm512_set1_ps(1.0f);
    for (size_t i = 0; i < NF; i += 16) {
        __mmask16 m = tensor_lanes((int)(NF - i < 16 ? NF - i : 16));
        __m512 x = _mm512_maskz_loadu_ps(m, g + i), d = _mm512_maskz_loadu_ps(m, dout + i), sig = sigmoid512(x);
        __m512 ds = _mm512_mul_ps(sig, _mm512_fmadd_ps(x, _mm512_sub_ps(one, sig), one));
        _mm512_mask_storeu_ps(dg + i, m, _mm512_mul_ps(_mm512_mul_ps(d, _mm512_maskz_loadu_ps(m, u + i)), ds));
        _mm512_mask_storeu_ps(du + i, m, _mm512_mul_ps(_mm512_mul_ps(d, x), sig));
    }
}

void rl_swiglu_forward(float *out, const float *g, const float *u, size_t NF) {
    if (tensor_avx512()) swiglu_fwd_avx512(out, g, u, NF);
    else swiglu_fwd_ref(out, g, u, NF);
}

void rl_swiglu_backward(float *dg, float *du, const float *dout, const float *g, const float *u, size_t NF) {
    if (tensor_avx512()) swiglu_bwd_avx512(dg, du, dout, g, u, NF);
    else swiglu_bwd_ref(dg, du, dout, g, u, NF);
}

/* ---- softmax + cross-entropy ----------------------------------------------------------- */

/* Row helpers of the cross-entropy: max, sum of exp(x - max), and d = exp(x - max) * k; the
 * AVX-512 versions (chosen at run time) use tensor_exp512 (tensor_simd.h). */
__attribute__((target("avx512f"))) static void xent_row_avx512(const float *x, int V, float *maxo, double *sumo) {
    __m512 m = _mm512_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 16 <= V; i += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(x + i));
    float maxv = _mm512_reduce_max_ps(m);
    for (int j = i; j < V; j++) maxv = x[j] > maxv ? x[j] : maxv;
    __m512 vm = _mm512_set1_ps(maxv), acc = _mm512_setzero_ps();
    for (i = 0; i + 16 <= V; i += 16) acc = _mm512_add_ps(acc, tensor_exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm)));
    if (i < V) {
        __mmask16 k = (__mmask16)((1u << (V - i)) - 1);
        acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(k, tensor_exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm))));
    }
    *maxo = maxv;
    *sumo = _mm512_reduce_add_ps(acc);
}

__attribute__((target("avx512f"))) static void xent_grad_avx512(float *d, const float *x, int V, float maxv, float k) {
    __m512 vm = _mm512_set1_ps(maxv), vk = _mm512_set1_ps(k);
    int i = 0;
    for (; i + 16 <= V; i += 16) _mm512_storeu_ps(d + i, _mm512_mul_ps(tensor_exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm)), vk));
    if (i < V) {
        __mmask16 m = (__mmask16)((1u << (V - i)) - 1);
        _mm512_mask_storeu_ps(d + i, m, _mm512_mul_ps(tensor_exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vm)), vk));
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

__attribute__((target("avx512f"))) static void axpy_avx512(float *y, float a, const float *x, size_t n) {
    __m512 va = _mm512_set1_ps(a);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = tensor_lanes((int)(n - i < 16 ? n - i : 16));
        _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
    }
}

void rl_axpy(float *y, float a, const float *x, size_t n) {
    if (n >= 64 && tensor_avx512()) {
        axpy_avx512(y, a, x, n);
        return;
    }
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}

/* ---- dropout masks ---------------------------------------------------------------------- */

static inline int mask_keep(uint64_t key, size_t n, int i, uint32_t thresh) {
    uint64_t z = key + n * 0x9e3779b97f4a7c15ull + (uint64_t)i * 0xd1b54a32d192ed03ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (uint32_t)((z ^ (z >> 31)) >> 32) >= thresh;
}

/* The same hash, 8 columns per vector (64-bit lanes), 16 per step. */
__attribute__((target("avx512f,avx512dq"))) static void dropout_avx512(float *xd, const float *x, size_t row0, size_t rows, int C,
                                                                       uint64_t key, uint32_t thresh, float scale) {
    const __m512i c2 = _mm512_set1_epi64((long long)0xd1b54a32d192ed03ull), k1 = _mm512_set1_epi64((long long)0xbf58476d1ce4e5b9ull),
                  k2 = _mm512_set1_epi64((long long)0x94d049bb133111ebull), th = _mm512_set1_epi64(thresh),
                  lane = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
    __m512 vs = _mm512_set1_ps(scale);
    for (size_t r = 0; r < rows; r++) {
        __m512i base = _mm512_set1_epi64((long long)(key + (row0 + r) * 0x9e3779b97f4a7c15ull));
        const float *xr = x + r * (size_t)C;
        float *o = xd + r * (size_t)C;
        for (int i = 0; i < C; i += 16) {
            __mmask16 keep = 0;
            for (int h = 0; h < 2; h++) {
                __m512i z = _mm512_add_epi64(base, _mm512_mullo_epi64(_mm512_add_epi64(lane, _mm512_set1_epi64(i + 8 * h)), c2));
                z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)), k1);
                z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)), k2);
                z = _mm512_srli_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 31)), 32);
                keep |= (__mmask16)((unsigned)_mm512_cmpge_epu64_mask(z, th) << (8 * h));
            }
            __mmask16 m = tensor_lanes(C - i);
            _mm512_mask_storeu_ps(o + i, m, _mm512_maskz_mul_ps(keep, _mm512_maskz_loadu_ps(m, xr + i), vs));
        }
    }
}

void rl_dropout_rows(float *xd, const float *x, size_t row0, size_t rows, int C, uint64_t key, float p) {
    uint32_t thresh = (uint32_t)((double)p * 4294967296.0 > 4294967295.0 ? 4294967295.0 : (double)p * 4294967296.0);
    float scale = 1.0f / (1.0f - p);
    if (tensor_avx512() && __builtin_cpu_supports("avx512dq")) {
        dropout_avx512(xd, x, row0, rows, C, key, thresh, scale);
        return;
    }
    for (size_t r = 0; r < rows; r++)
        for (int i = 0; i < C; i++) {
            size_t k = r * (size_t)C + i;
            xd[k] = mask_keep(key, row0 + r, i, thresh) ? x[k] * scale : 0.0f;
        }
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
