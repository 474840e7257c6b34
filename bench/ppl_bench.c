/* ppl_bench.c - perplexity of a model on a text, computed the way llama.cpp's llama-perplexity
 * does, so the two can be compared on the same GGUF file (docs/benchmarks.md).
 *
 *   ppl-bench MODEL TYPE TOKENIZER TEXT CTX
 *
 * TYPE: f32 (the model's float32 weights through rl_model_decode, as `raftlm generate`), or
 * q8_0, q4_0, q4_k, q6_k (rl_qmodel: weights quantized from the model's, activations to Q8_0 /
 * Q8_K on the fly, as `raftlm serve --quant` decodes). The text is encoded with BOS in front;
 * it is cut into chunks of CTX tokens, each chunk's first token replaced by BOS and decoded
 * from an empty cache; the second half of each chunk is scored (the NLL of token j+1 from the
 * logits at j, for j = CTX/2 .. CTX-2). Prints the perplexity exp(mean NLL) and the count, and
 * on stderr the running value after each chunk ("[k]ppl,"), as llama-perplexity does. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/infer.h"

static void die(const rl_error *err) {
    fprintf(stderr, "ppl-bench: %s\n", err->msg);
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 6) return fprintf(stderr, "usage: ppl-bench MODEL f32|q8_0|q4_0|q4_k|q6_k TOKENIZER TEXT CTX\n"), 2;
    rl_log_set_level(RL_LOG_WARN);
    rl_error err = {0};
    rl_model m;
    rl_tokenizer *tok;
    if (rl_model_load(&m, argv[1], &err) || rl_tok_load(&tok, argv[3], &err)) die(&err);
    static const struct { const char *name; int type; } types[] = {
        {"f32", -1}, {"q8_0", RL_WTYPE_Q8_0}, {"q4_0", RL_WTYPE_Q4_0}, {"q4_k", RL_WTYPE_Q4_K}, {"q6_k", RL_WTYPE_Q6_K}};
    int type = -2;
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (!strcmp(argv[2], types[i].name)) type = types[i].type;
    if (type == -2) return fprintf(stderr, "ppl-bench: unknown type %s\n", argv[2]), 2;
    rl_qmodel *q = NULL;
    if (type >= 0 && rl_qmodel_new(&q, &m, (rl_wtype)type, &err)) die(&err);
    int ctx = atoi(argv[5]);
    char *text;
    size_t len;
    if (ctx < 4 || rl_file_read(argv[4], 64u << 20, &text, &len, &err)) return ctx < 4 ? 2 : (die(&err), 1);
    rl_infer_opts o = {.n_ctx = ctx, .q = q, .batch_prompt = -1};
    rl_infer *inf;
    if (rl_infer_new_ex(&inf, &m, tok, &o, &err)) die(&err);
    int32_t *ids;
    size_t n;
    if (rl_infer_tokenize(inf, text, len, 1, &ids, &n, &err)) die(&err);
    int bos = rl_tok_bos(tok) >= 0 ? rl_tok_bos(tok) : m.cfg.bos_id;
    size_t chunks = n / (size_t)ctx;
    if (chunks < 2) return fprintf(stderr, "ppl-bench: %zu tokens: fewer than 2 chunks of %d\n", n, ctx), 1;
    double nll = 0;
    long count = 0;
    int V = m.cfg.vocab_size, first = ctx / 2;
    for (size_t c = 0; c < chunks; c++) {
        const int32_t *t = ids + c * (size_t)ctx;
        for (int j = 0; j < ctx - 1; j++) {
            float *logits;
            if (rl_infer_decode(inf, j == 0 && bos >= 0 ? bos : t[j], j, &logits, &err)) die(&err);
            if (j < first) continue;
            double mx = logits[0], z = 0;
            for (int i = 1; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
            for (int i = 0; i < V; i++) z += exp(logits[i] - mx);
            nll += -(logits[t[j + 1]] - mx - log(z));
            count++;
        }
        fprintf(stderr, "[%zu]%.4f,", c + 1, exp(nll / count)); // running values, as llama-perplexity prints them
    }
    fprintf(stderr, "\n");
    printf("%s %s: %zu tokens, %zu chunks of %d, %ld scored: PPL %.4f\n", argv[1], argv[2], n, chunks, ctx, count, exp(nll / count));
    free(ids);
    free(text);
    rl_infer_free(inf);
    rl_qmodel_free(q);
    rl_tok_free(tok);
    rl_model_free(&m);
    return 0;
}
