/* vi_internal.h - internal to src/vecindex: the index structure shared by hnsw.c (graph, search,
 * changes) and vi_file.c (save, load, checks).
 *
 * Layout (slots 0..n-1; every array is one allocation, or points into the mapped file):
 *   vec     (cap, dimp) float32, rows padded with zeros to dimp = dim rounded up to 16
 *   code    (cap, dimp) int8 codes, INT8 storage only: x ~ mean + scale * code
 *   cterm   (cap) float, INT8 only: scale^2 * |code|^2 (the L2 term of the stored vector)
 *   scale   (cap) float, INT8 only
 *   mean    (dimp) float, INT8 only: the centre of the codes
 *   ids     (cap) uint64 caller ids
 *   level   (cap) uint8 top level of each node
 *   flags   (cap) uint8, bit 0: deleted
 *   links0  (cap, 1 + M0) uint32: count, then neighbour slots (level 0)
 *   uoff    (cap) uint64: start of the node's upper lists in upper, level l >= 1 at
 *           uoff + (l-1) * (1 + M); unused when level is 0
 *   upper   (upper_len) uint32: count + M slots per list
 * An id -> slot hash table (open addressing, linear probing) is rebuilt on load.
 */
#ifndef RL_VI_INTERNAL_H
#define RL_VI_INTERNAL_H

#include <pthread.h>

#include "vecindex/vecindex.h"
#include "vecindex/vi_kernels.h"

#define RL_VI_MAX_LEVEL 24
#define RL_VI_NONE UINT32_MAX
#define RL_VI_DELETED 1u

struct rl_vindex {
    rl_vi_params p;
    int dimp, M0;
    const rl_vi_kernels *k;
    size_t n, cap, n_deleted;
    uint32_t entry;
    int max_level;

    float *vec;
    int8_t *code;
    float *cterm, *scale, *mean;
    uint64_t *ids;
    uint8_t *level, *flags;
    uint32_t *links0;
    uint64_t *uoff;
    uint32_t *upper;
    size_t upper_len, upper_cap;

    /* id -> slot: keys with a parallel slot array; slot RL_VI_NONE marks an empty bucket */
    uint64_t *hkeys;
    uint32_t *hslots;
    size_t hcap, hcount;

    uint32_t *free_slots; /* deleted slots, reused by inserts */
    size_t n_free, free_cap;

    /* loaded from a file: the arrays above point into map (or caller memory) until the first
     * change copies them (owned == 0 until then) */
    rl_mmap map;
    int owned;
    /* a loaded INT8 index reads float rows (for rescoring and exact scans) with pread from this
     * descriptor at vec_off instead of through the mapping, so that only the codes and the graph
     * become resident; -1 otherwise (and unused once the index is owned) */
    int vec_fd;
    uint64_t vec_off;

    pthread_mutex_t *locks; /* per-slot-stripe locks on neighbour lists during inserts, then */
    pthread_mutex_t *glock; /* one more: entry point and max level during threaded inserts */
    size_t n_locks;
};

static inline uint32_t *vi_links(const rl_vindex *vi, uint32_t slot, int lev) {
    if (lev == 0) return vi->links0 + (size_t)slot * (size_t)(vi->M0 + 1);
    return vi->upper + vi->uoff[slot] + (size_t)(lev - 1) * (size_t)(vi->p.M + 1);
}

/* hnsw.c, for vi_file.c */
rl_status vi_alloc(rl_vindex *vi, size_t cap, rl_error *err); /* (re)sizes owned arrays */
rl_status vi_hash_rebuild(rl_vindex *vi, rl_error *err);      /* from ids/flags; duplicates fail */
void vi_locks_init(rl_vindex *vi);
rl_vindex *vi_new(const rl_vi_params *p);
void vi_select_kernels(rl_vindex *vi);

#endif
