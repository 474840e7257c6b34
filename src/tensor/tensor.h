/* tensor.h - the public door of src/tensor: the math kernels of the transformer, each forward
 * next to its backward.
 *
 * Conventions (llm.c style):
 *   - Kernels are pure functions over float arrays: outputs first, inputs next, sizes last, the
 *     shape of every array in a comment. Row-major throughout.
 *   - Backward kernels ACCUMULATE (+=) into parameter gradients (dw, dbias), so that one buffer
 *     can collect a tied weight's two uses or several micro-batches; they also accumulate into
 *     input gradients (dinp) unless the comment says "writes".
 *   - A gradient pointer may be NULL when that gradient is not wanted (frozen weights, LoRA).
 *   - Dimension letters: N rows (B*T), B batch, T time, C channels, OC output channels,
 *     NH query heads, NKV key/value heads, HD head size, F ffn width, V vocabulary.
 *   - The kernels that cost O(T^2) or more take an rl_pool (NULL = run on the caller's thread).
 *     Matrix products run on our own AVX-512 SGEMM over the pool or on OpenBLAS (its own
 *     threads), chosen per shape (gemm.c).
 */
#ifndef RL_TENSOR_H
#define RL_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

/* ---- general matrix product (gemm.c) ---- */

/* C (M,N) = alpha * op(A) @ op(B) + beta * C, row-major with leading dimensions lda, ldb, ldc;
 * op(A) (M,K) is A, or with ta the transpose of A (K,M); op(B) (K,N) is B, or with tb the
 * transpose of B (N,K). C is not read when beta == 0. Runs on pool's threads (NULL: the caller's
 * thread) or on OpenBLAS's, whichever is faster for the shape (docs/benchmarks.md). */
void rl_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
              float beta, float *C, int ldc, rl_pool *pool);
/* The same with the implementation chosen: AUTO as rl_sgemm; OWN our float32 kernel; BLAS
 * OpenBLAS; BF16 our kernel with alpha * op(A) and op(B) rounded to bfloat16 (products summed in
 * float32).
 * Without AVX-512, OWN runs OpenBLAS; without avx512_bf16, BF16 runs OWN (plain float32). */
typedef enum rl_gemm_impl { RL_GEMM_AUTO = 0, RL_GEMM_OWN, RL_GEMM_BLAS, RL_GEMM_BF16 } rl_gemm_impl;
void rl_sgemm_impl(rl_gemm_impl impl, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc, rl_pool *pool);
/* One term of a sum of products: alpha * op(A) (M,K) @ op(B) (K,N), op as in rl_sgemm. */
typedef struct rl_gemm_term {
    int ta, tb, K;
    float alpha;
    const float *A;
    int lda;
    const float *B;
    int ldb;
} rl_gemm_term;
/* C (M,N) = sum of the n_terms (at most 8) terms + beta * C. Our kernel concatenates the terms
 * along K while packing, so C is written once rather than once per term (a LoRA path added to
 * its base product, three input gradients summed into one). OpenBLAS: one call per term. */
void rl_sgemm_sum(rl_gemm_impl impl, int n_terms, const rl_gemm_term *terms, int M, int N, float beta, float *C,
                  int ldc, rl_pool *pool);
/* 1 when this CPU runs bfloat16 products natively (avx512_bf16). */
int rl_gemm_has_bf16(void);
/* The OpenBLAS thread count to set next to a pool of pool_threads: 1 where our kernel takes the
 * large products over the pool (OpenBLAS keeps the thin ones, on the caller's thread: its idle
 * threads spin in sched_yield and cost more than they give), else pool_threads. */
int rl_gemm_blas_threads(int pool_threads);

/* ---- matmul: the linear layer (nn.Linear layout: weight (OC, C)) ---- */
/* Every product takes the pool to run on (NULL: the caller's thread) and the rl_sgemm
 * implementation: RL_GEMM_AUTO (float32) or RL_GEMM_BF16 (opt-in mixed precision). One-row
 * products (decoding) are matrix-vector products in float32 whatever impl says. */

/* out (N,OC) = inp (N,C) @ w^T (OC,C) + bias (OC); bias may be NULL. Writes out. */
void rl_matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N, int C, int OC,
                       rl_pool *pool, rl_gemm_impl impl);
/* out (N,OC) += alpha * inp (N,C) @ w^T (OC,C). */
void rl_matmul_forward_add(float *out, const float *inp, const float *w, float alpha, int N, int C, int OC,
                           rl_pool *pool, rl_gemm_impl impl);
/* dinp (N,C) += dout (N,OC) @ w (OC,C); dw (OC,C) += dout^T @ inp; dbias (OC) += sum_n dout.
 * Any of dinp, dw, dbias may be NULL. */
void rl_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp, const float *w,
                        int N, int C, int OC, rl_pool *pool, rl_gemm_impl impl);
/* As rl_matmul_backward without bias, every product scaled by alpha, and dw = alpha dout^T inp +
 * dw_beta dw (dw_beta 0: dw is written, its old contents never read; 1: added to). */
void rl_matmul_backward_scaled(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                               float alpha, float dw_beta, int N, int C, int OC, rl_pool *pool, rl_gemm_impl impl);

/* ---- RMSNorm ---- */

/* out (N,C) = inp / sqrt(mean(inp^2) + eps) * w (C); rstd (N) keeps 1/sqrt(...) for backward.
 * rstd may be NULL (inference). Writes out. */
void rl_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C, float eps);
/* dinp (N,C) += ..., dw (C) += ... (dw may be NULL). */
void rl_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                         const float *rstd, int N, int C);

/* ---- RoPE (Hugging Face half-split layout: pairs (i, i + HD/2)) ---- */

typedef enum rl_rope_type { RL_ROPE_DEFAULT = 0, RL_ROPE_LINEAR, RL_ROPE_LLAMA3 } rl_rope_type;

typedef struct rl_rope_params {
    float theta;                /* base, 10000 for Llama 2 */
    rl_rope_type type;
    float factor;               /* linear and llama3 */
    float low_freq_factor;      /* llama3 */
    float high_freq_factor;     /* llama3 */
    int original_max_position;  /* llama3: original_max_position_embeddings */
} rl_rope_params;

/* inv_freq (HD/2): the rotation frequency of each pair, as transformers computes it
 * (including the llama3 and linear rope_scaling rules). */
void rl_rope_inv_freq(float *inv_freq, int HD, const rl_rope_params *p);
/* In place on x (N, NH, HD): rotates each head of row n by the angle pos[n] * inv_freq. */
void rl_rope_forward(float *x, const int *pos, const float *inv_freq, int N, int NH, int HD);
/* Causal attention of one query position over a KV cache (decoding; no backward):
 * out (NH*HD) from q (NH*HD) over keys/values kc, vc (n_pos rows of stride KD = NKV*HD);
 * att is scratch with a row of att_stride >= n_pos floats per head. scale = 1/sqrt(HD). */
void rl_attention_decode(float *out, float *att, int att_stride, const float *q, const float *kc, const float *vc, int n_pos, int NH,
                         int NKV, int HD, float scale);
/* In place on dx (N, NH, HD): the transpose of the rotation (rotation by minus the angle). */
void rl_rope_backward(float *dx, const int *pos, const float *inv_freq, int N, int NH, int HD);
/* The same from a table computed once per batch (training: 4 uses per layer):
 * cs (N, HD) = cos(pos[n] * inv_freq[i]) at i, the sin at HD/2 + i; rl_rope_apply rotates
 * x (N, NH, HD) in place, forward or back (backward != 0). Bit for bit rl_rope_forward/_backward. */
void rl_rope_table(float *cs, const int *pos, const float *inv_freq, int N, int HD);
void rl_rope_apply(float *x, const float *cs, int N, int NH, int HD, int backward);

/* ---- causal self-attention with grouped-query heads, for training (attention.c) ---- */

/* q (B,T,NH,HD), k and v (B,T,NKV,HD) (after RoPE), NH a multiple of NKV.
 * seg (B,T) optional (NULL = one sequence per row): token t attends to token s <= t only when
 * seg[s] == seg[t] (sample packing; ids that never decrease along a row let whole tiles of
 * other samples be skipped, any other order is masked element by element).
 * Flash style: no (T,T) array; out (B,T,NH,HD) is written and lse (B,NH,T) receives each row's
 * log-sum-exp of scaled scores, all that backward needs besides q, k, v and out.
 * scratch: rl_attention_scratch_floats(...) floats (the same for forward and backward). */
size_t rl_attention_scratch_floats(int B, int T, int NH, int NKV, int HD);
void rl_attention_forward(float *out, float *lse, float *scratch, const float *q, const float *k, const float *v,
                          const int *seg, int B, int T, int NH, int NKV, int HD, rl_pool *pool);
/* dq (B,T,NH,HD), dk, dv (B,T,NKV,HD) are WRITTEN (not accumulated); out and lse from the forward. */
void rl_attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout, const float *out,
                           const float *lse, const float *q, const float *k, const float *v, const int *seg, int B, int T,
                           int NH, int NKV, int HD, rl_pool *pool);

/* ---- SwiGLU: h = silu(g) * u ---- */

/* out (N,F) = silu(g (N,F)) * u (N,F). Writes out. */
void rl_swiglu_forward(float *out, const float *g, const float *u, size_t NF);
/* dg, du (N,F) are WRITTEN (not accumulated): the MLP's only use of gate and up. */
void rl_swiglu_backward(float *dg, float *du, const float *dout, const float *g, const float *u, size_t NF);

/* ---- encoder (BERT-family) forward kernels, inference only (tensor_enc.c) ---- */

/* out (N,C) = (inp - mean) / sqrt(var + eps) * w (C) + b (C), var biased (nn.LayerNorm).
 * out may equal inp. Writes out. */
void rl_layernorm_forward(float *out, const float *inp, const float *w, const float *b, int N, int C, float eps);
/* x (n) = gelu(x) = 0.5 x (1 + erf(x / sqrt 2)) in place (the exact GELU, not the tanh one). */
void rl_gelu_forward(float *x, size_t n);
/* Bidirectional attention with a padding mask: q, k, v (B,T,NH,HD) (rows of stride C = NH*HD),
 * lens (B) the real length of each row (keys at t >= lens[b] are ignored; padded query rows are
 * written as zeros). out (B,T,NH,HD) is written; scale = 1/sqrt(HD). */
void rl_attention_encoder(float *out, const float *q, const float *k, const float *v, const int *lens, int B, int T, int NH,
                          int HD, rl_pool *pool);

/* ---- softmax + cross-entropy over the vocabulary, fused ---- */

/* For each row n of logits (N,V) with target t = targets[n]:
 *   losses[n] = logsumexp(logits[n]) - logits[n][t]   (0 when t < 0: masked, e.g. -100)
 *   dlogits[n] = (softmax(logits[n]) - onehot(t)) * dscale   (0 row when masked)
 * dlogits may be NULL (forward only) or equal logits (in place). Returns the sum of losses.
 * A target >= V is a caller bug (asserted). */
double rl_xent_forward_backward(float *losses, float *dlogits, const float *logits, const int *targets, int N,
                                int V, float dscale);
/* probs (V) = softmax(logits (V)) with temperature 1; for sampling. */
void rl_softmax(float *probs, const float *logits, int V);

/* ---- token embedding ---- */

/* out (N,C) = wte (V,C) [tokens[n]]. Tokens must be in [0, V) (checked by the caller). */
void rl_embedding_forward(float *out, const int *tokens, const float *wte, int N, int C);
/* dwte (V,C) [tokens[n]] += dout (N,C). */
void rl_embedding_backward(float *dwte, const float *dout, const int *tokens, int N, int C);

/* ---- small helpers ---- */

/* y (n) += a * x (n) */
void rl_axpy(float *y, float a, const float *x, size_t n);
/* Dropout with a mask that is a hash, not a stored array: rows [0, rows) of xd (rows, C) =
 * x * 1/(1-p) where element (row0 + r, i) of the key's mask keeps, else 0 (x == xd is fine; the
 * same mask applied to a gradient undoes nothing else). Element (n, i) keeps with probability
 * 1 - p, from a splitmix64 finaliser of key + n * 0x9e37.. + i * 0xd1b5..; so backward and a
 * resumed run regenerate the mask exactly. */
void rl_dropout_rows(float *xd, const float *x, size_t row0, size_t rows, int C, uint64_t key, float p);
/* Half-precision conversions (IEEE binary16 and bfloat16, round to nearest even). */
float rl_f16_to_f32(uint16_t h);
uint16_t rl_f32_to_f16(float f);
float rl_bf16_to_f32(uint16_t h);
uint16_t rl_f32_to_bf16(float f);

#endif
