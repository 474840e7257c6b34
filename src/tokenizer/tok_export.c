/* tok_export.c - writes a tokenizer as Hugging Face tokenizer.json + tokenizer_config.json, so
 * that an exported HF model folder carries its tokenizer and loads anywhere.
 *
 * A tokenizer read from tokenizer.json is written back as it was read (its files are copied).
 * Score-ordered SentencePiece vocabularies (llama2.c tokenizer.bin, GGUF "llama") become what
 * Hugging Face uses for Llama 2: a BPE model with byte fallback, a Prepend("▁") + Replace(" ",
 * "▁") normalizer and the matching decoder. Their encoders merge, at every step, the adjacent
 * pair whose merged piece has the highest score; a BPE merge list holding every split of every
 * piece into two pieces, ranked by the merged piece's score, makes the same choices (ties
 * between different merged pieces are ordered by id; the tests compare ids on the reference
 * strings of both vocabularies). GGUF "gpt2" and "bert" vocabularies are not written yet. */
#include "tokenizer/tok_internal.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define SPM_SPACE "\xE2\x96\x81" /* U+2581, SentencePiece's visible space */

/* The piece of id as tokenizer.json spells it (caller frees). */
static char *hf_piece(const rl_tokenizer *t, int32_t id) {
    if (t->off[id] == UINT32_MAX) return rl_xasprintf("<unused_%d>", (int)id); /* a hole in a GGUF id space */
    if (t->kind == RL_TOK_LLAMA2C && id < 3) return rl_xstrdup(id == 0 ? "<unk>" : id == 1 ? t->bos_str : t->eos_str);
    const char *p = t->pool + t->off[id];
    size_t n = t->len[id];
    if (t->kind != RL_TOK_LLAMA2C) return rl_xstrndup(p, n);
    rl_buf b = {0}; /* llama2.c stores spaces as spaces; tokenizer.json as U+2581 */
    for (size_t i = 0; i < n; i++) {
        if (p[i] == ' ') rl_buf_append(&b, SPM_SPACE, 3);
        else rl_buf_append(&b, p + i, 1);
    }
    return b.data ? rl_buf_take(&b) : rl_xstrdup("");
}

typedef struct merge {
    float score;
    int32_t merged, a, b;
} merge;

static int merge_cmp(const void *x, const void *y) {
    const merge *p = x, *q = y;
    if (p->score != q->score) return p->score > q->score ? -1 : 1;
    if (p->merged != q->merged) return p->merged < q->merged ? -1 : 1;
    if (p->a != q->a) return p->a < q->a ? -1 : 1;
    return p->b < q->b ? -1 : p->b > q->b;
}

static int is_utf8_cont(unsigned char c) { return (c & 0xC0) == 0x80; }

/* Every (a, b) with piece(a) + piece(b) == piece(merged), over the pieces the encoder merges. */
static merge *score_merges(const rl_tokenizer *t, size_t *n_out) {
    size_t n = 0, cap = 1024;
    merge *m = rl_xmalloc(cap * sizeof *m);
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (t->off[id] == UINT32_MAX || t->attr[id] == TOK_CONTROL || t->attr[id] == TOK_UNKNOWN || t->attr[id] == TOK_BYTE)
            continue;
        if (t->kind == RL_TOK_LLAMA2C && id < 3) continue;
        const char *p = t->pool + t->off[id];
        size_t len = t->len[id];
        for (size_t k = 1; k < len; k++) {
            if (is_utf8_cont((unsigned char)p[k])) continue;
            int32_t a = tok_lookup(t, p, k), b = tok_lookup(t, p + k, len - k);
            if (a < 0 || b < 0) continue;
            if (t->attr[a] == TOK_CONTROL || t->attr[b] == TOK_CONTROL) continue;
            if (n == cap) m = rl_xrealloc(m, (cap *= 2) * sizeof *m);
            m[n++] = (merge){t->score ? t->score[id] : 0.0f, id, a, b};
        }
    }
    qsort(m, n, sizeof *m, merge_cmp);
    *n_out = n;
    return m;
}

static json_t *jstr_of(const char *s) { return json_stringn(s, strlen(s)); }

static json_t *spm_tokenizer_json(const rl_tokenizer *t, rl_error *err) {
    json_t *vocab = json_object(), *added = json_array(), *merges = json_array();
    char **pieces = rl_xcalloc((size_t)t->n_vocab, sizeof *pieces);
    rl_status s = RL_OK;
    for (int32_t id = 0; id < t->n_vocab && !s; id++) {
        pieces[id] = hf_piece(t, id);
        if (json_object_get(vocab, pieces[id])) {
            s = rl_fail(err, RL_EUNSUPPORTED, "cannot write tokenizer.json: ids %d and %d are both \"%s\"",
                        (int)json_integer_value(json_object_get(vocab, pieces[id])), (int)id, pieces[id]);
            break;
        }
        json_object_set_new(vocab, pieces[id], json_integer(id));
        int special = t->attr[id] == TOK_CONTROL || t->attr[id] == TOK_UNKNOWN || (t->kind == RL_TOK_LLAMA2C && id < 3);
        if (special || t->attr[id] == TOK_USER)
            json_array_append_new(added, json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", (int)id, "content", pieces[id],
                                                   "single_word", 0, "lstrip", 0, "rstrip", 0, "normalized", !special,
                                                   "special", special));
    }
    size_t n_merges = 0;
    merge *m = s ? NULL : score_merges(t, &n_merges);
    for (size_t i = 0; i < n_merges; i++) {
        char *line = rl_xasprintf("%s %s", pieces[m[i].a], pieces[m[i].b]);
        json_array_append_new(merges, jstr_of(line));
        free(line);
    }
    free(m);
    json_t *root = NULL;
    if (!s) {
        int add_space = t->kind == RL_TOK_LLAMA2C || t->spm_add_space;
        json_t *norms = json_array();
        if (add_space) json_array_append_new(norms, json_pack("{s:s, s:s}", "type", "Prepend", "prepend", SPM_SPACE));
        json_array_append_new(norms, json_pack("{s:s, s:{s:s}, s:s}", "type", "Replace", "pattern", "String", " ", "content", SPM_SPACE));
        /* the post-processor: BOS (and EOS) as the encoder adds them */
        json_t *single = json_array(), *pair = json_array(), *specials = json_object();
        int32_t tmpl_ids[4];
        int n_tmpl = 0;
        if (t->kind == RL_TOK_LLAMA2C) tmpl_ids[n_tmpl++] = t->bos;
        for (int i = 0; i < t->n_tmpl && n_tmpl < 4; i++)
            if (t->tmpl[i].id >= 0) tmpl_ids[n_tmpl++] = t->tmpl[i].id;
        int bos_first = n_tmpl > 0 && tmpl_ids[0] == t->bos;
        for (int i = 0; i < n_tmpl; i++) {
            const char *name = pieces[tmpl_ids[i]];
            json_t *item = json_pack("{s:{s:s, s:i}}", "SpecialToken", "id", name, "type_id", 0);
            if (i == 0 && bos_first) {
                json_array_append(single, item);
                json_array_append_new(single, json_pack("{s:{s:s, s:i}}", "Sequence", "id", "A", "type_id", 0));
            } else {
                if (!json_array_size(single)) json_array_append_new(single, json_pack("{s:{s:s, s:i}}", "Sequence", "id", "A", "type_id", 0));
                json_array_append(single, item);
            }
            json_decref(item);
            json_object_set_new(specials, name, json_pack("{s:s, s:[i], s:[s]}", "id", name, "ids", (int)tmpl_ids[i], "tokens", name));
        }
        if (!json_array_size(single)) json_array_append_new(single, json_pack("{s:{s:s, s:i}}", "Sequence", "id", "A", "type_id", 0));
        json_array_extend(pair, single);
        json_array_append_new(pair, json_pack("{s:{s:s, s:i}}", "Sequence", "id", "B", "type_id", 1));
        json_t *decoders = json_array();
        json_array_append_new(decoders, json_pack("{s:s, s:{s:s}, s:s}", "type", "Replace", "pattern", "String", SPM_SPACE, "content", " "));
        json_array_append_new(decoders, json_pack("{s:s}", "type", "ByteFallback"));
        json_array_append_new(decoders, json_pack("{s:s}", "type", "Fuse"));
        if (add_space)
            json_array_append_new(decoders, json_pack("{s:s, s:s, s:i, s:i}", "type", "Strip", "content", " ", "start", 1, "stop", 0));
        json_t *unk = t->unk >= 0 ? jstr_of(pieces[t->unk]) : json_null();
        root = json_pack("{s:s, s:n, s:n, s:o, s:{s:s, s:o}, s:n, s:{s:s, s:o, s:o, s:o}, s:{s:s, s:o}, s:{s:s, s:n, s:o, s:n, s:n, s:b, s:b, s:b, s:o, s:o}}",
                         "version", "1.0", "truncation", "padding", "added_tokens", added, "normalizer", "type", "Sequence",
                         "normalizers", norms, "pre_tokenizer", "post_processor", "type", "TemplateProcessing", "single", single,
                         "pair", pair, "special_tokens", specials, "decoder", "type", "Sequence", "decoders", decoders, "model",
                         "type", "BPE", "dropout", "unk_token", unk, "continuing_subword_prefix", "end_of_word_suffix",
                         "fuse_unk", 1, "byte_fallback", 1, "ignore_merges", 0, "vocab", vocab, "merges", merges);
        vocab = merges = added = NULL; /* owned by root now */
    }
    json_decref(vocab);
    json_decref(merges);
    json_decref(added);
    for (int32_t id = 0; id < t->n_vocab; id++) free(pieces[id]);
    free(pieces);
    return root;
}

static json_t *spm_tokenizer_config(const rl_tokenizer *t) {
    int add_bos = t->kind == RL_TOK_LLAMA2C, add_eos = 0;
    for (int i = 0; i < t->n_tmpl; i++) {
        if (t->tmpl[i].id >= 0 && t->tmpl[i].id == t->bos) add_bos = 1;
        if (t->tmpl[i].id >= 0 && t->tmpl[i].id == t->eos) add_eos = 1;
    }
    json_t *c = json_pack("{s:b, s:b, s:b, s:b, s:s}", "add_bos_token", add_bos, "add_eos_token", add_eos, "clean_up_tokenization_spaces",
                          0, "legacy", 1, "tokenizer_class", "LlamaTokenizerFast");
    char *bos = t->bos >= 0 ? hf_piece(t, t->bos) : NULL, *eos = t->eos >= 0 ? hf_piece(t, t->eos) : NULL;
    char *unk = t->unk >= 0 ? hf_piece(t, t->unk) : NULL;
    if (bos) json_object_set_new(c, "bos_token", jstr_of(bos));
    if (eos) json_object_set_new(c, "eos_token", jstr_of(eos));
    if (unk) json_object_set_new(c, "unk_token", jstr_of(unk));
    if (t->chat_template) json_object_set_new(c, "chat_template", jstr_of(t->chat_template));
    free(bos);
    free(eos);
    free(unk);
    return c;
}

static rl_status write_json(const char *dir, const char *name, json_t *j, rl_error *err) {
    char *text = json_dumps(j, JSON_INDENT(2));
    char *path = rl_path_join(dir, name);
    rl_status s = text ? rl_file_write_atomic(path, text, strlen(text), err) : rl_fail(err, RL_ENOMEM, "%s: could not format", path);
    free(text);
    free(path);
    return s;
}

static rl_status copy_file(const char *src, const char *dir, const char *name, rl_error *err) {
    char *data;
    size_t len;
    rl_status s = rl_file_read(src, 0, &data, &len, err);
    if (s) return s;
    char *path = rl_path_join(dir, name);
    s = rl_file_write_atomic(path, data, len, err);
    free(path);
    free(data);
    return s;
}

rl_status rl_tok_save_hf(const rl_tokenizer *t, const char *dir, rl_error *err) {
    rl_status s = rl_mkdir_p(dir, err);
    if (s) return s;
    if (t->src_json) {
        if ((s = copy_file(t->src_json, dir, "tokenizer.json", err))) return s;
        return t->src_config ? copy_file(t->src_config, dir, "tokenizer_config.json", err) : RL_OK;
    }
    if (t->kind != RL_TOK_LLAMA2C && t->kind != RL_TOK_SPM_SCORES)
        return rl_fail(err, RL_EUNSUPPORTED,
                       "writing tokenizer.json for a %s vocabulary read from GGUF is not supported yet; copy the model's "
                       "tokenizer.json into %s",
                       rl_tok_kind_name(t->kind), dir);
    json_t *tj = spm_tokenizer_json(t, err);
    if (!tj) return err ? err->status : RL_EUNSUPPORTED;
    json_t *cj = spm_tokenizer_config(t);
    s = write_json(dir, "tokenizer.json", tj, err);
    if (!s) s = write_json(dir, "tokenizer_config.json", cj, err);
    json_decref(tj);
    json_decref(cj);
    return s;
}
