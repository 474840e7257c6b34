/* test_gemm.c - rl_sgemm's implementations against a double-precision reference: all four
 * transposition cases, edge sizes that leave partial panels, padded leading dimensions, alpha and
 * beta (beta 0 must not read C), with and without a pool; the bf16 kernel against the same
 * product of bf16-rounded inputs. */
#include "test.h"

#include <math.h>

#include "tensor/tensor.h"

static uint64_t rng_state = 12345;
static float frand(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static float round_bf16(float x) { return rl_bf16_to_f32(rl_f32_to_bf16(x)); }

/* max |c - ref| / max |ref| of C (M,N) against the double product of (rounded) inputs. */
static double check_one(rl_gemm_impl impl, int ta, int tb, int M, int N, int K, float alpha, float beta, rl_pool *pool,
                        int round_inputs) {
    int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
    size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb, nc = (size_t)M * ldc;
    float *A = malloc(na * sizeof(float)), *B = malloc(nb * sizeof(float)), *C = malloc(nc * sizeof(float));
    double *ref = malloc((size_t)M * N * sizeof(double));
    for (size_t i = 0; i < na; i++) A[i] = frand();
    for (size_t i = 0; i < nb; i++) B[i] = frand();
    for (size_t i = 0; i < nc; i++) C[i] = beta == 0.0f ? NAN : frand(); // beta 0: C must not be read
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                float a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                float b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                if (round_inputs) a = round_bf16(alpha * a), b = round_bf16(b); // bf16: alpha scales A first
                s += (double)a * b;
            }
            if (!round_inputs) s *= alpha;
            ref[(size_t)i * N + j] = s + (beta == 0.0f ? 0.0 : (double)beta * C[(size_t)i * ldc + j]);
        }
    rl_sgemm_impl(impl, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, pool);
    double md = 0, mr = 0;
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double d = fabs(C[(size_t)i * ldc + j] - ref[(size_t)i * N + j]);
            md = isnan(d) || d > md ? (isnan(d) ? INFINITY : d) : md;
            mr = fmax(mr, fabs(ref[(size_t)i * N + j]));
        }
        for (int j = N; j < ldc; j++) // the padding beyond N is untouched
            if (!(beta == 0.0f ? isnan(C[(size_t)i * ldc + j]) : !isnan(C[(size_t)i * ldc + j]))) md = INFINITY;
    }
    free(A), free(B), free(C), free(ref);
    return mr > 0 ? md / mr : md;
}

static const int shapes[][3] = {{1, 1, 1}, {13, 33, 7}, {12, 32, 256}, {100, 70, 300}, {97, 517, 129},
                                {257, 64, 600}, {30, 2100, 40}, {200, 48, 513}, {40, 50, 1300},
                                {20, 2100, 1400}}; // the last: two column blocks, two passes of K slices

static void check_impl(rl_gemm_impl impl, int round_inputs, double tol) {
    rl_pool *pool = rl_pool_create(3);
    double worst = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 4; t++)
            for (int pb = 0; pb < 2; pb++) {
                int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                float beta = (s + t) % 3 == 0 ? 0.0f : (s % 2 ? 1.0f : -0.5f);
                double d = check_one(impl, t & 1, t >> 1, M, N, K, 0.75f, beta, pb ? pool : NULL, round_inputs);
                CHECK_MSG(d <= tol, "impl %d M %d N %d K %d ta %d tb %d beta %g pool %d: max rel diff %.3e > %.0e",
                          (int)impl, M, N, K, t & 1, t >> 1, beta, pb, d, tol);
                worst = fmax(worst, d);
            }
    fprintf(stderr, "    impl %d: largest max rel diff %.2e (tol %.0e)\n", (int)impl, worst, tol);
    rl_pool_free(pool);
}

TEST(tensor_gemm_own_vs_reference) { check_impl(RL_GEMM_OWN, 0, 1e-5); }
TEST(tensor_gemm_auto_and_blas_vs_reference) {
    check_impl(RL_GEMM_AUTO, 0, 1e-5);
    check_impl(RL_GEMM_BLAS, 0, 1e-5);
}
TEST(tensor_gemm_bf16_vs_reference) {
    if (!rl_gemm_has_bf16()) SKIP("this CPU has no avx512_bf16 (RL_GEMM_BF16 runs float32 here)");
    // the kernel's products of bf16 inputs are exact in float32; only the float32 sums differ
    check_impl(RL_GEMM_BF16, 1, 1e-5);
}
TEST(tensor_gemm_k_zero_scales_c) {
    float C[6] = {1, 2, 3, 4, 5, 6}, A[1] = {0}, B[1] = {0};
    rl_sgemm(0, 0, 2, 3, 0, 1.0f, A, 1, B, 3, 2.0f, C, 3, NULL);
    CHECK(C[0] == 2.0f && C[5] == 12.0f);
    rl_sgemm(0, 0, 2, 3, 0, 1.0f, A, 1, B, 3, 0.0f, C, 3, NULL);
    CHECK(C[0] == 0.0f && C[5] == 0.0f);
}

/* The cross-entropy's vectorized exp against a double-precision softmax, on wide logits. */
TEST(tensor_xent_vs_double) {
    enum { N = 3, V = 1003 };
    float *x = malloc(N * V * sizeof(float)), *d = malloc(N * V * sizeof(float)), losses[N];
    int targets[N] = {5, -100, 1002};
    for (int i = 0; i < N * V; i++) x[i] = 30.0f * frand();
    double total = rl_xent_forward_backward(losses, d, x, targets, N, V, 0.5f), ref_total = 0, worst = 0;
    for (int n = 0; n < N; n++) {
        const float *r = x + (size_t)n * V;
        double mx = -1e30, sum = 0;
        for (int i = 0; i < V; i++) mx = fmax(mx, r[i]);
        for (int i = 0; i < V; i++) sum += exp(r[i] - mx);
        if (targets[n] < 0) {
            CHECK(losses[n] == 0.0f && d[(size_t)n * V] == 0.0f);
            continue;
        }
        double loss = mx + log(sum) - r[targets[n]];
        ref_total += loss;
        worst = fmax(worst, fabs(losses[n] - loss) / loss);
        for (int i = 0; i < V; i++) {
            double p = exp(r[i] - mx) / sum * 0.5 - (i == targets[n] ? 0.5 : 0.0);
            worst = fmax(worst, fabs(d[(size_t)n * V + i] - p) / 0.5);
        }
    }
    fprintf(stderr, "    xent losses and gradients: max rel diff %.2e (tol 1e-6)\n", worst);
    CHECK(worst <= 1e-6);
    CHECK(fabs(total - ref_total) <= 1e-5 * ref_total);
    free(x), free(d);
}

/* rl_sgemm_sum: three terms with their own transpositions and alphas, concatenated along K
 * across slice boundaries (700 + 5 + 100), against the double sum of the three products.
 * in_place: every op(A) = A (our float32 kernel then reads A in place, one segment per term; bf16
 * rounds A's rows in place of packing, the middle term then having K = 6). */
static double check_sum(rl_gemm_impl impl, int round_inputs, rl_pool *pool, int in_place) {
    enum { M = 70, N = 90, NT = 3 };
    static const int tbs[NT] = {1, 0, 0};
    const int tas[NT] = {0, !in_place, 0}, Ks[NT] = {700, in_place ? 6 : 5, 100}; // even K: bf16 converts A's rows
    static const float alphas[NT] = {1.0f, -0.5f, 2.0f};
    rl_gemm_term t[NT];
    float *mem[NT][2];
    double *ref = calloc((size_t)M * N, sizeof(double));
    float *C = malloc((size_t)M * N * sizeof(float));
    for (int i = 0; i < M * N; i++) C[i] = frand();
    for (int i = 0; i < M * N; i++) ref[i] = 0.5 * C[i];
    for (int s = 0; s < NT; s++) {
        int K = Ks[s], lda = tas[s] ? M : K, ldb = tbs[s] ? K : N;
        mem[s][0] = malloc((size_t)M * K * sizeof(float));
        mem[s][1] = malloc((size_t)K * N * sizeof(float));
        for (int i = 0; i < M * K; i++) mem[s][0][i] = frand();
        for (int i = 0; i < K * N; i++) mem[s][1][i] = frand();
        t[s] = (rl_gemm_term){.ta = tas[s], .tb = tbs[s], .K = K, .alpha = alphas[s], .A = mem[s][0], .lda = lda,
                              .B = mem[s][1], .ldb = ldb};
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double sum = 0;
                for (int k = 0; k < K; k++) {
                    float a = alphas[s] * (tas[s] ? mem[s][0][(size_t)k * lda + i] : mem[s][0][(size_t)i * lda + k]);
                    float b = tbs[s] ? mem[s][1][(size_t)j * ldb + k] : mem[s][1][(size_t)k * ldb + j];
                    if (round_inputs) a = round_bf16(a), b = round_bf16(b);
                    sum += (double)a * b;
                }
                ref[(size_t)i * N + j] += sum;
            }
    }
    rl_sgemm_sum(impl, NT, t, M, N, 0.5f, C, N, pool);
    double md = 0, mr = 0;
    for (int i = 0; i < M * N; i++) md = fmax(md, fabs(C[i] - ref[i])), mr = fmax(mr, fabs(ref[i]));
    for (int s = 0; s < NT; s++) free(mem[s][0]), free(mem[s][1]);
    free(ref), free(C);
    return md / mr;
}

TEST(tensor_gemm_sum_of_terms) {
    rl_pool *pool = rl_pool_create(2);
    for (int pb = 0; pb < 2; pb++) {
        double own = check_sum(RL_GEMM_OWN, 0, pb ? pool : NULL, 0), blas = check_sum(RL_GEMM_BLAS, 0, NULL, 0);
        double direct = check_sum(RL_GEMM_OWN, 0, pb ? pool : NULL, 1);
        fprintf(stderr, "    3 terms: own %.2e, own with A in place %.2e, OpenBLAS %.2e (tol 1e-5)\n", own, direct, blas);
        CHECK(own <= 1e-5 && blas <= 1e-5 && direct <= 1e-5);
        if (rl_gemm_has_bf16()) {
            double b = check_sum(RL_GEMM_BF16, 1, pb ? pool : NULL, 0), br = check_sum(RL_GEMM_BF16, 1, pb ? pool : NULL, 1);
            fprintf(stderr, "    3 terms bf16 vs rounded inputs: packed %.2e, rows %.2e (tol 1e-5)\n", b, br);
            CHECK(b <= 1e-5 && br <= 1e-5);
        }
    }
    rl_pool_free(pool);
}
