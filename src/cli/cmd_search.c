/* cmd_search.c - `raftlm search`: BM25 over the store's chunks, as a readable listing with
 * the matched words highlighted, or as one JSON object (--json). */
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/project.h"

static const char *usage_text =
    "[-c raftlm.yaml | --store DIR] [-k N] [--mode bm25|dense|hybrid] [--path-prefix P] [--json] QUERY...\n\n"
    "Ranks the store's chunks for QUERY (any text; read from stdin when absent) by BM25, by embedding\n"
    "similarity (dense) or both fused by reciprocal rank (hybrid; the default with an embedding model).\n"
    "  -c, --config FILE   project config (default ./raftlm.yaml)\n"
    "  --store DIR         a store folder (DIR/store.db) instead of a config\n"
    "  -k N                number of results (default retrieval.k, 5)\n"
    "  --mode M            bm25, dense or hybrid (default retrieval.mode)\n"
    "  --path-prefix P     only chunks of documents whose path (as listed) starts with P\n"
    "  --json              one JSON object: {\"query\", \"results\": [{rank, score, chunk_id, doc, heading, text}]}\n";

/* Prints text on one line (whitespace collapsed), at most max bytes around the first match,
 * with marked ranges between open and close. */
static void print_snippet(const rl_hit *h, size_t max, const char *open, const char *close) {
    size_t len = strlen(h->text), from = 0;
    if (h->n_marks && h->marks[0] > max / 3 && len > max) from = h->marks[0] - max / 3;
    while (from > 0 && from < len && ((unsigned char)h->text[from] & 0xC0) == 0x80) from++;
    while (from > 0 && from < len && h->text[from - 1] != ' ' && h->text[from - 1] != '\n' && h->marks[0] - from > 16) from++;
    size_t to = from + max < len ? from + max : len;
    while (to < len && ((unsigned char)h->text[to] & 0xC0) == 0x80) to++;
    printf("   %s", from > 0 ? "..." : "");
    size_t m = 0;
    int space = 0;
    for (size_t i = from; i < to; i++) {
        while (m < h->n_marks && h->marks[2 * m + 1] <= i) m++;
        char ch = h->text[i];
        if (ch == '\n' || ch == '\t' || ch == ' ') {
            space = 1;
            continue;
        }
        if (space) putchar(' ');
        space = 0;
        if (m < h->n_marks && h->marks[2 * m] == i) fputs(open, stdout);
        putchar(ch);
        if (m < h->n_marks && h->marks[2 * m + 1] == i + 1) fputs(close, stdout);
    }
    printf("%s\n", to < len ? "..." : "");
}

int cmd_search(int argc, char **argv) {
    static const struct option opts[] = {{"config", required_argument, 0, 'c'}, {"store", required_argument, 0, 's'},
                                         {"json", no_argument, 0, 'j'},          {"help", no_argument, 0, 'h'},
                                         {"mode", required_argument, 0, 'M'},    {"path-prefix", required_argument, 0, 'P'},
                                         {0, 0, 0, 0}};
    const char *config = NULL, *store_dir = NULL, *mode = NULL, *prefix = NULL;
    int k = 0, json = 0, c;
    while ((c = getopt_long(argc, argv, "c:k:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 's': store_dir = optarg; break;
        case 'k':
            k = atoi(optarg);
            if (k <= 0 || k > 10000) {
                fprintf(stderr, "raftlm: -k must be from 1 to 10000, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'j': json = 1; break;
        case 'M': mode = optarg; break;
        case 'P': prefix = optarg; break;
        case 'h': printf("usage: raftlm search %s", usage_text); return 0;
        default: return cli_usage("search", usage_text);
        }
    }
    rl_buf query = {0};
    for (int i = optind; i < argc; i++) {
        if (query.len) rl_buf_putc(&query, ' ');
        rl_buf_puts(&query, argv[i]);
    }
    if (optind >= argc) {
        if (isatty(STDIN_FILENO)) return cli_usage("search", usage_text);
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0 && query.len < (1 << 20)) rl_buf_append(&query, chunk, n);
        while (query.len && (query.data[query.len - 1] == '\n' || query.data[query.len - 1] == '\r')) query.data[--query.len] = 0;
    }
    if (!query.data) rl_buf_puts(&query, "");
    rl_error err = {0};
    rl_config cfg;
    char *db_path = NULL;
    rl_store *store = NULL;
    rl_hit *hits = NULL;
    size_t n_hits = 0;
    rl_embedder *emb = NULL;
    rl_dense *dense = NULL;
    int code = 0;
    if (cli_project_open(config, store_dir, &cfg, &db_path, &err)) {
        rl_buf_free(&query);
        return cli_report(&err);
    }
    if (!k) k = cfg.retrieval.k;
    if (!rl_path_exists(db_path)) {
        rl_fail(&err, RL_ENOTFOUND, "no store at %s: run `raftlm ingest` first", db_path);
        goto fail;
    }
    if (!rl_utf8_valid(query.data, query.len)) {
        rl_fail(&err, RL_EINVAL, "the query is not valid UTF-8");
        goto fail;
    }
    if (rl_store_open(&store, db_path, NULL, &err)) goto fail;
    if (!mode) mode = cli_retrieval_mode(&cfg);
    if (strcmp(mode, "bm25") != 0 && strcmp(mode, "dense") != 0 && strcmp(mode, "hybrid") != 0) {
        rl_fail(&err, RL_EINVAL, "--mode must be bm25, dense or hybrid, got '%s'", mode);
        goto fail;
    }
    if (strcmp(mode, "bm25") != 0) {
        if (!cfg.retrieval.embedding_model) {
            rl_fail(&err, RL_EINVAL, "--mode %s needs retrieval.embedding_model in the config", mode);
            goto fail;
        }
        if (cli_dense_open(&cfg, &emb, &dense, &err)) goto fail;
    }
    rl_search_opts so = {.mode = mode, .k = k, .path_prefix = prefix,
                         .hybrid = {cfg.retrieval.rrf_k, cfg.retrieval.bm25_weight, cfg.retrieval.dense_weight}};
    if (rl_search(store, dense, &so, query.data, &hits, &n_hits, &err)) goto fail;
    if (json) {
        json_t *results = json_array();
        for (size_t i = 0; i < n_hits; i++) {
            json_t *r = json_object();
            json_object_set_new(r, "rank", json_integer((json_int_t)i + 1));
            json_object_set_new(r, "score", json_real(hits[i].score));
            json_object_set_new(r, "chunk_id", json_integer(hits[i].chunk_id));
            json_object_set_new(r, "doc", json_string(hits[i].doc));
            json_object_set_new(r, "heading", json_string(hits[i].heading));
            json_object_set_new(r, "text", json_string(hits[i].text));
            json_array_append_new(results, r);
        }
        json_t *root = json_object();
        json_object_set_new(root, "query", json_string(query.data));
        json_object_set_new(root, "results", results);
        char *s = json_dumps(root, JSON_INDENT(2) | JSON_ENSURE_ASCII * 0);
        printf("%s\n", s ? s : "{}");
        free(s);
        json_decref(root);
    } else if (n_hits == 0) {
        printf("no results for \"%s\"\n", query.data);
    } else {
        int tty = isatty(STDOUT_FILENO);
        const char *open = tty ? "\033[1;33m" : "[[", *close = tty ? "\033[0m" : "]]";
        for (size_t i = 0; i < n_hits; i++) {
            printf("%s%zu. %s%s", tty ? "\033[1m" : "", i + 1, hits[i].doc, tty ? "\033[0m" : "");
            if (hits[i].heading[0]) printf("  > %s", hits[i].heading);
            printf("   (score %.2f, chunk %lld)\n", hits[i].score, (long long)hits[i].chunk_id);
            print_snippet(&hits[i], 320, open, close);
        }
    }
    goto out;
fail:
    code = cli_report(&err);
out:
    rl_hits_free(hits, n_hits);
    rl_dense_close(dense);
    rl_embedder_free(emb);
    rl_store_close(store);
    free(db_path);
    rl_config_free(&cfg);
    rl_buf_free(&query);
    return code;
}
