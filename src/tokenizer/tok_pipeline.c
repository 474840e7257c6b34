/* tok_pipeline.c - the tokenizer.json pipeline: added tokens, normalizers, pre-tokenizers, model,
 * post-processor; plus the regex rewriting that makes PCRE2 read tokenizer.json patterns the way
 * the reference does.
 *
 * The order follows @huggingface/tokenizers (the reference our fixtures come from):
 *   1. split the text on added tokens whose content is matched unnormalized (longest match first,
 *      left to right), applying their lstrip/rstrip to the neighbouring sections;
 *   2. normalize each remaining section, then split it on the normalized added tokens;
 *   3. pre-tokenize each piece (the section's index matters for Metaspace prepend_scheme "first");
 *   4. run the model (BPE or WordPiece) on each pre-token;
 *   5. the post-processor's template adds BOS/EOS or [CLS]/[SEP] when asked.
 * Pre-tokens are spans into one arena (a growable buffer); steps that only split make sub-spans,
 * steps that rewrite text (Metaspace, Replace, a prefix space) append to the arena.
 *
 * Deliberate simplifications (documented where they apply): Lowercase uses utf8proc's simple
 * case mapping (plus U+0130) rather than JavaScript's full mapping with final sigma; the
 * MergedWith* split behaviours follow the Rust library (the JavaScript one treats them as
 * Isolated); Metaspace does not split on U+2581 (as the JavaScript one). */
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* JavaScript's \s / trim() set (WhiteSpace + LineTerminator), used by the built-in patterns */
#define JS_WS                                                                                                          \
    "\\t\\n\\x{0B}\\f\\r \\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}\\x{FEFF}"
#define JS_PUNCT "\\p{P}\\x{21}-\\x{2F}\\x{3A}-\\x{40}\\x{5B}-\\x{60}\\x{7B}-\\x{7E}"

/* ---- regex ---------------------------------------------------------------------------- */

static int is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* Rewrites an Oniguruma-style tokenizer.json pattern for PCRE2 the way the JavaScript reference
 * rewrites it for JS: \s -> \p{White_Space}, \d -> \p{Nd}, \w -> the Unicode word class, \h ->
 * hex digit, (?i:...) -> ASCII-only case folding (so that 'S does not also match U+017F).
 * Simplification: a letter range inside a character class under (?i:) is not folded correctly
 * (no real tokenizer pattern has one). */
static char *regex_rewrite(const char *p, size_t n) {
    rl_buf o = {0};
    int fold = 0, in_class = 0, class_start = 0;
    int stack[64], depth = 0;
    for (size_t i = 0; i < n;) {
        char c = p[i];
        if (c == '\\' && i + 1 < n) {
            char d = p[i + 1];
            if ((d == 'p' || d == 'P' || d == 'x' || d == 'u') && i + 2 < n && p[i + 2] == '{') {
                const char *e = memchr(p + i, '}', n - i);
                size_t end = e ? (size_t)(e - p) + 1 : n;
                if (d == 'u') { /* \u{HHHH} -> \x{HHHH} */
                    rl_buf_puts(&o, "\\x");
                    rl_buf_append(&o, p + i + 2, end - i - 2);
                } else rl_buf_append(&o, p + i, end - i);
                i = end;
                class_start = 0;
                continue;
            }
            if (d == 'u' && i + 6 <= n) { /* \uHHHH */
                rl_buf_puts(&o, "\\x{");
                rl_buf_append(&o, p + i + 2, 4);
                rl_buf_putc(&o, '}');
                i += 6;
                class_start = 0;
                continue;
            }
            const char *rep = NULL;
            switch (d) {
            case 's': rep = "\\p{White_Space}"; break;
            case 'S': rep = "\\P{White_Space}"; break;
            case 'd': rep = "\\p{Nd}"; break;
            case 'D': rep = "\\P{Nd}"; break;
            case 'w':
                rep = in_class ? "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}" : "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}]";
                break;
            case 'W': rep = in_class ? "\\W" : "[^\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}]"; break;
            case 'h': rep = in_class ? "0-9A-Fa-f" : "[0-9A-Fa-f]"; break;
            case 'H': rep = in_class ? "\\H" : "[^0-9A-Fa-f]"; break;
            case 'G': rep = ""; break;
            default: break;
            }
            if (rep) rl_buf_puts(&o, rep);
            else rl_buf_append(&o, p + i, 2);
            i += 2;
            class_start = 0;
            continue;
        }
        if (in_class) {
            if (c == ']' && !class_start) in_class = 0;
            if (fold && is_alpha(c)) {
                rl_buf_putc(&o, (char)(c | 0x20));
                rl_buf_putc(&o, (char)(c & ~0x20));
            } else rl_buf_putc(&o, c);
            class_start = (class_start && c == '^') ? 1 : 0;
            i++;
            continue;
        }
        if (c == '[') {
            in_class = 1;
            class_start = 1;
            rl_buf_putc(&o, c);
            i++;
            continue;
        }
        if (c == '(') {
            if (depth < 64) stack[depth] = fold;
            depth++;
            if (n - i >= 4 && memcmp(p + i, "(?i:", 4) == 0) {
                fold = 1;
                rl_buf_puts(&o, "(?:");
                i += 4;
                continue;
            }
        } else if (c == ')') {
            if (depth > 0) {
                depth--;
                if (depth < 64) fold = stack[depth];
            }
        } else if (fold && is_alpha(c)) {
            rl_buf_printf(&o, "[%c%c]", c | 0x20, c & ~0x20);
            i++;
            continue;
        }
        rl_buf_putc(&o, c);
        i++;
    }
    return rl_buf_take(&o);
}

pcre2_code *tok_regex_compile(const char *pattern, size_t len, int literal, rl_error *err) {
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re;
    if (literal) {
        re = pcre2_compile((PCRE2_SPTR)pattern, len, PCRE2_UTF | PCRE2_LITERAL, &ec, &eo, NULL);
    } else {
        char *rw = regex_rewrite(pattern, len);
        /* MULTILINE: ^ and $ are line anchors in Oniguruma, as in the reference's rewrite */
        re = pcre2_compile((PCRE2_SPTR)rw, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &ec, &eo,
                           NULL);
        free(rw);
    }
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        rl_fail(err, RL_EFORMAT, "bad regex /%.*s/ at offset %zu: %s", (int)(len > 200 ? 200 : len), pattern,
                (size_t)eo, (const char *)msg);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter when JIT is absent */
    return re;
}

typedef struct rx { /* per-call matching state */
    pcre2_match_data *md;
    pcre2_match_context *mc;
} rx;

/* Next match of re in s[0..n) at or after *start; returns 1 and [ms, me), 0 at the end, -1 on
 * an error (in err). Empty matches advance by one character, like JavaScript's matchAll. */
static int rx_next(rx *x, const pcre2_code *re, const char *s, size_t n, size_t *start, size_t *ms, size_t *me,
                   rl_error *err) {
    while (*start <= n) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, n, *start, PCRE2_NO_UTF_CHECK, x->md, x->mc);
        if (rc == PCRE2_ERROR_NOMATCH) return 0;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            rl_fail(err, RL_EINTERRUPTED, "pre-tokenizer regex failed: %s", (const char *)msg);
            return -1;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(x->md);
        *ms = ov[0];
        *me = ov[1];
        if (*me > *ms) {
            *start = *me;
            return 1;
        }
        /* empty match: skip one character */
        if (*ms >= n) return 0;
        *start = *ms + (size_t)tok_u8len((unsigned char)s[*ms]);
    }
    return 0;
}

/* ---- normalizers ---------------------------------------------------------------------- */

void tok_norm_free(tok_norm *nm) {
    free(nm->a);
    free(nm->b);
    if (nm->re) pcre2_code_free(nm->re);
}

static int js_space(uint32_t c) {
    return c == 9 || c == 10 || c == 11 || c == 12 || c == 13 || c == 32 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000 ||
           c == 0xFEFF;
}

static inline uint32_t cp_at(const char *s, size_t n, size_t i, int *l) {
    uint32_t cp;
    *l = rl_utf8_decode((const unsigned char *)s + i, n - i, &cp);
    if (*l == 0) *l = 1, cp = 0xFFFD;
    return cp;
}

/* JavaScript trim(): returns the trimmed span of s */
static void js_trim(const char *s, size_t n, int left, int right, size_t *b, size_t *e) {
    size_t i = 0, j = n;
    int l;
    if (left)
        while (i < n && js_space(cp_at(s, n, i, &l))) i += (size_t)l;
    if (right)
        while (j > i) {
            size_t k = j - 1;
            while (k > i && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
            if (!js_space(cp_at(s, n, k, &l))) break;
            j = k;
        }
    *b = i;
    *e = j;
}

static void unicode_form(const char *s, size_t n, int options, rl_buf *out) {
    size_t i = 0;
    while (i < n && (unsigned char)s[i] < 0x80) i++;
    if (i == n) { /* ASCII is invariant under all four forms */
        rl_buf_append(out, s, n);
        return;
    }
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst, options);
    if (r < 0) rl_buf_append(out, s, n); /* cannot happen on valid UTF-8; keep the text */
    else rl_buf_append(out, dst, (size_t)r);
    free(dst);
}

static int is_mark(uint32_t c) {
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_MC || k == UTF8PROC_CATEGORY_ME;
}

static void lowercase(const char *s, size_t n, rl_buf *out) {
    for (size_t i = 0; i < n;) {
        int l;
        uint32_t c = cp_at(s, n, i, &l);
        if (c < 0x80) rl_buf_putc(out, (char)(c >= 'A' && c <= 'Z' ? c + 32 : c));
        else if (c == 0x130) rl_buf_append(out, "i\xCC\x87", 3); /* İ -> i + combining dot */
        else tok_put_cp(out, (uint32_t)utf8proc_tolower((utf8proc_int32_t)c));
        i += (size_t)l;
    }
}

static void remove_marks(const char *s, size_t n, int nonspacing_only, rl_buf *out) {
    for (size_t i = 0; i < n;) {
        int l;
        uint32_t c = cp_at(s, n, i, &l);
        int drop = nonspacing_only ? utf8proc_category((utf8proc_int32_t)c) == UTF8PROC_CATEGORY_MN : is_mark(c);
        if (!drop) rl_buf_append(out, s + i, (size_t)l);
        i += (size_t)l;
    }
}

static int is_cjk_bmp(uint32_t c) {
    /* JavaScript checks UTF-16 units, so only the BMP ranges of is_chinese_char ever match */
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0xF900 && c <= 0xFAFF);
}

static void bert_normalize(const tok_norm *nm, const char *s, size_t n, rl_buf *out) {
    rl_buf a = {0}, b = {0};
    rl_buf_append(&a, s, n);
    if (nm->clean_text) {
        for (size_t i = 0; i < a.len;) {
            int l;
            uint32_t c = cp_at(a.data, a.len, i, &l);
            utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
            int control = c != 9 && c != 10 && c != 13 &&
                          (k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF || k == UTF8PROC_CATEGORY_CO ||
                           k == UTF8PROC_CATEGORY_CS);
            if (c == 0 || c == 0xFFFD || control) {
            } else if (js_space(c)) rl_buf_putc(&b, ' ');
            else rl_buf_append(&b, a.data + i, (size_t)l);
            i += (size_t)l;
        }
        rl_buf_clear(&a);
        rl_buf_append(&a, b.data ? b.data : "", b.len);
        rl_buf_clear(&b);
    }
    if (nm->chinese) {
        for (size_t i = 0; i < a.len;) {
            int l;
            uint32_t c = cp_at(a.data, a.len, i, &l);
            if (is_cjk_bmp(c)) rl_buf_putc(&b, ' ');
            rl_buf_append(&b, a.data + i, (size_t)l);
            if (is_cjk_bmp(c)) rl_buf_putc(&b, ' ');
            i += (size_t)l;
        }
        rl_buf_clear(&a);
        rl_buf_append(&a, b.data ? b.data : "", b.len);
        rl_buf_clear(&b);
    }
    int strip = nm->lowercase ? nm->strip_accents != 0 : nm->strip_accents == 1;
    if (nm->lowercase) {
        lowercase(a.data ? a.data : "", a.len, &b);
        rl_buf_clear(&a);
        rl_buf_append(&a, b.data ? b.data : "", b.len);
        rl_buf_clear(&b);
    }
    if (strip) {
        unicode_form(a.data ? a.data : "", a.len, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE, &b);
        remove_marks(b.data ? b.data : "", b.len, 1, out);
    } else rl_buf_append(out, a.data ? a.data : "", a.len);
    rl_buf_free(&a);
    rl_buf_free(&b);
}

static void replace_all(const char *s, size_t n, const char *pat, size_t pl, const char *rep, size_t rl, rl_buf *out) {
    if (pl == 0) {
        rl_buf_append(out, s, n);
        return;
    }
    size_t i = 0, run = 0;
    while (i + pl <= n) {
        if (memcmp(s + i, pat, pl) == 0) {
            rl_buf_append(out, s + run, i - run);
            rl_buf_append(out, rep, rl);
            i += pl;
            run = i;
        } else i++;
    }
    rl_buf_append(out, s + run, n - run);
}

static rl_status replace_regex(const pcre2_code *re, const char *s, size_t n, const char *rep, size_t rl, rl_buf *out,
                               rl_error *err) {
    rx x = {pcre2_match_data_create(1, NULL), NULL};
    size_t start = 0, run = 0, ms, me;
    int r;
    while ((r = rx_next(&x, re, s, n, &start, &ms, &me, err)) == 1) {
        rl_buf_append(out, s + run, ms - run);
        rl_buf_append(out, rep, rl);
        run = me;
    }
    pcre2_match_data_free(x.md);
    if (r < 0) return err ? err->status : RL_EINTERRUPTED;
    rl_buf_append(out, s + run, n - run);
    return RL_OK;
}

static void precompiled(const char *s, size_t n, rl_buf *out) {
    rl_buf a = {0};
    for (size_t i = 0; i < n;) {
        int l;
        uint32_t c = cp_at(s, n, i, &l);
        if ((c >= 1 && c <= 8) || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || c == 0x8F || c == 0x9F) {
        } else if (c == 9 || c == 10 || c == 12 || c == 13 || c == 0xA0 || c == 0x1680 ||
                   (c >= 0x2000 && c <= 0x200F) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
                   c == 0x2581 || c == 0x3000 || c == 0xFEFF || c == 0xFFFD)
            rl_buf_putc(&a, ' ');
        else rl_buf_append(&a, s + i, (size_t)l);
        i += (size_t)l;
    }
    /* NFKC, except that U+FF5E (fullwidth tilde) is kept as is, as the reference does */
    const char *p = a.data ? a.data : "";
    size_t start = 0;
    for (size_t i = 0; i + 3 <= a.len; i++)
        if (memcmp(p + i, "\xEF\xBD\x9E", 3) == 0) {
            unicode_form(p + start, i - start, UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT, out);
            rl_buf_append(out, "\xEF\xBD\x9E", 3);
            start = i + 3;
            i += 2;
        }
    unicode_form(p + start, a.len - start, UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT, out);
    rl_buf_free(&a);
}

rl_status tok_normalize(const rl_tokenizer *t, const char *in, size_t n, rl_buf *out, rl_error *err) {
    rl_buf cur = {0}, nxt = {0};
    rl_buf_append(&cur, in, n);
    for (int k = 0; k < t->n_norms; k++) {
        const tok_norm *nm = &t->norms[k];
        const char *s = cur.data ? cur.data : "";
        size_t sl = cur.len;
        rl_buf_clear(&nxt);
        switch (nm->type) {
        case NORM_NFC: unicode_form(s, sl, UTF8PROC_STABLE | UTF8PROC_COMPOSE, &nxt); break;
        case NORM_NFD: unicode_form(s, sl, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE, &nxt); break;
        case NORM_NFKC: unicode_form(s, sl, UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT, &nxt); break;
        case NORM_NFKD: unicode_form(s, sl, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT, &nxt); break;
        case NORM_PREPEND:
            rl_buf_append(&nxt, nm->a, nm->alen);
            rl_buf_append(&nxt, s, sl);
            break;
        case NORM_REPLACE:
            if (nm->re) {
                rl_status st = replace_regex(nm->re, s, sl, nm->b, nm->blen, &nxt, err);
                if (st) {
                    rl_buf_free(&cur);
                    rl_buf_free(&nxt);
                    return st;
                }
            } else replace_all(s, sl, nm->a, nm->alen, nm->b, nm->blen, &nxt);
            break;
        case NORM_LOWER: lowercase(s, sl, &nxt); break;
        case NORM_STRIP_ACCENTS: remove_marks(s, sl, 0, &nxt); break;
        case NORM_STRIP: {
            size_t b, e;
            js_trim(s, sl, nm->left, nm->right, &b, &e);
            rl_buf_append(&nxt, s + b, e - b);
            break;
        }
        case NORM_BERT: bert_normalize(nm, s, sl, &nxt); break;
        case NORM_PRECOMPILED: precompiled(s, sl, &nxt); break;
        }
        rl_buf tmp = cur;
        cur = nxt;
        nxt = tmp;
    }
    rl_buf_append(out, cur.data ? cur.data : "", cur.len);
    rl_buf_free(&cur);
    rl_buf_free(&nxt);
    return RL_OK;
}

/* ---- added tokens -------------------------------------------------------------------- */

static const char *added_text(const tok_added *a, int set, size_t *n) {
    if (set == 1) {
        *n = a->norm_len;
        return a->norm;
    }
    *n = a->len;
    return a->content;
}

typedef struct sort_ctx {
    const rl_tokenizer *t;
    int set;
} sort_ctx;

static int added_cmp(const void *x, const void *y, void *arg) {
    const sort_ctx *c = arg;
    const tok_added *a = &c->t->added[*(const int32_t *)x], *b = &c->t->added[*(const int32_t *)y];
    size_t na, nb;
    const char *sa = added_text(a, c->set, &na), *sb = added_text(b, c->set, &nb);
    int fa = (unsigned char)sa[0], fb = (unsigned char)sb[0];
    if (fa != fb) return fa - fb;
    if (na != nb) return na > nb ? -1 : 1;
    return a->id - b->id;
}

rl_status tok_added_index(rl_tokenizer *t, rl_error *err) {
    (void)err;
    for (int set = 0; set < 2; set++) {
        free(t->aidx[set]);
        t->aidx[set] = rl_xmalloc((size_t)(t->n_added + 1) * sizeof(int32_t));
        int m = 0;
        for (int i = 0; i < t->n_added; i++) {
            const tok_added *a = &t->added[i];
            int in_norm = a->normalized && t->has_normalizer;
            if (in_norm != set) continue;
            size_t n;
            added_text(a, set, &n);
            if (n == 0) continue;
            t->aidx[set][m++] = i;
        }
        sort_ctx ctx = {t, set};
        qsort_r(t->aidx[set], (size_t)m, sizeof(int32_t), added_cmp, &ctx);
        int k = 0;
        for (int b = 0; b < 257; b++) {
            while (k < m && b < 256) {
                size_t n;
                const char *s = added_text(&t->added[t->aidx[set][k]], set, &n);
                if ((unsigned char)s[0] >= b) break;
                k++;
            }
            t->abeg[set][b] = b < 256 ? k : m;
        }
    }
    return RL_OK;
}

typedef struct span {
    size_t off, len;
    int32_t added; /* index into t->added, or -1 */
} span;

typedef struct spans {
    span *v;
    size_t n, cap;
} spans;

static void spans_push(spans *a, size_t off, size_t len, int32_t added) {
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 16;
        a->v = rl_xrealloc(a->v, a->cap * sizeof *a->v);
    }
    a->v[a->n++] = (span){off, len, added};
}

/* Splits s on the added tokens of one set (longest match at each position, left to right),
 * then applies lstrip/rstrip to the neighbours (JavaScript trim semantics). */
static void split_added(const rl_tokenizer *t, int set, const char *s, size_t n, spans *out) {
    out->n = 0;
    size_t start = 0, i = 0;
    const int32_t *idx = t->aidx[set];
    while (i < n) {
        int b = (unsigned char)s[i];
        int32_t best = -1;
        size_t blen = 0;
        if (idx)
            for (int k = t->abeg[set][b]; k < t->abeg[set][b + 1]; k++) {
                size_t al;
                const char *as = added_text(&t->added[idx[k]], set, &al);
                if (al <= n - i && memcmp(as, s + i, al) == 0) {
                    best = idx[k];
                    blen = al;
                    break; /* sorted longest first */
                }
            }
        if (best >= 0) {
            if (i > start) spans_push(out, start, i - start, -1);
            spans_push(out, i, blen, best);
            i += blen;
            start = i;
        } else i++;
    }
    if (start < n) spans_push(out, start, n - start, -1);
    for (size_t k = 0; k < out->n; k++) {
        if (out->v[k].added < 0) continue;
        const tok_added *a = &t->added[out->v[k].added];
        if (a->lstrip && k > 0 && out->v[k - 1].added < 0) {
            size_t b, e;
            js_trim(s + out->v[k - 1].off, out->v[k - 1].len, 0, 1, &b, &e);
            out->v[k - 1].len = e;
        }
        if (a->rstrip && k + 1 < out->n && out->v[k + 1].added < 0) {
            size_t b, e;
            js_trim(s + out->v[k + 1].off, out->v[k + 1].len, 1, 0, &b, &e);
            out->v[k + 1].off += b;
            out->v[k + 1].len = e - b;
        }
    }
}

/* ---- pre-tokenizers ------------------------------------------------------------------ */

void tok_pre_free(tok_pre *p) {
    if (p->re) pcre2_code_free(p->re);
    free(p->rep);
    free(p->lit);
}

typedef struct piece_list {
    size_t *off, *len;
    size_t n, cap;
} piece_list;

static void pl_push(piece_list *l, size_t off, size_t len) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->off = rl_xrealloc(l->off, l->cap * sizeof *l->off);
        l->len = rl_xrealloc(l->len, l->cap * sizeof *l->len);
    }
    l->off[l->n] = off;
    l->len[l->n] = len;
    l->n++;
}

/* Splits piece [off, off+len) of the arena with re under behavior; results go to out. */
static rl_status split_piece(rx *x, const pcre2_code *re, int behavior, int invert, rl_buf *ar, size_t off, size_t len,
                             piece_list *out, rl_error *err) {
    const char *s = ar->data + off;
    size_t start = 0, prev = 0, ms, me;
    int r;
    /* collect (begin, end, is_match) runs */
    size_t n0 = out->n;
    typedef struct {
        size_t b, e;
        int m;
    } run;
    run *runs = NULL;
    size_t nr = 0, cr = 0;
#define PUSH_RUN(B, E, M)                                                                                              \
    do {                                                                                                               \
        if (nr == cr) cr = cr ? cr * 2 : 16, runs = rl_xrealloc(runs, cr * sizeof *runs);                              \
        runs[nr++] = (run){(B), (E), (M)};                                                                             \
    } while (0)
    while ((r = rx_next(x, re, s, len, &start, &ms, &me, err)) == 1) {
        if (ms > prev) PUSH_RUN(prev, ms, 0);
        PUSH_RUN(ms, me, 1);
        prev = me;
    }
    if (r < 0) {
        free(runs);
        return err ? err->status : RL_EINTERRUPTED;
    }
    if (prev < len) PUSH_RUN(prev, len, 0);
#undef PUSH_RUN
    if (invert) {
        /* JavaScript: keep the matches only */
        for (size_t i = 0; i < nr; i++)
            if (runs[i].m) pl_push(out, off + runs[i].b, runs[i].e - runs[i].b);
    } else if (behavior == SPLIT_REMOVED) {
        for (size_t i = 0; i < nr; i++)
            if (!runs[i].m) pl_push(out, off + runs[i].b, runs[i].e - runs[i].b);
    } else if (behavior == SPLIT_ISOLATED) {
        for (size_t i = 0; i < nr; i++) pl_push(out, off + runs[i].b, runs[i].e - runs[i].b);
    } else if (behavior == SPLIT_MERGED_PREV) {
        int prev_match = 0;
        for (size_t i = 0; i < nr; i++) {
            if (runs[i].m && !prev_match && out->n > n0) out->len[out->n - 1] = off + runs[i].e - out->off[out->n - 1];
            else pl_push(out, off + runs[i].b, runs[i].e - runs[i].b);
            prev_match = runs[i].m;
        }
    } else if (behavior == SPLIT_MERGED_NEXT) {
        /* walk backwards: a match joins the piece after it */
        size_t *b = rl_xmalloc((nr + 1) * sizeof *b), *e = rl_xmalloc((nr + 1) * sizeof *e);
        size_t m = 0;
        int prev_match = 0;
        for (size_t i = nr; i-- > 0;) {
            if (runs[i].m && !prev_match && m > 0) b[m - 1] = runs[i].b;
            else b[m] = runs[i].b, e[m] = runs[i].e, m++;
            prev_match = runs[i].m;
        }
        for (size_t i = m; i-- > 0;) pl_push(out, off + b[i], e[i] - b[i]);
        free(b);
        free(e);
    } else { /* contiguous: consecutive matches join */
        int prev_match = 0;
        for (size_t i = 0; i < nr; i++) {
            if (runs[i].m && prev_match && out->n > n0) out->len[out->n - 1] = off + runs[i].e - out->off[out->n - 1];
            else pl_push(out, off + runs[i].b, runs[i].e - runs[i].b);
            prev_match = runs[i].m;
        }
    }
    free(runs);
    return RL_OK;
}

static rl_status pre_apply(const rl_tokenizer *t, const tok_pre *p, rx *x, rl_buf *ar, piece_list *in, piece_list *out,
                           int section_index, rl_error *err) {
    out->n = 0;
    for (size_t k = 0; k < in->n; k++) {
        size_t off = in->off[k], len = in->len[k];
        rl_status st = RL_OK;
        switch (p->type) {
        case PRE_BYTELEVEL:
            if (p->add_prefix_space && !(len > 0 && ar->data[off] == ' ')) {
                size_t noff = ar->len;
                rl_buf_reserve(ar, len + 1); /* the copy reads from ar itself: grow it first */
                rl_buf_putc(ar, ' ');
                rl_buf_append(ar, ar->data + off, len);
                off = noff, len = len + 1;
            }
            if (p->use_regex) st = split_piece(x, p->re, SPLIT_ISOLATED, 1, ar, off, len, out, err);
            else pl_push(out, off, len);
            break;
        case PRE_METASPACE: {
            size_t noff = ar->len;
            rl_buf tmp = {0};
            replace_all(ar->data + off, len, " ", 1, p->rep, p->rep_len, &tmp);
            int starts = p->rep_len == 0 || (tmp.len >= p->rep_len && memcmp(tmp.data, p->rep, p->rep_len) == 0);
            if (!starts && (p->prepend_scheme == 0 || (p->prepend_scheme == 1 && section_index == 0)))
                rl_buf_append(ar, p->rep, p->rep_len);
            rl_buf_append(ar, tmp.data ? tmp.data : "", tmp.len);
            rl_buf_free(&tmp);
            pl_push(out, noff, ar->len - noff);
            break;
        }
        case PRE_REPLACE: {
            size_t noff = ar->len;
            rl_buf tmp = {0};
            if (p->re) st = replace_regex(p->re, ar->data + off, len, p->rep, p->rep_len, &tmp, err);
            else replace_all(ar->data + off, len, p->lit, p->lit_len, p->rep, p->rep_len, &tmp);
            rl_buf_append(ar, tmp.data ? tmp.data : "", tmp.len);
            rl_buf_free(&tmp);
            pl_push(out, noff, ar->len - noff);
            break;
        }
        case PRE_BERT: {
            size_t b, e;
            js_trim(ar->data + off, len, 1, 1, &b, &e);
            st = split_piece(x, p->re, SPLIT_ISOLATED, 1, ar, off + b, e - b, out, err);
            break;
        }
        case PRE_SPLIT: st = split_piece(x, p->re, p->behavior, p->invert, ar, off, len, out, err); break;
        default: /* the match-only built-ins: Whitespace, WhitespaceSplit, Punctuation, Digits */
            st = split_piece(x, p->re, SPLIT_ISOLATED, 1, ar, off, len, out, err);
            break;
        }
        if (st) return st;
    }
    (void)t;
    return RL_OK;
}

/* ---- the model --------------------------------------------------------------------- */

static void model_word_uncached(const rl_tokenizer *t, const char *w, size_t n, tok_scratch *s, tok_ids *out) {
    if (t->kind == RL_TOK_WORDPIECE) tok_wordpiece_word(t, w, n, out);
    else if (t->kind == RL_TOK_SPM_SCORES) tok_spm_word(t, w, n, s, out);
    else tok_bpe_word(t, w, n, s, out);
}

#define CACHE_MAX_WORD 64
#define CACHE_MAX_ENTRIES (1u << 16)

static uint64_t word_hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ^ (h >> 31);
}

/* Encodes one pre-token, through a cache of the short ones: the model is a pure function of the
 * word, so a word seen before in this call gets the same ids without running BPE again. */
static void model_word(const rl_tokenizer *t, const char *w, size_t n, tok_scratch *s, tok_ids *out) {
    if (n == 0) return;
    if (n > CACHE_MAX_WORD) {
        model_word_uncached(t, w, n, s, out);
        return;
    }
    tok_cache *c = &s->cache;
    if (!c->slot || c->n >= CACHE_MAX_ENTRIES) { /* (re)start small: a full cache is simply emptied */
        free(c->slot);
        c->mask = 255;
        c->slot = rl_xcalloc(c->mask + 1, sizeof *c->slot);
        c->n = 0;
        c->words.len = 0;
        c->n_ids = 0;
    } else if (2 * (c->n + 1) > c->mask + 1) { /* keep the table at most half full: double it */
        free(c->slot);
        c->mask = 2 * c->mask + 1;
        c->slot = rl_xcalloc(c->mask + 1, sizeof *c->slot);
        for (size_t e = 0; e < c->n; e++) {
            size_t h = word_hash(c->words.data + c->woff[e], c->wlen[e]) & c->mask;
            while (c->slot[h]) h = (h + 1) & c->mask;
            c->slot[h] = (uint32_t)e + 1;
        }
    }
    size_t h = word_hash(w, n) & c->mask;
    for (;;) {
        uint32_t e = c->slot[h];
        if (!e) break;
        e--;
        if (c->wlen[e] == n && memcmp(c->words.data + c->woff[e], w, n) == 0) {
            for (uint32_t k = 0; k < c->ilen[e]; k++) tok_ids_push(out, c->ids[c->ioff[e] + k]);
            return;
        }
        h = (h + 1) & c->mask;
    }
    size_t from = out->n;
    model_word_uncached(t, w, n, s, out);
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 1024;
        c->woff = rl_xrealloc(c->woff, c->cap * sizeof *c->woff);
        c->wlen = rl_xrealloc(c->wlen, c->cap * sizeof *c->wlen);
        c->ioff = rl_xrealloc(c->ioff, c->cap * sizeof *c->ioff);
        c->ilen = rl_xrealloc(c->ilen, c->cap * sizeof *c->ilen);
    }
    size_t k = out->n - from;
    if (c->n_ids + k > c->cap_ids) {
        c->cap_ids = (c->n_ids + k) * 2 + 1024;
        c->ids = rl_xrealloc(c->ids, c->cap_ids * sizeof *c->ids);
    }
    if (k) memcpy(c->ids + c->n_ids, out->v + from, k * sizeof *c->ids);
    c->woff[c->n] = (uint32_t)c->words.len;
    c->wlen[c->n] = (uint32_t)n;
    c->ioff[c->n] = (uint32_t)c->n_ids;
    c->ilen[c->n] = (uint32_t)k;
    rl_buf_append(&c->words, w, n);
    c->n_ids += k;
    c->slot[h] = (uint32_t)c->n + 1;
    c->n++;
}

/* fuse_unk: consecutive unknown tokens of one model call become one (the reference applies it
 * to all the pre-tokens of a section together) */
static void fuse_unknowns(const rl_tokenizer *t, tok_ids *out, size_t from) {
    if (!t->fuse_unk || t->unk < 0) return;
    size_t w = from;
    for (size_t i = from; i < out->n; i++) {
        if (out->v[i] == t->unk && w > from && out->v[w - 1] == t->unk) continue;
        out->v[w++] = out->v[i];
    }
    out->n = w;
}

static rl_status pretok_and_model(const rl_tokenizer *t, const char *s, size_t n, int section_index, rx *x,
                                  tok_scratch *sc, tok_ids *out, rl_error *err) {
    size_t from = out->n;
    if (t->n_pres == 0) {
        model_word(t, s, n, sc, out);
        fuse_unknowns(t, out, from);
        return RL_OK;
    }
    rl_buf ar = {0};
    rl_buf_append(&ar, s, n);
    piece_list a = {0}, b = {0};
    pl_push(&a, 0, n);
    rl_status st = RL_OK;
    for (int k = 0; k < t->n_pres && !st; k++) {
        st = pre_apply(t, &t->pres[k], x, &ar, &a, &b, section_index, err);
        piece_list tmp = a;
        a = b;
        b = tmp;
    }
    if (!st) {
        for (size_t k = 0; k < a.n; k++) model_word(t, ar.data + a.off[k], a.len[k], sc, out);
        fuse_unknowns(t, out, from);
    }
    free(a.off);
    free(a.len);
    free(b.off);
    free(b.len);
    rl_buf_free(&ar);
    return st;
}

/* JavaScript: a section whose whole text is an added token becomes that token */
static int32_t whole_added(const rl_tokenizer *t, const char *s, size_t n) {
    for (int set = 0; set < 2; set++) {
        if (!t->aidx[set] || n == 0) continue;
        int b = (unsigned char)s[0];
        for (int k = t->abeg[set][b]; k < t->abeg[set][b + 1]; k++) {
            size_t al;
            const char *as = added_text(&t->added[t->aidx[set][k]], set, &al);
            if (al == n && memcmp(as, s, n) == 0) return t->added[t->aidx[set][k]].id;
        }
    }
    return -1;
}

rl_status tok_pipeline_encode(const rl_tokenizer *t, const char *text, size_t len, int add_special, tok_scratch *sc,
                              tok_ids *out, rl_error *err) {
    rl_buf clean = {0};
    if (!rl_utf8_valid(text, len)) {
        tok_sanitize_utf8(text, len, &clean);
        text = clean.data;
        len = clean.len;
    }
    rx x = {pcre2_match_data_create(1, NULL), pcre2_match_context_create(NULL)};
    pcre2_set_match_limit(x.mc, 50u * 1000 * 1000);
    pcre2_set_depth_limit(x.mc, 100000);
    tok_ids body = {0};
    spans sec = {0}, sub = {0};
    rl_buf norm = {0};
    rl_status st = RL_OK;
    if (t->wpm) {
        split_added(t, 0, text, len, &sec);
        for (size_t i = 0; i < sec.n; i++) {
            if (sec.v[i].added >= 0) tok_ids_push(&body, t->added[sec.v[i].added].id);
            else tok_wpm_text(t, text + sec.v[i].off, sec.v[i].len, &body);
        }
    } else if (t->kind == RL_TOK_SPM_SCORES) {
        /* GGUF "llama" (llama.cpp): special tokens split first; each text fragment gets U+2581
         * for spaces and, when it is the first or follows a special token, a leading U+2581 */
        split_added(t, 0, text, len, &sec);
        int prev_special = 1;
        for (size_t i = 0; i < sec.n; i++) {
            span *sp = &sec.v[i];
            if (sp->added >= 0) {
                tok_ids_push(&body, t->added[sp->added].id);
                prev_special = 1;
                continue;
            }
            if (sp->len == 0) continue;
            rl_buf_clear(&norm);
            if (t->spm_add_space && prev_special) rl_buf_append(&norm, "\xE2\x96\x81", 3);
            prev_special = 0;
            replace_all(text + sp->off, sp->len, " ", 1, "\xE2\x96\x81", 3, &norm);
            tok_spm_word(t, norm.data, norm.len, sc, &body);
        }
    } else {
        split_added(t, 0, text, len, &sec);
        for (size_t i = 0; i < sec.n && !st; i++) {
            span *sp = &sec.v[i];
            if (sp->len == 0) continue;
            if (sp->added >= 0) {
                tok_ids_push(&body, t->added[sp->added].id);
                continue;
            }
            const char *s = text + sp->off;
            size_t n = sp->len;
            int32_t w = whole_added(t, s, n);
            if (w >= 0) {
                tok_ids_push(&body, w);
                continue;
            }
            if (t->has_normalizer) {
                rl_buf_clear(&norm);
                st = tok_normalize(t, s, n, &norm, err);
                if (st) break;
                s = norm.data ? norm.data : "";
                n = norm.len;
                if (n == 0) continue;
                split_added(t, 1, s, n, &sub);
            } else {
                sub.n = 0;
                spans_push(&sub, 0, n, -1);
            }
            for (size_t j = 0; j < sub.n && !st; j++) {
                span *q = &sub.v[j];
                if (q->len == 0) continue;
                if (q->added >= 0) {
                    tok_ids_push(&body, t->added[q->added].id);
                    continue;
                }
                int32_t w2 = t->has_normalizer ? whole_added(t, s + q->off, q->len) : -1;
                if (w2 >= 0) {
                    tok_ids_push(&body, w2);
                    continue;
                }
                st = pretok_and_model(t, s + q->off, q->len, (int)i, &x, sc, &body, err);
            }
        }
    }
    if (!st) {
        if (add_special && t->tmpl) {
            for (int k = 0; k < t->n_tmpl; k++) {
                if (t->tmpl[k].id >= 0) tok_ids_push(out, t->tmpl[k].id);
                else
                    for (size_t i = 0; i < body.n; i++) tok_ids_push(out, body.v[i]);
            }
        } else
            for (size_t i = 0; i < body.n; i++) tok_ids_push(out, body.v[i]);
    }
    free(body.v);
    free(sec.v);
    free(sub.v);
    rl_buf_free(&norm);
    rl_buf_free(&clean);
    pcre2_match_data_free(x.md);
    pcre2_match_context_free(x.mc);
    return st;
}

/* the built-in patterns of the match-only pre-tokenizers (JavaScript reference definitions) */
const char *tok_builtin_pattern(int type, int individual_digits) {
    switch (type) {
    case PRE_BYTELEVEL:
        return "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" JS_WS "\\p{L}\\p{N}]+|[" JS_WS "]+(?![^" JS_WS
               "])|[" JS_WS "]+";
    case PRE_WHITESPACE: return "[A-Za-z0-9_]+|[^A-Za-z0-9_" JS_WS "]+";
    case PRE_WHITESPACE_SPLIT: return "[^" JS_WS "]+";
    case PRE_BERT: return "[^" JS_WS JS_PUNCT "]+|[" JS_PUNCT "]";
    case PRE_PUNCT: return "[^" JS_PUNCT "]+|[" JS_PUNCT "]+";
    case PRE_DIGITS: return individual_digits ? "[^0-9]+|[0-9]" : "[^0-9]+|[0-9]+";
    }
    return NULL;
}
