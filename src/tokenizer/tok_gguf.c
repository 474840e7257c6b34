/* tok_gguf.c - the vocabulary of a GGUF file (tokenizer.ggml.* keys) as an rl_tokenizer.
 *
 * A minimal reader of GGUF's key/value section (versions 2 and 3, little-endian): header, then
 * n_kv entries of (string key, uint32 type, value). Every length and count is checked against
 * the bytes left before it is used, so a file that lies about a count is an error, never an
 * out-of-bounds read or a huge allocation. The tensor directory after the KV section is not read:
 * the engine's model loader owns that (the lead may later unify both readers in src/model/).
 *
 * Supported vocabularies (tokenizer.ggml.model):
 *   "gpt2"  byte-level BPE with merges; the pre-tokenizer regex comes from tokenizer.ggml.pre
 *           ("llama-bpe"/"llama3", "qwen2", "gpt2", "smollm", "default").
 *   "llama" SentencePiece BPE by scores (llama.cpp's algorithm), byte tokens from token types.
 *   "bert"  llama.cpp's WPM (BERT WordPiece with U+2581 word starts), [CLS] ... [SEP].
 * Token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte; control and
 * user-defined (and unknown, as llama.cpp does) tokens are matched in the text as added tokens. */
#include "tokenizer/tok_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { G_U8, G_I8, G_U16, G_I16, G_U32, G_I32, G_F32, G_BOOL, G_STR, G_ARR, G_U64, G_I64, G_F64, G_NTYPES };
static const size_t gsize[G_NTYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

typedef struct cur {
    const uint8_t *p;
    size_t n, off;
} cur;

static int rd(cur *c, void *out, size_t k) {
    if (c->n - c->off < k) return -1;
    memcpy(out, c->p + c->off, k);
    c->off += k;
    return 0;
}

static int rd_str(cur *c, const char **s, uint64_t *len) {
    if (rd(c, len, 8)) return -1;
    if (*len > c->n - c->off) return -1;
    *s = (const char *)c->p + c->off;
    c->off += *len;
    return 0;
}

/* a value we keep: where it is and what it holds */
typedef struct gval {
    uint32_t type, atype; /* atype: element type for arrays */
    uint64_t count;       /* arrays */
    size_t off;           /* of the value (array: of the first element) */
} gval;

static rl_status skip_value(cur *c, uint32_t type, int depth, gval *v, rl_error *err) {
    if (type >= G_NTYPES) return rl_fail(err, RL_EFORMAT, "GGUF: unknown value type %u at offset %zu", type, c->off);
    if (v) v->type = type, v->off = c->off;
    if (type == G_STR) {
        const char *s;
        uint64_t l;
        if (rd_str(c, &s, &l)) return rl_fail(err, RL_EFORMAT, "GGUF: string at offset %zu runs past the end", c->off);
        return RL_OK;
    }
    if (type != G_ARR) {
        if (c->n - c->off < gsize[type]) return rl_fail(err, RL_EFORMAT, "GGUF: truncated value at offset %zu", c->off);
        c->off += gsize[type];
        return RL_OK;
    }
    if (depth > 2) return rl_fail(err, RL_EFORMAT, "GGUF: arrays nested too deep");
    uint32_t at;
    uint64_t count;
    if (rd(c, &at, 4) || rd(c, &count, 8)) return rl_fail(err, RL_EFORMAT, "GGUF: truncated array header");
    if (at >= G_NTYPES) return rl_fail(err, RL_EFORMAT, "GGUF: unknown array element type %u", at);
    size_t left = c->n - c->off;
    size_t min = at == G_STR ? 8 : at == G_ARR ? 12 : gsize[at];
    if (count > left / min)
        return rl_fail(err, RL_EFORMAT, "GGUF: array claims %llu elements but only %zu bytes are left",
                       (unsigned long long)count, left);
    if (v) v->atype = at, v->count = count, v->off = c->off;
    if (at == G_STR || at == G_ARR) {
        for (uint64_t i = 0; i < count; i++) {
            rl_status st = skip_value(c, at, depth + 1, NULL, err);
            if (st) return st;
        }
    } else c->off += (size_t)count * gsize[at];
    return RL_OK;
}

typedef struct gkv {
    gval model, pre, tokens, scores, types, merges, bos, eos, unk, pad, add_bos, add_eos, add_space, tmpl, cls, sep;
} gkv;

static int get_u32(const cur *c, const gval *v, int64_t *out) {
    const uint8_t *p = c->p + v->off;
    switch (v->type) {
    case G_U32: {
        uint32_t x;
        memcpy(&x, p, 4);
        *out = x;
        return 1;
    }
    case G_I32: {
        int32_t x;
        memcpy(&x, p, 4);
        *out = x;
        return 1;
    }
    case G_U64: {
        uint64_t x;
        memcpy(&x, p, 8);
        *out = x > INT32_MAX ? -2 : (int64_t)x;
        return 1;
    }
    case G_I64: {
        int64_t x;
        memcpy(&x, p, 8);
        *out = x;
        return 1;
    }
    }
    return 0;
}

static int get_bool(const cur *c, const gval *v, int def) {
    if (v->type == G_BOOL) return c->p[v->off] != 0;
    return def;
}

static const char *llama3_re = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                               "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char *qwen2_re = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                              "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char *gpt2_re = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static rl_status add_split(rl_tokenizer *t, const char *re, rl_error *err) {
    tok_pre p = {.type = PRE_SPLIT, .behavior = SPLIT_ISOLATED};
    p.re = tok_regex_compile(re, strlen(re), 0, err);
    if (!p.re) return RL_EINTERNAL;
    t->pres = rl_xrealloc(t->pres, (size_t)(t->n_pres + 1) * sizeof *t->pres);
    t->pres[t->n_pres++] = p;
    return RL_OK;
}

rl_status tok_gguf_load(rl_tokenizer *t, const uint8_t *data, size_t size, rl_error *err) {
    cur c = {data, size, 4};
    uint32_t version;
    uint64_t n_tensors, n_kv;
    if (rd(&c, &version, 4) || rd(&c, &n_tensors, 8) || rd(&c, &n_kv, 8))
        return rl_fail(err, RL_EFORMAT, "GGUF: truncated header (%zu bytes)", size);
    if (version < 2 || version > 3)
        return rl_fail(err, RL_EUNSUPPORTED, "GGUF version %u is not supported (2 and 3 are)", version);
    if (n_kv > (size - c.off) / 13)
        return rl_fail(err, RL_EFORMAT, "GGUF: header claims %llu key/value pairs, more than the file can hold",
                       (unsigned long long)n_kv);
    gkv kv;
    memset(&kv, 0, sizeof kv);
    gval *all[] = {&kv.model, &kv.pre, &kv.tokens,  &kv.scores,  &kv.types,     &kv.merges, &kv.bos, &kv.eos,
                   &kv.unk,   &kv.pad, &kv.add_bos, &kv.add_eos, &kv.add_space, &kv.tmpl,   &kv.cls, &kv.sep};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) all[i]->type = UINT32_MAX;
    static const char *const names[] = {"tokenizer.ggml.model",
                                        "tokenizer.ggml.pre",
                                        "tokenizer.ggml.tokens",
                                        "tokenizer.ggml.scores",
                                        "tokenizer.ggml.token_type",
                                        "tokenizer.ggml.merges",
                                        "tokenizer.ggml.bos_token_id",
                                        "tokenizer.ggml.eos_token_id",
                                        "tokenizer.ggml.unknown_token_id",
                                        "tokenizer.ggml.padding_token_id",
                                        "tokenizer.ggml.add_bos_token",
                                        "tokenizer.ggml.add_eos_token",
                                        "tokenizer.ggml.add_space_prefix",
                                        "tokenizer.chat_template",
                                        "tokenizer.ggml.cls_token_id",
                                        "tokenizer.ggml.seperator_token_id"};
    for (uint64_t i = 0; i < n_kv; i++) {
        const char *key;
        uint64_t klen;
        uint32_t type;
        if (rd_str(&c, &key, &klen) || rd(&c, &type, 4))
            return rl_fail(err, RL_EFORMAT, "GGUF: key/value %llu is cut off at offset %zu", (unsigned long long)i,
                           c.off);
        gval v = {0};
        rl_status st = skip_value(&c, type, 0, &v, err);
        if (st) {
            rl_error_prefix(err, "key \"%.*s\"", (int)(klen > 80 ? 80 : klen), key);
            return st;
        }
        for (size_t k = 0; k < sizeof names / sizeof *names; k++)
            if (klen == strlen(names[k]) && memcmp(key, names[k], klen) == 0) *all[k] = v;
    }
    if (kv.model.type != G_STR)
        return rl_fail(err, RL_EFORMAT, "GGUF: no tokenizer.ggml.model string (no vocabulary in this file)");
    const char *model;
    uint64_t mlen;
    cur mc = {data, size, kv.model.off};
    rd_str(&mc, &model, &mlen);
    int is_gpt2 = mlen == 4 && memcmp(model, "gpt2", 4) == 0, is_llama = mlen == 5 && memcmp(model, "llama", 5) == 0;
    int is_bert = mlen == 4 && memcmp(model, "bert", 4) == 0;
    if (!is_gpt2 && !is_llama && !is_bert)
        return rl_fail(err, RL_EUNSUPPORTED, "GGUF tokenizer model \"%.*s\" is not supported (gpt2, llama, bert are)",
                       (int)(mlen > 40 ? 40 : mlen), model);
    if (kv.tokens.type != G_ARR || kv.tokens.atype != G_STR)
        return rl_fail(err, RL_EFORMAT, "GGUF: tokenizer.ggml.tokens is missing or not an array of strings");
    uint64_t n = kv.tokens.count;
    if (n == 0 || n > (1u << 24)) return rl_fail(err, RL_EFORMAT, "GGUF: %llu tokens", (unsigned long long)n);
    if (kv.scores.type != UINT32_MAX && (kv.scores.type != G_ARR || kv.scores.atype != G_F32 || kv.scores.count != n))
        return rl_fail(err, RL_EFORMAT, "GGUF: tokenizer.ggml.scores must be %llu float32", (unsigned long long)n);
    if (kv.types.type != UINT32_MAX && (kv.types.type != G_ARR || kv.types.atype != G_I32 || kv.types.count != n))
        return rl_fail(err, RL_EFORMAT, "GGUF: tokenizer.ggml.token_type must be %llu int32", (unsigned long long)n);
    if (is_llama && kv.scores.type == UINT32_MAX)
        return rl_fail(err, RL_EFORMAT, "GGUF: a llama vocabulary needs tokenizer.ggml.scores");
    tok_reserve_ids(t, (int32_t)n);
    if (is_llama) t->score = rl_xcalloc((size_t)n, sizeof *t->score);
    cur tc = {data, size, kv.tokens.off};
    int n_added = 0;
    t->added = rl_xcalloc((size_t)n + 1, sizeof *t->added);
    for (uint64_t i = 0; i < n; i++) {
        const char *s;
        uint64_t l;
        rd_str(&tc, &s, &l); /* checked by skip_value */
        int32_t type = 1;
        if (kv.types.type == G_ARR) memcpy(&type, data + kv.types.off + 4 * i, 4);
        uint8_t attr = type == 2   ? TOK_UNKNOWN
                       : type == 3 ? TOK_CONTROL
                       : type == 4 ? TOK_USER
                       : type == 6 ? TOK_BYTE
                       : type == 5 ? TOK_NORMAL
                                   : TOK_NORMAL;
        if (tok_set_piece(t, (int32_t)i, s, (size_t)l, attr) != 0)
            return rl_fail(err, RL_EFORMAT, "GGUF: token %llu is %llu bytes long (at most %u)", (unsigned long long)i,
                           (unsigned long long)l, TOK_MAX_PIECE);
        if (t->score) {
            float f;
            memcpy(&f, data + kv.scores.off + 4 * i, 4);
            t->score[i] = isnan(f) ? -INFINITY : f;
        }
        if (type == 2 && t->unk < 0) t->unk = (int32_t)i;
        if ((type == 2 || type == 3 || type == 4) && l > 0) { /* llama.cpp matches these in text */
            tok_added *a = &t->added[n_added++];
            a->id = (int32_t)i;
            a->content = rl_xmalloc((size_t)l + 1);
            memcpy(a->content, s, (size_t)l);
            a->content[l] = 0;
            a->len = (size_t)l;
            a->special = type != 4;
        }
    }
    t->n_added = n_added;
    rl_status st = tok_build_strmap(t, err);
    if (st) return st;
    int64_t v;
    if (kv.bos.type != UINT32_MAX && get_u32(&c, &kv.bos, &v)) t->bos = (int32_t)(v >= 0 && v < (int64_t)n ? v : -2);
    if (kv.eos.type != UINT32_MAX && get_u32(&c, &kv.eos, &v)) t->eos = (int32_t)(v >= 0 && v < (int64_t)n ? v : -2);
    if (kv.unk.type != UINT32_MAX && get_u32(&c, &kv.unk, &v)) t->unk = (int32_t)(v >= 0 && v < (int64_t)n ? v : -2);
    if (kv.pad.type != UINT32_MAX && get_u32(&c, &kv.pad, &v)) t->pad = (int32_t)(v >= 0 && v < (int64_t)n ? v : -1);
    if (t->bos == -2 || t->eos == -2 || t->unk == -2)
        return rl_fail(err, RL_EFORMAT, "GGUF: a bos/eos/unknown token id is out of range (vocabulary of %llu)",
                       (unsigned long long)n);
    int add_bos = kv.add_bos.type != UINT32_MAX ? get_bool(&c, &kv.add_bos, 0) : is_llama;
    int add_eos = kv.add_eos.type != UINT32_MAX ? get_bool(&c, &kv.add_eos, 0) : 0;
    if ((add_bos && t->bos >= 0) || (add_eos && t->eos >= 0)) {
        int k = 0;
        t->tmpl = rl_xcalloc(3, sizeof *t->tmpl);
        if (add_bos && t->bos >= 0) t->tmpl[k++].id = t->bos;
        t->tmpl[k++].id = -1;
        if (add_eos && t->eos >= 0) t->tmpl[k++].id = t->eos;
        t->n_tmpl = k;
    }
    if (kv.tmpl.type == G_STR) {
        cur cc = {data, size, kv.tmpl.off};
        const char *s;
        uint64_t l;
        rd_str(&cc, &s, &l);
        t->chat_template = rl_xstrndup(s, (size_t)l);
    }
    if (is_bert) {
        /* llama.cpp: [CLS] text [SEP] (defaults 101 and 102), pieces carry U+2581 */
        int64_t cls = 101, sep = 102;
        if (kv.cls.type != UINT32_MAX) get_u32(&c, &kv.cls, &cls);
        else if (kv.bos.type != UINT32_MAX) get_u32(&c, &kv.bos, &cls);
        if (kv.sep.type != UINT32_MAX) get_u32(&c, &kv.sep, &sep);
        if (cls < 0 || cls >= (int64_t)n || sep < 0 || sep >= (int64_t)n)
            return rl_fail(err, RL_EFORMAT, "GGUF: cls/sep token id out of range (vocabulary of %llu)",
                           (unsigned long long)n);
        if (t->unk < 0 && 100 < (int64_t)n) t->unk = 100;
        free(t->tmpl);
        t->tmpl = rl_xcalloc(3, sizeof *t->tmpl);
        t->tmpl[0].id = (int32_t)cls, t->tmpl[1].id = -1, t->tmpl[2].id = (int32_t)sep;
        t->n_tmpl = 3;
        t->bos = (int32_t)cls;
        t->eos = (int32_t)sep;
        t->kind = RL_TOK_WORDPIECE;
        t->wpm = 1;
        t->dec_mode = DEC_SPM;
        t->dec_strip_first = 1;
        return tok_added_index(t, err);
    }
    if (is_llama) {
        t->kind = RL_TOK_SPM_SCORES;
        t->spm_add_space = kv.add_space.type != UINT32_MAX ? get_bool(&c, &kv.add_space, 1) : 1;
        t->dec_mode = DEC_SPM;
        t->dec_strip_first = t->spm_add_space;
        return tok_added_index(t, err);
    }
    /* gpt2 */
    t->kind = RL_TOK_BPE_BYTES;
    t->bytelevel = 1;
    t->dec_mode = DEC_BYTELEVEL;
    if (kv.merges.type != G_ARR || kv.merges.atype != G_STR)
        return rl_fail(err, RL_EFORMAT, "GGUF: a gpt2 vocabulary needs tokenizer.ggml.merges (an array of strings)");
    if (kv.merges.count > (1u << 24)) return rl_fail(err, RL_EFORMAT, "GGUF: too many merges");
    cur gc = {data, size, kv.merges.off};
    rl_buf cat = {0};
    for (uint64_t i = 0; i < kv.merges.count; i++) {
        const char *s;
        uint64_t l;
        rd_str(&gc, &s, &l);
        const char *sp = memchr(s, ' ', (size_t)l);
        if (!sp) {
            rl_buf_free(&cat);
            return rl_fail(err, RL_EFORMAT, "GGUF: merge %llu has no space", (unsigned long long)i);
        }
        size_t al = (size_t)(sp - s), bl = (size_t)l - al - 1;
        int32_t a = tok_lookup(t, s, al), b = tok_lookup(t, sp + 1, bl);
        cat.len = 0;
        rl_buf_append(&cat, s, (size_t)l);
        memmove(cat.data + al, cat.data + al + 1, bl);
        cat.len--;
        int32_t m = tok_lookup(t, cat.data, cat.len);
        if (a < 0 || b < 0 || m < 0) {
            rl_buf_free(&cat);
            return rl_fail(err, RL_EFORMAT, "GGUF: merge %llu names a piece that is not in the vocabulary",
                           (unsigned long long)i);
        }
        tok_add_merge(t, a, b, (int32_t)i, m);
    }
    rl_buf_free(&cat);
    const char *pre = "default";
    uint64_t plen = 7;
    if (kv.pre.type == G_STR) {
        cur pc = {data, size, kv.pre.off};
        rd_str(&pc, &pre, &plen);
    }
#define PRE_IS(s) (plen == strlen(s) && memcmp(pre, s, plen) == 0)
    if (PRE_IS("llama-bpe") || PRE_IS("llama3") || PRE_IS("llama-v3")) st = add_split(t, llama3_re, err);
    else if (PRE_IS("qwen2") || PRE_IS("deepseek-r1-qwen") || PRE_IS("stablelm2")) st = add_split(t, qwen2_re, err);
    else if (PRE_IS("smollm") || PRE_IS("starcoder") || PRE_IS("refact") || PRE_IS("command-r") ||
             PRE_IS("codeshell") || PRE_IS("exaone") || PRE_IS("minerva")) {
        st = add_split(t, "\\p{N}", err);
        if (!st) st = add_split(t, gpt2_re, err);
    } else if (PRE_IS("gpt2") || PRE_IS("default") || PRE_IS("gpt-2") || PRE_IS("mpt") || PRE_IS("olmo") ||
               PRE_IS("jais"))
        st = add_split(t, gpt2_re, err);
    else
        return rl_fail(err, RL_EUNSUPPORTED,
                       "GGUF pre-tokenizer \"%.*s\" is not supported (llama-bpe, qwen2, smollm, gpt2)",
                       (int)(plen > 40 ? 40 : plen), pre);
#undef PRE_IS
    if (st) return st;
    return tok_added_index(t, err);
}
