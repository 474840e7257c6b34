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
