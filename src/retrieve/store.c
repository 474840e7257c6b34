/* store.c - the project's SQLite database: files, documents, chunks and an FTS5 index over
 * chunk text and headings, in WAL mode.
 *
 * The schema is created and migrated by version (PRAGMA user_version), each migration in one
 * transaction. The FTS table is an external-content index over `chunks`, kept in sync by
 * triggers, so every chunk write and its index entry commit or roll back together. */
#include "retrieve/store_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

rl_status store_fail(rl_store *s, rl_error *err, const char *what) {
    return rl_fail(err, RL_EDB, "%s: %s (%s)", what, sqlite3_errmsg(s->db), s->path);
}

rl_status store_exec(rl_store *s, const char *sql, rl_error *err) {
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        rl_status st = rl_fail(err, RL_EDB, "database: %s (%s)", msg ? msg : "error", s->path);
        sqlite3_free(msg);
        return st;
    }
    return RL_OK;
}

rl_status store_prepare(rl_store *s, sqlite3_stmt **st, const char *sql, rl_error *err) {
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK) return store_fail(s, err, "prepare");
    return RL_OK;
}

/* The triggers that keep the keyword index in step with chunks, one row at a time. A large
 * ingest drops them and rebuilds the index once at the end instead (store_fts_defer). */
#define FTS_TRIGGERS                                                                                                     \
    "CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN"                                               \
    "  INSERT INTO chunks_fts(rowid, text, heading) VALUES (new.id, new.text, new.heading); END;"                      \
    "CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN"                                               \
    "  INSERT INTO chunks_fts(chunks_fts, rowid, text, heading) VALUES ('delete', old.id, old.text, old.heading); END;" \
    "CREATE TRIGGER IF NOT EXISTS chunks_au AFTER UPDATE ON chunks BEGIN"                                               \
    "  INSERT INTO chunks_fts(chunks_fts, rowid, text, heading) VALUES ('delete', old.id, old.text, old.heading);"    \
    "  INSERT INTO chunks_fts(rowid, text, heading) VALUES (new.id, new.text, new.heading); END;"

/* Migration n brings the schema from version n to n+1. Never edit a released one: add. */
static const char *const migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE files("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  abspath TEXT NOT NULL UNIQUE,"  /* identity of the file */
    "  root TEXT NOT NULL,"            /* the corpus path it was found under */
    "  path TEXT NOT NULL,"            /* relative to root: what users see */
    "  sha256 TEXT NOT NULL, mtime INTEGER NOT NULL, size INTEGER NOT NULL,"
    "  ingested_at INTEGER NOT NULL);"
    "CREATE TABLE documents("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,"
    "  key TEXT NOT NULL,"             /* '' for a whole file, the record id in a .jsonl */
    "  path TEXT NOT NULL,"            /* file path, + '#key' for records */
    "  title TEXT, text TEXT NOT NULL,"
    "  UNIQUE(file_id, key));"
    "CREATE TABLE chunks("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,"
    "  ordinal INTEGER NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL,"
    "  n_tokens INTEGER NOT NULL, heading TEXT NOT NULL, text TEXT NOT NULL,"
    "  UNIQUE(doc_id, ordinal));"
    "CREATE INDEX documents_file ON documents(file_id);"
    "CREATE INDEX files_root ON files(root);"
    FTS_TRIGGERS,
};
#define N_MIGRATIONS (int)(sizeof migrations / sizeof migrations[0])

static rl_status create_fts(rl_store *s, int stemming, rl_error *err) {
    char sql[512];
    snprintf(sql, sizeof sql,
             "CREATE VIRTUAL TABLE chunks_fts USING fts5(text, heading, content='chunks', content_rowid='id',"
             " tokenize='%sunicode61 remove_diacritics 2');",
             stemming ? "porter " : "");
    return store_exec(s, sql, err);
}

rl_status store_get_meta(rl_store *s, const char *key, char *out, size_t cap, rl_error *err) {
    sqlite3_stmt *st;
    out[0] = 0;
    if (store_prepare(s, &st, "SELECT value FROM meta WHERE key = ?", err)) return RL_EDB;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return RL_OK;
}

rl_status store_set_meta(rl_store *s, const char *key, const char *value, rl_error *err) {
    sqlite3_stmt *st;
    if (store_prepare(s, &st, "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", err))
        return RL_EDB;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? RL_OK : store_fail(s, err, "write meta");
}

rl_status store_fts_defer(rl_store *s, rl_error *err) {
    rl_status r = store_exec(s, "BEGIN IMMEDIATE", err);
    if (!r) r = store_exec(s, "DROP TRIGGER IF EXISTS chunks_ai; DROP TRIGGER IF EXISTS chunks_ad; DROP TRIGGER IF EXISTS chunks_au;", err);
    if (!r) r = store_set_meta(s, "fts_stale", "1", err);
    if (r) {
        store_exec(s, "ROLLBACK", NULL);
        return r;
    }
    return store_exec(s, "COMMIT", err);
}

rl_status store_fts_rebuild(rl_store *s, rl_error *err) {
    rl_status r = store_exec(s, "BEGIN IMMEDIATE", err);
    if (!r) r = store_exec(s, "INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild');" FTS_TRIGGERS, err);
    if (!r) r = store_exec(s, "DELETE FROM meta WHERE key = 'fts_stale'", err);
    if (r) {
        store_exec(s, "ROLLBACK", NULL);
        return r;
    }
    return store_exec(s, "COMMIT", err);
}

int store_fts_stale(rl_store *s) {
    char v[8];
    return store_get_meta(s, "fts_stale", v, sizeof v, NULL) == RL_OK && v[0] == '1';
}

static rl_status migrate(rl_store *s, const rl_store_opts *opts, rl_error *err) {
    sqlite3_stmt *st;
    if (store_prepare(s, &st, "PRAGMA user_version", err)) return RL_EDB;
    int version = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    if (version > N_MIGRATIONS)
        return rl_fail(err, RL_EUNSUPPORTED, "%s was written by a newer raftlm (schema %d, this one knows %d): upgrade raftlm", s->path,
                       version, N_MIGRATIONS);
    for (int v = version; v < N_MIGRATIONS; v++) {
        if (store_exec(s, "BEGIN IMMEDIATE", err)) return RL_EDB;
        rl_status r = store_exec(s, migrations[v], err);
        if (!r && v == 0) r = create_fts(s, opts->stemming != 0, err);
        if (!r && v == 0) r = store_set_meta(s, "fts_stemming", opts->stemming != 0 ? "porter" : "none", err);
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v + 1);
        if (!r) r = store_exec(s, sql, err);
        if (r) {
            store_exec(s, "ROLLBACK", NULL);
            return r;
        }
        if (store_exec(s, "COMMIT", err)) return RL_EDB;
    }
    /* the stemming choice is part of the index: rebuild it when it changed */
    if (opts->stemming < 0) return RL_OK;
    char cur[32];
    if (store_get_meta(s, "fts_stemming", cur, sizeof cur, err)) return RL_EDB;
    const char *want = opts->stemming ? "porter" : "none";
    if (strcmp(cur, want) != 0) {
        rl_info("rebuilding the keyword index (stemming %s -> %s)", cur, want);
        if (store_exec(s, "BEGIN IMMEDIATE", err)) return RL_EDB;
        rl_status r = store_exec(s, "DROP TABLE chunks_fts", err);
        if (!r) r = create_fts(s, opts->stemming, err);
        if (!r) r = store_exec(s, "INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild')", err);
        if (!r) r = store_set_meta(s, "fts_stemming", want, err);
        if (r) {
            store_exec(s, "ROLLBACK", NULL);
            return r;
        }
        if (store_exec(s, "COMMIT", err)) return RL_EDB;
    }
    return RL_OK;
}

/* Before any connection exists: SQLite's memory statistics take a global mutex on every
 * allocation, which costs about a tenth of ingest time and gives us nothing. */
static void sqlite_setup(void) { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); }

rl_status rl_store_open(rl_store **out, const char *db_path, const rl_store_opts *opts, rl_error *err) {
    static const rl_store_opts defaults = {.stemming = -1};
    if (!opts) opts = &defaults;
    *out = NULL;
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, sqlite_setup);
    char *dir = rl_path_dirname(db_path);
    rl_status r = rl_mkdir_p(dir, err);
    free(dir);
    if (r) return r;
    rl_store *s = rl_xcalloc(1, sizeof *s);
    s->path = rl_xstrdup(db_path);
    if (sqlite3_open_v2(db_path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        r = rl_fail(err, RL_EDB, "cannot open the store %s: %s", db_path, s->db ? sqlite3_errmsg(s->db) : "out of memory");
        rl_store_close(s);
        return r;
    }
    sqlite3_busy_timeout(s->db, 10000);
    sqlite3_extended_result_codes(s->db, 1);
    /* WAL: readers (search, the server) never block the writer (ingest); synchronous=NORMAL
     * is durable against process crashes and keeps the database consistent on power loss. */
    r = store_exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
                      " PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;", err);
    if (!r) r = migrate(s, opts, err);
    if (!r && store_fts_stale(s)) {
        rl_info("%s: an ingest was interrupted before its keyword index was built: building it now", db_path);
        r = store_fts_rebuild(s, err);
    }
    if (r) {
        if (err && strstr(err->msg, "not a database")) rl_fail(err, RL_EDB, "%s is not a raftlm store (not an SQLite database)", db_path);
        rl_store_close(s);
        return r;
    }
    *out = s;
    return RL_OK;
}

void rl_store_close(rl_store *s) {
    if (!s) return;
    if (s->db) sqlite3_close_v2(s->db);
    free(s->path);
    free(s);
}

void *rl_store_db(rl_store *s) { return s->db; }

rl_status rl_store_stats_get(rl_store *s, rl_store_stats *out, rl_error *err) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    if (store_prepare(s, &st,
                      "SELECT (SELECT count(*) FROM files), (SELECT count(*) FROM documents), (SELECT count(*) FROM chunks),"
                      " (SELECT coalesce(sum(length(CAST(text AS BLOB))), 0) FROM documents)",
                      err))
        return RL_EDB;
    if (sqlite3_step(st) == SQLITE_ROW) {
        out->files = sqlite3_column_int64(st, 0);
        out->documents = sqlite3_column_int64(st, 1);
        out->chunks = sqlite3_column_int64(st, 2);
        out->text_bytes = sqlite3_column_int64(st, 3);
    }
    sqlite3_finalize(st);
    return RL_OK;
}
