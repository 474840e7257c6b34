/* bert.c - BERT-family sentence encoders: loading (Hugging Face folders as sentence-transformers
 * publishes them, llama.cpp's "bert" GGUF), the batched forward with a padding mask, pooling.
 *
 * The forward (as transformers' BertModel, eval mode):
 *   x = LayerNorm(wte[tok] + wpe[t] + wtt[type])
 *   per layer: a = softmax(q k^T / sqrt(HD) over the row's real tokens) v
 *              x = LayerNorm(x + a Wo^T + bo);  x = LayerNorm(x + gelu(x Wup^T + bup) Wdown^T + bdown)
 * Pooling and normalisation come from the sentence-transformers modules beside the weights
 * (modules.json, 1_Pooling/config.json), because the same weights pool differently per model
 * (MiniLM and e5 mean, bge CLS).
 *
 * Not handled: RoBERTa / XLM-R (positions offset by the pad id), relative or rotary positions
 * (nomic, jina), pooling modes other than CLS and mean, quantized GGUF types beyond what
 * rl_ggml_dequant reads. The pooler (dense + tanh on CLS) is not used by sentence embeddings
 * and is ignored. */
#include "model/model.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/gguf.h"
#include "model/safetensors.h"

/* ---- parameters ------------------------------------------------------------------------- */

typedef struct bert_ref {
    char hf[96];   /* transformers' name without the "bert." prefix */
    char gguf[64]; /* llama.cpp's name */
    float *data;
    int ndim;
    int64_t shape[2]; /* (rows, cols) as in PyTorch */
} bert_ref;

#define BERT_MAX_PER_LAYER 16
static int bert_ref_count(const rl_bert_config *c) { return 5 + BERT_MAX_PER_LAYER * c->n_layers; }

static void ref_set(bert_ref *r, const char *hf, const char *gguf, float *data, int64_t rows, int64_t cols) {
    snprintf(r->hf, sizeof r->hf, "%s", hf);
    snprintf(r->gguf, sizeof r->gguf, "%s", gguf);
    r->data = data;
    r->ndim = cols ? 2 : 1;
    r->shape[0] = rows;
    r->shape[1] = cols;
}

static int bert_refs(const rl_bert *m, bert_ref *r) {
    const rl_bert_config *c = &m->cfg;
    int64_t C = c->dim, F = c->hidden_dim;
    int n = 0;
    ref_set(&r[n++], "embeddings.word_embeddings.weight", "token_embd.weight", m->wte, c->vocab_size, C);
    ref_set(&r[n++], "embeddings.position_embeddings.weight", "position_embd.weight", m->wpe, c->max_pos, C);
    ref_set(&r[n++], "embeddings.token_type_embeddings.weight", "token_types.weight", m->wtt, c->n_types, C);
    ref_set(&r[n++], "embeddings.LayerNorm.weight", "token_embd_norm.weight", m->ln_emb_w, C, 0);
    ref_set(&r[n++], "embeddings.LayerNorm.bias", "token_embd_norm.bias", m->ln_emb_b, C, 0);
    static const struct {
        const char *hf, *gguf;
        int kind; /* 0: (C,C) 1: (F,C) 2: (C,F) 3: (C) 4: (F) */
    } per[] = {{"attention.self.query.weight", "attn_q.weight", 0},
               {"attention.self.query.bias", "attn_q.bias", 3},
               {"attention.self.key.weight", "attn_k.weight", 0},
               {"attention.self.key.bias", "attn_k.bias", 3},
               {"attention.self.value.weight", "attn_v.weight", 0},
               {"attention.self.value.bias", "attn_v.bias", 3},
               {"attention.output.dense.weight", "attn_output.weight", 0},
               {"attention.output.dense.bias", "attn_output.bias", 3},
               {"attention.output.LayerNorm.weight", "attn_output_norm.weight", 3},
               {"attention.output.LayerNorm.bias", "attn_output_norm.bias", 3},
               {"intermediate.dense.weight", "ffn_up.weight", 1},
               {"intermediate.dense.bias", "ffn_up.bias", 4},
               {"output.dense.weight", "ffn_down.weight", 2},
               {"output.dense.bias", "ffn_down.bias", 3},
               {"output.LayerNorm.weight", "layer_output_norm.weight", 3},
               {"output.LayerNorm.bias", "layer_output_norm.bias", 3}};
    for (int l = 0; l < c->n_layers; l++) {
        float *ptr[16] = {m->wq + l * C * C, m->bq + l * C,    m->wk + l * C * C,    m->bk + l * C,
                          m->wv + l * C * C, m->bv + l * C,    m->wo + l * C * C,    m->bo + l * C,
                          m->ln1_w + l * C,  m->ln1_b + l * C, m->wup + l * F * C,   m->bup + l * F,
                          m->wdown + l * C * F, m->bdown + l * C, m->ln2_w + l * C, m->ln2_b + l * C};
        for (int i = 0; i < 16; i++) {
            char hf[96], gg[64];
            snprintf(hf, sizeof hf, "encoder.layer.%d.%s", l, per[i].hf);
            snprintf(gg, sizeof gg, "blk.%d.%s", l, per[i].gguf);
            int64_t rows = per[i].kind == 1 || per[i].kind == 4 ? F : C;
            int64_t cols = per[i].kind == 0 ? C : per[i].kind == 1 ? C : per[i].kind == 2 ? F : 0;
            ref_set(&r[n++], hf, gg, ptr[i], rows, cols);
        }
    }
    return n;
}

static rl_status bert_config_check(const rl_bert_config *c, rl_error *err) {
    const int lim = 1 << 20;
    if (c->dim <= 0 || c->dim > 65536 || c->hidden_dim <= 0 || c->hidden_dim > lim || c->n_layers <= 0 || c->n_layers > 1024 ||
        c->n_heads <= 0 || c->dim % c->n_heads || c->vocab_size <= 0 || c->vocab_size > (1 << 24) || c->max_pos <= 0 ||
        c->max_pos > lim || c->n_types <= 0 || c->n_types > 1024 || !(c->eps > 0 && c->eps < 1))
        return rl_fail(err, RL_EFORMAT,
                       "bad encoder shape: hidden %d, intermediate %d, layers %d, heads %d, vocab %d, positions %d, types %d, eps %g",
                       c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->vocab_size, c->max_pos, c->n_types, c->eps);
    return RL_OK;
}

static rl_status bert_alloc(rl_bert *m, const rl_bert_config *c, rl_error *err) {
    memset(m, 0, sizeof *m);
    rl_status s = bert_config_check(c, err);
    if (s) return s;
    m->cfg = *c;
    size_t C = (size_t)c->dim, F = (size_t)c->hidden_dim, L = (size_t)c->n_layers;
    size_t n = ((size_t)c->vocab_size + (size_t)c->max_pos + (size_t)c->n_types + 2) * C + L * (4 * C * C + 2 * F * C + 8 * C + F + C);
    float *p = calloc(n, sizeof(float));
    if (!p) return rl_fail(err, RL_ENOMEM, "cannot allocate %zu MB for the encoder", n * 4 >> 20);
    m->mem = p;
    m->n = n;
#define TAKE(field, count) (m->field = p, p += (count))
    TAKE(wte, (size_t)c->vocab_size * C);
    TAKE(wpe, (size_t)c->max_pos * C);
    TAKE(wtt, (size_t)c->n_types * C);
    TAKE(ln_emb_w, C);
    TAKE(ln_emb_b, C);
    TAKE(wq, L * C * C), TAKE(wk, L * C * C), TAKE(wv, L * C * C), TAKE(wo, L * C * C);
    TAKE(bq, L * C), TAKE(bk, L * C), TAKE(bv, L * C), TAKE(bo, L * C);
    TAKE(ln1_w, L * C), TAKE(ln1_b, L * C);
    TAKE(wup, L * F * C), TAKE(bup, L * F), TAKE(wdown, L * C * F), TAKE(bdown, L * C);
    TAKE(ln2_w, L * C), TAKE(ln2_b, L * C);
#undef TAKE
    m->pooling = RL_BERT_POOL_MEAN;
    m->normalize = 1;
    m->max_tokens = c->max_pos;
    return RL_OK;
}

void rl_bert_free(rl_bert *m) {
    if (!m) return;
    free(m->mem);
    memset(m, 0, sizeof *m);
}

/* ---- detection ---------------------------------------------------------------------------- */

static json_t *json_file(const char *dir, const char *name, rl_error *err) {
    char *path = rl_path_join(dir, name);
    char *text = NULL;
    size_t len = 0;
    json_t *o = NULL;
    if (rl_file_read(path, 1 << 24, &text, &len, NULL) == RL_OK) {
        json_error_t je;
        o = json_loadb(text, len, 0, &je);
        if (!o) rl_fail(err, RL_EFORMAT, "%s: line %d: %s", path, je.line, je.text);
    }
    free(text);
    free(path);
    return o;
}

void rl_model_detect_arch(const char *path, char *arch, size_t cap) {
    if (cap) arch[0] = 0;
    if (rl_path_is_dir(path)) {
        json_t *o = json_file(path, "config.json", NULL);
        const char *t = json_string_value(json_object_get(o, "model_type"));
        if (t) snprintf(arch, cap, "%s", t);
        json_decref(o);
        return;
    }
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    if (f) {
        if (fread(magic, 1, 4, f) != 4) memset(magic, 0, 4);
        fclose(f);
    }
    if (memcmp(magic, "GGUF", 4) != 0) return;
    rl_gguf g;
    if (rl_gguf_open(&g, path, NULL) == RL_OK) {
        rl_gguf_get_str(&g, "general.architecture", arch, cap);
        rl_gguf_close(&g);
    }
}

/* ---- Hugging Face folders ------------------------------------------------------------------ */

static int jint(json_t *o, const char *key, int def, int *ok) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return def;
    if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN || json_integer_value(v) > INT32_MAX) {
        *ok = 0;
        return def;
    }
    return (int)json_integer_value(v);
}

static rl_status hf_config(rl_bert_config *c, json_t *o, const char *dir, rl_error *err) {
    memset(c, 0, sizeof *c);
    const char *type = json_string_value(json_object_get(o, "model_type"));
    if (!type || strcmp(type, "bert") != 0)
        return rl_fail(err, RL_EUNSUPPORTED, "%s/config.json: model_type '%s' is not a BERT encoder (bert)", dir, type ? type : "(none)");
    int ok = 1;
    c->dim = jint(o, "hidden_size", 0, &ok);
    c->hidden_dim = jint(o, "intermediate_size", 0, &ok);
    c->n_layers = jint(o, "num_hidden_layers", 0, &ok);
    c->n_heads = jint(o, "num_attention_heads", 0, &ok);
    c->vocab_size = jint(o, "vocab_size", 0, &ok);
    c->max_pos = jint(o, "max_position_embeddings", 512, &ok);
    c->n_types = jint(o, "type_vocab_size", 2, &ok);
    json_t *eps = json_object_get(o, "layer_norm_eps");
    c->eps = json_is_number(eps) ? (float)json_number_value(eps) : 1e-12f;
    if (!ok) return rl_fail(err, RL_EFORMAT, "%s/config.json: a size has the wrong type", dir);
    const char *act = json_string_value(json_object_get(o, "hidden_act"));
    if (act && strcmp(act, "gelu") != 0)
        return rl_fail(err, RL_EUNSUPPORTED, "%s/config.json: hidden_act '%s' is not supported (gelu)", dir, act);
    const char *pe = json_string_value(json_object_get(o, "position_embedding_type"));
    if (pe && strcmp(pe, "absolute") != 0)
        return rl_fail(err, RL_EUNSUPPORTED, "%s/config.json: position_embedding_type '%s' is not supported (absolute)", dir, pe);
    rl_status s = bert_config_check(c, err);
    if (s) rl_error_prefix(err, "%s/config.json", dir);
    return s;
}

/* sentence-transformers: modules.json lists Transformer, Pooling (path with config.json) and
 * optionally Normalize; sentence_bert_config.json may lower max_seq_length. */
static rl_status st_modules(rl_bert *m, const char *dir, rl_error *err) {
    rl_error jerr = {0};
    json_t *mods = json_file(dir, "modules.json", &jerr);
    if (!mods && jerr.msg[0]) return rl_fail(err, RL_EFORMAT, "%s", jerr.msg);
    rl_status s = RL_OK;
    if (mods) {
        if (!json_is_array(mods)) {
            json_decref(mods);
            return rl_fail(err, RL_EFORMAT, "%s/modules.json: not an array", dir);
        }
        m->normalize = 0;
        size_t i;
        json_t *it;
        json_array_foreach(mods, i, it) {
            const char *type = json_string_value(json_object_get(it, "type"));
            const char *path = json_string_value(json_object_get(it, "path"));
            if (!type) continue;
            if (strstr(type, "Normalize")) m->normalize = 1;
            if (!strstr(type, "Pooling") || !path) continue;
            if (strstr(path, "..")) {
                s = rl_fail(err, RL_EFORMAT, "%s/modules.json: pooling path '%s' leaves the folder", dir, path);
                break;
            }
            char *pdir = rl_path_join(dir, path);
            json_t *pc = json_file(pdir, "config.json", &jerr);
            free(pdir);
            if (!pc) {
                s = rl_fail(err, RL_EFORMAT, "%s/%s/config.json: %s", dir, path, jerr.msg[0] ? jerr.msg : "missing");
                break;
            }
            int cls = json_is_true(json_object_get(pc, "pooling_mode_cls_token"));
            int mean = json_is_true(json_object_get(pc, "pooling_mode_mean_tokens"));
            const char *other[] = {"pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens",
                                   "pooling_mode_lasttoken"};
            int n_other = 0;
            for (int k = 0; k < 4; k++) n_other += json_is_true(json_object_get(pc, other[k]));
            json_decref(pc);
            if (cls + mean != 1 || n_other)
                s = rl_fail(err, RL_EUNSUPPORTED, "%s/%s/config.json: only one of pooling_mode_cls_token and pooling_mode_mean_tokens is supported", dir,
                            path);
            else m->pooling = cls ? RL_BERT_POOL_CLS : RL_BERT_POOL_MEAN;
        }
        json_decref(mods);
    }
    json_t *sb = json_file(dir, "sentence_bert_config.json", NULL);
    json_t *msl = json_object_get(sb, "max_seq_length");
    if (json_is_integer(msl) && json_integer_value(msl) >= 2 && json_integer_value(msl) < m->max_tokens)
        m->max_tokens = (int)json_integer_value(msl);
    json_decref(sb);
    json_t *tj = json_file(dir, "tokenizer.json", NULL);
    json_t *ml = json_object_get(json_object_get(tj, "truncation"), "max_length");
    if (json_is_integer(ml) && json_integer_value(ml) >= 2 && json_integer_value(ml) < m->max_tokens)
        m->max_tokens = (int)json_integer_value(ml);
    json_decref(tj);
    return s;
}

static rl_status bert_load_hf(rl_bert *m, const char *dir, rl_error *err) {
    rl_error jerr = {0};
    json_t *o = json_file(dir, "config.json", &jerr);
    if (!o) return jerr.msg[0] ? rl_fail(err, RL_EFORMAT, "%s", jerr.msg) : rl_fail(err, RL_ENOTFOUND, "%s: no config.json", dir);
    rl_bert_config c;
    rl_status s = hf_config(&c, o, dir, err);
    json_decref(o);
    if (s || (s = bert_alloc(m, &c, err))) return s;
    rl_st_set set;
    if ((s = rl_st_set_open_dir(&set, dir, err))) {
        rl_bert_free(m);
        return s;
    }
    /* transformers saves BertModel without a prefix and Bert*For*Task with "bert." */
    const char *prefix = "";
    for (int i = 0; i < set.n; i++)
        if (rl_st_find(&set.files[i], "bert.embeddings.word_embeddings.weight")) prefix = "bert.";
    int n = bert_ref_count(&c);
    bert_ref *r = rl_xcalloc((size_t)n, sizeof *r);
    n = bert_refs(m, r);
    for (int i = 0; i < n && !s; i++) {
        char name[128];
        snprintf(name, sizeof name, "%s%s", prefix, r[i].hf);
        s = rl_st_set_read_f32(&set, name, r[i].data, r[i].shape, r[i].ndim, err);
    }
    free(r);
    rl_st_set_close(&set);
    if (!s) s = st_modules(m, dir, err);
    if (s) {
        rl_error_prefix(err, "%s", dir);
        rl_bert_free(m);
    }
    return s;
}

/* ---- GGUF (llama.cpp's converter: general.architecture = bert) ------------------------------ */

static rl_status bert_load_gguf(rl_bert *m, const char *path, rl_error *err) {
    rl_gguf g;
    rl_status s = rl_gguf_open(&g, path, err);
    if (s) return s;
    char arch[32] = "";
    rl_gguf_get_str(&g, "general.architecture", arch, sizeof arch);
    if (strcmp(arch, "bert") != 0) {
        rl_gguf_close(&g);
        return rl_fail(err, RL_EUNSUPPORTED, "%s: GGUF architecture '%s' is not a BERT encoder (bert)", path, arch);
    }
    rl_bert_config c = {0};
    double v;
#define NUM(field, key, def) (v = (def), rl_gguf_get_num(&g, key, &v), field = (v >= 0 && v < 2e9 ? v : 0))
    NUM(c.dim, "bert.embedding_length", 0);
    NUM(c.hidden_dim, "bert.feed_forward_length", 0);
    NUM(c.n_layers, "bert.block_count", 0);
    NUM(c.n_heads, "bert.attention.head_count", 0);
    NUM(c.max_pos, "bert.context_length", 512);
    NUM(c.eps, "bert.attention.layer_norm_epsilon", 1e-12);
#undef NUM
    const rl_gguf_tensor *te = rl_gguf_find_tensor(&g, "token_embd.weight"), *tt = rl_gguf_find_tensor(&g, "token_types.weight"),
                         *tp = rl_gguf_find_tensor(&g, "position_embd.weight");
    if (!te || te->ndim != 2 || !tt || tt->ndim != 2 || !tp || tp->ndim != 2) {
        rl_gguf_close(&g);
        return rl_fail(err, RL_EFORMAT, "%s: needs 2-D token_embd, token_types and position_embd tensors", path);
    }
    c.vocab_size = te->dims[1] < (1 << 24) ? (int)te->dims[1] : 0;
    c.n_types = tt->dims[1] < 1024 ? (int)tt->dims[1] : 0;
    if (tp->dims[1] < c.max_pos) c.max_pos = (int)tp->dims[1];
    double pooling = 1;
    rl_gguf_get_num(&g, "bert.pooling_type", &pooling);
    if (pooling != 1 && pooling != 2) {
        rl_gguf_close(&g);
        return rl_fail(err, RL_EUNSUPPORTED, "%s: bert.pooling_type %g is not supported (1 mean, 2 cls)", path, pooling);
    }
    /* the weights the metadata promises must fit in the file (at most 8 floats per byte, Q4_0's
     * ratio and then some) before anything that size is allocated */
    double C = c.dim, F = c.hidden_dim;
    double want = ((double)c.vocab_size + c.max_pos + c.n_types) * C + (double)c.n_layers * (4 * C * C + 2 * F * C);
    if (c.dim != te->dims[0] || want > 8.0 * (double)g.map.size) {
        rl_gguf_close(&g);
        return rl_fail(err, RL_EFORMAT, "%s: the metadata (hidden %d, layers %d, ffn %d, vocabulary %d) does not fit the file", path, c.dim,
                       c.n_layers, c.hidden_dim, c.vocab_size);
    }
    if ((s = bert_alloc(m, &c, err))) {
        rl_error_prefix(err, "%s", path);
        rl_gguf_close(&g);
        return s;
    }
    m->pooling = pooling == 2 ? RL_BERT_POOL_CLS : RL_BERT_POOL_MEAN;
    int n = bert_ref_count(&c);
    bert_ref *r = rl_xcalloc((size_t)n, sizeof *r);
    n = bert_refs(m, r);
    for (int i = 0; i < n && !s; i++) {
        const rl_gguf_tensor *t = rl_gguf_find_tensor(&g, r[i].gguf);
        if (!t) {
            s = rl_fail(err, RL_EFORMAT, "%s: missing tensor '%s'", path, r[i].gguf);
            break;
        }
        /* GGUF dims are fastest-first: PyTorch's (rows, cols) is [cols, rows]; positions may be
         * more than context_length (then only the first rows are read) */
        int64_t rows = r[i].shape[0], cols = r[i].ndim == 2 ? r[i].shape[1] : r[i].shape[0];
        int same = t->ndim == r[i].ndim && t->dims[0] == cols && (r[i].ndim == 1 || t->dims[1] >= rows) &&
                   (r[i].ndim == 1 || t->data == tp->data || t->dims[1] == rows);
        if (!same) s = rl_fail(err, RL_EFORMAT, "%s: tensor '%s' has the wrong shape for the metadata", path, r[i].gguf);
        else if (!t->supported) s = rl_fail(err, RL_EUNSUPPORTED, "%s: tensor '%s' has unsupported ggml type %d", path, r[i].gguf, t->type);
        else {
            size_t count = (size_t)(r[i].ndim == 2 ? rows * cols : cols);
            int ok;
            size_t rb = rl_ggml_row_bytes(t->type, cols, &ok);
            if (!ok || rb * (size_t)(r[i].ndim == 2 ? rows : 1) > t->nbytes)
                s = rl_fail(err, RL_EFORMAT, "%s: tensor '%s' is shorter than its shape", path, r[i].gguf);
            else rl_ggml_dequant(t->type, t->data, r[i].data, count);
        }
    }
    free(r);
    rl_gguf_close(&g);
    if (s) rl_bert_free(m);
    return s;
}

rl_status rl_bert_load(rl_bert *m, const char *path, rl_error *err) {
    memset(m, 0, sizeof *m);
    if (rl_path_is_dir(path)) return bert_load_hf(m, path, err);
    if (!rl_path_exists(path)) return rl_fail(err, RL_ENOTFOUND, "encoder %s does not exist", path);
    return bert_load_gguf(m, path, err);
}

/* ---- forward and pooling ------------------------------------------------------------------ */

rl_status rl_bert_forward(rl_bert *m, float *out, const int *tokens, const int *types, const int *lens, int B, int T, rl_error *err) {
    const rl_bert_config *c = &m->cfg;
    if (B <= 0 || T <= 0 || T > c->max_pos)
        return rl_fail(err, RL_EINVAL, "encoder batch (%d, %d) must have 1 to %d positions", B, T, c->max_pos);
    size_t N = (size_t)B * T, C = (size_t)c->dim, F = (size_t)c->hidden_dim;
    for (size_t i = 0; i < N; i++) {
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size)
            return rl_fail(err, RL_EINVAL, "token id %d is outside the encoder's vocabulary (%d)", tokens[i], c->vocab_size);
        if (types && (types[i] < 0 || types[i] >= c->n_types))
            return rl_fail(err, RL_EINVAL, "token type %d is outside the encoder's %d types", types[i], c->n_types);
    }
    float *x = out;
    for (size_t i = 0; i < N; i++) {
        const float *e = m->wte + (size_t)tokens[i] * C, *p = m->wpe + (i % (size_t)T) * C, *t = m->wtt + (size_t)(types ? types[i] : 0) * C;
        for (size_t j = 0; j < C; j++) x[i * C + j] = e[j] + p[j] + t[j];
    }
    rl_layernorm_forward(x, x, m->ln_emb_w, m->ln_emb_b, (int)N, (int)C, c->eps);
    float *buf = rl_xmalloc((5 * N * C + N * F) * sizeof *buf);
    float *q = buf, *k = q + N * C, *v = k + N * C, *y = v + N * C, *o = y + N * C, *h = o + N * C;
    int NH = c->n_heads, HD = (int)C / NH;
    for (int l = 0; l < c->n_layers; l++) {
        size_t lc = (size_t)l * C;
        rl_matmul_forward(q, x, m->wq + lc * C, m->bq + lc, (int)N, (int)C, (int)C, m->pool, RL_GEMM_AUTO);
        rl_matmul_forward(k, x, m->wk + lc * C, m->bk + lc, (int)N, (int)C, (int)C, m->pool, RL_GEMM_AUTO);
        rl_matmul_forward(v, x, m->wv + lc * C, m->bv + lc, (int)N, (int)C, (int)C, m->pool, RL_GEMM_AUTO);
        rl_attention_encoder(y, q, k, v, lens, B, T, NH, HD, m->pool);
        rl_matmul_forward(o, y, m->wo + lc * C, m->bo + lc, (int)N, (int)C, (int)C, m->pool, RL_GEMM_AUTO);
        for (size_t i = 0; i < N * C; i++) o[i] += x[i];
        rl_layernorm_forward(x, o, m->ln1_w + lc, m->ln1_b + lc, (int)N, (int)C, c->eps);
        rl_matmul_forward(h, x, m->wup + (size_t)l * F * C, m->bup + (size_t)l * F, (int)N, (int)C, (int)F, m->pool, RL_GEMM_AUTO);
        rl_gelu_forward(h, N * F);
        rl_matmul_forward(o, h, m->wdown + (size_t)l * C * F, m->bdown + lc, (int)N, (int)F, (int)C, m->pool, RL_GEMM_AUTO);
        for (size_t i = 0; i < N * C; i++) o[i] += x[i];
        rl_layernorm_forward(x, o, m->ln2_w + lc, m->ln2_b + lc, (int)N, (int)C, c->eps);
    }
    free(buf);
    return RL_OK;
}

void rl_bert_pool(const rl_bert *m, float *out, const float *hidden, const int *lens, int B, int T) {
    size_t C = (size_t)m->cfg.dim;
    for (int b = 0; b < B; b++) {
        float *o = out + (size_t)b * C;
        const float *hb = hidden + (size_t)b * T * C;
        int len = lens[b] < T ? lens[b] : T;
        if (m->pooling == RL_BERT_POOL_CLS || len <= 0) {
            memcpy(o, hb, C * sizeof *o);
        } else {
            for (size_t j = 0; j < C; j++) {
                double s = 0;
                for (int t = 0; t < len; t++) s += hb[(size_t)t * C + j];
                o[j] = (float)(s / len);
            }
        }
        if (m->normalize) {
            double nn = 0;
            for (size_t j = 0; j < C; j++) nn += (double)o[j] * o[j];
            double d = sqrt(nn) > 1e-12 ? sqrt(nn) : 1e-12;
            for (size_t j = 0; j < C; j++) o[j] = (float)(o[j] / d);
        }
    }
}
