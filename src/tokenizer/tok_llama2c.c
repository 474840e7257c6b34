/* tok_llama2c.c - llama2.c's tokenizer.bin and the two score-ordered SentencePiece encoders.
 *
 * tokenizer.bin: int32 max_token_length, then for each token: float32 score, int32 length, the
 * bytes. The vocabulary size is not stored; it is however many entries the file holds. Ids 0, 1, 2
 * are <unk>, BOS, EOS and ids 3..258 the byte pieces <0x00>..<0xFF> (the encoder relies on it, as
 * llama2.c does).
 *
 * Encoding (tok_llama2c_encode) reproduces llama2.c's encode() as run.c calls it (bos=1, eos=0;
 * add_special adds BOS only, like SentencePiece Llama tokenizers): BOS, a dummy-prefix token " ",
 * then one token per UTF-8 character (at most 4 bytes; characters missing from the vocabulary
 * become byte tokens id = byte + 3), then repeatedly merge the adjacent pair whose concatenated
 * piece has the highest score (the leftmost on ties). llama2.c rescans the whole sequence at
 * every merge (quadratic); here a max-heap of candidate pairs keyed (score, position) with a
 * linked list of symbols gives the same merges in O(n log n): a pair's position is its left
 * symbol's original index, so "leftmost among equal scores" is the same order.
 *
 * tok_spm_word is llama.cpp's SentencePiece BPE for GGUF "llama" vocabularies: the symbols are
 * the UTF-8 characters of the text, merged by the score of the merged text, and symbols that are
 * not in the vocabulary at the end become byte tokens <0xXX>. */
#include "tokenizer/tok_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

rl_status tok_llama2c_load(rl_tokenizer *t, const uint8_t *data, size_t size, rl_error *err) {
    t->kind = RL_TOK_LLAMA2C;
    if (size < 4) return rl_fail(err, RL_EFORMAT, "not a tokenizer: %zu bytes", size);
    int32_t max_len;
    memcpy(&max_len, data, 4);
    if (max_len < 0 || max_len > (1 << 20))
        return rl_fail(err, RL_EFORMAT,
                       "not a llama2.c tokenizer.bin (max_token_length %d), nor tokenizer.json or GGUF", max_len);
    size_t pos = 4;
    int32_t n = 0;
    /* count first, so that the arrays are allocated once and a truncated file is caught early */
    while (pos < size) {
        if (size - pos < 8)
            return rl_fail(err, RL_EFORMAT, "truncated llama2.c tokenizer: token %d header cut at offset %zu", n, pos);
        int32_t len;
        memcpy(&len, data + pos + 4, 4);
        if (len < 0 || (size_t)len > size - pos - 8)
            return rl_fail(err, RL_EFORMAT, "llama2.c tokenizer: token %d has length %d, beyond the end of the file", n,
                           len);
        pos += 8 + (size_t)len;
        if (++n == INT32_MAX) return rl_fail(err, RL_EFORMAT, "llama2.c tokenizer: too many tokens");
    }
    if (n < 3) return rl_fail(err, RL_EFORMAT, "llama2.c tokenizer: only %d tokens (need <unk>, <s>, </s>)", n);
    tok_reserve_ids(t, n);
    t->score = rl_xmalloc((size_t)n * sizeof *t->score);
    pos = 4;
    for (int32_t id = 0; id < n; id++) {
        float score;
        int32_t len;
        memcpy(&score, data + pos, 4);
        memcpy(&len, data + pos + 4, 4);
        if (tok_set_piece(t, id, (const char *)data + pos + 8, (size_t)len, id < 3 ? TOK_CONTROL : TOK_NORMAL) != 0)
            return rl_fail(err, RL_EFORMAT, "llama2.c tokenizer: token %d is %d bytes long (at most %u)", id, len,
                           TOK_MAX_PIECE);
        t->score[id] = isnan(score) ? -INFINITY : score;
        pos += 8 + (size_t)len;
    }
    t->attr[0] = TOK_UNKNOWN;
    t->unk = 0, t->bos = 1, t->eos = 2;
    t->dec_mode = DEC_RAW;
    t->dec_strip_first = 1;
    t->dec_strip_after_bos = 1;
    /* llama2.c writes BOS/EOS as "\n<s>\n"; the chat templates want the plain names */
    t->bos_str = rl_xstrdup("<s>");
    t->eos_str = rl_xstrdup("</s>");
    return RL_OK;
}

/* ---- a max-heap of merge candidates: higher score first, then lower position ---- */

typedef struct cand {
    float score;
    int32_t pos, left, right; /* left/right: ids (llama2c) or span lengths (spm) at push time */
} cand;

typedef struct heap {
    cand *v;
    size_t n, cap;
} heap;

static inline int cand_before(const cand *a, const cand *b) {
    return a->score > b->score || (a->score == b->score && a->pos < b->pos);
}

static void heap_push(heap *h, cand c) {
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 256;
        h->v = rl_xrealloc(h->v, h->cap * sizeof *h->v);
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_before(&c, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = c;
}

static cand heap_pop(heap *h) {
    cand top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const cand *best = &last;
        if (l < h->n && cand_before(&h->v[l], best)) m = l, best = &h->v[l];
        if (r < h->n && cand_before(&h->v[r], best)) m = r;
        if (m == i) break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (h->n) h->v[i] = last;
    return top;
}

/* ---- llama2.c ---- */

typedef struct lsym {
    int32_t id, prev, next;
} lsym;

static void l2c_try(const rl_tokenizer *t, lsym *sym, int32_t i, rl_buf *cat, heap *h) {
    if (i < 0) return;
    int32_t j = sym[i].next;
    if (j < 0) return;
    int32_t a = sym[i].id, b = sym[j].id;
    cat->len = 0;
    rl_buf_append(cat, t->pool + t->off[a], t->len[a]);
    rl_buf_append(cat, t->pool + t->off[b], t->len[b]);
    int32_t id = tok_lookup(t, cat->data, cat->len);
    /* llama2.c: best_score starts at -1e10 and a merge must beat it */
    if (id < 0 || !(t->score[id] > -1e10f)) return;
    heap_push(h, (cand){t->score[id], i, a, b});
}

void tok_llama2c_encode(const rl_tokenizer *t, const char *text, size_t len, int add_special, tok_scratch *s,
                        tok_ids *out) {
    (void)s;
    tok_ids ids = {0};
    if (add_special) tok_ids_push(&ids, t->bos);
    if (len > 0) {
        int32_t sp = tok_lookup(t, " ", 1);
        if (sp >= 0) tok_ids_push(&ids, sp); /* llama2.c would push -1 here; we leave it out */
    }
    const unsigned char *c = (const unsigned char *)text;
    char buf[8];
    size_t blen = 0;
    for (size_t i = 0; i < len; i++) {
        if ((c[i] & 0xC0) != 0x80) blen = 0;
        buf[blen++] = (char)c[i];
        if (i + 1 < len && (c[i + 1] & 0xC0) == 0x80 && blen < 4) continue;
        int32_t id = tok_lookup(t, buf, blen);
        if (id >= 0) tok_ids_push(&ids, id);
        else
            for (size_t k = 0; k < blen; k++) {
                int32_t b = (int32_t)(unsigned char)buf[k] + 3;
                tok_ids_push(&ids, b < t->n_vocab ? b : t->unk);
            }
        blen = 0;
    }
    size_t n = ids.n;
    lsym *sym = rl_xmalloc((n ? n : 1) * sizeof *sym);
    for (size_t i = 0; i < n; i++) sym[i] = (lsym){ids.v[i], (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1};
    heap h = {0};
    rl_buf cat = {0};
    for (size_t i = 0; i + 1 < n; i++) l2c_try(t, sym, (int32_t)i, &cat, &h);
    while (h.n) {
        cand c = heap_pop(&h);
        int32_t i = c.pos, j = sym[i].next;
        if (sym[i].id != c.left || j < 0 || sym[j].id != c.right) continue; /* stale */
        cat.len = 0;
        rl_buf_append(&cat, t->pool + t->off[c.left], t->len[c.left]);
        rl_buf_append(&cat, t->pool + t->off[c.right], t->len[c.right]);
        sym[i].id = tok_lookup(t, cat.data, cat.len);
        sym[i].next = sym[j].next;
        if (sym[j].next >= 0) sym[sym[j].next].prev = i;
        sym[j].id = -1; /* dead */
        l2c_try(t, sym, sym[i].prev, &cat, &h);
        l2c_try(t, sym, i, &cat, &h);
    }
    if (n) {
        for (int32_t i = 0; i >= 0; i = sym[i].next) tok_ids_push(out, sym[i].id);
    }
    free(sym);
    free(h.v);
    rl_buf_free(&cat);
    free(ids.v);
}

/* ---- llama.cpp SentencePiece (GGUF "llama") ---- */

typedef struct ssym {
    int32_t start, n, prev, next;
} ssym;

static void spm_try(const rl_tokenizer *t, const char *w, ssym *sym, int32_t i, heap *h) {
    if (i < 0) return;
    int32_t j = sym[i].next;
    if (j < 0) return;
    int32_t id = tok_lookup(t, w + sym[i].start, (size_t)(sym[i].n + sym[j].n));
    if (id < 0 || !t->score || isinf(t->score[id])) return;
    heap_push(h, (cand){t->score[id], i, sym[i].n, sym[j].n});
}

void tok_spm_word(const rl_tokenizer *t, const char *w, size_t n, tok_scratch *s, tok_ids *out) {
    (void)s;
    if (n == 0) return;
    ssym *sym = rl_xmalloc(n * sizeof *sym);
    int32_t ns = 0;
    for (size_t i = 0; i < n;) {
        size_t l = (size_t)tok_u8len((unsigned char)w[i]);
        if (l > n - i) l = n - i;
        sym[ns] = (ssym){(int32_t)i, (int32_t)l, ns - 1, -1};
        if (ns > 0) sym[ns - 1].next = ns;
        ns++;
        i += l;
    }
    heap h = {0};
    for (int32_t i = 0; i + 1 < ns; i++) spm_try(t, w, sym, i, &h);
    while (h.n) {
        cand c = heap_pop(&h);
        int32_t i = c.pos, j = sym[i].next;
        if (sym[i].n != c.left || j < 0 || sym[j].n != c.right) continue;
        sym[i].n += sym[j].n;
        sym[i].next = sym[j].next;
        if (sym[j].next >= 0) sym[sym[j].next].prev = i;
        sym[j].n = 0;
        spm_try(t, w, sym, sym[i].prev, &h);
        spm_try(t, w, sym, i, &h);
    }
    for (int32_t i = 0; i >= 0; i = sym[i].next) {
        int32_t id = tok_lookup(t, w + sym[i].start, (size_t)sym[i].n);
        if (id >= 0) {
            tok_ids_push(out, id);
            continue;
        }
        for (int32_t k = 0; k < sym[i].n; k++) {
            int32_t b = t->byte_id[(unsigned char)w[sym[i].start + k]];
            if (b < 0) b = t->unk;
            if (b >= 0) tok_ids_push(out, b);
        }
    }
    free(sym);
    free(h.v);
}
