/* reader_jsonl.c - one document per line of a .jsonl file: {"text": ..., "title"?, "id"?}.
 * Bad lines are skipped and counted (the first reason is reported); a file with no good
 * line at all is an error. */
#include "retrieve/reader_internal.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static int by_key_then_position(const void *a, const void *b) {
    const rl_doc *x = *(rl_doc *const *)a, *y = *(rl_doc *const *)b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x < y ? -1 : x > y);
}

rl_status read_jsonl(const char *data, size_t len, rl_doc_list *out, rl_error *err) {
    size_t i = 0, line_no = 0, bad = 0;
    char first_bad[300] = "";
    while (i < len) {
        const char *nl = memchr(data + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - data) : len;
        line_no++;
        const char *line = data + i;
        size_t n = e - i;
        i = e + 1;
        size_t k = 0;
        while (k < n && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r')) k++;
        if (k == n) continue;
        json_error_t jerr;
        json_t *obj = json_loadb(line, n, JSON_REJECT_DUPLICATES, &jerr);
        const char *why = NULL;
        char whybuf[200];
        json_t *text = obj ? json_object_get(obj, "text") : NULL;
        if (!obj) snprintf(whybuf, sizeof whybuf, "invalid JSON (%s)", jerr.text), why = whybuf;
        else if (!json_is_object(obj)) why = "not a JSON object";
        else if (!json_is_string(text)) why = "no \"text\" string";
        if (why) {
            if (!bad) snprintf(first_bad, sizeof first_bad, "line %zu: %s", line_no, why);
            bad++;
            json_decref(obj);
            continue;
        }
        char *clean;
        size_t clean_len;
        const char *note;
        if (text_normalize(json_string_value(text), json_string_length(text), &clean, &clean_len, &note, NULL) != RL_OK) {
            if (!bad) snprintf(first_bad, sizeof first_bad, "line %zu: text is not readable", line_no);
            bad++;
            json_decref(obj);
            continue;
        }
        char key[128];
        json_t *id = json_object_get(obj, "id");
        if (json_is_string(id)) snprintf(key, sizeof key, "%s", json_string_value(id));
        else if (json_is_integer(id)) snprintf(key, sizeof key, "%lld", (long long)json_integer_value(id));
        else snprintf(key, sizeof key, "line %zu", line_no);
        json_t *title = json_object_get(obj, "title");
        doc_builder b = {0};
        b.text.data = clean, b.text.len = clean_len, b.text.cap = clean_len + 1;
        doc_list_push(out, &b, key, json_is_string(title) ? json_string_value(title) : NULL);
        json_decref(obj);
    }
    if (out->n == 0) {
        if (bad) return rl_fail(err, RL_EFORMAT, "no usable line (%zu bad; first: %s)", bad, first_bad);
        return rl_fail(err, RL_EFORMAT, "no records");
    }
    /* duplicate ids would make two documents with one name: rename the later ones */
    rl_doc **order = rl_xmalloc(out->n * sizeof *order);
    for (size_t a = 0; a < out->n; a++) order[a] = &out->docs[a];
    qsort(order, out->n, sizeof *order, by_key_then_position);
    for (size_t a = 1; a < out->n; a++)
        if (strcmp(order[a]->key, order[a - 1]->key) == 0) {
            char *k = rl_xasprintf("%s (duplicate %zu)", order[a]->key, (size_t)(order[a] - out->docs) + 1);
            free(order[a]->key);
            order[a]->key = k;
        }
    free(order);
    if (bad) out->warning = rl_xasprintf("%zu bad line(s) skipped (first: %s)", bad, first_bad);
    return RL_OK;
}
