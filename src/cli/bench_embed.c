/* bench_embed.c - `raftlm bench embed`: sentence-encoder throughput, the encoder forward of a
 * BERT-family model over padded batches of random token ids (no tokenizer, no pooling cost), so
 * that bench/bert_torch.py can time the same shapes in PyTorch side by side. */
#include <cblas.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "model/model.h"

static const char *USAGE = "embed --model DIR|FILE.gguf [--batch B] [--seq T] [--batches N] [--threads N] [--repeat R]\n"
                           "Times the encoder forward over N batches of B x T random token ids; prints texts/s (best of R).\n";

int bench_embed(int argc, char **argv) {
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},   {"batch", required_argument, 0, 'b'},
                                         {"seq", required_argument, 0, 'T'},     {"batches", required_argument, 0, 'n'},
                                         {"threads", required_argument, 0, 'j'}, {"repeat", required_argument, 0, 'r'},
                                         {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    const char *model = NULL;
    int B = 32, T = 128, nb = 4, threads = 2, repeat = 3, c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'b': B = atoi(optarg); break;
        case 'T': T = atoi(optarg); break;
        case 'n': nb = atoi(optarg); break;
        case 'j': threads = atoi(optarg); break;
        case 'r': repeat = atoi(optarg); break;
        case 'h': printf("usage: raftlm bench %s", USAGE); return 0;
        default: return cli_usage("bench", USAGE);
        }
    }
    if (!model || B < 1 || B > 4096 || T < 2 || nb < 1 || threads < 1 || repeat < 1) return cli_usage("bench", USAGE);
    rl_error err = {0};
    rl_bert m;
    if (rl_bert_load(&m, model, &err)) return cli_report(&err);
    if (T > m.cfg.max_pos) T = m.cfg.max_pos;
    openblas_set_num_threads(threads);
    rl_pool *pool = rl_pool_create(threads);
    m.pool = pool;
    int *tokens = malloc(sizeof(int) * (size_t)B * T), *lens = malloc(sizeof(int) * (size_t)B);
    uint64_t x = 42;
    for (size_t i = 0; i < (size_t)B * T; i++) x = x * 6364136223846793005ull + 1442695040888963407ull, tokens[i] = (int)((x >> 33) % (uint64_t)m.cfg.vocab_size);
    for (int b = 0; b < B; b++) lens[b] = T;
    float *h = malloc(sizeof(float) * (size_t)B * T * m.cfg.dim);
    double best = 1e300;
    rl_status s = rl_bert_forward(&m, h, tokens, NULL, lens, B, T, &err); /* warm-up */
    for (int r = 0; r < repeat && !s; r++) {
        double t0 = rl_now();
        for (int i = 0; i < nb && !s; i++) s = rl_bert_forward(&m, h, tokens, NULL, lens, B, T, &err);
        double dt = rl_now() - t0;
        if (dt < best) best = dt;
    }
    if (!s)
        printf("raftlm encoder: hidden %d, layers %d, heads %d, ffn %d; %d batches of %d x %d on %d threads: %.1f texts/s (%.3f s per batch)\n",
               m.cfg.dim, m.cfg.n_layers, m.cfg.n_heads, m.cfg.hidden_dim, nb, B, T, threads, (double)nb * B / best, best / nb);
    free(tokens), free(lens), free(h);
    rl_pool_free(pool);
    rl_bert_free(&m);
    return s ? cli_report(&err) : 0;
}
