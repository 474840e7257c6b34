/* test_vecindex.c - the HNSW vector index: SIMD kernels against the scalar reference, recall on
 * generated clustered data (float and int8, three metrics), deletes and re-inserts, filtered
 * search at 1% selectivity, save/load round trips, a kill while writing, damaged files, the
 * fvecs readers and `raftlm bench ann`. */
#include "test.h"

#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/core.h"
#include "vecindex/vecindex.h"
#include "vecindex/vi_kernels.h"

/* ---- data ---- */

static uint64_t rng_state = 1;
static uint64_t rnd(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static double unif(void) { return ((double)(rnd() >> 11) + 0.5) / 9007199254740992.0; }
static float gauss(void) { return (float)(sqrt(-2 * log(unif())) * cos(6.283185307179586 * unif())); }

/* n points of dimension d with low intrinsic dimension: a mixture of 100 Gaussian clusters in a
 * 16-d latent space, mapped linearly to d dimensions, plus a little isotropic noise. The first
 * call with a seed fixes the clusters and the map; later draws (queries) use the same ones. */
typedef struct {
    int d, r, nc;
    float noise; /* isotropic: adds intrinsic dimension (harder) */
    float *centers, *A;
} gen;

static gen gen_new(int d, uint64_t seed) {
    gen g = {d, 16, 100, 2.0f, NULL, NULL};
    rng_state = seed;
    g.centers = rl_xmalloc((size_t)g.nc * g.r * sizeof(float));
    g.A = rl_xmalloc((size_t)g.r * d * sizeof(float));
    for (int i = 0; i < g.nc * g.r; i++) g.centers[i] = gauss() * 2;
    for (int i = 0; i < g.r * d; i++) g.A[i] = gauss() / sqrtf((float)(1 + i / d));
    return g;
}

static float *gen_draw(const gen *g, size_t n) {
    float *x = rl_xmalloc(n * (size_t)g->d * sizeof(float));
    float z[64];
    for (size_t i = 0; i < n; i++) {
        int c = (int)(rnd() % (uint64_t)g->nc);
        for (int j = 0; j < g->r; j++) z[j] = g->centers[c * g->r + j] + gauss() * 0.6f;
        for (int k = 0; k < g->d; k++) {
            float s = 0;
            for (int j = 0; j < g->r; j++) s += z[j] * g->A[j * g->d + k];
            x[i * (size_t)g->d + (size_t)k] = s + gauss() * g->noise;
        }
    }
    return x;
}

static void gen_free(gen *g) {
    free(g->centers);
    free(g->A);
}

static rl_vindex *build(int d, rl_vi_metric metric, rl_vi_storage st, int M, int efc, const float *x, size_t n,
                        int threads) {
    rl_vi_params p;
    rl_vi_params_default(&p, d);
    p.metric = metric;
    p.storage = st;
    p.M = M;
    p.ef_construction = efc;
    rl_vindex *vi = NULL;
    rl_error err = {0};
    RL_ASSERT(rl_vindex_create(&vi, &p, &err) == RL_OK);
    uint64_t *ids = rl_xmalloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++) ids[i] = i * 7 + 3; /* not slot numbers */
    rl_pool *pool = threads > 1 ? rl_pool_create(threads) : NULL;
    rl_status s = rl_vindex_add_batch(vi, n, ids, x, pool, &err);
    CHECK_MSG(s == RL_OK, "add_batch: %s", err.msg);
    rl_pool_free(pool);
    free(ids);
    return vi;
}

/* recall@k of the index's search against its own exact search, with the given options */
static double recall_at(const rl_vindex *vi, const float *q, size_t nq, int d, int k, rl_vi_search_opts o) {
    rl_vi_scratch *sc = rl_vi_scratch_new();
    rl_vi_hit *a = rl_xmalloc((size_t)k * sizeof *a), *b = rl_xmalloc((size_t)k * sizeof *b);
    size_t found = 0, want = 0;
    for (size_t i = 0; i < nq; i++) {
        int na = 0, nb = 0;
        rl_vi_search_opts ex = o;
        ex.exact = 1;
        CHECK_OK(rl_vindex_search(vi, sc, q + i * (size_t)d, k, &ex, b, &nb, NULL));
        CHECK_OK(rl_vindex_search(vi, sc, q + i * (size_t)d, k, &o, a, &na, NULL));
        want += (size_t)nb;
        for (int x = 0; x < na; x++)
            for (int y = 0; y < nb; y++)
                if (a[x].id == b[y].id) {
                    found++;
                    break;
                }
    }
    free(a);
    free(b);
    rl_vi_scratch_free(sc);
    return want ? (double)found / (double)want : 1.0;
}

/* ---- kernels ---- */

TEST(vecindex_kernels_agree_with_scalar) {
    const rl_vi_kernels *ref = rl_vi_kernels_level(RL_VI_SIMD_SCALAR);
    rng_state = 5;
    static const size_t sizes[] = {1, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 128, 384, 385, 768, 1000, 4099};
    int tested = 0;
    for (int lv = RL_VI_SIMD_AVX2; lv <= RL_VI_SIMD_AVX512; lv++) {
        const rl_vi_kernels *k = rl_vi_kernels_level((rl_vi_simd)lv);
        if (!k) continue;
        tested++;
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            size_t n = sizes[si];
            float *a = rl_xmalloc(n * 4), *b = rl_xmalloc(n * 4);
            int8_t *ca = rl_xmalloc(n), *cb = rl_xmalloc(n);
            double sa = 0, sb = 0;
            for (size_t i = 0; i < n; i++) {
                a[i] = gauss();
                b[i] = gauss();
                sa += (double)a[i] * a[i];
                sb += (double)b[i] * b[i];
                ca[i] = (int8_t)((int)(rnd() % 255) - 127);
                cb[i] = (int8_t)((int)(rnd() % 255) - 127);
            }
            /* normalized error: relative to the sizes of the terms, not the (possibly small) sum */
            double scale = sqrt(sa * sb) + 1e-30;
            double e1 = fabs((double)k->dot(a, b, n) - ref->dot(a, b, n)) / scale;
            double e2 = fabs((double)k->l2sq(a, b, n) - ref->l2sq(a, b, n)) / (sa + sb);
            CHECK_MSG(e1 < 1e-5, "%s dot n=%zu: normalized error %g > 1e-5", k->name, n, e1);
            CHECK_MSG(e2 < 1e-5, "%s l2sq n=%zu: normalized error %g > 1e-5", k->name, n, e2);
            CHECK_MSG(k->dot_i8(ca, cb, n) == ref->dot_i8(ca, cb, n), "%s dot_i8 n=%zu: %d != %d", k->name, n,
                      k->dot_i8(ca, cb, n), ref->dot_i8(ca, cb, n));
            /* extremes: every product is 127*127 or -127*127 */
            for (size_t i = 0; i < n; i++) ca[i] = cb[i] = (int8_t)(i % 2 ? 127 : -127);
            CHECK_EQ_INT(k->dot_i8(ca, cb, n), (int64_t)n * 127 * 127);
            free(a);
            free(b);
            free(ca);
            free(cb);
        }
    }
    if (!tested) SKIP("no AVX2 or AVX-512 on this CPU: only the scalar kernels exist");
}

/* ---- recall ---- */

TEST(vecindex_recall_clustered_20k) {
    int d = 96;
    gen g = gen_new(d, 11);
    size_t n = 20000, nq = 200;
    float *x = gen_draw(&g, n), *q = gen_draw(&g, nq);
    double t0 = rl_now();
    rl_vindex *vi = build(d, RL_VI_L2, RL_VI_F32, 16, 100, x, n, 2);
    double tb = rl_now() - t0;
    CHECK_EQ_INT(rl_vindex_count(vi), n);
    double r10 = recall_at(vi, q, nq, d, 10, (rl_vi_search_opts){.ef = 10});
    double r64 = recall_at(vi, q, nq, d, 10, (rl_vi_search_opts){.ef = 64});
    double r128 = recall_at(vi, q, nq, d, 10, (rl_vi_search_opts){.ef = 128});
    fprintf(stderr, "    20k x %d L2 built in %.2f s: recall@10 ef=10 %.4f ef=64 %.4f ef=128 %.4f\n", d, tb, r10, r64, r128);
    CHECK_MSG(r64 >= 0.95, "recall@10 at ef=64 is %.4f < 0.95", r64);
    CHECK_MSG(r128 >= 0.98, "recall@10 at ef=128 is %.4f < 0.98", r128);
    CHECK(r128 >= r10);
    /* int8 codes with float rescoring stay close */
    rl_vindex *v8 = build(d, RL_VI_L2, RL_VI_INT8, 16, 100, x, n, 2);
    double q64 = recall_at(v8, q, nq, d, 10, (rl_vi_search_opts){.ef = 64});
    fprintf(stderr, "    int8: recall@10 ef=64 %.4f (float %.4f)\n", q64, r64);
    CHECK_MSG(q64 >= r64 - 0.02, "int8 recall %.4f is not within 0.02 of float %.4f", q64, r64);
    /* the distances returned are exact (rescored), in order */
    rl_vi_hit h[10];
    int nh = 0;
    CHECK_OK(rl_vindex_search(v8, NULL, q, 10, &(rl_vi_search_opts){.ef = 64}, h, &nh, NULL));
    CHECK_EQ_INT(nh, 10);
    float *row = rl_xmalloc((size_t)d * 4);
    for (int i = 0; i < nh; i++) {
        CHECK_OK(rl_vindex_get(v8, h[i].id, row, NULL));
        float s = 0;
        for (int j = 0; j < d; j++) s += (row[j] - q[j]) * (row[j] - q[j]);
        CHECK_MSG(fabsf(s - h[i].dist) <= 1e-3f * (1 + s), "hit %d: distance %g, recomputed %g", i, h[i].dist, s);
        if (i) CHECK(h[i].dist >= h[i - 1].dist);
    }
    free(row);
    rl_vindex_free(vi);
    rl_vindex_free(v8);
    free(x);
    free(q);
    gen_free(&g);
}

TEST(vecindex_recall_metrics_ip_cosine) {
    int d = 64;
    gen g = gen_new(d, 12);
    size_t n = 8000, nq = 100;
    float *x = gen_draw(&g, n), *q = gen_draw(&g, nq);
    for (int m = RL_VI_IP; m <= RL_VI_COSINE; m++)
        for (int st = RL_VI_F32; st <= RL_VI_INT8; st++) {
            rl_vindex *vi = build(d, (rl_vi_metric)m, (rl_vi_storage)st, 16, 100, x, n, 1);
            double r = recall_at(vi, q, nq, d, 10, (rl_vi_search_opts){.ef = 64});
            fprintf(stderr, "    %s %s: recall@10 ef=64 %.4f\n", rl_vi_metric_name((rl_vi_metric)m), st ? "int8" : "f32", r);
            /* inner product is not a metric; HNSW is known to do worse there */
            CHECK_MSG(r >= (m == RL_VI_IP ? 0.90 : 0.95), "%s storage %d recall %.4f", rl_vi_metric_name((rl_vi_metric)m), st, r);
            if (m == RL_VI_COSINE) { /* distances are 1 - cos, in [0, 2] */
                rl_vi_hit h[5];
                int nh = 0;
                CHECK_OK(rl_vindex_search(vi, NULL, q, 5, NULL, h, &nh, NULL));
                for (int i = 0; i < nh; i++) CHECK(h[i].dist >= -1e-4f && h[i].dist <= 2.0001f);
            }
            rl_vindex_free(vi);
        }
    free(x);
    free(q);
    gen_free(&g);
}

TEST(vecindex_threaded_build_matches_single_thread_quality) {
    int d = 48;
    gen g = gen_new(d, 13);
    size_t n = 6000, nq = 100;
    float *x = gen_draw(&g, n), *q = gen_draw(&g, nq);
    rl_vindex *a = build(d, RL_VI_L2, RL_VI_F32, 12, 80, x, n, 1);
    rl_vindex *b = build(d, RL_VI_L2, RL_VI_F32, 12, 80, x, n, 4);
    double ra = recall_at(a, q, nq, d, 10, (rl_vi_search_opts){.ef = 40});
    double rb = recall_at(b, q, nq, d, 10, (rl_vi_search_opts){.ef = 40});
    fprintf(stderr, "    1 thread %.4f, 4 threads %.4f\n", ra, rb);
    CHECK(fabs(ra - rb) < 0.02);
    /* a single-threaded build is deterministic: two builds, identical files */
    char *dir = t_tmpdir();
    char *p1 = t_fmt("%s/a.idx", dir), *p2 = t_fmt("%s/b.idx", dir);
    rl_vindex *a2 = build(d, RL_VI_L2, RL_VI_F32, 12, 80, x, n, 1);
    CHECK_OK(rl_vindex_save(a, p1, NULL));
    CHECK_OK(rl_vindex_save(a2, p2, NULL));
    char *c1, *c2;
    size_t l1, l2;
    CHECK_OK(rl_file_read(p1, 0, &c1, &l1, NULL));
    CHECK_OK(rl_file_read(p2, 0, &c2, &l2, NULL));
    CHECK(l1 == l2 && memcmp(c1, c2, l1) == 0);
    free(c1);
    free(c2);
    rl_vindex_free(a);
    rl_vindex_free(a2);
    rl_vindex_free(b);
    free(x);
    free(q);
    gen_free(&g);
}

/* ---- deletes ---- */

TEST(vecindex_deletes_reinserts_compaction_keep_recall) {
    int d = 64;
    gen g = gen_new(d, 14);
    size_t n = 12000, nq = 150;
    float *x = gen_draw(&g, n), *q = gen_draw(&g, nq);
    rl_vindex *vi = build(d, RL_VI_L2, RL_VI_F32, 16, 100, x, n, 2);
    rl_error err = {0};
    /* delete a third, at random */
    uint8_t *gone = rl_xcalloc(n, 1);
    size_t n_del = 0;
    rng_state = 99;
    while (n_del < n / 3) {
        size_t i = rnd() % n;
        if (gone[i]) continue;
        gone[i] = 1;
        n_del++;
        CHECK_OK(rl_vindex_remove(vi, i * 7 + 3, &err));
    }
    CHECK_EQ_INT(rl_vindex_remove(vi, 5 * 7 + 3 + (gone[5] ? 0 : 1), &err), RL_ENOTFOUND); /* absent id */
    CHECK_EQ_INT(rl_vindex_count(vi), n - n_del);
    CHECK_EQ_INT(rl_vindex_deleted(vi), n_del);
    double r = recall_at(vi, q, nq, d, 10, (rl_vi_search_opts){.ef = 64});
    fprintf(stderr, "    after deleting a third: recall %.4f\n", r);
    CHECK(r >= 0.95);
    rl_vi_hit h[50];
    int nh;
    for (size_t i = 0; i < nq; i++) {
        CHECK_OK(rl_vindex_search(vi, NULL, q + i * (size_t)d, 50, &(rl_vi_search_opts){.ef = 50}, h, &nh, NULL));
        CHECK_EQ_INT(nh, 50);
        for (int j = 0; j < nh; j++) CHECK(!gone[(h[j].id - 3) / 7]);
    }
    /* re-insert them with new vectors and new ids: the tombstoned slots are reused */
    float *y = gen_draw(&g, n_del);
    uint64_t *ids = rl_xmalloc(n_del * sizeof *ids);
    for (size_t i = 0; i < n_del; i++) ids[i] = 1000000 + i;
    /* half one at a time, half in a threaded batch */
    for (size_t i = 0; i < n_del / 2; i++) CHECK_OK(rl_vindex_add(vi, ids[i], y + i * (size_t)d, &err));
    rl_pool *pool = rl_pool_create(2);
    CHECK_OK(rl_vindex_add_batch(vi, n_del - n_del / 2, ids + n_del / 2, y + (n_del / 2) * (size_t)d, pool, &err));
    CHECK_EQ_INT(rl_vindex_count(vi), n);
    CHECK(rl_vindex_deleted(vi) <= 1); /* the entry point's slot is never reused */
    r = recall_at(vi, q, nq, d, 10, (rl_vi_search_opts){.ef = 64});
    fprintf(stderr, "    after re-inserting into reused slots: recall %.4f\n", r);
    CHECK(r >= 0.95);
    /* the new vectors are found: each one's nearest neighbour is itself */
    size_t self = 0;
    for (size_t i = 0; i < n_del; i += 10) {
        CHECK_OK(rl_vindex_search(vi, NULL, y + i * (size_t)d, 1, &(rl_vi_search_opts){.ef = 64}, h, &nh, NULL));
        self += nh == 1 && h[0].id == ids[i];
    }
    CHECK_MSG(self * 10 >= n_del * 95 / 100, "only %zu of %zu re-inserted vectors find themselves", self, (n_del + 9) / 10);
    /* delete again and compact */
    for (size_t i = 0; i < n_del; i += 2) CHECK_OK(rl_vindex_remove(vi, ids[i], &err));
    CHECK_OK(rl_vindex_compact(vi, pool, &err));
    CHECK_EQ_INT(rl_vindex_deleted(vi), 0);
    CHECK_EQ_INT(rl_vindex_count(vi), n - (n_del + 1) / 2);
    r = recall_at(vi, q, nq, d, 10, (rl_vi_search_opts){.ef = 64});
    fprintf(stderr, "    after compaction: recall %.4f\n", r);
    CHECK(r >= 0.95);
    CHECK(!rl_vindex_contains(vi, ids[0]) && rl_vindex_contains(vi, ids[1]));
    rl_pool_free(pool);
    rl_vindex_free(vi);
    free(ids);
    free(y);
    free(gone);
    free(x);
    free(q);
    gen_free(&g);
}

/* ---- filters ---- */

static int keep_mod(void *ctx, uint64_t id) { return ((id - 3) / 7) % (uint64_t)(uintptr_t)ctx == 0; }

TEST(vecindex_filtered_search_selective) {
    int d = 64;
    gen g = gen_new(d, 15);
    size_t n = 20000, nq = 100;
    float *x = gen_draw(&g, n), *q = gen_draw(&g, nq);
    rl_vindex *vi = build(d, RL_VI_L2, RL_VI_F32, 16, 100, x, n, 2);
    /* 1%: an allow-list of 200 random ids (plus ids the index does not have) */
    size_t na = n / 100;
    uint64_t *allow = rl_xmalloc((na + 10) * sizeof *allow);
    uint8_t *in = rl_xcalloc(n, 1);
    rng_state = 7;
    for (size_t i = 0; i < na;) {
        size_t s = rnd() % n;
        if (in[s]) continue;
        in[s] = 1;
        allow[i++] = s * 7 + 3;
    }
    for (size_t i = 0; i < 10; i++) allow[na + i] = 5000000 + i;
    rl_vi_search_opts o = {.ef = 64, .allow = allow, .n_allow = na + 10};
    double r = recall_at(vi, q, nq, d, 10, o);
    rl_vi_hit h[10];
    int nh;
    for (size_t i = 0; i < nq; i++) {
        CHECK_OK(rl_vindex_search(vi, NULL, q + i * (size_t)d, 10, &o, h, &nh, NULL));
        CHECK_EQ_INT(nh, 10);
        for (int j = 0; j < nh; j++) CHECK(in[(h[j].id - 3) / 7]);
    }
    fprintf(stderr, "    allow-list 1%%: recall %.4f\n", r);
    CHECK(r >= 0.95);
    /* 1% with a predicate (no hint: the selectivity is estimated by sampling) */
    o = (rl_vi_search_opts){.ef = 64, .filter = keep_mod, .filter_ctx = (void *)(uintptr_t)100};
    r = recall_at(vi, q, nq, d, 10, o);
    fprintf(stderr, "    predicate 1%%: recall %.4f\n", r);
    CHECK(r >= 0.95);
    /* 1% forced through the graph (exact_below tiny): still only matching ids, recall from the
     * walk through non-matching nodes */
    o.exact_below = 1e-9;
    o.selectivity = 0.01;
    o.ef = 200;
    r = recall_at(vi, q, nq, d, 10, o);
    fprintf(stderr, "    predicate 1%% through the graph: recall %.4f\n", r);
    for (size_t i = 0; i < nq; i++) {
        CHECK_OK(rl_vindex_search(vi, NULL, q + i * (size_t)d, 10, &o, h, &nh, NULL));
        for (int j = 0; j < nh; j++) CHECK(((h[j].id - 3) / 7) % 100 == 0);
    }
    CHECK(r >= 0.90);
    /* 10%: the graph path */
    o = (rl_vi_search_opts){.ef = 64, .filter = keep_mod, .filter_ctx = (void *)(uintptr_t)10};
    r = recall_at(vi, q, nq, d, 10, o);
    fprintf(stderr, "    predicate 10%%: recall %.4f\n", r);
    CHECK(r >= 0.95);
    /* nothing passes: no results, no error */
    o = (rl_vi_search_opts){.allow = allow + na, .n_allow = 10};
    CHECK_OK(rl_vindex_search(vi, NULL, q, 10, &o, h, &nh, NULL));
    CHECK_EQ_INT(nh, 0);
    rl_vindex_free(vi);
    free(allow);
    free(in);
    free(x);
    free(q);
    gen_free(&g);
}

/* ---- files ---- */

static int same_results(const rl_vindex *a, const rl_vindex *b, const float *q, size_t nq, int d) {
    rl_vi_hit ha[10], hb[10];
    int na, nb, same = 1;
    for (size_t i = 0; i < nq; i++) {
        rl_vi_search_opts o = {.ef = 32};
        if (rl_vindex_search(a, NULL, q + i * (size_t)d, 10, &o, ha, &na, NULL) ||
            rl_vindex_search(b, NULL, q + i * (size_t)d, 10, &o, hb, &nb, NULL) || na != nb)
            return 0;
        for (int j = 0; j < na; j++) same &= ha[j].id == hb[j].id && ha[j].dist == hb[j].dist;
    }
    return same;
}

TEST(vecindex_save_load_round_trip) {
    int d = 40; /* not a multiple of 16: padded rows */
    gen g = gen_new(d, 16);
    size_t n = 3000, nq = 50;
    float *x = gen_draw(&g, n), *q = gen_draw(&g, nq);
    char *dir = t_tmpdir();
    for (int st = RL_VI_F32; st <= RL_VI_INT8; st++) {
        rl_vindex *vi = build(d, RL_VI_COSINE, (rl_vi_storage)st, 8, 60, x, n, 2);
        for (size_t i = 0; i < n; i += 5) CHECK_OK(rl_vindex_remove(vi, i * 7 + 3, NULL));
        char *path = t_fmt("%s/v%d.idx", dir, st);
        rl_error err = {0};
        CHECK_OK(rl_vindex_save(vi, path, &err));
        rl_vindex *lo = NULL;
        CHECK_MSG(rl_vindex_load(&lo, path, &err) == RL_OK, "load: %s", err.msg);
        if (!lo) continue;
        CHECK_EQ_INT(rl_vindex_count(lo), rl_vindex_count(vi));
        CHECK_EQ_INT(rl_vindex_deleted(lo), rl_vindex_deleted(vi));
        CHECK_EQ_INT(rl_vindex_params(lo)->storage, st);
        CHECK_EQ_INT(rl_vindex_params(lo)->metric, RL_VI_COSINE);
        CHECK(same_results(vi, lo, q, nq, d));
        CHECK(!rl_vindex_contains(lo, 3) && rl_vindex_contains(lo, 10));
        {   /* copied into memory: the same results */
            rl_vindex *m = NULL;
            CHECK_OK(rl_vindex_load(&m, path, &err));
            if (m) {
                size_t before = rl_vindex_memory(m);
                CHECK_OK(rl_vindex_materialize(m, &err));
                CHECK(rl_vindex_memory(m) > before);
                CHECK_OK(rl_vindex_materialize(m, &err)); /* no-op */
                CHECK(same_results(vi, m, q, nq, d));
                rl_vindex_free(m);
            }
        }
        /* a loaded (mapped) index takes changes: the same changes, the same results */
        float *y = gen_draw(&g, 100);
        uint64_t ids[100];
        for (int i = 0; i < 100; i++) ids[i] = 900000 + (uint64_t)i;
        CHECK_OK(rl_vindex_add_batch(vi, 100, ids, y, NULL, NULL));
        CHECK_OK(rl_vindex_add_batch(lo, 100, ids, y, NULL, NULL));
        CHECK(same_results(vi, lo, q, nq, d));
        /* a mapped index compacts (into memory) */
        {
            rl_vindex *c = NULL;
            CHECK_OK(rl_vindex_load(&c, path, &err));
            if (c) {
                CHECK_OK(rl_vindex_compact(c, NULL, &err));
                CHECK_EQ_INT(rl_vindex_deleted(c), 0);
                CHECK_EQ_INT(rl_vindex_count(c), rl_vindex_count(lo) - 100);
                rl_vindex_free(c);
            }
        }
        /* and saves again over its own file, which it had mapped */
        CHECK_OK(rl_vindex_save(lo, path, &err));
        rl_vindex *again = NULL;
        CHECK_OK(rl_vindex_load(&again, path, &err));
        if (again) CHECK(same_results(vi, again, q, nq, d));
        rl_vindex_free(again);
        free(y);
        rl_vindex_free(lo);
        rl_vindex_free(vi);
        free(path);
    }
    /* an empty index round-trips too */
    rl_vi_params p;
    rl_vi_params_default(&p, 8);
    rl_vindex *e = NULL, *e2 = NULL;
    CHECK_OK(rl_vindex_create(&e, &p, NULL));
    char *path = t_fmt("%s/empty.idx", dir);
    CHECK_OK(rl_vindex_save(e, path, NULL));
    CHECK_OK(rl_vindex_load(&e2, path, NULL));
    rl_vi_hit h[3];
    int nh = 9;
    float z[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    if (e2) {
        CHECK_OK(rl_vindex_search(e2, NULL, z, 3, NULL, h, &nh, NULL));
        CHECK_EQ_INT(nh, 0);
        CHECK_OK(rl_vindex_add(e2, 1, z, NULL));
        CHECK_OK(rl_vindex_search(e2, NULL, z, 3, NULL, h, &nh, NULL));
        CHECK_EQ_INT(nh, 1);
    }
    rl_vindex_free(e);
    rl_vindex_free(e2);
    free(path);
    free(x);
    free(q);
    gen_free(&g);
}

TEST(vecindex_kill_while_writing_keeps_previous_file) {
    int d = 64;
    gen g = gen_new(d, 17);
    size_t n = 20000;
    float *x = gen_draw(&g, n), *q = gen_draw(&g, 20);
    char *dir = t_tmpdir();
    char *path = t_fmt("%s/index.idx", dir);
    rl_vindex *small = build(d, RL_VI_L2, RL_VI_F32, 8, 40, x, 2000, 1);
    CHECK_OK(rl_vindex_save(small, path, NULL));
    /* 1: a writer that dies half way through (the atomic file is written, never committed) */
    pid_t pid = fork();
    if (pid == 0) {
        rl_atomic_file f;
        if (rl_atomic_open(&f, path, NULL)) _exit(3);
        char junk[4096];
        memset(junk, 0x5A, sizeof junk);
        for (int i = 0; i < 100; i++) fwrite(junk, 1, sizeof junk, f.fp);
        fflush(f.fp);
        raise(SIGKILL);
    }
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status));
    rl_vindex *lo = NULL;
    rl_error err = {0};
    CHECK_MSG(rl_vindex_load(&lo, path, &err) == RL_OK, "after a killed writer: %s", err.msg);
    if (lo) CHECK(same_results(small, lo, q, 20, d));
    rl_vindex_free(lo);
    /* 2: SIGKILL at random moments while a child saves a big index over and over */
    rl_vindex *big = build(d, RL_VI_L2, RL_VI_F32, 16, 40, x, n, 2);
    for (int round = 0; round < 5; round++) {
        pid = fork();
        if (pid == 0) {
            for (;;) rl_vindex_save(big, path, NULL);
        }
        usleep((useconds_t)(20000 + 17000 * round));
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        lo = NULL;
        CHECK_MSG(rl_vindex_load(&lo, path, &err) == RL_OK, "round %d: %s", round, err.msg);
        if (lo) CHECK(same_results(rl_vindex_count(lo) == 2000 ? small : big, lo, q, 20, d));
        rl_vindex_free(lo);
    }
    rl_vindex_free(small);
    rl_vindex_free(big);
    free(path);
    free(x);
    free(q);
    gen_free(&g);
}

/* Loads bytes from memory (copied into an aligned buffer) and, if the load succeeds, searches. */
static rl_status try_load(const uint8_t *data, size_t size, int d) {
    uint64_t *buf = rl_xmalloc((size / 8 + 1) * 8);
    memcpy(buf, data, size);
    rl_vindex *vi = NULL;
    rl_error err = {0};
    rl_status s = rl_vindex_load_mem(&vi, buf, size, &err);
    if (s == RL_OK) {
        float qv[64];
        for (int i = 0; i < d; i++) qv[i] = (float)i;
        rl_vi_hit h[5];
        int nh;
        rl_vindex_search(vi, NULL, qv, 5, &(rl_vi_search_opts){.flat_below = -1}, h, &nh, NULL);
        rl_vindex_free(vi);
    } else {
        CHECK(err.msg[0] != 0);
    }
    free(buf);
    return s;
}

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint64_t get64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Offset of section `kind` in a saved file (from its table). */
static uint64_t section_off(const uint8_t *f, uint32_t kind) {
    uint32_t ns;
    memcpy(&ns, f + 52, 4);
    for (uint32_t i = 0; i < ns; i++) {
        uint32_t k;
        memcpy(&k, f + 128 + i * 24, 4);
        if (k == kind) return get64(f + 128 + i * 24 + 8);
    }
    return 0;
}

TEST(vecindex_damaged_files_are_errors) {
    int d = 24;
    gen g = gen_new(d, 18);
    size_t n = 500;
    float *x = gen_draw(&g, n);
    char *dir = t_tmpdir();
    char *path = t_fmt("%s/i.idx", dir);
    rl_vindex *vi = build(d, RL_VI_L2, RL_VI_INT8, 6, 30, x, n, 1);
    CHECK_OK(rl_vindex_remove(vi, 10, NULL));
    CHECK_OK(rl_vindex_save(vi, path, NULL));
    char *raw;
    size_t size;
    CHECK_OK(rl_file_read(path, 0, &raw, &size, NULL));
    const uint8_t *f = (const uint8_t *)raw;
    CHECK_OK(try_load(f, size, d));
    uint8_t *m = rl_xmalloc(size);
#define MUTATE(expr, want)                                                   \
    do {                                                                     \
        memcpy(m, f, size);                                                  \
        expr;                                                                \
        rl_status s_ = try_load(m, size, d);                                 \
        CHECK_MSG(s_ == (want), "%s: status %d, expected %d", #expr, s_, want); \
    } while (0)
    /* truncated anywhere */
    for (size_t cut = 0; cut < size; cut += cut < 512 ? 1 : 97) CHECK_MSG(try_load(f, cut, d) != RL_OK, "truncated to %zu loads", cut);
    MUTATE(m[0] = 'X', RL_EFORMAT);                           /* magic */
    MUTATE(put32(m + 8, 2), RL_EUNSUPPORTED);                 /* version */
    MUTATE(put32(m + 16, 7), RL_EFORMAT);                     /* metric */
    MUTATE(put32(m + 24, 0), RL_EFORMAT);                     /* dim */
    MUTATE(put32(m + 24, 40), RL_EFORMAT);                    /* dim disagrees with dimp */
    MUTATE(put32(m + 32, 1000), RL_EFORMAT);                  /* M */
    MUTATE(put32(m + 48, (uint32_t)n), RL_EFORMAT);           /* entry out of range */
    MUTATE(put64(m + 56, n + 1), RL_EFORMAT);                 /* lying slot count */
    MUTATE(put64(m + 56, (uint64_t)1 << 40), RL_EFORMAT);     /* huge slot count */
    MUTATE(put64(m + 64, 2), RL_EFORMAT);                     /* lying deleted count */
    MUTATE(put64(m + 72, get64(m + 72) + 1), RL_EFORMAT);     /* upper pool length */
    MUTATE(put64(m + 88, size + 8), RL_EFORMAT);              /* file size */
    MUTATE(put32(m + 52, 200), RL_EFORMAT);                   /* section count */
    MUTATE(put64(m + 128 + 8, size - 8), RL_EFORMAT);         /* first section runs off the end */
    MUTATE(put64(m + 128 + 8, UINT64_MAX - 7), RL_EFORMAT);   /* offset overflow */
    MUTATE(put64(m + 128 + 16, UINT64_MAX), RL_EFORMAT);      /* size overflow */
    MUTATE(put32(m + 128 + 24, 1), RL_EFORMAT);               /* a section twice */
    uint64_t l0 = section_off(f, 5), lev = section_off(f, 3), fl = section_off(f, 4), uo = section_off(f, 6);
    uint64_t ids = section_off(f, 2);
    CHECK(l0 && lev && fl && uo && ids);
    uint32_t row = 4 * (2 * 6 + 1);
    MUTATE(put32(m + l0 + 5 * row, 13), RL_EFORMAT);              /* too many neighbours */
    MUTATE(put32(m + l0 + 5 * row + 4, (uint32_t)n), RL_EFORMAT); /* neighbour out of range */
    MUTATE(put32(m + l0 + 5 * row + 4, UINT32_MAX), RL_EFORMAT);
    MUTATE(m[lev + 7] = 30, RL_EFORMAT);                          /* level above the top */
    MUTATE(m[fl + 3] = 4, RL_EFORMAT);                            /* unknown flag */
    MUTATE(memcpy(m + ids + 8 * 3, m + ids + 8 * 4, 8), RL_EFORMAT); /* duplicate id */
    /* a node with upper levels whose offset points outside the pool */
    for (size_t i = 0; i < n; i++)
        if (f[lev + i]) {
            MUTATE(put64(m + uo + 8 * i, UINT64_MAX - 2), RL_EFORMAT);
            break;
        }
    /* random damage: never a crash; every load that passes can be searched */
    rng_state = 3;
    int passed = 0;
    for (int it = 0; it < 3000; it++) {
        memcpy(m, f, size);
        int flips = 1 + (int)(rnd() % 4);
        for (int j = 0; j < flips; j++) {
            size_t at = rnd() % 4 == 0 ? rnd() % 512 : rnd() % size;
            m[at] = (uint8_t)rnd();
        }
        passed += try_load(m, size, d) == RL_OK;
    }
    fprintf(stderr, "    3000 random damages: %d loaded (vector bytes), none crashed\n", passed);
    /* not a file */
    rl_vindex *lo = NULL;
    rl_error err = {0};
    CHECK_EQ_INT(rl_vindex_load(&lo, dir, &err), RL_EIO);
    CHECK_EQ_INT(rl_vindex_load(&lo, "/nonexistent/x.idx", &err), RL_ENOTFOUND);
    free(m);
    free(raw);
    rl_vindex_free(vi);
    free(path);
    free(x);
    gen_free(&g);
}

/* ---- hostile calls ---- */

TEST(vecindex_bad_arguments_are_errors) {
    rl_vi_params p;
    rl_vi_params_default(&p, 4);
    rl_vindex *vi = NULL;
    rl_error err = {0};
    p.dim = 0;
    CHECK_EQ_INT(rl_vindex_create(&vi, &p, &err), RL_EINVAL);
    p.dim = 4;
    p.M = 1;
    CHECK_EQ_INT(rl_vindex_create(&vi, &p, &err), RL_EINVAL);
    p.M = 8;
    p.metric = RL_VI_COSINE;
    CHECK_OK(rl_vindex_create(&vi, &p, &err));
    float v[8] = {1, 2, 3, 4, 0, 0, 0, 0}, nanv[4] = {1, NAN, 0, 0}, inf[4] = {INFINITY, 0, 0, 0};
    uint64_t ids[2] = {1, 1};
    CHECK_EQ_INT(rl_vindex_add(vi, 1, nanv, &err), RL_EINVAL);
    CHECK_EQ_INT(rl_vindex_add(vi, 1, inf, &err), RL_EINVAL);
    CHECK_EQ_INT(rl_vindex_add(vi, 1, v + 4, &err), RL_EINVAL); /* zero vector, cosine */
    CHECK_CONTAINS(err.msg, "zero vector");
    CHECK_EQ_INT(rl_vindex_add_batch(vi, 2, ids, v, NULL, &err), RL_EINVAL); /* same id twice */
    CHECK_EQ_INT(rl_vindex_count(vi), 0);
    CHECK_OK(rl_vindex_add(vi, 1, v, &err));
    CHECK_EQ_INT(rl_vindex_add(vi, 1, v, &err), RL_EINVAL); /* already there */
    CHECK_CONTAINS(err.msg, "already");
    rl_vi_hit h[4];
    int nh;
    CHECK_EQ_INT(rl_vindex_search(vi, NULL, v, 0, NULL, h, &nh, &err), RL_EINVAL);
    CHECK_EQ_INT(rl_vindex_search(vi, NULL, nanv, 1, NULL, h, &nh, &err), RL_EINVAL);
    CHECK_EQ_INT(rl_vindex_search(vi, NULL, v, 1, &(rl_vi_search_opts){.ef = -1}, h, &nh, &err), RL_EINVAL);
    CHECK_OK(rl_vindex_search(vi, NULL, v, 4, NULL, h, &nh, &err));
    CHECK_EQ_INT(nh, 1);
    CHECK(fabsf(h[0].dist) < 1e-6f);
    /* remove the only vector: searches find nothing; re-add the same id */
    CHECK_OK(rl_vindex_remove(vi, 1, &err));
    CHECK_EQ_INT(rl_vindex_remove(vi, 1, &err), RL_ENOTFOUND);
    CHECK_OK(rl_vindex_search(vi, NULL, v, 4, NULL, h, &nh, &err));
    CHECK_EQ_INT(nh, 0);
    CHECK_OK(rl_vindex_add(vi, 1, v, &err));
    CHECK_OK(rl_vindex_search(vi, NULL, v, 4, NULL, h, &nh, &err));
    CHECK_EQ_INT(nh, 1);
    /* compaction down to nothing, then use again */
    CHECK_OK(rl_vindex_remove(vi, 1, &err));
    CHECK_OK(rl_vindex_compact(vi, NULL, &err));
    CHECK_EQ_INT(rl_vindex_count(vi), 0);
    CHECK_EQ_INT(rl_vindex_deleted(vi), 0);
    CHECK_OK(rl_vindex_search(vi, NULL, v, 4, NULL, h, &nh, &err));
    CHECK_EQ_INT(nh, 0);
    CHECK_OK(rl_vindex_add(vi, 2, v, &err));
    CHECK_OK(rl_vindex_search(vi, NULL, v, 4, NULL, h, &nh, &err));
    CHECK(nh == 1 && h[0].id == 2);
    CHECK_EQ_INT(rl_vi_metric_parse("dot"), -1);
    CHECK_EQ_INT(rl_vi_metric_parse("ip"), RL_VI_IP);
    rl_vindex_free(vi);
}

/* ---- fvecs and the CLI ---- */

TEST(vecindex_fvecs_readers_check_sizes) {
    char *dir = t_tmpdir();
    float v[6] = {1, 2, 3, 4, 5, 6};
    char *p = t_fmt("%s/a.fvecs", dir);
    CHECK_OK(rl_fvecs_write(p, v, 2, 3, NULL));
    float *out;
    size_t n;
    int d;
    rl_error err = {0};
    CHECK_OK(rl_fvecs_read(p, 0, &out, &n, &d, &err));
    CHECK(n == 2 && d == 3 && out[5] == 6);
    free(out);
    CHECK_OK(rl_fvecs_read(p, 1, &out, &n, &d, &err));
    CHECK_EQ_INT(n, 1);
    free(out);
    int32_t bad1[5] = {3, 0, 0, 0, 7}; /* a partial second row */
    t_write(dir, "b.fvecs", (const char *)bad1, sizeof bad1);
    CHECK_EQ_INT(rl_fvecs_read(t_fmt("%s/b.fvecs", dir), 0, &out, &n, &d, &err), RL_EFORMAT);
    int32_t bad2[8] = {3, 0, 0, 0, 2, 0, 0, 0}; /* rows of different sizes */
    t_write(dir, "c.fvecs", (const char *)bad2, sizeof bad2);
    CHECK_EQ_INT(rl_fvecs_read(t_fmt("%s/c.fvecs", dir), 0, &out, &n, &d, &err), RL_EFORMAT);
    int32_t bad3[2] = {-5, 0};
    t_write(dir, "d.fvecs", (const char *)bad3, sizeof bad3);
    CHECK_EQ_INT(rl_fvecs_read(t_fmt("%s/d.fvecs", dir), 0, &out, &n, &d, &err), RL_EFORMAT);
    t_write(dir, "e.fvecs", "", 0);
    CHECK_EQ_INT(rl_fvecs_read(t_fmt("%s/e.fvecs", dir), 0, &out, &n, &d, &err), RL_EFORMAT);
    int32_t *iv;
    CHECK_EQ_INT(rl_ivecs_read(t_fmt("%s/b.fvecs", dir), 0, &iv, &n, &d, &err), RL_EFORMAT);
}

TEST(vecindex_cli_bench_ann) {
    int d = 32;
    gen g = gen_new(d, 19);
    float *x = gen_draw(&g, 3000), *q = gen_draw(&g, 50);
    char *dir = t_tmpdir();
    CHECK_OK(rl_fvecs_write(t_fmt("%s/base.fvecs", dir), x, 3000, d, NULL));
    CHECK_OK(rl_fvecs_write(t_fmt("%s/query.fvecs", dir), q, 50, d, NULL));
    char *out = NULL;
    int rc = t_run(t_fmt("%s bench ann --base %s/base.fvecs --query %s/query.fvecs -k 10 --M 12 --ef-construction 80 "
                         "--ef 10,80 --threads 2 --gt-out %s/gt.ivecs --save %s/x.idx",
                         t_bin(), dir, dir, dir, dir),
                   &out, 1);
    CHECK_EQ_INT(rc, 0);
    CHECK_CONTAINS(out, "recall@k");
    CHECK_CONTAINS(out, "queries/s");
    CHECK_CONTAINS(out, "build");
    free(out);
    /* with the ground truth it wrote, as JSON, int8 */
    rc = t_run(t_fmt("%s bench ann --base %s/base.fvecs --query %s/query.fvecs --gt %s/gt.ivecs --ef 80 --int8 --json",
                     t_bin(), dir, dir, dir),
               &out, 0);
    CHECK_EQ_INT(rc, 0);
    CHECK_CONTAINS(out, "\"recall\"");
    CHECK_CONTAINS(out, "\"int8\": true");
    char *r = out ? strstr(out, "\"recall\": ") : NULL;
    if (r) CHECK_MSG(atof(r + 10) >= 0.95, "recall %s", r + 10);
    free(out);
    /* damaged input: an error message and exit status 1, no crash */
    t_write(dir, "bad.fvecs", "\x20\0\0\0" "abc", 7);
    rc = t_run(t_fmt("%s bench ann --base %s/bad.fvecs --query %s/query.fvecs", t_bin(), dir, dir), &out, 1);
    CHECK_EQ_INT(rc, 1);
    CHECK_CONTAINS(out, "whole number of");
    free(out);
    rc = t_run(t_fmt("%s bench ann --base %s/base.fvecs", t_bin(), dir), &out, 1);
    CHECK_EQ_INT(rc, 2);
    free(out);
    free(x);
    free(q);
    gen_free(&g);
}

TEST(vecindex_small_collections_are_exact) {
    int d = 32;
    gen g = gen_new(d, 20);
    size_t n = 900, nq = 50;
    float *x = gen_draw(&g, n), *q = gen_draw(&g, nq);
    rl_vindex *vi = build(d, RL_VI_L2, RL_VI_F32, 4, 8, x, n, 1); /* a poor graph on purpose */
    double r_flat = recall_at(vi, q, nq, d, 10, (rl_vi_search_opts){.ef = 10});
    double r_graph = recall_at(vi, q, nq, d, 10, (rl_vi_search_opts){.ef = 10, .flat_below = -1});
    fprintf(stderr, "    900 vectors: default %.4f, graph only %.4f\n", r_flat, r_graph);
    CHECK(r_flat == 1.0);
    CHECK(r_graph < 1.0); /* the graph alone is not exact here, so the check above means something */
    rl_vindex_free(vi);
    free(x);
    free(q);
    gen_free(&g);
}

TEST(vecindex_churn_keeps_every_vector_reachable) {
    /* ten rounds of deleting a fifth at random and inserting as many new vectors (into the
     * reused slots); afterwards every live vector must still be found by searching for itself */
    int d = 32;
    gen g = gen_new(d, 21);
    size_t n = 4000, nq = 100;
    float *x = gen_draw(&g, n), *q = gen_draw(&g, nq);
    rl_vindex *vi = build(d, RL_VI_L2, RL_VI_F32, 8, 60, x, n, 1);
    uint64_t *live = rl_xmalloc(n * sizeof *live);
    float *vec = rl_xmalloc(n * (size_t)d * sizeof *vec);
    for (size_t i = 0; i < n; i++) live[i] = i * 7 + 3;
    memcpy(vec, x, n * (size_t)d * sizeof *vec);
    uint64_t next_id = 10000000;
    size_t self0 = 0;
    for (size_t i = 0; i < n; i++) {
        rl_vi_hit h0[1];
        int n0;
        CHECK_OK(rl_vindex_search(vi, NULL, vec + i * (size_t)d, 1, &(rl_vi_search_opts){.ef = 32}, h0, &n0, NULL));
        self0 += n0 == 1 && h0[0].id == live[i];
    }
    rng_state = 1234;
    for (int round = 0; round < 10; round++) {
        for (size_t c = 0; c < n / 5; c++) {
            size_t i = rnd() % n;
            CHECK_OK(rl_vindex_remove(vi, live[i], NULL));
            float *y = gen_draw(&g, 1);
            memcpy(vec + i * (size_t)d, y, (size_t)d * sizeof *y);
            free(y);
            live[i] = next_id++;
            CHECK_OK(rl_vindex_add(vi, live[i], vec + i * (size_t)d, NULL));
        }
    }
    CHECK_EQ_INT(rl_vindex_count(vi), n);
    CHECK(rl_vindex_deleted(vi) <= 1);
    size_t self = 0;
    rl_vi_hit h[1];
    int nh;
    for (size_t i = 0; i < n; i++) {
        CHECK_OK(rl_vindex_search(vi, NULL, vec + i * (size_t)d, 1, &(rl_vi_search_opts){.ef = 32}, h, &nh, NULL));
        self += nh == 1 && h[0].id == live[i];
        if (getenv("CHURN_DEBUG") && !(nh == 1 && h[0].id == live[i])) {
            rl_vi_hit e[2];
            int ne;
            rl_vindex_search(vi, NULL, vec + i * (size_t)d, 2, &(rl_vi_search_opts){.exact = 1}, e, &ne, NULL);
            fprintf(stderr, "    miss id %llu (%s): got %llu d=%g; exact %llu d=%g, %llu d=%g\n", (unsigned long long)live[i],
                    live[i] >= 10000000 ? "new" : "old", (unsigned long long)h[0].id, h[0].dist,
                    (unsigned long long)e[0].id, e[0].dist, (unsigned long long)e[1].id, e[1].dist);
        }
    }
    double r = recall_at(vi, q, nq, d, 10, (rl_vi_search_opts){.ef = 64});
    fprintf(stderr, "    after 10 rounds of 20%% churn: %zu of %zu find themselves (%zu before), recall@10 %.4f\n", self, n,
            self0, r);
    CHECK(self >= n * 99 / 100);
    CHECK(r >= 0.95);
    rl_vindex_free(vi);
    free(live);
    free(vec);
    free(x);
    free(q);
    gen_free(&g);
}

/* A loaded int8 index reads float rows with pread (rescoring, exact scans): the same ids and
 * distances as the index in memory, through the graph, an allow-list (exact) and a predicate. */
TEST(vecindex_int8_loaded_reads_floats_from_the_file) {
    int d = 24;
    gen g = gen_new(d, 23);
    size_t n = 2500, nq = 30;
    float *x = gen_draw(&g, n), *q = gen_draw(&g, nq);
    rl_vindex *vi = build(d, RL_VI_L2, RL_VI_INT8, 8, 60, x, n, 2);
    char *path = t_fmt("%s/i8.idx", t_tmpdir());
    rl_error err = {0};
    CHECK_OK(rl_vindex_save(vi, path, &err));
    rl_vindex *lo = NULL;
    CHECK_OK(rl_vindex_load(&lo, path, &err));
    if (!lo) return;
    CHECK(same_results(vi, lo, q, nq, d));
    uint64_t allow[40];
    for (int i = 0; i < 40; i++) allow[i] = (uint64_t)i * 61 * 7 + 3; /* ids are 7 i + 3 */
    rl_vi_hit ha[10], hb[10];
    int na, nb, same = 1;
    for (size_t i = 0; i < nq; i++) {
        rl_vi_search_opts o = {.ef = 32, .allow = allow, .n_allow = 40};
        CHECK_OK(rl_vindex_search(vi, NULL, q + i * d, 10, &o, ha, &na, NULL));
        CHECK_OK(rl_vindex_search(lo, NULL, q + i * d, 10, &o, hb, &nb, NULL));
        same &= na == nb && na == 10;
        for (int j = 0; j < na && j < nb; j++) same &= ha[j].id == hb[j].id && ha[j].dist == hb[j].dist && ((ha[j].id - 3) / 7) % 61 == 0;
        rl_vi_search_opts p = {.ef = 32, .filter = keep_mod, .filter_ctx = (void *)(uintptr_t)3};
        CHECK_OK(rl_vindex_search(vi, NULL, q + i * d, 10, &p, ha, &na, NULL));
        CHECK_OK(rl_vindex_search(lo, NULL, q + i * d, 10, &p, hb, &nb, NULL));
        same &= na == nb;
        for (int j = 0; j < na && j < nb; j++) same &= ha[j].id == hb[j].id && ha[j].dist == hb[j].dist;
    }
    CHECK(same);
    rl_vindex_free(lo);
    rl_vindex_free(vi);
    free(x), free(q);
    gen_free(&g);
}
