/* vecio.c - readers and writers for the fvecs / ivecs formats of the ANN benchmarks (TEXMEX):
 * each row is a little-endian int32 dimension followed by that many float32 (fvecs) or int32
 * (ivecs) values. The whole file is read; every row's dimension must be the first one's and the
 * size must be a whole number of rows, else RL_EFORMAT. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vecindex/vecindex.h"

static rl_status vecs_read(const char *path, size_t max_rows, void **out, size_t *n_out, int *d_out, rl_error *err) {
    *out = NULL;
    *n_out = 0;
    *d_out = 0;
    rl_mmap m;
    rl_status s = rl_mmap_open(&m, path, err);
    if (s) return s;
    if (m.size < 4) {
        rl_mmap_close(&m);
        return rl_fail(err, RL_EFORMAT, "%s: %zu bytes is too short for a vecs file", path, m.size);
    }
    int32_t d;
    memcpy(&d, m.data, 4);
    if (d < 1 || d > 65536) {
        rl_mmap_close(&m);
        return rl_fail(err, RL_EFORMAT, "%s: dimension %d is outside 1..65536", path, d);
    }
    size_t row = 4 + (size_t)d * 4;
    if (m.size % row) {
        rl_mmap_close(&m);
        return rl_fail(err, RL_EFORMAT, "%s: %zu bytes is not a whole number of %zu-byte rows (dimension %d)", path,
                       m.size, row, d);
    }
    size_t n = m.size / row;
    if (max_rows && n > max_rows) n = max_rows;
    char *v = malloc(n * (size_t)d * 4 + 1);
    if (!v) {
        rl_mmap_close(&m);
        return rl_fail(err, RL_ENOMEM, "%s: out of memory for %zu rows", path, n);
    }
    for (size_t i = 0; i < n; i++) {
        int32_t di;
        memcpy(&di, m.data + i * row, 4);
        if (di != d) {
            free(v);
            rl_mmap_close(&m);
            return rl_fail(err, RL_EFORMAT, "%s: row %zu has dimension %d, the first row %d", path, i, di, d);
        }
        memcpy(v + i * (size_t)d * 4, m.data + i * row + 4, (size_t)d * 4);
    }
    rl_mmap_close(&m);
    *out = v;
    *n_out = n;
    *d_out = d;
    return RL_OK;
}

rl_status rl_fvecs_read(const char *path, size_t max_rows, float **out, size_t *n, int *d, rl_error *err) {
    return vecs_read(path, max_rows, (void **)out, n, d, err);
}

rl_status rl_ivecs_read(const char *path, size_t max_rows, int32_t **out, size_t *n, int *d, rl_error *err) {
    return vecs_read(path, max_rows, (void **)out, n, d, err);
}

static rl_status vecs_write(const char *path, const void *v, size_t n, int d, rl_error *err) {
    if (d < 1 || d > 65536) return rl_fail(err, RL_EINVAL, "dimension %d is outside 1..65536", d);
    rl_atomic_file f;
    rl_status s = rl_atomic_open(&f, path, err);
    if (s) return s;
    int32_t d32 = d;
    for (size_t i = 0; i < n; i++)
        if (fwrite(&d32, 4, 1, f.fp) != 1 || fwrite((const char *)v + i * (size_t)d * 4, 4, (size_t)d, f.fp) != (size_t)d) {
            s = rl_fail(err, RL_EIO, "cannot write %s: %s", f.tmp_path, strerror(errno));
            rl_atomic_abort(&f);
            return s;
        }
    return rl_atomic_commit(&f, err);
}

rl_status rl_fvecs_write(const char *path, const float *v, size_t n, int d, rl_error *err) {
    return vecs_write(path, v, n, d, err);
}

rl_status rl_ivecs_write(const char *path, const int32_t *v, size_t n, int d, rl_error *err) {
    return vecs_write(path, v, n, d, err);
}
