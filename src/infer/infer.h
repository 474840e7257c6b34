/* infer.h - the public door of src/infer: sampling and the generation loop, built on the model's
 * one-token decode (rl_model_decode + rl_kv) and the tokenizer's streaming decoder.
 *
 * Two pieces:
 *   - rl_sampler: turns a logits vector into a token. Order of the steps (llama.cpp's, with the
 *     OpenAI penalties folded in): logit bias -> repetition / presence / frequency penalties over
 *     the last `penalty_last_n` tokens -> (temperature 0: argmax, lowest id on ties) -> top-k ->
 *     softmax at the temperature -> top-p -> min-p -> draw from the renormalised rest with a
 *     xoshiro256** generator seeded from `seed` (same seed, same model, same prompt: same text).
 *     Logprobs are those of the model's own distribution (log-softmax of the raw logits, before
 *     bias, penalties and temperature), as OpenAI reports them.
 *   - rl_infer: one generation context (a KV cache and the tokens it holds) over a shared model.
 *     rl_infer_generate runs a prompt through the cache (reusing the longest prefix already
 *     there), then samples until EOS / a stop id / a stop string / max_tokens / the context /
 *     a deadline / the caller's cancel flag, calling back with each piece of text as it becomes
 *     final (never half a UTF-8 character, never a part of a stop string).
 *
 *   - rl_qmodel: Q8_0 / Q4_0 / Q4_K / Q6_K copies of the matrices (or the float32 ones) for faster
 *     decoding over the context's threads (AVX2 / AVX-512 kernels with scalar references; with AVX-512
 *     VNNI, the rows of every quantized type repacked 16 at a time at load), and batched prompt processing
 *     (rl_infer_opts: tiles of 16 rows x 8 tokens for Q8_0 / Q4_0, x 4 for Q4_K / Q6_K, rl_sgemm for float32).
 *
 * Threads: a model may be shared by many rl_infer contexts decoding at the same time (decode only
 * reads the weights; each context owns its cache and scratch). One rl_infer is used by one thread
 * at a time. Nothing here keeps global state.
 *
 * Ownership: rl_sampler_free / rl_infer_free release what the matching new allocated;
 * rl_gen_result_free releases what rl_infer_generate put in a result. */
#ifndef RL_INFER_H
#define RL_INFER_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

#define RL_MAX_TOP_LOGPROBS 20

typedef struct rl_logit_bias {
    int32_t token;
    float bias; /* added to the logit; <= -100 bans the token, as OpenAI does */
} rl_logit_bias;

typedef struct rl_sampler_params {
    float temperature;       /* 0 = greedy (argmax) */
    int top_k;               /* 0 = off */
    float top_p;             /* 1 = off */
    float min_p;             /* 0 = off: drop tokens with p < min_p * p(max) */
    float repeat_penalty;    /* 1 = off; llama.cpp's: positive logits / r, negative * r */
    float presence_penalty;  /* 0 = off; OpenAI's: - presence * [count > 0] */
    float frequency_penalty; /* 0 = off; OpenAI's: - frequency * count */
    int penalty_last_n;      /* tokens the penalties look back over; -1 = all, 0 = none */
    uint64_t seed;
    const rl_logit_bias *bias; /* not owned; copied by rl_sampler_new */
    int n_bias;
    int n_probs; /* top logprobs reported per token, 0..RL_MAX_TOP_LOGPROBS */
} rl_sampler_params;

/* Defaults: greedy off (temperature 1), every filter and penalty off, seed 0, penalty window 64. */
rl_sampler_params rl_sampler_defaults(void);

typedef struct rl_token_prob {
    int32_t token;
    float logprob;
} rl_token_prob;

typedef struct rl_sampler rl_sampler;
/* Checks the parameters against a vocabulary of V ids (ranges, bias ids) and allocates. */
rl_status rl_sampler_new(rl_sampler **out, const rl_sampler_params *p, int V, rl_error *err);
void rl_sampler_free(rl_sampler *s);
/* Forgets the token history and reseeds (a new request). */
void rl_sampler_reset(rl_sampler *s);
/* Adds a token to the history the penalties look at (prompt tokens and generated ones). */
void rl_sampler_accept(rl_sampler *s, int32_t token);
/* Picks the next token from logits (V values; modified in place). chosen (may be NULL)
 * receives the token's logprob; top (may be NULL, room for p->n_probs) the most likely tokens,
 * most likely first; returns the token. */
int32_t rl_sampler_sample(rl_sampler *s, float *logits, rl_token_prob *chosen, rl_token_prob *top);

/* ---- generation ------------------------------------------------------------------------- */

typedef enum rl_finish {
    RL_FINISH_NONE = 0,
    RL_FINISH_STOP,      /* EOS, a stop id or a stop string */
    RL_FINISH_LENGTH,    /* max_tokens or the context was reached */
    RL_FINISH_TIMEOUT,   /* the deadline passed */
    RL_FINISH_CANCELLED, /* the cancel flag was set, or the callback asked to stop */
} rl_finish;
const char *rl_finish_name(rl_finish f); /* "stop", "length", "timeout", "cancelled" */

typedef struct rl_gen_params {
    rl_sampler_params sampling;
    int max_tokens;                /* new tokens; <= 0 means up to the context */
    const char *const *stop;       /* stop strings (not owned; "" entries are ignored) */
    int n_stop;
    const int32_t *stop_ids;       /* extra stop ids besides BOS/EOS and the tokenizer's own */
    int n_stop_ids;
    int ignore_eos;                /* keep going past EOS / stop ids */
    int logprobs;                  /* compute each token's logprob (also on when n_probs > 0) */
    double deadline;               /* rl_now() value after which generation stops; 0 = none */
    const volatile int *cancel;    /* optional: generation stops when *cancel becomes nonzero */
} rl_gen_params;

/* One step of generation handed to the callback: the token sampled, its logprobs, and the text
 * that became final with it (may be empty: held back for UTF-8 or a possible stop string). */
typedef struct rl_gen_piece {
    int32_t token;
    const char *text;
    size_t len;
    float logprob;
    const rl_token_prob *top; /* n_top entries */
    int n_top;
} rl_gen_piece;
/* Return nonzero to stop generating (finish = cancelled). At the end a last call may come with
 * token -1 carrying text that was held back. */
typedef int (*rl_gen_callback)(void *ctx, const rl_gen_piece *piece);

typedef struct rl_gen_result {
    char *text;  /* all generated text, stop string excluded; malloc'ed, NUL-terminated */
    size_t len;
    int n_prompt;    /* prompt tokens */
    int n_cached;    /* of which were already in the cache (prefix reuse) */
    int n_gen;       /* tokens generated (a stopping EOS / stop id is not counted) */
    rl_finish finish;
    double t_prompt, t_gen; /* seconds */
    /* per generated token (n_gen): ids, and with logprobs their logprobs and top n_probs */
    int32_t *tokens;
    float *logprobs;    /* NULL without logprobs */
    rl_token_prob *top; /* n_gen * n_probs, NULL when n_probs is 0 */
    int n_probs;
} rl_gen_result;
void rl_gen_result_free(rl_gen_result *r);

typedef struct rl_infer rl_infer;
typedef struct rl_infer_group rl_infer_group;
/* A generation context over model m (not owned, shared) and tok (not owned) with a cache of
 * n_ctx positions (<= 0 or beyond the model's: the model's max_seq_len). */
rl_status rl_infer_new(rl_infer **out, rl_model *m, const rl_tokenizer *tok, int n_ctx, rl_error *err);
void rl_infer_free(rl_infer *inf);
int rl_infer_n_ctx(const rl_infer *inf);
/* Forgets which tokens the cache holds (call after changing the model's weights or adapter). */
void rl_infer_reset(rl_infer *inf);

/* The prompt ids of a text as `raftlm generate` makes them: BOS (the tokenizer's, else the
 * model's, when there is one) + encode(text) without other special tokens. Caller frees. */
rl_status rl_infer_tokenize(const rl_infer *inf, const char *text, size_t len, int add_bos, int32_t **ids, size_t *n,
                            rl_error *err);

/* Generates from prompt ids (n_prompt >= 1, < the context: RL_EINVAL otherwise). cb may be
 * NULL. res receives the text and counts (free with rl_gen_result_free, also on error). */
rl_status rl_infer_generate(rl_infer *inf, const int32_t *prompt, size_t n_prompt, const rl_gen_params *p,
                            rl_gen_callback cb, void *cb_ctx, rl_gen_result *res, rl_error *err);

/* ---- quantized weights -------------------------------------------------------------------- */

/* GGUF's type numbers */
typedef enum rl_wtype { RL_WTYPE_F32 = 0, RL_WTYPE_Q4_0 = 2, RL_WTYPE_Q8_0 = 8, RL_WTYPE_Q4_K = 12, RL_WTYPE_Q6_K = 14 } rl_wtype;

#define RL_Q8_0_BLOCK 32
/* GGUF's Q8_0 block: value i = fp16(d) * qs[i]. */
typedef struct rl_block_q8_0 {
    uint16_t d;
    int8_t qs[RL_Q8_0_BLOCK];
} rl_block_q8_0;

uint16_t rl_fp32_to_fp16(float f); /* round to nearest even */
float rl_fp16_to_fp32(uint16_t h);
/* x (n), out (n/32); n is a multiple of 32. Scale amax/127, values rounded to nearest. */
void rl_q8_0_quantize(rl_block_q8_0 *out, const float *x, size_t n);
void rl_q8_0_dequantize(float *out, const rl_block_q8_0 *blocks, size_t n);
/* Dot product of nb blocks: the scalar reference, and the fastest kernel this CPU runs
 * ("avx512vnni", "avx2" or "scalar"; RAFTLM_NO_AVX512=1 stops at AVX2, RAFTLM_NO_SIMD=1 forces the
 * scalar one). */
typedef float (*rl_q8_0_dot_fn)(const rl_block_q8_0 *a, const rl_block_q8_0 *b, size_t nb);
float rl_q8_0_dot_ref(const rl_block_q8_0 *a, const rl_block_q8_0 *b, size_t nb);
rl_q8_0_dot_fn rl_q8_0_dot_kernel(const char **name);

/* GGUF's Q4_0 block: 32 values, value j = fp16(d) * ((qs[j % 16] >> (4 * (j / 16))) & 15) - 8),
 * d = (the value of largest magnitude) / -8, as llama.cpp quantizes. */
typedef struct rl_block_q4_0 {
    uint16_t d;
    uint8_t qs[RL_Q8_0_BLOCK / 2];
} rl_block_q4_0;
void rl_q4_0_quantize(rl_block_q4_0 *out, const float *x, size_t n);
void rl_q4_0_dequantize(float *out, const rl_block_q4_0 *blocks, size_t n);
/* Q4_0 weights times Q8_0 activations, nb blocks: reference and this CPU's kernel. */
typedef float (*rl_q4_0_dot_fn)(const rl_block_q4_0 *w, const rl_block_q8_0 *x, size_t nb);
float rl_q4_0_dot_ref(const rl_block_q4_0 *w, const rl_block_q8_0 *x, size_t nb);
rl_q4_0_dot_fn rl_q4_0_dot_kernel(const char **name);

/* ---- K-quants: super-blocks of 256 values (GGUF's layouts) -------------------------------- */

#define RL_QK_K 256
/* Q4_K: value = fp16(d) * s_g * q - fp16(dmin) * m_g for the eight groups g of 32 values, with
 * 6-bit s_g, m_g packed in scales (see src/model/ggml_quant.c); q are nibbles: groups 2k and
 * 2k+1 are the low and high nibbles of qs[32k .. 32k+31]. */
typedef struct rl_block_q4_k {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qs[RL_QK_K / 2];
} rl_block_q4_k;
/* Q6_K: value i = fp16(d) * scales[i / 16] * (q - 32), q of 6 bits: 4 in ql, 2 in qh. */
typedef struct rl_block_q6_k {
    uint8_t ql[RL_QK_K / 2];
    uint8_t qh[RL_QK_K / 4];
    int8_t scales[RL_QK_K / 16];
    uint16_t d;
} rl_block_q6_k;
/* Q8_K (activations only): value = d * qs[i]; bsums: the sums of each 16 qs. */
typedef struct rl_block_q8_k {
    float d;
    int8_t qs[RL_QK_K];
    int16_t bsums[RL_QK_K / 16];
} rl_block_q8_k;
/* x (n), out (n/256); n a multiple of 256. d = amax/127, values rounded to nearest. */
void rl_q8_k_quantize(rl_block_q8_k *out, const float *x, size_t n);
/* Dot products of nb super-blocks against Q8_K activations: references and this CPU's kernels. */
typedef float (*rl_q4_k_dot_fn)(const rl_block_q4_k *w, const rl_block_q8_k *x, size_t nb);
typedef float (*rl_q6_k_dot_fn)(const rl_block_q6_k *w, const rl_block_q8_k *x, size_t nb);
float rl_q4_k_dot_ref(const rl_block_q4_k *w, const rl_block_q8_k *x, size_t nb);
float rl_q6_k_dot_ref(const rl_block_q6_k *w, const rl_block_q8_k *x, size_t nb);
rl_q4_k_dot_fn rl_q4_k_dot_kernel(const char **name);
rl_q6_k_dot_fn rl_q6_k_dot_kernel(const char **name);
/* One weight row against nt tokens (token j's blocks at x + j * x_stride, its result at
 * out[j * out_stride]): the row's blocks are unpacked once for up to four tokens (a batched
 * prompt). Each result has the bits of rl_q4_k_dot_kernel's kernel for that token alone. */
typedef void (*rl_q4_k_dot_rows_fn)(const rl_block_q4_k *w, const rl_block_q8_k *x, size_t nb, size_t x_stride, int nt,
                                    float *out, size_t out_stride);
rl_q4_k_dot_rows_fn rl_q4_k_dot_rows_kernel(const char **name);
/* float32 rows ("avx512", "avx2" or "scalar"). */
typedef float (*rl_f32_dot_fn)(const float *a, const float *b, size_t n);
float rl_f32_dot_ref(const float *a, const float *b, size_t n);
rl_f32_dot_fn rl_f32_dot_kernel(const char **name);

/* A quantized copy of a model's matrices (q, k, v, o, gate, up, down of every layer, lm_head),
 * shared read-only by any number of rl_infer contexts. Matrices whose input size is not a
 * multiple of 32 stay float32. The model must outlive it (embeddings, norms and biases are
 * read from it). A model with an unmerged LoRA adapter is RL_EUNSUPPORTED (merge it first). */
typedef struct rl_qmodel rl_qmodel;
/* type: RL_WTYPE_Q8_0, Q4_0, Q4_K or Q6_K; or RL_WTYPE_F32, which borrows the model's float32
 * matrices (nothing copied) so that float32 decoding runs the same threaded kernels. A K type
 * keeps matrices whose input size is not a multiple of 256 in the fallback llama.cpp's quantizer
 * uses (Q4_K: Q4_0, Q6_K: Q8_0), or float32 when not a multiple of 32. */
rl_status rl_qmodel_new(rl_qmodel **out, const rl_model *m, rl_wtype type, rl_error *err);
void rl_qmodel_free(rl_qmodel *q);
size_t rl_qmodel_bytes(const rl_qmodel *q); /* bytes of the matrices as used */
const char *rl_qmodel_kernel(const rl_qmodel *q);
/* How many of the matrices (the layers' and the output's) hold the type asked for at
 * rl_qmodel_new (*total: all of them); the others took a fallback type. */
int rl_qmodel_count_asked(const rl_qmodel *q, int *total);
/* The type a matrix takes when its rows do not fit the type asked for (llama.cpp's fallbacks:
 * Q4_K -> Q4_0, Q6_K -> Q8_0 for rows not a multiple of 256 wide; float32 otherwise). */
rl_wtype rl_wtype_fallback(rl_wtype type);

typedef struct rl_infer_opts {
    int n_ctx;            /* as in rl_infer_new */
    const rl_qmodel *q;   /* NULL: float32 weights through rl_model_decode (exactly `raftlm generate`) */
    int n_threads;        /* threads of this context's forward (quantized path: each forward one parallel
                             region, team.c; the output does not depend on it); <= 1: one */
    int batch_prompt;     /* prompts in batches of 128 tokens (matrix-matrix): 0 = auto (on with a
                             quantized q: the same bits as token by token; off for float32, q NULL or
                             of type F32, whose SGEMM sums in another order than the decoding dot
                             products), 1 = on, -1 = off */
    rl_infer_group *group; /* continuous batching with the group's other contexts (needs q; not owned) */
} rl_infer_opts;
rl_status rl_infer_new_ex(rl_infer **out, rl_model *m, const rl_tokenizer *tok, const rl_infer_opts *o, rl_error *err);
/* One token through the context's cache at pos (what the generation loop calls; exposed for
 * tests and benchmarks). *logits points into the context (V values). */
rl_status rl_infer_decode(rl_infer *inf, int token, int pos, float **logits, rl_error *err);

/* ---- continuous batching ----------------------------------------------------------------- */

/* Contexts created with the same group (rl_infer_opts.group; at most 128, same model and
 * rl_qmodel) that generate at the same time on their own threads decode together: each step is
 * one batched forward for all of those in their decoding loop, run by the thread that submits
 * last, with every weight matrix read once for all of them. A context joins at the step after
 * its prompt and leaves when it stops; its tokens' logits have the same bits as alone. The group
 * must outlive its contexts. */
typedef struct rl_infer_group rl_infer_group;
rl_status rl_infer_group_new(rl_infer_group **out, rl_error *err);
void rl_infer_group_free(rl_infer_group *g);
/* Steps run so far and the tokens decoded in them (tokens / steps: the mean batch). */
void rl_infer_group_stats(rl_infer_group *g, uint64_t *steps, uint64_t *tokens);

/* ---- stop strings (exposed for tests) ------------------------------------------------------ */

/* Where the first stop string occurs in text[0..len) (its offset; *which = its index), or -1.
 * *safe receives how many bytes from the start can be released: all of them, except a tail
 * that is a prefix of some stop string (it may still grow into one). */
long rl_stop_find(const char *text, size_t len, const char *const *stop, int n_stop, int *which, size_t *safe);

#endif
