/* fuzz_tok_json.c - libFuzzer target: tokenizer.json parsing (and, when it loads, an encode and
 * a decode of a fixed text). Seeds: tests/fixtures/tokenizer/wordpiece/tokenizer.json. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0 || data[0] != '{') return 0; /* keep to the JSON loader */
    rl_tokenizer *tok = NULL;
    rl_error err;
    if (rl_tok_load_memory(&tok, data, size, &err) != RL_OK) return 0;
    /* a short text and a long one (long pieces make the arenas grow while in use) */
    rl_buf text = {0};
    rl_buf_puts(&text, "Hello wörld, 12345 <s> 😀\n\tend");
    for (int i = 0; i < 2; i++) {
        int32_t *ids;
        size_t n;
        if (rl_tok_encode(tok, text.data, text.len, 1, &ids, &n, &err) == RL_OK) {
            char *out;
            size_t len;
            if (rl_tok_decode(tok, ids, n, 0, &out, &len, &err) == RL_OK) free(out);
            free(ids);
        }
        for (int k = 0; k < 300; k++) rl_buf_puts(&text, k % 7 ? "x" : " é1 ");
    }
    rl_buf_free(&text);
    rl_tok_free(tok);
    return 0;
}
