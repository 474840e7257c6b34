/* ann_search.c - search-only half of the interleaved comparison (bench/ann_interleave.sh):
 * loads a raftlm index file written by `raftlm bench ann --save`, copies it into memory
 * (rl_vindex_materialize, as hnswlib's loadIndex reads its file into memory), and for each ef
 * times single-thread searches of all queries, printing one JSON line per ef:
 *   {"ef": .., "recall": .., "qps": .., "qps_cpu": ..}
 *   ann_search INDEX QUERY.fvecs GT.ivecs EF1,EF2,.. K */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vecindex/vecindex.h"

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: ann_search INDEX QUERY.fvecs GT.ivecs EFS K\n");
        return 2;
    }
    rl_error err = {0};
    rl_vindex *vi = NULL;
    float *q = NULL;
    int32_t *gt = NULL;
    size_t nq, ng;
    int d, dg, k = atoi(argv[5]);
    if (rl_vindex_load(&vi, argv[1], &err) || rl_vindex_materialize(vi, &err) ||
        rl_fvecs_read(argv[2], 0, &q, &nq, &d, &err) || rl_ivecs_read(argv[3], 0, &gt, &ng, &dg, &err)) {
        fprintf(stderr, "ann_search: %s\n", err.msg);
        return 1;
    }
    if (k < 1 || k > 1024 || dg < k || ng < nq || d != rl_vindex_params(vi)->dim) {
        fprintf(stderr, "ann_search: sizes do not match\n");
        return 1;
    }
    rl_vi_scratch *sc = rl_vi_scratch_new();
    rl_vi_hit *h = malloc((size_t)k * sizeof *h);
    for (char *s = argv[4]; *s;) {
        int ef = (int)strtol(s, &s, 10);
        if (*s == ',') s++;
        rl_vi_search_opts o = {.ef = ef};
        size_t found = 0;
        double c0 = cpu_now(), t0 = rl_now();
        for (size_t i = 0; i < nq; i++) {
            int n = 0;
            rl_vindex_search(vi, sc, q + i * (size_t)d, k, &o, h, &n, NULL);
            for (int a = 0; a < n; a++)
                for (int b = 0; b < k; b++)
                    if ((int64_t)h[a].id == gt[i * (size_t)dg + (size_t)b]) {
                        found++;
                        break;
                    }
        }
        double dc = cpu_now() - c0, dt = rl_now() - t0;
        printf("{\"ef\": %d, \"recall\": %.5f, \"qps\": %.1f, \"qps_cpu\": %.1f}\n", ef, (double)found / ((double)nq * k),
               (double)nq / dt, (double)nq / dc);
    }
    free(h);
    rl_vi_scratch_free(sc);
    rl_vindex_free(vi);
    free(q);
    free(gt);
    return 0;
}
