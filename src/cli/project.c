/* project.c - locating a project (config file or bare store folder) for the verbs. */
#include "cli/project.h"
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>

rl_status cli_project_open(const char *config_path, const char *store_dir, rl_config *cfg, char **db_path, rl_error *err) {
    *db_path = NULL;
    if (config_path || !store_dir) {
        const char *path = config_path ? config_path : "raftlm.yaml";
        if (!config_path && !rl_path_exists(path))
            return rl_fail(err, RL_EINVAL, "no raftlm.yaml here: pass -c FILE, or --store DIR for a bare store (`raftlm init` writes a config)");
        rl_status s = rl_config_load(cfg, path, err);
        if (s) return s;
        if (store_dir) {
            free(cfg->output_dir);
            cfg->output_dir = rl_xstrdup(store_dir);
        }
    } else {
        rl_config_defaults(cfg, ".");
        free(cfg->output_dir);
        cfg->output_dir = rl_xstrdup(store_dir);
    }
    *db_path = rl_config_store_path(cfg);
    return RL_OK;
}

static size_t count_with_tokenizer(void *ctx, const char *s, size_t n) {
    size_t count = 0;
    if (rl_tok_count(ctx, s, n, &count, NULL) != RL_OK) return rl_estimate_tokens(NULL, s, n);
    return count;
}

rl_status cli_chunk_opts(const rl_config *cfg, rl_chunk_opts *opts, rl_tokenizer **tok, char **fingerprint, rl_error *err) {
    memset(opts, 0, sizeof *opts);
    *tok = NULL;
    *fingerprint = NULL;
    opts->size = cfg->chunking.size;
    opts->overlap = cfg->chunking.overlap;
    char tok_id[80] = "estimate";
    if (cfg->chunking.tokenizer) {
        rl_status s = rl_tok_load(tok, cfg->chunking.tokenizer, err);
        if (s) {
            rl_error_prefix(err, "%s: chunking.tokenizer", cfg->file);
            return s;
        }
        opts->count = count_with_tokenizer;
        opts->count_ctx = *tok;
        /* the tokenizer's identity is its vocabulary: hash what it encodes a probe to */
        char hex[65];
        rl_buf probe = {0};
        for (int id = 0; id < rl_tok_vocab_size(*tok) && id < 4096; id++) {
            size_t len;
            const char *piece = rl_tok_piece(*tok, id, &len);
            if (piece) rl_buf_append(&probe, piece, len);
            rl_buf_putc(&probe, 0);
        }
        rl_sha256_hex(probe.data ? probe.data : "", probe.len, hex);
        rl_buf_free(&probe);
        snprintf(tok_id, sizeof tok_id, "tokenizer:%.16s:%d", hex, rl_tok_vocab_size(*tok));
    }
    *fingerprint = rl_xasprintf("size=%d;overlap=%d;count=%s", opts->size, opts->overlap, tok_id);
    return RL_OK;
}

const char *cli_retrieval_mode(const rl_config *cfg) {
    if (strcmp(cfg->retrieval.mode, "auto") != 0) return cfg->retrieval.mode;
    return cfg->retrieval.embedding_model ? "hybrid" : "bm25";
}

rl_status cli_embedder_open(const rl_config *cfg, rl_embedder **emb, rl_error *err) {
    rl_status s = rl_embedder_open(emb, cfg->retrieval.embedding_model, cfg->retrieval.embedding_tokenizer, cfg->threads, err);
    if (!s) rl_embedder_set_prefixes(*emb, cfg->retrieval.query_prefix, cfg->retrieval.passage_prefix);
    return s;
}

rl_status cli_dense_open(const rl_config *cfg, rl_embedder **emb, rl_dense **dense, rl_error *err) {
    *emb = NULL;
    *dense = NULL;
    if (!cfg->retrieval.embedding_model)
        return rl_fail(err, RL_EINVAL, "dense and hybrid search need retrieval.embedding_model in the config");
    rl_status s = cli_embedder_open(cfg, emb, err);
    if (s) return s;
    char *idx = rl_path_join(cfg->output_dir, "vectors.idx");
    s = rl_dense_open(dense, *emb, idx, err);
    free(idx);
    if (s) {
        rl_embedder_free(*emb);
        *emb = NULL;
    }
    return s;
}
