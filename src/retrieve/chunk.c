/* chunk.c - structure-aware chunking.
 *
 * The text is cut into units (words: maximal runs of non-space bytes), each knowing what
 * separates it from the previous one: a heading, a paragraph break, a sentence end or just a
 * space. Chunks are packed greedily up to `size` tokens and end at the best break inside the
 * window: the last heading, else the last paragraph or sentence end in the back half of the
 * window, else the last word. A new section starts a fresh chunk (no overlap); elsewhere the
 * next chunk repeats up to `overlap` tokens of whole words. A word longer than a whole chunk
 * (a base64 blob, a huge URL) is the one place where a cut falls inside a word, on a UTF-8
 * character boundary.
 *
 * Token counts come from a counting function: a real tokenizer, or rl_estimate_tokens. The
 * estimate is additive over words, so packing by the sum of word counts never exceeds the
 * limit; with a real tokenizer the count of the joined text is checked and the chunk shrunk
 * if the tokenizer merged differently across word boundaries. */
#include "retrieve/retrieve.h"

#include <stdlib.h>
#include <string.h>

enum { BRK_NONE, BRK_WORD, BRK_SENTENCE, BRK_PARAGRAPH, BRK_HEADING };

typedef struct unit {
    size_t start, end;
    int tokens;
    unsigned char brk;    /* what separates this unit from the previous one */
    unsigned char in_heading; /* part of a heading line */
    int section;          /* index of the heading that opens its section, -1 before any */
} unit;

static int is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

size_t rl_estimate_tokens(void *unused, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t tokens = 0, i = 0;
    while (i < n) {
        unsigned c = p[i];
        if (is_space((unsigned char)c)) {
            i++;
        } else if ((c | 32) >= 'a' && (c | 32) <= 'z') {
            size_t k = 0;
            while (i < n && (((p[i] | 32) >= 'a' && (p[i] | 32) <= 'z') || (p[i] >= 0x80 && p[i] < 0xE0) ||
                             (k > 0 && (p[i] & 0xC0) == 0x80 && p[i] >= 0x80)))
                i++, k++;
            tokens += (k + 5) / 6;
        } else if (c >= '0' && c <= '9') {
            size_t k = 0;
            while (i < n && p[i] >= '0' && p[i] <= '9') i++, k++;
            tokens += (k + 2) / 3;
        } else if (c >= 0x80) {
            /* a code point outside ASCII letters: scripts without spaces (CJK, emoji ...) are
             * roughly one token per character */
            int len = rl_utf8_seq_len(p + i, n - i);
            if (len <= 1) len = 1;
            i += (size_t)len;
            tokens++;
        } else {
            i++;
            tokens++;
        }
    }
    return tokens;
}

static size_t count_tokens(const rl_chunk_opts *o, const char *s, size_t n) {
    return o->count ? o->count(o->count_ctx, s, n) : rl_estimate_tokens(NULL, s, n);
}

typedef struct unit_list {
    unit *u;
    size_t n, cap;
} unit_list;

static void push_unit(unit_list *l, unit u) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->u = rl_xrealloc(l->u, l->cap * sizeof *l->u);
    }
    l->u[l->n++] = u;
}

/* Splits a word longer than a chunk into pieces of at most size tokens each, on character
 * boundaries, by binary search over the piece length. */
static void push_long_word(unit_list *l, const char *text, unit w, const rl_chunk_opts *o) {
    size_t s = w.start;
    int first = 1;
    while (s < w.end) {
        size_t lo = s, hi = w.end;
        if (hi - s > (size_t)o->size * 32) hi = s + (size_t)o->size * 32;
        /* largest e in (s, hi] with count(s..e) <= size */
        size_t best = 0;
        while (lo < hi) {
            size_t mid = lo + (hi - lo + 1) / 2;
            while (mid < w.end && mid > s && ((unsigned char)text[mid] & 0xC0) == 0x80) mid++; /* char boundary */
            if (mid > hi) mid = hi;
            if (count_tokens(o, text + s, mid - s) <= (size_t)o->size) best = mid, lo = mid;
            else hi = mid - 1;
            if (lo == mid && mid == hi) break;
        }
        if (best <= s) { /* one character over the limit: take it anyway (cannot split further) */
            best = s + 1;
            while (best < w.end && ((unsigned char)text[best] & 0xC0) == 0x80) best++;
        }
        unit piece = w;
        piece.start = s;
        piece.end = best;
        piece.tokens = (int)count_tokens(o, text + s, best - s);
        if (!first) piece.brk = BRK_NONE;
        push_unit(l, piece);
        first = 0;
        s = best;
    }
}

static void make_units(const rl_doc *d, const rl_chunk_opts *o, unit_list *l) {
    const char *t = d->text;
    size_t n = d->len, i = 0, h = 0, heading_line_end = 0;
    int section = -1, prev_sentence_end = 0;
    while (i < n) {
        size_t newlines = 0;
        while (i < n && is_space((unsigned char)t[i])) newlines += t[i] == '\n', i++;
        if (i >= n) break;
        unit u = {0};
        u.start = i;
        while (i < n && !is_space((unsigned char)t[i])) i++;
        u.end = i;
        u.brk = l->n == 0 ? BRK_HEADING : newlines >= 2 ? BRK_PARAGRAPH : prev_sentence_end ? BRK_SENTENCE : BRK_WORD;
        while (h < d->n_headings && d->headings[h].start <= u.start) {
            section = (int)h;
            u.brk = BRK_HEADING;
            const char *nl = memchr(t + d->headings[h].start, '\n', n - d->headings[h].start);
            heading_line_end = nl ? (size_t)(nl - t) : n;
            /* an RST heading may have an overline and an underline: include both */
            if (heading_line_end + 1 < n && h < d->n_headings) {
                const char *nl2 = memchr(t + heading_line_end + 1, '\n', n - heading_line_end - 1);
                size_t e2 = nl2 ? (size_t)(nl2 - t) : n;
                size_t k = heading_line_end + 1;
                int rule = e2 > k + 1;
                for (size_t q = k; q < e2 && rule; q++) rule = t[q] == t[k] && strchr("=-~^\"'`#*+_:.<>", t[k]);
                if (rule) heading_line_end = e2;
            }
            h++;
        }
        u.in_heading = u.start < heading_line_end;
        u.section = section;
        char last = t[u.end - 1];
        size_t q = u.end - 1;
        while (q > u.start && strchr("\"')]*_", last)) last = t[--q];
        prev_sentence_end = last == '.' || last == '!' || last == '?' || last == ':';
        size_t tok = count_tokens(o, t + u.start, u.end - u.start);
        if (tok > (size_t)o->size) push_long_word(l, t, u, o);
        else {
            u.tokens = (int)tok;
            push_unit(l, u);
        }
    }
}

/* The heading path of section s ("A > B > C"), built from the heading levels. */
static void section_path(const rl_doc *d, int s, int *stack, int *depth) {
    *depth = 0;
    if (s < 0) return;
    /* walk back collecting the nearest heading of each smaller level */
    int level = d->headings[s].level + 1;
    int tmp[64], n = 0;
    for (int h = s; h >= 0 && n < 64; h--)
        if (d->headings[h].level < level) {
            tmp[n++] = h;
            level = d->headings[h].level;
            if (level <= 1) break;
        }
    for (int k = 0; k < n; k++) stack[k] = tmp[n - 1 - k];
    *depth = n;
}

static char *heading_between(const rl_doc *d, int first, int last) {
    int a[64], b[64], na, nb;
    section_path(d, first, a, &na);
    section_path(d, last, b, &nb);
    int common = 0;
    while (common < na && common < nb && a[common] == b[common]) common++;
    rl_buf out = {0};
    for (int k = 0; k < common; k++) {
        if (k) rl_buf_puts(&out, " > ");
        rl_buf_puts(&out, d->headings[a[k]].title);
    }
    return rl_buf_take(&out);
}

rl_status rl_chunk_document(const rl_doc *d, const rl_chunk_opts *o, rl_chunk **out, size_t *n_out, rl_error *err) {
    *out = NULL;
    *n_out = 0;
    if (o->size < 1 || o->overlap < 0 || o->overlap >= o->size)
        return rl_fail(err, RL_EINVAL, "chunk size must be positive and overlap smaller than it (size %d, overlap %d)", o->size, o->overlap);
    unit_list l = {0};
    make_units(d, o, &l);
    rl_chunk *chunks = NULL;
    size_t n_chunks = 0, cap = 0;
    /* prefix sums of tokens and of non-heading units, for O(1) range queries */
    int64_t *tok = rl_xmalloc((l.n + 1) * sizeof *tok);
    size_t *body = rl_xmalloc((l.n + 1) * sizeof *body);
    tok[0] = 0, body[0] = 0;
    for (size_t k = 0; k < l.n; k++) tok[k + 1] = tok[k] + l.u[k].tokens, body[k + 1] = body[k] + !l.u[k].in_heading;
    size_t i = 0;
    while (i < l.n) {
        size_t j = i;
        while (j < l.n && tok[j + 1] - tok[i] <= o->size) j++;
        if (j == i) j = i + 1; /* cannot happen after splitting, but never loop forever */
        size_t b = j;
        if (j < l.n) {
            int64_t half = o->size / 2;
            size_t best = 0;
            for (size_t k = j; k > i && !best; k--)
                if (l.u[k].brk == BRK_HEADING && body[k] > body[i]) best = k;
            for (size_t k = j; k > i && !best && tok[k] - tok[i] >= half; k--)
                if (l.u[k].brk == BRK_PARAGRAPH) best = k;
            for (size_t k = j; k > i && !best && tok[k] - tok[i] >= half; k--)
                if (l.u[k].brk == BRK_SENTENCE) best = k;
            if (best) b = best;
        }
        int64_t n_tok = tok[b] - tok[i];
        if (o->count) { /* a real tokenizer may merge across words: check and shrink */
            for (;;) {
                n_tok = (int64_t)count_tokens(o, d->text + l.u[i].start, l.u[b - 1].end - l.u[i].start);
                if (n_tok <= o->size || b - 1 <= i) break;
                b--;
            }
        }
        if (n_chunks == cap) {
            cap = cap ? 2 * cap : 16;
            chunks = rl_xrealloc(chunks, cap * sizeof *chunks);
        }
        rl_chunk *c = &chunks[n_chunks++];
        c->start = l.u[i].start;
        c->end = l.u[b - 1].end;
        c->n_tokens = (int)n_tok;
        c->heading = heading_between(d, l.u[i].section, l.u[b - 1].section);
        if (b >= l.n) break;
        size_t next = b;
        if (l.u[b].brk != BRK_HEADING && o->overlap > 0) {
            int64_t t = 0;
            while (next - 1 > i && t + l.u[next - 1].tokens <= o->overlap && l.u[next - 1].section == l.u[b].section)
                t += l.u[next - 1].tokens, next--;
        }
        i = next;
    }
    free(tok);
    free(body);
    free(l.u);
    *out = chunks;
    *n_out = n_chunks;
    return RL_OK;
}

void rl_chunks_free(rl_chunk *chunks, size_t n) {
    for (size_t i = 0; i < n; i++) free(chunks[i].heading);
    free(chunks);
}
