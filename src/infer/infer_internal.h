/* infer_internal.h - what the files of src/infer share (not a public header). */
#ifndef RL_INFER_INTERNAL_H
#define RL_INFER_INTERNAL_H

#include "infer/infer.h"

/* One matrix (rows, cols) = (out, in) of the model: a quantized copy, or the float32 original
 * (borrowed from the model). */
typedef struct rl_qmat {
    int rows, cols;
    rl_wtype type;     /* RL_WTYPE_F32: f32 is used */
    int packed;        /* Q8_0 / Q4_0 / Q4_K repacked for VNNI (qpack.c): blocks are infer_q*x16 */
    void *blocks;      /* (rows, cols / block) blocks of the type, or (ceil(rows / 16), cols / 32)
                          packed ones; owned */
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
    rl_q4_k_dot_rows_fn dot4k_rows;
    rl_q6_k_dot_fn dot6k;
    rl_f32_dot_fn dotf;
    const char *kernel;
    int simd; /* infer_simd_level() when the kernels were picked */
};

typedef struct infer_team infer_team; /* team.c */

struct rl_infer {
    rl_model *m;
    const rl_tokenizer *tok;
    rl_kv kv;
    int32_t *cache; /* (n_ctx) the tokens at positions 0..n_cache-1 of the KV cache */
    int n_cache;
    const rl_qmodel *q; /* quantized weights, or NULL */
    rl_block_q8_0 *xq;  /* (PREFILL_T, max(C, F, QD) / 32) activations quantized */
    rl_block_q8_k *xk;  /* (PREFILL_T, max(C, F, QD) / 256) the same as Q8_K */
    struct infer_xq *xp; /* (PREFILL_T, max(C, F, QD) / 32) the same for packed matrices */
    infer_team *team;   /* owned; NULL = one thread: the forward's threads (rl_qmodel) */
    struct infer_ctr *ctr; /* (n_ctr) the forward's steps' counters (forward.c) */
    int n_ctr;
    rl_pool *pool;      /* owned; NULL = one thread: SGEMM of float32 prompts (float32 rl_qmodel) */
    int batch;          /* prompts go through rl_infer_prefill in chunks */
    float *pf;          /* prefill scratch (owned, allocated on first use) */
    float *patt;        /* (threads, n_ctx) attention scores of batched prompts, a row per thread */
    rl_infer_group *group; /* continuous batching (group.c), or NULL; not owned */
    int gdone;          /* group: this context's submitted step is done (under the group's lock) */
    rl_status gstatus;  /* group: the step's status and message */
    rl_error gerr;
};

#define PREFILL_T 128 /* prompt tokens per batched forward */

/* The SIMD level the kernels may use, from the CPU and the environment (RAFTLM_NO_SIMD=1: scalar;
 * RAFTLM_NO_AVX512=1: at most AVX2). One answer for every kernel dispatcher (quant.c). */
enum { INFER_SCALAR, INFER_AVX2, INFER_AVX512, INFER_AVX512_VNNI };
int infer_simd_level(void);

/* Asks for transparent huge pages (MADV_HUGEPAGE, MADV_COLLAPSE) under the model's float32
 * matrices that decoding streams, the layers' and the output matrix; a hint, content unchanged
 * (quant.c). */
void infer_huge_pages_model(const rl_model *m);

/* ---- packed Q8_0 / Q4_0 (qpack.c) ---- */
#define QPACK_R 16 /* rows per packed group */
/* One block of 32 columns of 16 rows. qs: byte 64 s + 4 r + j is byte 4 s + j of row r's block
 * (Q4_0: s < 4, Q8_0: s < 8). Rows past the matrix's end are zero. */
typedef struct infer_q4_0x16 {
    uint16_t d[QPACK_R];
    uint8_t qs[QPACK_R * 16];
} infer_q4_0x16;
typedef struct infer_q8_0x16 {
    uint16_t d[QPACK_R];
    int16_t sum[QPACK_R]; /* sum of each row's 32 values */
    int8_t qs[QPACK_R * 32];
} infer_q8_0x16;
/* An activation block as the packed kernels read it: rl_q8_0_quantize's values (qs), the same
 * plus 128 as unsigned bytes (qu), their sum, and the fp16 scale as float. */
typedef struct infer_xq {
    float d;
    int32_t sum;
    int8_t qs[RL_Q8_0_BLOCK];
    uint8_t qu[RL_Q8_0_BLOCK];
} infer_xq;
/* x (n), out (n / 32); simd: infer_simd_level()'s answer (AVX-512 or the scalar loop) */
void infer_xq_quantize(infer_xq *out, const float *x, size_t n, int simd);
/* w (rows, nb) row-major blocks -> out (ceil(rows / 16), nb). */
void infer_pack_q4_0(infer_q4_0x16 *out, const rl_block_q4_0 *w, int rows, size_t nb);
void infer_pack_q8_0(infer_q8_0x16 *out, const rl_block_q8_0 *w, int rows, size_t nb);
/* One group of 16 packed rows (nr of them real) against T tokens of x (T, nb):
 * out[t * ldo + r] for r < nr. AVX-512 VNNI only (packing happens only at that level); each
 * value has the bits of rl_q*_0_dot_ref on the row-major blocks. */
void infer_q4_0x16_mm(float *out, size_t ldo, const infer_q4_0x16 *w, const infer_xq *x, size_t nb, int nr, int T);
void infer_q8_0x16_mm(float *out, size_t ldo, const infer_q8_0x16 *w, const infer_xq *x, size_t nb, int nr, int T);
/* One Q4_K super-block of 16 rows: the scales and mins of each 32-value group g decoded (sc[g][r],
 * mn[g][r]); qs: byte 64 (8 k + s) + 4 r + j is byte 32 k + 4 s + j of row r's nibbles. */
typedef struct infer_q4_kx16 {
    uint16_t d[QPACK_R], dmin[QPACK_R];
    uint8_t sc[8][QPACK_R], mn[8][QPACK_R];
    uint8_t qs[QPACK_R * 128];
} infer_q4_kx16;
void infer_pack_q4_k(infer_q4_kx16 *out, const rl_block_q4_k *w, int rows, size_t nb);
/* As infer_q4_0x16_mm against Q8_K activations (nb super-blocks); each value has the bits of
 * rl_q4_k_dot_ref. */
void infer_q4_kx16_mm(float *out, size_t ldo, const infer_q4_kx16 *w, const rl_block_q8_k *x, size_t nb, int nr, int T);
/* One Q6_K super-block of 16 rows: scales sc[g][r]; ql: byte 64 (16 h + s) + 4 r + j is byte
 * 64 h + 4 s + j of row r's ql; qh: byte 64 (8 h + s) + 4 r + j is byte 32 h + 4 s + j of its qh. */
typedef struct infer_q6_kx16 {
    uint16_t d[QPACK_R];
    int8_t sc[16][QPACK_R];
    uint8_t ql[QPACK_R * 128];
    uint8_t qh[QPACK_R * 64];
} infer_q6_kx16;
void infer_pack_q6_k(infer_q6_kx16 *out, const rl_block_q6_k *w, int rows, size_t nb);
/* As infer_q4_kx16_mm for Q6_K; each value has the bits of rl_q6_k_dot_ref. */
void infer_q6_kx16_mm(float *out, size_t ldo, const infer_q6_kx16 *w, const rl_block_q8_k *x, size_t nb, int nr, int T);
/* The six-bit scales and mins of the eight groups of a Q4_K block (kquant.c). */
void infer_q4k_scales(const uint8_t *packed, uint8_t s[8], uint8_t m[8]);

/* rl_attention_decode's computation for one query head (one token, n_pos cached positions):
 * out (HD), att (n_pos) scores scratch, q (HD), kc / vc: the head's keys and values at position
 * s at kc + s * KD. AVX-512 when simd allows and HD is a multiple of 16 (attn.c). */
void infer_attention_head(int simd, float *out, float *att, const float *q, const float *kc, const float *vc, int KD,
                          int n_pos, int HD, float scale);

/* The threads of a context, run together through a forward (team.c). infer_team_new(n): n
 * threads including the caller (NULL when n < 2 or nothing could start). infer_team_run: fn(ctx,
 * ith, nth) on the caller (as thread 0) and on each worker that arrives before the caller's fn
 * returns (so fn must not depend on the others arriving: forward.c hands out units of work);
 * returns when no worker is inside fn any more. A NULL team is one thread. infer_pause(k): step
 * k of a wait loop (a pause; a yield past the first thousand). */
infer_team *infer_team_new(int n);
void infer_team_free(infer_team *t);
int infer_team_size(const infer_team *t);
void infer_team_run(infer_team *t, void (*fn)(void *ctx, int ith, int nth), void *ctx);
void infer_pause(unsigned k);

/* Continuous batching (group.c): join / unjoin at rl_infer_new_ex / rl_infer_free; enter and
 * leave around the decoding loop of rl_infer_generate; decode = rl_infer_decode in a step
 * shared with the group's other decoding contexts. */
rl_status infer_group_join(rl_infer_group *g, rl_error *err);
void infer_group_unjoin(rl_infer_group *g);
void infer_group_enter(rl_infer *inf);
void infer_group_leave(rl_infer *inf);
rl_status infer_group_decode(rl_infer *inf, int token, int pos, float **logits, rl_error *err);

/* T <= PREFILL_T tokens through every layer in one batched forward (forward.c): token t of
 * context seq[t] (seq NULL: all of inf, at consecutive positions) at position pos[t], its key and
 * value written into that context's cache; inf gives the weights, scratch and threads. The
 * last n_logits tokens' logits go to logits (n_logits, V). gemm: float32 weights of T > 1 tokens
 * may go through rl_sgemm (other sums than one token's dot products). */
rl_status infer_forward(rl_infer *inf, rl_infer *const *seq, const int32_t *tokens, const int *pos, int T, int n_logits,
                        float *logits, int gemm, rl_error *err);

#endif
