/* tokenizer_bench.c - encode throughput (MB/s) of each tokenizer on the same text.
 *
 *   build/tokenizer-bench [--mb N] [--write-text FILE] NAME=PATH ...
 *
 * The text is made deterministically (fixed seed) from the strings of
 * tests/fixtures/tokenizer/corpus.jsonl joined by spaces and newlines: English, code, numbers,
 * CJK, Arabic, emoji, long words. The whole text is encoded in one call, as `raftlm tokenize`
 * would; load time is reported apart. --write-text saves the text so that
 * bench/tokenizer_bench.mjs can time @huggingface/tokenizers on exactly the same bytes. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t next_u32(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

int main(int argc, char **argv) {
    double mb = 10;
    const char *write_text = NULL, *corpus_path = "tests/fixtures/tokenizer/corpus.jsonl";
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--mb") == 0 && i + 1 < argc) mb = atof(argv[++i]);
        else if (strcmp(argv[i], "--write-text") == 0 && i + 1 < argc) write_text = argv[++i];
        else if (strcmp(argv[i], "--corpus") == 0 && i + 1 < argc) corpus_path = argv[++i];
        else {
            fprintf(stderr, "usage: tokenizer-bench [--mb N] [--write-text FILE] [--corpus FILE] NAME=PATH...\n");
            return 2;
        }
    }
    /* corpus strings */
    FILE *f = fopen(corpus_path, "r");
    if (!f) {
        fprintf(stderr, "tokenizer-bench: cannot open %s\n", corpus_path);
        return 1;
    }
    char **s = NULL;
    size_t *sl = NULL, ns = 0;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_error_t je;
        json_t *v = json_loads(line, JSON_DECODE_ANY, &je);
        if (json_is_string(v) && json_string_length(v) > 0) {
            s = rl_xrealloc(s, (ns + 1) * sizeof *s);
            sl = rl_xrealloc(sl, (ns + 1) * sizeof *sl);
            sl[ns] = json_string_length(v);
            s[ns] = rl_xstrndup(json_string_value(v), sl[ns]);
            ns++;
        }
        json_decref(v);
    }
    free(line);
    fclose(f);
    rl_buf text = {0};
    size_t target = (size_t)(mb * 1024 * 1024);
    while (text.len < target) {
        size_t k = next_u32() % ns;
        if (sl[k] > 400 && next_u32() % 8) continue; /* long strings rarer */
        rl_buf_append(&text, s[k], sl[k]);
        rl_buf_putc(&text, next_u32() % 5 == 0 ? '\n' : ' ');
    }
    if (write_text) {
        rl_error err;
        if (rl_file_write_atomic(write_text, text.data, text.len, &err)) {
            fprintf(stderr, "tokenizer-bench: %s\n", err.msg);
            return 1;
        }
    }
    printf("%-12s %-22s %9s %10s %9s %8s\n", "tokenizer", "kind", "load s", "tokens", "encode s", "MB/s");
    for (; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        const char *name = argv[i], *path = eq ? eq + 1 : argv[i];
        if (eq) *eq = 0;
        rl_tokenizer *tok;
        rl_error err;
        double t0 = rl_now();
        if (rl_tok_load(&tok, path, &err)) {
            printf("%-12s skipped: %s\n", name, err.msg);
            continue;
        }
        double t1 = rl_now();
        int32_t *ids;
        size_t n;
        if (rl_tok_encode(tok, text.data, text.len, 0, &ids, &n, &err)) {
            printf("%-12s encode failed: %s\n", name, err.msg);
            rl_tok_free(tok);
            continue;
        }
        double t2 = rl_now();
        printf("%-12s %-22s %9.2f %10zu %9.2f %8.2f\n", name, rl_tok_kind_name(rl_tok_kind_of(tok)), t1 - t0, n,
               t2 - t1, (double)text.len / (1024.0 * 1024.0) / (t2 - t1));
        fflush(stdout);
        free(ids);
        rl_tok_free(tok);
    }
    rl_buf_free(&text);
    return 0;
}
