/* fuzz_dataset.c - libFuzzer target for the training-data reader: the first byte picks the dataset
 * type (completion, input_output, prompt-completion, alpaca, chat_template, raft, tokenized), the
 * rest is the JSONL file; rl_dataset_load must give examples or an error naming the line, never a
 * crash. The tokenizer is Qwen3's (with its chat template), which `make fuzz` unpacks:
 *   make fuzz && build-fuzz/fuzz_dataset -max_total_time=60 CORPUS_DIR SEED_DIR
 * (seeds: a type byte followed by lines such as examples/acme/out/datasets/raft_train.jsonl). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz_util.h"

#include "tokenizer/tokenizer.h"
#include "train/train.h"

static rl_tokenizer *tok;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rl_error err;
    if (!tok && rl_tok_load(&tok, "build-fuzz/tok/qwen3/tokenizer.json", &err) != RL_OK) {
        fprintf(stderr, "fuzz_dataset: %s (run from the repository root after `make fuzz`)\n", err.msg);
        abort();
    }
    if (size < 1) return 0;
    char path[64];
    snprintf(path, sizeof path, "/tmp/fuzz_ds_%d.jsonl", (int)getpid());
    if (fuzz_write_file(path, data + 1, size - 1)) return 0;
    rl_ds_type type = (rl_ds_type)(data[0] % (RL_DS_TOKENIZED + 1));
    rl_dataset ds = {0};
    rl_dataset_load(&ds, path, type, tok, data[0] & 0x80, 256, 151669, &err);
    rl_dataset_free(&ds);
    unlink(path);
    return 0;
}
