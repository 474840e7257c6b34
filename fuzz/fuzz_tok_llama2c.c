/* fuzz_tok_llama2c.c - libFuzzer target: llama2.c tokenizer.bin parsing and encoding. The first
 * byte chooses how much of the input is the vocabulary; the rest is text to encode. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 5 || data[0] == '{' || (size >= 4 && memcmp(data, "GGUF", 4) == 0)) return 0;
    size_t split = size - (data[size - 1] % 32 < size ? data[size - 1] % 32 : 0);
    rl_tokenizer *tok = NULL;
    rl_error err;
    if (rl_tok_load_memory(&tok, data, split, &err) != RL_OK) return 0;
    int32_t *ids;
    size_t n;
    if (rl_tok_encode(tok, (const char *)data + split, size - split, 1, &ids, &n, &err) == RL_OK) {
        char *out;
        size_t len;
        if (rl_tok_decode(tok, ids, n, 0, &out, &len, &err) == RL_OK) free(out);
        free(ids);
    }
    rl_tok_free(tok);
    return 0;
}
