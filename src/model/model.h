/* model.h - the public door of src/model: Llama-family model configs and weights, loaders
 * (llama2.c checkpoints, Hugging Face safetensors folders), the transformer's forward and
 * backward over a batch (training, scoring), LoRA adapters, and a KV cache for generation.
 *
 * Layout: every weight is stored in float32, in Hugging Face's orientation (nn.Linear: (out, in))
 * and Hugging Face's RoPE layout (half-split pairs); loaders of other layouts (llama2.c's
 * interleaved pairs) permute at load time, so that one forward serves every format.
 * Parameters live in one allocation carved into named tensors (rl_params); the same struct
 * describes gradients. Activations for a (B,T) batch live in one rl_acts allocation.
 *
 * Ownership: rl_model_free, rl_acts_free, rl_kv_free, rl_lora_free release what the matching
 * init/load allocated. Nothing here keeps global state; a model may be used from one thread at a
 * time (the kernels parallelise inside a call through the optional pool).
 */
#ifndef RL_MODEL_H
#define RL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "tensor/tensor.h"

typedef struct rl_model_config {
    char arch[16];      /* "llama" or "qwen2" */
    int dim;            /* C */
    int hidden_dim;     /* F */
    int n_layers;       /* L */
    int n_heads;        /* NH */
    int n_kv_heads;     /* NKV, divides NH */
    int head_dim;       /* HD (usually C / NH) */
    int vocab_size;     /* V */
    int max_seq_len;    /* max_position_embeddings */
    float norm_eps;     /* rms_norm_eps */
    rl_rope_params rope;
    int tie_embeddings; /* lm_head shares wte */
    int qkv_bias;       /* Qwen2: bias on q, k, v projections */
    int bos_id, eos_id; /* -1 when unknown */
} rl_model_config;

/* Parameters (or their gradients) carved from one allocation. Shapes with L = n_layers,
 * QD = NH*HD, KD = NKV*HD. bq/bk/bv are NULL without qkv_bias; lm_head == wte when tied. */
typedef struct rl_params {
    float *wte;       // (V, C)
    float *rms_att;   // (L, C)
    float *wq;        // (L, QD, C)
    float *wk;        // (L, KD, C)
    float *wv;        // (L, KD, C)
    float *bq;        // (L, QD)
    float *bk;        // (L, KD)
    float *bv;        // (L, KD)
    float *wo;        // (L, C, QD)
    float *rms_ffn;   // (L, C)
    float *w1;        // gate_proj (L, F, C)
    float *w3;        // up_proj (L, F, C)
    float *w2;        // down_proj (L, C, F)
    float *rms_final; // (C)
    float *lm_head;   // (V, C)
    float *mem;       /* the one allocation (owned) */
    size_t n;         /* floats in mem */
} rl_params;

/* A named view of one parameter tensor, with Hugging Face's name. */
typedef struct rl_tensor_ref {
    char name[80];
    float *data;
    int ndim;
    int64_t shape[2];
    size_t n;
} rl_tensor_ref;

/* The linear layers of a block, in the order of PEFT's module names. */
typedef enum rl_module {
    RL_MOD_Q = 0, RL_MOD_K, RL_MOD_V, RL_MOD_O, RL_MOD_GATE, RL_MOD_UP, RL_MOD_DOWN, RL_MOD_COUNT
} rl_module;
extern const char *const rl_module_names[RL_MOD_COUNT]; /* "q_proj", ..., "down_proj" */

/* LoRA adapters on a set of linear modules of every layer (PEFT's layout and init):
 * y = x W^T + scale * (x A^T) B^T with A (r, in), B (out, r), scale = alpha / r
 * (alpha / sqrt(r) with rsLoRA). A and B of module m, layer l: a[m] + l*r*in, b[m] + l*out*r. */
typedef struct rl_lora {
    int r;
    float alpha, scale;
    int rslora;
    unsigned targets;          /* bit m set: module m is adapted */
    float dropout;             /* lora_dropout: applied to the adapter's input while dropout_active */
    int dropout_active;        /* set by the trainer for training forwards, 0 for eval/inference */
    uint64_t dropout_seed;     /* the mask's seed; the trainer sets a new one per micro-batch */
    float *a[RL_MOD_COUNT];    // (L, r, in)
    float *b[RL_MOD_COUNT];    // (L, out, r)
    float *mem;
    size_t n;
} rl_lora;

typedef struct rl_model {
    rl_model_config cfg;
    rl_params w;
    float *inv_freq;   // (HD/2) RoPE frequencies
    rl_lora *lora;     /* optional, not owned: applied in every forward when set */
    rl_pool *pool;     /* optional, not owned: threads for the matrix products and attention */
    rl_gemm_impl matmul; /* the linear layers' and the output embedding's products: RL_GEMM_AUTO
                            (float32, the default) or RL_GEMM_BF16 (bf16 inputs, float32 sums) */
} rl_model;

/* ---- config and parameters ---- */

/* Checks that a config is usable (positive sizes, NH % NKV == 0, even HD, sane eps/theta). */
rl_status rl_model_config_check(const rl_model_config *cfg, rl_error *err);
/* Parses a Hugging Face config.json text. Unsupported features are RL_EUNSUPPORTED naming them. */
rl_status rl_model_config_from_hf_json(rl_model_config *cfg, const char *json, size_t len, rl_error *err);
/* Allocates parameters (zeroed) for cfg. */
rl_status rl_params_init(rl_params *p, const rl_model_config *cfg, rl_error *err);
void rl_params_free(rl_params *p);
/* Number of tensors rl_params_list gives, and the list itself (HF names); refs has room for
 * rl_params_count(cfg). A tied lm_head is not listed. */
int rl_params_count(const rl_model_config *cfg);
int rl_params_list(const rl_model_config *cfg, const rl_params *p, rl_tensor_ref *refs);
/* Weight, bias (NULL when none), in and out sizes of linear module m of layer l. */
void rl_params_linear(const rl_model_config *cfg, const rl_params *p, int l, rl_module m, float **w, float **bias,
                      int *in, int *out);

/* ---- models ---- */

/* Allocates a zeroed model for cfg (a loader then fills the weights). */
rl_status rl_model_init(rl_model *m, const rl_model_config *cfg, rl_error *err);
void rl_model_free(rl_model *m);
/* Replaces the weights with a fresh random init (normal(0, std) matrices and embeddings, norms 1,
 * biases 0), for training a model of this shape from scratch. */
void rl_model_init_random(rl_model *m, uint64_t seed, float std);
/* Loads a model: a folder is a Hugging Face folder (config.json + model.safetensors or
 * model.safetensors.index.json); a file is a llama2.c checkpoint. */
rl_status rl_model_load(rl_model *m, const char *path, rl_error *err);
rl_status rl_model_load_llama2c(rl_model *m, const char *path, rl_error *err);
rl_status rl_model_load_hf(rl_model *m, const char *dir, rl_error *err);

/* Loads a GGUF model (architectures llama and qwen2; F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K
 * tensors, dequantized to float32). */
rl_status rl_model_load_gguf(rl_model *m, const char *path, rl_error *err);
/* A vocabulary to embed in a GGUF file (tokenizer.ggml.*): a llama2.c / SentencePiece one
 * ("llama": pieces with U+2581 for spaces, scores) or a byte-level BPE one from a
 * tokenizer.json ("gpt2": pieces in GPT-2's byte-to-unicode alphabet, merges, a pre-tokenizer
 * name llama.cpp knows such as "qwen2", "smollm", "llama-bpe", "gpt-2"). */
typedef struct rl_gguf_vocab {
    const char *model;    /* "llama" or "gpt2" */
    const char *pre;      /* gpt2: tokenizer.ggml.pre; NULL: not written */
    int n;
    const char **tokens;
    const float *scores;  /* NULL: not written (gpt2) */
    const int32_t *types; /* 1 normal, 2 unknown, 3 control, 4 user-defined, 6 byte */
    const char **merges;  /* gpt2: "left right" pairs, best first */
    int n_merges;
    int bos, eos, unk, pad; /* -1: none */
    int add_bos, add_eos;   /* tokenizer.ggml.add_*_token: 1 true, -1 false, 0 not written (llama.cpp's default) */
} rl_gguf_vocab;
/* ggml block quantization of one row of n floats (n a multiple of the type's block: 32, or 256
 * for Q4_K / Q6_K) into dst. Types 0 (F32), 1 (F16), 8 (Q8_0), 2 (Q4_0), 12 (Q4_K), 14 (Q6_K);
 * returns 0 (nothing written) for another type or a bad n. */
int rl_ggml_quantize_row(int type, void *dst, const float *src, size_t n);
/* Writes m as a GGUF file llama.cpp loads; type: 0 (F32), 1 (F16), 8 (Q8_0), 2 (Q4_0), 12 (Q4_K)
 * or 14 (Q6_K) for matrices (1-D tensors stay F32). A matrix whose rows do not fit the type's
 * block falls back as llama.cpp's quantizer does: K types to Q8_0 (Q6_K) or Q4_0 (Q4_K) when
 * rows are a multiple of 32, anything to F16 otherwise. The token embedding of a K type is
 * written as Q6_K / Q4_K like the rest (or its fallback). vocab may be NULL (no tokenizer metadata). */
rl_status rl_model_save_gguf(const rl_model *m, const char *path, int type, const rl_gguf_vocab *vocab, rl_error *err);
/* Writes config.json + model.safetensors (F32) into dir (created; files written atomically). */
rl_status rl_model_save_hf(const rl_model *m, const char *dir, rl_error *err);
/* The Hugging Face config.json text of a config; caller frees. */
char *rl_model_config_to_hf_json(const rl_model_config *cfg);
/* Folds m->lora into the base weights (W += scale * B A) and detaches it. */
void rl_lora_merge(rl_model *m);

/* ---- training / scoring forward and backward ---- */

typedef struct rl_acts {
    int B, T;          /* capacity */
    int b, t;          /* sizes of the last forward */
    int n_valid;       /* targets >= 0 in the last forward */
    int *tokens, *targets, *pos, *seg; // (B,T) copies of the last forward's inputs
    int has_seg;
    float *res;        // (L+1, B*T, C) residual stream entering each layer, [L] = final
    /* the following per-layer arrays have 1 instead of L layers with checkpointing */
    float *ln1;        // (L, BT, C)
    float *ln1_rstd;   // (L, BT)
    float *q;          // (L, BT, QD) after RoPE
    float *k, *v;      // (L, BT, KD) (k after RoPE)
    float *lse;        // (L, B, NH, T) log-sum-exp of each attention row (rl_attention_forward)
    float *atty;       // (L, BT, QD)
    float *res2;       // (L, BT, C) after attention
    float *ln2;        // (L, BT, C)
    float *ln2_rstd;   // (L, BT)
    float *g, *u, *h;  // (L, BT, F) gate, up, silu(gate) * up
    float *lnf;        // (BT, C)
    float *lnf_rstd;   // (BT)
    float *logits;     // (BT, V); chunked: the unscaled dlogits of every row after forward
                       // (dlogits_kept), or RL_LOGITS_CHUNK rows at a time (recomputed in backward)
    float *losses;     // (BT)
    float *lora_t;     // (L, RL_MOD_COUNT, BT, r) x A^T of every adapted module (LoRA only)
    /* backward scratch (one layer) */
    float *dres, *dln, *dq, *dk, *dv, *datty, *dg, *du, *dh, *dlora; // dlora (3, BT, r): q, k, v at once
    float *attn_scratch; // rl_attention_scratch_floats(B, T, NH, NKV, HD)
    float *lora_x;       // (BT, max(C,F,QD)) LoRA dropout scratch
    float *rope_cs;      // (BT, HD) RoPE cos | sin of the last forward's positions (rl_rope_table)
    float *rms_dw;       // (RL_PAR_SLICES, C) RMSNorm weight-gradient parts, one per slice of rows
    int checkpointing; /* 1: only res is kept per layer; the rest is recomputed in backward */
    int chunked_logits; /* 1: the logits are not kept for the caller (losses are) */
    int dlogits_kept;   /* chunked and small enough: forward leaves softmax - onehot of every row in
                           logits, so backward needs neither the logits product again nor a second
                           pass over the vocabulary */
    float *mem;
    size_t n;
} rl_acts;

/* Allocates activations for batches up to (B, T) of m (LoRA rank of m->lora if set). */
rl_status rl_acts_init(rl_acts *a, const rl_model *m, int B, int T, rl_error *err);
/* The same with options (flags): RL_ACTS_CHECKPOINT keeps the inner activations of one layer only and recomputes each layer in backward;
 * RL_ACTS_CHUNKED_LOGITS is for when only the losses and gradients are wanted: the logits are
 * computed RL_LOGITS_CHUNK rows at a time; when (B*T, V) fits RL_DLOGITS_KEEP floats the forward
 * keeps every row's dlogits (computing them costs little next to the product), otherwise only
 * one chunk exists and backward recomputes each chunk's logits. RL_ACTS_LOGITS_RECOMPUTE forces
 * the latter (least memory). */
#define RL_ACTS_CHECKPOINT 1
#define RL_PAR_SLICES 16 /* row kernels run in this many fixed slices: results do not depend on the thread count */
#define RL_ACTS_CHUNKED_LOGITS 2
#define RL_ACTS_LOGITS_RECOMPUTE 4
#define RL_LOGITS_CHUNK 256
#define RL_DLOGITS_KEEP ((size_t)32 << 20) /* 128 MB: SmolLM2's 49,152 ids x 512 tokens fit */
rl_status rl_acts_init_ex(rl_acts *a, const rl_model *m, int B, int T, int flags, rl_error *err);
void rl_acts_free(rl_acts *a);

/* Forward over tokens (B,T). targets (B,T) may be NULL (no loss); a target < 0 is masked.
 * pos (B,T) may be NULL (positions 0..T-1); seg (B,T) may be NULL (see rl_attention_forward).
 * *loss (may be NULL) receives the mean loss over unmasked targets (0 when none).
 * Logits stay in a->logits (B*T, V) until backward. */
rl_status rl_model_forward(rl_model *m, rl_acts *a, const int *tokens, const int *targets, const int *pos,
                           const int *seg, int B, int T, float *loss, rl_error *err);
/* Backward of the last forward (which must have had targets). Gradients ACCUMULATE into g
 * (NULL: base weights frozen) and into lg (LoRA gradients; NULL when no LoRA training).
 * dscale multiplies d(sum of token losses): 1/n_valid for the mean over this batch, or
 * 1/(tokens of the whole accumulated batch) for gradient accumulation. */
void rl_model_backward(rl_model *m, rl_acts *a, rl_params *g, rl_lora *lg, float dscale);
/* As rl_model_backward; with RL_BWD_OVERWRITE the full-model gradients g are written, not added
 * (their old contents are ignored: the first micro-batch of a step needs no zeroed buffers, and
 * the weight-gradient products skip reading them). The same bits as zeroing, then adding. */
#define RL_BWD_OVERWRITE 1
void rl_model_backward_ex(rl_model *m, rl_acts *a, rl_params *g, rl_lora *lg, float dscale, int flags);

/* ---- LoRA ---- */

/* Parses "q_proj,v_proj", "all-linear" (every module) into a target mask; 0 on error. */
unsigned rl_lora_parse_targets(const char *list);
/* Allocates adapters; A with PEFT's default init (kaiming-uniform, a=sqrt(5): U(-1/sqrt(in),
 * 1/sqrt(in))) from seed, B zero. zero_init=1 zeroes A as well (for gradient buffers). */
rl_status rl_lora_init(rl_lora *lo, const rl_model_config *cfg, int r, float alpha, int rslora, unsigned targets,
                       uint64_t seed, int zero_init, rl_error *err);
void rl_lora_free(rl_lora *lo);
/* Shapes of module m's adapters. */
void rl_lora_shapes(const rl_model_config *cfg, rl_module m, int *in, int *out);
/* Reads a PEFT adapter folder (adapter_config.json + adapter_model.safetensors) for cfg. */
rl_status rl_lora_load_peft(rl_lora *lo, const rl_model_config *cfg, const char *dir, rl_error *err);
/* Writes lo as a PEFT adapter folder (created if needed; files written atomically). */
rl_status rl_lora_save_peft(const rl_lora *lo, const rl_model_config *cfg, const char *dir, const char *base_model,
                            rl_error *err);

/* ---- generation ---- */

typedef struct rl_kv {
    int max_T;
    float *k, *v;      // (L, max_T, KD)
    float *x, *xb, *xb2, *q, *hb, *hb2; // one token's scratch
    float *att;        // (NH, max_T)
    float *logits;     // (V)
    float *mem;
    size_t n;
} rl_kv;

rl_status rl_kv_init(rl_kv *kv, const rl_model *m, int max_T, rl_error *err);
void rl_kv_free(rl_kv *kv);
/* Runs token at position pos (0 <= pos < max_T, earlier positions already in the cache);
 * *logits points at kv->logits (V). */
rl_status rl_model_decode(rl_model *m, rl_kv *kv, int token, int pos, float **logits, rl_error *err);

/* ---- BERT-family sentence encoders (bert.c) ---- */

/* The encoders published for sentence embeddings (all-MiniLM-L6-v2, bge-*-en-v1.5, e5-*-v2,
 * gte-*): learned absolute positions, token types, an embeddings LayerNorm, post-LayerNorm blocks
 * with erf-GELU FFNs and biases everywhere, bidirectional attention with a padding mask. */
typedef enum rl_bert_pooling { RL_BERT_POOL_MEAN = 1, RL_BERT_POOL_CLS = 2 } rl_bert_pooling;

typedef struct rl_bert_config {
    int dim;         /* C */
    int hidden_dim;  /* F (intermediate_size) */
    int n_layers;    /* L */
    int n_heads;     /* NH, divides C */
    int vocab_size;  /* V */
    int max_pos;     /* P: max_position_embeddings */
    int n_types;     /* TV: type_vocab_size */
    float eps;       /* layer_norm_eps */
} rl_bert_config;

typedef struct rl_bert {
    rl_bert_config cfg;
    rl_bert_pooling pooling; /* sentence-transformers' Pooling module (GGUF: bert.pooling_type) */
    int normalize;           /* a Normalize module follows (GGUF: always, as llama.cpp's embeddings) */
    int max_tokens;          /* truncation incl. [CLS]/[SEP]: max_pos, or less when
                                sentence_bert_config.json / tokenizer.json say so */
    float *wte;              // (V, C)
    float *wpe;              // (P, C)
    float *wtt;              // (TV, C)
    float *ln_emb_w, *ln_emb_b; // (C)
    float *wq, *wk, *wv, *wo;   // (L, C, C)
    float *bq, *bk, *bv, *bo;   // (L, C)
    float *ln1_w, *ln1_b;       // (L, C) after attention
    float *wup;                 // (L, F, C)
    float *bup;                 // (L, F)
    float *wdown;               // (L, C, F)
    float *bdown;               // (L, C)
    float *ln2_w, *ln2_b;       // (L, C) after the FFN
    float *mem;                 /* the one allocation (owned) */
    size_t n;
    rl_pool *pool;              /* optional, not owned: threads for attention */
} rl_bert;

/* "bert" for a BERT-family model (HF folder with model_type bert, GGUF general.architecture
 * bert), otherwise the architecture named by the file ("llama", "qwen2", "" when unknown, e.g.
 * a llama2.c checkpoint). */
void rl_model_detect_arch(const char *path, char *arch, size_t cap);
/* Loads an encoder: a Hugging Face folder (config.json, model.safetensors with or without the
 * "bert." prefix, F32/F16/BF16; modules.json + 1_Pooling/config.json for pooling and
 * normalisation, mean + normalise without them) or a GGUF file (architecture bert). */
rl_status rl_bert_load(rl_bert *m, const char *path, rl_error *err);
void rl_bert_free(rl_bert *m);
/* Last hidden states out (B,T,C) for tokens (B,T) and types (B,T) (NULL: all 0); row b holds
 * lens[b] real tokens, the rest is padding that no real token sees (its rows are unspecified).
 * Ids, types and T <= max_pos are checked (RL_EINVAL). */
rl_status rl_bert_forward(rl_bert *m, float *out, const int *tokens, const int *types, const int *lens, int B, int T,
                          rl_error *err);
/* Sentence embeddings out (B,C) from hidden (B,T,C): the model's pooling over each row's lens[b]
 * tokens, L2-normalised when m->normalize. */
void rl_bert_pool(const rl_bert *m, float *out, const float *hidden, const int *lens, int B, int T);

#endif
