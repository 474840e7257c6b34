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

#endif
