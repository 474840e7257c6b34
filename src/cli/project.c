/* project.c - locating a project (config file or bare store folder) for the verbs. */
#include "cli/project.h"

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

rl_status cli_chunk_opts(const rl_config *cfg, rl_chunk_opts *opts, rl_error *err) {
    memset(opts, 0, sizeof *opts);
    opts->size = cfg->chunking.size;
    opts->overlap = cfg->chunking.overlap;
    if (cfg->chunking.tokenizer)
        return rl_fail(err, RL_EUNSUPPORTED,
                       "%s: chunking.tokenizer: token counting with a model tokenizer is not in this build yet; "
                       "remove the key to use the word-based estimate",
                       cfg->file);
    return RL_OK;
}
