/* model_util.c - what the model verbs (generate, score, ...) share: loading a model with an
 * optional LoRA adapter and tokenizer, and parsing token lists. */
#include <cblas.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

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
    for (int i = 0; vb->merge_strs && vb->merge_strs[i]; i++) free(vb->merge_strs[i]);
    free(vb->merge_strs);
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
    vb->v.bos = 1, vb->v.eos = 2, vb->v.unk = 0;
    if (s) cli_vocab_free(vb);
    return s;
}


/* A byte-level BPE tokenizer.json as a GGUF "gpt2" vocabulary. Only the pre-tokenizer llama.cpp
 * can name is accepted: Qwen2's regex (the tokenizers raftlm trains); others would load in
 * llama.cpp but split text differently, so they are refused rather than written wrong. */
rl_status cli_vocab_from_tokenizer_json(cli_vocab *vb, const char *path, int n_vocab, rl_error *err) {
    memset(vb, 0, sizeof *vb);
    char *file = rl_path_is_dir(path) ? rl_path_join(path, "tokenizer.json") : rl_xstrdup(path);
    json_error_t je;
    json_t *root = json_load_file(file, 0, &je);
    rl_status s = RL_OK;
    json_t *model = json_object_get(root, "model"), *pre = json_object_get(root, "pre_tokenizer");
    json_t *steps = json_object_get(pre, "pretokenizers");
    const char *re = json_string_value(json_object_get(json_object_get(json_array_get(steps, 0), "pattern"), "Regex"));
    const char *last = json_string_value(json_object_get(json_array_get(steps, 1), "type"));
    json_t *vocab = json_object_get(model, "vocab"), *merges = json_object_get(model, "merges");
    if (!root) s = rl_fail(err, RL_EFORMAT, "%s: %s (line %d)", file, je.text, je.line);
    else if (!json_is_object(vocab) || !json_is_array(merges) || strcmp(json_string_value(json_object_get(model, "type")) ?: "", "BPE"))
        s = rl_fail(err, RL_EUNSUPPORTED, "%s: only BPE vocabularies are written to GGUF", file);
    else if (json_array_size(steps) != 2 || !re || strcmp(re, rl_tok_qwen2_regex) || !last || strcmp(last, "ByteLevel"))
        s = rl_fail(err, RL_EUNSUPPORTED, "%s: only the byte-level pre-tokenizer of raftlm's trained tokenizers (Qwen2's) is "
                    "written to GGUF so far", file);
    if (!s) {
        vb->tokens = rl_xcalloc((size_t)n_vocab, sizeof *vb->tokens);
        vb->types = rl_xcalloc((size_t)n_vocab, sizeof *vb->types);
        vb->v.n = n_vocab;
        const char *piece;
        json_t *id;
        json_object_foreach(vocab, piece, id) {
            json_int_t i = json_integer_value(id);
            if (!json_is_integer(id) || i < 0 || i >= n_vocab) {
                s = rl_fail(err, RL_EFORMAT, "%s: id of \"%s\" is outside the model's %d ids", file, piece, n_vocab);
                break;
            }
            free(vb->tokens[i]);
            vb->tokens[i] = rl_xstrdup(piece), vb->types[i] = 1;
        }
        size_t k;
        json_t *a;
        json_array_foreach(json_object_get(root, "added_tokens"), k, a) {
            json_int_t i = json_integer_value(json_object_get(a, "id"));
            const char *c = json_string_value(json_object_get(a, "content"));
            if (!c || i < 0 || i >= n_vocab) continue;
            free(vb->tokens[i]);
            vb->tokens[i] = rl_xstrdup(c), vb->types[i] = json_is_true(json_object_get(a, "special")) ? 3 : 4;
        }
        for (int i = 0; i < n_vocab; i++) // ids the tokenizer never produces (the model may have more)
            if (!vb->tokens[i]) vb->tokens[i] = rl_xasprintf("<unused%d>", i), vb->types[i] = 5;
        vb->merge_strs = rl_xcalloc(json_array_size(merges) + 1, sizeof *vb->merge_strs);
        json_array_foreach(merges, k, a) {
            if (json_is_string(a)) vb->merge_strs[k] = rl_xstrdup(json_string_value(a));
            else if (json_is_array(a) && json_array_size(a) == 2 && json_is_string(json_array_get(a, 0)) && json_is_string(json_array_get(a, 1)))
                vb->merge_strs[k] = rl_xasprintf("%s %s", json_string_value(json_array_get(a, 0)), json_string_value(json_array_get(a, 1)));
            else {
                s = rl_fail(err, RL_EFORMAT, "%s: merges[%zu] is neither \"a b\" nor [\"a\", \"b\"]", file, k);
                break;
            }
            vb->v.n_merges = (int)k + 1;
        }
        vb->v.model = "gpt2", vb->v.pre = "qwen2";
        vb->v.tokens = (const char **)vb->tokens, vb->v.types = vb->types;
        vb->v.merges = (const char **)vb->merge_strs;
        vb->v.bos = vb->v.eos = vb->v.unk = -1;
        for (int i = 0; i < n_vocab; i++) {
            if (strcmp(vb->tokens[i], "<s>") == 0) vb->v.bos = i;
            if (strcmp(vb->tokens[i], "</s>") == 0) vb->v.eos = i;
        }
    }
    json_decref(root);
    free(file);
    if (s) cli_vocab_free(vb);
    return s;
}
