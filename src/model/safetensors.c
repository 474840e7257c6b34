/* safetensors.c - the safetensors container (see safetensors.h): a checked reader over a
 * memory map, a reader for the shards of a Hugging Face folder, and an atomic writer.
 * Header limits: 100 MB of JSON, 8 dimensions; every offset is checked against the file. */
#include "model/safetensors.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/tensor.h"

static const char *const dtype_names[] = {"F32", "F16", "BF16", "I32", "I64"};
static const size_t dtype_sizes[] = {4, 2, 2, 4, 8};

static void st_free_tensors(rl_st_file *f) {
    for (int i = 0; i < f->n; i++) free(f->t[i].name);
    free(f->t);
    f->t = NULL;
    f->n = 0;
}

rl_status rl_st_open(rl_st_file *f, const char *path, rl_error *err) {
    memset(f, 0, sizeof *f);
    rl_status s = rl_mmap_open(&f->map, path, err);
    if (s) return s;
    f->path = rl_xstrdup(path);
    const uint8_t *d = f->map.data;
    size_t size = f->map.size;
    json_t *h = NULL;
    if (size < 8) {
        s = rl_fail(err, RL_EFORMAT, "%s: %zu bytes is too short for safetensors", path, size);
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | d[i];
    if (hlen > size - 8 || hlen > (100u << 20) || hlen < 2) {
        s = rl_fail(err, RL_EFORMAT, "%s: header length %llu does not fit the file (%zu bytes)", path,
                    (unsigned long long)hlen, size);
        goto fail;
    }
    json_error_t jerr;
    h = json_loadb((const char *)d + 8, (size_t)hlen, 0, &jerr);
    if (!h || !json_is_object(h)) {
        s = rl_fail(err, RL_EFORMAT, "%s: header is not a JSON object (%s)", path, h ? "wrong type" : jerr.text);
        goto fail;
    }
    size_t data_start = 8 + (size_t)hlen, data_size = size - data_start;
    f->t = rl_xcalloc(json_object_size(h) + 1, sizeof *f->t);
    const char *key;
    json_t *val;
    json_object_foreach(h, key, val) {
        if (strcmp(key, "__metadata__") == 0) continue;
        rl_st_tensor *t = &f->t[f->n];
        json_t *dt = json_object_get(val, "dtype"), *shape = json_object_get(val, "shape"),
               *offs = json_object_get(val, "data_offsets");
        if (!json_is_string(dt) || !json_is_array(shape) || !json_is_array(offs) || json_array_size(offs) != 2) {
            s = rl_fail(err, RL_EFORMAT, "%s: tensor '%s' lacks dtype, shape or data_offsets", path, key);
            goto fail;
        }
        int found = -1;
        for (int i = 0; i < 5; i++)
            if (strcmp(json_string_value(dt), dtype_names[i]) == 0) found = i;
        if (found < 0) {
            s = rl_fail(err, RL_EUNSUPPORTED, "%s: tensor '%s' has dtype %s (supported: F32, F16, BF16, I32, I64)", path,
                        key, json_string_value(dt));
            goto fail;
        }
        t->dtype = (rl_st_dtype)found;
        if (json_array_size(shape) > RL_ST_MAX_DIMS) {
            s = rl_fail(err, RL_EFORMAT, "%s: tensor '%s' has too many dimensions", path, key);
            goto fail;
        }
        t->ndim = (int)json_array_size(shape);
        uint64_t numel = 1;
        for (int i = 0; i < t->ndim; i++) {
            json_t *x = json_array_get(shape, (size_t)i);
            if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > (1ll << 40)) {
                s = rl_fail(err, RL_EFORMAT, "%s: tensor '%s' has a bad shape", path, key);
                goto fail;
            }
            t->shape[i] = json_integer_value(x);
            if (t->shape[i] && numel > (UINT64_MAX / 8) / (uint64_t)t->shape[i]) {
                s = rl_fail(err, RL_EFORMAT, "%s: tensor '%s' is impossibly large", path, key);
                goto fail;
            }
            numel *= (uint64_t)t->shape[i];
        }
        json_t *b0 = json_array_get(offs, 0), *b1 = json_array_get(offs, 1);
        if (!json_is_integer(b0) || !json_is_integer(b1)) {
            s = rl_fail(err, RL_EFORMAT, "%s: tensor '%s' has non-integer data_offsets", path, key);
            goto fail;
        }
        json_int_t begin = json_integer_value(b0), end = json_integer_value(b1);
        uint64_t nbytes = numel * dtype_sizes[t->dtype];
        if (begin < 0 || end < begin || (uint64_t)end > data_size || (uint64_t)(end - begin) != nbytes) {
            s = rl_fail(err, RL_EFORMAT,
                        "%s: tensor '%s' data_offsets [%lld, %lld] do not match its shape (%llu bytes) or the file "
                        "(%zu data bytes): truncated or damaged",
                        path, key, (long long)begin, (long long)end, (unsigned long long)nbytes, data_size);
            goto fail;
        }
        t->name = rl_xstrdup(key);
        t->numel = (size_t)numel;
        t->nbytes = (size_t)nbytes;
        t->data = d + data_start + begin;
        f->n++;
    }
    json_decref(h);
    return RL_OK;
fail:
    json_decref(h);
    rl_st_close(f);
    return s;
}

void rl_st_close(rl_st_file *f) {
    st_free_tensors(f);
    rl_mmap_close(&f->map);
    free(f->path);
    memset(f, 0, sizeof *f);
}

const rl_st_tensor *rl_st_find(const rl_st_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->t[i].name, name) == 0) return &f->t[i];
    return NULL;
}

rl_status rl_st_tensor_to_f32(const rl_st_tensor *t, float *dst, rl_error *err) {
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case RL_ST_F32: memcpy(dst, p, t->numel * 4); return RL_OK;
    case RL_ST_F16:
        for (size_t i = 0; i < t->numel; i++) dst[i] = rl_f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return RL_OK;
    case RL_ST_BF16:
        for (size_t i = 0; i < t->numel; i++) dst[i] = rl_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return RL_OK;
    default: return rl_fail(err, RL_EFORMAT, "tensor '%s' is %s, expected a float type", t->name, dtype_names[t->dtype]);
    }
}

static rl_status check_shape(const rl_st_tensor *t, const char *path, const int64_t *shape, int ndim, rl_error *err) {
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (same) return RL_OK;
    char got[128] = "", want[128] = "";
    for (int i = 0; i < t->ndim; i++) snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? "," : "", (long long)t->shape[i]);
    for (int i = 0; i < ndim; i++) snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", i ? "," : "", (long long)shape[i]);
    return rl_fail(err, RL_EFORMAT, "%s: tensor '%s' has shape [%s], the config implies [%s]", path, t->name, got, want);
}

rl_status rl_st_read_f32(const rl_st_file *f, const char *name, float *dst, const int64_t *shape, int ndim,
                         rl_error *err) {
    const rl_st_tensor *t = rl_st_find(f, name);
    if (!t) return rl_fail(err, RL_ENOTFOUND, "%s: no tensor '%s'", f->path, name);
    rl_status s = check_shape(t, f->path, shape, ndim, err);
    if (s) return s;
    return rl_st_tensor_to_f32(t, dst, err);
}

/* ---- folders ----------------------------------------------------------------------------- */

rl_status rl_st_set_open_dir(rl_st_set *set, const char *dir, rl_error *err) {
    memset(set, 0, sizeof *set);
    char *index = rl_path_join(dir, "model.safetensors.index.json");
    rl_status s = RL_OK;
    if (!rl_path_exists(index)) {
        free(index);
        char *single = rl_path_join(dir, "model.safetensors");
        set->files = rl_xcalloc(1, sizeof *set->files);
        if (!rl_path_exists(single)) s = rl_fail(err, RL_ENOTFOUND, "%s: no model.safetensors or model.safetensors.index.json", dir);
        else if (!(s = rl_st_open(&set->files[0], single, err))) set->n = 1;
        free(single);
        if (s) rl_st_set_close(set);
        return s;
    }
    char *text = NULL;
    size_t len = 0;
    json_t *o = NULL;
    if ((s = rl_file_read(index, 64u << 20, &text, &len, err))) goto done;
    json_error_t jerr;
    o = json_loadb(text, len, 0, &jerr);
    json_t *map = o ? json_object_get(o, "weight_map") : NULL;
    if (!json_is_object(map)) {
        s = rl_fail(err, RL_EFORMAT, "%s: no weight_map object", index);
        goto done;
    }
    set->files = rl_xcalloc(json_object_size(map) + 1, sizeof *set->files);
    const char *key;
    json_t *val;
    json_object_foreach(map, key, val) {
        const char *fn = json_string_value(val);
        if (!fn || !*fn || strchr(fn, '/') || strcmp(fn, "..") == 0 || strcmp(fn, ".") == 0) {
            s = rl_fail(err, RL_EFORMAT, "%s: weight_map entry for '%s' is not a plain file name", index, key);
            goto done;
        }
        int seen = 0;
        for (int i = 0; i < set->n && !seen; i++) seen = strcmp(rl_path_basename(set->files[i].path), fn) == 0;
        if (seen) continue;
        char *path = rl_path_join(dir, fn);
        s = rl_st_open(&set->files[set->n], path, err);
        free(path);
        if (s) goto done;
        set->n++;
    }
done:
    json_decref(o);
    free(text);
    free(index);
    if (s) rl_st_set_close(set);
    return s;
}

void rl_st_set_close(rl_st_set *set) {
    for (int i = 0; i < set->n; i++) rl_st_close(&set->files[i]);
    free(set->files);
    memset(set, 0, sizeof *set);
}

rl_status rl_st_set_read_f32(const rl_st_set *set, const char *name, float *dst, const int64_t *shape, int ndim,
                             rl_error *err) {
    for (int i = 0; i < set->n; i++)
        if (rl_st_find(&set->files[i], name)) return rl_st_read_f32(&set->files[i], name, dst, shape, ndim, err);
    return rl_fail(err, RL_ENOTFOUND, "missing tensor '%s'", name);
}

/* ---- writing ----------------------------------------------------------------------------- */

rl_status rl_st_write(const char *path, const rl_st_entry *e, int n, rl_st_dtype dtype, rl_error *err) {
    if (dtype != RL_ST_F32 && dtype != RL_ST_F16 && dtype != RL_ST_BF16)
        return rl_fail(err, RL_EINVAL, "safetensors: can only write F32, F16, BF16");
    size_t es = dtype_sizes[dtype], off = 0;
    rl_buf h = {0};
    rl_buf_puts(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < n; i++) {
        size_t numel = 1;
        rl_buf_printf(&h, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", e[i].name, dtype_names[dtype]);
        for (int d = 0; d < e[i].ndim; d++) {
            rl_buf_printf(&h, "%s%lld", d ? "," : "", (long long)e[i].shape[d]);
            numel *= (size_t)e[i].shape[d];
        }
        rl_buf_printf(&h, "],\"data_offsets\":[%zu,%zu]}", off, off + numel * es);
        off += numel * es;
    }
    rl_buf_putc(&h, '}');
    while (h.len % 8) rl_buf_putc(&h, ' ');
    rl_atomic_file f;
    rl_status s = rl_atomic_open(&f, path, err);
    if (s) {
        rl_buf_free(&h);
        return s;
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
    int ok = fwrite(len8, 1, 8, f.fp) == 8 && fwrite(h.data, 1, h.len, f.fp) == h.len;
    uint8_t buf[8192];
    for (int i = 0; i < n && ok; i++) {
        size_t numel = 1;
        for (int d = 0; d < e[i].ndim; d++) numel *= (size_t)e[i].shape[d];
        if (dtype == RL_ST_F32) {
            ok = fwrite(e[i].data, 4, numel, f.fp) == numel; // little-endian hosts only
            continue;
        }
        size_t k = 0;
        for (size_t j = 0; j < numel && ok; j++) {
            uint16_t v = dtype == RL_ST_F16 ? rl_f32_to_f16(e[i].data[j]) : rl_f32_to_bf16(e[i].data[j]);
            buf[k++] = (uint8_t)v;
            buf[k++] = (uint8_t)(v >> 8);
            if (k == sizeof buf || j + 1 == numel) {
                ok = fwrite(buf, 1, k, f.fp) == k;
                k = 0;
            }
        }
    }
    rl_buf_free(&h);
    if (!ok) {
        rl_atomic_abort(&f);
        return rl_fail(err, RL_EIO, "cannot write %s", path);
    }
    return rl_atomic_commit(&f, err);
}
