/* safetensors.h - internal to src/model (and its tests): reading and writing the safetensors
 * container. Reading memory-maps the file and checks every header entry before use.
 * Ownership: rl_st_close / rl_st_set_close release what open allocated; tensor data points into
 * the mapping and lives until close. */
#ifndef RL_MODEL_SAFETENSORS_H
#define RL_MODEL_SAFETENSORS_H

#include "core/core.h"

typedef enum rl_st_dtype { RL_ST_F32 = 0, RL_ST_F16, RL_ST_BF16, RL_ST_I32, RL_ST_I64 } rl_st_dtype;

#define RL_ST_MAX_DIMS 8

typedef struct rl_st_tensor {
    char *name;
    rl_st_dtype dtype;
    int ndim;
    int64_t shape[RL_ST_MAX_DIMS];
    size_t numel;
    const uint8_t *data; /* inside the mapping */
    size_t nbytes;
} rl_st_tensor;

typedef struct rl_st_file {
    char *path;
    rl_mmap map;
    rl_st_tensor *t;
    int n;
} rl_st_file;

rl_status rl_st_open(rl_st_file *f, const char *path, rl_error *err);
void rl_st_close(rl_st_file *f);
const rl_st_tensor *rl_st_find(const rl_st_file *f, const char *name);
/* Copies tensor `name` into dst as float32 (F32/F16/BF16 sources) after checking that its
 * shape equals shape[0..ndim). */
rl_status rl_st_read_f32(const rl_st_file *f, const char *name, float *dst, const int64_t *shape, int ndim,
                         rl_error *err);
/* Converts one tensor (any float dtype) to float32; dst has t->numel floats. */
rl_status rl_st_tensor_to_f32(const rl_st_tensor *t, float *dst, rl_error *err);

/* All the safetensors files of a Hugging Face folder (one file, or the shards of an index). */
typedef struct rl_st_set {
    rl_st_file *files;
    int n;
} rl_st_set;

rl_status rl_st_set_open_dir(rl_st_set *s, const char *dir, rl_error *err);
void rl_st_set_close(rl_st_set *s);
rl_status rl_st_set_read_f32(const rl_st_set *s, const char *name, float *dst, const int64_t *shape, int ndim,
                             rl_error *err);

/* Writing: tensors given as float32 are stored as `dtype` (F32, F16 or BF16). */
typedef struct rl_st_entry {
    const char *name;
    const float *data;
    int ndim;
    int64_t shape[RL_ST_MAX_DIMS];
} rl_st_entry;
rl_status rl_st_write(const char *path, const rl_st_entry *entries, int n, rl_st_dtype dtype, rl_error *err);

#endif
