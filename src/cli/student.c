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
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        s = rl_fail(err, RL_EDB, "%s: %s (run `raftlm ingest` first)", db_path, sqlite3_errmsg(db));
        sqlite3_close(db);
    } else {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(db, "SELECT d.path, c.text FROM chunks c JOIN documents d ON d.id = c.doc_id ORDER BY d.path, c.ordinal",
                               -1, &st, NULL) != SQLITE_OK) {
            s = rl_fail(err, RL_EDB, "%s: %s", db_path, sqlite3_errmsg(db));
        } else {
            while (sqlite3_step(st) == SQLITE_ROW) {
                const char *path = (const char *)sqlite3_column_text(st, 0), *text = (const char *)sqlite3_column_text(st, 1);
                if (!path || !text) continue;
                if (n_held && bsearch(&path, held, n_held, sizeof *held, cmp_str)) {
                    out->n_held_out++;
                    continue;
                }
                if (out->n == out->cap) {
                    out->cap = out->cap ? 2 * out->cap : 1024;
                    out->text = rl_xrealloc(out->text, out->cap * sizeof *out->text);
                    out->len = rl_xrealloc(out->len, out->cap * sizeof *out->len);
                }
                out->text[out->n] = rl_xstrdup(text);
                out->len[out->n++] = strlen(text);
            }
            sqlite3_finalize(st);
        }
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

rl_status cli_student_write_completion(const cli_texts *t, const char *path, rl_error *err) {
    rl_buf b = {0};
    for (size_t i = 0; i < t->n; i++) {
        json_t *o = json_pack("{s:s%}", "text", t->text[i], t->len[i]);
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
        /* one example per question (the RAFT file has one per question, plus refusals) */
        else if (!type || strcmp(type, "refusal") != 0) {
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
