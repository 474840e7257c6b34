/* fuzz_vindex_load.c - libFuzzer target for the vector index loader: any bytes given to
 * rl_vindex_load_mem must give RL_OK or an error, never a crash; an index that loads is then
 * searched (graph, exact and filtered) and changed (an insert copies it into memory), which
 * must not crash either. Build and run with `make fuzz` (clang, -fsanitize=fuzzer,address). */
#include <stdlib.h>
#include <string.h>

#include "vecindex/vecindex.h"

static int odd(void *ctx, uint64_t id) {
    (void)ctx;
    return (int)(id & 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint64_t *buf = malloc(size / 8 * 8 + 8); /* the loader wants 8-byte alignment */
    if (!buf) return 0;
    memcpy(buf, data, size);
    rl_vindex *vi = NULL;
    rl_error err;
    if (rl_vindex_load_mem(&vi, buf, size, &err) == RL_OK) {
        int d = rl_vindex_params(vi)->dim;
        float *q = calloc((size_t)d, sizeof(float));
        for (int i = 0; i < d; i++) q[i] = (float)(i % 7) - 3.0f;
        rl_vi_hit h[8];
        int n;
        rl_vi_search_opts o = {.flat_below = -1};
        rl_vindex_search(vi, NULL, q, 8, &o, h, &n, NULL);
        o = (rl_vi_search_opts){.exact = 1};
        rl_vindex_search(vi, NULL, q, 8, &o, h, &n, NULL);
        o = (rl_vi_search_opts){.filter = odd, .ef = 16, .flat_below = -1, .exact_below = 1e-9};
        rl_vindex_search(vi, NULL, q, 8, &o, h, &n, NULL);
        rl_vindex_add(vi, 0xFFFFFFFFFFull, q, NULL);
        o = (rl_vi_search_opts){.flat_below = -1};
        rl_vindex_search(vi, NULL, q, 8, &o, h, &n, NULL);
        free(q);
        rl_vindex_free(vi);
    }
    free(buf);
    return 0;
}
