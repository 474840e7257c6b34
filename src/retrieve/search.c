/* search.c - BM25 keyword search through SQLite FTS5.
 *
 * Users type anything: quotes, operators (AND, NEAR, *), colons, emoji. rl_fts_query keeps
 * only the words (runs of letters and digits; joined runs such as "AR-700X" become phrases),
 * quotes each one and joins them with OR, so the FTS5 query syntax can never fail; BM25 does the ranking (rare words weigh more). Common
 * English stop words are dropped unless nothing else is left, which keeps a question such as
 * "what is the ..." from matching every chunk. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "retrieve/store_internal.h"

static const char *const stop_words[] = {
    "a", "about", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "could", "did", "do", "does", "for", "from",
    "had", "has", "have", "how", "i", "if", "in", "into", "is", "it", "its", "me", "my", "of", "on", "or", "our", "should",
    "so", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "to", "was", "we", "were", "what",
    "when", "where", "which", "who", "whom", "why", "will", "with", "would", "you", "your", NULL};

static int is_stop_word(const char *w) {
    for (const char *const *s = stop_words; *s; s++)
        if (strcmp(*s, w) == 0) return 1;
    return 0;
}

/* A word byte: ASCII letter or digit, or any byte of a non-ASCII UTF-8 character (FTS5's
 * unicode61 tokenizer decides what is a letter there; quoting keeps them safe). */
static int word_byte(unsigned char c) { return isalnum(c) || c >= 0x80; }

static int connector(char c) { return c == '-' || c == '.' || c == ',' || c == '/' || c == ':' || c == '_' || c == '\''; }

/* One query term: a word, or a compound such as "AR-700X", "1,250.00" or "COVID-19" whose
 * parts must stand next to each other (an FTS5 phrase). Compounds keep model numbers, amounts
 * and versions exact, and keep a part like "ar" from matching the stem of "are". */
static char *next_term(const char *text, size_t n, size_t *i, int *is_stop) {
    while (*i < n && !word_byte((unsigned char)text[*i])) (*i)++;
    if (*i >= n) return NULL;
    rl_buf parts = {0};
    int n_parts = 0;
    for (;;) {
        size_t s = *i;
        while (*i < n && word_byte((unsigned char)text[*i])) (*i)++;
        char *w = rl_xstrndup(text + s, *i - s);
        for (char *p = w; *p; p++) *p = (char)tolower((unsigned char)*p);
        if (rl_utf8_valid(w, strlen(w))) { /* invalid bytes would upset FTS5: drop the part */
            if (parts.len) rl_buf_putc(&parts, ' ');
            rl_buf_puts(&parts, w);
            n_parts++;
            *is_stop = n_parts == 1 && is_stop_word(w);
        }
        free(w);
        if (*i + 1 < n && connector(text[*i]) && word_byte((unsigned char)text[*i + 1])) (*i)++;
        else break;
    }
    if (n_parts > 1) *is_stop = 0;
    if (!n_parts) {
        rl_buf_free(&parts);
        return rl_xstrdup("");
    }
    return rl_buf_take(&parts);
}

char *rl_fts_query(const char *text) {
    size_t n = strlen(text), i = 0;
    char **terms = NULL;
    int *stop = NULL;
    size_t n_terms = 0, n_content = 0;
    char *t;
    int is_stop;
    while ((t = next_term(text, n, &i, &is_stop))) {
        int dup = !t[0];
        for (size_t k = 0; k < n_terms && !dup; k++) dup = strcmp(terms[k], t) == 0;
        if (dup || n_terms >= 64) {
            free(t);
            continue;
        }
        terms = rl_xrealloc(terms, (n_terms + 1) * sizeof *terms);
        stop = rl_xrealloc(stop, (n_terms + 1) * sizeof *stop);
        terms[n_terms] = t;
        stop[n_terms++] = is_stop;
        n_content += !is_stop;
    }
    if (n_terms == 0) {
        free(terms);
        free(stop);
        return NULL;
    }
    rl_buf q = {0};
    for (size_t k = 0; k < n_terms; k++) {
        if (n_content > 0 && stop[k]) continue;
        if (q.len) rl_buf_puts(&q, " OR ");
        rl_buf_printf(&q, "\"%s\"", terms[k]);
    }
    for (size_t k = 0; k < n_terms; k++) free(terms[k]);
    free(terms);
    free(stop);
    return rl_buf_take(&q);
}

/* Highlight markers that cannot occur in stored text (control bytes are cleaned at ingest). */
#define MARK_OPEN "\x01"
#define MARK_CLOSE "\x02"

static void strip_marks(rl_hit *h, const char *marked) {
    rl_buf text = {0};
    size_t cap = 0;
    for (const char *p = marked; *p; p++) {
        if (*p == MARK_OPEN[0] || *p == MARK_CLOSE[0]) {
            if (h->n_marks * 2 + 1 >= cap) {
                cap = cap ? 2 * cap : 16;
                h->marks = rl_xrealloc(h->marks, cap * sizeof *h->marks);
            }
            h->marks[h->n_marks * 2 + (*p == MARK_CLOSE[0])] = text.len;
            if (*p == MARK_CLOSE[0]) h->n_marks++;
            continue;
        }
        rl_buf_putc(&text, *p);
    }
    h->text = rl_buf_take(&text);
}

rl_status rl_search_bm25(rl_store *s, const char *query, int k, rl_hit **hits, size_t *n_hits, rl_error *err) {
    return store_search_bm25(s, query, k, NULL, hits, n_hits, err);
}

rl_status store_search_bm25(rl_store *s, const char *query, int k, const char *path_prefix, rl_hit **hits, size_t *n_hits,
                            rl_error *err) {
    *hits = NULL;
    *n_hits = 0;
    if (k <= 0) return rl_fail(err, RL_EINVAL, "k must be positive, got %d", k);
    char *q = rl_fts_query(query);
    if (!q) return RL_OK; /* nothing searchable in the text */
    sqlite3_stmt *st;
    /* bm25() is lower-is-better; headings weigh half as much as body text */
    const char *sql =
        "SELECT c.id, c.doc_id, -bm25(chunks_fts, 1.0, 0.5) AS score, d.path, c.heading,"
        "       highlight(chunks_fts, 0, '" MARK_OPEN "', '" MARK_CLOSE "')"
        "  FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid JOIN documents d ON d.id = c.doc_id"
        " WHERE chunks_fts MATCH ?1 AND (?3 IS NULL OR instr(d.path, ?3) = 1)"
        " ORDER BY bm25(chunks_fts, 1.0, 0.5) LIMIT ?2";
    if (store_prepare(s, &st, sql, err)) {
        free(q);
        return RL_EDB;
    }
    sqlite3_bind_text(st, 1, q, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, k);
    if (path_prefix && path_prefix[0]) sqlite3_bind_text(st, 3, path_prefix, -1, SQLITE_STATIC);
    rl_hit *out = NULL;
    size_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        out = rl_xrealloc(out, (n + 1) * sizeof *out);
        rl_hit *h = &out[n++];
        memset(h, 0, sizeof *h);
        h->chunk_id = sqlite3_column_int64(st, 0);
        h->doc_id = sqlite3_column_int64(st, 1);
        h->score = sqlite3_column_double(st, 2);
        h->doc = rl_xstrdup((const char *)sqlite3_column_text(st, 3));
        h->heading = rl_xstrdup((const char *)sqlite3_column_text(st, 4));
        const char *marked = (const char *)sqlite3_column_text(st, 5);
        strip_marks(h, marked ? marked : "");
    }
    rl_status r = rc == SQLITE_DONE ? RL_OK : store_fail(s, err, "search");
    sqlite3_finalize(st);
    free(q);
    if (r) {
        rl_hits_free(out, n);
        return r;
    }
    *hits = out;
    *n_hits = n;
    return RL_OK;
}

rl_status rl_search_bm25_ids(rl_store *s, const char *query, int k, int64_t *ids, int *n, rl_error *err) {
    *n = 0;
    if (k <= 0) return rl_fail(err, RL_EINVAL, "k must be positive, got %d", k);
    char *q = rl_fts_query(query);
    if (!q) return RL_OK;
    sqlite3_stmt *st;
    if (store_prepare(s, &st, "SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ?1 ORDER BY bm25(chunks_fts, 1.0, 0.5) LIMIT ?2", err)) {
        free(q);
        return RL_EDB;
    }
    sqlite3_bind_text(st, 1, q, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, k);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < k) ids[(*n)++] = sqlite3_column_int64(st, 0);
    rl_status r = rc == SQLITE_DONE || rc == SQLITE_ROW ? RL_OK : store_fail(s, err, "search");
    sqlite3_finalize(st);
    free(q);
    return r;
}

void rl_hits_free(rl_hit *hits, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(hits[i].doc);
        free(hits[i].heading);
        free(hits[i].text);
        free(hits[i].marks);
    }
    free(hits);
}
