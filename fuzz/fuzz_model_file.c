/* fuzz_model_file.c - libFuzzer target for the single-file model loaders (GGUF llama/qwen2 and
 * llama2c checkpoints, chosen by rl_model_load from the magic): any bytes must give RL_OK or an
 * error, never a crash; a model that loads runs two decode steps. Seeds: a small GGUF and a
 * llama2c file, e.g.
 *   build/raftlm convert tests/fixtures/engine/gqa_tied /tmp/seeds/gqa.gguf --to gguf
 *   make fuzz && build-fuzz/fuzz_model_file -max_total_time=60 CORPUS_DIR /tmp/seeds */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz_util.h"

#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/fuzz_model_%d.bin", (int)getpid());
    if (fuzz_write_file(path, data, size)) return 0;
    rl_model m;
    rl_error err;
    if (rl_model_load(&m, path, &err) == RL_OK) {
        rl_kv kv;
        /* decode only models small enough for a fuzzing run */
        if ((size_t)m.cfg.dim * m.cfg.vocab_size < ((size_t)1 << 24) && rl_kv_init(&kv, &m, 2, &err) == RL_OK) {
            float *logits;
            for (int pos = 0; pos < 2; pos++)
                if (rl_model_decode(&m, &kv, pos % m.cfg.vocab_size, pos, &logits, &err) != RL_OK) break;
            rl_kv_free(&kv);
        }
        rl_model_free(&m);
    }
    unlink(path);
    return 0;
}
