/* test_ingest.c - incremental ingest (add, touch, change, delete), bad files in the corpus,
 * the FTS index staying in sync, SIGKILL at random points, and the CLI around it. */
#include "test.h"

#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <fcntl.h>

#include "retrieve/retrieve.h"
#include "tokenizer/tokenizer.h"

static rl_ingest_report ingest_dir(rl_store *s, const char *dir) {
    const char *paths[] = {dir};
    rl_ingest_opts o = {.paths = paths, .n_paths = 1, .max_file_bytes = 64 << 20, .chunk = {.size = 64, .overlap = 8}, .threads = 2};
    rl_ingest_report r;
    rl_error err = {0};
    rl_status st = rl_ingest(s, &o, &r, &err);
    CHECK_MSG(st == RL_OK, "ingest failed: %s", err.msg);
    return r;
}

static int64_t query_int(rl_store *s, const char *sql) {
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_prepare_v2(rl_store_db(s), sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* The store is internally consistent: FTS in sync, no orphans, no duplicate chunks. */
static void check_consistent(rl_store *s) {
    char *msg = NULL;
    int rc = sqlite3_exec(rl_store_db(s), "INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 1)", NULL, NULL, &msg);
    CHECK_MSG(rc == SQLITE_OK, "FTS integrity check: %s", msg ? msg : "");
    sqlite3_free(msg);
    CHECK_EQ_INT(query_int(s, "PRAGMA foreign_key_check"), -1); /* no rows */
    CHECK_EQ_INT(query_int(s, "SELECT count(*) FROM documents WHERE file_id NOT IN (SELECT id FROM files)"), 0);
    CHECK_EQ_INT(query_int(s, "SELECT count(*) FROM chunks WHERE doc_id NOT IN (SELECT id FROM documents)"), 0);
    CHECK_EQ_INT(query_int(s, "SELECT count(*) FROM (SELECT doc_id, start, end FROM chunks GROUP BY 1,2,3 HAVING count(*) > 1)"), 0);
    CHECK_EQ_INT(query_int(s, "SELECT count(*) FROM (SELECT abspath FROM files GROUP BY 1 HAVING count(*) > 1)"), 0);
    CHECK_EQ_INT(query_int(s, "PRAGMA integrity_check") == -1, 0);
}

static int hits_for(rl_store *s, const char *q, const char *doc) {
    rl_hit *h;
    size_t n;
    rl_error err;
    if (rl_search_bm25(s, q, 10, &h, &n, &err) != RL_OK) return -1;
    int found = 0;
    for (size_t i = 0; i < n; i++) found += !doc || strcmp(h[i].doc, doc) == 0;
    rl_hits_free(h, n);
    return found;
}

static void set_mtime(const char *dir, const char *rel, time_t t) {
    char *p = rl_path_join(dir, rel);
    struct timespec ts[2] = {{t, 0}, {t, 0}};
    RL_ASSERT(utimensat(AT_FDCWD, p, ts, 0) == 0);
    free(p);
}

TEST(ingest_incremental_touch_change_delete) {
    char *dir = t_tmpdir(), *docs = rl_path_join(dir, "docs"), *db = rl_path_join(dir, "out/store.db");
    t_write_str(docs, "travel.md", "# Travel\n\nThe daily meal allowance is EUR 45.00 for domestic trips.\n");
    t_write_str(docs, "leave.txt", "Employees receive 30 days of paid leave per calendar year.\n");
    t_write_str(docs, "sub/sla.html", "<h1>SLA</h1><p>Gold support answers within 4 business hours.</p>");
    t_write_str(docs, "notes.xyz", "unsupported type");
    t_write_str(docs, ".hidden.md", "hidden file with zebra");
    rl_store *s;
    rl_error err;
    CHECK_OK(rl_store_open(&s, db, NULL, &err));
    rl_ingest_report r = ingest_dir(s, docs);
    CHECK_EQ_INT(r.added, 3);
    CHECK_EQ_INT(r.ignored, 1);
    CHECK_EQ_INT(hits_for(s, "meal allowance", "travel.md"), 1);
    CHECK_EQ_INT(hits_for(s, "business hours", "sub/sla.html"), 1);
    CHECK_EQ_INT(hits_for(s, "zebra", NULL), 0);
    int64_t chunks0 = query_int(s, "SELECT max(id) FROM chunks");
    rl_ingest_report_free(&r);

    /* nothing changed: nothing read */
    r = ingest_dir(s, docs);
    CHECK_EQ_INT(r.unchanged, 3);
    CHECK_EQ_INT(r.bytes_read, 0);
    rl_ingest_report_free(&r);

    /* touch: read and hashed, but the chunks stay */
    set_mtime(docs, "leave.txt", time(NULL) + 100);
    r = ingest_dir(s, docs);
    CHECK_EQ_INT(r.unchanged, 3);
    CHECK_EQ_INT(r.updated, 0);
    CHECK(r.bytes_read > 0);
    CHECK_EQ_INT(query_int(s, "SELECT max(id) FROM chunks"), chunks0);
    rl_ingest_report_free(&r);

    /* change: old text gone, new text found */
    t_write_str(docs, "travel.md", "# Travel\n\nThe daily meal allowance is EUR 52.00 since 2026.\n");
    set_mtime(docs, "travel.md", time(NULL) + 200);
    r = ingest_dir(s, docs);
    CHECK_EQ_INT(r.updated, 1);
    CHECK_EQ_INT(r.unchanged, 2);
    CHECK_EQ_INT(hits_for(s, "domestic trips", NULL), 0);
    CHECK_EQ_INT(hits_for(s, "52.00", "travel.md"), 1);
    rl_ingest_report_free(&r);

    /* delete */
    char *p = rl_path_join(docs, "sub/sla.html");
    unlink(p);
    free(p);
    r = ingest_dir(s, docs);
    CHECK_EQ_INT(r.removed, 1);
    CHECK_EQ_INT(hits_for(s, "business hours", NULL), 0);
    CHECK_EQ_INT(query_int(s, "SELECT count(*) FROM files"), 2);
    rl_ingest_report_free(&r);
    check_consistent(s);
    rl_store_close(s);
}

TEST(ingest_bad_files_are_reported_and_skipped) {
    char *dir = t_tmpdir(), *docs = rl_path_join(dir, "docs"), *db = rl_path_join(dir, "store.db");
    t_write_str(docs, "good.md", "# Good\n\nA good document about pineapples.\n");
    t_write(docs, "binary.txt", "\x7f" "ELF\0\0\0\x01\x02", 9);
    t_write_str(docs, "empty.md", "");
    t_write(docs, "latin1.txt", "Gr\xfc\xdf" "e aus K\xf6ln, caf\xe9 cr\xe8me.\n", 28);
    t_write_str(docs, "broken.pdf", "%PDF-1.7 this is not really a pdf");
    t_write_str(docs, "bad.jsonl", "{not json\n");
    /* a 3 MB single line with spaces, and a 1 MB line without any */
    rl_buf big = {0};
    for (int i = 0; i < 300000; i++) rl_buf_printf(&big, "word%05d ", i % 99991);
    t_write(docs, "hugeline.txt", big.data, big.len);
    rl_buf_clear(&big);
    for (int i = 0; i < 1000000; i++) rl_buf_putc(&big, (char)('a' + i % 26));
    t_write(docs, "nospace.txt", big.data, big.len);
    rl_buf_free(&big);
    rl_store *s;
    rl_error err;
    CHECK_OK(rl_store_open(&s, db, NULL, &err));
    rl_ingest_report r = ingest_dir(s, docs);
    CHECK_EQ_INT(r.added, 4); /* good, latin1, hugeline, nospace */
    CHECK_EQ_INT(r.skipped, 4);
    rl_buf all = {0};
    for (int i = 0; i < r.n_skipped_reasons; i++) rl_buf_printf(&all, "%s\n", r.skipped_reasons[i]);
    CHECK_CONTAINS(all.data, "binary.txt: binary file");
    CHECK_CONTAINS(all.data, "empty.md: empty file");
    CHECK_CONTAINS(all.data, "broken.pdf: cannot open PDF");
    CHECK_CONTAINS(all.data, "bad.jsonl: no usable line");
    rl_buf_free(&all);
    CHECK_EQ_INT(hits_for(s, "Köln", "latin1.txt"), 1);
    CHECK(hits_for(s, "word12345", "hugeline.txt") >= 1);
    CHECK_EQ_INT(query_int(s, "SELECT max(n_tokens) FROM chunks") <= 64, 1);
    CHECK(query_int(s, "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE d.path = 'nospace.txt'") > 100);
    rl_ingest_report_free(&r);
    check_consistent(s);
    rl_store_close(s);
}

TEST(ingest_store_rejects_foreign_and_future_files) {
    char *dir = t_tmpdir(), *db = rl_path_join(dir, "store.db");
    t_write_str(dir, "store.db", "this is not an sqlite database at all, just text that is long enough to be a header......");
    rl_store *s = NULL;
    rl_error err;
    CHECK_EQ_INT(rl_store_open(&s, db, NULL, &err), RL_EDB);
    CHECK_CONTAINS(err.msg, "not a raftlm store");
    char *db2 = rl_path_join(dir, "new/store.db");
    CHECK_OK(rl_store_open(&s, db2, NULL, &err));
    sqlite3_exec(rl_store_db(s), "PRAGMA user_version = 99", NULL, NULL, NULL);
    rl_store_close(s);
    CHECK_EQ_INT(rl_store_open(&s, db2, NULL, &err), RL_EUNSUPPORTED);
    CHECK_CONTAINS(err.msg, "newer raftlm");
}

TEST(ingest_stemming_switch_rebuilds_index) {
    char *dir = t_tmpdir(), *docs = rl_path_join(dir, "docs"), *db = rl_path_join(dir, "store.db");
    t_write_str(docs, "a.txt", "The robots were running diagnostics.\n");
    rl_store *s;
    rl_error err;
    rl_store_opts porter = {.stemming = 1}, plain = {.stemming = 0};
    CHECK_OK(rl_store_open(&s, db, &porter, &err));
    rl_ingest_report r = ingest_dir(s, docs);
    rl_ingest_report_free(&r);
    CHECK_EQ_INT(hits_for(s, "run", NULL), 1);
    rl_store_close(s);
    CHECK_OK(rl_store_open(&s, db, &plain, &err));
    CHECK_EQ_INT(hits_for(s, "run", NULL), 0);
    CHECK_EQ_INT(hits_for(s, "running", NULL), 1);
    check_consistent(s);
    rl_store_close(s);
}

/* Writes n files of about `kb` KB each. */
static void make_corpus(const char *docs, int n, int kb) {
    for (int f = 0; f < n; f++) {
        rl_buf b = {0};
        rl_buf_printf(&b, "# Document %d\n\n", f);
        int sec = 0;
        while (b.len < (size_t)kb * 1024) {
            if (b.len > (size_t)sec * 3000) rl_buf_printf(&b, "\n## Section %d.%d\n\n", f, sec++);
            rl_buf_printf(&b, "Fact %d-%zu: the value of item %zu in file %d is %zu.%02zu EUR. ", f, b.len, b.len % 977, f, b.len * 7 % 10007, b.len % 100);
            if (b.len % 5 == 0) rl_buf_puts(&b, "\n\n");
        }
        char rel[64];
        snprintf(rel, sizeof rel, "d%02d/file%04d.md", f % 10, f);
        t_write(docs, rel, b.data, b.len);
        rl_buf_free(&b);
    }
}

static char *store_dump(const char *db) {
    char *out;
    t_run(t_fmt("sqlite3 '%s' \"SELECT d.path || '|' || c.ordinal || '|' || c.start || '|' || c.end || '|' || c.heading || '|' || "
                "hex(sha3(c.text)) FROM chunks c JOIN documents d ON d.id = c.doc_id ORDER BY d.path, c.ordinal\" 2>&1",
                db),
          &out, 0);
    return out;
}

TEST(ingest_survives_sigkill_at_random_points) {
    char *dir = t_tmpdir(), *docs = rl_path_join(dir, "docs");
    make_corpus(docs, 400, 12);
    char *clean_store = rl_path_join(dir, "clean"), *killed_store = rl_path_join(dir, "killed");
    char *out;
    CHECK_EQ_INT(t_run(t_fmt("%s -q ingest --store %s %s", t_bin(), clean_store, docs), &out, 1), 0);
    free(out);
    srand((unsigned)time(NULL));
    int kills = 0;
    for (int round = 0; round < 8; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            int devnull = open("/dev/null", 1);
            dup2(devnull, 2);
            execl(t_bin(), t_bin(), "-q", "ingest", "--store", killed_store, docs, (char *)NULL);
            _exit(127);
        }
        usleep((useconds_t)(20000 + rand() % 400000));
        if (kill(pid, SIGKILL) == 0) kills++;
        int status;
        waitpid(pid, &status, 0);
        /* between kills, change the corpus a little: a rerun must also pick that up */
        if (round == 3) {
            t_write_str(docs, "d01/file0001.md", "# Rewritten\n\nThis file was rewritten between two kills.\n");
            t_write_str(clean_store, "../docs/d01/file0001.md", "# Rewritten\n\nThis file was rewritten between two kills.\n");
        }
    }
    CHECK(kills > 0);
    CHECK_EQ_INT(t_run(t_fmt("%s -q ingest --store %s %s", t_bin(), killed_store, docs), &out, 1), 0);
    free(out);
    CHECK_EQ_INT(t_run(t_fmt("%s -q ingest --store %s %s", t_bin(), clean_store, docs), &out, 1), 0);
    free(out);
    char *db1 = rl_path_join(clean_store, "store.db"), *db2 = rl_path_join(killed_store, "store.db");
    char *a = store_dump(db1), *b = store_dump(db2);
    CHECK(strlen(a) > 1000);
    CHECK_MSG(strcmp(a, b) == 0, "the killed-and-resumed store differs from a clean ingest");
    CHECK_CONTAINS(a, "d01/file0001.md|0|0|");
    rl_store *s;
    rl_error err;
    CHECK_OK(rl_store_open(&s, db2, NULL, &err));
    check_consistent(s);
    CHECK_EQ_INT(hits_for(s, "rewritten between two kills", "d01/file0001.md"), 1);
    rl_store_close(s);
    free(a);
    free(b);
}

/* Many new files: the keyword index is built once at the end (triggers dropped meanwhile);
 * the result is the same index, later small ingests index row by row again, and a store left
 * with a stale index (a kill in between) is repaired when it is opened. */
TEST(ingest_bulk_builds_keyword_index_once) {
    char *dir = t_tmpdir(), *docs = rl_path_join(dir, "docs"), *db = rl_path_join(dir, "s/store.db");
    make_corpus(docs, 120, 2);
    rl_store *s;
    rl_error err;
    CHECK_OK(rl_store_open(&s, db, NULL, &err));
    rl_ingest_report r = ingest_dir(s, docs);
    CHECK_EQ_INT(r.added, 120);
    rl_ingest_report_free(&r);
    check_consistent(s);
    CHECK_EQ_INT(query_int(s, "SELECT count(*) FROM meta WHERE key = 'fts_stale'"), 0);
    CHECK_EQ_INT(query_int(s, "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"), 3);
    int in77 = hits_for(s, "\"in file 77\"", "d07/file0077.md");
    CHECK(in77 > 0);
    CHECK_EQ_INT(hits_for(s, "\"in file 77\"", NULL), in77);
    /* a few more files: indexed as they are written (the triggers are back) */
    t_write_str(docs, "new/extra.md", "# Extra\n\nThe zanzibar coefficient is 42.\n");
    r = ingest_dir(s, docs);
    CHECK_EQ_INT(r.added, 1);
    rl_ingest_report_free(&r);
    CHECK_EQ_INT(hits_for(s, "zanzibar coefficient", "new/extra.md"), 1);
    check_consistent(s);
    /* what a kill between defer and rebuild leaves: no triggers, an empty index, the mark */
    CHECK_EQ_INT(sqlite3_exec(rl_store_db(s),
                              "DROP TRIGGER chunks_ai; DROP TRIGGER chunks_ad; DROP TRIGGER chunks_au;"
                              "INSERT INTO chunks_fts(chunks_fts) VALUES ('delete-all');"
                              "INSERT INTO meta(key, value) VALUES ('fts_stale', '1');",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    CHECK_EQ_INT(hits_for(s, "zanzibar coefficient", NULL), 0);
    rl_store_close(s);
    CHECK_OK(rl_store_open(&s, db, NULL, &err));
    CHECK_EQ_INT(hits_for(s, "zanzibar coefficient", "new/extra.md"), 1);
    CHECK_EQ_INT(query_int(s, "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"), 3);
    check_consistent(s);
    rl_store_close(s);
    free(docs);
    free(db);
    free(dir);
}

TEST(cli_ingest_and_search) {
    char *dir = t_tmpdir();
    t_write_str(dir, "docs/policies/travel.md", "# Travel\n\n## Meals\n\nThe daily meal allowance for domestic travel is EUR 45.00.\n");
    t_write_str(dir, "docs/sla.txt", "Gold customers get a first response within 4 business hours.\n");
    t_write_str(dir, "raftlm.yaml", "corpus:\n  paths: [docs]\nchunking: {size: 64, overlap: 8}\nretrieval: {k: 3}\n");
    char *out;
    CHECK_EQ_INT(t_run(t_fmt("cd %s && %s ingest", dir, t_bin()), &out, 1), 0);
    CHECK_CONTAINS(out, "2 added");
    free(out);
    CHECK_EQ_INT(t_run(t_fmt("%s search -c %s/raftlm.yaml 'How much is the meal allowance?'", t_bin(), dir), &out, 0), 0);
    CHECK_CONTAINS(out, "1. policies/travel.md  > Travel ");
    CHECK_CONTAINS(out, "[[meal]] [[allowance]]");
    free(out);
    CHECK_EQ_INT(t_run(t_fmt("%s search -c %s/raftlm.yaml --json -k 1 'business hours'", t_bin(), dir), &out, 0), 0);
    json_error_t jerr;
    json_t *j = json_loads(out, 0, &jerr);
    CHECK_MSG(j != NULL, "search --json is not JSON: %s", out);
    json_t *res = json_object_get(j, "results");
    CHECK_EQ_INT(json_array_size(res), 1);
    json_t *r0 = json_array_get(res, 0);
    CHECK_EQ_STR(json_string_value(json_object_get(r0, "doc")), "sla.txt");
    CHECK_EQ_INT(json_integer_value(json_object_get(r0, "rank")), 1);
    CHECK(json_real_value(json_object_get(r0, "score")) > 0);
    CHECK(json_integer_value(json_object_get(r0, "chunk_id")) > 0);
    CHECK(json_is_string(json_object_get(r0, "heading")));
    CHECK_CONTAINS(json_string_value(json_object_get(r0, "text")), "4 business hours");
    CHECK_EQ_STR(json_string_value(json_object_get(j, "query")), "business hours");
    json_decref(j);
    free(out);
    /* errors: missing store, bad config, no config */
    CHECK_EQ_INT(t_run(t_fmt("%s search --store %s/nowhere x", t_bin(), dir), &out, 1), 1);
    CHECK_CONTAINS(out, "run `raftlm ingest` first");
    free(out);
    t_write_str(dir, "bad.yaml", "chunking:\n  size: big\n");
    CHECK(t_run(t_fmt("%s ingest -c %s/bad.yaml", t_bin(), dir), &out, 1) != 0);
    CHECK_CONTAINS(out, "bad.yaml:2: chunking.size: expected an integer from 16 to 1048576, got \"big\"");
    free(out);
    CHECK(t_run(t_fmt("cd /tmp && %s ingest", t_bin()), &out, 1) != 0);
    CHECK_CONTAINS(out, "no raftlm.yaml here");
    free(out);
    CHECK(t_run(t_fmt("%s ingest --store %s/s %s/does-not-exist", t_bin(), dir, dir), &out, 1) != 0);
    CHECK_CONTAINS(out, "does-not-exist");
    free(out);
}

TEST(ingest_chunk_sizes_in_tokenizer_tokens_and_rechunk_on_change) {
    char *dir = t_tmpdir(), *out;
    CHECK_EQ_INT(t_run(t_fmt("xz -dc %s/tests/fixtures/tokenizer/qwen3/tokenizer.json.xz > %s/tokenizer.json", t_root(), dir), &out, 1), 0);
    free(out);
    rl_buf doc = {0};
    rl_buf_puts(&doc, "# Numbers\n\n");
    for (int i = 0; i < 400; i++) rl_buf_printf(&doc, "Item %d costs EUR %d,%03d.%02d (ref. AR-%dX). ", i, i * 7 % 1000, i * 13 % 1000, i % 100, i);
    t_write(dir, "docs/a.md", doc.data, doc.len);
    rl_buf_free(&doc);
    t_write_str(dir, "raftlm.yaml", "corpus: {paths: [docs]}\nchunking: {size: 64, overlap: 8, tokenizer: tokenizer.json}\n");
    CHECK_EQ_INT(t_run(t_fmt("%s ingest -c %s/raftlm.yaml", t_bin(), dir), &out, 1), 0);
    free(out);
    /* every chunk, counted again by the real tokenizer, is within the limit */
    rl_tokenizer *tok;
    rl_error err;
    CHECK_OK(rl_tok_load(&tok, t_fmt("%s/tokenizer.json", dir), &err));
    rl_store *s;
    CHECK_OK(rl_store_open(&s, t_fmt("%s/out/store.db", dir), NULL, &err));
    sqlite3_stmt *st;
    sqlite3_prepare_v2(rl_store_db(s), "SELECT text, n_tokens FROM chunks", -1, &st, NULL);
    int n = 0, max = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        size_t c;
        CHECK_OK(rl_tok_count(tok, t, strlen(t), &c, &err));
        CHECK_MSG(c <= 64, "chunk of %zu tokens", c);
        CHECK_EQ_INT(sqlite3_column_int(st, 1), c);
        if ((int)c > max) max = (int)c;
        n++;
    }
    sqlite3_finalize(st);
    rl_store_close(s);
    CHECK(n > 20);
    CHECK(max > 48); /* chunks are filled, not tiny */
    /* the estimate would count these figures differently: a new chunk size re-chunks */
    t_write_str(dir, "raftlm.yaml", "corpus: {paths: [docs]}\nchunking: {size: 100, overlap: 8, tokenizer: tokenizer.json}\n");
    CHECK_EQ_INT(t_run(t_fmt("%s ingest -c %s/raftlm.yaml", t_bin(), dir), &out, 1), 0);
    CHECK_CONTAINS(out, "chunking every file again");
    CHECK_CONTAINS(out, "1 updated");
    free(out);
    CHECK_EQ_INT(t_run(t_fmt("%s ingest -c %s/raftlm.yaml", t_bin(), dir), &out, 1), 0);
    CHECK_CONTAINS(out, "1 unchanged");
    free(out);
    t_write_str(dir, "raftlm.yaml", "corpus: {paths: [docs]}\nchunking: {size: 100, overlap: 8, tokenizer: missing.json}\n");
    CHECK(t_run(t_fmt("%s ingest -c %s/raftlm.yaml", t_bin(), dir), &out, 1) != 0);
    CHECK_CONTAINS(out, "chunking.tokenizer");
    free(out);
    rl_tok_free(tok);
}
