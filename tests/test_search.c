/* test_search.c - hostile query strings never break search; retrieval quality on real
 * documents nobody on the project wrote (../shared/data/covid-faq), compared with plain FTS5
 * bm25() over whole documents. */
#include "test.h"

#include <jansson.h>
#include <sqlite3.h>

#include "retrieve/retrieve.h"

static rl_store *small_store(char **dir_out) {
    char *dir = t_tmpdir(), *docs = rl_path_join(dir, "docs"), *db = rl_path_join(dir, "store.db");
    t_write_str(docs, "a.md", "# Quotes\n\nHe said \"hello\" AND left; NEAR the end * of col:umn text. Price: EUR 1,250.00 (net).\n");
    t_write_str(docs, "b.txt", "Unicode: café, naïve, 日本語のテキスト, emoji 😀👍🏽, Ελληνικά.\n");
    rl_store *s;
    rl_error err;
    RL_ASSERT(rl_store_open(&s, db, NULL, &err) == RL_OK);
    const char *paths[] = {docs};
    rl_ingest_opts o = {.paths = paths, .n_paths = 1, .max_file_bytes = 1 << 20, .chunk = {.size = 64, .overlap = 8}};
    rl_ingest_report r;
    RL_ASSERT(rl_ingest(s, &o, &r, &err) == RL_OK);
    rl_ingest_report_free(&r);
    free(docs);
    free(db);
    *dir_out = dir;
    return s;
}

TEST(search_hostile_queries_never_fail) {
    char *dir;
    rl_store *s = small_store(&dir);
    const char *queries[] = {"\"", "'", "\"\"\"\"", "AND", "OR", "NOT", "a AND", "OR NOT AND", "NEAR(hello end)", "NEAR(", "*", "hel*",
                             "^hello", "col:umn", "text:hello", "(((", ")))", "{a b}", "\\", "%", "_", "-hello", "+hello",
                             "hello\" OR \"x", "'; DROP TABLE chunks; --", "\x01\x02", "", "   ", "\n\t", "😀", "日本語",
                             "\xff\xfe invalid \xc3", "1,250.00", "€", "rank", "bm25(chunks_fts)", "hello NOT", "* OR *",
                             "\"hello", "said\"hello", "a\0b"};
    for (size_t i = 0; i < sizeof queries / sizeof *queries; i++) {
        rl_hit *h;
        size_t n;
        rl_error err = {0};
        rl_status st = rl_search_bm25(s, queries[i], 5, &h, &n, &err);
        CHECK_MSG(st == RL_OK, "query %zu [%s] failed: %s", i, queries[i], err.msg);
        if (st == RL_OK) rl_hits_free(h, n);
    }
    /* very long queries too */
    rl_buf big = {0};
    for (int i = 0; i < 20000; i++) rl_buf_puts(&big, i % 3 ? "word \" ( " : "NEAR( * ");
    rl_hit *h;
    size_t n;
    rl_error err;
    CHECK_OK(rl_search_bm25(s, big.data, 5, &h, &n, &err));
    rl_hits_free(h, n);
    rl_buf_free(&big);
    /* operators are words, not syntax: "NEAR" finds the text that contains it */
    CHECK_OK(rl_search_bm25(s, "NEAR(", 5, &h, &n, &err));
    CHECK_EQ_INT(n, 1);
    rl_hits_free(h, n);
    CHECK_OK(rl_search_bm25(s, "日本語のテキスト", 5, &h, &n, &err));
    CHECK_EQ_INT(n, 1);
    rl_hits_free(h, n);
    rl_store_close(s);
}

TEST(search_query_sanitizer) {
    char *q = rl_fts_query("What is the \"meal\" allowance (EUR)?");
    CHECK_EQ_STR(q, "\"meal\" OR \"allowance\" OR \"eur\"");
    free(q);
    q = rl_fts_query("what is it");
    CHECK_EQ_STR(q, "\"what\" OR \"is\" OR \"it\"");
    free(q);
    CHECK(rl_fts_query("?!* \"'") == NULL);
    q = rl_fts_query("price of the AR-700X: EUR 1,250.00, see COVID-19 -- e.g. x.");
    CHECK_EQ_STR(q, "\"price\" OR \"ar 700x\" OR \"eur\" OR \"1 250 00\" OR \"see\" OR \"covid 19\" OR \"e g\" OR \"x\"");
    free(q);
    q = rl_fts_query("Meal meal MEAL");
    CHECK_EQ_STR(q, "\"meal\"");
    free(q);
}

TEST(search_cli_hostile_strings) {
    char *dir;
    rl_store *s = small_store(&dir);
    rl_store_close(s);
    const char *queries[] = {"\\\"", "AND OR NOT", "NEAR(", "-x", "'; DROP TABLE chunks; --"};
    for (size_t i = 0; i < sizeof queries / sizeof *queries; i++) {
        char *out;
        int rc = t_run(t_fmt("%s search --store %s --json -- \"%s\"", t_bin(), dir, queries[i]), &out, 1);
        CHECK_MSG(rc == 0, "query [%s]: exit %d: %s", queries[i], rc, out);
        CHECK_CONTAINS(out, "\"results\"");
        free(out);
    }
}

/* ---- real documents: the COVID-19 FAQ (213 answers from CDC, WHO, ECDC ...) ---------------- */

typedef struct faq {
    char *question, *answer;
} faq;

/* RFC 4180 CSV: quoted fields may hold commas, newlines and doubled quotes. */
static size_t read_csv_faq(const char *text, faq **out) {
    size_t n = 0, cap = 0;
    const char *p = text;
    int line = 0;
    faq *items = NULL;
    while (*p) {
        char *fields[16] = {0};
        int nf = 0;
        for (;;) {
            rl_buf f = {0};
            if (*p == '"') {
                p++;
                while (*p) {
                    if (*p == '"' && p[1] == '"') rl_buf_putc(&f, '"'), p += 2;
                    else if (*p == '"') {
                        p++;
                        break;
                    } else rl_buf_putc(&f, *p++);
                }
            } else {
                while (*p && *p != ',' && *p != '\n' && *p != '\r') rl_buf_putc(&f, *p++);
            }
            if (nf < 16) fields[nf++] = rl_buf_take(&f);
            else rl_buf_free(&f);
            if (*p == ',') {
                p++;
                continue;
            }
            if (*p == '\r') p++;
            if (*p == '\n') p++;
            break;
        }
        if (line++ > 0 && nf >= 2 && fields[0][0] && fields[1][0]) {
            if (n == cap) cap = cap ? 2 * cap : 256, items = rl_xrealloc(items, cap * sizeof *items);
            items[n].question = fields[0];
            items[n].answer = fields[1];
            fields[0] = fields[1] = NULL;
            n++;
        }
        for (int i = 0; i < nf; i++) free(fields[i]);
    }
    *out = items;
    return n;
}

/* Top-3 accuracy of plain FTS5 bm25() over whole documents, with the same query text. */
static int baseline_hits(faq *items, size_t n, const int *gold, int stemming) {
    sqlite3 *db;
    RL_ASSERT(sqlite3_open(":memory:", &db) == SQLITE_OK);
    char *sql = t_fmt("CREATE VIRTUAL TABLE docs USING fts5(text, tokenize='%sunicode61 remove_diacritics 2')", stemming ? "porter " : "");
    RL_ASSERT(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK);
    free(sql);
    sqlite3_stmt *ins, *q;
    sqlite3_prepare_v2(db, "INSERT INTO docs(rowid, text) VALUES (?, ?)", -1, &ins, NULL);
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(ins, 1, (sqlite3_int64)i);
        sqlite3_bind_text(ins, 2, items[i].answer, -1, SQLITE_STATIC);
        sqlite3_step(ins);
        sqlite3_reset(ins);
    }
    sqlite3_finalize(ins);
    sqlite3_prepare_v2(db, "SELECT rowid FROM docs WHERE docs MATCH ? ORDER BY bm25(docs) LIMIT 3", -1, &q, NULL);
    int hits = 0;
    for (size_t i = 0; i < n; i++) {
        char *fq = rl_fts_query(items[i].question);
        if (!fq) continue;
        sqlite3_bind_text(q, 1, fq, -1, SQLITE_STATIC);
        while (sqlite3_step(q) == SQLITE_ROW)
            if (gold[sqlite3_column_int64(q, 0)] == gold[i]) {
                hits++;
                break;
            }
        sqlite3_reset(q);
        free(fq);
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
    return hits;
}

/* Top-3 documents (distinct) from raftlm's chunk search. */
static int raftlm_hits(faq *items, size_t n, const int *gold, int chunk_size, const char *dir) {
    char *docs = t_fmt("%s/docs", dir), *db = t_fmt("%s/store-%d.db", dir, chunk_size);
    rl_store *s;
    rl_error err;
    RL_ASSERT(rl_store_open(&s, db, NULL, &err) == RL_OK);
    const char *paths[] = {docs};
    rl_ingest_opts o = {.paths = paths, .n_paths = 1, .max_file_bytes = 1 << 20, .chunk = {.size = chunk_size, .overlap = chunk_size / 8}};
    rl_ingest_report r;
    RL_ASSERT(rl_ingest(s, &o, &r, &err) == RL_OK);
    RL_ASSERT(r.added == (int64_t)n);
    rl_ingest_report_free(&r);
    int hits = 0;
    for (size_t i = 0; i < n; i++) {
        rl_hit *h;
        size_t nh;
        RL_ASSERT(rl_search_bm25(s, items[i].question, 20, &h, &nh, &err) == RL_OK);
        int distinct = 0, found = 0;
        for (size_t k = 0; k < nh && distinct < 3; k++) {
            int dup = 0;
            for (size_t m = 0; m < k; m++) dup |= strcmp(h[m].doc, h[k].doc) == 0;
            if (dup) continue;
            distinct++;
            int id = atoi(h[k].doc + 4); /* "faq-123.txt" */
            found |= gold[id] == gold[i];
        }
        hits += found;
        rl_hits_free(h, nh);
    }
    rl_store_close(s);
    free(docs);
    free(db);
    return hits;
}

TEST(search_real_corpus_at_least_whole_document_bm25) {
    const char *shared = t_shared();
    if (!shared) SKIP("../shared not found: the real-corpus retrieval check needs ../shared/data/covid-faq");
    char *csv_path = t_fmt("%s/data/covid-faq/faq_covidbert.csv", shared);
    char *csv;
    size_t len;
    rl_error err;
    if (rl_file_read(csv_path, 0, &csv, &len, &err) != RL_OK) SKIP("covid-faq CSV missing");
    faq *items;
    size_t n = read_csv_faq(csv, &items);
    CHECK_MSG(n >= 200, "parsed %zu FAQ entries, expected 213", n);
    /* identical answers (several questions share one) count as the same document */
    int *gold = rl_xmalloc(n * sizeof *gold);
    char *dir = t_tmpdir();
    for (size_t i = 0; i < n; i++) {
        gold[i] = (int)i;
        for (size_t k = 0; k < i; k++)
            if (strcmp(items[k].answer, items[i].answer) == 0) {
                gold[i] = gold[k];
                break;
            }
        char *rel = t_fmt("docs/faq-%zu.txt", i);
        t_write_str(dir, rel, items[i].answer);
        free(rel);
    }
    int base = baseline_hits(items, n, gold, 1);
    int base_plain = baseline_hits(items, n, gold, 0);
    int ours256 = raftlm_hits(items, n, gold, 256, dir);
    int ours64 = raftlm_hits(items, n, gold, 64, dir);
    fprintf(stderr, "    covid-faq top-3 document accuracy over %zu questions: whole-document FTS5 bm25 %.3f (no stemming %.3f); "
                    "raftlm chunks of 256 tokens %.3f, of 64 tokens %.3f\n",
            n, base / (double)n, base_plain / (double)n, ours256 / (double)n, ours64 / (double)n);
    CHECK_MSG(ours256 >= base, "raftlm (256) found %d, whole-document bm25 %d", ours256, base);
    /* 64-token chunks are reported, not required: on short FAQ answers they cut context away */
    CHECK(ours256 > (int)n / 2); /* a sanity floor: retrieval works at all */
    for (size_t i = 0; i < n; i++) free(items[i].question), free(items[i].answer);
    free(items);
    free(gold);
    free(csv);
}

TEST(search_dense_and_hybrid_with_a_model_embedder) {
    const char *shared = t_shared();
    if (!shared) SKIP("../shared not found: the embedder test uses stories260K");
    char *dir = t_tmpdir(), *out;
    t_write_str(dir, "docs/a.md", "# Cats\n\nThe little cat sat on the mat and purred all day long.\n");
    t_write_str(dir, "docs/b.md", "# Rockets\n\nThe rocket engine burns 250 kg of fuel per second at full thrust.\n");
    t_write_str(dir, "docs/c.md", "# Garden\n\nTom planted red flowers in the garden with his mother.\n");
    t_write_str(dir, "raftlm.yaml", t_fmt("corpus: {paths: [docs]}\nretrieval: {embedding_model: %s/models/stories260K/stories260K.bin, "
                                          "embedding_tokenizer: %s/models/stories260K/tok512.bin}\n",
                                          shared, shared));
    CHECK_EQ_INT(t_run(t_fmt("%s ingest -c %s/raftlm.yaml", t_bin(), dir), &out, 1), 0);
    CHECK_CONTAINS(out, "embedded 3 new chunks");
    free(out);
    /* a chunk's own text is its own nearest neighbour (cosine similarity 1) */
    CHECK_EQ_INT(t_run(t_fmt("%s search -c %s/raftlm.yaml --mode dense --json -k 3 \"$(printf '# Rockets\\n\\nThe rocket engine burns 250 kg of fuel per second at full thrust.')\"",
                             t_bin(), dir),
                       &out, 0),
                 0);
    json_t *j = json_loads(out, 0, NULL);
    json_t *r0 = json_array_get(json_object_get(j, "results"), 0);
    CHECK_EQ_STR(json_string_value(json_object_get(r0, "doc")), "b.md");
    CHECK(json_real_value(json_object_get(r0, "score")) > 0.99);
    CHECK_EQ_INT(json_array_size(json_object_get(j, "results")), 3);
    json_decref(j);
    free(out);
    /* hybrid (the default with an embedding model) keeps BM25's clear winner first */
    CHECK_EQ_INT(t_run(t_fmt("%s search -c %s/raftlm.yaml --json -k 2 'rocket fuel'", t_bin(), dir), &out, 0), 0);
    j = json_loads(out, 0, NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(json_object_get(j, "results"), 0), "doc")), "b.md");
    json_decref(j);
    free(out);
    /* a changed document is embedded again, the others are not */
    t_write_str(dir, "docs/c.md", "# Garden\n\nTom planted blue flowers.\n");
    CHECK_EQ_INT(t_run(t_fmt("%s ingest -c %s/raftlm.yaml", t_bin(), dir), &out, 1), 0);
    CHECK_CONTAINS(out, "embedded 1 new chunks");
    free(out);
    /* dense without an embedding model is a clear error */
    t_write_str(dir, "plain.yaml", "corpus: {paths: [docs]}\n");
    CHECK(t_run(t_fmt("%s search -c %s/plain.yaml --mode dense x", t_bin(), dir), &out, 1) != 0);
    CHECK_CONTAINS(out, "needs retrieval.embedding_model");
    free(out);
}
