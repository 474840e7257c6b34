/* store_internal.h - what ingest.c and search.c need from store.c (not public). */
#ifndef RL_STORE_INTERNAL_H
#define RL_STORE_INTERNAL_H

#include <sqlite3.h>

#include "retrieve/retrieve.h"

struct rl_store {
    sqlite3 *db;
    char *path;
};

/* Formats "what: sqlite's message" into err and returns RL_EDB. */
rl_status store_fail(rl_store *s, rl_error *err, const char *what);
rl_status store_exec(rl_store *s, const char *sql, rl_error *err);
rl_status store_prepare(rl_store *s, sqlite3_stmt **st, const char *sql, rl_error *err);
/* The meta table: settings of the store ("" when a key is absent). */
rl_status store_get_meta(rl_store *s, const char *key, char *out, size_t cap, rl_error *err);
rl_status store_set_meta(rl_store *s, const char *key, const char *value, rl_error *err);
/* BM25 search restricted to documents whose path starts with path_prefix (NULL: all). */
rl_status store_search_bm25(rl_store *s, const char *query, int k, const char *path_prefix, rl_hit **hits, size_t *n_hits,
                            rl_error *err);

/* The keyword index, deferred: store_fts_defer drops the triggers that index each chunk as it is
 * written and marks the index stale (meta fts_stale = 1), in one transaction; store_fts_rebuild
 * indexes every chunk at once, puts the triggers back and clears the mark. Building the index
 * once costs about a third of indexing row by row. A process killed in between leaves the mark,
 * so the next ingest (or any open, see rl_store_open) finishes the job. */
rl_status store_fts_defer(rl_store *s, rl_error *err);
rl_status store_fts_rebuild(rl_store *s, rl_error *err);
int store_fts_stale(rl_store *s);

#endif
