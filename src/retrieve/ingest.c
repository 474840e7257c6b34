/* ingest.c - brings the store up to date with the corpus folders.
 *
 * 1. Walk the roots (sorted, hidden entries skipped) and list the supported files.
 * 2. Files whose size and mtime match the store are unchanged and not even read.
 * 3. The rest are read, hashed, extracted and chunked in parallel, a batch at a time; then the
 *    writer (this thread) replaces the batch's files' documents and chunks in one transaction.
 *    A file whose hash is unchanged only gets its mtime updated.
 * 4. Files of these roots that are in the store but no longer on disk are deleted.
 * A SIGKILL at any point leaves every file either fully old or fully new; a rerun finishes.
 * Batches are at most 64 files or 16 MB, so a kill loses little work. */
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "retrieve/store_internal.h"

typedef struct found_file {
    char *abspath, *root, *rel;
    int64_t mtime, size;
    /* from the store, when known */
    int64_t id;
    char sha[65];
    int in_store, seen;
} found_file;

typedef struct file_list {
    found_file *f;
    size_t n, cap;
} file_list;

static void file_list_push(file_list *l, found_file f) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->f = rl_xrealloc(l->f, l->cap * sizeof *l->f);
    }
    l->f[l->n++] = f;
}

static void skip_reason(rl_ingest_report *r, const char *path, const char *why) {
    r->skipped++;
    r->skipped_reasons = rl_xrealloc(r->skipped_reasons, (size_t)(r->n_skipped_reasons + 1) * sizeof *r->skipped_reasons);
    r->skipped_reasons[r->n_skipped_reasons++] = rl_xasprintf("%s: %s", path, why);
}

static int matches_any(const char *rel, const char *const *globs, int n) {
    for (int i = 0; i < n; i++)
        if (fnmatch(globs[i], rel, 0) == 0 || fnmatch(globs[i], rl_path_basename(rel), 0) == 0) return 1;
    return 0;
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

typedef struct walk_ctx {
    const rl_ingest_opts *opts;
    rl_ingest_report *report;
    file_list *files;
    const char *root;
} walk_ctx;

static void consider_file(walk_ctx *w, const char *abspath, const char *rel, const struct stat *st) {
    if (!rl_reader_supports(abspath)) {
        w->report->ignored++;
        rl_debug("ignored (unsupported type): %s", rel);
        return;
    }
    if (w->opts->n_include && !matches_any(rel, w->opts->include, w->opts->n_include)) return;
    if (matches_any(rel, w->opts->exclude, w->opts->n_exclude)) return;
    found_file f = {0};
    f.abspath = rl_xstrdup(abspath);
    f.root = rl_xstrdup(w->root);
    f.rel = rl_xstrdup(rel);
    f.mtime = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    f.size = st->st_size;
    file_list_push(w->files, f);
}

static void walk_dir(walk_ctx *w, const char *dir, const char *rel, int depth) {
    if (depth > 64) return;
    DIR *d = opendir(dir);
    if (!d) {
        skip_reason(w->report, rel[0] ? rel : dir, strerror(errno));
        return;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue; /* hidden files, .git, ., .. */
        names = rl_xrealloc(names, (n + 1) * sizeof *names);
        names[n++] = rl_xstrdup(e->d_name);
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i < n; i++) {
        char *path = rl_path_join(dir, names[i]);
        char *sub = rel[0] ? rl_xasprintf("%s/%s", rel, names[i]) : rl_xstrdup(names[i]);
        struct stat lst, st;
        if (lstat(path, &lst) == 0) {
            if (S_ISLNK(lst.st_mode) && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
                rl_debug("not following the folder link %s", sub);
            } else if (S_ISDIR(lst.st_mode)) {
                walk_dir(w, path, sub, depth + 1);
            } else if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                consider_file(w, path, sub, &st);
            }
        }
        free(path);
        free(sub);
        free(names[i]);
    }
    free(names);
}

/* ---- the store side ------------------------------------------------------------------- */

static int cmp_abspath(const void *a, const void *b) {
    return strcmp(((const found_file *)a)->abspath, ((const found_file *)b)->abspath);
}

typedef struct stored_file {
    int64_t id;
    char *abspath;
    int matched;
} stored_file;

static rl_status load_known(rl_store *s, file_list *files, const char *root, stored_file **out, size_t *n_out, rl_error *err) {
    sqlite3_stmt *st;
    *out = NULL;
    *n_out = 0;
    if (store_prepare(s, &st, "SELECT id, abspath, sha256, mtime, size FROM files WHERE root = ?", err)) return RL_EDB;
    sqlite3_bind_text(st, 1, root, -1, SQLITE_STATIC);
    size_t n = 0;
    stored_file *known = NULL;
    while (sqlite3_step(st) == SQLITE_ROW) {
        known = rl_xrealloc(known, (n + 1) * sizeof *known);
        known[n].id = sqlite3_column_int64(st, 0);
        known[n].abspath = rl_xstrdup((const char *)sqlite3_column_text(st, 1));
        known[n].matched = 0;
        found_file key = {.abspath = known[n].abspath};
        found_file *f = files->n ? bsearch(&key, files->f, files->n, sizeof *files->f, cmp_abspath) : NULL;
        if (f) {
            f->in_store = 1;
            f->id = known[n].id;
            snprintf(f->sha, sizeof f->sha, "%s", (const char *)sqlite3_column_text(st, 2));
            int64_t mtime = sqlite3_column_int64(st, 3), size = sqlite3_column_int64(st, 4);
            f->seen = mtime == f->mtime && size == f->size; /* unchanged without reading */
            known[n].matched = 1;
        }
        n++;
    }
    sqlite3_finalize(st);
    *out = known;
    *n_out = n;
    return RL_OK;
}

/* A file read, hashed, extracted and chunked by a worker. */
typedef struct job {
    found_file *file;
    char sha[65];
    int same_hash;
    rl_status status;
    char why[1024];
    rl_doc_list docs;
    rl_chunk **chunks;
    size_t *n_chunks;
    int64_t bytes;
} job;

typedef struct batch_ctx {
    job *jobs;
    const rl_ingest_opts *opts;
    int rechunk; /* the chunking changed: an unchanged hash is no reason to skip */
} batch_ctx;

static void run_job(void *ctx, size_t i, int thread) {
    batch_ctx *b = ctx;
    job *j = &b->jobs[i];
    rl_error err = {0};
    char *data;
    size_t len;
    j->status = rl_file_read(j->file->abspath, b->opts->max_file_bytes, &data, &len, &err);
    if (j->status) {
        snprintf(j->why, sizeof j->why, "%s", err.msg);
        if (j->status == RL_EINVAL) snprintf(j->why, sizeof j->why, "larger than corpus.max_file_mb (%zu MB)", b->opts->max_file_bytes >> 20);
        return;
    }
    j->bytes = (int64_t)len;
    rl_sha256_hex(data, len, j->sha);
    j->file->size = (int64_t)len;
    if (j->file->in_store && strcmp(j->sha, j->file->sha) == 0 && !b->rechunk) {
        j->same_hash = 1;
        free(data);
        return;
    }
    j->status = rl_read_document(j->file->abspath, data, len, &j->docs, &err);
    free(data);
    if (j->status) {
        snprintf(j->why, sizeof j->why, "%s", err.msg);
        return;
    }
    j->chunks = rl_xcalloc(j->docs.n, sizeof *j->chunks);
    j->n_chunks = rl_xcalloc(j->docs.n, sizeof *j->n_chunks);
    for (size_t d = 0; d < j->docs.n && !j->status; d++) {
        j->status = rl_chunk_document(&j->docs.docs[d], &b->opts->chunk, &j->chunks[d], &j->n_chunks[d], &err);
        if (j->status) snprintf(j->why, sizeof j->why, "%s", err.msg);
    }
}

static void job_free(job *j) {
    for (size_t d = 0; j->chunks && d < j->docs.n; d++) rl_chunks_free(j->chunks[d], j->n_chunks[d]);
    free(j->chunks);
    free(j->n_chunks);
    rl_doc_list_free(&j->docs);
}

typedef struct writer {
    sqlite3_stmt *del_file, *ins_file, *ins_doc, *ins_chunk, *touch;
} writer;

static rl_status writer_init(rl_store *s, writer *w, rl_error *err) {
    memset(w, 0, sizeof *w);
    if (store_prepare(s, &w->del_file, "DELETE FROM files WHERE abspath = ?", err) ||
        store_prepare(s, &w->ins_file, "INSERT INTO files(abspath, root, path, sha256, mtime, size, ingested_at) VALUES (?,?,?,?,?,?,?)", err) ||
        store_prepare(s, &w->ins_doc, "INSERT INTO documents(file_id, key, path, title, text) VALUES (?,?,?,?,?)", err) ||
        store_prepare(s, &w->ins_chunk, "INSERT INTO chunks(doc_id, ordinal, start, end, n_tokens, heading, text) VALUES (?,?,?,?,?,?,?)", err) ||
        store_prepare(s, &w->touch, "UPDATE files SET mtime = ?, size = ?, root = ?, path = ? WHERE id = ?", err))
        return RL_EDB;
    return RL_OK;
}

static void writer_free(writer *w) {
    sqlite3_finalize(w->del_file);
    sqlite3_finalize(w->ins_file);
    sqlite3_finalize(w->ins_doc);
    sqlite3_finalize(w->ins_chunk);
    sqlite3_finalize(w->touch);
}

static rl_status step_done(rl_store *s, sqlite3_stmt *st, rl_error *err, const char *what) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? RL_OK : store_fail(s, err, what);
}

/* Replaces one file's rows (inside the batch's transaction). */
static rl_status write_job(rl_store *s, writer *w, job *j, int64_t *chunks_written, rl_error *err) {
    found_file *f = j->file;
    rl_status r = RL_OK;
    if (j->same_hash) {
        sqlite3_bind_int64(w->touch, 1, f->mtime);
        sqlite3_bind_int64(w->touch, 2, f->size);
        sqlite3_bind_text(w->touch, 3, f->root, -1, SQLITE_STATIC);
        sqlite3_bind_text(w->touch, 4, f->rel, -1, SQLITE_STATIC);
        sqlite3_bind_int64(w->touch, 5, f->id);
        r = step_done(s, w->touch, err, "update file");
    } else {
        sqlite3_bind_text(w->del_file, 1, f->abspath, -1, SQLITE_STATIC);
        r = step_done(s, w->del_file, err, "delete old version");
        if (!r) {
            sqlite3_bind_text(w->ins_file, 1, f->abspath, -1, SQLITE_STATIC);
            sqlite3_bind_text(w->ins_file, 2, f->root, -1, SQLITE_STATIC);
            sqlite3_bind_text(w->ins_file, 3, f->rel, -1, SQLITE_STATIC);
            sqlite3_bind_text(w->ins_file, 4, j->sha, -1, SQLITE_STATIC);
            sqlite3_bind_int64(w->ins_file, 5, f->mtime);
            sqlite3_bind_int64(w->ins_file, 6, f->size);
            sqlite3_bind_int64(w->ins_file, 7, (int64_t)time(NULL));
            r = step_done(s, w->ins_file, err, "insert file");
        }
        int64_t file_id = sqlite3_last_insert_rowid(s->db);
        for (size_t d = 0; d < j->docs.n && !r; d++) {
            rl_doc *doc = &j->docs.docs[d];
            char *path = doc->key[0] ? rl_xasprintf("%s#%s", f->rel, doc->key) : rl_xstrdup(f->rel);
            sqlite3_bind_int64(w->ins_doc, 1, file_id);
            sqlite3_bind_text(w->ins_doc, 2, doc->key, -1, SQLITE_STATIC);
            sqlite3_bind_text(w->ins_doc, 3, path, -1, SQLITE_STATIC);
            if (doc->title) sqlite3_bind_text(w->ins_doc, 4, doc->title, -1, SQLITE_STATIC);
            sqlite3_bind_text(w->ins_doc, 5, doc->text, (int)doc->len, SQLITE_STATIC);
            r = step_done(s, w->ins_doc, err, "insert document");
            free(path);
            int64_t doc_id = sqlite3_last_insert_rowid(s->db);
            for (size_t c = 0; c < j->n_chunks[d] && !r; c++) {
                rl_chunk *ch = &j->chunks[d][c];
                sqlite3_bind_int64(w->ins_chunk, 1, doc_id);
                sqlite3_bind_int64(w->ins_chunk, 2, (int64_t)c);
                sqlite3_bind_int64(w->ins_chunk, 3, (int64_t)ch->start);
                sqlite3_bind_int64(w->ins_chunk, 4, (int64_t)ch->end);
                sqlite3_bind_int64(w->ins_chunk, 5, ch->n_tokens);
                sqlite3_bind_text(w->ins_chunk, 6, ch->heading, -1, SQLITE_STATIC);
                sqlite3_bind_text(w->ins_chunk, 7, doc->text + ch->start, (int)(ch->end - ch->start), SQLITE_STATIC);
                r = step_done(s, w->ins_chunk, err, "insert chunk");
                (*chunks_written)++;
            }
        }
    }
    return r;
}

static rl_status delete_file(rl_store *s, int64_t id, rl_error *err) {
    sqlite3_stmt *st;
    if (store_prepare(s, &st, "DELETE FROM files WHERE id = ?", err)) return RL_EDB;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? RL_OK : store_fail(s, err, "delete file");
}

rl_status rl_ingest(rl_store *s, const rl_ingest_opts *opts, rl_ingest_report *report, rl_error *err) {
    memset(report, 0, sizeof *report);
    double t0 = rl_now();
    rl_status r = RL_OK;
    file_list files = {0};
    /* resolve the roots first: a missing corpus folder is an error, not "delete everything" */
    char **roots = rl_xcalloc((size_t)opts->n_paths + 1, sizeof *roots);
    for (int i = 0; i < opts->n_paths && !r; i++) {
        char real[PATH_MAX];
        if (!realpath(opts->paths[i], real)) r = rl_fail(err, RL_ENOTFOUND, "corpus path %s: %s", opts->paths[i], strerror(errno));
        else roots[i] = rl_xstrdup(real);
    }
    for (int i = 0; i < opts->n_paths && !r; i++) {
        walk_ctx w = {opts, report, &files, roots[i]};
        struct stat st;
        if (stat(roots[i], &st) == 0 && S_ISDIR(st.st_mode)) walk_dir(&w, roots[i], "", 0);
        else if (stat(roots[i], &st) == 0 && S_ISREG(st.st_mode)) {
            if (!rl_reader_supports(roots[i]))
                rl_warn("%s: unsupported file type (supported: .txt .md .rst .html .htm .pdf .jsonl)", opts->paths[i]);
            consider_file(&w, roots[i], rl_path_basename(roots[i]), &st);
        }
    }
    if (r) goto done;
    /* the same file under two roots (a folder and a file inside it): keep the first */
    if (files.n) qsort(files.f, files.n, sizeof *files.f, cmp_abspath);
    size_t kept = 0;
    for (size_t i = 0; i < files.n; i++) {
        if (kept && strcmp(files.f[kept - 1].abspath, files.f[i].abspath) == 0) {
            free(files.f[i].abspath), free(files.f[i].root), free(files.f[i].rel);
            continue;
        }
        files.f[kept++] = files.f[i];
    }
    files.n = kept;
    report->seen = (int64_t)files.n;

    stored_file **known = rl_xcalloc((size_t)opts->n_paths, sizeof *known);
    size_t *n_known = rl_xcalloc((size_t)opts->n_paths, sizeof *n_known);
    for (int i = 0; i < opts->n_paths && !r; i++) r = load_known(s, &files, roots[i], &known[i], &n_known[i], err);
    /* files known under another root are found by abspath too */
    sqlite3_stmt *by_path = NULL;
    if (!r) r = store_prepare(s, &by_path, "SELECT id, sha256, mtime, size FROM files WHERE abspath = ?", err);
    for (size_t i = 0; i < files.n && !r; i++) {
        found_file *f = &files.f[i];
        if (f->in_store) continue;
        sqlite3_bind_text(by_path, 1, f->abspath, -1, SQLITE_STATIC);
        if (sqlite3_step(by_path) == SQLITE_ROW) {
            f->in_store = 1;
            f->id = sqlite3_column_int64(by_path, 0);
            snprintf(f->sha, sizeof f->sha, "%s", (const char *)sqlite3_column_text(by_path, 1));
        }
        sqlite3_reset(by_path);
    }
    sqlite3_finalize(by_path);

    /* a different chunking than the store was built with: every file is chunked again */
    char stored_fp[512] = "";
    int rechunk = 0;
    if (!r && opts->chunking_fingerprint) {
        r = store_get_meta(s, "chunking", stored_fp, sizeof stored_fp, err);
        rechunk = !r && strcmp(stored_fp, opts->chunking_fingerprint) != 0;
        if (rechunk && stored_fp[0]) rl_info("chunking changed (%s -> %s): chunking every file again", stored_fp, opts->chunking_fingerprint);
        if (rechunk)
            for (size_t i = 0; i < files.n; i++) files.f[i].seen = 0;
    }
    size_t todo = 0;
    for (size_t i = 0; i < files.n; i++) todo += !files.f[i].seen;
    report->unchanged = (int64_t)(files.n - todo);
    /* many new or changed files: index their chunks for keyword search once at the end */
    int defer_fts = !r && todo >= 64 && todo * 2 >= files.n;
    if (defer_fts) r = store_fts_defer(s, err);

    writer w = {0};
    if (!r) r = writer_init(s, &w, err);
    rl_pool *pool = r ? NULL : rl_pool_create(opts->threads);
    rl_progress bar;
    rl_progress_start(&bar, "ingest", "files", (double)todo);
    size_t batch_cap = 64;
    job *jobs = rl_xcalloc(batch_cap, sizeof *jobs);
    size_t next = 0;
    while (!r && next < files.n) {
        size_t n = 0, bytes = 0;
        while (next < files.n && n < batch_cap && bytes < (16u << 20)) {
            found_file *f = &files.f[next++];
            if (f->seen) continue;
            memset(&jobs[n], 0, sizeof jobs[n]);
            jobs[n].file = f;
            bytes += (size_t)f->size;
            n++;
        }
        batch_ctx bc = {jobs, opts, rechunk};
        rl_pool_for(pool, n, run_job, &bc);
        /* One transaction per batch: whole files only, so a kill loses at most this batch
         * and never leaves half a file; far fewer commits (and FTS segments) than one per file. */
        int64_t chunks_before = report->chunks_written;
        r = store_exec(s, "BEGIN IMMEDIATE", err);
        for (size_t k = 0; k < n && !r; k++)
            if (!jobs[k].status) r = write_job(s, &w, &jobs[k], &report->chunks_written, err);
        if (!r) r = store_exec(s, "COMMIT", err);
        else {
            store_exec(s, "ROLLBACK", NULL);
            report->chunks_written = chunks_before;
        }
        for (size_t k = 0; k < n; k++) {
            job *j = &jobs[k];
            found_file *f = j->file;
            report->bytes_read += j->bytes;
            if (j->status) {
                skip_reason(report, f->rel, j->why);
                rl_warn("skipped %s: %s", f->rel, j->why);
            } else if (!r) {
                f->seen = 1;
                if (j->same_hash) report->unchanged++;
                else if (f->in_store) report->updated++;
                else report->added++;
                if (j->docs.warning) rl_info("%s: %s", f->rel, j->docs.warning);
            }
            job_free(j);
            rl_progress_add(&bar, 1);
        }
    }
    rl_progress_finish(&bar);
    free(jobs);
    rl_pool_free(pool);
    writer_free(&w);

    /* files of these roots that are gone (or now unreadable) leave the store */
    for (int i = 0; i < opts->n_paths; i++) {
        for (size_t k = 0; k < n_known[i]; k++) {
            stored_file *sf = &known[i][k];
            int still = 0;
            if (sf->matched) {
                found_file key = {.abspath = sf->abspath};
                found_file *f = files.n ? bsearch(&key, files.f, files.n, sizeof *files.f, cmp_abspath) : NULL;
                still = f && f->seen;
            }
            if (!still && !r) {
                r = delete_file(s, sf->id, err);
                if (!r) report->removed++;
            }
            free(sf->abspath);
        }
        free(known[i]);
    }
    free(known);
    free(n_known);
    /* only now: a run killed before this point chunks everything again next time */
    if (!r && rechunk) r = store_set_meta(s, "chunking", opts->chunking_fingerprint, err);
    if (!r && defer_fts) {
        double t = rl_now();
        r = store_fts_rebuild(s, err);
        rl_debug("keyword index built in %.2f s", rl_now() - t);
    }
done:
    for (size_t i = 0; i < files.n; i++) free(files.f[i].abspath), free(files.f[i].root), free(files.f[i].rel);
    free(files.f);
    for (int i = 0; i < opts->n_paths; i++) free(roots[i]);
    free(roots);
    report->seconds = rl_now() - t0;
    return r;
}

void rl_ingest_report_free(rl_ingest_report *r) {
    for (int i = 0; i < r->n_skipped_reasons; i++) free(r->skipped_reasons[i]);
    free(r->skipped_reasons);
    memset(r, 0, sizeof *r);
}
