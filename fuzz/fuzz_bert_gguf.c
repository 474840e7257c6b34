/* fuzz_bert_gguf.c - libFuzzer target for the BERT encoder's GGUF loader: any bytes written to a
 * file and given to rl_bert_load must give RL_OK or an error, never a crash; an encoder that
 * loads runs a small padded batch and pools it. Seed: tests/fixtures/bert/minilm_mean/model.gguf.
 *   make fuzz && build-fuzz/fuzz_bert_gguf -max_total_time=60 CORPUS_DIR tests/fixtures/bert/minilm_mean */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz_util.h"

#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/fuzz_bert_%d.gguf", (int)getpid());
    if (fuzz_write_file(path, data, size)) return 0;
    rl_bert m;
    rl_error err;
    if (rl_bert_load(&m, path, &err) == RL_OK) {
        int T = m.cfg.max_pos < 4 ? m.cfg.max_pos : 4, B = 2, lens[2] = {T, T > 1 ? T - 1 : 1};
        int tokens[8] = {0};
        for (int i = 0; i < B * T; i++) tokens[i] = i % m.cfg.vocab_size;
        if ((size_t)m.cfg.dim * B * T < ((size_t)1 << 24)) {
            float *h = malloc(sizeof(float) * (size_t)m.cfg.dim * B * T), *p = malloc(sizeof(float) * (size_t)m.cfg.dim * B);
            if (h && p && rl_bert_forward(&m, h, tokens, NULL, lens, B, T, &err) == RL_OK) rl_bert_pool(&m, p, h, lens, B, T);
            free(h);
            free(p);
        }
        rl_bert_free(&m);
    }
    unlink(path);
    return 0;
}
