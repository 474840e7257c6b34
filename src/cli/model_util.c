/* model_util.c - what the model verbs (generate, score, ...) share: loading a model with an
 * optional LoRA adapter and tokenizer, and parsing token lists. */
#include <cblas.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"

rl_status cli_model_open(cli_model *cm, const char *model_path, const char *lora_dir, const char *tok_path,
                         int threads, rl_error *err) {
    memset(cm, 0, sizeof *cm);
    rl_status s = rl_model_load(&cm->model, model_path, err);
    if (s) return s;
    if (lora_dir) {
        if ((s = rl_lora_load_peft(&cm->lora, &cm->model.cfg, lora_dir, err))) {
            rl_model_free(&cm->model);
            return s;
        }
        cm->model.lora = &cm->lora;
        cm->has_lora = 1;
    }
    if (tok_path) {
        if ((s = rl_tok_load(&cm->tok, tok_path, err))) {
            cli_model_close(cm);
            return s;
        }
        if (rl_tok_vocab_size(cm->tok) > cm->model.cfg.vocab_size)
            rl_warn("tokenizer has %d ids, the model %d", rl_tok_vocab_size(cm->tok), cm->model.cfg.vocab_size);
    }
    cm->pool = rl_pool_create(threads);
    openblas_set_num_threads(rl_pool_size(cm->pool)); // one thread count for BLAS and the pool
    cm->model.pool = cm->pool;
    return RL_OK;
}

rl_status cli_model_open_config(cli_model *cm, const char *dir, const char *tok_path, int threads, rl_error *err) {
    memset(cm, 0, sizeof *cm);
    char *path = rl_path_join(dir, "config.json"), *text = NULL;
    size_t len = 0;
    rl_model_config cfg;
    rl_status s = rl_file_read(path, 1 << 20, &text, &len, err);
    if (!s) s = rl_model_config_from_hf_json(&cfg, text, len, err);
    if (!s) s = rl_model_init(&cm->model, &cfg, err);
    free(text);
    free(path);
    if (!s && tok_path) s = rl_tok_load(&cm->tok, tok_path, err);
    if (s) {
        cli_model_close(cm);
        return s;
    }
    cm->pool = rl_pool_create(threads);
    cm->model.pool = cm->pool;
    openblas_set_num_threads(rl_pool_size(cm->pool));
    return RL_OK;
}

const char *cli_model_tokenizer(const char *model_path) {
    if (!model_path) return NULL;
    char ext[16];
    rl_path_ext(model_path, ext, sizeof ext);
    if (!strcmp(ext, "gguf")) { // a GGUF file with tokenizer.ggml.* metadata
        rl_tokenizer *tok = NULL;
        int ok = rl_tok_load(&tok, model_path, NULL) == RL_OK;
        rl_tok_free(tok);
        return ok ? model_path : NULL;
    }
    if (!rl_path_is_dir(model_path)) return NULL;
    char *a = rl_path_join(model_path, "tokenizer.json"), *b = rl_path_join(model_path, "tokenizer.bin");
    int found = rl_path_exists(a) || rl_path_exists(b);
    free(a);
    free(b);
    return found ? model_path : NULL;
}

void cli_save_tokenizer(const char *tok_path, const char *dir) {
    rl_error err = {0};
    rl_tokenizer *tok = NULL;
    if (!tok_path) {
        rl_warn("%s has no tokenizer files (pass --tokenizer, or set tokenizer:, to write them)", dir);
        return;
    }
    if (rl_tok_load(&tok, tok_path, &err) || rl_tok_save_hf(tok, dir, &err))
        rl_warn("%s has no tokenizer files: %s", dir, err.msg);
    rl_tok_free(tok);
}

void cli_model_close(cli_model *cm) {
    if (cm->has_lora) rl_lora_free(&cm->lora);
    rl_model_free(&cm->model);
    if (cm->tok) rl_tok_free(cm->tok);
    if (cm->pool) rl_pool_free(cm->pool);
    memset(cm, 0, sizeof *cm);
}

rl_status cli_encode_prompt(const cli_model *cm, const char *text, int32_t **out, size_t *n, rl_error *err) {
    int32_t *ids = NULL;
    size_t k = 0;
    rl_status s = rl_tok_encode(cm->tok, text, strlen(text), 0, &ids, &k, err);
    if (s) return s;
    int bos = rl_tok_bos(cm->tok);
    if (bos < 0) bos = cm->model.cfg.bos_id;
    if (bos >= 0) {
        ids = rl_xrealloc(ids, (k + 1) * sizeof *ids);
        memmove(ids + 1, ids, k * sizeof *ids);
        ids[0] = bos;
        k++;
    }
    *out = ids;
    *n = k;
    return RL_OK;
}

rl_status cli_parse_tokens(const char *list, int32_t **out, size_t *n, rl_error *err) {
    size_t cap = 16, k = 0;
    int32_t *v = rl_xmalloc(cap * sizeof *v);
    const char *p = list;
    while (*p) {
        while (*p == ',' || *p == ' ') p++;
        if (!*p) break;
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p || x < 0 || x > INT32_MAX) {
            free(v);
            return rl_fail(err, RL_EINVAL, "--tokens: '%s' is not a list of token ids", list);
        }
        if (k == cap) v = rl_xrealloc(v, (cap *= 2) * sizeof *v);
        v[k++] = (int32_t)x;
        p = end;
        if (*p && *p != ',' && *p != ' ') {
            free(v);
            return rl_fail(err, RL_EINVAL, "--tokens: '%s' is not a list of token ids", list);
        }
    }
    *out = v;
    *n = k;
    return RL_OK;
}

void cli_vocab_free(cli_vocab *vb) {
    for (int i = 0; vb->tokens && i < vb->v.n; i++) free(vb->tokens[i]);
    for (int i = 0; vb->merges && i < vb->v.n_merges; i++) free(vb->merges[i]);
    free(vb->merges);
    free(vb->tokens);
    free(vb->scores);
    free(vb->types);
}

/* llama2.c tokenizer.bin: int32 max_len, then per token float score, int32 len, bytes. */
rl_status cli_vocab_from_llama2c(cli_vocab *vb, const char *path, int n_vocab, rl_error *err) {
    memset(vb, 0, sizeof *vb);
    char *d = NULL;
    size_t len = 0, at = 4;
    rl_status s = rl_file_read(path, 64u << 20, &d, &len, err);
    if (s) return s;
    vb->tokens = rl_xcalloc((size_t)n_vocab, sizeof *vb->tokens);
    vb->scores = rl_xcalloc((size_t)n_vocab, sizeof *vb->scores);
    vb->types = rl_xcalloc((size_t)n_vocab, sizeof *vb->types);
    for (int i = 0; i < n_vocab && !s; i++) {
        int32_t n;
        if (len < 8 || at > len - 8) {
            s = rl_fail(err, RL_EFORMAT, "%s: truncated at token %d (a llama2.c tokenizer.bin of %d tokens?)", path, i, n_vocab);
            break;
        }
        memcpy(&vb->scores[i], d + at, 4);
        memcpy(&n, d + at + 4, 4);
        at += 8;
        if (n < 0 || (size_t)n > len - at) {
            s = rl_fail(err, RL_EFORMAT, "%s: token %d has a bad length", path, i);
            break;
        }
        rl_buf b = {0};
        for (int k = 0; k < n; k++) {
            if (d[at + k] == ' ') rl_buf_puts(&b, "\xE2\x96\x81");
            else rl_buf_putc(&b, d[at + k]);
        }
        vb->tokens[i] = b.data ? rl_buf_take(&b) : rl_xstrdup("");
        at += (size_t)n;
        vb->types[i] = i == 0 ? 2 : (i <= 2 ? 3 : (i <= 258 && !strncmp(vb->tokens[i], "<0x", 3) ? 6 : 1));
        vb->v.n = i + 1;
    }
    free(d);
    vb->v.model = "llama";
    vb->v.tokens = (const char **)vb->tokens;
    vb->v.scores = vb->scores;
    vb->v.types = vb->types;
    vb->v.bos = 1, vb->v.eos = 2, vb->v.unk = 0, vb->v.pad = -1;
    if (s) cli_vocab_free(vb);
    return s;
}

/* Appends the split regexes and pre-tokenizer types found under j (a pre_tokenizer tree). */
static void pre_walk(json_t *j, rl_buf *b, int depth) {
    if (depth > 8) return;
    if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) pre_walk(v, b, depth + 1);
    } else if (json_is_object(j)) {
        const char *t = json_string_value(json_object_get(j, "type"));
        const char *re = json_string_value(json_object_get(json_object_get(j, "pattern"), "Regex"));
        if (t) rl_buf_printf(b, "<%s>", t);
        if (re) rl_buf_printf(b, "%s\n", re);
        pre_walk(json_object_get(j, "pretokenizers"), b, depth + 1);
    }
}

/* llama.cpp's name for a byte-level BPE pre-tokenizer, from the tokenizer.json's split regex
 * (llama.cpp's converter hashes sample encodings instead; the regexes are what differ), or
 * NULL when the tokenizer is not byte-level. */
static const char *bpe_pre_name(json_t *root) {
    rl_buf b = {0};
    pre_walk(json_object_get(root, "pre_tokenizer"), &b, 0);
    const char *d = b.data ? b.data : "", *pre = NULL;
    if (!strstr(d, "<ByteLevel>")) pre = NULL;
    else if (strstr(d, "\\p{N}{1,3}")) pre = "llama-bpe";                        // Llama 3: digits in threes
    else if (strstr(d, "[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}")) pre = "qwen2"; // Qwen2/3: single digits
    else if (strstr(d, "<Digits>")) pre = "smollm";                               // SmolLM / StarCoder
    else pre = "gpt-2";
    rl_buf_free(&b);
    return pre;
}

rl_status cli_vocab_from_tokenizer_json(cli_vocab *vb, const char *path, int n_vocab, rl_error *err) {
    memset(vb, 0, sizeof *vb);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) return rl_fail(err, RL_EFORMAT, "%s: %s (line %d)", path, je.text, je.line);
    json_t *model = json_object_get(root, "model"), *vocab = json_object_get(model, "vocab");
    json_t *merges = json_object_get(model, "merges"), *added = json_object_get(root, "added_tokens");
    rl_status s = RL_OK;
    if (!json_is_object(vocab) || !json_is_array(merges) || strcmp(json_string_value(json_object_get(model, "type")) ?
                                                                       json_string_value(json_object_get(model, "type")) : "", "BPE"))
        s = rl_fail(err, RL_EUNSUPPORTED, "%s: not a BPE tokenizer.json (model.type BPE with vocab and merges)", path);
    else if (!bpe_pre_name(root))
        s = rl_fail(err, RL_EUNSUPPORTED, "%s: only byte-level BPE (GPT-2 style) is written as a GGUF gpt2 vocabulary", path);
    if (s) {
        json_decref(root);
        return s;
    }
    vb->tokens = rl_xcalloc((size_t)n_vocab, sizeof *vb->tokens);
    vb->types = rl_xcalloc((size_t)n_vocab, sizeof *vb->types);
    vb->v.n = n_vocab;
    const char *key;
    json_t *val;
    json_object_foreach(vocab, key, val) {
        json_int_t id = json_integer_value(val);
        if (!json_is_integer(val) || id < 0) {
            s = rl_fail(err, RL_EFORMAT, "%s: vocab entry \"%.40s\" has no valid id", path, key);
            break;
        }
        if (id >= n_vocab) continue; // the model is smaller than the tokenizer: checked below
        free(vb->tokens[id]);
        vb->tokens[id] = rl_xstrdup(key);
        vb->types[id] = 1;
    }
    size_t i;
    json_array_foreach(added, i, val) {
        json_int_t id = json_integer_value(json_object_get(val, "id"));
        const char *content = json_string_value(json_object_get(val, "content"));
        if (!content || id < 0 || id >= n_vocab) continue;
        free(vb->tokens[id]);
        vb->tokens[id] = rl_xstrdup(content);
        vb->types[id] = json_is_true(json_object_get(val, "special")) ? 3 : 4; // control / user-defined
    }
    int missing = 0;
    for (int k = 0; k < n_vocab && !s; k++)
        if (!vb->tokens[k]) {
            char pad[32];
            snprintf(pad, sizeof pad, "[PAD%d]", k);
            vb->tokens[k] = rl_xstrdup(pad);
            vb->types[k] = 4;
            missing++;
        }
    if (missing) rl_debug("%s: %d of the model's %d ids are not in the tokenizer ([PADn] in the GGUF)", path, missing, n_vocab);
    size_t nm = json_array_size(merges);
    vb->merges = rl_xcalloc(nm + 1, sizeof *vb->merges);
    json_array_foreach(merges, i, val) {
        if (s) break;
        if (json_is_string(val)) vb->merges[i] = rl_xstrdup(json_string_value(val));
        else if (json_is_array(val) && json_array_size(val) == 2 && json_is_string(json_array_get(val, 0)) &&
                 json_is_string(json_array_get(val, 1))) {
            rl_buf b = {0};
            rl_buf_printf(&b, "%s %s", json_string_value(json_array_get(val, 0)), json_string_value(json_array_get(val, 1)));
            vb->merges[i] = rl_buf_take(&b);
        } else s = rl_fail(err, RL_EFORMAT, "%s: merge %zu is neither \"a b\" nor [a, b]", path, i);
        vb->v.n_merges = (int)i + 1;
    }
    vb->v.model = "gpt2";
    vb->v.pre = bpe_pre_name(root);
    json_decref(root);
    // BOS / EOS as the tokenizer module reads them (tokenizer_config.json beside the file)
    rl_tokenizer *tok = NULL;
    vb->v.bos = vb->v.eos = vb->v.unk = vb->v.pad = -1;
    if (!s && !(s = rl_tok_load(&tok, path, err))) {
        vb->v.bos = rl_tok_bos(tok) < n_vocab ? rl_tok_bos(tok) : -1;
        vb->v.eos = rl_tok_eos(tok) < n_vocab ? rl_tok_eos(tok) : -1;
        // whether the tokenizer adds BOS / EOS (its post-processor): llama.cpp's default for a
        // gpt2 vocabulary is not to, so it is written either way
        int32_t *ids = NULL;
        size_t n = 0;
        if (rl_tok_encode(tok, "a", 1, 1, &ids, &n, NULL) == RL_OK && n > 0) {
            vb->v.add_bos = vb->v.bos >= 0 && ids[0] == vb->v.bos ? 1 : -1;
            vb->v.add_eos = vb->v.eos >= 0 && ids[n - 1] == vb->v.eos ? 1 : -1;
        }
        free(ids);
        rl_tok_free(tok);
    }
    vb->v.tokens = (const char **)vb->tokens;
    vb->v.types = vb->types;
    vb->v.merges = (const char **)vb->merges;
    if (s) cli_vocab_free(vb);
    return s;
}

rl_status cli_vocab_load(cli_vocab *vb, const char *path, int n_vocab, rl_error *err) {
    char buf[4096];
    size_t n = strlen(path);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(buf, sizeof buf, "%s/tokenizer.json", path);
        if (rl_path_exists(buf)) return cli_vocab_from_tokenizer_json(vb, buf, n_vocab, err);
        snprintf(buf, sizeof buf, "%s/tokenizer.bin", path);
        return cli_vocab_from_llama2c(vb, buf, n_vocab, err);
    }
    if (n >= 5 && !strcmp(path + n - 5, ".json")) return cli_vocab_from_tokenizer_json(vb, path, n_vocab, err);
    return cli_vocab_from_llama2c(vb, path, n_vocab, err);
}

