/* fuzz_tok_encode.c - libFuzzer target: encoding arbitrary bytes (invalid UTF-8 included) with a
 * real byte-level BPE, a SentencePiece BPE and a WordPiece vocabulary, then decoding and
 * streaming the ids back. The tokenizers come from $RAFTLM_FUZZ_TOKENIZERS (colon-separated
 * paths), by default the repository's test fixtures unpacked by `make fuzz`. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

static rl_tokenizer *toks[8];
static int n_toks = -1;

static void load_all(void) {
    n_toks = 0;
    const char *env = getenv("RAFTLM_FUZZ_TOKENIZERS");
    char *list = strdup(env ? env
                            : "build-fuzz/tok/qwen3:build-fuzz/tok/mistral:tests/fixtures/tokenizer/wordpiece:"
                              "tests/fixtures/tokenizer/mini-bl:tests/fixtures/tokenizer/mini-spm");
    for (char *p = strtok(list, ":"); p && n_toks < 8; p = strtok(NULL, ":")) {
        rl_error err;
        if (rl_tok_load(&toks[n_toks], p, &err) == RL_OK) n_toks++;
    }
    free(list);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (n_toks < 0) load_all();
    for (int k = 0; k < n_toks; k++) {
        int32_t *ids;
        size_t n;
        rl_error err;
        if (rl_tok_encode(toks[k], (const char *)data, size, 1, &ids, &n, &err) != RL_OK) continue;
        char *out;
        size_t len;
        if (rl_tok_decode(toks[k], ids, n, 0, &out, &len, &err) == RL_OK) free(out);
        rl_tok_stream *st = rl_tok_stream_new(toks[k], 1);
        rl_buf b = {0};
        for (size_t i = 0; i < n; i++) rl_tok_stream_push(st, ids[i], &b, &err);
        rl_tok_stream_flush(st, &b);
        if (!rl_utf8_valid(b.data ? b.data : "", b.len)) __builtin_trap();
        rl_buf_free(&b);
        rl_tok_stream_free(st);
        free(ids);
    }
    return 0;
}
