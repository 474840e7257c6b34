/* tok_core.c - the tokenizer object: vocabulary storage and hash maps, loading by format,
 * encode/decode dispatch, the streaming decoder and the small accessors of tokenizer.h.
 *
 * The vocabulary is one pool of NUL-terminated pieces indexed by id; lookups go through an
 * open-addressing table of ids keyed by the piece bytes. Merges are a second table keyed by the
 * (left, right) id pair. Decoding uses a table of the decoded bytes of every id, built once at
 * load, so decode is a concatenation plus the few decoder rules (leading space, WordPiece joins). */
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- vocabulary ------------------------------------------------------------------------- */

rl_tokenizer *tok_new(void) {
    rl_tokenizer *t = rl_xcalloc(1, sizeof *t);
    t->bos = t->eos = t->unk = t->pad = -1;
    for (int i = 0; i < 256; i++) t->byte_id[i] = t->bl_id[i] = -1;
    t->wp_max_chars = 100;
    return t;
}

void tok_reserve_ids(rl_tokenizer *t, int32_t n) {
    if (n <= t->n_vocab) return;
    t->off = rl_xrealloc(t->off, (size_t)n * sizeof *t->off);
    t->len = rl_xrealloc(t->len, (size_t)n * sizeof *t->len);
    t->attr = rl_xrealloc(t->attr, (size_t)n);
    if (t->score) t->score = rl_xrealloc(t->score, (size_t)n * sizeof *t->score);
    for (int32_t i = t->n_vocab; i < n; i++) {
        t->off[i] = UINT32_MAX;
        t->len[i] = 0;
        t->attr[i] = TOK_UNUSED;
        if (t->score) t->score[i] = 0;
    }
    t->n_vocab = n;
}

int tok_set_piece(rl_tokenizer *t, int32_t id, const char *s, size_t n, uint8_t attr) {
    RL_ASSERT(id >= 0);
    if (id >= t->n_vocab) {
        int32_t cap = t->n_vocab ? t->n_vocab : 256;
        while (cap <= id) cap = cap > INT32_MAX / 2 ? id + 1 : cap * 2;
        tok_reserve_ids(t, cap);
    }
    if (t->off[id] != UINT32_MAX) return -1;
    if (n > TOK_MAX_PIECE || t->pool_len + n + 1 >= UINT32_MAX) return -2;
    if (t->pool_len + n + 1 > t->pool_cap) {
        size_t cap = t->pool_cap ? t->pool_cap : 4096;
        while (cap < t->pool_len + n + 1) cap *= 2;
        t->pool = rl_xrealloc(t->pool, cap);
        t->pool_cap = cap;
    }
    memcpy(t->pool + t->pool_len, s, n);
    t->pool[t->pool_len + n] = 0;
    t->off[id] = (uint32_t)t->pool_len;
    t->len[id] = (uint32_t)n;
    t->attr[id] = attr;
    t->pool_len += n + 1;
    if ((int)n > t->max_piece_len) t->max_piece_len = (int)n;
    return 0;
}

static inline const char *piece(const rl_tokenizer *t, int32_t id) { return t->pool + t->off[id]; }

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

rl_status tok_build_strmap(rl_tokenizer *t, rl_error *err) {
    free(t->map.slots);
    size_t cap = 16;
    while (cap < (size_t)t->n_vocab * 2 + 2) cap *= 2;
    t->map.slots = rl_xcalloc(cap, sizeof *t->map.slots);
    t->map.mask = cap - 1;
    /* Several ids may hold the same piece (an added token repeating a vocabulary entry); the
     * lowest id wins, as a map filled in id order and never overwritten would give. */
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (t->off[id] == UINT32_MAX) continue;
        const char *s = piece(t, id);
        size_t n = t->len[id];
        size_t h = hash_bytes(s, n) & t->map.mask;
        for (;;) {
            uint32_t v = t->map.slots[h];
            if (v == 0) {
                t->map.slots[h] = (uint32_t)id + 1;
                break;
            }
            if (t->len[v - 1] == n && memcmp(piece(t, (int32_t)v - 1), s, n) == 0) break;
            h = (h + 1) & t->map.mask;
        }
    }
    (void)err;
    return RL_OK;
}

int32_t tok_lookup(const rl_tokenizer *t, const char *s, size_t n) {
    if (!t->map.slots) return -1;
    size_t h = hash_bytes(s, n) & t->map.mask;
    for (;;) {
        uint32_t v = t->map.slots[h];
        if (v == 0) return -1;
        if (t->len[v - 1] == n && memcmp(piece(t, (int32_t)v - 1), s, n) == 0) return (int32_t)v - 1;
        h = (h + 1) & t->map.mask;
    }
}

static inline uint64_t pair_hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return k;
}

static void pairmap_grow(tok_pairmap *m, size_t need) {
    size_t cap = m->mask ? m->mask + 1 : 0;
    if (need * 2 <= cap) return;
    size_t ncap = cap ? cap : 1024;
    while (need * 2 > ncap) ncap *= 2;
    tok_pairmap n = {rl_xcalloc(ncap, 8), rl_xmalloc(ncap * 4), rl_xmalloc(ncap * 4), ncap - 1};
    for (size_t i = 0; i < cap; i++) {
        if (!m->keys[i]) continue;
        size_t h = pair_hash(m->keys[i]) & n.mask;
        while (n.keys[h]) h = (h + 1) & n.mask;
        n.keys[h] = m->keys[i];
        n.rank[h] = m->rank[i];
        n.id[h] = m->id[i];
    }
    free(m->keys);
    free(m->rank);
    free(m->id);
    *m = n;
}

int tok_add_merge(rl_tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t id) {
    pairmap_grow(&t->merges, (size_t)t->n_merges + 1);
    uint64_t k = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t h = pair_hash(k) & t->merges.mask;
    while (t->merges.keys[h]) {
        if (t->merges.keys[h] == k) return -1;
        h = (h + 1) & t->merges.mask;
    }
    t->merges.keys[h] = k;
    t->merges.rank[h] = rank;
    t->merges.id[h] = id;
    t->n_merges++;
    return 0;
}

int tok_merge_get(const rl_tokenizer *t, int32_t a, int32_t b, int32_t *rank, int32_t *id) {
    if (!t->merges.keys || a < 0 || b < 0) return 0;
    uint64_t k = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t h = pair_hash(k) & t->merges.mask;
    for (;;) {
        uint64_t v = t->merges.keys[h];
        if (!v) return 0;
        if (v == k) {
            *rank = t->merges.rank[h];
            *id = t->merges.id[h];
            return 1;
        }
        h = (h + 1) & t->merges.mask;
    }
}

/* ---- byte-level alphabet (GPT-2's bytes_to_unicode) ---- */

uint32_t tok_byte_to_cp(int b) {
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) return (uint32_t)b;
    int n = 0; /* rank of b among the bytes not printable above */
    for (int x = 0; x < b; x++)
        if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) n++;
    return 256u + (uint32_t)n;
}

int tok_cp_to_byte(uint32_t cp) {
    /* the inverse of tok_byte_to_cp without a table (no process-wide state): printable bytes map
     * to themselves, the others in order to 256, 257, ... */
    if (cp < 256)
        return (cp >= '!' && cp <= '~') || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF) ? (int)cp : -1;
    if (cp >= 256 + 68) return -1;
    int n = (int)(cp - 256);
    for (int x = 0; x < 256; x++)
        if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF)) && n-- == 0) return x;
    return -1;
}

/* ---- UTF-8 ---- */

void tok_put_cp(rl_buf *b, uint32_t cp) {
    char s[4];
    int n;
    if (cp < 0x80) s[0] = (char)cp, n = 1;
    else if (cp < 0x800) s[0] = (char)(0xC0 | cp >> 6), s[1] = (char)(0x80 | (cp & 63)), n = 2;
    else if (cp < 0x10000)
        s[0] = (char)(0xE0 | cp >> 12), s[1] = (char)(0x80 | ((cp >> 6) & 63)), s[2] = (char)(0x80 | (cp & 63)), n = 3;
    else
        s[0] = (char)(0xF0 | cp >> 18), s[1] = (char)(0x80 | ((cp >> 12) & 63)), s[2] = (char)(0x80 | ((cp >> 6) & 63)),
        s[3] = (char)(0x80 | (cp & 63)), n = 4;
    rl_buf_append(b, s, (size_t)n);
}

void tok_sanitize_utf8(const char *s, size_t n, rl_buf *out) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;
    rl_buf_reserve(out, n);
    while (i < n) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        int l = rl_utf8_seq_len(p + i, n - i);
        if (l > 0) {
            i += (size_t)l;
            continue;
        }
        rl_buf_append(out, s + run, i - run);
        rl_buf_append(out, "\xEF\xBF\xBD", 3);
        /* a maximal subpart of an ill-formed sequence becomes one U+FFFD (WHATWG decoder) */
        size_t j = i + 1;
        unsigned c = p[i];
        int need = c >= 0xC2 && c <= 0xDF ? 1 : c >= 0xE0 && c <= 0xEF ? 2 : c >= 0xF0 && c <= 0xF4 ? 3 : 0;
        unsigned lo = 0x80, hi = 0xBF;
        if (c == 0xE0) lo = 0xA0;
        else if (c == 0xED) hi = 0x9F;
        else if (c == 0xF0) lo = 0x90;
        else if (c == 0xF4) hi = 0x8F;
        for (int k = 0; k < need && j < n; k++, j++) {
            if (p[j] < lo || p[j] > hi) break;
            lo = 0x80, hi = 0xBF;
        }
        i = run = j;
    }
    rl_buf_append(out, s + run, n - run);
}

void tok_ids_push(tok_ids *a, int32_t id) {
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->v = rl_xrealloc(a->v, a->cap * sizeof *a->v);
    }
    a->v[a->n++] = id;
}

void tok_scratch_free(tok_scratch *s) {
    free(s->sym);
    free(s->heap);
    rl_buf_free(&s->tmp);
    tok_cache *c = &s->cache;
    free(c->slot);
    free(c->woff);
    free(c->wlen);
    free(c->ioff);
    free(c->ilen);
    rl_buf_free(&c->words);
    free(c->ids);
}

/* ---- finishing a loaded tokenizer ---- */

static int parse_byte_piece(const char *s, size_t n) { /* "<0xAB>" -> 0xAB, else -1 */
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                       : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static void build_decode_table(rl_tokenizer *t) {
    rl_buf pool = {0};
    t->dec_off = rl_xmalloc((size_t)t->n_vocab * sizeof *t->dec_off);
    t->dec_len = rl_xmalloc((size_t)t->n_vocab * sizeof *t->dec_len);
    for (int32_t id = 0; id < t->n_vocab; id++) {
        size_t start = pool.len;
        const char *s = t->off[id] == UINT32_MAX ? "" : piece(t, id);
        size_t n = t->len[id];
        int added = t->attr[id] == TOK_CONTROL || t->attr[id] == TOK_USER;
        int bv = parse_byte_piece(s, n);
        switch (t->dec_mode) {
        case DEC_BYTELEVEL:
            if (added) {
                rl_buf_append(&pool, s, n);
                break;
            }
            for (size_t i = 0; i < n;) {
                uint32_t cp;
                int l = rl_utf8_decode((const unsigned char *)s + i, n - i, &cp);
                if (l == 0) l = 1, cp = 0xFFFFFFFFu;
                int b = tok_cp_to_byte(cp);
                if (b >= 0) rl_buf_putc(&pool, (char)b);
                else rl_buf_append(&pool, s + i, (size_t)l);
                i += (size_t)l;
            }
            break;
        case DEC_SPM:
            if (bv >= 0 && !added) {
                rl_buf_putc(&pool, (char)bv);
                break;
            }
            for (size_t i = 0; i < n;) {
                if (i + 3 <= n && memcmp(s + i, "\xE2\x96\x81", 3) == 0) {
                    rl_buf_putc(&pool, ' ');
                    i += 3;
                } else rl_buf_putc(&pool, s[i++]);
            }
            break;
        default:
            if (t->kind == RL_TOK_LLAMA2C && bv >= 0) rl_buf_putc(&pool, (char)bv);
            else if (t->kind == RL_TOK_LLAMA2C && t->attr[id] == TOK_CONTROL) {
                /* "\n<s>\n", "\n</s>\n": llama2.c never prints them; they decode to nothing */
            } else rl_buf_append(&pool, s, n);
        }
        t->dec_off[id] = (uint32_t)start;
        t->dec_len[id] = (uint32_t)(pool.len - start);
    }
    t->dec_pool = pool.data ? pool.data : rl_xstrdup("");
}

rl_status tok_finish(rl_tokenizer *t, rl_error *err) {
    if (t->n_vocab <= 0) return rl_fail(err, RL_EFORMAT, "empty vocabulary");
    /* shrink the id space to the largest id used */
    int32_t n = t->n_vocab;
    while (n > 0 && t->off[n - 1] == UINT32_MAX) n--;
    t->n_vocab = n;
    if (n <= 0) return rl_fail(err, RL_EFORMAT, "empty vocabulary");
    int32_t *ids[] = {&t->bos, &t->eos, &t->unk, &t->pad};
    const char *names[] = {"bos", "eos", "unk", "pad"};
    for (int i = 0; i < 4; i++)
        if (*ids[i] >= n || (*ids[i] >= 0 && t->off[*ids[i]] == UINT32_MAX))
            return rl_fail(err, RL_EFORMAT, "%s token id %d is out of range (vocabulary of %d)", names[i], *ids[i], n);
    if (!t->map.slots) {
        rl_status st = tok_build_strmap(t, err);
        if (st) return st;
    }
    char bp[8];
    for (int b = 0; b < 256; b++) {
        snprintf(bp, sizeof bp, "<0x%02X>", b);
        t->byte_id[b] = tok_lookup(t, bp, 6);
        rl_buf tmp = {0};
        tok_put_cp(&tmp, tok_byte_to_cp(b));
        t->bl_id[b] = tok_lookup(t, tmp.data, tmp.len);
        rl_buf_free(&tmp);
    }
    for (int32_t id = 0; id < n; id++)
        if (t->attr[id] == TOK_NORMAL && parse_byte_piece(piece(t, id), t->len[id]) >= 0 && t->kind != RL_TOK_BPE_BYTES)
            t->attr[id] = TOK_BYTE;
    if (t->bos >= 0 && !t->bos_str) t->bos_str = rl_xstrndup(piece(t, t->bos), t->len[t->bos]);
    if (t->eos >= 0 && !t->eos_str) t->eos_str = rl_xstrndup(piece(t, t->eos), t->len[t->eos]);
    /* stop ids: eos and the end-of-turn tokens of the common chat formats */
    static const char *const stops[] = {"<|eot_id|>",    "<|im_end|>", "<|end|>",        "<end_of_turn>",
                                        "<|endoftext|>", "</s>",       "<|end_of_text|>"};
    t->n_stop = 0;
    if (t->eos >= 0) t->stop[t->n_stop++] = t->eos;
    for (size_t i = 0; i < sizeof stops / sizeof *stops && t->n_stop < 8; i++) {
        int32_t id = tok_lookup(t, stops[i], strlen(stops[i]));
        if (id < 0 || id == t->eos || (t->attr[id] != TOK_CONTROL && t->kind != RL_TOK_LLAMA2C)) continue;
        t->stop[t->n_stop++] = id;
    }
    build_decode_table(t);
    tok_chat_detect_default(t);
    return RL_OK;
}

/* ---- load ---- */

static rl_status load_bytes(rl_tokenizer *t, const uint8_t *data, size_t size, int is_path_json, rl_error *err) {
    if (size >= 4 && memcmp(data, "GGUF", 4) == 0) return tok_gguf_load(t, data, size, err);
    size_t i = 0;
    while (i < size && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' || data[i] == '\t')) i++;
    if (is_path_json || (i < size && data[i] == '{')) return tok_json_load(t, (const char *)data, size, err);
    return tok_llama2c_load(t, data, size, err);
}

void rl_tok_free(rl_tokenizer *t) {
    if (!t) return;
    free(t->pool);
    free(t->off);
    free(t->len);
    free(t->score);
    free(t->attr);
    free(t->map.slots);
    free(t->merges.keys);
    free(t->merges.rank);
    free(t->merges.id);
    free(t->wp_prefix);
    for (int i = 0; i < t->n_norms; i++) tok_norm_free(&t->norms[i]);
    free(t->norms);
    for (int i = 0; i < t->n_pres; i++) tok_pre_free(&t->pres[i]);
    free(t->pres);
    for (int i = 0; i < t->n_added; i++) {
        free(t->added[i].content);
        free(t->added[i].norm);
    }
    free(t->added);
    free(t->aidx[0]);
    free(t->aidx[1]);
    free(t->tmpl);
    free(t->dec_pool);
    free(t->dec_off);
    free(t->dec_len);
    free(t->chat_template);
    free(t->chat_system);
    free(t->name);
    free(t->src_json);
    free(t->src_config);
    free(t->bos_str);
    free(t->eos_str);
    free(t);
}

rl_status rl_tok_load_memory(rl_tokenizer **out, const void *data, size_t len, rl_error *err) {
    *out = NULL;
    rl_tokenizer *t = tok_new();
    t->name = rl_xstrdup("(memory)");
    rl_status st = load_bytes(t, data, len, 0, err);
    if (!st) st = tok_finish(t, err);
    if (st) {
        rl_tok_free(t);
        return st;
    }
    *out = t;
    return RL_OK;
}

rl_status rl_tok_load(rl_tokenizer **out, const char *path, rl_error *err) {
    *out = NULL;
    if (!path || !*path) return rl_fail(err, RL_EINVAL, "no tokenizer path given");
    char *file = NULL, *dir = NULL;
    if (rl_path_is_dir(path)) {
        dir = rl_xstrdup(path);
        file = rl_path_join(path, "tokenizer.json");
        if (!rl_path_exists(file)) {
            free(file);
            file = rl_path_join(path, "tokenizer.bin");
        }
        if (!rl_path_exists(file)) {
            rl_status st = rl_fail(err, RL_ENOTFOUND, "%s: no tokenizer.json or tokenizer.bin in this folder", path);
            free(file);
            free(dir);
            return st;
        }
    } else {
        file = rl_xstrdup(path);
        dir = rl_path_dirname(path);
    }
    rl_mmap m = {0};
    rl_status st = rl_mmap_open(&m, file, err);
    if (st) {
        free(file);
        free(dir);
        return st;
    }
    char ext[16];
    rl_path_ext(file, ext, sizeof ext);
    rl_tokenizer *t = tok_new();
    t->name = rl_xstrdup(path);
    st = load_bytes(t, m.data ? m.data : (const uint8_t *)"", m.size, strcmp(ext, "json") == 0, err);
    int is_gguf = m.size >= 4 && memcmp(m.data, "GGUF", 4) == 0;
    rl_mmap_close(&m);
    if (!st && !is_gguf && t->kind != RL_TOK_LLAMA2C) t->src_json = rl_xstrdup(file);
    /* tokenizer_config.json beside a tokenizer.json: bos/eos names, add_bos, chat template */
    if (!st && (t->kind == RL_TOK_BPE_BYTES || t->kind == RL_TOK_BPE_SPM || t->kind == RL_TOK_WORDPIECE) && t->off) {
        char *cfg = rl_path_join(dir, "tokenizer_config.json");
        if (rl_path_exists(cfg)) {
            char *data;
            size_t len;
            st = rl_file_read(cfg, 64u << 20, &data, &len, err);
            if (!st) {
                st = tok_json_read_config(t, data, len, err);
                free(data);
                t->src_config = rl_xstrdup(cfg);
            }
            if (st) rl_error_prefix(err, "%s", cfg);
        }
        free(cfg);
    } else if (st) {
        rl_error_prefix(err, "%s", file);
    }
    if (!st) {
        st = tok_finish(t, err);
        if (st) rl_error_prefix(err, "%s", file);
    }
    free(file);
    free(dir);
    if (st) {
        rl_tok_free(t);
        return st;
    }
    *out = t;
    return RL_OK;
}

/* ---- accessors ---- */

rl_tok_kind rl_tok_kind_of(const rl_tokenizer *t) { return t->kind; }
const char *rl_tok_kind_name(rl_tok_kind k) {
    switch (k) {
    case RL_TOK_LLAMA2C: return "llama2c";
    case RL_TOK_BPE_BYTES: return "bpe-bytelevel";
    case RL_TOK_BPE_SPM: return "bpe-sentencepiece";
    case RL_TOK_SPM_SCORES: return "sentencepiece-scores";
    case RL_TOK_WORDPIECE: return "wordpiece";
    }
    return "?";
}
int rl_tok_vocab_size(const rl_tokenizer *t) { return t->n_vocab; }
int rl_tok_bos(const rl_tokenizer *t) { return t->bos; }
int rl_tok_eos(const rl_tokenizer *t) { return t->eos; }
int rl_tok_stop_ids(const rl_tokenizer *t, int32_t *out, int cap) {
    int n = 0;
    for (int i = 0; i < t->n_stop && n < cap; i++) out[n++] = t->stop[i];
    return n;
}
int rl_tok_is_special(const rl_tokenizer *t, int id) {
    return id >= 0 && id < t->n_vocab && (t->attr[id] == TOK_CONTROL || t->attr[id] == TOK_UNKNOWN);
}
const char *rl_tok_piece(const rl_tokenizer *t, int id, size_t *len) {
    if (id < 0 || id >= t->n_vocab || t->off[id] == UINT32_MAX) return NULL;
    if (len) *len = t->len[id];
    return piece(t, id);
}
int rl_tok_find(const rl_tokenizer *t, const char *s, size_t n) { return tok_lookup(t, s, n); }

/* ---- encode ---- */

static rl_status encode_ids(const rl_tokenizer *t, const char *text, size_t len, int add_special, tok_ids *out,
                            rl_error *err) {
    if (!text && len) return rl_fail(err, RL_EINVAL, "encode: NULL text");
    if (!text) text = "";
    if (len > (size_t)INT32_MAX)
        return rl_fail(err, RL_EINVAL, "encode: text of %zu bytes is too long (2 GiB max)", len);
    tok_scratch s = {0};
    rl_status st = RL_OK;
    if (t->kind == RL_TOK_LLAMA2C) tok_llama2c_encode(t, text, len, add_special, &s, out);
    else st = tok_pipeline_encode(t, text, len, add_special, &s, out, err);
    tok_scratch_free(&s);
    return st;
}

rl_status rl_tok_encode(const rl_tokenizer *t, const char *text, size_t len, int add_special, int32_t **ids,
                        size_t *n_ids, rl_error *err) {
    tok_ids out = {0};
    *ids = NULL;
    *n_ids = 0;
    rl_status st = encode_ids(t, text, len, add_special, &out, err);
    if (st) {
        free(out.v);
        return st;
    }
    if (!out.v) out.v = rl_xmalloc(sizeof *out.v);
    *ids = out.v;
    *n_ids = out.n;
    return RL_OK;
}

rl_status rl_tok_count(const rl_tokenizer *t, const char *text, size_t len, size_t *count, rl_error *err) {
    tok_ids out = {0};
    rl_status st = encode_ids(t, text, len, 0, &out, err);
    *count = st ? 0 : out.n;
    free(out.v);
    return st;
}

/* ---- decode ---- */

struct rl_tok_stream {
    const rl_tokenizer *tok;
    int skip_special;
    int32_t prev;
    int started; /* something was decoded (for the leading-space rule) */
    char pend[8];
    int n_pend;
};

/* Appends the decoded bytes of one id under the decoder rules; state in st. */
static void decode_one(const rl_tokenizer *t, rl_tok_stream *st, int32_t id, rl_buf *out) {
    int special = t->attr[id] == TOK_CONTROL;
    if (st->skip_special && special) {
        st->prev = id;
        return;
    }
    const char *s = t->dec_pool + t->dec_off[id];
    size_t n = t->dec_len[id];
    if (t->dec_mode == DEC_WORDPIECE) {
        size_t pl = t->wp_prefix ? strlen(t->wp_prefix) : 0;
        if (st->started) {
            if (pl && n >= pl && memcmp(s, t->wp_prefix, pl) == 0) s += pl, n -= pl;
            else rl_buf_putc(out, ' ');
        }
        if (t->dec_cleanup) {
            /* clean_up_tokenization: " ." -> "." etc. are applied to the joined string; the
             * pieces that start with those punctuations just lose the space we added */
            static const char *const tails[] = {".", "?", "!", ",", "n't", "'m", "'s", "'ve", "'re"};
            for (size_t k = 0; k < sizeof tails / sizeof *tails; k++) {
                size_t tl = strlen(tails[k]);
                if (n >= tl && memcmp(s, tails[k], tl) == 0 && out->len && out->data[out->len - 1] == ' ' &&
                    st->started && !(pl && t->len[id] >= pl && memcmp(t->pool + t->off[id], t->wp_prefix, pl) == 0)) {
                    out->len--;
                    out->data[out->len] = 0;
                    break;
                }
            }
        }
    } else if (n > 0 && s[0] == ' ' &&
               ((t->dec_strip_first && !st->started) ||
                (t->dec_strip_after_bos && st->prev == t->bos && t->bos >= 0))) {
        s++, n--;
    }
    rl_buf_append(out, s, n);
    st->started = 1;
    st->prev = id;
}

rl_status rl_tok_decode(const rl_tokenizer *t, const int32_t *ids, size_t n, int skip_special, char **text, size_t *len,
                        rl_error *err) {
    *text = NULL;
    if (len) *len = 0;
    rl_tok_stream st = {.tok = t, .skip_special = skip_special, .prev = -1};
    rl_buf out = {0};
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab) {
            rl_buf_free(&out);
            return rl_fail(err, RL_EINVAL, "decode: token id %d at position %zu is out of range (vocabulary of %d)",
                           ids[i], i, t->n_vocab);
        }
        decode_one(t, &st, ids[i], &out);
    }
    if (len) *len = out.len;
    *text = rl_buf_take(&out);
    return RL_OK;
}

rl_tok_stream *rl_tok_stream_new(const rl_tokenizer *tok, int skip_special) {
    rl_tok_stream *st = rl_xcalloc(1, sizeof *st);
    st->tok = tok;
    st->skip_special = skip_special;
    st->prev = -1;
    return st;
}

void rl_tok_stream_free(rl_tok_stream *st) { free(st); }

/* Emits the whole characters at the front of st->pend (plus bytes), keeping an incomplete tail. */
static void stream_emit(rl_tok_stream *st, const char *s, size_t n, rl_buf *out) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (st->n_pend == 0) {
            if (c < 0x80) {
                rl_buf_putc(out, (char)c);
                continue;
            }
            if (c < 0xC2 || c > 0xF4) {
                rl_buf_append(out, "\xEF\xBF\xBD", 3);
                continue;
            }
            st->pend[st->n_pend++] = (char)c;
            continue;
        }
        st->pend[st->n_pend++] = (char)c;
        int need = tok_u8len((unsigned char)st->pend[0]);
        /* is the prefix still a possible beginning of a valid sequence? */
        unsigned char p0 = (unsigned char)st->pend[0];
        unsigned lo = 0x80, hi = 0xBF;
        if (st->n_pend == 2) {
            if (p0 == 0xE0) lo = 0xA0;
            else if (p0 == 0xED) hi = 0x9F;
            else if (p0 == 0xF0) lo = 0x90;
            else if (p0 == 0xF4) hi = 0x8F;
        }
        if (c < lo || c > hi) {
            /* the held bytes can never complete: one U+FFFD, then reconsider c on its own */
            rl_buf_append(out, "\xEF\xBF\xBD", 3);
            st->n_pend = 0;
            i--;
            continue;
        }
        if (st->n_pend == need) {
            rl_buf_append(out, st->pend, (size_t)need);
            st->n_pend = 0;
        }
    }
}

rl_status rl_tok_encode_offsets(const rl_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t **offsets,
                                size_t *n_ids, rl_error *err) {
    *ids = NULL;
    *offsets = NULL;
    *n_ids = 0;
    if (t->dec_mode == DEC_WORDPIECE)
        return rl_fail(err, RL_EUNSUPPORTED, "token offsets: WordPiece does not decode back to the text");
    int32_t *v;
    size_t n;
    rl_status st = rl_tok_encode(t, text, len, 0, &v, &n, err);
    if (st) return st;
    size_t *off = rl_xmalloc((n + 1) * sizeof *off);
    rl_tok_stream ds = {.tok = t, .skip_special = 0, .prev = -1};
    rl_buf out = {0};
    for (size_t i = 0; i < n; i++) {
        off[i] = out.len;
        decode_one(t, &ds, v[i], &out);
    }
    off[n] = out.len;
    int same = out.len == len && (len == 0 || memcmp(out.data, text, len) == 0);
    rl_buf_free(&out);
    if (!same) {
        free(v);
        free(off);
        return rl_fail(err, RL_EUNSUPPORTED,
                       "token offsets: this tokenizer does not give this text back when decoding (a normalizer "
                       "changes it)");
    }
    *ids = v;
    *offsets = off;
    *n_ids = n;
    return RL_OK;
}

rl_status rl_tok_stream_push(rl_tok_stream *st, int32_t id, rl_buf *out, rl_error *err) {
    const rl_tokenizer *t = st->tok;
    if (id < 0 || id >= t->n_vocab)
        return rl_fail(err, RL_EINVAL, "decode: token id %d is out of range (vocabulary of %d)", id, t->n_vocab);
    rl_buf piece_buf = {0};
    decode_one(t, st, id, &piece_buf);
    /* a WordPiece cleanup may remove the space just written: not supported when streaming */
    stream_emit(st, piece_buf.data ? piece_buf.data : "", piece_buf.len, out);
    rl_buf_free(&piece_buf);
    return RL_OK;
}

void rl_tok_stream_flush(rl_tok_stream *st, rl_buf *out) {
    if (st->n_pend) rl_buf_append(out, "\xEF\xBF\xBD", 3);
    st->n_pend = 0;
    st->started = 0;
    st->prev = -1;
}
