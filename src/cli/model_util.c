/* model_util.c - what the model verbs (generate, score, ...) share: loading a model with an
 * optional LoRA adapter and tokenizer, and parsing token lists. */
#include <cblas.h>
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

const char *cli_model_tokenizer(const char *model_path) {
    if (!model_path || !rl_path_is_dir(model_path)) return NULL;
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

