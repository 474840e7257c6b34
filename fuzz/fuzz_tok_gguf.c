/* fuzz_tok_gguf.c - libFuzzer target: GGUF vocabulary parsing (input is prefixed with "GGUF"). */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = malloc(size + 4);
    memcpy(buf, "GGUF", 4);
    memcpy(buf + 4, data, size);
    rl_tokenizer *tok = NULL;
    rl_error err;
    if (rl_tok_load_memory(&tok, buf, size + 4, &err) == RL_OK) {
        int32_t *ids;
        size_t n;
        if (rl_tok_encode(tok, "Hello world 123", 15, 1, &ids, &n, &err) == RL_OK) free(ids);
        rl_tok_free(tok);
    }
    free(buf);
    return 0;
}
