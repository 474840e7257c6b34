/* cmd_bench.c - `raftlm bench`: times training steps of a model of a given shape with random
 * weights (LoRA and full fine-tuning), and SGEMM (OpenBLAS's and ours) on the same machine, so
 * that model FLOPs utilisation can be read against what a plain matrix product reaches. docs/benchmarks.md has
 * the commands and results; bench/engine_torch.py runs the same step in PyTorch. */
#include <cblas.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli/cli.h"
#include "train/train.h"

static const char *USAGE = "[--shape smollm2-135m|stories260k | --config config.json|DIR] [--mode lora|full] [--seq T] [--batch B]\n"
                            "       [--pack LEN] [--steps N] [--rank R] [--dropout P] [--threads N] [--ckpt] [--bf16] [--no-sgemm]\n"
                            "   or: raftlm bench ann --help   (vector index recall and speed)\n"
                            "   or: raftlm bench embed --help (sentence-encoder throughput)";

static void shape_config(rl_model_config *c, const char *shape) {
    memset(c, 0, sizeof *c);
    snprintf(c->arch, sizeof c->arch, "llama");
    c->norm_eps = 1e-5f;
    c->rope.theta = 100000.0f;
    c->tie_embeddings = 1;
    c->bos_id = 1, c->eos_id = 2;
    if (strcmp(shape, "stories260k") == 0) {
        c->dim = 64, c->hidden_dim = 172, c->n_layers = 5, c->n_heads = 8, c->n_kv_heads = 4, c->vocab_size = 512;
        c->max_seq_len = 512;
    } else { // SmolLM2-135M
        c->dim = 576, c->hidden_dim = 1536, c->n_layers = 30, c->n_heads = 9, c->n_kv_heads = 3, c->vocab_size = 49152;
        c->max_seq_len = 8192;
    }
    c->head_dim = c->dim / c->n_heads;
}

/* GFLOP/s of an n^3 product x W^T by OpenBLAS (impl RL_GEMM_BLAS, its own threads) or by our
 * kernel on the pool (RL_GEMM_OWN). */
static double sgemm_gflops(int n, rl_gemm_impl impl, rl_pool *pool) {
    float *a = malloc((size_t)n * n * 4), *b = malloc((size_t)n * n * 4), *c = malloc((size_t)n * n * 4);
    for (size_t i = 0; i < (size_t)n * n; i++) a[i] = b[i] = (float)(i % 7) * 0.1f;
    rl_sgemm_impl(impl, 0, 1, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n, pool);
    double t0 = rl_now();
    int reps = 0;
    do {
        rl_sgemm_impl(impl, 0, 1, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n, pool);
        reps++;
    } while (rl_now() - t0 < 1.0);
    double dt = rl_now() - t0;
    free(a), free(b), free(c);
    return 2.0 * n * n * (double)n * reps / dt / 1e9;
}

/* user + system CPU seconds of the process (all threads): under load the steadier measure of
 * work, since wall-clock time depends on what else runs. */
static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

int cmd_bench(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "ann") == 0) return bench_ann(argc - 1, argv + 1); /* bench_ann.c */
    if (argc >= 2 && strcmp(argv[1], "embed") == 0) return bench_embed(argc - 1, argv + 1); /* bench_embed.c */
    static const struct option opts[] = {
        {"shape", required_argument, 0, 's'}, {"mode", required_argument, 0, 'm'}, {"seq", required_argument, 0, 'T'},
        {"steps", required_argument, 0, 'n'}, {"rank", required_argument, 0, 'r'}, {"threads", required_argument, 0, 'j'},
        {"ckpt", no_argument, 0, 'c'},        {"help", no_argument, 0, 'h'},        {"bf16", no_argument, 0, 'b'},
        {"config", required_argument, 0, 'C'}, {"batch", required_argument, 0, 'B'}, {"pack", required_argument, 0, 'p'},
        {"no-sgemm", no_argument, 0, 'S'},    {"dropout", required_argument, 0, 'D'},
        {0, 0, 0, 0},
    };
    const char *shape = "smollm2-135m", *mode = "lora", *config = NULL;
    int T = 512, B = 1, pack = 0, steps = 3, rank = 16, threads = 0, ckpt = 0, bf16 = 0, sgemm = 1, c;
    double dropout = 0.0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's': shape = optarg; break;
        case 'm': mode = optarg; break;
        case 'T': T = atoi(optarg); break;
        case 'n': steps = atoi(optarg); break;
        case 'r': rank = atoi(optarg); break;
        case 'j': threads = atoi(optarg); break;
        case 'c': ckpt = 1; break;
        case 'b': bf16 = 1; break;
        case 'C': config = optarg; break;
        case 'B': B = atoi(optarg); break;
        case 'p': pack = atoi(optarg); break;
        case 'S': sgemm = 0; break; // for profiles of the step alone
        case 'D': dropout = atof(optarg); break;
        case 'h': printf("usage: raftlm bench %s\n", USAGE); return 0;
        default: return cli_usage("bench", USAGE);
        }
    }
    int lora = strcmp(mode, "lora") == 0;
    if (T <= 0 || B <= 0 || pack < 0 || steps <= 0 || rank <= 0 || (!lora && strcmp(mode, "full") != 0))
        return cli_usage("bench", USAGE);
    if (threads <= 0) threads = rl_cpu_count();
    openblas_set_num_threads(rl_gemm_blas_threads(threads));
    rl_error err = {0};
    rl_model_config cfg;
    shape_config(&cfg, shape);
    if (config) { // a model's config.json (or its folder): that shape, random weights
        char path[4096], *json = NULL;
        size_t len = 0;
        snprintf(path, sizeof path, "%s%s", config, rl_path_is_dir(config) ? "/config.json" : "");
        rl_status st = rl_file_read(path, 1 << 20, &json, &len, &err);
        if (!st) st = rl_model_config_from_hf_json(&cfg, json, len, &err);
        free(json);
        if (st) return cli_report(&err);
        shape = config;
    }
    rl_model m;
    if (rl_model_init(&m, &cfg, &err)) return cli_report(&err);
    uint64_t rng = 7;
    for (size_t i = 0; i < m.w.n; i++) { // small random weights; norms at 1
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        m.w.mem[i] = ((float)(rng >> 40) / (float)(1 << 24) - 0.5f) * 0.04f;
    }
    for (size_t i = 0; i < (size_t)cfg.n_layers * cfg.dim; i++) m.w.rms_att[i] = m.w.rms_ffn[i] = 1.0f;
    for (int i = 0; i < cfg.dim; i++) m.w.rms_final[i] = 1.0f;
    rl_pool *pool = rl_pool_create(threads);
    m.pool = pool;
    m.matmul = bf16 ? RL_GEMM_BF16 : RL_GEMM_AUTO;
    rl_lora lo;
    if (lora) {
        if (rl_lora_init(&lo, &cfg, rank, 2.0f * rank, 0, (1u << RL_MOD_COUNT) - 1, 1, 0, &err)) return cli_report(&err);
        for (size_t i = 0; i < lo.n; i++) if (lo.mem[i] == 0.0f) lo.mem[i] = 0.001f; // B nonzero: real work
        lo.dropout = (float)dropout, lo.dropout_active = dropout > 0.0, lo.dropout_seed = 1;
        m.lora = &lo;
    }
    rl_acts a;
    rl_trainer tr;
    if (rl_acts_init_ex(&a, &m, B, T, RL_ACTS_CHUNKED_LOGITS | (ckpt ? RL_ACTS_CHECKPOINT : 0), &err) || rl_trainer_init(&tr, &m, lora, 0.0f, 1.0f, &err)) return cli_report(&err);
    // --pack LEN: rows of samples of LEN tokens (positions restart, attention within a sample), as
    // sample packing lays them out
    size_t NT = (size_t)B * T;
    int *tok = malloc(NT * sizeof *tok), *tgt = malloc(NT * sizeof *tgt), *pos = malloc(NT * sizeof *pos), *seg = malloc(NT * sizeof *seg);
    for (size_t i = 0; i < NT; i++) {
        int t = (int)(i % (size_t)T);
        tok[i] = (int)((i * 7919u + 13u) % (unsigned)cfg.vocab_size), tgt[i] = (int)((i * 104729u + 5u) % (unsigned)cfg.vocab_size);
        pos[i] = pack ? t % pack : t;
        seg[i] = pack ? t / pack : 0;
    }
    double best = 1e30, total = 0, cpu0 = 0;
    float loss = 0;
    for (int s = 0; s <= steps; s++) { // step 0 warms up
        if (s == 1) cpu0 = cpu_seconds();
        double t0 = rl_now();
        if (rl_model_forward(&m, &a, tok, tgt, pos, pack ? seg : NULL, B, T, &loss, &err)) return cli_report(&err);
        rl_trainer_zero_grad(&tr);
        rl_trainer_backward(&tr, &a, 1.0f / (float)a.n_valid);
        rl_trainer_step(&tr, 1e-4f);
        double dt = rl_now() - t0;
        if (s > 0) {
            total += dt;
            best = dt < best ? dt : best;
        }
    }
    // model FLOPs per token: matmuls 2*P forward; backward 2*P (inputs) + 2*P (weights, full only);
    // attention 4*T*QD*L forward (causal: half of it), twice that backward
    double P = 0;
    for (int mod = 0; mod < RL_MOD_COUNT; mod++) {
        int in, out;
        rl_lora_shapes(&cfg, mod, &in, &out);
        P += (double)in * out * cfg.n_layers;
    }
    P += (double)cfg.vocab_size * cfg.dim;
    double attn = 2.0 * (pack && pack < T ? pack : T) * cfg.n_heads * cfg.head_dim * cfg.n_layers; // per token, causal
    double flops_tok = (lora ? 4.0 : 6.0) * P + 3.0 * attn;
    double mean = total / steps, tps = (double)NT / mean, cpu = (cpu_seconds() - cpu0) / steps;
    openblas_set_num_threads(threads);
    double gf = sgemm ? sgemm_gflops(1024, RL_GEMM_BLAS, NULL) : NAN, gown = sgemm ? sgemm_gflops(1024, RL_GEMM_OWN, pool) : NAN;
    char pack_note[64] = "";
    if (pack) snprintf(pack_note, sizeof pack_note, " (packed samples of %d)", pack);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("shape %s, mode %s (rank %d), B=%d, T=%d%s, threads %d%s%s\n", shape, mode, lora ? rank : 0, B, T,
           pack_note, threads,
           ckpt ? ", gradient checkpointing" : "", bf16 ? (rl_gemm_has_bf16() ? ", bf16" : ", bf16 asked (no avx512_bf16: float32)") : "");
    printf("step: mean %.3f s, best %.3f s -> %.0f tokens/s (loss %.4f); CPU %.3f s per step\n", mean, best, tps, loss, cpu);
    printf("model FLOPs/token %.3g -> %.1f GFLOP/s; SGEMM 1024^3: OpenBLAS %.1f, ours %.1f GFLOP/s; MFU vs OpenBLAS SGEMM "
           "%.0f%%, vs ours %.0f%%\n", flops_tok, flops_tok * tps / 1e9, gf, gown, 100.0 * flops_tok * tps / 1e9 / gf,
           100.0 * flops_tok * tps / 1e9 / gown);
    printf("peak RSS %.0f MB\n", ru.ru_maxrss / 1024.0);
    free(tok), free(tgt), free(pos), free(seg);
    rl_trainer_free(&tr);
    rl_acts_free(&a);
    if (lora) rl_lora_free(&lo);
    rl_model_free(&m);
    rl_pool_free(pool);
    return 0;
}
