/* run.c - a synthesis run: every chunk of the store through the teacher, verified, committed.
 *
 * Work is keyed by the chunk's content (sha256 of heading, title and text) and a fingerprint
 * of the settings that shape the teacher's output, so re-ingesting unchanged documents or
 * rerunning changes nothing, and a changed chunk is asked about again. A chunk's questions,
 * answers and verdicts are committed together with the chunk's "done" mark: a killed run
 * loses at most the chunks in flight and never stores half a chunk. Tasks for many chunks are
 * kept in flight at once (the teacher's capacity), so a remote teacher stays busy. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "synth/synth_internal.h"

rl_status syn_ensure_tables(sqlite3 *db, rl_error *err) {
    const char *sql =
        "CREATE TABLE IF NOT EXISTS synth_chunks("
        "  chunk_sha TEXT NOT NULL, fp TEXT NOT NULL, n_items INTEGER NOT NULL, done_at INTEGER NOT NULL,"
        "  PRIMARY KEY(chunk_sha, fp));"
        "CREATE TABLE IF NOT EXISTS synth_items("
        "  id INTEGER PRIMARY KEY AUTOINCREMENT, chunk_sha TEXT NOT NULL, fp TEXT NOT NULL, ordinal INTEGER NOT NULL,"
        "  question TEXT NOT NULL, cot_answer TEXT, final_answer TEXT,"
        "  status TEXT NOT NULL,"  /* accepted | rejected */
        "  reason TEXT NOT NULL, detail TEXT,"
        "  prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL DEFAULT 0,"
        "  UNIQUE(chunk_sha, fp, ordinal));";
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        rl_status s = rl_fail(err, RL_EDB, "synth tables: %s", msg ? msg : "error");
        sqlite3_free(msg);
        return s;
    }
    return RL_OK;
}

char *syn_fingerprint(const rl_synth_opts *o) {
    char *s = rl_xasprintf("teacher=%s;questions_per_chunk=%d", o->teacher_fingerprint ? o->teacher_fingerprint : "", o->questions_per_chunk);
    char hex[65];
    rl_sha256_hex(s, strlen(s), hex);
    free(s);
    hex[16] = 0;
    return rl_xstrdup(hex);
}

static char *col_text(sqlite3_stmt *st, int i) {
    const unsigned char *t = sqlite3_column_text(st, i);
    return rl_xstrdup(t ? (const char *)t : "");
}

rl_status syn_load_chunks(sqlite3 *db, syn_chunks *out, rl_error *err) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "SELECT c.id, c.doc_id, c.ordinal, c.text, c.heading, coalesce(d.title, ''), d.path"
                           "  FROM chunks c JOIN documents d ON d.id = c.doc_id ORDER BY d.path, c.ordinal",
                           -1, &st, NULL) != SQLITE_OK)
        return rl_fail(err, RL_EDB, "reading chunks: %s", sqlite3_errmsg(db));
    size_t cap = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (out->n == cap) cap = cap ? 2 * cap : 256, out->c = rl_xrealloc(out->c, cap * sizeof *out->c);
        syn_chunk *c = &out->c[out->n++];
        c->id = sqlite3_column_int64(st, 0);
        c->doc_id = sqlite3_column_int64(st, 1);
        c->ordinal = sqlite3_column_int(st, 2);
        c->text = col_text(st, 3);
        c->heading = col_text(st, 4);
        c->title = col_text(st, 5);
        c->doc_path = col_text(st, 6);
        rl_buf b = {0};
        rl_buf_puts(&b, c->heading);
        rl_buf_putc(&b, 0);
        rl_buf_puts(&b, c->title);
        rl_buf_putc(&b, 0);
        rl_buf_puts(&b, c->text);
        rl_sha256_hex(b.data, b.len, c->sha);
        rl_buf_free(&b);
    }
    sqlite3_finalize(st);
    return RL_OK;
}

void syn_chunks_free(syn_chunks *c) {
    for (size_t i = 0; i < c->n; i++) free(c->c[i].text), free(c->c[i].heading), free(c->c[i].title), free(c->c[i].doc_path);
    free(c->c);
    memset(c, 0, sizeof *c);
}

/* ---- the work loop ----------------------------------------------------------------------- */

typedef struct pending_chunk {
    syn_chunk *chunk;
    rl_teacher_task qtask;         /* the questions */
    rl_teacher_task *atasks;       /* one answer per question */
    int n_answers, answers_left;
    int failed;
    char *error;
} pending_chunk;

static void pending_free(pending_chunk *p) {
    rl_teacher_task_clear(&p->qtask);
    for (int i = 0; i < p->n_answers; i++) rl_teacher_task_clear(&p->atasks[i]);
    free(p->atasks);
    free(p->error);
    memset(p, 0, sizeof *p);
}

static void count_reason(rl_synth_report *r, const char *reason, int64_t n) {
    for (int i = 0; i < r->n_reasons; i++)
        if (strcmp(r->reasons[i], reason) == 0) {
            r->reason_counts[i] += n;
            return;
        }
    if (r->n_reasons < 32) {
        r->reasons[r->n_reasons] = rl_xstrdup(reason);
        r->reason_counts[r->n_reasons++] = n;
    }
}

/* Verifies and stores one chunk's questions and answers with its done mark, atomically. */
static rl_status commit_chunk(sqlite3 *db, const char *fp, pending_chunk *p, int64_t *accepted, rl_error *err) {
    sqlite3_stmt *ins = NULL, *done = NULL;
    rl_status r = RL_OK;
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) return rl_fail(err, RL_EDB, "begin: %s", sqlite3_errmsg(db));
    if (sqlite3_prepare_v2(db,
                           "INSERT OR REPLACE INTO synth_items(chunk_sha, fp, ordinal, question, cot_answer, final_answer, status, reason,"
                           " detail, prompt_tokens, completion_tokens) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                           -1, &ins, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO synth_chunks(chunk_sha, fp, n_items, done_at) VALUES (?,?,?,?)", -1, &done, NULL) !=
            SQLITE_OK)
        r = rl_fail(err, RL_EDB, "prepare: %s", sqlite3_errmsg(db));
    for (int i = 0; i < p->n_answers && !r; i++) {
        rl_teacher_task *a = &p->atasks[i];
        rl_verdict v;
        rl_verify_answer(a->answer ? a->answer : "", p->chunk->text, &v);
        sqlite3_bind_text(ins, 1, p->chunk->sha, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 2, fp, -1, SQLITE_STATIC);
        sqlite3_bind_int(ins, 3, i);
        sqlite3_bind_text(ins, 4, a->question, -1, SQLITE_STATIC);
        if (a->answer) sqlite3_bind_text(ins, 5, a->answer, -1, SQLITE_STATIC);
        if (v.final_answer) sqlite3_bind_text(ins, 6, v.final_answer, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 7, v.ok ? "accepted" : "rejected", -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 8, v.reason, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 9, v.detail, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 10, a->prompt_tokens + (i == 0 ? p->qtask.prompt_tokens : 0));
        sqlite3_bind_int64(ins, 11, a->completion_tokens + (i == 0 ? p->qtask.completion_tokens : 0));
        if (sqlite3_step(ins) != SQLITE_DONE) r = rl_fail(err, RL_EDB, "store item: %s", sqlite3_errmsg(db));
        sqlite3_reset(ins);
        sqlite3_clear_bindings(ins);
        *accepted += v.ok;
        free(v.final_answer);
    }
    if (!r) {
        sqlite3_bind_text(done, 1, p->chunk->sha, -1, SQLITE_STATIC);
        sqlite3_bind_text(done, 2, fp, -1, SQLITE_STATIC);
        sqlite3_bind_int(done, 3, p->n_answers);
        sqlite3_bind_int64(done, 4, (int64_t)time(NULL));
        if (sqlite3_step(done) != SQLITE_DONE) r = rl_fail(err, RL_EDB, "store chunk: %s", sqlite3_errmsg(db));
    }
    sqlite3_finalize(ins);
    sqlite3_finalize(done);
    if (r) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return r;
    }
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) return rl_fail(err, RL_EDB, "commit: %s", sqlite3_errmsg(db));
    return RL_OK;
}

static int64_t count_accepted(sqlite3 *db, const char *fp) {
    sqlite3_stmt *st;
    int64_t n = 0;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM synth_items WHERE fp = ? AND status = 'accepted'", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, fp, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return n;
}

static int chunk_done(sqlite3_stmt *st, const char *sha, const char *fp) {
    sqlite3_bind_text(st, 1, sha, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, fp, -1, SQLITE_STATIC);
    int done = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_reset(st);
    return done;
}

/* Runs the teacher over the chunks that are not done yet. */
static rl_status generate(rl_store *store, rl_teacher *t, const rl_synth_opts *o, const char *fp, syn_chunks *chunks,
                          rl_synth_report *rep, rl_error *err) {
    sqlite3 *db = rl_store_db(store);
    sqlite3_stmt *is_done;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM synth_chunks WHERE chunk_sha = ? AND fp = ?", -1, &is_done, NULL) != SQLITE_OK)
        return rl_fail(err, RL_EDB, "%s", sqlite3_errmsg(db));
    /* the chunks to do, each content once */
    size_t *todo = rl_xmalloc((chunks->n + 1) * sizeof *todo), n_todo = 0;
    /* (a chunk whose text occurs twice may be asked about twice; its rows are keyed by content,
     * so the second commit replaces the first) */
    for (size_t i = 0; i < chunks->n; i++)
        if (!chunk_done(is_done, chunks->c[i].sha, fp)) todo[n_todo++] = i;
    sqlite3_finalize(is_done);
    rep->chunks_reused = (int64_t)(chunks->n - n_todo);
    int64_t accepted = count_accepted(db, fp);
    int cap = t->vt->capacity(t);
    if (cap < 1) cap = 1;
    /* at most `cap` chunks in flight: each needs a question task then answer tasks; up to twice
     * the teacher's concurrency is handed over, so that its queue never runs dry */
    pending_chunk *slots = rl_xcalloc((size_t)cap, sizeof *slots);
    int in_flight = 0, tasks_out = 0;
    size_t next = 0;
    rl_status r = RL_OK;
    rl_progress bar;
    rl_progress_start(&bar, "synth", "chunks", (double)n_todo);
    rl_teacher_task **done = rl_xmalloc((size_t)cap * 4 * sizeof *done);
    int64_t failed = 0;
    while (!r) {
        /* with a limit, keep only as many chunks in flight as could still be needed */
        int stop = o->max_examples > 0 && accepted + (int64_t)in_flight * o->questions_per_chunk >= o->max_examples;
        /* fill free slots with new chunks */
        for (int s = 0; s < cap && next < n_todo && !stop && tasks_out < 2 * cap; s++) {
            if (slots[s].chunk) continue;
            if (o->max_examples > 0 && accepted + (int64_t)(in_flight + 1) * o->questions_per_chunk > o->max_examples && in_flight > 0) break;
            pending_chunk *p = &slots[s];
            p->chunk = &chunks->c[todo[next++]];
            p->qtask.kind = RL_TASK_QUESTIONS;
            p->qtask.chunk_text = p->chunk->text;
            p->qtask.heading = p->chunk->heading;
            p->qtask.doc_title = p->chunk->title;
            p->qtask.n_questions = o->questions_per_chunk;
            p->qtask.user = p;
            r = t->vt->submit(t, &p->qtask, err);
            if (r == RL_EINTERRUPTED) { /* the budget is spent: finish what is in flight, then stop */
                rl_warn("%s", err ? err->msg : "teacher stopped");
                rep->stopped_by_budget = 1;
                r = RL_OK;
                memset(p, 0, sizeof *p);
                next = n_todo;
                break;
            }
            if (r) break;
            in_flight++;
            tasks_out++;
        }
        if (r || in_flight == 0) break;
        int n = t->vt->poll(t, done, cap * 4);
        if (n <= 0 && tasks_out > 0) {
            r = rl_fail(err, RL_EINTERNAL, "the %s teacher returned nothing with %d tasks outstanding", t->vt->name, tasks_out);
            break;
        }
        for (int k = 0; k < n && !r; k++) {
            rl_teacher_task *task = done[k];
            pending_chunk *p = task->user;
            tasks_out--;
            if (task->status != RL_OK && !p->failed) {
                p->failed = 1;
                p->error = rl_xstrdup(task->error ? task->error : rl_status_name(task->status));
            }
            if (task->kind == RL_TASK_QUESTIONS && !p->failed) {
                p->n_answers = task->n_out;
                p->answers_left = 0; /* counts the answers actually submitted */
                p->atasks = rl_xcalloc((size_t)(task->n_out ? task->n_out : 1), sizeof *p->atasks);
                for (int q = 0; q < task->n_out && !r; q++) {
                    rl_teacher_task *a = &p->atasks[q];
                    a->kind = RL_TASK_ANSWER;
                    a->chunk_text = p->chunk->text;
                    a->heading = p->chunk->heading;
                    a->doc_title = p->chunk->title;
                    a->question = task->questions[q];
                    a->hint = task->hints ? task->hints[q] : NULL;
                    a->user = p;
                    r = t->vt->submit(t, a, err);
                    if (r == RL_EINTERRUPTED) { /* budget spent mid-chunk: the chunk is redone next run */
                        rep->stopped_by_budget = 1;
                        next = n_todo;
                        r = RL_OK;
                        p->failed = 1;
                        p->error = rl_xstrdup("token budget spent");
                        break;
                    }
                    p->answers_left++;
                    tasks_out++;
                }
            } else if (task->kind == RL_TASK_ANSWER) {
                p->answers_left--;
            }
            /* done when no answer of this chunk is outstanding */
            int finished = p->answers_left == 0;
            if (!finished || r) continue;
            if (p->failed) {
                /* not marked done: a rerun asks again (a teacher outage must not lose chunks) */
                failed++;
                rl_warn("chunk %lld of %s: teacher failed: %s", (long long)p->chunk->id, p->chunk->doc_path, p->error);
            } else {
                r = commit_chunk(db, fp, p, &accepted, err);
                rep->chunks_done_now++;
            }
            pending_free(p);
            in_flight--;
            rl_progress_add(&bar, 1);
        }
    }
    rl_progress_finish(&bar);
    /* drain what is still in flight after an error (their slots are freed below) */
    while (tasks_out > 0) {
        int n = t->vt->poll(t, done, cap * 4);
        if (n <= 0) break;
        tasks_out -= n;
    }
    for (int s = 0; s < cap; s++)
        if (slots[s].chunk) pending_free(&slots[s]);
    free(slots);
    free(done);
    free(todo);
    if (!r && failed) count_reason(rep, "teacher_failed_chunks (rerun to retry)", failed);
    return r;
}

static rl_status summarize(sqlite3 *db, const char *fp, const syn_chunks *chunks, rl_synth_report *rep, rl_error *err) {
    /* counts over the items of the current chunks only */
    sqlite3_stmt *st;
    if (sqlite3_exec(db, "CREATE TEMP TABLE IF NOT EXISTS cur_chunks(sha TEXT PRIMARY KEY); DELETE FROM cur_chunks;", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO cur_chunks(sha) VALUES (?)", -1, &st, NULL) != SQLITE_OK)
        return rl_fail(err, RL_EDB, "%s", sqlite3_errmsg(db));
    for (size_t i = 0; i < chunks->n; i++) {
        sqlite3_bind_text(st, 1, chunks->c[i].sha, -1, SQLITE_STATIC);
        sqlite3_step(st);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(db,
                           "SELECT status, reason, count(*), sum(prompt_tokens), sum(completion_tokens) FROM synth_items"
                           " WHERE fp = ? AND chunk_sha IN (SELECT sha FROM cur_chunks) GROUP BY status, reason ORDER BY count(*) DESC",
                           -1, &st, NULL) != SQLITE_OK)
        return rl_fail(err, RL_EDB, "%s", sqlite3_errmsg(db));
    sqlite3_bind_text(st, 1, fp, -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t n = sqlite3_column_int64(st, 2);
        rep->questions += n;
        rep->prompt_tokens += sqlite3_column_int64(st, 3);
        rep->completion_tokens += sqlite3_column_int64(st, 4);
        if (strcmp((const char *)sqlite3_column_text(st, 0), "accepted") == 0) rep->accepted += n;
        else {
            rep->rejected += n;
            count_reason(rep, (const char *)sqlite3_column_text(st, 1), n);
        }
    }
    sqlite3_finalize(st);
    return RL_OK;
}

/* Writes path only when its content changed; *written says whether it did. */
static rl_status write_if_changed(const char *path, const rl_buf *b, int *written, rl_error *err) {
    char *old;
    size_t len;
    if (rl_file_read(path, 0, &old, &len, NULL) == RL_OK) {
        int same = len == b->len && (len == 0 || memcmp(old, b->data, len) == 0);
        free(old);
        if (same) return RL_OK;
    }
    *written = 1;
    return rl_file_write_atomic(path, b->data ? b->data : "", b->len, err);
}

static rl_status write_datasets(const rl_synth_opts *o, const syn_examples *x, rl_synth_report *rep, rl_error *err) {
    char *dir = rl_path_join(o->out_dir, "datasets");
    rl_status r = rl_mkdir_p(dir, err);
    static const char *split_names[] = {"train", "validation", "test"};
    for (int split = 0; split < 3 && !r; split++) {
        rl_buf raft = {0}, eval = {0};
        for (size_t i = 0; i < x->n; i++) {
            if (x->e[i].split != split) continue;
            char *line = syn_example_json(&x->e[i], RL_EXPORT_RAFT);
            rl_buf_puts(&raft, line);
            rl_buf_putc(&raft, '\n');
            free(line);
            if (split > 0 && !x->e[i].refusal) {
                line = syn_example_json(&x->e[i], RL_EXPORT_EVAL);
                rl_buf_puts(&eval, line);
                rl_buf_putc(&eval, '\n');
                free(line);
            }
        }
        char *p1 = rl_xasprintf("%s/raft_%s.jsonl", dir, split_names[split]);
        r = write_if_changed(p1, &raft, &rep->datasets_written, err);
        free(p1);
        if (!r && split > 0) {
            char *p2 = rl_xasprintf("%s/eval_%s.jsonl", dir, split_names[split]);
            r = write_if_changed(p2, &eval, &rep->datasets_written, err);
            free(p2);
        }
        rl_buf_free(&raft);
        rl_buf_free(&eval);
    }
    free(dir);
    return r;
}

rl_status rl_synth_run(rl_store *store, rl_teacher *teacher, const rl_synth_opts *o, rl_synth_report *rep, rl_error *err) {
    memset(rep, 0, sizeof *rep);
    double t0 = rl_now();
    sqlite3 *db = rl_store_db(store);
    rl_status r = syn_ensure_tables(db, err);
    if (r) return r;
    syn_chunks chunks;
    if ((r = syn_load_chunks(db, &chunks, err))) return r;
    rep->chunks_total = (int64_t)chunks.n;
    if (chunks.n == 0) {
        syn_chunks_free(&chunks);
        return rl_fail(err, RL_EINVAL, "the store has no chunks: run `raftlm ingest` first");
    }
    char *fp = syn_fingerprint(o);
    r = generate(store, teacher, o, fp, &chunks, rep, err);
    if (!r) r = summarize(db, fp, &chunks, rep, err);
    syn_examples x = {0};
    if (!r) r = syn_assemble(store, o, &chunks, &x, err);
    if (!r) {
        rep->duplicates = x.duplicates;
        rep->refusals = x.refusals;
        rep->counterfactuals = x.counterfactuals;
        rep->oracle_alone = x.oracle_alone;
        rep->distractors_clamped = x.distractors_clamped;
        for (size_t i = 0; i < x.n; i++) rep->examples[x.e[i].split]++;
        if (x.duplicates) count_reason(rep, "duplicate_question", x.duplicates);
        r = write_datasets(o, &x, rep, err);
    }
    syn_examples_free(&x);
    free(fp);
    syn_chunks_free(&chunks);
    rep->seconds = rl_now() - t0;
    return r;
}

void rl_synth_report_free(rl_synth_report *r) {
    for (int i = 0; i < r->n_reasons; i++) free(r->reasons[i]);
    memset(r, 0, sizeof *r);
}
