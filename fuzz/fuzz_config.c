/* fuzz_config.c - libFuzzer target for raftlm.yaml: any bytes as a config file must load or give
 * RL_ECONFIG-style errors with a line number, never a crash; a config that loads is also written
 * back as JSON (the report's copy). Seeds: examples/acme/raftlm.yaml and `raftlm init`'s template:
 *   make fuzz && build-fuzz/fuzz_config -max_total_time=60 CORPUS_DIR SEED_DIR */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz_util.h"

#include "cli/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/fuzz_cfg_%d.yaml", (int)getpid());
    if (fuzz_write_file(path, data, size)) return 0;
    rl_config cfg;
    rl_error err;
    if (rl_config_load(&cfg, path, &err) == RL_OK) {
        free(rl_config_to_json(&cfg));
        rl_config_free(&cfg);
    }
    unlink(path);
    return 0;
}
