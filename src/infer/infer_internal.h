/* infer_internal.h - what the files of src/infer share (not a public header). */
#ifndef RL_INFER_INTERNAL_H
#define RL_INFER_INTERNAL_H

#include "infer/infer.h"

/* One matrix (rows, cols) = (out, in) of the model: a quantized copy, or the float32 original
 * (borrowed from the model). */
typedef struct rl_qmat {
    int rows, cols;
    rl_wtype type;     /* RL_WTYPE_F32: f32 is used */
    void *blocks;      /* (rows, cols / block) blocks of the type, owned */
    const float *f32;  /* (rows, cols), borrowed */
} rl_qmat;

struct rl_qmodel {
    rl_wtype type;
    int n_layers;
    rl_qmat (*layers)[RL_MOD_COUNT]; /* (L, RL_MOD_COUNT) */
    rl_qmat lm_head;
    rl_q8_0_dot_fn dot;
    rl_q4_0_dot_fn dot4;
    rl_q4_k_dot_fn dot4k;
    rl_q6_k_dot_fn dot6k;
    rl_f32_dot_fn dotf;
    const char *kernel;
};

struct rl_infer {
    rl_model *m;
    const rl_tokenizer *tok;
    rl_kv kv;
    int32_t *cache; /* (n_ctx) the tokens at positions 0..n_cache-1 of the KV cache */
    int n_cache;
    const rl_qmodel *q; /* quantized weights, or NULL */
    rl_block_q8_0 *xq;  /* (PREFILL_T, max(C, F, QD) / 32) activations quantized */
    rl_block_q8_k *xk;  /* (PREFILL_T, max(C, F, QD) / 256) the same as Q8_K */
    rl_pool *pool;      /* owned; NULL = one thread */
    int batch;          /* prompts go through rl_infer_prefill in chunks */
    float *pf;          /* prefill scratch (owned, allocated on first use) */
};

#define PREFILL_T 32 /* prompt tokens per batched forward */

/* The SIMD level the kernels may use, from the CPU and the environment (RAFTLM_NO_SIMD=1: scalar;
 * RAFTLM_NO_AVX512=1: at most AVX2). One answer for every kernel dispatcher (quant.c). */
enum { INFER_SCALAR, INFER_AVX2, INFER_AVX512, INFER_AVX512_VNNI };
int infer_simd_level(void);

/* out (T, rows) = x (T, cols) W^T (+ bias) with the context's threads (generate.c). */
void infer_qmatmul(rl_infer *inf, const rl_qmat *w, float *out, const float *x, int T, const float *bias);
/* Several products of one input (q, k, v; gate, up) in one parallel loop, the input quantized
 * once; n <= 7, all matrices with the same cols. */
typedef struct infer_mm {
    const rl_qmat *w;
    float *out;        /* (T, w->rows) */
    const float *bias; /* (w->rows) or NULL */
} infer_mm;
void infer_qmatmul_n(rl_infer *inf, const infer_mm *mm, int n, const float *x, int T);
/* T <= PREFILL_T tokens at positions pos0.. through the cache in one batched forward; with
 * logits != NULL the last token's logits (prefill.c). */
rl_status infer_prefill(rl_infer *inf, const int32_t *tokens, int T, int pos0, float **logits, rl_error *err);

#endif
