/* cmd_ingest.c - `raftlm ingest`: documents -> chunks -> store (+FTS5). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/project.h"
#include "tokenizer/tokenizer.h"

static const char *usage_text =
    "[-c raftlm.yaml] [--store DIR PATH...] [--chunk-size N] [--overlap N] [--threads N]\n\n"
    "Reads the corpus (corpus.paths of the config, or the PATHs given with --store), cuts it into\n"
    "chunks and brings the store up to date: new files are added, changed files replaced,\n"
    "deleted files removed, unchanged files skipped. Safe to interrupt and rerun.\n"
    "  -c, --config FILE   project config (default ./raftlm.yaml)\n"
    "  --store DIR         store folder (DIR/store.db) instead of the config's output_dir\n"
    "  --chunk-size N      tokens per chunk (overrides chunking.size)\n"
    "  --overlap N         overlap in tokens (overrides chunking.overlap)\n"
    "  --threads N         worker threads (default: all cores)\n";

int cmd_ingest(int argc, char **argv) {
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},     {"store", required_argument, 0, 's'},
                                         {"chunk-size", required_argument, 0, 'z'}, {"overlap", required_argument, 0, 'o'},
                                         {"threads", required_argument, 0, 't'},    {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *config = NULL, *store_dir = NULL;
    int chunk_size = 0, overlap = -1, threads = -1, c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 's': store_dir = optarg; break;
        case 'z': chunk_size = atoi(optarg); break;
        case 'o': overlap = atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
        case 'h': printf("usage: raftlm ingest %s", usage_text); return 0;
        default: return cli_usage("ingest", usage_text);
        }
    }
    rl_error err = {0};
    rl_config cfg;
    char *db_path;
    if (cli_project_open(config, store_dir, &cfg, &db_path, &err)) return cli_report(&err);
    if (optind < argc) { /* PATHs on the command line replace corpus.paths */
        for (int i = 0; i < cfg.corpus.paths.n; i++) free(cfg.corpus.paths.items[i]);
        free(cfg.corpus.paths.items);
        cfg.corpus.paths.n = argc - optind;
        cfg.corpus.paths.items = rl_xcalloc((size_t)cfg.corpus.paths.n, sizeof(char *));
        for (int i = 0; i < cfg.corpus.paths.n; i++) cfg.corpus.paths.items[i] = rl_xstrdup(argv[optind + i]);
    } else if (!config && store_dir) {
        free(db_path);
        rl_config_free(&cfg);
        return cli_usage("ingest", "--store DIR PATH...   (which files or folders to ingest?)");
    }
    if (chunk_size > 0) cfg.chunking.size = chunk_size;
    if (overlap >= 0) cfg.chunking.overlap = overlap;
    if (threads >= 0) cfg.threads = threads;
    int code = 0;
    rl_store *store = NULL;
    rl_ingest_opts io = {0};
    rl_ingest_report rep = {0};
    rl_tokenizer *tok = NULL;
    char *chunking_fp = NULL;
    if (cfg.chunking.overlap >= cfg.chunking.size) {
        rl_fail(&err, RL_EINVAL, "overlap (%d) must be smaller than the chunk size (%d)", cfg.chunking.overlap, cfg.chunking.size);
        goto fail;
    }
    if (cli_chunk_opts(&cfg, &io.chunk, &tok, &chunking_fp, &err)) goto fail;
    io.chunking_fingerprint = chunking_fp;
    rl_store_opts so = {.stemming = cfg.retrieval.stemming};
    if (rl_store_open(&store, db_path, &so, &err)) goto fail;
    io.paths = (const char *const *)cfg.corpus.paths.items;
    io.n_paths = cfg.corpus.paths.n;
    io.include = (const char *const *)cfg.corpus.include.items;
    io.n_include = cfg.corpus.include.n;
    io.exclude = (const char *const *)cfg.corpus.exclude.items;
    io.n_exclude = cfg.corpus.exclude.n;
    io.max_file_bytes = (size_t)cfg.corpus.max_file_mb << 20;
    io.threads = cfg.threads;
    if (rl_ingest(store, &io, &rep, &err)) goto fail;
    if (cfg.retrieval.embedding_model) { /* dense retrieval: vectors for new chunks, then the index */
        rl_embedder *emb;
        if (cli_embedder_open(&cfg, &emb, &err)) goto fail;
        char *idx = rl_path_join(cfg.output_dir, "vectors.idx");
        int64_t n_emb;
        rl_status es = rl_store_embed(store, emb, idx, &n_emb, &err);
        if (!es) rl_info("embedded %lld new chunks; vector index %s", (long long)n_emb, idx);
        free(idx);
        rl_embedder_free(emb);
        if (es) goto fail;
    }
    rl_store_stats st;
    if (rl_store_stats_get(store, &st, &err)) goto fail;
    rl_info("ingested %lld files in %.2f s (%.1f MB/s): %lld added, %lld updated, %lld unchanged, %lld removed, %lld skipped",
            (long long)rep.seen, rep.seconds, rep.seconds > 0 ? (double)rep.bytes_read / 1e6 / rep.seconds : 0.0, (long long)rep.added,
            (long long)rep.updated, (long long)rep.unchanged, (long long)rep.removed, (long long)rep.skipped);
    if (rep.ignored) rl_info("%lld files of unsupported types ignored (-v lists them)", (long long)rep.ignored);
    for (int i = 0; i < rep.n_skipped_reasons; i++) rl_info("  skipped %s", rep.skipped_reasons[i]);
    rl_info("store %s: %lld documents, %lld chunks (%lld written now)", db_path, (long long)st.documents, (long long)st.chunks,
            (long long)rep.chunks_written);
    goto out;
fail:
    code = cli_report(&err);
out:
    rl_ingest_report_free(&rep);
    rl_store_close(store);
    rl_tok_free(tok);
    free(chunking_fp);
    free(db_path);
    rl_config_free(&cfg);
    return code;
}
