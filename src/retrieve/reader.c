/* reader.c - document readers for plain text, Markdown and reStructuredText, plus the
 * dispatch by file type and the text clean-up every reader shares.
 *
 * Markdown and RST keep their source text (the markup is part of what a reader sees, and
 * offsets then point into the real file); their headings are detected so that chunks follow
 * the document's sections. HTML, PDF and JSONL live in their own files. */
#include "retrieve/reader_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static const char *const supported[] = {"txt", "text", "md", "markdown", "rst", "html", "htm", "xhtml", "pdf", "jsonl"};

int rl_reader_supports(const char *path) {
    char ext[16];
    rl_path_ext(path, ext, sizeof ext);
    for (size_t i = 0; i < sizeof supported / sizeof *supported; i++)
        if (strcmp(ext, supported[i]) == 0) return 1;
    return 0;
}

void doc_builder_heading(doc_builder *b, size_t start, int level, const char *title, size_t title_len) {
    while (title_len && isspace((unsigned char)*title)) title++, title_len--;
    while (title_len && isspace((unsigned char)title[title_len - 1])) title_len--;
    if (title_len == 0) return;
    if (b->n_headings == b->cap_headings) {
        b->cap_headings = b->cap_headings ? 2 * b->cap_headings : 16;
        b->headings = rl_xrealloc(b->headings, b->cap_headings * sizeof *b->headings);
    }
    rl_heading *h = &b->headings[b->n_headings++];
    h->start = start;
    h->level = level;
    h->title = rl_xstrndup(title, title_len);
    for (char *p = h->title; *p; p++)
        if (*p == '\n' || *p == '\t') *p = ' ';
}

/* Replaces each byte that starts no valid UTF-8 sequence with '?', in place (one byte for one, so
 * heading offsets stay right). The readers convert encodings themselves, but a parser can still
 * hand back a broken sequence (libxml2 drops a lead byte after a bare '&' in a Latin-1 page). */
static void utf8_repair(char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        int l = (unsigned char)s[i] < 0x80 ? 1 : rl_utf8_seq_len((const unsigned char *)s + i, n - i);
        if (l == 0) s[i++] = '?';
        else i += (size_t)l;
    }
}

void doc_list_push(rl_doc_list *list, doc_builder *b, const char *key, const char *title) {
    list->docs = rl_xrealloc(list->docs, (list->n + 1) * sizeof *list->docs);
    rl_doc *d = &list->docs[list->n++];
    memset(d, 0, sizeof *d);
    d->key = rl_xstrdup(key ? key : "");
    if (title && *title) d->title = rl_xstrdup(title);
    else if (b->n_headings) d->title = rl_xstrdup(b->headings[0].title);
    d->len = b->text.len;
    d->text = rl_buf_take(&b->text);
    d->headings = b->headings;
    d->n_headings = b->n_headings;
    utf8_repair(d->text, d->len);
    if (d->title) utf8_repair(d->title, strlen(d->title));
    for (size_t h = 0; h < d->n_headings; h++) utf8_repair(d->headings[h].title, strlen(d->headings[h].title));
    memset(b, 0, sizeof *b);
}

void rl_doc_list_free(rl_doc_list *list) {
    for (size_t i = 0; i < list->n; i++) {
        rl_doc *d = &list->docs[i];
        free(d->key);
        free(d->title);
        free(d->text);
        for (size_t h = 0; h < d->n_headings; h++) free(d->headings[h].title);
        free(d->headings);
    }
    free(list->docs);
    free(list->warning);
    memset(list, 0, sizeof *list);
}

/* ---- text clean-up -------------------------------------------------------------------- */

/* Windows-1252's 0x80-0x9F; 0 marks the five undefined bytes (they become U+FFFD). */
static const uint16_t cp1252_high[32] = {
    0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0, 0x017D, 0,
    0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E, 0x0178};

static void put_utf8(rl_buf *b, uint32_t cp) {
    char s[4];
    if (cp < 0x80) s[0] = (char)cp, rl_buf_append(b, s, 1);
    else if (cp < 0x800) s[0] = (char)(0xC0 | cp >> 6), s[1] = (char)(0x80 | (cp & 63)), rl_buf_append(b, s, 2);
    else if (cp < 0x10000)
        s[0] = (char)(0xE0 | cp >> 12), s[1] = (char)(0x80 | (cp >> 6 & 63)), s[2] = (char)(0x80 | (cp & 63)), rl_buf_append(b, s, 3);
    else
        s[0] = (char)(0xF0 | cp >> 18), s[1] = (char)(0x80 | (cp >> 12 & 63)), s[2] = (char)(0x80 | (cp >> 6 & 63)),
        s[3] = (char)(0x80 | (cp & 63)), rl_buf_append(b, s, 4);
}

/* UTF-16 with a byte-order mark (Windows editors write it) to UTF-8. */
static void utf16_to_utf8(const unsigned char *p, size_t len, int big_endian, rl_buf *out) {
    for (size_t i = 0; i + 1 < len; i += 2) {
        uint32_t u = big_endian ? (uint32_t)(p[i] << 8 | p[i + 1]) : (uint32_t)(p[i + 1] << 8 | p[i]);
        if (u >= 0xD800 && u <= 0xDBFF && i + 3 < len) {
            uint32_t lo = big_endian ? (uint32_t)(p[i + 2] << 8 | p[i + 3]) : (uint32_t)(p[i + 3] << 8 | p[i + 2]);
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                put_utf8(out, 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00));
                i += 2;
                continue;
            }
        }
        put_utf8(out, (u >= 0xD800 && u <= 0xDFFF) ? 0xFFFD : u);
    }
}

rl_status text_normalize(const char *data, size_t len, char **out, size_t *out_len, const char **note, rl_error *err) {
    const unsigned char *p = (const unsigned char *)data;
    rl_buf decoded = {0};
    *note = NULL;
    if (len >= 2 && ((p[0] == 0xFF && p[1] == 0xFE) || (p[0] == 0xFE && p[1] == 0xFF))) {
        utf16_to_utf8(p + 2, len - 2, p[0] == 0xFE, &decoded);
        *note = "converted from UTF-16";
        p = (const unsigned char *)(decoded.data ? decoded.data : "");
        len = decoded.len;
    } else if (len >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF) {
        p += 3, len -= 3;
    }
    size_t controls = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == 0) {
            rl_buf_free(&decoded);
            return rl_fail(err, RL_EFORMAT, "binary file (contains NUL bytes)");
        }
        if (p[i] < 0x20 && p[i] != '\n' && p[i] != '\r' && p[i] != '\t' && p[i] != '\f') controls++;
    }
    if (controls > 8 && controls * 20 > len) {
        rl_buf_free(&decoded);
        return rl_fail(err, RL_EFORMAT, "binary file (%zu control bytes)", controls);
    }
    int valid = rl_utf8_valid((const char *)p, len);
    if (!valid) *note = "not valid UTF-8: read as Windows-1252";
    rl_buf b = {0};
    rl_buf_reserve(&b, len + len / 8);
    for (size_t i = 0; i < len;) {
        unsigned c = p[i];
        if (c == '\r') {
            rl_buf_putc(&b, '\n');
            i += (i + 1 < len && p[i + 1] == '\n') ? 2 : 1;
        } else if (c == '\f') {
            rl_buf_puts(&b, "\n\n");
            i++;
        } else if (c < 0x20 && c != '\n' && c != '\t') {
            rl_buf_putc(&b, ' ');
            i++;
        } else if (c < 0x80) {
            rl_buf_putc(&b, (char)c);
            i++;
        } else if (valid) {
            int n = rl_utf8_seq_len(p + i, len - i);
            rl_buf_append(&b, p + i, (size_t)n);
            i += (size_t)n;
        } else {
            uint32_t cp = c < 0xA0 ? cp1252_high[c - 0x80] : c;
            put_utf8(&b, cp ? cp : 0xFFFD);
            i++;
        }
    }
    rl_buf_free(&decoded);
    *out_len = b.len;
    *out = rl_buf_take(&b);
    return RL_OK;
}

/* ---- Markdown ---------------------------------------------------------------------------- */

static size_t line_end(const char *t, size_t len, size_t i) {
    const char *nl = memchr(t + i, '\n', len - i);
    return nl ? (size_t)(nl - t) : len;
}

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isspace((unsigned char)s[i])) return 0;
    return 1;
}

/* A line made only of c (at least min times), optionally followed by spaces. */
static int is_rule_of(const char *s, size_t n, char c, size_t min) {
    size_t k = 0;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != c) return 0;
        k++;
    }
    return k >= min;
}

static void scan_markdown(doc_builder *b) {
    const char *t = b->text.data;
    size_t len = b->text.len, i = 0, prev_start = 0, prev_end = 0;
    int in_fence = 0, prev_para = 0; /* the previous line is a paragraph line (setext candidate) */
    char fence = 0;
    while (i < len) {
        size_t e = line_end(t, len, i), n = e - i;
        const char *s = t + i;
        size_t ind = 0;
        while (ind < n && ind < 4 && s[ind] == ' ') ind++;
        if (ind < 4 && n - ind >= 3 && (s[ind] == '`' || s[ind] == '~') && s[ind + 1] == s[ind] && s[ind + 2] == s[ind]) {
            if (!in_fence) in_fence = 1, fence = s[ind];
            else if (s[ind] == fence) in_fence = 0;
            prev_para = 0;
        } else if (in_fence) {
            prev_para = 0;
        } else if (ind < 4 && s[ind] == '#') {
            size_t h = ind;
            while (h < n && s[h] == '#') h++;
            int level = (int)(h - ind);
            if (level <= 6 && (h == n || s[h] == ' ' || s[h] == '\t')) {
                size_t te = n;
                while (te > h && (s[te - 1] == '#' || s[te - 1] == ' ' || s[te - 1] == '\t')) te--;
                doc_builder_heading(b, i, level, s + h, te > h ? te - h : 0);
                prev_para = 0;
            } else prev_para = 1;
        } else if (prev_para && ind < 4 && (is_rule_of(s + ind, n - ind, '=', 1) || is_rule_of(s + ind, n - ind, '-', 2))) {
            doc_builder_heading(b, prev_start, s[ind] == '=' ? 1 : 2, t + prev_start, prev_end - prev_start);
            prev_para = 0;
        } else {
            prev_para = !is_blank(s, n) && !(ind < 4 && n > ind + 1 && strchr("-*+>|", s[ind]) && s[ind + 1] == ' ');
        }
        prev_start = i, prev_end = e;
        i = e + 1;
    }
}

/* ---- reStructuredText -------------------------------------------------------------------- */

static int rst_adornment(const char *s, size_t n) {
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    if (n < 2 || !strchr("=-~^\"'`#*+_:.<>", s[0])) return 0;
    for (size_t i = 1; i < n; i++)
        if (s[i] != s[0]) return 0;
    return s[0];
}

static size_t utf8_chars(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

static void scan_rst(doc_builder *b) {
    const char *t = b->text.data;
    size_t len = b->text.len;
    int styles[16], n_styles = 0; /* style = char, +256 when overlined; level = order seen */
    size_t i = 0;
    size_t ls[3] = {0}, le[3] = {0}; /* the last three lines: [0] oldest */
    int have = 0;
    while (i <= len) {
        size_t e = i < len ? line_end(t, len, i) : len;
        ls[0] = ls[1], le[0] = le[1], ls[1] = ls[2], le[1] = le[2], ls[2] = i, le[2] = e;
        if (have < 3) have++;
        /* title line = ls[1], underline = ls[2], optional overline = ls[0] */
        if (have >= 2) {
            int under = rst_adornment(t + ls[2], le[2] - ls[2]);
            size_t tn = le[1] - ls[1];
            if (under && tn > 0 && !is_blank(t + ls[1], tn) && !rst_adornment(t + ls[1], tn) &&
                utf8_chars(t + ls[2], le[2] - ls[2]) >= utf8_chars(t + ls[1], tn) - (tn > 0 && t[ls[1] + tn - 1] == ' ')) {
                int over = have >= 3 && rst_adornment(t + ls[0], le[0] - ls[0]) == under;
                int style = under + (over ? 256 : 0), level = 0;
                for (int k = 0; k < n_styles; k++)
                    if (styles[k] == style) level = k + 1;
                if (!level && n_styles < 16) styles[n_styles++] = style, level = n_styles;
                if (!level) level = 16;
                doc_builder_heading(b, over ? ls[0] : ls[1], level, t + ls[1], tn);
            }
        }
        if (e >= len) break;
        i = e + 1;
    }
}

/* ---- plain text ------------------------------------------------------------------------- */

/* A plain text file's title: its first line when that reads like one (short, no full stop). */
static char *text_title(const char *t, size_t len) {
    size_t i = 0;
    while (i < len && isspace((unsigned char)t[i])) i++;
    size_t e = i;
    while (e < len && t[e] != '\n') e++;
    while (e > i && isspace((unsigned char)t[e - 1])) e--;
    if (e == i || e - i > 100 || t[e - 1] == '.' || t[e - 1] == ',' || t[e - 1] == ':') return NULL;
    int words = 1, lower = 0;
    for (size_t k = i; k < e; k++) words += t[k] == ' ', lower |= islower((unsigned char)t[k]) != 0;
    /* "PRODUCT DATA SHEET" is a form's label, not what the document is about */
    return words <= 12 && lower ? rl_xstrndup(t + i, e - i) : NULL;
}

/* ---- dispatch ---------------------------------------------------------------------------- */

rl_status rl_read_document(const char *path, const char *data, size_t len, rl_doc_list *out, rl_error *err) {
    memset(out, 0, sizeof *out);
    char ext[16];
    rl_path_ext(path, ext, sizeof ext);
    if (len == 0) return rl_fail(err, RL_EFORMAT, "empty file");
    rl_status s;
    if (strcmp(ext, "html") == 0 || strcmp(ext, "htm") == 0 || strcmp(ext, "xhtml") == 0) s = read_html(data, len, out, err);
    else if (strcmp(ext, "pdf") == 0) s = read_pdf(data, len, out, err);
    else if (strcmp(ext, "jsonl") == 0) s = read_jsonl(data, len, out, err);
    else {
        const char *note;
        doc_builder b = {0};
        char *text;
        size_t n;
        s = text_normalize(data, len, &text, &n, &note, err);
        if (s) return s;
        b.text.data = text, b.text.len = n, b.text.cap = n + 1;
        if (strcmp(ext, "md") == 0 || strcmp(ext, "markdown") == 0) scan_markdown(&b);
        else if (strcmp(ext, "rst") == 0) scan_rst(&b);
        char *title = b.n_headings ? NULL : text_title(b.text.data, b.text.len);
        doc_list_push(out, &b, "", title);
        free(title);
        if (note) out->warning = rl_xstrdup(note);
    }
    if (s) {
        rl_doc_list_free(out);
        return s;
    }
    size_t total = 0;
    for (size_t i = 0; i < out->n; i++)
        for (size_t k = 0; k < out->docs[i].len; k++) total += !isspace((unsigned char)out->docs[i].text[k]);
    if (total == 0) {
        rl_doc_list_free(out);
        return rl_fail(err, RL_EFORMAT, "no text in the file");
    }
    return RL_OK;
}
