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

/* Chunking options from the config (token counting from chunking.tokenizer or the estimate). */
rl_status cli_chunk_opts(const rl_config *cfg, rl_chunk_opts *opts, rl_error *err);

#endif
