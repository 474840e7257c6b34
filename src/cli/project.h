/* project.h - what several verbs share: finding the config or the --store folder, and turning
 * config sections into module options. Internal to src/cli. */
#ifndef RL_CLI_PROJECT_H
#define RL_CLI_PROJECT_H

#include "cli/config.h"
#include "retrieve/retrieve.h"

/* Loads `config_path`, or ./raftlm.yaml when config_path is NULL and store_dir is NULL.
 * With store_dir set (and no config), fills cfg with defaults whose output_dir is store_dir.
 * Returns the store database path in *db_path (caller frees). */
rl_status cli_project_open(const char *config_path, const char *store_dir, rl_config *cfg, char **db_path, rl_error *err);

typedef struct rl_tokenizer rl_tokenizer;

/* Chunking options from the config: token counts from chunking.tokenizer (loaded into *tok,
 * which the caller frees with rl_tok_free) or the word-based estimate; *fingerprint (caller
 * frees) identifies the chunking for the store. */
rl_status cli_chunk_opts(const rl_config *cfg, rl_chunk_opts *opts, rl_tokenizer **tok, char **fingerprint, rl_error *err);

/* The configured retrieval mode with "auto" resolved: hybrid with an embedding model, else bm25. */
const char *cli_retrieval_mode(const rl_config *cfg);
/* Opens the embedder of retrieval.embedding_model (+ embedding_tokenizer) with the configured
 * query and passage prefixes. */
rl_status cli_embedder_open(const rl_config *cfg, rl_embedder **emb, rl_error *err);
/* Opens the embedding model of retrieval.embedding_model and the vector index of the project
 * (<output_dir>/vectors.idx); the caller closes both (rl_dense_close, rl_embedder_free). */
rl_status cli_dense_open(const rl_config *cfg, rl_embedder **emb, rl_dense **dense, rl_error *err);

#endif
