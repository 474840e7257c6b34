/* decode_bench.c - decoding and prompt speed of rl_infer (make bench-decode; docs/benchmarks.md).
 *
 *   decode-bench [THREADS...]                      random SmolLM2-135M-shaped model, every type
 *   decode-bench --write OUT.gguf TYPE [TOKENIZER]  write that model as a GGUF file (for llama.cpp)
 *   decode-bench MODEL TYPE [THREADS...]           a model file, one type
 *
 * The model: C 576, F 1536, L 30, 9 heads, 3 KV heads, tied embeddings, V 49152, or with a
 * TOKENIZER (a tokenizer.json or llama2.c tokenizer.bin) that tokenizer's vocabulary, written
 * into the GGUF file so that llama.cpp loads it. Weights are random (speed does not depend on
 * the values). TYPE: f32, q8_0, q4_0, q4_k, q6_k; "f32-blas" is float32 through
 * rl_model_decode (OpenBLAS sgemv) instead of rl_qmodel's threaded kernels.
 *
 * What is timed, as llama-bench does (-p 128 -n 128): prompt processing of 128 tokens into an
 * empty cache (one batch of 128), and 128 single-token decodes at positions 0..127; one warm-up
 * run, then the best of 5 (DECODE_BENCH_REPS). */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "infer/infer.h"

static void fill(float *p, size_t n, float scale, uint64_t *s) {
    for (size_t i = 0; i < n; i++) {
        *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
        p[i] = ((float)((*s >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f) * scale;
    }
}

static void die(const rl_error *err) {
    fprintf(stderr, "decode-bench: %s\n", err->msg);
    exit(1);
}

static void random_model(rl_model *m, int vocab) {
    rl_error err = {0};
    rl_model_config c = {.arch = "llama", .dim = 576, .hidden_dim = 1536, .n_layers = 30, .n_heads = 9,
                         .n_kv_heads = 3, .head_dim = 64, .vocab_size = vocab, .max_seq_len = 2048,
                         .norm_eps = 1e-5f, .tie_embeddings = 1, .bos_id = 1, .eos_id = 2};
    c.rope.theta = 100000.0f;
    if (rl_model_init(m, &c, &err)) die(&err);
    uint64_t s = 42;
    fill(m->w.mem, m->w.n, 0.05f, &s);
    for (int l = 0; l < c.n_layers; l++)
        for (int i = 0; i < c.dim; i++) m->w.rms_att[l * c.dim + i] = m->w.rms_ffn[l * c.dim + i] = 1.0f;
    for (int i = 0; i < c.dim; i++) m->w.rms_final[i] = 1.0f;
}

static int type_of(const char *name) {
    static const struct { const char *name; int type; } t[] = {
        {"f32", RL_WTYPE_F32}, {"q8_0", RL_WTYPE_Q8_0}, {"q4_0", RL_WTYPE_Q4_0}, {"q4_k", RL_WTYPE_Q4_K},
        {"q6_k", RL_WTYPE_Q6_K}, {"f32-blas", -2}};
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        if (!strcmp(name, t[i].name)) return t[i].type;
    fprintf(stderr, "decode-bench: unknown type '%s' (f32, f32-blas, q8_0, q4_0, q4_k, q6_k)\n", name);
    exit(2);
}

static void run(rl_model *m, const char *tname, int threads) {
    int type = type_of(tname);
    rl_error err = {0};
    rl_qmodel *q = NULL;
    if (type != -2 && rl_qmodel_new(&q, m, (rl_wtype)type, &err)) die(&err);
    rl_infer_opts o = {.n_ctx = 512, .q = q, .n_threads = threads, .batch_prompt = 1};
    rl_infer *inf;
    if (rl_infer_new_ex(&inf, m, NULL, &o, &err)) die(&err);
    openblas_set_num_threads(threads);
    int32_t prompt[128];
    double best_p = 0, best_g = 0;
    const char *re = getenv("DECODE_BENCH_REPS");
    int reps = re && atoi(re) > 0 ? atoi(re) : 5;
    for (int rep = -1; rep < reps; rep++) { // rep -1 warms up (page faults, caches), as llama-bench does
        for (int i = 0; i < 128; i++) prompt[i] = (i * 7919 + (rep + 1) * 104729) % m->cfg.vocab_size;
        rl_infer_reset(inf);
        rl_gen_params p = {.sampling = rl_sampler_defaults(), .max_tokens = 1, .ignore_eos = 1};
        p.sampling.temperature = 0;
        rl_gen_result r;
        if (rl_infer_generate(inf, prompt, 128, &p, NULL, NULL, &r, &err)) die(&err);
        double pp = 128 / r.t_prompt;
        rl_gen_result_free(&r);
        rl_infer_reset(inf);
        double t0 = rl_now();
        float *logits;
        for (int i = 0; i < 128; i++)
            if (rl_infer_decode(inf, prompt[i], i, &logits, &err)) die(&err);
        double tg = 128 / (rl_now() - t0);
        if (rep < 0) continue;
        best_p = pp > best_p ? pp : best_p;
        best_g = tg > best_g ? tg : best_g;
    }
    printf("| %-8s | %7.1f | %d | %8.1f | %8.1f |\n", tname, q ? rl_qmodel_bytes(q) / 1e6 : m->w.n * 4.0 / 1e6, threads, best_p,
           best_g);
    fflush(stdout);
    rl_infer_free(inf);
    rl_qmodel_free(q);
}

int main(int argc, char **argv) {
    rl_log_set_level(RL_LOG_WARN);
    rl_model m;
    rl_error err = {0};
    if (argc >= 4 && !strcmp(argv[1], "--write")) {
        int gt = type_of(argv[3]);
        if (gt < 0) return fprintf(stderr, "decode-bench: --write needs a GGUF type\n"), 2;
        cli_vocab vb = {0};
        int vocab = 49152;
        if (argc > 4) { // the tokenizer decides the vocabulary size
            rl_tokenizer *tok;
            if (rl_tok_load(&tok, argv[4], &err)) die(&err);
            vocab = rl_tok_vocab_size(tok);
            rl_tok_free(tok);
            if (cli_vocab_load(&vb, argv[4], vocab, &err)) die(&err);
        }
        random_model(&m, vocab);
        if (rl_model_save_gguf(&m, argv[2], gt, argc > 4 ? &vb.v : NULL, &err)) die(&err);
        printf("wrote %s: SmolLM2-135M shape, V %d, %s\n", argv[2], vocab, argv[3]);
        if (argc > 4) cli_vocab_free(&vb);
        rl_model_free(&m);
        return 0;
    }
    const char *types[8] = {"f32-blas", "f32", "q8_0", "q4_0", "q4_k", "q6_k"};
    int nt = 6, first = 1;
    if (argc >= 3 && rl_path_exists(argv[1])) {
        if (rl_model_load(&m, argv[1], &err)) die(&err);
        types[0] = argv[2], nt = 1, first = 3;
    } else {
        random_model(&m, 49152);
    }
    printf("model: C %d, F %d, L %d, NH %d, NKV %d, V %d\n\n", m.cfg.dim, m.cfg.hidden_dim, m.cfg.n_layers, m.cfg.n_heads,
           m.cfg.n_kv_heads, m.cfg.vocab_size);
    printf("| weights | MB | threads | pp128 tokens/s | tg128 tokens/s |\n|---|---:|---:|---:|---:|\n");
    int counts[8] = {1, 2}, nc = 2;
    if (argc > first) {
        nc = 0;
        for (int i = first; i < argc && nc < 8; i++) counts[nc++] = atoi(argv[i]);
    }
    for (int i = 0; i < nc; i++)
        for (int k = 0; k < nt; k++) run(&m, types[k], counts[i]);
    rl_model_free(&m);
    return 0;
}
