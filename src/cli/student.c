/* student.c - what the from-scratch student's training stages need beyond `raftlm train`: the
 * corpus text for pretraining, a tokenizer trained on it, and the question -> answer data of
 * the DSF baseline (cmd_train --stage pretrain|dsf; cmd_run runs them as stages).
 *
 * Held-out documents stay held out: the pretraining text and the tokenizer come only from
 * documents that are not the oracle document of a validation or test question (synth's splits,
 * read back from raft_validation.jsonl / raft_test.jsonl). A held-out document that yielded no
 * question at all cannot be told apart and is pretrained on; it has nothing to test. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "cli/cli.h"
#include "cli/student.h"
#include "synth/synth.h"

/* The oracle documents of a split's RAFT file, appended to *docs (sorted later). */
static void held_out_docs(const char *path, char ***docs, size_t *n) {
    char *text;
    size_t len;
    if (rl_file_read(path, 0, &text, &len, NULL) != RL_OK) return;
    for (char *line = text, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        json_t *o = json_loadb(line, nl ? (size_t)(nl - line) : strlen(line), 0, NULL);
        const char *d = json_string_value(json_object_get(o, "oracle_doc"));
        if (d) {
            *docs = rl_xrealloc(*docs, (*n + 1) * sizeof **docs);
            (*docs)[(*n)++] = rl_xstrdup(d);
        }
        json_decref(o);
    }
    free(text);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void texts_push(cli_texts *out, const char *text, size_t len) {
    if (out->n == out->cap) {
        out->cap = out->cap ? 2 * out->cap : 1024;
        out->text = rl_xrealloc(out->text, out->cap * sizeof *out->text);
        out->len = rl_xrealloc(out->len, out->cap * sizeof *out->len);
    }
    out->text[out->n] = rl_xstrndup(text, len);
    out->len[out->n++] = len;
}

/* The passages: runs of consecutive chunks of one document, cut from the document's own text
 * (so overlapping chunks are not repeated), up to `budget` tokens (the chunker's estimate).
 * Whole passages rather than single chunks let pretraining see a name or a part number come
 * back sentence after sentence, which is where a student first learns to copy from its context
 * (and RAFT answers are copies). */
static rl_status read_passages(sqlite3 *db, const char *db_path, char **held, size_t n_held, int budget, cli_texts *out,
                               rl_error *err) {
    sqlite3_stmt *st, *doc_st;
    if (sqlite3_prepare_v2(db, "SELECT c.doc_id, d.path, c.start, c.end, c.n_tokens FROM chunks c JOIN documents d ON d.id = c.doc_id"
                               " ORDER BY d.path, c.doc_id, c.ordinal",
                           -1, &st, NULL) != SQLITE_OK)
        return rl_fail(err, RL_EDB, "%s: %s", db_path, sqlite3_errmsg(db));
    if (sqlite3_prepare_v2(db, "SELECT text FROM documents WHERE id = ?", -1, &doc_st, NULL) != SQLITE_OK) {
        sqlite3_finalize(st);
        return rl_fail(err, RL_EDB, "%s: %s", db_path, sqlite3_errmsg(db));
    }
    int64_t doc = -1;
    char *doc_text = NULL;
    size_t doc_len = 0, from = 0, to = 0;
    int tokens = 0, open = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        const char *path = (const char *)sqlite3_column_text(st, 1);
        int64_t start = sqlite3_column_int64(st, 2), end = sqlite3_column_int64(st, 3);
        int n_tokens = sqlite3_column_int(st, 4);
        if (!path) continue;
        if (n_held && bsearch(&path, held, n_held, sizeof *held, cmp_str)) {
            out->n_held_out++;
            continue;
        }
        if (id != doc) {
            if (open) texts_push(out, doc_text + from, to - from);
            open = 0;
            free(doc_text);
            doc_text = NULL;
            doc_len = 0;
            doc = id;
            sqlite3_reset(doc_st);
            sqlite3_bind_int64(doc_st, 1, id);
            if (sqlite3_step(doc_st) == SQLITE_ROW) {
                const char *t = (const char *)sqlite3_column_text(doc_st, 0);
                doc_len = (size_t)sqlite3_column_bytes(doc_st, 0);
                doc_text = t ? rl_xstrndup(t, doc_len) : NULL;
            }
        }
        if (!doc_text || start < 0 || end < start || (size_t)end > doc_len) continue; /* offsets from another version */
        if (open && (tokens + n_tokens > budget || (size_t)start < from)) {
            texts_push(out, doc_text + from, to - from);
            open = 0;
        }
        if (!open) from = (size_t)start, tokens = 0, open = 1;
        if ((size_t)end > to || tokens == 0) to = (size_t)end;
        tokens += n_tokens;
    }
    if (open) texts_push(out, doc_text + from, to - from);
    free(doc_text);
    sqlite3_finalize(st);
    sqlite3_finalize(doc_st);
    return RL_OK;
}

rl_status cli_student_corpus(const rl_config *cfg, const char *db_path, cli_texts *out, rl_error *err) {
    memset(out, 0, sizeof *out);
    char **held = NULL;
    size_t n_held = 0;
    const char *splits[] = {"datasets/raft_validation.jsonl", "datasets/raft_test.jsonl"};
    for (int i = 0; i < 2; i++) {
        char *p = rl_path_join(cfg->output_dir, splits[i]);
        held_out_docs(p, &held, &n_held);
        free(p);
    }
    if (n_held) qsort(held, n_held, sizeof *held, cmp_str);
    sqlite3 *db;
    rl_status s = RL_OK;
    /* a quarter of the pretraining window in the chunker's word-based estimate: a passage fits
     * once tokenized, twice in a row too (pretrain.copy_fraction), whatever the subword rate */
    int budget = cfg->pretrain.sequence_len / 4 > cfg->chunking.size ? cfg->pretrain.sequence_len / 4 : cfg->chunking.size;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        s = rl_fail(err, RL_EDB, "%s: %s (run `raftlm ingest` first)", db_path, sqlite3_errmsg(db));
        sqlite3_close(db);
    } else {
        s = read_passages(db, db_path, held, n_held, budget, out, err);
        sqlite3_close(db);
    }
    for (size_t i = 0; i < n_held; i++) free(held[i]);
    free(held);
    if (!s && out->n == 0) s = rl_fail(err, RL_EINVAL, "%s: no chunks to pretrain on (run `raftlm ingest` first)", db_path);
    if (s) cli_texts_free(out);
    return s;
}

void cli_texts_free(cli_texts *t) {
    for (size_t i = 0; i < t->n; i++) free(t->text[i]);
    free(t->text), free(t->len);
    memset(t, 0, sizeof *t);
}

rl_status cli_student_write_completion(const cli_texts *t, double copy_fraction, int counterfactual_copies, uint64_t seed,
                                       const char *path, rl_error *err) {
    rl_buf b = {0};
    size_t k = 0; /* passages written so far */
    for (size_t i = 0; i < t->n; i++)
        for (int c = 0; c <= counterfactual_copies; c++, k++) {
            /* the copies' figures are new each time: a figure seen before can only be recalled
             * from earlier in the same text (the passage shown twice), never from memory */
            uint64_t rng = seed ^ (0x9e3779b97f4a7c15ull * (k + 1));
            char *own = c ? rl_figures_randomize(t->text[i], t->len[i], &rng) : NULL;
            const char *p = own ? own : t->text[i];
            size_t len = own ? strlen(own) : t->len[i];
            /* copy_fraction of the passages, evenly spread, shown twice in a row: everything after
             * the first time can be copied */
            int twice = (size_t)((double)(k + 1) * copy_fraction) > (size_t)((double)k * copy_fraction);
            char *text = twice ? rl_xasprintf("%.*s\n\n%.*s", (int)len, p, (int)len, p) : NULL;
            json_t *o = twice ? json_pack("{s:s}", "text", text) : json_pack("{s:s%}", "text", p, len);
            free(text), free(own);
            char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
            json_decref(o);
            if (!line) continue; /* not UTF-8: the store keeps only valid text, so this does not happen */
            rl_buf_puts(&b, line);
            rl_buf_putc(&b, '\n');
            free(line);
        }
    rl_status s = rl_file_write_atomic(path, b.data ? b.data : "", b.len, err);
    rl_buf_free(&b);
    return s;
}

rl_status cli_student_dsf_data(const char *raft_train, const char *path, size_t *n_out, rl_error *err) {
    *n_out = 0;
    char *text;
    size_t len;
    rl_status s = rl_file_read(raft_train, 0, &text, &len, err);
    if (s) return s;
    rl_buf b = {0};
    size_t line_no = 0;
    for (char *line = text, *nl; line && *line && !s; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        line_no++;
        json_error_t je;
        json_t *o = json_loadb(line, nl ? (size_t)(nl - line) : strlen(line), 0, &je);
        const char *q = json_string_value(json_object_get(o, "question"));
        const char *a = json_string_value(json_object_get(o, "final_answer"));
        const char *type = json_string_value(json_object_get(o, "type"));
        if (!q || !a) s = rl_fail(err, RL_EFORMAT, "%s:%zu: needs \"question\" and \"final_answer\"", raft_train, line_no);
        /* one example per question (the RAFT file has one per question, plus refusals and counterfactual copies) */
        else if (!type || (strcmp(type, "refusal") != 0 && strcmp(type, "counterfactual") != 0)) {
            char *ans = rl_xasprintf("<ANSWER>: %s", a);
            json_t *e = json_pack("{s:s, s:s}", "instruction", q, "cot_answer", ans);
            char *l = json_dumps(e, JSON_COMPACT);
            rl_buf_puts(&b, l);
            rl_buf_putc(&b, '\n');
            free(l), free(ans);
            json_decref(e);
            (*n_out)++;
        }
        json_decref(o);
    }
    free(text);
    if (!s) s = rl_file_write_atomic(path, b.data ? b.data : "", b.len, err);
    rl_buf_free(&b);
    return s;
}
