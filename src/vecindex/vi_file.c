/* vi_file.c - the vector index file: save (atomic) and load (memory-mapped, fully checked).
 *
 * Format, little-endian throughout (version 1):
 *   0    char[8]  magic "RLVECIDX"
 *   8    u32      version (1)            12  u32 header bytes (128)
 *   16   u32      metric                 20  u32 storage
 *   24   u32      dim                    28  u32 dimp (dim rounded up to 16)
 *   32   u32      M                      36  u32 M0 (2M)
 *   40   u32      ef_construction        44  i32 max_level (-1 when empty)
 *   48   u32      entry slot             52  u32 number of sections
 *   56   u64      slots (n)              64  u64 deleted slots
 *   72   u64      upper pool length      80  u64 seed
 *   88   u64      file size              96..127 zero
 *   128  section table: per section u32 kind, u32 element bytes, u64 offset, u64 bytes
 *   then the sections, each at a multiple of 64 bytes: vectors, ids, levels, flags, level-0
 *   lists, upper offsets, upper lists, and for int8 storage codes, scales, L2 terms, centre.
 *
 * Loading maps the file and checks, before anything is used: magic, version, every parameter's
 * range, that the recorded file size is the real one, that every section is present exactly
 * once with the size its counts imply and lies inside the file, that every neighbour count and
 * neighbour slot is in range (and on upper levels, that the neighbour has that level), that
 * levels do not exceed the top level, that upper lists lie inside the pool, that flags use known
 * bits, and that live ids are unique. A file that fails any check is RL_EFORMAT.
 * Not checked: the float values themselves (a flipped bit in a vector changes results, not
 * safety); there is no checksum.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vecindex/vi_internal.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the index file is little-endian; add byte swapping");

#define MAGIC "RLVECIDX"
#define VERSION 1
#define HEADER_BYTES 128
#define ALIGN 64

enum { S_VEC = 1, S_IDS, S_LEVEL, S_FLAGS, S_LINKS0, S_UOFF, S_UPPER, S_CODE, S_SCALE, S_CTERM, S_MEAN, S_KINDS };

typedef struct {
    uint32_t kind, elem;
    uint64_t off, bytes;
} section;

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint64_t get64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Sections of an index with its current counts: pointer, element size, count. */
static int list_sections(const rl_vindex *vi, const void **ptr, uint32_t *kind, uint32_t *elem, uint64_t *count) {
    size_t n = vi->n, dp = (size_t)vi->dimp;
    int k = 0;
#define ADD(K, P, E, C) (kind[k] = (K), ptr[k] = (P), elem[k] = (uint32_t)(E), count[k] = (uint64_t)(C), k++)
    ADD(S_VEC, vi->vec, dp * 4, n);
    ADD(S_IDS, vi->ids, 8, n);
    ADD(S_LEVEL, vi->level, 1, n);
    ADD(S_FLAGS, vi->flags, 1, n);
    ADD(S_LINKS0, vi->links0, (size_t)(vi->M0 + 1) * 4, n);
    ADD(S_UOFF, vi->uoff, 8, n);
    ADD(S_UPPER, vi->upper, 4, vi->upper_len);
    if (vi->p.storage == RL_VI_INT8) {
        ADD(S_CODE, vi->code, dp, n);
        ADD(S_SCALE, vi->scale, 4, n);
        ADD(S_CTERM, vi->cterm, 4, n);
        ADD(S_MEAN, vi->mean, dp * 4, 1);
    }
#undef ADD
    return k;
}

rl_status rl_vindex_save(const rl_vindex *vi, const char *path, rl_error *err) {
    const void *ptr[S_KINDS];
    uint32_t kind[S_KINDS], elem[S_KINDS];
    uint64_t count[S_KINDS];
    int ns = list_sections(vi, ptr, kind, elem, count);
    uint64_t off = HEADER_BYTES + (uint64_t)ns * 24, offs[S_KINDS];
    for (int i = 0; i < ns; i++) {
        off = (off + ALIGN - 1) & ~(uint64_t)(ALIGN - 1);
        offs[i] = off;
        off += (uint64_t)elem[i] * count[i];
    }
    uint64_t total = off;
    uint8_t head[HEADER_BYTES + S_KINDS * 24];
    memset(head, 0, sizeof head);
    memcpy(head, MAGIC, 8);
    put32(head + 8, VERSION);
    put32(head + 12, HEADER_BYTES);
    put32(head + 16, (uint32_t)vi->p.metric);
    put32(head + 20, (uint32_t)vi->p.storage);
    put32(head + 24, (uint32_t)vi->p.dim);
    put32(head + 28, (uint32_t)vi->dimp);
    put32(head + 32, (uint32_t)vi->p.M);
    put32(head + 36, (uint32_t)vi->M0);
    put32(head + 40, (uint32_t)vi->p.ef_construction);
    put32(head + 44, (uint32_t)(int32_t)vi->max_level);
    put32(head + 48, vi->entry);
    put32(head + 52, (uint32_t)ns);
    put64(head + 56, vi->n);
    put64(head + 64, vi->n_deleted);
    put64(head + 72, vi->upper_len);
    put64(head + 80, vi->p.seed);
    put64(head + 88, total);
    for (int i = 0; i < ns; i++) {
        uint8_t *t = head + HEADER_BYTES + i * 24;
        put32(t, kind[i]);
        put32(t + 4, elem[i]);
        put64(t + 8, offs[i]);
        put64(t + 16, (uint64_t)elem[i] * count[i]);
    }
    rl_atomic_file f;
    rl_status s = rl_atomic_open(&f, path, err);
    if (s) return s;
    static const uint8_t zeros[ALIGN] = {0};
    uint64_t at = HEADER_BYTES + (uint64_t)ns * 24;
    int ok = fwrite(head, 1, (size_t)at, f.fp) == at;
    for (int i = 0; ok && i < ns; i++) {
        if (offs[i] > at) ok = fwrite(zeros, 1, (size_t)(offs[i] - at), f.fp) == offs[i] - at;
        size_t bytes = (size_t)elem[i] * (size_t)count[i];
        if (ok && bytes) ok = fwrite(ptr[i], 1, bytes, f.fp) == bytes;
        at = offs[i] + bytes;
    }
    if (!ok) {
        s = rl_fail(err, RL_EIO, "cannot write %s: %s", f.tmp_path, strerror(errno));
        rl_atomic_abort(&f);
        return s;
    }
    return rl_atomic_commit(&f, err);
}

#define BAD(...) rl_fail(err, RL_EFORMAT, "bad vector index: " __VA_ARGS__)

static rl_status check_and_bind(rl_vindex *vi, const uint8_t *d, size_t size, rl_error *err) {
    if (size < HEADER_BYTES) return BAD("%zu bytes is shorter than the header", size);
    if (memcmp(d, MAGIC, 8) != 0) return BAD("not a raftlm vector index (magic)");
    uint32_t version = get32(d + 8);
    if (version != VERSION) return rl_fail(err, RL_EUNSUPPORTED, "vector index version %u (this build reads %d)", version, VERSION);
    if (get32(d + 12) != HEADER_BYTES) return BAD("header size %u", get32(d + 12));
    for (int i = 96; i < HEADER_BYTES; i++)
        if (d[i]) return BAD("reserved header bytes are not zero");
    uint32_t metric = get32(d + 16), storage = get32(d + 20), dim = get32(d + 24), dimp = get32(d + 28);
    uint32_t M = get32(d + 32), M0 = get32(d + 36), efc = get32(d + 40), entry = get32(d + 48), ns = get32(d + 52);
    int32_t max_level = (int32_t)get32(d + 44);
    uint64_t n = get64(d + 56), n_del = get64(d + 64), ulen = get64(d + 72), seed = get64(d + 80), fsize = get64(d + 88);
    if (metric > RL_VI_COSINE) return BAD("metric %u", metric);
    if (storage > RL_VI_INT8) return BAD("storage %u", storage);
    if (dim < 1 || dim > 65536 || dimp != ((dim + 15) & ~15u)) return BAD("dimension %u (padded %u)", dim, dimp);
    if (M < 2 || M > 128 || M0 != 2 * M) return BAD("M %u, M0 %u", M, M0);
    if (efc < 1 || efc > 65536) return BAD("ef_construction %u", efc);
    if (fsize != size) return BAD("the file has %zu bytes, its header says %llu (truncated?)", size, (unsigned long long)fsize);
    if (n > (uint64_t)INT32_MAX) return BAD("%llu slots", (unsigned long long)n);
    if (n_del > n) return BAD("%llu deleted of %llu", (unsigned long long)n_del, (unsigned long long)n);
    if (max_level < -1 || max_level > RL_VI_MAX_LEVEL) return BAD("top level %d", max_level);
    if (n == 0 ? (entry != RL_VI_NONE || max_level != -1) : (entry >= n || max_level < 0))
        return BAD("entry point %u of %llu slots", entry, (unsigned long long)n);
    if (ns > S_KINDS) return BAD("%u sections", ns);
    if ((uint64_t)HEADER_BYTES + (uint64_t)ns * 24 > size) return BAD("the section table runs past the end");

    rl_vi_params p = {.dim = (int)dim, .metric = (rl_vi_metric)metric, .storage = (rl_vi_storage)storage, .M = (int)M,
                      .ef_construction = (int)efc, .seed = seed};
    vi->p = p;
    vi->dimp = (int)dimp;
    vi->M0 = (int)M0;
    vi->n = vi->cap = (size_t)n;
    vi->upper_len = vi->upper_cap = (size_t)ulen;
    vi->entry = entry;
    vi->max_level = max_level;
    vi->owned = 0;
    /* expected sections (kind -> element bytes, count) */
    uint64_t want_elem[S_KINDS] = {0}, want_count[S_KINDS] = {0};
    want_elem[S_VEC] = (uint64_t)dimp * 4, want_count[S_VEC] = n;
    want_elem[S_IDS] = 8, want_count[S_IDS] = n;
    want_elem[S_LEVEL] = 1, want_count[S_LEVEL] = n;
    want_elem[S_FLAGS] = 1, want_count[S_FLAGS] = n;
    want_elem[S_LINKS0] = (uint64_t)(M0 + 1) * 4, want_count[S_LINKS0] = n;
    want_elem[S_UOFF] = 8, want_count[S_UOFF] = n;
    want_elem[S_UPPER] = 4, want_count[S_UPPER] = ulen;
    if (storage == RL_VI_INT8) {
        want_elem[S_CODE] = dimp, want_count[S_CODE] = n;
        want_elem[S_SCALE] = 4, want_count[S_SCALE] = n;
        want_elem[S_CTERM] = 4, want_count[S_CTERM] = n;
        want_elem[S_MEAN] = (uint64_t)dimp * 4, want_count[S_MEAN] = 1;
    }
    const uint8_t *at[S_KINDS] = {0};
    for (uint32_t i = 0; i < ns; i++) {
        const uint8_t *t = d + HEADER_BYTES + (size_t)i * 24;
        uint32_t kind = get32(t), elem = get32(t + 4);
        uint64_t off = get64(t + 8), bytes = get64(t + 16);
        if (kind < 1 || kind >= S_KINDS || !want_elem[kind]) return BAD("section %u has unknown kind %u", i, kind);
        if (at[kind]) return BAD("section kind %u appears twice", kind);
        if (elem != want_elem[kind]) return BAD("section %u: element size %u, expected %llu", kind, elem, (unsigned long long)want_elem[kind]);
        /* elem <= 2^18 and count <= 2^31 or the pool length; check the product without overflow */
        if (want_count[kind] > UINT64_MAX / want_elem[kind] || bytes != want_elem[kind] * want_count[kind])
            return BAD("section %u: %llu bytes, its counts say %llu x %llu", kind, (unsigned long long)bytes,
                       (unsigned long long)want_count[kind], (unsigned long long)want_elem[kind]);
        if (off % 8 || off < HEADER_BYTES + (uint64_t)ns * 24 || off > size || bytes > size - off)
            return BAD("section %u at %llu + %llu lies outside the %zu-byte file", kind, (unsigned long long)off,
                       (unsigned long long)bytes, size);
        at[kind] = d + off;
    }
    for (int kind = 1; kind < S_KINDS; kind++)
        if (want_elem[kind] && !at[kind]) return BAD("section kind %d is missing", kind);
    vi->vec = (float *)at[S_VEC];
    vi->ids = (uint64_t *)at[S_IDS];
    vi->level = (uint8_t *)at[S_LEVEL];
    vi->flags = (uint8_t *)at[S_FLAGS];
    vi->links0 = (uint32_t *)at[S_LINKS0];
    vi->uoff = (uint64_t *)at[S_UOFF];
    vi->upper = (uint32_t *)at[S_UPPER];
    if (storage == RL_VI_INT8) {
        vi->code = (int8_t *)at[S_CODE];
        vi->scale = (float *)at[S_SCALE];
        vi->cterm = (float *)at[S_CTERM];
        vi->mean = (float *)at[S_MEAN];
    }
    /* the graph */
    size_t dead = 0;
    for (size_t i = 0; i < n; i++) {
        if (vi->flags[i] & ~RL_VI_DELETED) return BAD("slot %zu has unknown flags 0x%x", i, vi->flags[i]);
        dead += vi->flags[i] & RL_VI_DELETED;
        int L = vi->level[i];
        if (L > max_level) return BAD("slot %zu has level %d above the top level %d", i, L, max_level);
        if (L > 0) {
            uint64_t o = vi->uoff[i], need = (uint64_t)L * (M + 1);
            if (o > ulen || need > ulen - o) return BAD("slot %zu: upper lists at %llu lie outside the pool", i, (unsigned long long)o);
        }
        for (int lev = 0; lev <= L; lev++) {
            const uint32_t *l = vi_links(vi, (uint32_t)i, lev);
            uint32_t cnt = l[0], mmax = lev ? M : M0;
            if (cnt > mmax) return BAD("slot %zu level %d: %u neighbours, at most %u", i, lev, cnt, mmax);
            for (uint32_t j = 1; j <= cnt; j++) {
                if (l[j] >= n) return BAD("slot %zu level %d: neighbour %u of %llu slots", i, lev, l[j], (unsigned long long)n);
                if (vi->level[l[j]] < lev) return BAD("slot %zu level %d: neighbour %u has no level %d", i, lev, l[j], lev);
            }
        }
    }
    if (n && vi->level[entry] != max_level) return BAD("the entry point is not on the top level");
    if (dead != n_del) return BAD("%zu slots are marked deleted, the header says %llu", dead, (unsigned long long)n_del);
    return vi_hash_rebuild(vi, err);
}

rl_status rl_vindex_load_mem(rl_vindex **out, const void *data, size_t size, rl_error *err) {
    *out = NULL;
    if (size && ((uintptr_t)data & 7)) return rl_fail(err, RL_EINVAL, "index data must be 8-byte aligned");
    rl_vi_params p;
    rl_vi_params_default(&p, 1);
    rl_vindex *vi = vi_new(&p);
    vi->owned = 0;
    rl_status s = check_and_bind(vi, data, size, err);
    if (s) {
        vi->owned = 0;
        rl_vindex_free(vi);
        return s;
    }
    vi_select_kernels(vi);
    *out = vi;
    return RL_OK;
}

rl_status rl_vindex_load(rl_vindex **out, const char *path, rl_error *err) {
    *out = NULL;
    rl_mmap m;
    rl_status s = rl_mmap_open(&m, path, err);
    if (s) return s;
    s = rl_vindex_load_mem(out, m.data, m.size, err);
    if (s) {
        rl_mmap_close(&m);
        rl_error_prefix(err, "%s", path);
        return s;
    }
    rl_vindex *vi = *out;
    vi->map = m;
#ifdef MADV_HUGEPAGE
    madvise((void *)m.data, m.size, MADV_HUGEPAGE); /* where the file system supports it */
#endif
    if (vi->p.storage == RL_VI_INT8 && vi->n) {
        /* int8: searches walk the codes and read float rows for rescoring with pread, so the
         * float section is never mapped in (no read-around, no huge pages over it) */
        vi->vec_fd = open(path, O_RDONLY | O_CLOEXEC);
        vi->vec_off = (uint64_t)((const uint8_t *)vi->vec - m.data);
        long pg = sysconf(_SC_PAGESIZE);
        uintptr_t a = ((uintptr_t)vi->vec + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
        uintptr_t b = ((uintptr_t)vi->vec + vi->n * (size_t)vi->dimp * sizeof(float)) & ~((uintptr_t)pg - 1);
        if (b > a) {
#ifdef MADV_NOHUGEPAGE
            madvise((void *)a, b - a, MADV_NOHUGEPAGE);
#endif
            madvise((void *)a, b - a, MADV_RANDOM);
        }
    }
    return RL_OK;
}
