/* bench_ann.c - `raftlm bench ann`: builds an HNSW index over base vectors (fvecs), then for each
 * ef measures recall@k of single-thread searches against ground truth (an ivecs file, or exact
 * search computed here) and queries per second; also build time, index memory and file size.
 * Timings of searches take the best of --repeat runs (the machine is shared). */
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "vecindex/vecindex.h"

static const char *ann_usage =
    "ann --base F.fvecs --query F.fvecs [--gt F.ivecs] [-k 10] [--M 16] [--ef-construction 200]\n"
    "          [--ef 10,20,40,80,160] [--threads N] [--metric l2|ip|cosine] [--int8] [--repeat R]\n"
    "          [--max-base N] [--max-query N] [--save FILE] [--gt-out F.ivecs] [--json]\n\n"
    "Builds an HNSW index over the base vectors and prints, for each ef, recall@k against the\n"
    "ground truth (--gt, else exact search) and single-thread queries per second, plus build time,\n"
    "index memory and (with --save) the file size, load time, and the resident memory of the loaded\n"
    "file after searching all queries at the first ef.\n"
    "  --threads N      threads for the build and the exact ground truth (default: all CPUs)\n"
    "  --int8           int8 codes for the search, float rescoring of the candidates\n"
    "  --repeat R       time each ef R times and keep the fastest (default 1)\n"
    "  --gt-out FILE    write the exact ground truth (k per query) as ivecs\n";

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
        fclose(f);
    }
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

typedef struct {
    const rl_vindex *vi;
    const float *q;
    int d, k;
    int32_t *gt;
    rl_vi_scratch **sc;
} gt_job;

static void gt_one(void *ctx, size_t i, int thread) {
    gt_job *j = ctx;
    rl_vi_hit hits[1024];
    int n = 0;
    rl_vi_search_opts o = {.exact = 1};
    rl_vindex_search(j->vi, j->sc[thread], j->q + i * (size_t)j->d, j->k, &o, hits, &n, NULL);
    for (int r = 0; r < j->k; r++) j->gt[i * (size_t)j->k + (size_t)r] = r < n ? (int32_t)hits[r].id : -1;
}

static int parse_efs(const char *s, int *efs, int max) {
    int n = 0;
    while (*s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 100000) return -1;
        efs[n++] = (int)v;
        s = end;
        if (*s == ',') s++;
        else if (*s) return -1;
    }
    return n;
}

int bench_ann(int argc, char **argv) {
    enum { O_BASE = 1000, O_QUERY, O_GT, O_M, O_EFC, O_EF, O_THREADS, O_METRIC, O_INT8, O_JSON, O_REPEAT, O_MAXB, O_MAXQ, O_SAVE, O_GTOUT };
    static const struct option opts[] = {
        {"base", required_argument, 0, O_BASE},       {"query", required_argument, 0, O_QUERY},
        {"gt", required_argument, 0, O_GT},           {"M", required_argument, 0, O_M},
        {"ef-construction", required_argument, 0, O_EFC}, {"ef", required_argument, 0, O_EF},
        {"threads", required_argument, 0, O_THREADS}, {"metric", required_argument, 0, O_METRIC},
        {"int8", no_argument, 0, O_INT8},             {"json", no_argument, 0, O_JSON},
        {"repeat", required_argument, 0, O_REPEAT},   {"max-base", required_argument, 0, O_MAXB},
        {"max-query", required_argument, 0, O_MAXQ},  {"save", required_argument, 0, O_SAVE},
        {"gt-out", required_argument, 0, O_GTOUT},    {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *base_path = NULL, *query_path = NULL, *gt_path = NULL, *save_path = NULL, *gt_out = NULL;
    int k = 10, M = 16, efc = 200, threads = 0, json = 0, int8 = 0, repeat = 1, c, n_ef = 5;
    int efs[64] = {10, 20, 40, 80, 160};
    long max_base = 0, max_query = 0;
    rl_vi_metric metric = RL_VI_L2;
    optind = 1;
    while ((c = getopt_long(argc, argv, "k:h", opts, NULL)) != -1) {
        switch (c) {
        case O_BASE: base_path = optarg; break;
        case O_QUERY: query_path = optarg; break;
        case O_GT: gt_path = optarg; break;
        case O_SAVE: save_path = optarg; break;
        case O_GTOUT: gt_out = optarg; break;
        case 'k': k = atoi(optarg); break;
        case O_M: M = atoi(optarg); break;
        case O_EFC: efc = atoi(optarg); break;
        case O_THREADS: threads = atoi(optarg); break;
        case O_REPEAT: repeat = atoi(optarg); break;
        case O_MAXB: max_base = atol(optarg); break;
        case O_MAXQ: max_query = atol(optarg); break;
        case O_INT8: int8 = 1; break;
        case O_JSON: json = 1; break;
        case O_EF:
            if ((n_ef = parse_efs(optarg, efs, 64)) <= 0) {
                fprintf(stderr, "raftlm: --ef takes a comma-separated list of numbers, got '%s'\n", optarg);
                return 2;
            }
            break;
        case O_METRIC: {
            int m = rl_vi_metric_parse(optarg);
            if (m < 0) {
                fprintf(stderr, "raftlm: unknown metric '%s' (l2, ip, cosine)\n", optarg);
                return 2;
            }
            metric = (rl_vi_metric)m;
            break;
        }
        case 'h': printf("usage: raftlm bench %s", ann_usage); return 0;
        default: return cli_usage("bench", ann_usage);
        }
    }
    if (!base_path || !query_path) return cli_usage("bench", ann_usage);
    if (k < 1 || k > 1024 || repeat < 1 || repeat > 100 || threads < 0 || threads > 1024 || max_base < 0 || max_query < 0) {
        fprintf(stderr, "raftlm: -k must be 1..1024, --repeat 1..100, --threads 0..1024\n");
        return 2;
    }
    rl_error err = {0};
    float *base = NULL, *query = NULL;
    int32_t *gt = NULL;
    size_t nb = 0, nq = 0, ngt = 0;
    int db = 0, dq = 0, dgt = 0, code = 1;
    rl_vindex *vi = NULL;
    rl_pool *pool = NULL;
    rl_vi_hit *hits = NULL;
    json_t *runs = json_array();
    if (rl_fvecs_read(base_path, (size_t)max_base, &base, &nb, &db, &err)) goto fail;
    if (rl_fvecs_read(query_path, (size_t)max_query, &query, &nq, &dq, &err)) goto fail;
    if (db != dq) {
        rl_fail(&err, RL_EINVAL, "base vectors have dimension %d, queries %d", db, dq);
        goto fail;
    }
    if (gt_path) {
        if (rl_ivecs_read(gt_path, (size_t)max_query, &gt, &ngt, &dgt, &err)) goto fail;
        if (ngt < nq || dgt < k) {
            rl_fail(&err, RL_EINVAL, "%s has %zu rows of %d neighbours; need %zu rows of at least k=%d", gt_path, ngt, dgt,
                    nq, k);
            goto fail;
        }
    }
    rl_vi_params p;
    rl_vi_params_default(&p, db);
    p.metric = metric;
    p.M = M;
    p.ef_construction = efc;
    p.storage = int8 ? RL_VI_INT8 : RL_VI_F32;
    if (rl_vindex_create(&vi, &p, &err)) goto fail;
    pool = rl_pool_create(threads);
    uint64_t *ids = rl_xmalloc(nb * sizeof *ids);
    for (size_t i = 0; i < nb; i++) ids[i] = i;
    long rss0 = rss_kb();
    double t0 = rl_now();
    rl_status s = rl_vindex_add_batch(vi, nb, ids, base, pool, &err);
    double build_s = rl_now() - t0;
    long rss1 = rss_kb();
    free(ids);
    if (s) goto fail;
    if (!json)
        printf("ann: %zu base x %d, %zu queries, %s%s, M %d, ef_construction %d, %d threads, simd %s\n"
               "  build %.2f s (%.0f vectors/s), index memory %.1f MB (RSS +%.1f MB)\n",
               nb, db, nq, rl_vi_metric_name(metric), int8 ? " int8" : "", M, efc, rl_pool_size(pool),
               rl_vi_simd_name(vi), build_s, (double)nb / build_s, (double)rl_vindex_memory(vi) / 1e6,
               (double)(rss1 - rss0) / 1024.0);
    double gt_s = 0;
    if (!gt) {
        dgt = k;
        gt = malloc(nq * (size_t)k * sizeof *gt);
        if (!gt) {
            rl_fail(&err, RL_ENOMEM, "out of memory");
            goto fail;
        }
        int nt = rl_pool_size(pool);
        rl_vi_scratch **sc = rl_xcalloc((size_t)nt, sizeof *sc);
        for (int t = 0; t < nt; t++) sc[t] = rl_vi_scratch_new();
        gt_job j = {vi, query, db, k, gt, sc};
        t0 = rl_now();
        rl_pool_for(pool, nq, gt_one, &j);
        gt_s = rl_now() - t0;
        for (int t = 0; t < nt; t++) rl_vi_scratch_free(sc[t]);
        free(sc);
        if (!json) printf("  exact ground truth %.2f s (%.0f queries/s on %d threads)\n", gt_s, (double)nq / gt_s, nt);
        if (gt_out && rl_ivecs_write(gt_out, gt, nq, k, &err)) goto fail;
    }
    long file_bytes = -1;
    double save_s = 0, load_s = 0;
    if (save_path) {
        t0 = rl_now();
        if (rl_vindex_save(vi, save_path, &err)) goto fail;
        save_s = rl_now() - t0;
        rl_vindex *loaded = NULL;
        t0 = rl_now();
        if (rl_vindex_load(&loaded, save_path, &err)) goto fail;
        load_s = rl_now() - t0;
        rl_vindex_free(loaded);
        FILE *f = fopen(save_path, "rb");
        if (f) {
            fseek(f, 0, SEEK_END);
            file_bytes = ftell(f);
            fclose(f);
        }
        if (!json) printf("  file %.1f MB, save %.2f s, load (map + checks) %.3f s\n", (double)file_bytes / 1e6, save_s, load_s);
    }
    if (!json) printf("  %6s %10s %12s %10s %14s\n", "ef", "recall@k", "queries/s", "ms/query", "queries/cpu-s");
    hits = rl_xmalloc((size_t)k * sizeof *hits);
    rl_vi_scratch *sc = rl_vi_scratch_new();
    for (int e = 0; e < n_ef; e++) {
        rl_vi_search_opts o = {.ef = efs[e]};
        double best = 1e300, best_cpu = 1e300;
        size_t found = 0;
        for (int r = 0; r < repeat; r++) {
            found = 0;
            double c0 = cpu_now();
            t0 = rl_now();
            for (size_t i = 0; i < nq; i++) {
                int n = 0;
                if (rl_vindex_search(vi, sc, query + i * (size_t)db, k, &o, hits, &n, &err)) {
                    rl_vi_scratch_free(sc);
                    goto fail;
                }
                const int32_t *g = gt + i * (size_t)dgt;
                for (int a = 0; a < n; a++)
                    for (int b = 0; b < k; b++)
                        if ((int64_t)hits[a].id == g[b]) {
                            found++;
                            break;
                        }
            }
            double dt = rl_now() - t0, dc = cpu_now() - c0;
            if (dt < best) best = dt;
            if (dc < best_cpu) best_cpu = dc;
        }
        double recall = (double)found / ((double)nq * k), qps = (double)nq / best;
        if (!json) printf("  %6d %10.4f %12.0f %10.4f %14.0f\n", efs[e], recall, qps, best * 1e3 / (double)nq, (double)nq / best_cpu);
        json_t *r = json_object();
        json_object_set_new(r, "ef", json_integer(efs[e]));
        json_object_set_new(r, "recall", json_real(recall));
        json_object_set_new(r, "qps", json_real(qps));
        json_object_set_new(r, "qps_cpu", json_real((double)nq / best_cpu));
        json_array_append_new(runs, r);
    }
    rl_vi_scratch_free(sc);
    /* the saved file, loaded (mapped) and searched at the first ef: what a server holds resident */
    double l_rss0 = 0, l_rss1 = 0, l_rss2 = 0, l_recall = 0, l_qps = 0;
    if (save_path) {
        rl_vindex *lo = NULL;
        l_rss0 = (double)rss_kb();
        if (rl_vindex_load(&lo, save_path, &err)) goto fail;
        l_rss1 = (double)rss_kb();
        rl_vi_scratch *ls = rl_vi_scratch_new();
        rl_vi_search_opts o = {.ef = efs[0]};
        size_t found = 0;
        for (int r = 0; r < repeat; r++) { /* RSS after the first pass; queries/s the best pass */
            found = 0;
            double t1 = rl_now();
            for (size_t i = 0; i < nq; i++) {
                int n = 0;
                if (rl_vindex_search(lo, ls, query + i * (size_t)db, k, &o, hits, &n, &err)) break;
                for (int a = 0; a < n; a++)
                    for (int b = 0; b < k; b++)
                        if ((int64_t)hits[a].id == gt[i * (size_t)dgt + b]) {
                            found++;
                            break;
                        }
            }
            double qps = (double)nq / (rl_now() - t1);
            if (qps > l_qps) l_qps = qps;
            if (r == 0) l_rss2 = (double)rss_kb();
        }
        l_recall = (double)found / ((double)nq * k);
        rl_vi_scratch_free(ls);
        rl_vindex_free(lo);
        if (!json)
            printf("  loaded file: RSS +%.1f MB after the load, +%.1f MB after %zu queries at ef %d (recall %.4f, best pass %.0f queries/s)\n",
                   (l_rss1 - l_rss0) / 1024.0, (l_rss2 - l_rss0) / 1024.0, nq, efs[0], l_recall, l_qps);
    }
    if (json) {
        json_t *root = json_object();
        if (save_path) {
            json_object_set_new(root, "loaded_rss_after_load_bytes", json_integer((json_int_t)((l_rss1 - l_rss0) * 1024)));
            json_object_set_new(root, "loaded_rss_after_queries_bytes", json_integer((json_int_t)((l_rss2 - l_rss0) * 1024)));
            json_object_set_new(root, "loaded_recall", json_real(l_recall));
            json_object_set_new(root, "loaded_qps", json_real(l_qps));
        }
        json_object_set_new(root, "engine", json_string("raftlm"));
        json_object_set_new(root, "n_base", json_integer((json_int_t)nb));
        json_object_set_new(root, "n_query", json_integer((json_int_t)nq));
        json_object_set_new(root, "dim", json_integer(db));
        json_object_set_new(root, "metric", json_string(rl_vi_metric_name(metric)));
        json_object_set_new(root, "int8", json_boolean(int8));
        json_object_set_new(root, "M", json_integer(M));
        json_object_set_new(root, "ef_construction", json_integer(efc));
        json_object_set_new(root, "k", json_integer(k));
        json_object_set_new(root, "threads", json_integer(rl_pool_size(pool)));
        json_object_set_new(root, "simd", json_string(rl_vi_simd_name(vi)));
        json_object_set_new(root, "build_s", json_real(build_s));
        json_object_set_new(root, "index_bytes", json_integer((json_int_t)rl_vindex_memory(vi)));
        json_object_set_new(root, "rss_delta_bytes", json_integer((json_int_t)(rss1 - rss0) * 1024));
        if (gt_s > 0) json_object_set_new(root, "exact_s", json_real(gt_s));
        if (file_bytes >= 0) {
            json_object_set_new(root, "file_bytes", json_integer(file_bytes));
            json_object_set_new(root, "save_s", json_real(save_s));
            json_object_set_new(root, "load_s", json_real(load_s));
        }
        json_object_set_new(root, "runs", runs);
        runs = NULL;
        char *out = json_dumps(root, JSON_INDENT(2));
        printf("%s\n", out);
        free(out);
        json_decref(root);
    }
    code = 0;
fail:
    if (code) code = cli_report(&err);
    json_decref(runs);
    free(hits);
    free(base);
    free(query);
    free(gt);
    rl_vindex_free(vi);
    rl_pool_free(pool);
    return code;
}
