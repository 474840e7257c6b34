/* tok_json.c - reads Hugging Face tokenizer.json (and tokenizer_config.json) into an rl_tokenizer.
 *
 * Parsed with jansson (strings may hold NUL: JSON_ALLOW_NUL, lengths are kept). Every id is
 * checked against a bound (2^24) before it sizes anything, merges must name pieces of the
 * vocabulary and a merged piece that exists, and any component type we do not implement is an
 * RL_EUNSUPPORTED error naming it, so a file we would tokenize wrongly is refused instead.
 * Supported: models BPE and WordPiece; normalizers NFC/NFD/NFKC/NFKD, Prepend, Replace,
 * Lowercase, StripAccents, Strip, BertNormalizer, Precompiled, Sequence; pre-tokenizers Split,
 * ByteLevel, Metaspace, Whitespace, WhitespaceSplit, BertPreTokenizer, Punctuation, Digits,
 * Replace, Sequence; post-processors TemplateProcessing, ByteLevel, BertProcessing,
 * RobertaProcessing, Sequence; decoders ByteLevel, Metaspace, WordPiece, Replace, ByteFallback,
 * Fuse, Strip, Sequence. */
#include "tokenizer/tok_internal.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ID (1 << 24)

const char *tok_builtin_pattern(int type, int individual_digits); /* tok_pipeline.c */

static const char *jstr(json_t *o, const char *key, size_t *len) {
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v)) return NULL;
    if (len) *len = json_string_length(v);
    return json_string_value(v);
}

static int jbool(json_t *o, const char *key, int def) {
    json_t *v = json_object_get(o, key);
    return json_is_boolean(v) ? json_is_true(v) : def;
}

/* a {"String": s} or {"Regex": r} pattern */
static rl_status read_pattern(json_t *pat, const char *where, pcre2_code **re, char **lit, size_t *lit_len,
                              rl_error *err) {
    size_t n;
    const char *s;
    if ((s = jstr(pat, "String", &n))) {
        if (lit) {
            *lit = rl_xstrndup(s, n);
            memcpy(*lit, s, n);
            *lit_len = n;
            return RL_OK;
        }
        *re = tok_regex_compile(s, n, 1, err);
    } else if ((s = jstr(pat, "Regex", &n))) {
        *re = tok_regex_compile(s, n, 0, err);
    } else return rl_fail(err, RL_EFORMAT, "%s: pattern must be {\"String\": ...} or {\"Regex\": ...}", where);
    if (!*re) {
        rl_error_prefix(err, "%s", where);
        return err ? err->status : RL_EFORMAT;
    }
    return RL_OK;
}

/* ---- normalizers ---- */

static rl_status add_norm(rl_tokenizer *t, json_t *o, int depth, rl_error *err) {
    if (json_is_null(o) || !o) return RL_OK;
    if (depth > 16) return rl_fail(err, RL_EFORMAT, "normalizer: nested too deep");
    const char *type = jstr(o, "type", NULL);
    if (!type) return rl_fail(err, RL_EFORMAT, "normalizer without a \"type\"");
    if (strcmp(type, "Sequence") == 0) {
        json_t *a = json_object_get(o, "normalizers");
        if (!json_is_array(a)) return rl_fail(err, RL_EFORMAT, "normalizer Sequence without \"normalizers\"");
        size_t i;
        json_t *v;
        json_array_foreach(a, i, v) {
            rl_status st = add_norm(t, v, depth + 1, err);
            if (st) return st;
        }
        return RL_OK;
    }
    tok_norm nm = {.strip_accents = -1};
    if (strcmp(type, "NFC") == 0) nm.type = NORM_NFC;
    else if (strcmp(type, "NFD") == 0) nm.type = NORM_NFD;
    else if (strcmp(type, "NFKC") == 0) nm.type = NORM_NFKC;
    else if (strcmp(type, "NFKD") == 0) nm.type = NORM_NFKD;
    else if (strcmp(type, "Lowercase") == 0) nm.type = NORM_LOWER;
    else if (strcmp(type, "StripAccents") == 0) nm.type = NORM_STRIP_ACCENTS;
    else if (strcmp(type, "Precompiled") == 0) nm.type = NORM_PRECOMPILED;
    else if (strcmp(type, "Strip") == 0) {
        nm.type = NORM_STRIP;
        nm.left = jbool(o, "strip_left", 0);
        nm.right = jbool(o, "strip_right", 0);
    } else if (strcmp(type, "Prepend") == 0) {
        size_t n;
        const char *s = jstr(o, "prepend", &n);
        if (!s) return rl_fail(err, RL_EFORMAT, "normalizer Prepend without \"prepend\"");
        nm.type = NORM_PREPEND;
        nm.a = rl_xmalloc(n + 1);
        memcpy(nm.a, s, n);
        nm.alen = n;
    } else if (strcmp(type, "Replace") == 0) {
        nm.type = NORM_REPLACE;
        size_t n = 0;
        const char *c = jstr(o, "content", &n);
        nm.b = rl_xmalloc(n + 1);
        if (c) memcpy(nm.b, c, n);
        nm.blen = c ? n : 0;
        rl_status st = read_pattern(json_object_get(o, "pattern"), "normalizer Replace", &nm.re, &nm.a, &nm.alen, err);
        if (st) {
            tok_norm_free(&nm);
            return st;
        }
    } else if (strcmp(type, "BertNormalizer") == 0) {
        nm.type = NORM_BERT;
        nm.clean_text = jbool(o, "clean_text", 0);
        nm.chinese = jbool(o, "handle_chinese_chars", 0);
        nm.lowercase = jbool(o, "lowercase", 0);
        json_t *sa = json_object_get(o, "strip_accents");
        nm.strip_accents = json_is_boolean(sa) ? json_is_true(sa) : -1;
    } else return rl_fail(err, RL_EUNSUPPORTED, "normalizer type \"%s\" is not supported", type);
    t->norms = rl_xrealloc(t->norms, (size_t)(t->n_norms + 1) * sizeof *t->norms);
    t->norms[t->n_norms++] = nm;
    t->has_normalizer = 1;
    return RL_OK;
}

/* ---- pre-tokenizers ---- */

static rl_status add_pre(rl_tokenizer *t, json_t *o, int depth, rl_error *err) {
    if (json_is_null(o) || !o) return RL_OK;
    if (depth > 16) return rl_fail(err, RL_EFORMAT, "pre_tokenizer: nested too deep");
    const char *type = jstr(o, "type", NULL);
    if (!type) return rl_fail(err, RL_EFORMAT, "pre_tokenizer without a \"type\"");
    if (strcmp(type, "Sequence") == 0) {
        json_t *a = json_object_get(o, "pretokenizers");
        if (!json_is_array(a)) return rl_fail(err, RL_EFORMAT, "pre_tokenizer Sequence without \"pretokenizers\"");
        size_t i;
        json_t *v;
        json_array_foreach(a, i, v) {
            rl_status st = add_pre(t, v, depth + 1, err);
            if (st) return st;
        }
        return RL_OK;
    }
    if (t->bytelevel)
        return rl_fail(err, RL_EUNSUPPORTED, "pre_tokenizer \"%s\" after ByteLevel is not supported", type);
    tok_pre p = {0};
    rl_status st = RL_OK;
    const char *builtin = NULL;
    if (strcmp(type, "Split") == 0) {
        p.type = PRE_SPLIT;
        const char *b = jstr(o, "behavior", NULL);
        if (!b) b = "Isolated";
        if (strcmp(b, "Isolated") == 0) p.behavior = SPLIT_ISOLATED;
        else if (strcmp(b, "Removed") == 0) p.behavior = SPLIT_REMOVED;
        else if (strcmp(b, "MergedWithPrevious") == 0) p.behavior = SPLIT_MERGED_PREV;
        else if (strcmp(b, "MergedWithNext") == 0) p.behavior = SPLIT_MERGED_NEXT;
        else if (strcmp(b, "Contiguous") == 0) p.behavior = SPLIT_CONTIGUOUS;
        else return rl_fail(err, RL_EUNSUPPORTED, "Split behavior \"%s\" is not supported", b);
        p.invert = jbool(o, "invert", 0);
        st = read_pattern(json_object_get(o, "pattern"), "pre_tokenizer Split", &p.re, NULL, NULL, err);
    } else if (strcmp(type, "ByteLevel") == 0) {
        p.type = PRE_BYTELEVEL;
        p.add_prefix_space = jbool(o, "add_prefix_space", 0);
        p.use_regex = jbool(o, "use_regex", 1);
        if (p.use_regex) builtin = tok_builtin_pattern(PRE_BYTELEVEL, 0);
        t->bytelevel = 1;
    } else if (strcmp(type, "Metaspace") == 0) {
        p.type = PRE_METASPACE;
        size_t n;
        const char *r = jstr(o, "replacement", &n);
        if (!r) r = "\xE2\x96\x81", n = 3;
        p.rep = rl_xmalloc(n + 1);
        memcpy(p.rep, r, n);
        p.rep_len = n;
        const char *ps = jstr(o, "prepend_scheme", NULL);
        p.prepend_scheme = !ps || strcmp(ps, "always") == 0 ? 0 : strcmp(ps, "first") == 0 ? 1 : 2;
    } else if (strcmp(type, "Replace") == 0) {
        p.type = PRE_REPLACE;
        size_t n = 0;
        const char *c = jstr(o, "content", &n);
        p.rep = rl_xmalloc(n + 1);
        if (c) memcpy(p.rep, c, n);
        p.rep_len = c ? n : 0;
        st = read_pattern(json_object_get(o, "pattern"), "pre_tokenizer Replace", &p.re, &p.lit, &p.lit_len, err);
    } else if (strcmp(type, "Whitespace") == 0)
        p.type = PRE_WHITESPACE, builtin = tok_builtin_pattern(PRE_WHITESPACE, 0);
    else if (strcmp(type, "WhitespaceSplit") == 0)
        p.type = PRE_WHITESPACE_SPLIT, builtin = tok_builtin_pattern(PRE_WHITESPACE_SPLIT, 0);
    else if (strcmp(type, "BertPreTokenizer") == 0) p.type = PRE_BERT, builtin = tok_builtin_pattern(PRE_BERT, 0);
    else if (strcmp(type, "Punctuation") == 0) p.type = PRE_PUNCT, builtin = tok_builtin_pattern(PRE_PUNCT, 0);
    else if (strcmp(type, "Digits") == 0)
        p.type = PRE_DIGITS, builtin = tok_builtin_pattern(PRE_DIGITS, jbool(o, "individual_digits", 0));
    else return rl_fail(err, RL_EUNSUPPORTED, "pre_tokenizer type \"%s\" is not supported", type);
    if (!st && builtin) {
        p.re = tok_regex_compile(builtin, strlen(builtin), 0, err);
        if (!p.re) st = RL_EINTERNAL;
    }
    if (st) {
        tok_pre_free(&p);
        return st;
    }
    t->pres = rl_xrealloc(t->pres, (size_t)(t->n_pres + 1) * sizeof *t->pres);
    t->pres[t->n_pres++] = p;
    return RL_OK;
}

/* ---- post-processor ---- */

static int32_t special_id(rl_tokenizer *t, json_t *special_tokens, const char *name) {
    int32_t id = tok_lookup(t, name, strlen(name));
    if (id >= 0) return id;
    json_t *e = json_object_get(json_object_get(special_tokens, name), "ids");
    if (json_is_array(e) && json_array_size(e) > 0 && json_is_integer(json_array_get(e, 0))) {
        json_int_t v = json_integer_value(json_array_get(e, 0));
        if (v >= 0 && v < t->n_vocab && t->off[v] != UINT32_MAX) return (int32_t)v;
    }
    return -1;
}

static void tmpl_push(rl_tokenizer *t, int32_t id) {
    t->tmpl = rl_xrealloc(t->tmpl, (size_t)(t->n_tmpl + 1) * sizeof *t->tmpl);
    t->tmpl[t->n_tmpl++].id = id;
}

static rl_status read_post(rl_tokenizer *t, json_t *o, int depth, rl_error *err) {
    if (!o || json_is_null(o)) return RL_OK;
    if (depth > 8) return rl_fail(err, RL_EFORMAT, "post_processor: nested too deep");
    const char *type = jstr(o, "type", NULL);
    if (!type) return rl_fail(err, RL_EFORMAT, "post_processor without a \"type\"");
    if (strcmp(type, "ByteLevel") == 0) return RL_OK;
    if (strcmp(type, "Sequence") == 0) {
        json_t *a = json_object_get(o, "processors");
        size_t i;
        json_t *v;
        json_array_foreach(a, i, v) {
            rl_status st = read_post(t, v, depth + 1, err);
            if (st) return st;
        }
        return RL_OK;
    }
    if (strcmp(type, "TemplateProcessing") == 0) {
        json_t *single = json_object_get(o, "single"), *sp = json_object_get(o, "special_tokens");
        if (!json_is_array(single)) return rl_fail(err, RL_EFORMAT, "TemplateProcessing without \"single\"");
        free(t->tmpl);
        t->tmpl = NULL;
        t->n_tmpl = 0;
        int seen_a = 0;
        size_t i;
        json_t *v;
        json_array_foreach(single, i, v) {
            json_t *s = json_object_get(v, "SpecialToken");
            if (s) {
                const char *name = jstr(s, "id", NULL);
                if (!name) return rl_fail(err, RL_EFORMAT, "TemplateProcessing: SpecialToken without an id");
                int32_t id = special_id(t, sp, name);
                if (id < 0)
                    return rl_fail(err, RL_EFORMAT, "TemplateProcessing: special token \"%s\" is not in the vocabulary",
                                   name);
                tmpl_push(t, id);
                if (!seen_a && t->bos < 0) t->bos = id;
                if (seen_a && t->eos < 0) t->eos = id;
            } else if (json_object_get(v, "Sequence")) {
                tmpl_push(t, -1);
                seen_a = 1;
            } else return rl_fail(err, RL_EFORMAT, "TemplateProcessing: unknown item in \"single\"");
        }
        return RL_OK;
    }
    if (strcmp(type, "BertProcessing") == 0 || strcmp(type, "RobertaProcessing") == 0) {
        json_t *cls = json_object_get(o, "cls"), *sep = json_object_get(o, "sep");
        int32_t ids[2];
        json_t *pairs[2] = {cls, sep};
        for (int k = 0; k < 2; k++) {
            json_t *p = pairs[k];
            json_t *num = json_array_get(p, 1);
            if (!json_is_array(p) || !json_is_integer(num) || json_integer_value(num) < 0 ||
                json_integer_value(num) >= t->n_vocab || t->off[json_integer_value(num)] == UINT32_MAX)
                return rl_fail(err, RL_EFORMAT, "%s: %s must be [token, id] with an id in the vocabulary", type,
                               k ? "sep" : "cls");
            ids[k] = (int32_t)json_integer_value(num);
        }
        free(t->tmpl);
        t->tmpl = NULL;
        t->n_tmpl = 0;
        tmpl_push(t, ids[0]);
        tmpl_push(t, -1);
        tmpl_push(t, ids[1]);
        if (t->bos < 0) t->bos = ids[0];
        if (t->eos < 0) t->eos = ids[1];
        return RL_OK;
    }
    return rl_fail(err, RL_EUNSUPPORTED, "post_processor type \"%s\" is not supported", type);
}

/* ---- decoder ---- */

static rl_status read_decoder(rl_tokenizer *t, json_t *o, int depth, rl_error *err) {
    if (!o || json_is_null(o)) return RL_OK;
    if (depth > 8) return rl_fail(err, RL_EFORMAT, "decoder: nested too deep");
    const char *type = jstr(o, "type", NULL);
    if (!type) return rl_fail(err, RL_EFORMAT, "decoder without a \"type\"");
    if (strcmp(type, "Sequence") == 0) {
        json_t *a = json_object_get(o, "decoders");
        size_t i;
        json_t *v;
        json_array_foreach(a, i, v) {
            rl_status st = read_decoder(t, v, depth + 1, err);
            if (st) return st;
        }
        return RL_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) t->dec_mode = DEC_BYTELEVEL;
    else if (strcmp(type, "Replace") == 0 || strcmp(type, "ByteFallback") == 0 || strcmp(type, "Fuse") == 0) {
        if (t->dec_mode == DEC_RAW) t->dec_mode = DEC_SPM;
    } else if (strcmp(type, "Strip") == 0) {
        json_t *st = json_object_get(o, "start");
        if (json_is_integer(st) && json_integer_value(st) > 0) t->dec_strip_first = 1;
    } else if (strcmp(type, "Metaspace") == 0) {
        t->dec_mode = DEC_SPM;
        const char *ps = jstr(o, "prepend_scheme", NULL);
        t->dec_strip_first = !(ps && strcmp(ps, "never") == 0);
    } else if (strcmp(type, "WordPiece") == 0) {
        t->dec_mode = DEC_WORDPIECE;
        t->dec_cleanup = jbool(o, "cleanup", 1);
    } else if (strcmp(type, "BPEDecoder") == 0 || strcmp(type, "CTC") == 0) {
        return rl_fail(err, RL_EUNSUPPORTED, "decoder type \"%s\" is not supported", type);
    } else return rl_fail(err, RL_EUNSUPPORTED, "decoder type \"%s\" is not supported", type);
    return RL_OK;
}

/* ---- model ---- */

static rl_status read_vocab(rl_tokenizer *t, json_t *vocab, rl_error *err) {
    if (!json_is_object(vocab)) return rl_fail(err, RL_EFORMAT, "model.vocab must be an object of piece: id");
    size_t n = json_object_size(vocab);
    if (n == 0) return rl_fail(err, RL_EFORMAT, "model.vocab is empty");
    if (n > MAX_ID) return rl_fail(err, RL_EFORMAT, "model.vocab has %zu entries (at most %d)", n, MAX_ID);
    const char *key;
    size_t klen;
    json_t *v;
    json_int_t max = -1;
    json_object_keylen_foreach(vocab, key, klen, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= MAX_ID)
            return rl_fail(err, RL_EFORMAT, "model.vocab: id of \"%.*s\" is not an integer in [0, %d)",
                           (int)(klen > 64 ? 64 : klen), key, MAX_ID);
        if (json_integer_value(v) > max) max = json_integer_value(v);
    }
    tok_reserve_ids(t, (int32_t)max + 1);
    if (max >= (json_int_t)n + (1 << 20))
        return rl_fail(err, RL_EFORMAT, "model.vocab: ids go up to %lld for %zu pieces", (long long)max, n);
    json_object_keylen_foreach(vocab, key, klen, v) {
        int r = tok_set_piece(t, (int32_t)json_integer_value(v), key, klen, TOK_NORMAL);
        if (r == -1)
            return rl_fail(err, RL_EFORMAT, "model.vocab: id %lld is used twice", (long long)json_integer_value(v));
        if (r != 0) return rl_fail(err, RL_EFORMAT, "model.vocab: piece of %zu bytes is too long", klen);
    }
    return RL_OK;
}

static rl_status read_merges(rl_tokenizer *t, json_t *merges, rl_error *err) {
    if (!merges) return rl_fail(err, RL_EFORMAT, "model.merges is missing (a BPE model needs its merges)");
    if (!json_is_array(merges)) return rl_fail(err, RL_EFORMAT, "model.merges must be an array");
    size_t i;
    json_t *m;
    rl_buf cat = {0};
    rl_status st = RL_OK;
    if (json_array_size(merges) > (size_t)MAX_ID) return rl_fail(err, RL_EFORMAT, "model.merges: too many merges");
    json_array_foreach(merges, i, m) {
        const char *a, *b;
        size_t al, bl;
        if (json_is_string(m)) {
            const char *s = json_string_value(m);
            size_t n = json_string_length(m);
            const char *sp = memchr(s, ' ', n);
            if (!sp) {
                st = rl_fail(err, RL_EFORMAT, "model.merges[%zu]: \"%.*s\" is not two pieces separated by a space", i,
                             (int)(n > 64 ? 64 : n), s);
                break;
            }
            a = s, al = (size_t)(sp - s);
            b = sp + 1, bl = n - al - 1;
            const char *sp2 = memchr(b, ' ', bl); /* "a b c": the reference keeps the first two */
            if (sp2) bl = (size_t)(sp2 - b);
        } else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
                   json_is_string(json_array_get(m, 1))) {
            a = json_string_value(json_array_get(m, 0)), al = json_string_length(json_array_get(m, 0));
            b = json_string_value(json_array_get(m, 1)), bl = json_string_length(json_array_get(m, 1));
        } else {
            st = rl_fail(err, RL_EFORMAT, "model.merges[%zu] is neither \"a b\" nor [\"a\", \"b\"]", i);
            break;
        }
        int32_t ia = tok_lookup(t, a, al), ib = tok_lookup(t, b, bl);
        cat.len = 0;
        rl_buf_append(&cat, a, al);
        rl_buf_append(&cat, b, bl);
        int32_t ic = tok_lookup(t, cat.data, cat.len);
        if (ia < 0 || ib < 0 || ic < 0) {
            st = rl_fail(err, RL_EFORMAT, "model.merges[%zu]: \"%.*s\" + \"%.*s\": %s is not in the vocabulary", i,
                         (int)(al > 64 ? 64 : al), a, (int)(bl > 64 ? 64 : bl), b,
                         ia < 0   ? "the left piece"
                         : ib < 0 ? "the right piece"
                                  : "the merged piece");
            break;
        }
        if (tok_add_merge(t, ia, ib, (int32_t)i, ic) != 0) {
            /* a repeated merge: the later rank wins, as in both reference implementations */
            uint64_t k = (((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib) + 1;
            for (size_t h = 0; h <= t->merges.mask; h++)
                if (t->merges.keys[h] == k) t->merges.rank[h] = (int32_t)i;
        }
    }
    rl_buf_free(&cat);
    return st;
}

static rl_status read_added(rl_tokenizer *t, json_t *added, rl_error *err) {
    if (!added || json_is_null(added)) return RL_OK;
    if (!json_is_array(added)) return rl_fail(err, RL_EFORMAT, "added_tokens must be an array");
    size_t n = json_array_size(added);
    if (n > 1u << 20) return rl_fail(err, RL_EFORMAT, "added_tokens: %zu entries is too many", n);
    t->added = rl_xcalloc(n + 1, sizeof *t->added);
    size_t i;
    json_t *a;
    json_array_foreach(added, i, a) {
        json_t *jid = json_object_get(a, "id");
        size_t cl = 0;
        const char *c = jstr(a, "content", &cl);
        if (!json_is_integer(jid) || json_integer_value(jid) < 0 || json_integer_value(jid) >= MAX_ID)
            return rl_fail(err, RL_EFORMAT, "added_tokens[%zu]: id is not an integer in [0, %d)", i, MAX_ID);
        if (!c) return rl_fail(err, RL_EFORMAT, "added_tokens[%zu]: no \"content\" string", i);
        if (cl == 0) return rl_fail(err, RL_EFORMAT, "added_tokens[%zu]: empty content", i);
        int32_t id = (int32_t)json_integer_value(jid);
        if (id >= t->n_vocab + (1 << 20))
            return rl_fail(err, RL_EFORMAT, "added_tokens[%zu]: id %d is far beyond the vocabulary", i, id);
        if (cl > TOK_MAX_PIECE) return rl_fail(err, RL_EFORMAT, "added_tokens[%zu]: content is too long", i);
        tok_added *x = &t->added[t->n_added++];
        x->id = id;
        x->content = rl_xmalloc(cl + 1);
        memcpy(x->content, c, cl);
        x->content[cl] = 0;
        x->len = cl;
        x->special = jbool(a, "special", 0);
        x->lstrip = jbool(a, "lstrip", 0);
        x->rstrip = jbool(a, "rstrip", 0);
        x->single_word = jbool(a, "single_word", 0);
        x->normalized = jbool(a, "normalized", !x->special);
        uint8_t attr = x->special ? TOK_CONTROL : TOK_USER;
        if (tok_set_piece(t, id, c, cl, attr) != 0) {
            /* the id exists in the model's vocabulary: the added token takes it over */
            size_t ol = t->len[id];
            if (ol != cl || memcmp(t->pool + t->off[id], c, cl) != 0) {
                t->off[id] = UINT32_MAX;
                tok_set_piece(t, id, c, cl, attr);
            }
            t->attr[id] = attr;
        }
    }
    return RL_OK;
}

rl_status tok_json_load(rl_tokenizer *t, const char *json, size_t len, rl_error *err) {
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &je);
    if (!root) return rl_fail(err, RL_EFORMAT, "invalid JSON at line %d, column %d: %s", je.line, je.column, je.text);
    rl_status st = RL_OK;
    json_t *model = json_object_get(root, "model");
    if (!json_is_object(root) || !json_is_object(model)) {
        st = rl_fail(err, RL_EFORMAT, "not a tokenizer.json: no \"model\" object");
        goto done;
    }
    const char *type = jstr(model, "type", NULL);
    if (!type)
        type = json_object_get(model, "merges")                      ? "BPE"
               : json_object_get(model, "continuing_subword_prefix") ? "WordPiece"
                                                                     : "?";
    if (strcmp(type, "BPE") != 0 && strcmp(type, "WordPiece") != 0) {
        st = rl_fail(err, RL_EUNSUPPORTED, "model type \"%s\" is not supported (BPE and WordPiece are)", type);
        goto done;
    }
    if ((st = read_vocab(t, json_object_get(model, "vocab"), err))) goto done;
    if ((st = tok_build_strmap(t, err))) goto done;
    if (strcmp(type, "BPE") == 0) {
        if ((st = read_merges(t, json_object_get(model, "merges"), err))) goto done;
        t->byte_fallback = jbool(model, "byte_fallback", 0);
        t->fuse_unk = jbool(model, "fuse_unk", 0);
        t->ignore_merges = jbool(model, "ignore_merges", 0);
        const char *sfx = jstr(model, "end_of_word_suffix", NULL),
                   *pfx = jstr(model, "continuing_subword_prefix", NULL);
        if ((sfx && *sfx) || (pfx && *pfx)) {
            st =
                rl_fail(err, RL_EUNSUPPORTED, "BPE with continuing_subword_prefix/end_of_word_suffix is not supported");
            goto done;
        }
    } else {
        t->kind = RL_TOK_WORDPIECE;
        const char *pfx = jstr(model, "continuing_subword_prefix", NULL);
        t->wp_prefix = rl_xstrdup(pfx ? pfx : "##");
        json_t *mx = json_object_get(model, "max_input_chars_per_word");
        if (json_is_integer(mx) && json_integer_value(mx) > 0 && json_integer_value(mx) < (1 << 30))
            t->wp_max_chars = (int)json_integer_value(mx);
        t->dec_mode = DEC_WORDPIECE;
    }
    size_t ul = 0;
    const char *unk = jstr(model, "unk_token", &ul);
    if ((st = read_added(t, json_object_get(root, "added_tokens"), err))) goto done;
    if ((st = tok_build_strmap(t, err))) goto done;
    if (unk) {
        t->unk = tok_lookup(t, unk, ul);
        if (t->unk < 0) {
            st = rl_fail(err, RL_EFORMAT, "model.unk_token \"%.*s\" is not in the vocabulary", (int)(ul > 64 ? 64 : ul),
                         unk);
            goto done;
        }
        if (t->attr[t->unk] == TOK_NORMAL) t->attr[t->unk] = TOK_UNKNOWN;
    }
    if ((st = add_norm(t, json_object_get(root, "normalizer"), 0, err))) goto done;
    if ((st = add_pre(t, json_object_get(root, "pre_tokenizer"), 0, err))) goto done;
    if (t->kind != RL_TOK_WORDPIECE) t->kind = t->bytelevel ? RL_TOK_BPE_BYTES : RL_TOK_BPE_SPM;
    if ((st = read_post(t, json_object_get(root, "post_processor"), 0, err))) goto done;
    if ((st = read_decoder(t, json_object_get(root, "decoder"), 0, err))) goto done;
    if (t->kind == RL_TOK_BPE_BYTES && t->dec_mode == DEC_RAW) t->dec_mode = DEC_BYTELEVEL;
    /* normalized forms of the added tokens that are matched after normalization */
    for (int i = 0; i < t->n_added; i++) {
        tok_added *a = &t->added[i];
        if (!(a->normalized && t->has_normalizer)) continue;
        rl_buf nb = {0};
        if ((st = tok_normalize(t, a->content, a->len, &nb, err))) {
            rl_buf_free(&nb);
            goto done;
        }
        a->norm_len = nb.len;
        a->norm = rl_buf_take(&nb);
    }
    if ((st = tok_added_index(t, err))) goto done;
    if (t->kind == RL_TOK_BPE_SPM) {
        t->spm_cut_ok = 1;
        for (int32_t id = 0; id < t->n_vocab && t->spm_cut_ok; id++) {
            const char *p = t->pool + t->off[id];
            if (t->off[id] == UINT32_MAX) continue;
            for (uint32_t k = 3; k + 3 <= t->len[id]; k++)
                if (memcmp(p + k, "\xE2\x96\x81", 3) == 0 && memcmp(p + k - 3, "\xE2\x96\x81", 3) != 0) {
                    t->spm_cut_ok = 0;
                    break;
                }
        }
    }
    /* bos/eos when the post-processor does not name them */
    static const char *const bos_names[] = {"<|begin_of_text|>", "<s>", "[CLS]", "<bos>"};
    static const char *const eos_names[] = {"<|end_of_text|>", "<|endoftext|>", "</s>", "[SEP]", "<eos>"};
    for (size_t k = 0; k < 4 && t->bos < 0; k++) t->bos = tok_lookup(t, bos_names[k], strlen(bos_names[k]));
    for (size_t k = 0; k < 5 && t->eos < 0; k++) t->eos = tok_lookup(t, eos_names[k], strlen(eos_names[k]));
done:
    json_decref(root);
    return st;
}

static const char *token_name(json_t *v) { /* "x" or {"content": "x"} */
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_object(v)) return jstr(v, "content", NULL);
    return NULL;
}

rl_status tok_json_read_config(rl_tokenizer *t, const char *json, size_t len, rl_error *err) {
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_DECODE_INT_AS_REAL, &je); /* model_max_length is 1e30 */
    if (!root) return rl_fail(err, RL_EFORMAT, "invalid JSON at line %d, column %d: %s", je.line, je.column, je.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return rl_fail(err, RL_EFORMAT, "tokenizer_config.json is not an object");
    }
    const char *b = token_name(json_object_get(root, "bos_token"));
    const char *e = token_name(json_object_get(root, "eos_token"));
    if (b && tok_lookup(t, b, strlen(b)) >= 0) {
        t->bos = tok_lookup(t, b, strlen(b));
        free(t->bos_str);
        t->bos_str = rl_xstrdup(b);
    }
    if (e && tok_lookup(t, e, strlen(e)) >= 0) {
        t->eos = tok_lookup(t, e, strlen(e));
        free(t->eos_str);
        t->eos_str = rl_xstrdup(e);
    }
    json_t *ct = json_object_get(root, "chat_template");
    const char *tmpl = NULL;
    if (json_is_string(ct)) tmpl = json_string_value(ct);
    else if (json_is_array(ct)) {
        size_t i;
        json_t *v;
        json_array_foreach(ct, i, v) {
            const char *name = jstr(v, "name", NULL);
            if (!tmpl || (name && strcmp(name, "default") == 0)) tmpl = jstr(v, "template", NULL);
        }
    }
    if (tmpl) {
        free(t->chat_template);
        t->chat_template = rl_xstrdup(tmpl);
    }
    json_decref(root);
    return RL_OK;
}
