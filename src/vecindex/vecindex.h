/* vecindex.h - the public door of src/vecindex: an HNSW vector index written for raftlm, exact
 * (flat) search, and readers for the fvecs/ivecs benchmark formats.
 *
 * The index maps caller ids (uint64, e.g. chunk ids) to vectors of a fixed dimension and answers
 * k-nearest-neighbour queries under L2, inner product or cosine. Vectors are stored as float32,
 * or additionally as int8 codes (RL_VI_INT8): the graph is then walked with int8 distances and
 * the ef best candidates are rescored with the float vectors. Inserts are incremental (one at a
 * time or in threaded batches), deletes leave tombstones whose slots are reused by later inserts,
 * and rl_vindex_compact rebuilds the graph over the live vectors. Searches take an optional
 * filter (a predicate or an id allow-list); when the filter lets few vectors through, the search
 * is exact over the matching vectors instead of walking the graph.
 *
 * Files: rl_vindex_save writes a versioned little-endian file atomically (temporary + rename);
 * rl_vindex_load memory-maps it after checking every count, size and offset against the file,
 * and every neighbour id. The first change to a loaded index copies it into memory.
 *
 * Threads: any number of searches may run at once on one index (each with its own scratch);
 * changes (add, remove, compact, save of a changing index) need the caller to exclude searches.
 * rl_vindex_add_batch spreads the inserts over an rl_pool itself.
 */
#ifndef RL_VECINDEX_H
#define RL_VECINDEX_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

typedef enum rl_vi_metric {
    RL_VI_L2 = 0,     /* squared euclidean distance */
    RL_VI_IP = 1,     /* 1 - dot(a, b) */
    RL_VI_COSINE = 2, /* 1 - cos(a, b); vectors are normalized on the way in */
} rl_vi_metric;

typedef enum rl_vi_storage {
    RL_VI_F32 = 0, /* float32 vectors */
    RL_VI_INT8 = 1 /* float32 + int8 codes: the graph is searched with int8, candidates rescored */
} rl_vi_storage;

typedef struct rl_vi_params {
    int dim;             /* 1 .. 65536 */
    rl_vi_metric metric;
    rl_vi_storage storage;
    int M;               /* links per node on upper levels (2 .. 128); level 0 keeps 2*M */
    int ef_construction; /* candidate list size while inserting (>= M) */
    uint64_t seed;       /* levels are a hash of (seed, slot): builds are reproducible */
} rl_vi_params;

/* dim as given, L2, float32, M 16, ef_construction 200, seed 42. */
void rl_vi_params_default(rl_vi_params *p, int dim);
/* "l2", "ip", "cosine" -> metric; -1 when unknown. */
int rl_vi_metric_parse(const char *name);
const char *rl_vi_metric_name(rl_vi_metric m);

typedef struct rl_vindex rl_vindex;
typedef struct rl_vi_scratch rl_vi_scratch; /* per-thread search state; grows as needed */

typedef struct rl_vi_hit {
    uint64_t id;
    float dist; /* smaller is closer, see rl_vi_metric */
} rl_vi_hit;

typedef struct rl_vi_search_opts {
    int ef;     /* candidate list size (>= k; 0: max(k, 64)) */
    int exact;  /* 1: brute force over every live vector (ground truth) */
    int flat_below; /* at most this many live vectors: exact search (0: 1024; -1: never) */
    /* Filter: a result must pass both when both are given. */
    int (*filter)(void *ctx, uint64_t id); /* return nonzero to keep id */
    void *filter_ctx;
    const uint64_t *allow; /* allow-list of ids (any order; unknown ids are ignored) */
    size_t n_allow;
    /* The fraction of live vectors the filter keeps, if the caller knows it (0: estimated from
     * the allow-list size, or by trying the predicate on a sample of 256). At or below
     * exact_below (0: 0.02), or when fewer than 4*ef vectors match, the search is exact. */
    double selectivity, exact_below;
} rl_vi_search_opts;

/* ---- lifetime ---- */
rl_status rl_vindex_create(rl_vindex **out, const rl_vi_params *p, rl_error *err);
void rl_vindex_free(rl_vindex *vi);
const rl_vi_params *rl_vindex_params(const rl_vindex *vi);
size_t rl_vindex_count(const rl_vindex *vi);   /* live vectors */
size_t rl_vindex_deleted(const rl_vindex *vi); /* tombstones not yet reused */
/* Bytes of memory the index holds (vectors, codes, links, id table); 0 for mapped parts. */
size_t rl_vindex_memory(const rl_vindex *vi);
int rl_vindex_contains(const rl_vindex *vi, uint64_t id);
/* Copies the stored vector of id to out (dim floats; normalized when the metric is cosine). */
rl_status rl_vindex_get(const rl_vindex *vi, uint64_t id, float *out, rl_error *err);

/* ---- changes ---- */
/* Adds vectors (n, dim) with their ids. An id already in the index, or twice in the batch, is
 * RL_EINVAL and nothing is added; so are non-finite values (and zero vectors under cosine).
 * pool may be NULL (one thread). Tombstoned slots are reused first. */
rl_status rl_vindex_add_batch(rl_vindex *vi, size_t n, const uint64_t *ids, const float *vecs, rl_pool *pool,
                              rl_error *err);
rl_status rl_vindex_add(rl_vindex *vi, uint64_t id, const float *vec, rl_error *err);
/* Marks id deleted (RL_ENOTFOUND when absent). Its node stays in the graph as a way through
 * until its slot is reused or the index is compacted; it is never returned. */
rl_status rl_vindex_remove(rl_vindex *vi, uint64_t id, rl_error *err);
/* Rebuilds the graph over the live vectors only (pool may be NULL). */
rl_status rl_vindex_compact(rl_vindex *vi, rl_pool *pool, rl_error *err);

/* ---- search ---- */
rl_vi_scratch *rl_vi_scratch_new(void);
void rl_vi_scratch_free(rl_vi_scratch *s);
/* The k nearest live vectors to q (dim floats) that pass the filter, closest first, in out
 * (room for k); *n_out may be below k when fewer match. scratch may be NULL (allocated for
 * this call). opts may be NULL. */
rl_status rl_vindex_search(const rl_vindex *vi, rl_vi_scratch *scratch, const float *q, int k,
                           const rl_vi_search_opts *opts, rl_vi_hit *out, int *n_out, rl_error *err);

/* ---- files ---- */
rl_status rl_vindex_save(const rl_vindex *vi, const char *path, rl_error *err);
rl_status rl_vindex_load(rl_vindex **out, const char *path, rl_error *err);
/* Copies a loaded (mapped) index into memory (large arrays on huge pages), so that searches no
 * longer depend on the page cache; a no-op for an index already in memory. */
rl_status rl_vindex_materialize(rl_vindex *vi, rl_error *err);
/* The same checks on a file already in memory (the index keeps pointers into data, which must
 * outlive it and stay unchanged; 8-byte aligned). Used by the fuzz target. */
rl_status rl_vindex_load_mem(rl_vindex **out, const void *data, size_t size, rl_error *err);

/* ---- fvecs / ivecs (little-endian: int32 d, then d float32 or int32 values, per row) ---- */
/* Reads a whole file into *out (n, d) (caller frees). Every row must have the same d (1 .. 65536)
 * and the file size must be a whole number of rows. max_rows > 0 reads at most that many. */
rl_status rl_fvecs_read(const char *path, size_t max_rows, float **out, size_t *n, int *d, rl_error *err);
rl_status rl_ivecs_read(const char *path, size_t max_rows, int32_t **out, size_t *n, int *d, rl_error *err);
rl_status rl_fvecs_write(const char *path, const float *v, size_t n, int d, rl_error *err);
rl_status rl_ivecs_write(const char *path, const int32_t *v, size_t n, int d, rl_error *err);

/* ---- SIMD ---- */
/* The distance kernels in use: "avx512", "avx2" or "scalar" (RL_SIMD=scalar|avx2 in the
 * environment caps the choice; read when an index is created or loaded). */
const char *rl_vi_simd_name(const rl_vindex *vi);

#endif
