/* gemm_bench.c - rl_sgemm's implementations side by side on the training engine's shapes
 * (SmolLM2-135M, T=512, LoRA rank 16; the demo's student): our AVX-512 float32 kernel, OpenBLAS, and the bf16
 * kernel. Each round runs every implementation once per shape, in turn, so that all of them see
 * the same machine load; the best of the rounds is reported as GFLOP/s.
 *
 * With one thread the time is the calling thread's CPU time (steadier on a shared machine: time
 * spent waiting for a core is not counted); with more, wall-clock time.
 *
 *   build/gemm-bench [threads] [rounds] [only shapes whose name contains this]   (make bench-gemm)
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tensor/tensor.h"

typedef struct {
    const char *what;
    int ta, tb, M, N, K;
} shape;

static const shape shapes[] = {
    {"q,o fwd      x W^T", 0, 1, 512, 576, 576},    {"k,v fwd      x W^T", 0, 1, 512, 192, 576},
    {"gate,up fwd  x W^T", 0, 1, 512, 1536, 576},   {"down fwd     x W^T", 0, 1, 512, 576, 1536},
    {"lm_head fwd  x W^T", 0, 1, 256, 49152, 576},  {"q,o dx       dy W", 0, 0, 512, 576, 576},
    {"k,v dx       dy W", 0, 0, 512, 576, 192},     {"gate,up dx   dy W", 0, 0, 512, 576, 1536},
    {"down dx      dy W", 0, 0, 512, 1536, 576},    {"lm_head dx   dy W", 0, 0, 512, 576, 49152},
    {"q,o dW       dy^T x", 1, 0, 576, 576, 512},   {"gate,up dW   dy^T x", 1, 0, 1536, 576, 512},
    {"down dW      dy^T x", 1, 0, 576, 1536, 512},  {"lm_head dW   dy^T x", 1, 0, 49152, 576, 512},
    {"lora x A^T", 0, 1, 512, 16, 576},             {"lora t B^T", 0, 1, 512, 1536, 16},
    {"lora dt B", 0, 0, 512, 16, 1536},             {"lora dA dt^T x", 1, 0, 16, 576, 512},
    {"square 1024", 0, 1, 1024, 1024, 1024},
    // the demo's student (C 128, F 384, V 2048), 4 x 512 tokens
    {"student q fwd x W^T", 0, 1, 2048, 128, 128},  {"student up fwd x W^T", 0, 1, 2048, 384, 128},
    {"student down dx dy W", 0, 0, 2048, 128, 384}, {"student q dW dy^T x", 1, 0, 128, 128, 2048},
    {"student up dW dy^T x", 1, 0, 384, 128, 2048}, {"student lm dW dy^T x", 1, 0, 2048, 128, 2048},
};

static int g_cpu_time;
static double now(void) {
    if (!g_cpu_time) return rl_now();
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2, rounds = argc > 2 ? atoi(argv[2]) : 5;
    const char *only = argc > 3 ? argv[3] : NULL;
    // RAFTLM_GEMM_COLD=1: each call reads another copy of B and writes another C (256 MB of each),
    // from and to memory as in a training step, whose weights and activations are not in cache
    int cold = getenv("RAFTLM_GEMM_COLD") != NULL;
    g_cpu_time = threads == 1;
    openblas_set_num_threads(threads);
    rl_pool *pool = rl_pool_create(threads);
    size_t maxa = 0, maxb = 0, maxc = 0;
    int n_shapes = (int)(sizeof shapes / sizeof shapes[0]);
    for (int s = 0; s < n_shapes; s++) {
        const shape *p = &shapes[s];
        size_t a = (size_t)p->M * p->K, b = (size_t)p->K * p->N, c = (size_t)p->M * p->N;
        maxa = a > maxa ? a : maxa, maxb = b > maxb ? b : maxb, maxc = c > maxc ? c : maxc;
    }
    size_t nb = cold && maxb < ((size_t)64 << 20) ? (size_t)64 << 20 : maxb; // 256 MB
    size_t ncc = cold && maxc < ((size_t)64 << 20) ? (size_t)64 << 20 : maxc; // and C: a fresh activation
    float *A = malloc(maxa * 4), *B = malloc(nb * 4), *C = malloc(ncc * 4);
    for (size_t i = 0; i < maxa; i++) A[i] = (float)(i % 13) * 0.01f;
    for (size_t i = 0; i < nb; i++) B[i] = (float)(i % 7) * 0.01f;
    for (size_t i = 0; i < ncc; i++) C[i] = 0.0f;
    static const rl_gemm_impl impls[] = {RL_GEMM_BLAS, RL_GEMM_OWN, RL_GEMM_BF16, RL_GEMM_AUTO};
    enum { NI = 4 };
    double best[sizeof shapes / sizeof shapes[0]][NI];
    for (int s = 0; s < n_shapes; s++)
        for (int i = 0; i < NI; i++) best[s][i] = 1e30;
    for (int r = 0; r <= rounds; r++) // round 0 warms up
        for (int s = 0; s < n_shapes; s++)
            for (int i = 0; i < NI && (!only || strstr(shapes[s].what, only)); i++) {
                const shape *p = &shapes[s];
                int lda = p->ta ? p->M : p->K, ldb = p->tb ? p->K : p->N;
                double flops = 2.0 * p->M * p->N * p->K, t0 = now(), dt;
                int reps = 0;
                size_t nbs = (size_t)p->K * p->N, at = 0, ncs = (size_t)p->M * p->N, ct = 0;
                do {
                    if (cold) at = at + 2 * nbs <= nb ? at + nbs : 0, ct = ct + 2 * ncs <= ncc ? ct + ncs : 0;
                    rl_sgemm_impl(impls[i], p->ta, p->tb, p->M, p->N, p->K, 1.0f, A, lda, B + at, ldb, 0.0f, C + ct, p->N, pool);
                    reps++;
                    dt = now() - t0;
                } while (dt * 1e9 < 2e8 && reps * flops < 4e9); // ~0.2 s or 4 GFLOP per measurement
                if (r > 0 && dt / reps < best[s][i]) best[s][i] = dt / reps;
            }
    printf("threads %d, best of %d interleaved rounds, B %s, GFLOP/s of %s time (bf16: avx512_bf16 %s)\n", threads, rounds, cold ? "from memory" : "in cache",
           g_cpu_time ? "CPU" : "wall-clock",
           rl_gemm_has_bf16() ? "yes" : "no, ran float32");
    printf("| shape | ta tb | M | N | K | OpenBLAS | own f32 | own/BLAS | own bf16 | bf16/BLAS | auto |\n");
    printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int s = 0; s < n_shapes; s++) {
        const shape *p = &shapes[s];
        if (only && !strstr(p->what, only)) continue;
        double g[NI];
        for (int i = 0; i < NI; i++) g[i] = 2.0 * p->M * p->N * p->K / best[s][i] / 1e9;
        printf("| %s | %c%c | %d | %d | %d | %.1f | %.1f | %.2fx | %.1f | %.2fx | %.1f |\n", p->what,
               p->ta ? 'T' : 'N', p->tb ? 'T' : 'N', p->M, p->N, p->K, g[0], g[1], g[1] / g[0], g[2], g[2] / g[0], g[3]);
    }
    free(A), free(B), free(C);
    rl_pool_free(pool);
    return 0;
}
