/* decode_bench.c - decoding speed of rl_infer (make bench-decode; docs/benchmarks.md).
 *
 *   decode-bench [MODEL] [THREADS...]
 *
 * Without MODEL, a SmolLM2-135M-shaped model (C 576, F 1536, L 30, 9 heads, 3 KV heads,
 * V 49152, tied embeddings) with random weights: speed does not depend on the values. For each
 * thread count: float32 (rl_model_decode, OpenBLAS sgemv with that many threads), Q8_0 and Q4_0
 * (rl_qmodel, the AVX2 kernel over a pool of that many threads); a 128-token prompt in batches of
 * 32 (prompt tokens/s; float32 through sgemm), then 128 generated tokens (decode tokens/s), best of 3. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/infer.h"

static void fill(float *p, size_t n, float scale, uint64_t *s) {
    for (size_t i = 0; i < n; i++) {
        *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
        p[i] = ((float)((*s >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f) * scale;
    }
}

static void run(rl_model *m, const rl_qmodel *q, int threads, const char *label) {
    rl_infer_opts o = {.n_ctx = 512, .q = q, .n_threads = threads, .batch_prompt = 1};
    rl_infer *inf;
    rl_error err = {0};
    if (rl_infer_new_ex(&inf, m, NULL, &o, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    openblas_set_num_threads(threads);
    int32_t prompt[128];
    double best_p = 0, best_g = 0;
    for (int rep = 0; rep < 3; rep++) {
        for (int i = 0; i < 128; i++) prompt[i] = (i * 7919 + rep * 104729) % m->cfg.vocab_size;
        rl_gen_params p = {.sampling = rl_sampler_defaults(), .max_tokens = 128, .ignore_eos = 1};
        p.sampling.temperature = 0;
        rl_gen_result r;
        if (rl_infer_generate(inf, prompt, 128, &p, NULL, NULL, &r, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            exit(1);
        }
        double pp = (r.n_prompt - r.n_cached) / r.t_prompt, tg = r.n_gen / r.t_gen;
        if (pp > best_p) best_p = pp;
        if (tg > best_g) best_g = tg;
        rl_gen_result_free(&r);
    }
    printf("| %-7s | %d | %8.1f | %8.1f |\n", label, threads, best_p, best_g);
    fflush(stdout);
    rl_infer_free(inf);
}

int main(int argc, char **argv) {
    rl_log_set_level(RL_LOG_WARN);
    rl_model m;
    rl_error err = {0};
    int first_thread_arg = 1;
    if (argc > 1 && rl_path_exists(argv[1])) {
        if (rl_model_load(&m, argv[1], &err)) return fprintf(stderr, "%s\n", err.msg), 1;
        first_thread_arg = 2;
    } else {
        rl_model_config c = {.arch = "llama", .dim = 576, .hidden_dim = 1536, .n_layers = 30, .n_heads = 9,
                             .n_kv_heads = 3, .head_dim = 64, .vocab_size = 49152, .max_seq_len = 2048,
                             .norm_eps = 1e-5f, .tie_embeddings = 1, .bos_id = 1, .eos_id = 2};
        c.rope.theta = 100000.0f;
        if (rl_model_init(&m, &c, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
        uint64_t s = 42;
        fill(m.w.mem, m.w.n, 0.05f, &s);
        for (int l = 0; l < c.n_layers; l++)
            for (int i = 0; i < c.dim; i++) m.w.rms_att[l * c.dim + i] = m.w.rms_ffn[l * c.dim + i] = 1.0f;
        for (int i = 0; i < c.dim; i++) m.w.rms_final[i] = 1.0f;
    }
    rl_qmodel *q, *q4;
    if (rl_qmodel_new(&q, &m, RL_WTYPE_Q8_0, &err) || rl_qmodel_new(&q4, &m, RL_WTYPE_Q4_0, &err))
        return fprintf(stderr, "%s\n", err.msg), 1;
    printf("model: C %d, F %d, L %d, NH %d, NKV %d, V %d; matrices %.0f MB float32, %.0f MB Q8_0, %.0f MB Q4_0 (kernel %s)\n\n",
           m.cfg.dim, m.cfg.hidden_dim, m.cfg.n_layers, m.cfg.n_heads, m.cfg.n_kv_heads, m.cfg.vocab_size,
           m.w.n * 4.0 / 1e6, rl_qmodel_bytes(q) / 1e6, rl_qmodel_bytes(q4) / 1e6, rl_qmodel_kernel(q));
    printf("| weights | threads | prompt tokens/s | decode tokens/s |\n|---|---|---|---|\n");
    int counts[8] = {1, 2}, nc = 2;
    if (argc > first_thread_arg) {
        nc = 0;
        for (int i = first_thread_arg; i < argc && nc < 8; i++) counts[nc++] = atoi(argv[i]);
    }
    for (int i = 0; i < nc; i++) {
        run(&m, NULL, counts[i], "float32");
        run(&m, q, counts[i], "Q8_0");
        run(&m, q4, counts[i], "Q4_0");
    }
    rl_qmodel_free(q);
    rl_qmodel_free(q4);
    rl_model_free(&m);
    return 0;
}
