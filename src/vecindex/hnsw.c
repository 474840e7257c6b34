/* hnsw.c - the HNSW graph (Malkov & Yashunin, 2016): inserts, deletes, compaction, filtered and
 * exact search.
 *
 * How it works. Each vector gets a slot and a top level drawn from a geometric distribution
 * (a hash of seed and slot, so builds do not depend on thread timing). Level 0 links every node
 * to up to 2M neighbours, upper levels to M; neighbours are chosen with the HNSW heuristic (keep
 * a candidate only if it is closer to the new node than to every neighbour already kept), and
 * links are made both ways, pruning the other end with the same heuristic when it is full.
 * A search walks greedily down the upper levels, then runs a best-first search with a list of ef
 * candidates on level 0. Threaded inserts lock one neighbour list at a time (striped mutexes)
 * and hold a global lock only while inserting a node above the current top level.
 *
 * Speed: vectors are padded rows in one array, level-0 lists are fixed-size rows, the visited
 * set is a uint16 stamp per slot (a new search bumps the stamp; the array is cleared once every
 * 65535 searches), the next neighbour's vector and stamp are prefetched, and distances come
 * from the SIMD kernels. With int8 storage the walk uses int8 codes (a quarter of the memory
 * traffic) and the ef candidates are rescored with float vectors.
 *
 * Deletes mark a tombstone: the node still routes searches but is never returned. An insert
 * reuses a tombstoned slot after unlinking it: each of its neighbours that pointed back drops
 * the link and re-selects its list from its own neighbours plus the dead node's. Links from
 * nodes the dead node did not list remain and lead to the slot's new vector (a few long links,
 * harmless to correctness). rl_vindex_compact rebuilds the graph from the live vectors.
 *
 * Filtered search keeps walking through nodes that fail the filter (they route, like
 * tombstones) and only collects passing ones; when the filter passes few vectors the graph walk
 * would visit most of the graph anyway, so below a selectivity threshold the search is exact.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vecindex/vi_internal.h"

#define N_LOCKS 4096

/* ---- parameters ---- */

void rl_vi_params_default(rl_vi_params *p, int dim) {
    memset(p, 0, sizeof *p);
    p->dim = dim;
    p->metric = RL_VI_L2;
    p->storage = RL_VI_F32;
    p->M = 16;
    p->ef_construction = 200;
    p->seed = 42;
}

int rl_vi_metric_parse(const char *name) {
    if (!name) return -1;
    if (strcmp(name, "l2") == 0) return RL_VI_L2;
    if (strcmp(name, "ip") == 0) return RL_VI_IP;
    if (strcmp(name, "cosine") == 0 || strcmp(name, "cos") == 0) return RL_VI_COSINE;
    return -1;
}

const char *rl_vi_metric_name(rl_vi_metric m) {
    switch (m) {
    case RL_VI_L2: return "l2";
    case RL_VI_IP: return "ip";
    case RL_VI_COSINE: return "cosine";
    }
    return "?";
}

static rl_status check_params(const rl_vi_params *p, rl_error *err) {
    if (p->dim < 1 || p->dim > 65536) return rl_fail(err, RL_EINVAL, "vector dimension %d is outside 1..65536", p->dim);
    if (p->metric != RL_VI_L2 && p->metric != RL_VI_IP && p->metric != RL_VI_COSINE)
        return rl_fail(err, RL_EINVAL, "unknown metric %d", (int)p->metric);
    if (p->storage != RL_VI_F32 && p->storage != RL_VI_INT8)
        return rl_fail(err, RL_EINVAL, "unknown storage %d", (int)p->storage);
    if (p->M < 2 || p->M > 128) return rl_fail(err, RL_EINVAL, "M must be from 2 to 128, got %d", p->M);
    if (p->ef_construction < 1 || p->ef_construction > 65536)
        return rl_fail(err, RL_EINVAL, "ef_construction must be from 1 to 65536, got %d", p->ef_construction);
    return RL_OK;
}

/* ---- lifetime ---- */

void vi_select_kernels(rl_vindex *vi) { vi->k = rl_vi_kernels_get(RL_VI_SIMD_AVX512); }

void vi_locks_init(rl_vindex *vi) {
    vi->n_locks = N_LOCKS;
    vi->locks = rl_xmalloc((N_LOCKS + 1) * sizeof *vi->locks);
    for (size_t i = 0; i <= N_LOCKS; i++) pthread_mutex_init(&vi->locks[i], NULL);
    vi->glock = &vi->locks[N_LOCKS];
}

rl_vindex *vi_new(const rl_vi_params *p) {
    rl_vindex *vi = rl_xcalloc(1, sizeof *vi);
    vi->p = *p;
    if (vi->p.ef_construction < vi->p.M) vi->p.ef_construction = vi->p.M;
    vi->dimp = (p->dim + 15) & ~15;
    vi->M0 = 2 * p->M;
    vi->entry = RL_VI_NONE;
    vi->max_level = -1;
    vi->owned = 1;
    vi->vec_fd = -1;
    vi_select_kernels(vi);
    vi_locks_init(vi);
    return vi;
}

rl_status rl_vindex_create(rl_vindex **out, const rl_vi_params *p, rl_error *err) {
    *out = NULL;
    if (!p) return rl_fail(err, RL_EINVAL, "no index parameters");
    rl_status s = check_params(p, err);
    if (s) return s;
    rl_vindex *vi = vi_new(p);
    if (vi->p.storage == RL_VI_INT8) vi->mean = rl_xcalloc((size_t)vi->dimp, sizeof(float));
    *out = vi;
    return RL_OK;
}

static void free_arrays(rl_vindex *vi) {
    if (vi->owned) {
        free(vi->vec);
        free(vi->code);
        free(vi->cterm);
        free(vi->scale);
        free(vi->mean);
        free(vi->ids);
        free(vi->level);
        free(vi->flags);
        free(vi->links0);
        free(vi->uoff);
        free(vi->upper);
    }
    free(vi->hkeys);
    free(vi->hslots);
    free(vi->free_slots);
    rl_mmap_close(&vi->map);
    if (vi->vec_fd >= 0) close(vi->vec_fd);
    vi->vec_fd = -1;
}

void rl_vindex_free(rl_vindex *vi) {
    if (!vi) return;
    free_arrays(vi);
    for (size_t i = 0; i <= vi->n_locks; i++) pthread_mutex_destroy(&vi->locks[i]);
    free(vi->locks);
    free(vi);
}

const rl_vi_params *rl_vindex_params(const rl_vindex *vi) { return &vi->p; }
size_t rl_vindex_count(const rl_vindex *vi) { return vi->n - vi->n_deleted; }
size_t rl_vindex_deleted(const rl_vindex *vi) { return vi->n_deleted; }
const char *rl_vi_simd_name(const rl_vindex *vi) { return vi->k->name; }

size_t rl_vindex_memory(const rl_vindex *vi) {
    size_t m = vi->hcap * (sizeof(uint64_t) + sizeof(uint32_t)) + vi->free_cap * sizeof(uint32_t);
    m += vi->n_locks * sizeof(pthread_mutex_t) + sizeof *vi;
    if (!vi->owned) return m;
    size_t c = vi->cap, dp = (size_t)vi->dimp;
    m += c * dp * sizeof(float) + c * (sizeof(uint64_t) * 2 + 2) + c * (size_t)(vi->M0 + 1) * 4;
    m += vi->upper_cap * 4;
    if (vi->code) m += c * dp + c * 8 + dp * 4;
    return m;
}


/* Grows (or, for a loaded index, copies into memory) every per-slot array to cap slots. */
rl_status vi_alloc(rl_vindex *vi, size_t cap, rl_error *err) {
    if (cap < vi->n) cap = vi->n;
    if (cap == 0) cap = 1;
    size_t dp = (size_t)vi->dimp, L0 = (size_t)(vi->M0 + 1);
    int i8 = vi->p.storage == RL_VI_INT8;
    struct {
        void **p;
        size_t elem;
    } arr[] = {
        {(void **)&vi->vec, dp * sizeof(float)}, {(void **)&vi->ids, sizeof(uint64_t)},
        {(void **)&vi->level, 1},               {(void **)&vi->flags, 1},
        {(void **)&vi->links0, L0 * 4},         {(void **)&vi->uoff, sizeof(uint64_t)},
        {(void **)&vi->code, i8 ? dp : 0},      {(void **)&vi->cterm, i8 ? 4 : 0},
        {(void **)&vi->scale, i8 ? 4 : 0},
    };
    if (cap > SIZE_MAX / (dp * sizeof(float) + L0 * 4 + 64)) return rl_fail(err, RL_ENOMEM, "index too large");
    void *fresh[sizeof arr / sizeof arr[0]] = {0};
    size_t na = sizeof arr / sizeof arr[0];
    for (size_t a = 0; a < na; a++) {
        if (!arr[a].elem) continue;
        fresh[a] = rl_big_alloc(cap * arr[a].elem);
        if (!fresh[a]) {
            for (size_t b = 0; b < a; b++) free(fresh[b]);
            return rl_fail(err, RL_ENOMEM, "out of memory for %zu vectors", cap);
        }
        if (vi->n && *arr[a].p) memcpy(fresh[a], *arr[a].p, vi->n * arr[a].elem);
    }
    /* upper pool and mean (not per slot) */
    uint32_t *up = NULL;
    float *mean = NULL;
    size_t ucap = vi->upper_cap > vi->upper_len ? vi->upper_cap : vi->upper_len;
    if (ucap) {
        up = malloc(ucap * 4);
        if (!up) {
            for (size_t b = 0; b < na; b++) free(fresh[b]);
            return rl_fail(err, RL_ENOMEM, "out of memory for the upper levels");
        }
        if (vi->upper_len) memcpy(up, vi->upper, vi->upper_len * 4);
    }
    if (i8) {
        mean = rl_xcalloc(dp, sizeof(float));
        if (vi->mean) memcpy(mean, vi->mean, dp * sizeof(float));
    }
    if (vi->owned) {
        for (size_t a = 0; a < na; a++) free(*arr[a].p);
        free(vi->upper);
        free(vi->mean);
    }
    for (size_t a = 0; a < na; a++) *arr[a].p = fresh[a];
    vi->upper = up;
    vi->upper_cap = ucap;
    vi->mean = mean;
    vi->cap = cap;
    if (!vi->owned) {
        rl_mmap_close(&vi->map);
        vi->owned = 1;
    }
    return RL_OK;
}

static rl_status upper_reserve(rl_vindex *vi, size_t extra, rl_error *err) {
    if (vi->upper_len + extra <= vi->upper_cap) return RL_OK;
    size_t nc = vi->upper_cap ? vi->upper_cap : 1024;
    while (nc < vi->upper_len + extra) nc *= 2;
    uint32_t *up = realloc(vi->upper, nc * 4);
    if (!up) return rl_fail(err, RL_ENOMEM, "out of memory for the upper levels");
    vi->upper = up;
    vi->upper_cap = nc;
    return RL_OK;
}

/* ---- id -> slot hash ---- */

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint32_t hash_find(const rl_vindex *vi, uint64_t id) {
    if (!vi->hcap) return RL_VI_NONE;
    size_t m = vi->hcap - 1;
    for (size_t h = mix64(id) & m;; h = (h + 1) & m) {
        if (vi->hslots[h] == RL_VI_NONE) return RL_VI_NONE;
        if (vi->hkeys[h] == id) return vi->hslots[h];
    }
}

static void hash_put_raw(uint64_t *keys, uint32_t *slots, size_t cap, uint64_t id, uint32_t slot) {
    size_t m = cap - 1, h = mix64(id) & m;
    while (slots[h] != RL_VI_NONE && keys[h] != id) h = (h + 1) & m;
    keys[h] = id;
    slots[h] = slot;
}

static rl_status hash_reserve(rl_vindex *vi, size_t count, rl_error *err) {
    if ((count + 1) * 2 <= vi->hcap) return RL_OK;
    size_t nc = 64;
    while (nc < (count + 1) * 2) nc *= 2;
    uint64_t *keys = malloc(nc * sizeof *keys);
    uint32_t *slots = malloc(nc * sizeof *slots);
    if (!keys || !slots) {
        free(keys);
        free(slots);
        return rl_fail(err, RL_ENOMEM, "out of memory for the id table");
    }
    memset(slots, 0xFF, nc * sizeof *slots);
    for (size_t i = 0; i < vi->hcap; i++)
        if (vi->hslots[i] != RL_VI_NONE) hash_put_raw(keys, slots, nc, vi->hkeys[i], vi->hslots[i]);
    free(vi->hkeys);
    free(vi->hslots);
    vi->hkeys = keys;
    vi->hslots = slots;
    vi->hcap = nc;
    return RL_OK;
}

static void hash_put(rl_vindex *vi, uint64_t id, uint32_t slot) {
    hash_put_raw(vi->hkeys, vi->hslots, vi->hcap, id, slot);
    vi->hcount++;
}

static void hash_erase(rl_vindex *vi, uint64_t id) {
    if (!vi->hcap) return;
    size_t m = vi->hcap - 1, h = mix64(id) & m;
    while (vi->hslots[h] != RL_VI_NONE && vi->hkeys[h] != id) h = (h + 1) & m;
    if (vi->hslots[h] == RL_VI_NONE) return;
    /* backward-shift deletion keeps probe chains whole without tombstones */
    size_t hole = h;
    for (size_t j = (h + 1) & m; vi->hslots[j] != RL_VI_NONE; j = (j + 1) & m) {
        size_t home = mix64(vi->hkeys[j]) & m;
        /* move j into the hole if its home is not within (hole, j] cyclically */
        int in_range = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!in_range) {
            vi->hkeys[hole] = vi->hkeys[j];
            vi->hslots[hole] = vi->hslots[j];
            hole = j;
        }
    }
    vi->hslots[hole] = RL_VI_NONE;
    vi->hcount--;
}

rl_status vi_hash_rebuild(rl_vindex *vi, rl_error *err) {
    free(vi->hkeys);
    free(vi->hslots);
    vi->hkeys = NULL;
    vi->hslots = NULL;
    vi->hcap = vi->hcount = 0;
    free(vi->free_slots);
    vi->free_slots = NULL;
    vi->n_free = vi->free_cap = 0;
    size_t live = 0, dead = 0;
    for (size_t i = 0; i < vi->n; i++) (vi->flags[i] & RL_VI_DELETED) ? dead++ : live++;
    rl_status s = hash_reserve(vi, live, err);
    if (s) return s;
    if (dead) {
        vi->free_slots = malloc(dead * sizeof(uint32_t));
        if (!vi->free_slots) return rl_fail(err, RL_ENOMEM, "out of memory");
        vi->free_cap = dead;
    }
    for (size_t i = 0; i < vi->n; i++) {
        if (vi->flags[i] & RL_VI_DELETED) {
            vi->free_slots[vi->n_free++] = (uint32_t)i;
            continue;
        }
        if (hash_find(vi, vi->ids[i]) != RL_VI_NONE)
            return rl_fail(err, RL_EFORMAT, "id %llu appears twice", (unsigned long long)vi->ids[i]);
        hash_put(vi, vi->ids[i], (uint32_t)i);
    }
    vi->n_deleted = dead;
    return RL_OK;
}

int rl_vindex_contains(const rl_vindex *vi, uint64_t id) { return hash_find(vi, id) != RL_VI_NONE; }

rl_status rl_vindex_get(const rl_vindex *vi, uint64_t id, float *out, rl_error *err) {
    uint32_t s = hash_find(vi, id);
    if (s == RL_VI_NONE) return rl_fail(err, RL_ENOTFOUND, "id %llu is not in the index", (unsigned long long)id);
    memcpy(out, vi->vec + (size_t)s * (size_t)vi->dimp, (size_t)vi->p.dim * sizeof(float));
    return RL_OK;
}

/* ---- vectors ---- */

/* Copies x (dim) into out (dimp, zero padded), normalized under cosine. */
static rl_status prepare_vec(const rl_vindex *vi, const float *x, float *out, rl_error *err) {
    int d = vi->p.dim;
    double nrm = 0;
    for (int i = 0; i < d; i++) {
        if (!isfinite(x[i])) return rl_fail(err, RL_EINVAL, "vector has a non-finite value at %d", i);
        nrm += (double)x[i] * x[i];
    }
    if (!isfinite(nrm)) return rl_fail(err, RL_EINVAL, "vector norm overflows");
    float scale = 1;
    if (vi->p.metric == RL_VI_COSINE) {
        if (nrm == 0) return rl_fail(err, RL_EINVAL, "zero vector under the cosine metric");
        scale = (float)(1.0 / sqrt(nrm));
    }
    for (int i = 0; i < d; i++) out[i] = x[i] * scale;
    for (int i = d; i < vi->dimp; i++) out[i] = 0;
    return RL_OK;
}

/* x ~ mean + scale * code (center) or scale * code, code in [-127, 127]; *cterm = |scale * code|^2.
 * Stored vectors are centred (the mean of the first batch): embeddings share a large common
 * component, and removing it leaves the 8 bits for what tells vectors apart. */
static void quantize(const rl_vindex *vi, const float *x, int center, int8_t *code, float *scale, float *cterm) {
    int dp = vi->dimp;
    float mx = 0;
    for (int i = 0; i < dp; i++) {
        float c = fabsf(x[i] - (center ? vi->mean[i] : 0.0f));
        if (c > mx) mx = c;
    }
    float s = mx > 0 ? mx / 127.0f : 1.0f, inv = 1.0f / s;
    int64_t sq = 0;
    for (int i = 0; i < dp; i++) {
        float c = (x[i] - (center ? vi->mean[i] : 0.0f)) * inv;
        long v = lrintf(c);
        if (v > 127) v = 127;
        if (v < -127) v = -127;
        code[i] = (int8_t)v;
        sq += v * v;
    }
    *scale = s;
    *cterm = s * s * (float)sq;
}

static inline const float *vrow(const rl_vindex *vi, uint32_t s) { return vi->vec + (size_t)s * (size_t)vi->dimp; }

static inline float dist_f(const rl_vindex *vi, const float *q, uint32_t s) {
    if (vi->p.metric == RL_VI_L2) return vi->k->l2sq(q, vrow(vi, s), (size_t)vi->dimp);
    return 1.0f - vi->k->dot(q, vrow(vi, s), (size_t)vi->dimp);
}

/* ---- scratch ---- */

typedef struct {
    float d;
    uint32_t s;
} cand;

struct rl_vi_scratch {
    uint16_t *visited, *allowed;
    size_t vcap, acap;
    uint16_t gen, agen;
    cand *c, *r, *t; /* candidate heap, result heap, temporary list */
    size_t ccap, rcap, tcap;
    float *q, *row; /* the query; a float row read from the file */
    int8_t *qc;
    size_t qcap, rowcap;
    uint32_t *nb; /* a copy of a neighbour list */
    size_t nbcap;
};

rl_vi_scratch *rl_vi_scratch_new(void) { return rl_xcalloc(1, sizeof(rl_vi_scratch)); }

void rl_vi_scratch_free(rl_vi_scratch *s) {
    if (!s) return;
    free(s->visited);
    free(s->allowed);
    free(s->c);
    free(s->r);
    free(s->t);
    free(s->q);
    free(s->row);
    free(s->qc);
    free(s->nb);
    free(s);
}

static void grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (*cap >= need) return;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) nc *= 2;
    *p = rl_xrealloc(*p, nc * elem);
    *cap = nc;
}

/* Prepares the scratch for a search over n slots with lists up to ef (+ links). */
static void scratch_ready(rl_vi_scratch *s, const rl_vindex *vi, size_t ef) {
    if (s->vcap < vi->n) {
        free(s->visited);
        s->vcap = vi->n + vi->n / 4 + 64;
        s->visited = rl_xcalloc(s->vcap, sizeof(uint16_t));
        s->gen = 0;
    }
    if (++s->gen == 0) {
        memset(s->visited, 0, s->vcap * sizeof(uint16_t));
        s->gen = 1;
    }
    size_t need = ef + (size_t)vi->M0 + 2;
    grow((void **)&s->c, &s->ccap, vi->n + need < 1024 ? 1024 : need * 4, sizeof(cand));
    grow((void **)&s->r, &s->rcap, need, sizeof(cand));
    grow((void **)&s->t, &s->tcap, need, sizeof(cand));
    grow((void **)&s->nb, &s->nbcap, (size_t)vi->M0 + 1, sizeof(uint32_t));
    grow((void **)&s->q, &s->qcap, (size_t)vi->dimp, sizeof(float));
    grow((void **)&s->row, &s->rowcap, (size_t)vi->dimp, sizeof(float));
    s->qc = rl_xrealloc(s->qc, (size_t)vi->dimp + 64);
}

/* min-heap (candidates) and max-heap (results) over cand.d */
static inline void cpush(rl_vi_scratch *s, size_t *n, cand x) {
    if (*n + 1 > s->ccap) grow((void **)&s->c, &s->ccap, *n + 1, sizeof(cand));
    cand *h = s->c;
    size_t i = (*n)++;
    while (i) {
        size_t p = (i - 1) / 2;
        if (h[p].d <= x.d) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}
static inline cand cpop(cand *h, size_t *n) {
    cand top = h[0], x = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= m) break;
        if (l + 1 < m && h[l + 1].d < h[l].d) l++;
        if (h[l].d >= x.d) break;
        h[i] = h[l];
        i = l;
    }
    if (m) h[i] = x;
    return top;
}
static inline void rpush(cand *h, size_t *n, cand x) {
    size_t i = (*n)++;
    while (i) {
        size_t p = (i - 1) / 2;
        if (h[p].d >= x.d) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}
static inline void rpop(cand *h, size_t *n) {
    cand x = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= m) break;
        if (l + 1 < m && h[l + 1].d > h[l].d) l++;
        if (h[l].d <= x.d) break;
        h[i] = h[l];
        i = l;
    }
    if (m) h[i] = x;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->d < y->d) return -1;
    if (x->d > y->d) return 1;
    return x->s < y->s ? -1 : x->s > y->s;
}

static inline int cand_less(cand a, cand b) { return a.d < b.d || (a.d == b.d && a.s < b.s); }

/* Sorts a max-heap (as rpush leaves it) into ascending order, in place. */
static void heap_sort_desc_heap(cand *h, size_t n) {
    while (n > 1) {
        cand top = h[0];
        size_t m = n - 1;
        cand x = h[m];
        size_t i = 0;
        for (;;) {
            size_t l = 2 * i + 1;
            if (l >= m) break;
            if (l + 1 < m && h[l + 1].d > h[l].d) l++;
            if (h[l].d <= x.d) break;
            h[i] = h[l];
            i = l;
        }
        h[i] = x;
        h[m] = top;
        n = m;
    }
}

/* Insertion sort, for short lists (neighbour lists). */
static void sort_small(cand *t, size_t n) {
    for (size_t i = 1; i < n; i++) {
        cand x = t[i];
        size_t j = i;
        while (j > 0 && cand_less(x, t[j - 1])) {
            t[j] = t[j - 1];
            j--;
        }
        t[j] = x;
    }
}

/* ---- the query: float or int8 ---- */

typedef struct {
    const float *q; /* padded, normalized for cosine */
    const int8_t *qc;
    float qs, qconst; /* int8: dist ~ qconst - coef * scale_x * dot(qc, code_x) + cterm_x*l2 */
    int i8;
    /* filter */
    const uint16_t *allowed;
    uint16_t agen;
    int (*fn)(void *, uint64_t);
    void *ctx;
    int filtering; /* any reason to skip nodes: tombstones, allow-list or predicate */
    uint32_t self; /* inserts: the node being inserted (a reused slot may be reachable through old
                    * links, and its own lists are empty until this insert fills them) */
} query;

static inline float qdist(const rl_vindex *vi, const query *qq, uint32_t s) {
    if (qq->i8) {
        size_t dp = (size_t)vi->dimp;
        float dt = (float)vi->k->dot_i8(qq->qc, vi->code + (size_t)s * dp, dp) * qq->qs * vi->scale[s];
        if (vi->p.metric == RL_VI_L2) return qq->qconst - 2.0f * dt + vi->cterm[s];
        return qq->qconst - dt;
    }
    return dist_f(vi, qq->q, s);
}

#ifndef PF_AHEAD
#define PF_AHEAD 4
#endif
#ifndef PF_LINES
#define PF_LINES 4
#endif
/* Prefetches the first PF_LINES cache lines of a row (the hardware prefetcher follows on). */
static inline void prefetch_node(const rl_vindex *vi, const query *qq, uint32_t s) {
    const char *p;
    size_t bytes;
    if (qq->i8) {
        p = (const char *)(vi->code + (size_t)s * (size_t)vi->dimp);
        bytes = (size_t)vi->dimp;
    } else {
        p = (const char *)vrow(vi, s);
        bytes = (size_t)vi->dimp * 4;
    }
    for (size_t o = 0; o < bytes && o < PF_LINES * 64; o += 64) __builtin_prefetch(p + o);
}

static inline int accept(const rl_vindex *vi, const query *qq, uint32_t s) {
    if (vi->flags[s] & RL_VI_DELETED) return 0;
    if (qq->allowed && qq->allowed[s] != qq->agen) return 0;
    if (qq->fn && !qq->fn(qq->ctx, vi->ids[s])) return 0;
    return 1;
}

/* Copies the neighbour list of s at lev into s->nb under its lock (threaded inserts). */
static inline const uint32_t *read_links(const rl_vindex *vi, rl_vi_scratch *sc, uint32_t s, int lev, int locked) {
    const uint32_t *l = vi_links(vi, s, lev);
    if (!locked) return l;
    pthread_mutex_t *mu = &vi->locks[s & (vi->n_locks - 1)];
    pthread_mutex_lock(mu);
    uint32_t n = l[0];
    memcpy(sc->nb, l, (n + 1) * sizeof(uint32_t));
    pthread_mutex_unlock(mu);
    return sc->nb;
}

/* Greedy walk on one level from *cur toward the query. */
static void greedy(const rl_vindex *vi, rl_vi_scratch *sc, const query *qq, int lev, uint32_t *cur, float *curd,
                   int locked) {
    int changed = 1;
    while (changed) {
        changed = 0;
        const uint32_t *l = read_links(vi, sc, *cur, lev, locked);
        uint32_t n = l[0];
        for (uint32_t j = 1; j <= n; j++) {
            uint32_t nb = l[j];
            if (j + 1 <= n) prefetch_node(vi, qq, l[j + 1]);
            if (nb == qq->self) continue;
            float d = qdist(vi, qq, nb);
            if (d < *curd) {
                *curd = d;
                *cur = nb;
                changed = 1;
            }
        }
    }
}

/* Best-first search on one level from ep; leaves up to ef accepted nodes in sc->r (max-heap),
 * returns their number. Nodes that are not accepted still route the search. */
static __attribute__((always_inline)) inline size_t search_level(const rl_vindex *vi, rl_vi_scratch *sc,
                                                                  const query *qq, uint32_t ep, float epd, int lev,
                                                                  size_t ef, int locked) {
    uint16_t *vis = sc->visited, gen = sc->gen;
    size_t nc = 0, nr = 0;
    float bound = FLT_MAX;
    vis[ep] = gen;
    cpush(sc, &nc, (cand){epd, ep});
    if (!qq->filtering || accept(vi, qq, ep)) {
        rpush(sc->r, &nr, (cand){epd, ep});
        bound = epd;
    }
    while (nc) {
        cand cur = sc->c[0];
        if (cur.d > bound && (nr == ef || !qq->filtering)) break;
        cpop(sc->c, &nc);
        const uint32_t *l = read_links(vi, sc, cur.s, lev, locked);
        uint32_t n = l[0], nt = 0;
        /* two passes: first the unvisited neighbours (their rows prefetched as they are found,
         * so that many cache misses are in flight at once), then their distances */
        uint32_t todo[2 * 128 + 1];
        for (uint32_t j = 1; j <= n; j++) __builtin_prefetch(vis + l[j]);
        for (uint32_t j = 1; j <= n; j++) {
            uint32_t nb = l[j];
            if (vis[nb] == gen || nb == qq->self) continue;
            vis[nb] = gen;
            todo[nt++] = nb;
            if (nt <= PF_AHEAD) prefetch_node(vi, qq, nb);
        }
        for (uint32_t t = 0; t < nt; t++) {
            uint32_t nb = todo[t];
            if (t + PF_AHEAD < nt) prefetch_node(vi, qq, todo[t + PF_AHEAD]);
            float d = qdist(vi, qq, nb);
            if (nr < ef || d < bound) {
                cpush(sc, &nc, (cand){d, nb});
                if (!locked) __builtin_prefetch(vi->links0 + (size_t)sc->c[0].s * (size_t)(vi->M0 + 1));
                if (!qq->filtering || accept(vi, qq, nb)) {
                    rpush(sc->r, &nr, (cand){d, nb});
                    if (nr > ef) rpop(sc->r, &nr);
                    bound = sc->r[0].d;
                }
            }
        }
    }
    return nr;
}

/* ---- inserts ---- */

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int draw_level(const rl_vindex *vi, uint32_t slot) {
    uint64_t st = vi->p.seed ^ mix64((uint64_t)slot + 1);
    double u = ((double)(splitmix(&st) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    int l = (int)(-log(u) / log((double)vi->p.M));
    return l > RL_VI_MAX_LEVEL ? RL_VI_MAX_LEVEL : l;
}

static inline float dist_ss(const rl_vindex *vi, uint32_t a, uint32_t b) { return dist_f(vi, vrow(vi, a), b); }

/* The HNSW neighbour heuristic: t[0..n) sorted by distance to the base node; keeps at most m
 * in place, returns how many. */
static size_t select_heuristic(const rl_vindex *vi, cand *t, size_t n, size_t m) {
    size_t kept = 0;
    for (size_t i = 0; i < n && kept < m; i++) {
        int good = 1;
        for (size_t j = 0; j < kept; j++)
            if (dist_ss(vi, t[i].s, t[j].s) < t[i].d) {
                good = 0;
                break;
            }
        if (good) t[kept++] = t[i];
    }
    return kept;
}

/* Links s into e's list at lev, pruning e's list with the heuristic when it is full. */
static void link_back(rl_vindex *vi, rl_vi_scratch *sc, uint32_t e, uint32_t s, int lev, float d_es, int locked) {
    size_t mmax = lev == 0 ? (size_t)vi->M0 : (size_t)vi->p.M;
    pthread_mutex_t *mu = &vi->locks[e & (vi->n_locks - 1)];
    if (locked) pthread_mutex_lock(mu);
    uint32_t *l = vi_links(vi, e, lev);
    uint32_t n = l[0];
    int present = 0;
    for (uint32_t j = 1; j <= n; j++) present |= l[j] == s;
    if (!present) {
        if (n < mmax) {
            l[n + 1] = s;
            l[0] = n + 1;
        } else {
            cand *t = sc->t;
            for (uint32_t j = 0; j < n; j++) t[j] = (cand){dist_ss(vi, e, l[j + 1]), l[j + 1]};
            t[n] = (cand){d_es, s};
            sort_small(t, n + 1);
            size_t kept = select_heuristic(vi, t, n + 1, mmax);
            for (size_t j = 0; j < kept; j++) l[j + 1] = t[j].s;
            l[0] = (uint32_t)kept;
        }
    }
    if (locked) pthread_mutex_unlock(mu);
}

/* Inserts slot s (vector, level and empty lists already in place) into the graph. */
static void insert_node(rl_vindex *vi, rl_vi_scratch *sc, uint32_t s, int locked) {
    int L = vi->level[s];
    const float *x = vrow(vi, s);
    query qq = {.q = x, .self = s};
    scratch_ready(sc, vi, (size_t)vi->p.ef_construction);
    int hold_global = 0;
    if (locked) pthread_mutex_lock(vi->glock);
    uint32_t ep = vi->entry;
    int top = vi->max_level;
    if (ep == RL_VI_NONE) { /* the first node */
        vi->entry = s;
        vi->max_level = L;
        if (locked) pthread_mutex_unlock(vi->glock);
        return;
    }
    if (L > top) hold_global = 1;
    else if (locked) pthread_mutex_unlock(vi->glock);

    float epd = dist_f(vi, x, ep);
    for (int lev = top; lev > L; lev--) greedy(vi, sc, &qq, lev, &ep, &epd, locked);
    size_t efc = (size_t)vi->p.ef_construction;
    for (int lev = L < top ? L : top; lev >= 0; lev--) {
        scratch_ready(sc, vi, efc);
        size_t nr = search_level(vi, sc, &qq, ep, epd, lev, efc, locked);
        heap_sort_desc_heap(sc->r, nr); /* ascending */
        cand *t = sc->t;
        size_t nt = 0;
        for (size_t i = 0; i < nr; i++)
            if (sc->r[i].s != s) t[nt++] = sc->r[i];
        if (nt) {
            ep = t[0].s;
            epd = t[0].d;
        }
        size_t kept = select_heuristic(vi, t, nt, (size_t)vi->p.M);
        /* copy: link_back reuses sc->t */
        uint32_t sel[256];
        float seld[256];
        for (size_t i = 0; i < kept; i++) {
            sel[i] = t[i].s;
            seld[i] = t[i].d;
        }
        pthread_mutex_t *mu = &vi->locks[s & (vi->n_locks - 1)];
        if (locked) pthread_mutex_lock(mu);
        uint32_t *l = vi_links(vi, s, lev);
        for (size_t i = 0; i < kept; i++) l[i + 1] = sel[i];
        l[0] = (uint32_t)kept;
        if (locked) pthread_mutex_unlock(mu);
        for (size_t i = 0; i < kept; i++) link_back(vi, sc, sel[i], s, lev, seld[i], locked);
    }
    if (hold_global) {
        vi->entry = s;
        vi->max_level = L;
        if (locked) pthread_mutex_unlock(vi->glock);
    }
}

/* Drops s from u's list at lev and re-selects the list from u's other neighbours plus s's. */
static void repair_list(rl_vindex *vi, rl_vi_scratch *sc, uint32_t u, uint32_t s, int lev) {
    size_t mmax = lev == 0 ? (size_t)vi->M0 : (size_t)vi->p.M;
    uint32_t *lu = vi_links(vi, u, lev), *ls = vi_links(vi, s, lev);
    uint32_t nu = lu[0], ns = ls[0];
    scratch_ready(sc, vi, mmax * 2 + 2);
    cand *t = sc->t;
    size_t nt = 0;
    uint16_t gen = sc->gen;
    sc->visited[u] = gen;
    sc->visited[s] = gen;
    for (uint32_t j = 1; j <= nu; j++)
        if (sc->visited[lu[j]] != gen) {
            sc->visited[lu[j]] = gen;
            t[nt++] = (cand){dist_ss(vi, u, lu[j]), lu[j]};
        }
    for (uint32_t j = 1; j <= ns; j++)
        if (sc->visited[ls[j]] != gen && vi->level[ls[j]] >= lev) {
            sc->visited[ls[j]] = gen;
            t[nt++] = (cand){dist_ss(vi, u, ls[j]), ls[j]};
        }
    sort_small(t, nt);
    size_t kept = select_heuristic(vi, t, nt, mmax);
    for (size_t j = 0; j < kept; j++) lu[j + 1] = t[j].s;
    lu[0] = (uint32_t)kept;
}

static int lists(const rl_vindex *vi, uint32_t u, int lev, uint32_t s) {
    const uint32_t *l = vi_links(vi, u, lev);
    for (uint32_t j = 1; j <= l[0]; j++)
        if (l[j] == s) return 1;
    return 0;
}

/* Before a tombstoned slot takes a new vector: every node within two hops of it that links to
 * it drops the link and re-selects its list from its own neighbours plus the dead node's. Links
 * to the slot from farther away stay and lead to its new vector: with no reverse links that is
 * the price of not scanning the whole graph (a few long-range links; correctness does not
 * depend on them). */
static void unlink_slot(rl_vindex *vi, rl_vi_scratch *sc, uint32_t s) {
    size_t cap = (size_t)vi->M0 * (size_t)(vi->M0 + 1) + 1;
    uint32_t *near = rl_xmalloc(cap * sizeof *near);
    for (int lev = 0; lev <= vi->level[s]; lev++) {
        /* the nodes within two hops (neighbours' lists are read before any is changed) */
        scratch_ready(sc, vi, 0);
        uint16_t gen = sc->gen;
        size_t nn = 0;
        sc->visited[s] = gen;
        const uint32_t *ls = vi_links(vi, s, lev);
        for (uint32_t a = 1; a <= ls[0]; a++) {
            uint32_t u = ls[a];
            if (sc->visited[u] != gen) {
                sc->visited[u] = gen;
                near[nn++] = u;
            }
        }
        size_t n1 = nn;
        for (size_t i = 0; i < n1; i++) {
            const uint32_t *lu = vi_links(vi, near[i], lev);
            for (uint32_t b = 1; b <= lu[0]; b++) {
                uint32_t w = lu[b];
                if (sc->visited[w] != gen && vi->level[w] >= lev) {
                    sc->visited[w] = gen;
                    near[nn++] = w;
                }
            }
        }
        for (size_t i = 0; i < nn; i++)
            if (lists(vi, near[i], lev, s)) repair_list(vi, sc, near[i], s, lev);
        vi_links(vi, s, lev)[0] = 0;
    }
    free(near);
}

typedef struct {
    rl_vindex *vi;
    const uint32_t *slots;
    rl_vi_scratch **sc;
} insert_job;

static void insert_one(void *ctx, size_t i, int thread) {
    insert_job *j = ctx;
    insert_node(j->vi, j->sc[thread], j->slots[i], 1);
}

typedef struct {
    rl_vindex *vi;
    const float *vecs;
    const uint32_t *slots;
} place_job;

static void place_one(void *ctx, size_t i, int thread) {
    (void)thread;
    place_job *j = ctx;
    rl_vindex *vi = j->vi;
    uint32_t s = j->slots[i];
    size_t dp = (size_t)vi->dimp;
    float *row = vi->vec + (size_t)s * dp;
    prepare_vec(vi, j->vecs + i * (size_t)vi->p.dim, row, NULL); /* checked before */
    if (vi->code) quantize(vi, row, 1, vi->code + (size_t)s * dp, &vi->scale[s], &vi->cterm[s]);
}

static rl_status make_owned(rl_vindex *vi, rl_error *err) {
    if (vi->owned) return RL_OK;
    return vi_alloc(vi, vi->n, err);
}

rl_status rl_vindex_materialize(rl_vindex *vi, rl_error *err) { return make_owned(vi, err); }

rl_status rl_vindex_add_batch(rl_vindex *vi, size_t n, const uint64_t *ids, const float *vecs, rl_pool *pool,
                              rl_error *err) {
    if (n == 0) return RL_OK;
    if (!ids || !vecs) return rl_fail(err, RL_EINVAL, "no ids or vectors");
    if (vi->n - vi->n_free + n > (size_t)INT32_MAX) return rl_fail(err, RL_EINVAL, "too many vectors for one index");
    /* check everything before changing anything */
    float *tmp = rl_xmalloc((size_t)vi->dimp * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        rl_status s = prepare_vec(vi, vecs + i * (size_t)vi->p.dim, tmp, err);
        if (s) {
            free(tmp);
            rl_error_prefix(err, "vector %zu (id %llu)", i, (unsigned long long)ids[i]);
            return s;
        }
        if (hash_find(vi, ids[i]) != RL_VI_NONE) {
            free(tmp);
            return rl_fail(err, RL_EINVAL, "id %llu is already in the index", (unsigned long long)ids[i]);
        }
    }
    free(tmp);
    uint64_t *sorted = malloc(n * sizeof *sorted);
    if (!sorted) return rl_fail(err, RL_ENOMEM, "out of memory");
    memcpy(sorted, ids, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_u64);
    for (size_t i = 1; i < n; i++)
        if (sorted[i] == sorted[i - 1]) {
            unsigned long long twice = (unsigned long long)sorted[i];
            free(sorted);
            return rl_fail(err, RL_EINVAL, "id %llu appears twice in the batch", twice);
        }
    free(sorted);

    rl_status st = make_owned(vi, err);
    if (st) return st;
    /* slots: tombstones first (except the entry point, which keeps routing), then new ones */
    uint32_t *slots = malloc(n * sizeof *slots);
    if (!slots) return rl_fail(err, RL_ENOMEM, "out of memory");
    size_t n_reuse = 0, keep = 0;
    for (size_t i = 0; i < vi->n_free; i++) {
        uint32_t s = vi->free_slots[i];
        if (n_reuse < n && s != vi->entry) slots[n_reuse++] = s;
        else vi->free_slots[keep++] = s;
    }
    vi->n_free = keep;
    size_t n_new = n - n_reuse, first_new = vi->n;
    if (first_new + n_new > vi->cap) {
        /* exact size for the first batch, then grow by half at least */
        size_t nc = vi->cap + vi->cap / 2;
        if (nc < first_new + n_new) nc = first_new + n_new;
        st = vi_alloc(vi, nc, err);
        if (!st) st = hash_reserve(vi, vi->hcount + n, err);
        if (st) {
            for (size_t i = 0; i < n_reuse; i++) vi->free_slots[vi->n_free++] = slots[i];
            free(slots);
            return st;
        }
    } else if ((st = hash_reserve(vi, vi->hcount + n, err))) {
        for (size_t i = 0; i < n_reuse; i++) vi->free_slots[vi->n_free++] = slots[i];
        free(slots);
        return st;
    }
    size_t uextra = 0;
    for (size_t i = 0; i < n_new; i++) {
        uint32_t s = (uint32_t)(first_new + i);
        slots[n_reuse + i] = s;
        uextra += (size_t)draw_level(vi, s) * (size_t)(vi->p.M + 1);
    }
    if ((st = upper_reserve(vi, uextra, err))) {
        for (size_t i = 0; i < n_reuse; i++) vi->free_slots[vi->n_free++] = slots[i];
        free(slots);
        return st;
    }
    /* int8: the first batch into an empty index sets the centre of the codes */
    if (vi->code && vi->n == 0) {
        double *acc = rl_xcalloc((size_t)vi->dimp, sizeof(double));
        float *row = rl_xmalloc((size_t)vi->dimp * sizeof(float));
        for (size_t i = 0; i < n; i++) {
            prepare_vec(vi, vecs + i * (size_t)vi->p.dim, row, NULL);
            for (int d = 0; d < vi->dimp; d++) acc[d] += row[d];
        }
        for (int d = 0; d < vi->dimp; d++) vi->mean[d] = (float)(acc[d] / (double)n);
        free(acc);
        free(row);
    }

    rl_vi_scratch *one = rl_vi_scratch_new();
    /* reused slots: unlink with the old vector, then place and insert one at a time */
    for (size_t i = 0; i < n_reuse; i++) {
        uint32_t s = slots[i];
        unlink_slot(vi, one, s);
        place_job pj = {vi, vecs + i * (size_t)vi->p.dim, &slots[i]};
        place_one(&pj, 0, 0);
        vi->ids[s] = ids[i];
        vi->flags[s] = 0;
        for (int lev = 1; lev <= vi->level[s]; lev++) vi_links(vi, s, lev)[0] = 0;
        hash_put(vi, ids[i], s);
        vi->n_deleted--;
        insert_node(vi, one, s, 0);
    }
    if (n_new) {
        for (size_t i = 0; i < n_new; i++) {
            uint32_t s = slots[n_reuse + i];
            int L = draw_level(vi, s);
            vi->level[s] = (uint8_t)L;
            vi->flags[s] = 0;
            vi->ids[s] = ids[n_reuse + i];
            vi->links0[(size_t)s * (size_t)(vi->M0 + 1)] = 0;
            vi->uoff[s] = vi->upper_len;
            for (int lev = 1; lev <= L; lev++) vi->upper[vi->upper_len + (size_t)(lev - 1) * (size_t)(vi->p.M + 1)] = 0;
            vi->upper_len += (size_t)L * (size_t)(vi->p.M + 1);
            hash_put(vi, ids[n_reuse + i], s);
        }
        vi->n = first_new + n_new;
        place_job pj = {vi, vecs + n_reuse * (size_t)vi->p.dim, slots + n_reuse};
        if (pool) rl_pool_for(pool, n_new, place_one, &pj);
        else
            for (size_t i = 0; i < n_new; i++) place_one(&pj, i, 0);
        size_t start = 0;
        if (vi->entry == RL_VI_NONE) {
            insert_node(vi, one, slots[n_reuse], 0);
            start = 1;
        }
        if (pool && rl_pool_size(pool) > 1 && n_new - start > 1) {
            int nt = rl_pool_size(pool);
            rl_vi_scratch **sc = rl_xcalloc((size_t)nt, sizeof *sc);
            for (int t = 0; t < nt; t++) sc[t] = rl_vi_scratch_new();
            insert_job ij = {vi, slots + n_reuse + start, sc};
            rl_pool_for(pool, n_new - start, insert_one, &ij);
            for (int t = 0; t < nt; t++) rl_vi_scratch_free(sc[t]);
            free(sc);
        } else {
            for (size_t i = start; i < n_new; i++) insert_node(vi, one, slots[n_reuse + i], 0);
        }
    }
    rl_vi_scratch_free(one);
    free(slots);
    return RL_OK;
}

rl_status rl_vindex_add(rl_vindex *vi, uint64_t id, const float *vec, rl_error *err) {
    return rl_vindex_add_batch(vi, 1, &id, vec, NULL, err);
}

rl_status rl_vindex_remove(rl_vindex *vi, uint64_t id, rl_error *err) {
    uint32_t s = hash_find(vi, id);
    if (s == RL_VI_NONE) return rl_fail(err, RL_ENOTFOUND, "id %llu is not in the index", (unsigned long long)id);
    rl_status st = make_owned(vi, err);
    if (st) return st;
    if (vi->n_free == vi->free_cap) {
        size_t nc = vi->free_cap ? vi->free_cap * 2 : 64;
        uint32_t *f = realloc(vi->free_slots, nc * sizeof *f);
        if (!f) return rl_fail(err, RL_ENOMEM, "out of memory");
        vi->free_slots = f;
        vi->free_cap = nc;
    }
    vi->flags[s] |= RL_VI_DELETED;
    hash_erase(vi, id);
    vi->free_slots[vi->n_free++] = s;
    vi->n_deleted++;
    return RL_OK;
}

rl_status rl_vindex_compact(rl_vindex *vi, rl_pool *pool, rl_error *err) {
    size_t live = rl_vindex_count(vi), d = (size_t)vi->p.dim;
    rl_vindex *fresh = NULL;
    rl_status st = rl_vindex_create(&fresh, &vi->p, err);
    if (st) return st;
    uint64_t *ids = malloc((live ? live : 1) * sizeof *ids);
    float *vecs = malloc((live ? live : 1) * d * sizeof *vecs);
    if (!ids || !vecs) {
        free(ids);
        free(vecs);
        rl_vindex_free(fresh);
        return rl_fail(err, RL_ENOMEM, "out of memory for compaction");
    }
    size_t m = 0;
    for (size_t i = 0; i < vi->n; i++) {
        if (vi->flags[i] & RL_VI_DELETED) continue;
        ids[m] = vi->ids[i];
        memcpy(vecs + m * d, vrow(vi, (uint32_t)i), d * sizeof(float));
        m++;
    }
    st = rl_vindex_add_batch(fresh, m, ids, vecs, pool, err);
    free(ids);
    free(vecs);
    if (st) {
        rl_vindex_free(fresh);
        return st;
    }
    /* swap the contents, keep the caller's pointer */
    free_arrays(vi);
    pthread_mutex_t *locks = vi->locks, *glock = vi->glock;
    size_t n_locks = vi->n_locks;
    *vi = *fresh;
    fresh->locks = locks;
    fresh->n_locks = n_locks;
    fresh->glock = glock;
    /* fresh now holds the old locks and nothing else */
    fresh->owned = 0;
    fresh->hkeys = NULL;
    fresh->hslots = NULL;
    fresh->free_slots = NULL;
    memset(&fresh->map, 0, sizeof fresh->map);
    rl_vindex_free(fresh);
    return RL_OK;
}

/* ---- search ---- */

/* The float distance searches use: a loaded INT8 index reads the row from the file (pread goes
 * through the page cache, which the kernel may drop, instead of mapping the row into this
 * process), everything else reads it in place. A failed read falls back to the mapping. */
static inline float dist_search(const rl_vindex *vi, rl_vi_scratch *sc, const float *q, uint32_t s) {
    if (vi->vec_fd < 0 || vi->owned) return dist_f(vi, q, s);
    size_t bytes = (size_t)vi->dimp * sizeof(float);
    if (pread(vi->vec_fd, sc->row, bytes, (off_t)(vi->vec_off + (uint64_t)s * bytes)) != (ssize_t)bytes) return dist_f(vi, q, s);
    if (vi->p.metric == RL_VI_L2) return vi->k->l2sq(q, sc->row, (size_t)vi->dimp);
    return 1.0f - vi->k->dot(q, sc->row, (size_t)vi->dimp);
}

static void exact_scan(const rl_vindex *vi, rl_vi_scratch *sc, const query *qq, const uint32_t *cands, size_t nc,
                       size_t k, size_t *nr) {
    /* cands == NULL: every slot */
    size_t n = cands ? nc : vi->n;
    for (size_t i = 0; i < n; i++) {
        uint32_t s = cands ? cands[i] : (uint32_t)i;
        if (!accept(vi, qq, s)) continue;
        float d = dist_search(vi, sc, qq->q, s);
        if (*nr < k) rpush(sc->r, nr, (cand){d, s});
        else if (d < sc->r[0].d) {
            rpop(sc->r, nr);
            rpush(sc->r, nr, (cand){d, s});
        }
    }
}

rl_status rl_vindex_search(const rl_vindex *vi, rl_vi_scratch *scratch, const float *q, int k,
                           const rl_vi_search_opts *opts, rl_vi_hit *out, int *n_out, rl_error *err) {
    *n_out = 0;
    if (k < 1 || k > (1 << 20)) return rl_fail(err, RL_EINVAL, "k must be from 1 to 1048576, got %d", k);
    static const rl_vi_search_opts none = {0};
    if (!opts) opts = &none;
    if (opts->ef < 0 || opts->ef > (1 << 20)) return rl_fail(err, RL_EINVAL, "ef must be from 0 to 1048576");
    size_t ef = opts->ef ? (size_t)opts->ef : 64;
    if (ef < (size_t)k) ef = (size_t)k;
    if (rl_vindex_count(vi) == 0) return RL_OK;
    rl_vi_scratch *sc = scratch ? scratch : rl_vi_scratch_new();
    rl_status st = RL_OK;
    uint32_t *allow_slots = NULL;
    scratch_ready(sc, vi, ef > (size_t)k ? ef : (size_t)k);
    if ((st = prepare_vec(vi, q, sc->q, err))) goto done;

    query qq = {.q = sc->q, .fn = opts->filter, .ctx = opts->filter_ctx, .self = RL_VI_NONE};
    qq.filtering = vi->n_deleted > 0 || opts->filter || opts->allow;
    double live = (double)rl_vindex_count(vi), sel = 1;
    size_t n_allow_slots = 0;
    if (opts->allow) {
        if (sc->acap < vi->n) {
            free(sc->allowed);
            sc->acap = vi->n + vi->n / 4 + 64;
            sc->allowed = rl_xcalloc(sc->acap, sizeof(uint16_t));
            sc->agen = 0;
        }
        if (++sc->agen == 0) {
            memset(sc->allowed, 0, sc->acap * sizeof(uint16_t));
            sc->agen = 1;
        }
        allow_slots = malloc((opts->n_allow ? opts->n_allow : 1) * sizeof *allow_slots);
        if (!allow_slots) {
            st = rl_fail(err, RL_ENOMEM, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < opts->n_allow; i++) {
            uint32_t s = hash_find(vi, opts->allow[i]);
            if (s == RL_VI_NONE || sc->allowed[s] == sc->agen) continue;
            sc->allowed[s] = sc->agen;
            allow_slots[n_allow_slots++] = s;
        }
        qq.allowed = sc->allowed;
        qq.agen = sc->agen;
        sel = (double)n_allow_slots / live;
    }
    if (opts->filter) {
        if (opts->selectivity > 0) sel = opts->selectivity;
        else { /* try the predicate on up to 256 live slots spread over the index */
            size_t tried = 0, kept = 0, step = vi->n / 256 ? vi->n / 256 : 1;
            for (size_t i = 0; i < vi->n && tried < 256; i += step) {
                if (vi->flags[i] & RL_VI_DELETED) continue;
                if (qq.allowed && qq.allowed[i] != qq.agen) continue;
                tried++;
                kept += opts->filter(opts->filter_ctx, vi->ids[i]) != 0;
            }
            if (tried) sel *= (double)kept / (double)tried;
        }
    } else if (opts->allow && opts->selectivity > 0) {
        sel = opts->selectivity;
    }
    double below = opts->exact_below > 0 ? opts->exact_below : 0.02;
    int filtered = opts->filter || opts->allow;
    size_t nr = 0;
    /* a small collection is searched exactly: a scan of a thousand vectors costs about what the
     * graph walk costs, and is exact */
    double flat = opts->flat_below > 0 ? (double)opts->flat_below : opts->flat_below < 0 ? -1.0 : 1024.0;
    if (opts->exact || live <= flat || (filtered && (sel <= below || sel * live < 4.0 * (double)ef))) {
        qq.i8 = 0;
        exact_scan(vi, sc, &qq, allow_slots, n_allow_slots, (size_t)k, &nr);
    } else {
        if (vi->code) { /* quantize the query the same way as the vectors */
            float cterm;
            int l2 = vi->p.metric == RL_VI_L2;
            quantize(vi, sc->q, l2, sc->qc, &qq.qs, &cterm);
            qq.qc = sc->qc;
            qq.i8 = 1;
            double qm = 0, qn = 0;
            for (int i = 0; i < vi->dimp; i++) {
                double c = (double)sc->q[i] - vi->mean[i];
                qm += (double)sc->q[i] * vi->mean[i];
                qn += c * c;
            }
            /* x = m + s_x c_x.  l2: |q-x|^2 = |q-m|^2 - 2 s_x (q-m).c_x + s_x^2 |c_x|^2, with q-m
             * quantized;  ip: 1 - q.x = 1 - q.m - s_x q.c_x, with q itself quantized */
            qq.qconst = l2 ? (float)qn : (float)(1.0 - qm);
        }
        uint32_t ep = vi->entry;
        float epd = qdist(vi, &qq, ep);
        for (int lev = vi->max_level; lev > 0; lev--) greedy(vi, sc, &qq, lev, &ep, &epd, 0);
        nr = search_level(vi, sc, &qq, ep, epd, 0, ef, 0);
        if (qq.i8) /* rescore the candidates with the float vectors */
            for (size_t i = 0; i < nr; i++) sc->r[i].d = dist_search(vi, sc, sc->q, sc->r[i].s);
    }
    if (qq.i8 && !opts->exact) qsort(sc->r, nr, sizeof(cand), cand_cmp); /* rescored: no longer a heap */
    else heap_sort_desc_heap(sc->r, nr);
    if (nr > (size_t)k) nr = (size_t)k;
    for (size_t i = 0; i < nr; i++) {
        out[i].id = vi->ids[sc->r[i].s];
        out[i].dist = sc->r[i].d;
    }
    *n_out = (int)nr;
done:
    free(allow_slots);
    if (!scratch) rl_vi_scratch_free(sc);
    return st;
}
