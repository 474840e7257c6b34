/* gguf.h - internal to src/model (and its tests): the GGUF container and ggml block formats.
 * rl_gguf_open maps a file and checks its header, metadata and tensor directory; values and
 * tensor data point into the mapping and live until rl_gguf_close. */
#ifndef RL_MODEL_GGUF_H
#define RL_MODEL_GGUF_H

#include "core/core.h"

enum { RL_GGML_F32 = 0, RL_GGML_F16 = 1, RL_GGML_Q4_0 = 2, RL_GGML_Q8_0 = 8, RL_GGML_Q4_K = 12, RL_GGML_Q6_K = 14,
       RL_GGML_BF16 = 30 };

typedef struct rl_gguf_kv {
    const char *key;
    size_t key_len;
    uint32_t type;               /* GGUF value type */
    const uint8_t *val;          /* the value's bytes in the mapping */
    uint32_t arr_type;           /* arrays: element type and count */
    uint64_t arr_n;
} rl_gguf_kv;

typedef struct rl_gguf_tensor {
    const char *name;
    size_t name_len;
    int ndim;
    int64_t dims[4];             /* fastest-first (ne[0] = columns) */
    uint64_t numel;
    int type;                    /* ggml type */
    uint64_t offset;
    int supported;               /* a type rl_ggml_dequant reads */
    const uint8_t *data;         /* NULL when unsupported */
    size_t nbytes;
} rl_gguf_tensor;

typedef struct rl_gguf {
    rl_mmap map;
    uint32_t version, alignment;
    rl_gguf_kv *kv;
    int n_kv;
    rl_gguf_tensor *t;
    int n_t;
} rl_gguf;

rl_status rl_gguf_open(rl_gguf *g, const char *path, rl_error *err);
void rl_gguf_close(rl_gguf *g);
const rl_gguf_kv *rl_gguf_find_kv(const rl_gguf *g, const char *key);
const rl_gguf_tensor *rl_gguf_find_tensor(const rl_gguf *g, const char *name);
int rl_gguf_get_num(const rl_gguf *g, const char *key, double *out);
int rl_gguf_get_str(const rl_gguf *g, const char *key, char *out, size_t cap);

/* Bytes of a row of n elements of a ggml type (ok = 0 when unsupported or n does not fit the block). */
size_t rl_ggml_row_bytes(int type, int64_t n, int *ok);
const char *rl_ggml_type_name(int type);
/* dst (n) = the n elements at src (n a multiple of the type's block). */
void rl_ggml_dequant(int type, const uint8_t *src, float *dst, size_t n);
/* ggml's reference Q8_0 quantization of n (multiple of 32) floats. */
void rl_ggml_quant_q8_0(uint8_t *dst, const float *src, size_t n);
/* ggml_quant.c: Q4_0 (n a multiple of 32), Q4_K and Q6_K (multiples of 256). */
void rl_ggml_quant_q4_0(uint8_t *dst, const float *src, size_t n);
void rl_ggml_quant_q4_k(uint8_t *dst, const float *src, size_t n);
void rl_ggml_quant_q6_k(uint8_t *dst, const float *src, size_t n);

#endif
