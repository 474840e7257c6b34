/* model.c - the Llama / Qwen2 transformer: parameters, activations, forward and backward over a
 * batch, LoRA adapters, and single-token decoding with a KV cache.
 *
 * The forward keeps every activation the backward needs (llm.c style) in one rl_acts
 * allocation; the backward walks the layers in reverse with one layer's worth of scratch.
 * Every linear layer goes through linear_fwd / linear_bwd, which add the LoRA path when the
 * model has adapters on that module, so the batch forward, the backward and decoding all
 * agree on what a layer computes.
 *
 * Memory options (rl_acts_init_ex flags): gradient checkpointing keeps one layer of inner
 * activations and recomputes each layer in backward; chunked logits never hold more than
 * RL_LOGITS_CHUNK rows of (rows, V) logits: the loss is computed chunk by chunk in forward and the
 * chunk's logits are recomputed in backward (one more lm_head product, no (B*T, V) array).
 */
#include "model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const rl_module_names[RL_MOD_COUNT] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                   "gate_proj", "up_proj", "down_proj"};

/* ---- config ----------------------------------------------------------------------------- */

rl_status rl_model_config_check(const rl_model_config *c, rl_error *err) {
    if (c->dim <= 0 || c->hidden_dim <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 ||
        c->head_dim <= 0 || c->vocab_size <= 0)
        return rl_fail(err, RL_EFORMAT, "model config: sizes must be positive (dim %d, hidden %d, layers %d, heads %d, "
                       "kv heads %d, head dim %d, vocab %d)", c->dim, c->hidden_dim, c->n_layers, c->n_heads,
                       c->n_kv_heads, c->head_dim, c->vocab_size);
    if (c->dim > (1 << 16) || c->hidden_dim > (1 << 18) || c->n_layers > 1024 || c->n_heads > 1024 ||
        c->head_dim > 1024 || c->vocab_size > (1 << 22))
        return rl_fail(err, RL_EFORMAT, "model config: implausibly large sizes (dim %d, hidden %d, layers %d, heads %d, "
                       "head dim %d, vocab %d)", c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->head_dim, c->vocab_size);
    if (c->n_heads % c->n_kv_heads != 0)
        return rl_fail(err, RL_EFORMAT, "model config: %d heads is not a multiple of %d kv heads", c->n_heads, c->n_kv_heads);
    if (c->head_dim % 2 != 0) return rl_fail(err, RL_EFORMAT, "model config: head size %d is odd (RoPE needs pairs)", c->head_dim);
    if (!(c->norm_eps > 0.0f && c->norm_eps < 1.0f)) return rl_fail(err, RL_EFORMAT, "model config: rms_norm_eps %g out of range", c->norm_eps);
    if (!(c->rope.theta > 1.0f)) return rl_fail(err, RL_EFORMAT, "model config: rope_theta %g out of range", c->rope.theta);
    if (c->rope.type != RL_ROPE_DEFAULT && !(c->rope.factor > 0.0f))
        return rl_fail(err, RL_EFORMAT, "model config: rope_scaling factor %g must be positive", c->rope.factor);
    if (c->rope.type == RL_ROPE_LLAMA3 &&
        (!(c->rope.high_freq_factor > c->rope.low_freq_factor) || !(c->rope.low_freq_factor > 0.0f) ||
         c->rope.original_max_position <= 0))
        return rl_fail(err, RL_EFORMAT, "model config: llama3 rope_scaling needs high_freq_factor > low_freq_factor > 0 "
                       "and original_max_position_embeddings > 0");
    return RL_OK;
}

/* ---- parameters ------------------------------------------------------------------------- */

static size_t params_layout(const rl_model_config *c, size_t sizes[15]) {
    size_t C = (size_t)c->dim, F = (size_t)c->hidden_dim, L = (size_t)c->n_layers, V = (size_t)c->vocab_size;
    size_t QD = (size_t)c->n_heads * c->head_dim, KD = (size_t)c->n_kv_heads * c->head_dim;
    size_t s[15] = {V * C, L * C, L * QD * C, L * KD * C, L * KD * C, c->qkv_bias ? L * QD : 0,
                    c->qkv_bias ? L * KD : 0, c->qkv_bias ? L * KD : 0, L * C * QD, L * C, L * F * C, L * F * C,
                    L * C * F, C, c->tie_embeddings ? 0 : V * C};
    size_t total = 0;
    for (int i = 0; i < 15; i++) total += (sizes[i] = s[i]);
    return total;
}

rl_status rl_params_init(rl_params *p, const rl_model_config *cfg, rl_error *err) {
    memset(p, 0, sizeof *p);
    size_t sizes[15];
    size_t n = params_layout(cfg, sizes);
    p->mem = rl_big_calloc(n, sizeof(float));
    if (!p->mem) return rl_fail(err, RL_ENOMEM, "cannot allocate %zu parameters", n);
    p->n = n;
    float **slots[15] = {&p->wte, &p->rms_att, &p->wq, &p->wk, &p->wv, &p->bq, &p->bk, &p->bv, &p->wo,
                         &p->rms_ffn, &p->w1, &p->w3, &p->w2, &p->rms_final, &p->lm_head};
    float *at = p->mem;
    for (int i = 0; i < 15; i++) {
        *slots[i] = sizes[i] ? at : NULL;
        at += sizes[i];
    }
    if (cfg->tie_embeddings) p->lm_head = p->wte;
    return RL_OK;
}

void rl_params_free(rl_params *p) {
    free(p->mem);
    memset(p, 0, sizeof *p);
}

int rl_params_count(const rl_model_config *c) {
    return 1 + c->n_layers * (c->qkv_bias ? 12 : 9) + 1 + (c->tie_embeddings ? 0 : 1);
}

static void ref_set(rl_tensor_ref *r, const char *name, float *data, int64_t d0, int64_t d1) {
    snprintf(r->name, sizeof r->name, "%s", name);
    r->data = data;
    r->ndim = d1 > 0 ? 2 : 1;
    r->shape[0] = d0;
    r->shape[1] = d1 > 0 ? d1 : 0;
    r->n = (size_t)d0 * (size_t)(d1 > 0 ? d1 : 1);
}

int rl_params_list(const rl_model_config *c, const rl_params *p, rl_tensor_ref *refs) {
    int n = 0;
    int64_t C = c->dim, F = c->hidden_dim, V = c->vocab_size;
    int64_t QD = (int64_t)c->n_heads * c->head_dim, KD = (int64_t)c->n_kv_heads * c->head_dim;
    char name[80];
    ref_set(&refs[n++], "model.embed_tokens.weight", p->wte, V, C);
    for (int l = 0; l < c->n_layers; l++) {
#define LAYER(suffix, ptr, d0, d1)                                                                \
    do {                                                                                          \
        snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix);                             \
        ref_set(&refs[n++], name, (ptr) + (size_t)l * (size_t)(d0) * (size_t)((d1) > 0 ? (d1) : 1), d0, d1); \
    } while (0)
        LAYER("input_layernorm.weight", p->rms_att, C, 0);
        LAYER("self_attn.q_proj.weight", p->wq, QD, C);
        LAYER("self_attn.k_proj.weight", p->wk, KD, C);
        LAYER("self_attn.v_proj.weight", p->wv, KD, C);
        if (c->qkv_bias) {
            LAYER("self_attn.q_proj.bias", p->bq, QD, 0);
            LAYER("self_attn.k_proj.bias", p->bk, KD, 0);
            LAYER("self_attn.v_proj.bias", p->bv, KD, 0);
        }
        LAYER("self_attn.o_proj.weight", p->wo, C, QD);
        LAYER("post_attention_layernorm.weight", p->rms_ffn, C, 0);
        LAYER("mlp.gate_proj.weight", p->w1, F, C);
        LAYER("mlp.up_proj.weight", p->w3, F, C);
        LAYER("mlp.down_proj.weight", p->w2, C, F);
#undef LAYER
    }
    ref_set(&refs[n++], "model.norm.weight", p->rms_final, C, 0);
    if (!c->tie_embeddings) ref_set(&refs[n++], "lm_head.weight", p->lm_head, V, C);
    return n;
}

/* base + off, or NULL for an absent tensor (rl_lora_shapes passes empty params) */
static float *at(float *base, size_t off) { return base ? base + off : NULL; }

void rl_params_linear(const rl_model_config *c, const rl_params *p, int l, rl_module m, float **w, float **bias,
                      int *in, int *out) {
    size_t C = (size_t)c->dim, F = (size_t)c->hidden_dim;
    size_t QD = (size_t)c->n_heads * c->head_dim, KD = (size_t)c->n_kv_heads * c->head_dim;
    float *b = NULL;
    switch (m) {
    case RL_MOD_Q: *w = at(p->wq, l * QD * C), *in = (int)C, *out = (int)QD, b = at(p->bq, l * QD); break;
    case RL_MOD_K: *w = at(p->wk, l * KD * C), *in = (int)C, *out = (int)KD, b = at(p->bk, l * KD); break;
    case RL_MOD_V: *w = at(p->wv, l * KD * C), *in = (int)C, *out = (int)KD, b = at(p->bv, l * KD); break;
    case RL_MOD_O: *w = at(p->wo, l * C * QD), *in = (int)QD, *out = (int)C; break;
    case RL_MOD_GATE: *w = at(p->w1, l * F * C), *in = (int)C, *out = (int)F; break;
    case RL_MOD_UP: *w = at(p->w3, l * F * C), *in = (int)C, *out = (int)F; break;
    default: *w = at(p->w2, l * C * F), *in = (int)F, *out = (int)C; break;
    }
    if (bias) *bias = b;
}

/* ---- model ------------------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *s);

rl_status rl_model_init(rl_model *m, const rl_model_config *cfg, rl_error *err) {
    memset(m, 0, sizeof *m);
    rl_status s = rl_model_config_check(cfg, err);
    if (s) return s;
    m->cfg = *cfg;
    if ((s = rl_params_init(&m->w, cfg, err))) return s;
    m->inv_freq = rl_xcalloc((size_t)cfg->head_dim / 2, sizeof(float));
    rl_rope_inv_freq(m->inv_freq, cfg->head_dim, &cfg->rope);
    return RL_OK;
}

void rl_model_init_random(rl_model *m, uint64_t seed, float std) {
    // transformers' _init_weights for Llama/Qwen2: normal(0, std) matrices and embeddings, zero
    // biases, RMSNorm weights 1 (Box-Muller over splitmix64)
    uint64_t s = seed ^ 0x51a7ull;
    int n = rl_params_count(&m->cfg);
    rl_tensor_ref *refs = rl_xcalloc((size_t)n, sizeof *refs);
    rl_params_list(&m->cfg, &m->w, refs);
    for (int i = 0; i < n; i++) {
        int norm = strstr(refs[i].name, "norm") != NULL, bias = strstr(refs[i].name, ".bias") != NULL;
        for (size_t k = 0; k < refs[i].n; k++) {
            if (norm || bias) {
                refs[i].data[k] = norm ? 1.0f : 0.0f;
                continue;
            }
            double u1 = ((splitmix64(&s) >> 11) + 1.0) / 9007199254740993.0, u2 = (splitmix64(&s) >> 11) / 9007199254740992.0;
            refs[i].data[k] = (float)(std * sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
        }
    }
    free(refs);
}

void rl_model_free(rl_model *m) {
    rl_params_free(&m->w);
    free(m->inv_freq);
    memset(m, 0, sizeof *m);
}

rl_status rl_model_load(rl_model *m, const char *path, rl_error *err) {
    if (rl_path_is_dir(path)) return rl_model_load_hf(m, path, err);
    if (!rl_path_exists(path)) return rl_fail(err, RL_ENOTFOUND, "model %s does not exist", path);
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    if (f) {
        if (fread(magic, 1, 4, f) != 4) memset(magic, 0, 4);
        fclose(f);
    }
    if (memcmp(magic, "GGUF", 4) == 0) return rl_model_load_gguf(m, path, err);
    return rl_model_load_llama2c(m, path, err);
}

/* ---- LoRA ------------------------------------------------------------------------------- */

void rl_lora_shapes(const rl_model_config *cfg, rl_module m, int *in, int *out) {
    rl_params dummy = {0};
    float *w;
    rl_params_linear(cfg, &dummy, 0, m, &w, NULL, in, out);
}

unsigned rl_lora_parse_targets(const char *list) {
    if (!list || !*list) return 0;
    if (strcmp(list, "all-linear") == 0) return (1u << RL_MOD_COUNT) - 1;
    unsigned mask = 0;
    const char *p = list;
    while (*p) {
        while (*p == ',' || *p == ' ') p++;
        if (!*p) break;
        size_t n = strcspn(p, ", ");
        int found = 0;
        for (int m = 0; m < RL_MOD_COUNT; m++)
            if (strlen(rl_module_names[m]) == n && strncmp(p, rl_module_names[m], n) == 0) mask |= 1u << m, found = 1;
        if (!found) return 0;
        p += n;
    }
    return mask;
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float rand_uniform(uint64_t *s) { return (float)((splitmix64(s) >> 11) * (1.0 / 9007199254740992.0)); }

rl_status rl_lora_init(rl_lora *lo, const rl_model_config *cfg, int r, float alpha, int rslora, unsigned targets,
                       uint64_t seed, int zero_init, rl_error *err) {
    memset(lo, 0, sizeof *lo);
    if (r <= 0 || r > 4096) return rl_fail(err, RL_EINVAL, "lora_r %d out of range", r);
    if (!targets) return rl_fail(err, RL_EINVAL, "lora: no target modules");
    size_t total = 0, L = (size_t)cfg->n_layers;
    for (int m = 0; m < RL_MOD_COUNT; m++) {
        if (!(targets & (1u << m))) continue;
        int in, out;
        rl_lora_shapes(cfg, m, &in, &out);
        total += L * (size_t)r * (size_t)(in + out);
    }
    lo->mem = rl_big_calloc(total, sizeof(float));
    if (!lo->mem) return rl_fail(err, RL_ENOMEM, "cannot allocate %zu LoRA parameters", total);
    lo->n = total;
    lo->r = r;
    lo->alpha = alpha;
    lo->rslora = rslora;
    lo->scale = rslora ? alpha / sqrtf((float)r) : alpha / (float)r;
    lo->targets = targets;
    float *at = lo->mem;
    uint64_t rng = seed;
    for (int m = 0; m < RL_MOD_COUNT; m++) {
        if (!(targets & (1u << m))) continue;
        int in, out;
        rl_lora_shapes(cfg, m, &in, &out);
        lo->a[m] = at;
        at += L * (size_t)r * in;
        lo->b[m] = at;
        at += L * (size_t)out * r;
        if (!zero_init) { // kaiming_uniform_(a=sqrt(5)) on (r, in): bound = 1/sqrt(in)
            float bound = 1.0f / sqrtf((float)in);
            for (size_t i = 0; i < L * (size_t)r * in; i++) lo->a[m][i] = (2.0f * rand_uniform(&rng) - 1.0f) * bound;
        }
    }
    return RL_OK;
}

void rl_lora_free(rl_lora *lo) {
    free(lo->mem);
    memset(lo, 0, sizeof *lo);
}

/* ---- the linear layer with its optional LoRA path ---------------------------------------- */

static int lora_on(const rl_model *m, rl_module mod) { return m->lora && (m->lora->targets & (1u << mod)); }

/* LoRA dropout (PEFT: dropout on the adapter's input only). The mask is a hash of
 * (seed, layer, module, row, column) (rl_dropout_rows), so backward and a resumed run
 * regenerate it exactly without storing it. */
static int dropout_on(const rl_lora *lo) { return lo->dropout_active && lo->dropout > 0.0f; }

typedef struct {
    float *xd;
    const float *x;
    uint64_t key;
    float p;
    int in;
} drop_ctx;

static void dropout_rows(void *vc, int slice, size_t lo, size_t hi) {
    drop_ctx *c = vc;
    rl_dropout_rows(c->xd + lo * c->in, c->x + lo * c->in, lo, hi - lo, c->in, c->key, c->p);
    (void)slice;
}

static void par_rows(rl_pool *pool, size_t n, void (*fn)(void *, int, size_t, size_t), void *ctx);

/* xd (N,in) = dropout(x) with the mask of (l, mod), scaled by 1/(1-p); or the mask applied to a gradient. */
static void dropout_apply(rl_pool *pool, float *xd, const float *x, const rl_lora *lo, int l, int mod, int N, int in) {
    drop_ctx c = {.xd = xd, .x = x, .key = lo->dropout_seed + ((uint64_t)(l * RL_MOD_COUNT + mod) << 40), .p = lo->dropout, .in = in};
    par_rows(pool, (size_t)N, dropout_rows, &c);
}

/* out (N,out) = inp (N,in) W^T + b [+ scale * (drop(inp) A^T) B^T, keeping t = drop(inp) A^T (N,r)].
 * xd: scratch (N,in) for the dropped input (only used while dropout is active). The adapter's
 * path is one more term of the base product (rl_sgemm_sum), so out is written once. */
static void linear_fwd(rl_model *m, int l, rl_module mod, float *out, const float *inp, float *t, float *xd, int N) {
    float *w, *b;
    int in, outd;
    rl_params_linear(&m->cfg, &m->w, l, mod, &w, &b, &in, &outd);
    if (!lora_on(m, mod)) {
        rl_matmul_forward(out, inp, w, b, N, in, outd, m->pool, m->matmul);
        return;
    }
    const rl_lora *lo = m->lora;
    int r = lo->r;
    const float *A = lo->a[mod] + (size_t)l * r * in, *B = lo->b[mod] + (size_t)l * outd * r;
    const float *x = inp;
    if (dropout_on(lo) && xd) {
        dropout_apply(m->pool, xd, inp, lo, l, mod, N, in);
        x = xd;
    }
    rl_matmul_forward(t, x, A, NULL, N, in, r, m->pool, RL_GEMM_AUTO); // thin: float32 always
    if (N == 1) { // decoding: matrix-vector products
        rl_matmul_forward(out, inp, w, b, N, in, outd, NULL, RL_GEMM_AUTO);
        rl_matmul_forward_add(out, t, B, lo->scale, N, r, outd, NULL, RL_GEMM_AUTO);
        return;
    }
    if (b)
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * outd, b, (size_t)outd * sizeof(float));
    rl_gemm_term terms[2] = {{.tb = 1, .K = in, .alpha = 1.0f, .A = inp, .lda = in, .B = w, .ldb = in},
                             {.tb = 1, .K = r, .alpha = lo->scale, .A = t, .lda = r, .B = B, .ldb = r}};
    rl_sgemm_sum(m->matmul, 2, terms, N, outd, b ? 1.0f : 0.0f, out, outd, m->pool);
}

/* Base gradients into g (may be NULL), LoRA gradients into lg (may be NULL); the input gradient
 * dinp (N,in) += dout W [+ dt A] is not computed here but appended to terms (room for 2; *nt
 * counts them) so that the caller sums the products of the modules that share an input in one
 * pass (rl_sgemm_sum); with LoRA dropout the adapter's share is added to dinp here.
 * dt: scratch (N,r) that must live until the caller's sum; xd: scratch (N,in). */
static void linear_bwd(rl_model *m, int l, rl_module mod, float *dinp, rl_params *g, rl_lora *lg, const float *dout,
                       const float *inp, const float *t, float *dt, float *xd, int N, rl_gemm_term *terms, int *nt,
                       float dw_beta) {
    float *w, *b, *dw = NULL, *db = NULL;
    int in, outd;
    rl_params_linear(&m->cfg, &m->w, l, mod, &w, &b, &in, &outd);
    if (g) rl_params_linear(&m->cfg, g, l, mod, &dw, &db, &in, &outd);
    rl_matmul_backward_scaled(NULL, dw, dout, inp, w, 1.0f, dw_beta, N, in, outd, m->pool, m->matmul);
    if (b && db) rl_matmul_backward(NULL, NULL, db, dout, inp, w, N, in, outd, m->pool, m->matmul); // adds (zeroed when overwriting)
    terms[(*nt)++] = (rl_gemm_term){.K = outd, .alpha = 1.0f, .A = dout, .lda = outd, .B = w, .ldb = in};
    if (lora_on(m, mod)) {
        const rl_lora *lo = m->lora;
        int r = lo->r;
        const float *A = lo->a[mod] + (size_t)l * r * in, *B = lo->b[mod] + (size_t)l * outd * r;
        float *dA = lg ? lg->a[mod] + (size_t)l * r * in : NULL, *dB = lg ? lg->b[mod] + (size_t)l * outd * r : NULL;
        // out += s * t B^T: dB += s dout^T t, dt = s dout B
        memset(dt, 0, (size_t)N * r * sizeof(float));
        rl_matmul_backward_scaled(dt, dB, dout, t, B, lo->scale, 1.0f, N, r, outd, m->pool, RL_GEMM_AUTO);
        if (dropout_on(lo) && xd) {
            // t = drop(inp) A^T: dA += dt^T drop(inp); dinp += drop'(dt A)
            dropout_apply(m->pool, xd, inp, lo, l, mod, N, in);
            rl_matmul_backward(NULL, dA, NULL, dt, xd, A, N, in, r, m->pool, RL_GEMM_AUTO);
            rl_sgemm_impl(RL_GEMM_AUTO, 0, 0, N, in, r, 1.0f, dt, r, A, in, 0.0f, xd, in, m->pool); // xd = dt A
            dropout_apply(m->pool, xd, xd, lo, l, mod, N, in);
            rl_axpy(dinp, 1.0f, xd, (size_t)N * in);
        } else {
            // t = inp A^T: dA += dt^T inp, dinp += dt A
            rl_matmul_backward(NULL, dA, NULL, dt, inp, A, N, in, r, m->pool, RL_GEMM_AUTO);
            terms[(*nt)++] = (rl_gemm_term){.K = r, .alpha = 1.0f, .A = dt, .lda = r, .B = A, .ldb = in};
        }
    }
}

/* ---- activations ------------------------------------------------------------------------ */

rl_status rl_acts_init(rl_acts *a, const rl_model *m, int B, int T, rl_error *err) {
    return rl_acts_init_ex(a, m, B, T, 0, err);
}

rl_status rl_acts_init_ex(rl_acts *a, const rl_model *m, int B, int T, int flags, rl_error *err) {
    int checkpointing = (flags & RL_ACTS_CHECKPOINT) != 0, chunked = (flags & RL_ACTS_CHUNKED_LOGITS) != 0;
    int recompute = (flags & RL_ACTS_LOGITS_RECOMPUTE) != 0;
    memset(a, 0, sizeof *a);
    const rl_model_config *c = &m->cfg;
    if (B <= 0 || T <= 0) return rl_fail(err, RL_EINVAL, "batch %dx%d must be positive", B, T);
    size_t N = (size_t)B * T, C = (size_t)c->dim, F = (size_t)c->hidden_dim, L = (size_t)c->n_layers;
    size_t V = (size_t)c->vocab_size, NH = (size_t)c->n_heads;
    size_t QD = NH * c->head_dim, KD = (size_t)c->n_kv_heads * c->head_dim;
    size_t r = m->lora ? (size_t)m->lora->r : 0;
    size_t maxd = C > F ? C : F;
    maxd = maxd > QD ? maxd : QD;
    int keep = chunked && !recompute && N * V <= RL_DLOGITS_KEEP;
    size_t LR = L; // layers whose inner activations are kept: 1 with checkpointing (recomputed)
    if (checkpointing) L = 1;
    size_t sizes[] = {
        (LR + 1) * N * C, L * N * C, L * N, L * N * QD, L * N * KD, L * N * KD, L * B * NH * T, L * N * QD,
        L * N * C, L * N * C, L * N, L * N * F, L * N * F, L * N * F, N * C, N,
        (chunked && !keep && N > RL_LOGITS_CHUNK ? RL_LOGITS_CHUNK : N) * V, N,
        L * RL_MOD_COUNT * N * r,
        N * C, N * maxd, N * QD, N * KD, N * KD, N * QD, N * F, N * F, N * F, 3 * N * r, rl_attention_scratch_floats(B, T, (int)NH, c->n_kv_heads, c->head_dim), r ? N * maxd : 0,
        N * (size_t)c->head_dim, RL_PAR_SLICES * C,
    };
    float **slots[] = {&a->res, &a->ln1, &a->ln1_rstd, &a->q, &a->k, &a->v, &a->lse, &a->atty, &a->res2, &a->ln2,
                       &a->ln2_rstd, &a->g, &a->u, &a->h, &a->lnf, &a->lnf_rstd, &a->logits, &a->losses,
                       &a->lora_t, &a->dres, &a->dln, &a->dq, &a->dk, &a->dv, &a->datty, &a->dg, &a->du, &a->dh,
                       &a->dlora, &a->attn_scratch, &a->lora_x, &a->rope_cs, &a->rms_dw};
    size_t n_slots = sizeof sizes / sizeof sizes[0], total = 0;
    for (size_t i = 0; i < n_slots; i++) total += sizes[i];
    a->mem = rl_big_alloc(total * sizeof(float));
    int *ints = malloc(4 * N * sizeof(int));
    if (!a->mem || !ints) {
        free(a->mem);
        free(ints);
        a->mem = NULL;
        return rl_fail(err, RL_ENOMEM, "cannot allocate %.1f MB of activations for a %dx%d batch",
                       (double)total * 4 / 1e6, B, T);
    }
    a->n = total;
    float *at = a->mem;
    for (size_t i = 0; i < n_slots; i++) {
        *slots[i] = sizes[i] ? at : NULL;
        at += sizes[i];
    }
    a->tokens = ints;
    a->targets = ints + N;
    a->pos = ints + 2 * N;
    a->seg = ints + 3 * N;
    a->B = B;
    a->T = T;
    a->checkpointing = checkpointing;
    a->chunked_logits = chunked;
    a->dlogits_kept = keep;
    return RL_OK;
}

void rl_acts_free(rl_acts *a) {
    free(a->mem);
    free(a->tokens);
    memset(a, 0, sizeof *a);
}

/* ---- row kernels over the pool ----------------------------------------------------------- */

/* The kernels are pure functions over rows; these spread fixed slices of rows over the pool
 * (fixed slices: the result does not depend on the number of threads). */
#define PAR_SLICES RL_PAR_SLICES

typedef struct {
    float *losses, *dlogits, *out, *dg, *du;
    const float *logits, *g, *u, *dout;
    const int *targets;
    size_t n;  /* rows (xent) or elements (swiglu) */
    int V;
    float dscale;
    double sums[PAR_SLICES];
} par_ctx;

static void slice_of(size_t n, size_t i, size_t *lo, size_t *hi) {
    *lo = n * i / PAR_SLICES;
    *hi = n * (i + 1) / PAR_SLICES;
}

static void par_xent_item(void *vc, size_t i, int thread) {
    par_ctx *c = vc;
    size_t lo, hi;
    slice_of(c->n, i, &lo, &hi);
    c->sums[i] = hi > lo ? rl_xent_forward_backward(c->losses ? c->losses + lo : NULL, c->dlogits ? c->dlogits + lo * c->V : NULL,
                                                    c->logits + lo * c->V, c->targets + lo, (int)(hi - lo), c->V, c->dscale)
                         : 0.0;
    (void)thread;
}

static double par_xent(rl_pool *pool, float *losses, float *dlogits, const float *logits, const int *targets, int N, int V,
                       float dscale) {
    if (!pool || N < PAR_SLICES) return rl_xent_forward_backward(losses, dlogits, logits, targets, N, V, dscale);
    par_ctx c = {.losses = losses, .dlogits = dlogits, .logits = logits, .targets = targets, .n = (size_t)N, .V = V, .dscale = dscale};
    rl_pool_for(pool, PAR_SLICES, par_xent_item, &c);
    double sum = 0;
    for (int i = 0; i < PAR_SLICES; i++) sum += c.sums[i];
    return sum;
}

static void par_swiglu_fwd_item(void *vc, size_t i, int thread) {
    par_ctx *c = vc;
    size_t lo, hi;
    slice_of(c->n, i, &lo, &hi);
    rl_swiglu_forward(c->out + lo, c->g + lo, c->u + lo, hi - lo);
    (void)thread;
}

static void par_swiglu_bwd_item(void *vc, size_t i, int thread) {
    par_ctx *c = vc;
    size_t lo, hi;
    slice_of(c->n, i, &lo, &hi);
    rl_swiglu_backward(c->dg + lo, c->du + lo, c->dout + lo, c->g + lo, c->u + lo, hi - lo);
    (void)thread;
}

static void par_swiglu_forward(rl_pool *pool, float *out, const float *g, const float *u, size_t NF) {
    if (!pool) {
        rl_swiglu_forward(out, g, u, NF);
        return;
    }
    par_ctx c = {.out = out, .g = g, .u = u, .n = NF};
    rl_pool_for(pool, PAR_SLICES, par_swiglu_fwd_item, &c);
}

static void par_swiglu_backward(rl_pool *pool, float *dg, float *du, const float *dout, const float *g, const float *u,
                                size_t NF) {
    if (!pool) {
        rl_swiglu_backward(dg, du, dout, g, u, NF);
        return;
    }
    par_ctx c = {.dg = dg, .du = du, .dout = dout, .g = g, .u = u, .n = NF};
    rl_pool_for(pool, PAR_SLICES, par_swiglu_bwd_item, &c);
}

/* Row kernels over fixed slices: fn(ctx, slice, lo, hi) for the rows [lo, hi) of each slice. */
typedef struct {
    void (*fn)(void *ctx, int slice, size_t lo, size_t hi);
    void *ctx;
    size_t n;
} rows_job;

static void rows_item(void *vc, size_t i, int thread) {
    rows_job *j = vc;
    size_t lo, hi;
    slice_of(j->n, i, &lo, &hi);
    if (hi > lo) j->fn(j->ctx, (int)i, lo, hi);
    (void)thread;
}

static void par_rows(rl_pool *pool, size_t n, void (*fn)(void *, int, size_t, size_t), void *ctx) {
    rows_job j = {.fn = fn, .ctx = ctx, .n = n};
    rl_pool_for(pool, PAR_SLICES, rows_item, &j);
}

typedef struct {
    float *out, *rstd, *dw_part;
    const float *inp, *w, *dout, *x; /* x: rstd for the RMSNorm backward */
    int C, NH, HD, backward;
    float eps, alpha;
} elem_ctx;

static void rmsnorm_fwd_rows(void *vc, int slice, size_t lo, size_t hi) {
    elem_ctx *c = vc;
    rl_rmsnorm_forward(c->out + lo * c->C, c->rstd + lo, c->inp + lo * c->C, c->w, (int)(hi - lo), c->C, c->eps);
    (void)slice;
}

static void par_rmsnorm_forward(rl_pool *pool, float *out, float *rstd, const float *inp, const float *w, int N, int C, float eps) {
    elem_ctx c = {.out = out, .rstd = rstd, .inp = inp, .w = w, .C = C, .eps = eps};
    par_rows(pool, (size_t)N, rmsnorm_fwd_rows, &c);
}

static void rmsnorm_bwd_rows(void *vc, int slice, size_t lo, size_t hi) {
    elem_ctx *c = vc;
    float *dw = c->dw_part ? c->dw_part + (size_t)slice * c->C : NULL;
    if (dw) memset(dw, 0, (size_t)c->C * sizeof(float));
    rl_rmsnorm_backward(c->out + lo * c->C, dw, c->dout + lo * c->C, c->inp + lo * c->C, c->w, c->x + lo, (int)(hi - lo), c->C);
}

/* dinp += ..., dw += the sum of per-slice parts in slice order (the same bits for any number
 * of threads); part: RL_PAR_SLICES * C floats of scratch. */
static void par_rmsnorm_backward(rl_pool *pool, float *dinp, float *dw, float *part, const float *dout, const float *inp,
                                 const float *w, const float *rstd, int N, int C) {
    elem_ctx c = {.out = dinp, .dw_part = dw ? part : NULL, .dout = dout, .inp = inp, .w = w, .x = rstd, .C = C};
    par_rows(pool, (size_t)N, rmsnorm_bwd_rows, &c);
    if (!dw) return;
    for (int sl = 0; sl < PAR_SLICES; sl++) {
        size_t lo, hi;
        slice_of((size_t)N, (size_t)sl, &lo, &hi);
        if (hi > lo) rl_axpy(dw, 1.0f, part + (size_t)sl * C, (size_t)C);
    }
}

static void rope_rows(void *vc, int slice, size_t lo, size_t hi) {
    elem_ctx *c = vc;
    rl_rope_apply(c->out + lo * c->NH * c->HD, c->inp + lo * c->HD, (int)(hi - lo), c->NH, c->HD, c->backward);
    (void)slice;
}

static void par_rope(rl_pool *pool, float *x, const float *cs, int N, int NH, int HD, int backward) {
    elem_ctx c = {.out = x, .inp = cs, .NH = NH, .HD = HD, .backward = backward};
    par_rows(pool, (size_t)N, rope_rows, &c);
}

static void axpy_rows(void *vc, int slice, size_t lo, size_t hi) {
    elem_ctx *c = vc;
    rl_axpy(c->out + lo, c->alpha, c->x + lo, hi - lo);
    (void)slice;
}

/* y (n) += alpha x (n) over the pool */
static void par_axpy(rl_pool *pool, float *y, float alpha, const float *x, size_t n) {
    elem_ctx c = {.out = y, .x = x, .alpha = alpha};
    par_rows(pool, n, axpy_rows, &c);
}

/* ---- forward ---------------------------------------------------------------------------- */

/* Pointers to layer l's activations (with checkpointing every layer shares slot 0). */
typedef struct {
    float *res, *res_next, *ln1, *ln1_rstd, *q, *k, *v, *lse, *atty, *res2, *ln2, *ln2_rstd, *g, *u, *h, *lt;
} layer_acts;

static layer_acts layer_ptrs(const rl_model *m, const rl_acts *a, int l) {
    const rl_model_config *c = &m->cfg;
    size_t NC = (size_t)a->B * a->T, C = (size_t)c->dim, F = (size_t)c->hidden_dim;
    size_t QD = (size_t)c->n_heads * c->head_dim, KD = (size_t)c->n_kv_heads * c->head_dim;
    size_t r = m->lora ? (size_t)m->lora->r : 0, lse_stride = (size_t)a->B * c->n_heads * a->T;
    size_t s = a->checkpointing ? 0 : (size_t)l;
    layer_acts p = {
        .res = a->res + l * NC * C, .res_next = a->res + (l + 1) * NC * C, .ln1 = a->ln1 + s * NC * C,
        .ln1_rstd = a->ln1_rstd + s * NC, .q = a->q + s * NC * QD, .k = a->k + s * NC * KD, .v = a->v + s * NC * KD,
        .lse = a->lse + s * lse_stride, .atty = a->atty + s * NC * QD, .res2 = a->res2 + s * NC * C,
        .ln2 = a->ln2 + s * NC * C, .ln2_rstd = a->ln2_rstd + s * NC, .g = a->g + s * NC * F, .u = a->u + s * NC * F,
        .h = a->h + s * NC * F, .lt = a->lora_t ? a->lora_t + s * RL_MOD_COUNT * NC * r : NULL,
    };
    return p;
}

#define LT(p, mod) ((p).lt ? (p).lt + (size_t)(mod) * (size_t)a->B * a->T * (size_t)(m->lora ? m->lora->r : 0) : NULL)

/* One block: res_next = res2 + mlp(rmsnorm(res2)), res2 = res + attention(rmsnorm(res)). */
static void layer_forward(rl_model *m, rl_acts *a, int l, int B, int T, const int *sg) {
    const rl_model_config *c = &m->cfg;
    int N = B * T, C = c->dim, F = c->hidden_dim, NH = c->n_heads, NKV = c->n_kv_heads, HD = c->head_dim;
    layer_acts p = layer_ptrs(m, a, l);
    par_rmsnorm_forward(m->pool, p.ln1, p.ln1_rstd, p.res, m->w.rms_att + (size_t)l * C, N, C, c->norm_eps);
    linear_fwd(m, l, RL_MOD_Q, p.q, p.ln1, LT(p, RL_MOD_Q), a->lora_x, N);
    linear_fwd(m, l, RL_MOD_K, p.k, p.ln1, LT(p, RL_MOD_K), a->lora_x, N);
    linear_fwd(m, l, RL_MOD_V, p.v, p.ln1, LT(p, RL_MOD_V), a->lora_x, N);
    par_rope(m->pool, p.q, a->rope_cs, N, NH, HD, 0);
    par_rope(m->pool, p.k, a->rope_cs, N, NKV, HD, 0);
    rl_attention_forward(p.atty, p.lse, a->attn_scratch, p.q, p.k, p.v, sg, B, T, NH, NKV, HD, m->pool);
    linear_fwd(m, l, RL_MOD_O, p.res2, p.atty, LT(p, RL_MOD_O), a->lora_x, N);
    par_axpy(m->pool, p.res2, 1.0f, p.res, (size_t)N * C);
    par_rmsnorm_forward(m->pool, p.ln2, p.ln2_rstd, p.res2, m->w.rms_ffn + (size_t)l * C, N, C, c->norm_eps);
    linear_fwd(m, l, RL_MOD_GATE, p.g, p.ln2, LT(p, RL_MOD_GATE), a->lora_x, N);
    linear_fwd(m, l, RL_MOD_UP, p.u, p.ln2, LT(p, RL_MOD_UP), a->lora_x, N);
    par_swiglu_forward(m->pool, p.h, p.g, p.u, (size_t)N * F);
    linear_fwd(m, l, RL_MOD_DOWN, p.res_next, p.h, LT(p, RL_MOD_DOWN), a->lora_x, N);
    par_axpy(m->pool, p.res_next, 1.0f, p.res2, (size_t)N * C);
}

rl_status rl_model_forward(rl_model *m, rl_acts *a, const int *tokens, const int *targets, const int *pos,
                           const int *seg, int B, int T, float *loss, rl_error *err) {
    const rl_model_config *c = &m->cfg;
    if (B <= 0 || T <= 0 || B > a->B || T > a->T)
        return rl_fail(err, RL_EINVAL, "batch %dx%d does not fit the activations (%dx%d)", B, T, a->B, a->T);
    if (m->lora && !a->lora_t)
        return rl_fail(err, RL_EINVAL, "activations were allocated without LoRA; allocate them after attaching it");
    int N = B * T, C = c->dim, V = c->vocab_size;
    for (int i = 0; i < N; i++) {
        if (tokens[i] < 0 || tokens[i] >= V)
            return rl_fail(err, RL_EINVAL, "token %d at index %d is outside the vocabulary (%d)", tokens[i], i, V);
        if (targets && targets[i] >= V)
            return rl_fail(err, RL_EINVAL, "target %d at index %d is outside the vocabulary (%d)", targets[i], i, V);
        if (pos && pos[i] < 0) return rl_fail(err, RL_EINVAL, "negative position %d at index %d", pos[i], i);
    }
    a->b = B;
    a->t = T;
    memcpy(a->tokens, tokens, (size_t)N * sizeof(int));
    for (int i = 0; i < N; i++) {
        a->targets[i] = targets ? targets[i] : -100;
        a->pos[i] = pos ? pos[i] : i % T;
        a->seg[i] = seg ? seg[i] : 0;
    }
    a->has_seg = seg != NULL;
    rl_rope_table(a->rope_cs, a->pos, m->inv_freq, N, c->head_dim); // once for every layer, forward and backward
    rl_embedding_forward(a->res, a->tokens, m->w.wte, N, C);
    for (int l = 0; l < c->n_layers; l++) layer_forward(m, a, l, B, T, seg ? a->seg : NULL);
    float *res_final = a->res + (size_t)c->n_layers * a->B * a->T * C;
    par_rmsnorm_forward(m->pool, a->lnf, a->lnf_rstd, res_final, m->w.rms_final, N, C, c->norm_eps);
    a->n_valid = 0;
    for (int i = 0; i < N; i++) a->n_valid += a->targets[i] >= 0;
    double sum = 0;
    int chunk = a->chunked_logits ? RL_LOGITS_CHUNK : N;
    for (int r0 = 0; r0 < N; r0 += chunk) {
        int nr = r0 + chunk < N ? chunk : N - r0;
        float *lg = a->chunked_logits && !a->dlogits_kept ? a->logits : a->logits + (size_t)r0 * V;
        rl_matmul_forward(lg, a->lnf + (size_t)r0 * C, m->w.lm_head, NULL, nr, C, V, m->pool, m->matmul);
        // kept: dlogits unscaled (dscale is backward's), in place, while the rows are in cache
        sum += par_xent(m->pool, a->losses + r0, a->dlogits_kept ? lg : NULL, lg, a->targets + r0, nr, V,
                        a->dlogits_kept ? 1.0f : 0.0f);
    }
    if (loss) *loss = a->n_valid ? (float)(sum / a->n_valid) : 0.0f;
    return RL_OK;
}

/* ---- backward --------------------------------------------------------------------------- */

static void layer_backward(rl_model *m, rl_acts *a, int l, rl_params *gr, rl_lora *lg, float dw_beta) {
    const rl_model_config *c = &m->cfg;
    int B = a->b, T = a->t, N = B * T, C = c->dim, F = c->hidden_dim, NH = c->n_heads, NKV = c->n_kv_heads,
        HD = c->head_dim, QD = NH * HD;
    const int *sg = a->has_seg ? a->seg : NULL;
    layer_acts p = layer_ptrs(m, a, l);
    // MLP: res_next = res2 + down(silu(gate(ln2)) * up(ln2))
    size_t r = m->lora ? (size_t)m->lora->r : 0;
    float *dt0 = a->dlora, *dt1 = a->dlora + (size_t)N * r, *dt2 = a->dlora + 2 * (size_t)N * r;
    rl_gemm_term terms[6];
    int nt = 0;
    // input gradients: the products' sum writes them (beta 0), unless LoRA dropout added its part first
    int pre = m->lora && dropout_on(m->lora);
    float beta = pre ? 1.0f : 0.0f;
    if (pre) memset(a->dh, 0, (size_t)N * F * sizeof(float));
    linear_bwd(m, l, RL_MOD_DOWN, a->dh, gr, lg, a->dres, p.h, LT(p, RL_MOD_DOWN), dt0, a->lora_x, N, terms, &nt, dw_beta);
    rl_sgemm_sum(m->matmul, nt, terms, N, F, beta, a->dh, F, m->pool);
    par_swiglu_backward(m->pool, a->dg, a->du, a->dh, p.g, p.u, (size_t)N * F);
    if (pre) memset(a->dln, 0, (size_t)N * C * sizeof(float));
    nt = 0;
    linear_bwd(m, l, RL_MOD_GATE, a->dln, gr, lg, a->dg, p.ln2, LT(p, RL_MOD_GATE), dt0, a->lora_x, N, terms, &nt, dw_beta);
    linear_bwd(m, l, RL_MOD_UP, a->dln, gr, lg, a->du, p.ln2, LT(p, RL_MOD_UP), dt1, a->lora_x, N, terms, &nt, dw_beta);
    rl_sgemm_sum(m->matmul, nt, terms, N, C, beta, a->dln, C, m->pool); // both input gradients in one pass
    par_rmsnorm_backward(m->pool, a->dres, gr ? gr->rms_ffn + (size_t)l * C : NULL, a->rms_dw, a->dln, p.res2,
                         m->w.rms_ffn + (size_t)l * C, p.ln2_rstd, N, C);
    // attention: res2 = res + o(attention(rope(q(ln1)), rope(k(ln1)), v(ln1)))
    if (pre) memset(a->datty, 0, (size_t)N * QD * sizeof(float));
    nt = 0;
    linear_bwd(m, l, RL_MOD_O, a->datty, gr, lg, a->dres, p.atty, LT(p, RL_MOD_O), dt0, a->lora_x, N, terms, &nt, dw_beta);
    rl_sgemm_sum(m->matmul, nt, terms, N, QD, beta, a->datty, QD, m->pool);
    rl_attention_backward(a->dq, a->dk, a->dv, a->attn_scratch, a->datty, p.atty, p.lse, p.q, p.k, p.v, sg, B, T, NH, NKV, HD,
                          m->pool);
    par_rope(m->pool, a->dq, a->rope_cs, N, NH, HD, 1);
    par_rope(m->pool, a->dk, a->rope_cs, N, NKV, HD, 1);
    if (pre) memset(a->dln, 0, (size_t)N * C * sizeof(float));
    nt = 0;
    linear_bwd(m, l, RL_MOD_Q, a->dln, gr, lg, a->dq, p.ln1, LT(p, RL_MOD_Q), dt0, a->lora_x, N, terms, &nt, dw_beta);
    linear_bwd(m, l, RL_MOD_K, a->dln, gr, lg, a->dk, p.ln1, LT(p, RL_MOD_K), dt1, a->lora_x, N, terms, &nt, dw_beta);
    linear_bwd(m, l, RL_MOD_V, a->dln, gr, lg, a->dv, p.ln1, LT(p, RL_MOD_V), dt2, a->lora_x, N, terms, &nt, dw_beta);
    rl_sgemm_sum(m->matmul, nt, terms, N, C, beta, a->dln, C, m->pool); // q, k, v (and adapters) in one pass
    par_rmsnorm_backward(m->pool, a->dres, gr ? gr->rms_att + (size_t)l * C : NULL, a->rms_dw, a->dln, p.res,
                         m->w.rms_att + (size_t)l * C, p.ln1_rstd, N, C);
}

void rl_model_backward(rl_model *m, rl_acts *a, rl_params *gr, rl_lora *lg, float dscale) {
    rl_model_backward_ex(m, a, gr, lg, dscale, 0);
}

/* Overwriting: the weight-gradient products (every 2-D tensor but an untied wte) write with
 * beta 0; the rest (norm weights, biases, the embedding rows' scatter-add) is small or
 * scattered, so it is zeroed first and added to as before. */
static void zero_unwritten_grads(const rl_model *m, rl_params *gr) {
    int n = rl_params_count(&m->cfg);
    rl_tensor_ref *refs = rl_xcalloc((size_t)n, sizeof *refs);
    rl_params_list(&m->cfg, gr, refs);
    for (int i = 0; i < n; i++)
        if (refs[i].ndim != 2 || (refs[i].data == gr->wte && !m->cfg.tie_embeddings))
            memset(refs[i].data, 0, refs[i].n * sizeof(float));
    free(refs);
}

void rl_model_backward_ex(rl_model *m, rl_acts *a, rl_params *gr, rl_lora *lg, float dscale, int flags) {
    const rl_model_config *c = &m->cfg;
    int N = a->b * a->t, C = c->dim, V = c->vocab_size;
    float dw_beta = gr && (flags & RL_BWD_OVERWRITE) ? 0.0f : 1.0f;
    if (dw_beta == 0.0f) zero_unwritten_grads(m, gr);
    // loss -> logits -> final norm (dlogits overwrite the logits)
    memset(a->dln, 0, (size_t)N * C * sizeof(float));
    int chunk = a->chunked_logits ? RL_LOGITS_CHUNK : N;
    if (a->dlogits_kept) // forward left softmax - onehot: the products over all rows at once
        rl_matmul_backward_scaled(a->dln, gr ? gr->lm_head : NULL, a->logits, a->lnf, m->w.lm_head, dscale, dw_beta, N, C, V,
                                  m->pool, m->matmul);
    else
        for (int r0 = 0; r0 < N; r0 += chunk) {
            int nr = r0 + chunk < N ? chunk : N - r0;
            float *lg = a->chunked_logits ? a->logits : a->logits + (size_t)r0 * V;
            if (a->chunked_logits) rl_matmul_forward(lg, a->lnf + (size_t)r0 * C, m->w.lm_head, NULL, nr, C, V, m->pool, m->matmul); // recompute
            par_xent(m->pool, NULL, lg, lg, a->targets + r0, nr, V, dscale);
            rl_matmul_backward_scaled(a->dln + (size_t)r0 * C, gr ? gr->lm_head : NULL, lg, a->lnf + (size_t)r0 * C, m->w.lm_head,
                                      1.0f, r0 == 0 ? dw_beta : 1.0f, nr, C, V, m->pool, m->matmul);
        }
    memset(a->dres, 0, (size_t)N * C * sizeof(float));
    par_rmsnorm_backward(m->pool, a->dres, gr ? gr->rms_final : NULL, a->rms_dw, a->dln,
                         a->res + (size_t)c->n_layers * a->B * a->T * C, m->w.rms_final, a->lnf_rstd, N, C);
    for (int l = c->n_layers - 1; l >= 0; l--) {
        if (a->checkpointing) layer_forward(m, a, l, a->b, a->t, a->has_seg ? a->seg : NULL); // recompute
        layer_backward(m, a, l, gr, lg, dw_beta);
    }
    if (gr) rl_embedding_backward(gr->wte, a->dres, a->tokens, N, C);
}

#undef LT

/* ---- generation ------------------------------------------------------------------------- */

rl_status rl_kv_init(rl_kv *kv, const rl_model *m, int max_T, rl_error *err) {
    memset(kv, 0, sizeof *kv);
    const rl_model_config *c = &m->cfg;
    if (max_T <= 0) return rl_fail(err, RL_EINVAL, "KV cache length %d must be positive", max_T);
    size_t L = (size_t)c->n_layers, C = (size_t)c->dim, F = (size_t)c->hidden_dim;
    size_t QD = (size_t)c->n_heads * c->head_dim, KD = (size_t)c->n_kv_heads * c->head_dim;
    size_t r = m->lora ? (size_t)m->lora->r : 0, big = C > QD ? C : QD;
    size_t sizes[] = {L * max_T * KD, L * max_T * KD, C, big, big + r, QD, F, F, (size_t)c->n_heads * max_T,
                      (size_t)c->vocab_size};
    float **slots[] = {&kv->k, &kv->v, &kv->x, &kv->xb, &kv->xb2, &kv->q, &kv->hb, &kv->hb2, &kv->att, &kv->logits};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) total += sizes[i];
    total += r; // LoRA t
    kv->mem = calloc(total, sizeof(float));
    if (!kv->mem) return rl_fail(err, RL_ENOMEM, "cannot allocate a KV cache of %d positions", max_T);
    kv->n = total;
    float *at = kv->mem;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        *slots[i] = at;
        at += sizes[i];
    }
    kv->max_T = max_T;
    return RL_OK;
}

void rl_kv_free(rl_kv *kv) {
    free(kv->mem);
    memset(kv, 0, sizeof *kv);
}

rl_status rl_model_decode(rl_model *m, rl_kv *kv, int token, int pos, float **logits, rl_error *err) {
    const rl_model_config *c = &m->cfg;
    if (token < 0 || token >= c->vocab_size)
        return rl_fail(err, RL_EINVAL, "token %d is outside the vocabulary (%d)", token, c->vocab_size);
    if (pos < 0 || pos >= kv->max_T) return rl_fail(err, RL_EINVAL, "position %d is outside the KV cache (%d)", pos, kv->max_T);
    int C = c->dim, F = c->hidden_dim, NH = c->n_heads, NKV = c->n_kv_heads, HD = c->head_dim;
    int KD = NKV * HD;
    float *t = kv->logits + c->vocab_size; // LoRA scratch (r) after the logits
    float scale = 1.0f / sqrtf((float)HD);
    memcpy(kv->x, m->w.wte + (size_t)token * C, (size_t)C * sizeof(float));
    for (int l = 0; l < c->n_layers; l++) {
        float *kc = kv->k + (size_t)l * kv->max_T * KD, *vc = kv->v + (size_t)l * kv->max_T * KD;
        rl_rmsnorm_forward(kv->xb, NULL, kv->x, m->w.rms_att + (size_t)l * C, 1, C, c->norm_eps);
        linear_fwd(m, l, RL_MOD_Q, kv->q, kv->xb, t, NULL, 1);
        linear_fwd(m, l, RL_MOD_K, kc + (size_t)pos * KD, kv->xb, t, NULL, 1);
        linear_fwd(m, l, RL_MOD_V, vc + (size_t)pos * KD, kv->xb, t, NULL, 1);
        rl_rope_forward(kv->q, &pos, m->inv_freq, 1, NH, HD);
        rl_rope_forward(kc + (size_t)pos * KD, &pos, m->inv_freq, 1, NKV, HD);
        rl_attention_decode(kv->xb2, kv->att, kv->max_T, kv->q, kc, vc, pos + 1, NH, NKV, HD, scale);
        linear_fwd(m, l, RL_MOD_O, kv->xb, kv->xb2, t, NULL, 1);
        rl_axpy(kv->x, 1.0f, kv->xb, (size_t)C);
        rl_rmsnorm_forward(kv->xb, NULL, kv->x, m->w.rms_ffn + (size_t)l * C, 1, C, c->norm_eps);
        linear_fwd(m, l, RL_MOD_GATE, kv->hb, kv->xb, t, NULL, 1);
        linear_fwd(m, l, RL_MOD_UP, kv->hb2, kv->xb, t, NULL, 1);
        rl_swiglu_forward(kv->hb, kv->hb, kv->hb2, (size_t)F);
        linear_fwd(m, l, RL_MOD_DOWN, kv->xb, kv->hb, t, NULL, 1);
        rl_axpy(kv->x, 1.0f, kv->xb, (size_t)C);
    }
    rl_rmsnorm_forward(kv->x, NULL, kv->x, m->w.rms_final, 1, C, c->norm_eps);
    rl_matmul_forward(kv->logits, kv->x, m->w.lm_head, NULL, 1, C, c->vocab_size, NULL, RL_GEMM_AUTO);
    *logits = kv->logits;
    return RL_OK;
}

