/* fuzz_hf_folder.c - libFuzzer target for HF model folders and PEFT adapters: the input is split
 * into config.json and model.safetensors (a 2-byte little-endian length, then that many bytes of
 * JSON, then the safetensors file); any split must load or be an error, never a crash. A model that
 * loads runs a decode step, and the fixture's PEFT adapter (FUZZ_PEFT_DIR, if set) is read against
 * it. Seed with tests/fixtures/engine/gqa_tied packed as above, e.g.
 *   python3 -c 'import sys,struct;c=open(sys.argv[1],"rb").read();s=open(sys.argv[2],"rb").read();\
 *     sys.stdout.buffer.write(struct.pack("<H",len(c))+c+s)' config.json model.safetensors > seed
 *   make fuzz && build-fuzz/fuzz_hf_folder -max_total_time=60 CORPUS_DIR SEED_DIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_util.h"

#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    size_t n_cfg = (size_t)data[0] | (size_t)data[1] << 8;
    if (n_cfg > size - 2) n_cfg = size - 2;
    char dir[64], cfg_path[96], st_path[96];
    snprintf(dir, sizeof dir, "/tmp/fuzz_hf_%d", (int)getpid());
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", dir);
    mkdir(dir, 0700);
    if (fuzz_write_file(cfg_path, data + 2, n_cfg) == 0 && fuzz_write_file(st_path, data + 2 + n_cfg, size - 2 - n_cfg) == 0) {
        rl_model m;
        rl_error err;
        if (rl_model_load_hf(&m, dir, &err) == RL_OK) {
            rl_kv kv;
            if ((size_t)m.cfg.dim * m.cfg.vocab_size < ((size_t)1 << 24) && rl_kv_init(&kv, &m, 1, &err) == RL_OK) {
                float *logits;
                rl_model_decode(&m, &kv, 0, 0, &logits, &err);
                rl_kv_free(&kv);
            }
            const char *peft = getenv("FUZZ_PEFT_DIR");
            rl_lora lo;
            if (peft && rl_lora_load_peft(&lo, &m.cfg, peft, &err) == RL_OK) rl_lora_free(&lo);
            rl_model_free(&m);
        }
    }
    unlink(cfg_path);
    unlink(st_path);
    rmdir(dir);
    return 0;
}
