/* tok_bpe.c - BPE by merge rank (tokenizer.json and GGUF "gpt2" vocabularies).
 *
 * One pre-token is split into initial symbols (its bytes mapped through the byte-level alphabet,
 * or its UTF-8 characters for SentencePiece-style vocabularies), then the adjacent pair with the
 * lowest merge rank is merged until none is left; ties go to the leftmost pair, as in both
 * Hugging Face implementations. Symbols are a doubly linked list over an array and candidate
 * pairs sit in a binary min-heap keyed (rank << 32 | position); an entry whose symbols changed
 * since it was pushed is recognised on pop and dropped. O(n log n) in the pre-token length, so a
 * 10 MB pre-token (SentencePiece vocabularies have no pre-tokenizer) is fine.
 *
 * Symbols that are not in the vocabulary at the end become byte tokens <0xXX> (byte_fallback,
 * all bytes must exist) or the unknown token; fuse_unk (consecutive unknowns become one) is
 * applied by the pipeline over all pre-tokens of a section, as the JavaScript reference does. */
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct tok_sym {
    int32_t id, prev, next;
    uint32_t start, len; /* bytes of the pre-token this symbol covers; len 0 = merged away */
} tok_sym;

static void heap_push(tok_scratch *s, size_t *n, uint64_t v) {
    if (*n == s->heap_cap) {
        s->heap_cap = s->heap_cap ? s->heap_cap * 2 : 256;
        s->heap = rl_xrealloc(s->heap, s->heap_cap * sizeof *s->heap);
    }
    uint64_t *h = s->heap;
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p] <= v) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static uint64_t heap_pop(tok_scratch *s, size_t *n) {
    uint64_t *h = s->heap, top = h[0], last = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, k = i;
        uint64_t best = last;
        if (l < m && h[l] < best) k = l, best = h[l];
        if (r < m && h[r] < best) k = r;
        if (k == i) break;
        h[i] = h[k];
        i = k;
    }
    if (m) h[i] = last;
    return top;
}

static void try_pair(const rl_tokenizer *t, tok_scratch *s, size_t *hn, int32_t i) {
    if (i < 0) return;
    tok_sym *sym = s->sym;
    int32_t j = sym[i].next;
    int32_t rank, id;
    if (j < 0 || !tok_merge_get(t, sym[i].id, sym[j].id, &rank, &id)) return;
    heap_push(s, hn, ((uint64_t)(uint32_t)rank << 32) | (uint32_t)i);
}

static void emit_unknown(const rl_tokenizer *t, const char *w, const tok_sym *y, tok_ids *out) {
    if (t->byte_fallback) {
        int ok = 1;
        for (uint32_t k = 0; k < y->len; k++)
            if (t->byte_id[(unsigned char)w[y->start + k]] < 0) ok = 0;
        if (ok) {
            for (uint32_t k = 0; k < y->len; k++) tok_ids_push(out, t->byte_id[(unsigned char)w[y->start + k]]);
            return;
        }
    }
    if (t->unk >= 0) tok_ids_push(out, t->unk);
}

static void bpe_segment(const rl_tokenizer *t, const char *w, size_t n, tok_scratch *s, tok_ids *out);

void tok_bpe_word(const rl_tokenizer *t, const char *w, size_t n, tok_scratch *s, tok_ids *out) {
    if (n == 0) return;
    if (t->ignore_merges || t->bytelevel || !t->spm_cut_ok || n < 256) {
        bpe_segment(t, w, n, s, out);
        return;
    }
    /* cut before each U+2581 that follows another character: no merge can cross there, so the
     * result is the same and the heap stays small on long texts without a pre-tokenizer */
    size_t start = 0;
    for (size_t i = 3; i + 3 <= n; i++) {
        if (memcmp(w + i, "\xE2\x96\x81", 3) == 0 && memcmp(w + i - 3, "\xE2\x96\x81", 3) != 0) {
            bpe_segment(t, w + start, i - start, s, out);
            start = i;
        }
    }
    bpe_segment(t, w + start, n - start, s, out);
}

static void bpe_segment(const rl_tokenizer *t, const char *w, size_t n, tok_scratch *s, tok_ids *out) {
    if (n == 0) return;
    if (t->ignore_merges) {
        int32_t id;
        if (t->bytelevel) {
            rl_buf *b = &s->tmp;
            b->len = 0;
            for (size_t i = 0; i < n; i++) tok_put_cp(b, tok_byte_to_cp((unsigned char)w[i]));
            id = tok_lookup(t, b->data, b->len);
        } else id = tok_lookup(t, w, n);
        if (id >= 0) {
            tok_ids_push(out, id);
            return;
        }
    }
    if (n > s->sym_cap) {
        s->sym_cap = n;
        s->sym = rl_xrealloc(s->sym, n * sizeof *s->sym);
    }
    tok_sym *sym = s->sym;
    int32_t ns = 0;
    for (size_t i = 0; i < n;) {
        size_t l;
        int32_t id;
        if (t->bytelevel) {
            l = 1;
            id = t->bl_id[(unsigned char)w[i]];
        } else {
            l = (size_t)tok_u8len((unsigned char)w[i]);
            if (l > n - i) l = n - i;
            id = tok_lookup(t, w + i, l);
        }
        sym[ns] = (tok_sym){id, ns - 1, -1, (uint32_t)i, (uint32_t)l};
        if (ns > 0) sym[ns - 1].next = ns;
        ns++;
        i += l;
    }
    size_t hn = 0;
    for (int32_t i = 0; i + 1 < ns; i++) try_pair(t, s, &hn, i);
    while (hn) {
        uint64_t top = heap_pop(s, &hn);
        int32_t i = (int32_t)(uint32_t)top, rank0 = (int32_t)(top >> 32);
        if (sym[i].len == 0) continue;
        int32_t j = sym[i].next, rank, id;
        if (j < 0 || !tok_merge_get(t, sym[i].id, sym[j].id, &rank, &id) || rank != rank0) continue;
        sym[i].id = id;
        sym[i].len += sym[j].len;
        sym[i].next = sym[j].next;
        if (sym[j].next >= 0) sym[sym[j].next].prev = i;
        sym[j].len = 0;
        try_pair(t, s, &hn, sym[i].prev);
        try_pair(t, s, &hn, i);
    }
    for (int32_t i = 0; i >= 0; i = sym[i].next) {
        if (sym[i].id >= 0) tok_ids_push(out, sym[i].id);
        else emit_unknown(t, w, &sym[i], out);
    }
}
