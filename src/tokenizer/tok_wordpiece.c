/* tok_wordpiece.c - BERT's WordPiece: greedy longest-match-first over the characters of a word,
 * later pieces carrying the continuing-subword prefix ("##"); a word with an unmatchable part,
 * or longer than max_input_chars_per_word characters, becomes the unknown token. The longest
 * match is searched from the longest piece the vocabulary could hold down, so a word of L
 * characters costs O(L * P) lookups for pieces of at most P bytes; L is bounded by
 * max_input_chars_per_word (100 by default). */
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>

void tok_wordpiece_word(const rl_tokenizer *t, const char *w, size_t n, tok_ids *out) {
    /* character boundaries */
    size_t nc = 0;
    for (size_t i = 0; i < n; i += (size_t)tok_u8len((unsigned char)w[i])) nc++;
    if ((long)nc > (long)t->wp_max_chars) {
        if (t->unk >= 0) tok_ids_push(out, t->unk);
        return;
    }
    size_t *cb = rl_xmalloc((nc + 1) * sizeof *cb);
    nc = 0;
    for (size_t i = 0; i < n; i += (size_t)tok_u8len((unsigned char)w[i])) cb[nc++] = i;
    cb[nc] = n;
    const char *pre = t->wp_prefix ? t->wp_prefix : "";
    size_t pl = strlen(pre);
    rl_buf b = {0};
    size_t mark = out->n;
    size_t start = 0;
    int unknown = 0;
    while (start < nc) {
        /* no piece is longer than the longest in the vocabulary: start the search there */
        size_t end = nc;
        while (end > start + 1 && cb[end] - cb[start] + (start > 0 ? pl : 0) > (size_t)t->max_piece_len) end--;
        int32_t found = -1;
        while (start < end) {
            b.len = 0;
            if (start > 0) rl_buf_append(&b, pre, pl);
            rl_buf_append(&b, w + cb[start], cb[end] - cb[start]);
            found = tok_lookup(t, b.data, b.len);
            if (found >= 0) break;
            end--;
        }
        if (found < 0) {
            unknown = 1;
            break;
        }
        tok_ids_push(out, found);
        start = end;
    }
    if (unknown) {
        out->n = mark;
        if (t->unk >= 0) tok_ids_push(out, t->unk);
    }
    rl_buf_free(&b);
    free(cb);
}

/* ---- llama.cpp's WPM (GGUF "bert" vocabularies) ----------------------------------------------
 * llama.cpp stores BERT vocabularies with U+2581 before word-initial pieces and no "##"; its
 * tokenizer (llm_tokenizer_wpm_session) maps every code point to the first code point of its
 * NFD decomposition (which drops accents), lower-cases it, drops controls, splits on whitespace
 * and makes punctuation, ASCII symbols and CJK characters single-character words; then each word,
 * prefixed with U+2581, is matched greedily (longest piece first, by bytes); a word with a part
 * that matches nothing becomes the unknown token. */

#include <utf8proc.h>

static int wpm_chinese(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static int wpm_space(uint32_t c) {
    return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

static void wpm_word(const rl_tokenizer *t, const char *w, size_t n, tok_ids *out) {
    size_t mark = out->n;
    for (size_t i = 0; i < n;) {
        size_t j = n;
        if ((size_t)t->max_piece_len < j - i) j = i + (size_t)t->max_piece_len;
        int32_t id = -1;
        for (; j > i; j--)
            if ((id = tok_lookup(t, w + i, j - i)) >= 0) break;
        if (id < 0) {
            out->n = mark;
            break;
        }
        tok_ids_push(out, id);
        i = j;
    }
    if (out->n == mark && t->unk >= 0) tok_ids_push(out, t->unk);
}

void tok_wpm_text(const rl_tokenizer *t, const char *s, size_t n, tok_ids *out) {
    rl_buf w = {0};
    rl_buf_puts(&w, "\xE2\x96\x81");
    for (size_t i = 0; i < n;) {
        uint32_t c;
        int l = rl_utf8_decode((const unsigned char *)s + i, n - i, &c);
        if (l == 0) l = 1, c = 0xFFFD;
        i += (size_t)l;
        utf8proc_int32_t d[8];
        int options = UTF8PROC_DECOMPOSE, last = 0;
        if (utf8proc_decompose_char((utf8proc_int32_t)c, d, 8, options, &last) > 0) c = (uint32_t)d[0];
        if (wpm_space(c)) {
            if (w.len > 3) wpm_word(t, w.data, w.len, out);
            w.len = 3;
            continue;
        }
        utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
        int control = k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF || k == UTF8PROC_CATEGORY_CO ||
                      k == UTF8PROC_CATEGORY_CS;
        if (c == 0 || c == 0xFFFD || control) continue;
        uint32_t lc = (uint32_t)utf8proc_tolower((utf8proc_int32_t)c);
        int punct = k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
        int symbol = k >= UTF8PROC_CATEGORY_SM && k <= UTF8PROC_CATEGORY_SO;
        if (punct || (c < 0x7F && symbol) || wpm_chinese(c)) {
            if (w.len > 3) wpm_word(t, w.data, w.len, out);
            w.len = 3;
            tok_put_cp(&w, lc);
            wpm_word(t, w.data, w.len, out);
            w.len = 3;
        } else tok_put_cp(&w, lc);
    }
    if (w.len > 3) wpm_word(t, w.data, w.len, out);
    rl_buf_free(&w);
}
