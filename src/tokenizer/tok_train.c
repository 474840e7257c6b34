/* tok_train.c - trains a byte-level BPE vocabulary on some texts and writes it as a Hugging Face
 * tokenizer.json (the layout of Qwen2's: a Split pre-tokenizer with one digit per pre-token,
 * then ByteLevel without its own regex; ByteLevel decoder), so a model trained from scratch
 * needs no downloaded tokenizer. rl_tok_load reads the result like any other tokenizer.json.
 *
 * How: the texts are cut into pre-tokens with the same compiled regex the loader uses, equal
 * pre-tokens are counted once with their frequency, and the most frequent adjacent pair is
 * merged until the vocabulary is full or no pair occurs twice. Ties go to the smaller
 * (left id, right id), so the result depends only on the texts and the size. Pair counts are
 * recounted for every merge: simple, and fast enough for a corpus of a few MB and a few
 * thousand merges (the incremental update with a priority queue is what large corpora need).
 * Digits stay single tokens on purpose: a small student copies figures digit by digit from its
 * documents, which works for figures it has never seen. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tokenizer/tok_internal.h"

/* Qwen2's pre-tokenizer regex: contractions, letters with one leading non-letter, single
 * digits, punctuation runs, newlines, spaces */
const char rl_tok_qwen2_regex[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                                  "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
#define PRETOK_RE rl_tok_qwen2_regex
static const char *const SPECIALS[] = {"<s>", "</s>"};
enum { N_SPECIAL = 2, FIRST_BYTE = N_SPECIAL, FIRST_MERGE = N_SPECIAL + 256 };

typedef struct word { /* one distinct pre-token as a list of symbol ids */
    int32_t *sym;
    int n;
    int64_t count;
} word;

typedef struct wordmap { /* pre-token bytes -> index into words (open addressing) */
    uint32_t *slot;      /* index + 1, 0 = empty */
    size_t mask;
    rl_buf bytes;        /* every distinct pre-token, back to back */
    size_t *off, *len;
    word *w;
    size_t n, cap;
} wordmap;

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static void wordmap_grow(wordmap *m) {
    size_t cap = m->mask ? (m->mask + 1) * 2 : 1024;
    uint32_t *slot = rl_xcalloc(cap, sizeof *slot);
    for (size_t i = 0; i < m->n; i++) {
        size_t h = hash_bytes(m->bytes.data + m->off[i], m->len[i]) & (cap - 1);
        while (slot[h]) h = (h + 1) & (cap - 1);
        slot[h] = (uint32_t)i + 1;
    }
    free(m->slot);
    m->slot = slot, m->mask = cap - 1;
}

static void wordmap_add(wordmap *m, const char *s, size_t n) {
    if (2 * (m->n + 1) > m->mask + 1) wordmap_grow(m);
    size_t h = hash_bytes(s, n) & m->mask;
    for (; m->slot[h]; h = (h + 1) & m->mask) {
        size_t i = m->slot[h] - 1;
        if (m->len[i] == n && memcmp(m->bytes.data + m->off[i], s, n) == 0) {
            m->w[i].count++;
            return;
        }
    }
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 1024;
        m->off = rl_xrealloc(m->off, m->cap * sizeof *m->off);
        m->len = rl_xrealloc(m->len, m->cap * sizeof *m->len);
        m->w = rl_xrealloc(m->w, m->cap * sizeof *m->w);
    }
    m->off[m->n] = m->bytes.len, m->len[m->n] = n;
    rl_buf_append(&m->bytes, s, n);
    word *w = &m->w[m->n];
    w->n = (int)n, w->count = 1;
    w->sym = rl_xmalloc((n ? n : 1) * sizeof *w->sym);
    for (size_t i = 0; i < n; i++) w->sym[i] = FIRST_BYTE + (unsigned char)s[i];
    m->slot[h] = (uint32_t)++m->n;
}

static void wordmap_free(wordmap *m) {
    for (size_t i = 0; i < m->n; i++) free(m->w[i].sym);
    free(m->w), free(m->off), free(m->len), free(m->slot);
    rl_buf_free(&m->bytes);
}

/* pair counts: (a << 32 | b) + 1 -> count, open addressing, cleared for every merge */
typedef struct pairmap {
    uint64_t *key;
    int64_t *count;
    size_t mask, n;
} pairmap;

static void pair_add(pairmap *p, uint64_t key, int64_t c);

static void pair_grow(pairmap *p) {
    pairmap q = {0};
    q.mask = (p->mask + 1) * 2 - 1;
    q.key = rl_xcalloc(q.mask + 1, sizeof *q.key);
    q.count = rl_xcalloc(q.mask + 1, sizeof *q.count);
    for (size_t i = 0; i <= p->mask; i++)
        if (p->key[i]) pair_add(&q, p->key[i] - 1, p->count[i]);
    free(p->key), free(p->count);
    *p = q;
}

static void pair_add(pairmap *p, uint64_t key, int64_t c) {
    if (2 * (p->n + 1) > p->mask + 1) pair_grow(p);
    size_t h = (size_t)((key + 1) * 0x9E3779B97F4A7C15ull >> 17) & p->mask;
    while (p->key[h] && p->key[h] != key + 1) h = (h + 1) & p->mask;
    if (!p->key[h]) p->key[h] = key + 1, p->n++;
    p->count[h] += c;
}

/* a piece's bytes as byte-level characters (the vocabulary's spelling) */
static void piece_put(rl_buf *b, const rl_buf *raw, size_t off, size_t len) {
    for (size_t i = 0; i < len; i++) tok_put_cp(b, tok_byte_to_cp((unsigned char)raw->data[off + i]));
}

static rl_status write_json(const rl_buf *raw, const size_t *poff, const size_t *plen, int n_ids, const int32_t (*merge)[2],
                            int n_merges, char **out, rl_error *err) {
    json_t *root = json_object(), *added = json_array(), *vocab = json_object(), *merges = json_array();
    rl_buf b = {0};
    for (int i = 0; i < N_SPECIAL; i++) {
        json_array_append_new(added, json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", i, "content", SPECIALS[i],
                                               "single_word", 0, "lstrip", 0, "rstrip", 0, "normalized", 0, "special", 1));
        json_object_set_new(vocab, SPECIALS[i], json_integer(i));
    }
    for (int id = FIRST_BYTE; id < n_ids; id++) {
        b.len = 0;
        piece_put(&b, raw, poff[id], plen[id]);
        json_object_set_new(vocab, b.data, json_integer(id));
    }
    for (int i = 0; i < n_merges; i++) {
        b.len = 0;
        piece_put(&b, raw, poff[merge[i][0]], plen[merge[i][0]]);
        rl_buf_putc(&b, ' ');
        piece_put(&b, raw, poff[merge[i][1]], plen[merge[i][1]]);
        json_array_append_new(merges, json_string(b.data));
    }
    rl_buf_free(&b);
    json_object_set_new(root, "version", json_string("1.0"));
    json_object_set_new(root, "truncation", json_null());
    json_object_set_new(root, "padding", json_null());
    json_object_set_new(root, "added_tokens", added);
    json_object_set_new(root, "normalizer", json_null());
    json_object_set_new(root, "pre_tokenizer",
                        json_pack("{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, {s:s, s:b, s:b, s:b}]}", "type", "Sequence",
                                  "pretokenizers", "type", "Split", "pattern", "Regex", PRETOK_RE, "behavior", "Isolated",
                                  "invert", 0, "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 0, "use_regex",
                                  0));
    json_object_set_new(root, "post_processor", json_null());
    json_object_set_new(root, "decoder", json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 1,
                                                   "trim_offsets", 1, "use_regex", 1));
    json_object_set_new(root, "model", json_pack("{s:s, s:n, s:n, s:n, s:n, s:b, s:b, s:b, s:o, s:o}", "type", "BPE",
                                                 "dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix",
                                                 "fuse_unk", 0, "byte_fallback", 0, "ignore_merges", 0, "vocab", vocab,
                                                 "merges", merges));
    char *s = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!s) return rl_fail(err, RL_ENOMEM, "tokenizer.json: out of memory");
    *out = s;
    return RL_OK;
}

rl_status rl_tok_train_bpe(const char *const *texts, const size_t *lens, size_t n_texts, int vocab_size, char **json_out,
                           rl_error *err) {
    *json_out = NULL;
    if (vocab_size < FIRST_MERGE || vocab_size > (1 << 20))
        return rl_fail(err, RL_EINVAL, "vocab_size %d: must be from %d (specials and bytes) to %d", vocab_size, FIRST_MERGE,
                       1 << 20);
    pcre2_code *re = tok_regex_compile(PRETOK_RE, strlen(PRETOK_RE), 0, err);
    if (!re) return RL_EFORMAT;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    wordmap m = {0};
    rl_buf clean = {0};
    for (size_t t = 0; t < n_texts; t++) {
        clean.len = 0;
        tok_sanitize_utf8(texts[t], lens[t], &clean);
        const char *s = clean.data ? clean.data : "";
        size_t n = clean.len, at = 0, last = 0;
        /* Isolated split: the matches and the gaps between them are the pre-tokens */
        while (at <= n) {
            int rc = pcre2_match(re, (PCRE2_SPTR)s, n, at, 0, md, NULL);
            if (rc < 0) break;
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t ms = ov[0], me = ov[1];
            if (ms > last) wordmap_add(&m, s + last, ms - last);
            if (me > ms) wordmap_add(&m, s + ms, me - ms);
            last = me;
            at = me > ms ? me : ms + (ms < n ? (size_t)tok_u8len((unsigned char)s[ms]) : 1);
        }
        if (last < n) wordmap_add(&m, s + last, n - last);
    }
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    rl_buf_free(&clean);

    /* pieces: bytes first, then one per merge, as (offset, length) into raw */
    rl_buf raw = {0};
    size_t *poff = rl_xmalloc((size_t)vocab_size * sizeof *poff), *plen = rl_xmalloc((size_t)vocab_size * sizeof *plen);
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        poff[FIRST_BYTE + b] = raw.len, plen[FIRST_BYTE + b] = 1;
        rl_buf_append(&raw, &c, 1);
    }
    int32_t (*merge)[2] = rl_xmalloc((size_t)vocab_size * sizeof *merge);
    int n_ids = FIRST_MERGE, n_merges = 0;
    pairmap p = {0};
    p.mask = 4095;
    p.key = rl_xcalloc(p.mask + 1, sizeof *p.key);
    p.count = rl_xcalloc(p.mask + 1, sizeof *p.count);
    while (n_ids < vocab_size) {
        memset(p.key, 0, (p.mask + 1) * sizeof *p.key);
        memset(p.count, 0, (p.mask + 1) * sizeof *p.count);
        p.n = 0;
        for (size_t i = 0; i < m.n; i++)
            for (int k = 0; k + 1 < m.w[i].n; k++)
                pair_add(&p, (uint64_t)m.w[i].sym[k] << 32 | (uint32_t)m.w[i].sym[k + 1], m.w[i].count);
        uint64_t best = 0;
        int64_t best_count = 1; /* a pair must occur at least twice */
        for (size_t h = 0; h <= p.mask; h++)
            if (p.key[h] && (p.count[h] > best_count || (p.count[h] == best_count && best && p.key[h] - 1 < best)))
                best = p.key[h] - 1, best_count = p.count[h];
        if (best_count < 2 || !best) break;
        int32_t a = (int32_t)(best >> 32), b = (int32_t)(best & 0xffffffffu), id = n_ids++;
        merge[n_merges][0] = a, merge[n_merges][1] = b, n_merges++;
        poff[id] = raw.len, plen[id] = plen[a] + plen[b];
        rl_buf_reserve(&raw, plen[a] + plen[b] + 1); /* no move while it copies from itself */
        memcpy(raw.data + raw.len, raw.data + poff[a], plen[a]);
        memcpy(raw.data + raw.len + plen[a], raw.data + poff[b], plen[b]);
        raw.len += plen[a] + plen[b];
        raw.data[raw.len] = 0;
        for (size_t i = 0; i < m.n; i++) { /* apply left to right, as the encoder does */
            word *w = &m.w[i];
            int o = 0;
            for (int k = 0; k < w->n; k++) {
                if (k + 1 < w->n && w->sym[k] == a && w->sym[k + 1] == b) w->sym[o++] = id, k++;
                else w->sym[o++] = w->sym[k];
            }
            w->n = o;
        }
    }
    free(p.key), free(p.count);
    rl_status st = write_json(&raw, poff, plen, n_ids, (const int32_t (*)[2])merge, n_merges, json_out, err);
    free(merge), free(poff), free(plen);
    rl_buf_free(&raw);
    wordmap_free(&m);
    return st;
}
