/* quant.c - Q8_0 weights for inference: quantization (GGUF's block layout: 32 int8 values and
 * one fp16 scale), the Q8_0 x Q8_0 dot product (a scalar reference, always built, and AVX-512
 * VNNI / AVX2 kernels chosen at run time by what the CPU has), and a quantized copy of a model's matrices
 * (rl_qmodel) that rl_infer decodes with (infer_forward in forward.c). With AVX-512 VNNI the
 * Q8_0 / Q4_0 / Q4_K / Q6_K matrices are repacked at load into 16-row groups (qpack.c).
 *
 * As in llama.cpp, activations are quantized to Q8_0 on the fly before each matrix-vector
 * product, so the inner loop is integer multiply-adds (maddubs) with one float scale per block.
 * Values are quantized with the float scale amax/127 and the scale is stored as fp16, so
 * |q| <= 127 and two products never overflow maddubs' int16 pairs.
 *
 * Q4_0 (4-bit values, one fp16 scale per 32) works the same way against Q8_0 activations.
 *
 * Q4_K / Q6_K and float32 rows are in kquant.c. Not done: NEON variants; matrices whose input
 * size is not a multiple of 32 stay float32. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "infer/infer_internal.h"

uint16_t rl_fp32_to_fp16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, mant = x & 0x7fffff;
    int exp = (int)((x >> 23) & 0xff);
    if (exp == 255) return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
    int e = exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00);
    if (e <= 0) { // subnormal half
        if (e < -10) return (uint16_t)sign;
        mant |= 0x800000;
        int shift = 14 - e;
        uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)e << 10) | (mant >> 13), rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++; // a carry rounds up into the exponent
    return (uint16_t)(sign | h);
}

float rl_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, x;
    if (exp == 0) {
        float f = (float)mant * 0x1p-24f;
        return sign ? -f : f;
    }
    x = exp == 31 ? sign | 0x7f800000 | (mant << 13) : sign | ((exp + 112) << 23) | (mant << 13);
    float f;
    memcpy(&f, &x, 4);
    return f;
}

void rl_q8_0_quantize(rl_block_q8_0 *out, const float *x, size_t n) {
    // x (n), out (n / 32)
    for (size_t b = 0; b < n / RL_Q8_0_BLOCK; b++) {
        const float *v = x + b * RL_Q8_0_BLOCK;
        float amax = 0.0f;
        for (int i = 0; i < RL_Q8_0_BLOCK; i++) amax = fmaxf(amax, fabsf(v[i]));
        float d = amax / 127.0f, id = d > 0.0f ? 1.0f / d : 0.0f;
        out[b].d = rl_fp32_to_fp16(d);
        for (int i = 0; i < RL_Q8_0_BLOCK; i++) out[b].qs[i] = (int8_t)lrintf(v[i] * id);
    }
}

void rl_q8_0_dequantize(float *out, const rl_block_q8_0 *blocks, size_t n) {
    for (size_t b = 0; b < n / RL_Q8_0_BLOCK; b++) {
        float d = rl_fp16_to_fp32(blocks[b].d);
        for (int i = 0; i < RL_Q8_0_BLOCK; i++) out[b * RL_Q8_0_BLOCK + i] = d * blocks[b].qs[i];
    }
}

float rl_q8_0_dot_ref(const rl_block_q8_0 *a, const rl_block_q8_0 *b, size_t nb) {
    float sum = 0.0f;
    for (size_t i = 0; i < nb; i++) {
        int s = 0;
        for (int k = 0; k < RL_Q8_0_BLOCK; k++) s += a[i].qs[k] * b[i].qs[k];
        sum += rl_fp16_to_fp32(a[i].d) * rl_fp16_to_fp32(b[i].d) * (float)s;
    }
    return sum;
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma,f16c"))) static float dot_avx2(const rl_block_q8_0 *a, const rl_block_q8_0 *b, size_t nb) {
    __m256 acc = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1);
    for (size_t i = 0; i < nb; i++) {
        __m256 d = _mm256_set1_ps(_cvtsh_ss(a[i].d) * _cvtsh_ss(b[i].d));
        __m256i qa = _mm256_loadu_si256((const __m256i *)a[i].qs);
        __m256i qb = _mm256_loadu_si256((const __m256i *)b[i].qs);
        // |a| (unsigned) times b with a's sign: maddubs multiplies unsigned by signed bytes
        __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(qa, qa), _mm256_sign_epi8(qb, qa));
        __m256i p32 = _mm256_madd_epi16(p16, ones);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p32), acc);
    }
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}
#endif


#if defined(__x86_64__)
static float dot_avx512(const rl_block_q8_0 *a, const rl_block_q8_0 *b, size_t nb);
static int has_vnni512(void);
#endif

int infer_simd_level(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (getenv("RAFTLM_NO_SIMD") || !__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return INFER_SCALAR;
    if (getenv("RAFTLM_NO_AVX512") || !__builtin_cpu_supports("avx512f")) return INFER_AVX2;
    return has_vnni512() ? INFER_AVX512_VNNI : INFER_AVX512;
#else
    return INFER_SCALAR;
#endif
}

rl_q8_0_dot_fn rl_q8_0_dot_kernel(const char **name) {
#if defined(__x86_64__)
    int level = infer_simd_level();
    if (level >= INFER_AVX512_VNNI) {
        if (name) *name = "avx512vnni";
        return dot_avx512;
    }
    if (level >= INFER_AVX2) {
        if (name) *name = "avx2";
        return dot_avx2;
    }
#endif
    if (name) *name = "scalar";
    return rl_q8_0_dot_ref;
}

/* ---- Q4_0 ---------------------------------------------------------------------------------- */

void rl_q4_0_quantize(rl_block_q4_0 *out, const float *x, size_t n) {
    // x (n), out (n / 32): the GGUF writer's quantizer (the same bytes in files and in memory)
    rl_ggml_quantize_row(RL_WTYPE_Q4_0, out, x, n);
}

void rl_q4_0_dequantize(float *out, const rl_block_q4_0 *blocks, size_t n) {
    for (size_t b = 0; b < n / RL_Q8_0_BLOCK; b++) {
        float d = rl_fp16_to_fp32(blocks[b].d);
        for (int i = 0; i < RL_Q8_0_BLOCK / 2; i++) {
            out[b * RL_Q8_0_BLOCK + i] = d * ((blocks[b].qs[i] & 15) - 8);
            out[b * RL_Q8_0_BLOCK + i + 16] = d * ((blocks[b].qs[i] >> 4) - 8);
        }
    }
}

float rl_q4_0_dot_ref(const rl_block_q4_0 *w, const rl_block_q8_0 *x, size_t nb) {
    float sum = 0.0f;
    for (size_t i = 0; i < nb; i++) {
        int s = 0;
        for (int k = 0; k < RL_Q8_0_BLOCK / 2; k++)
            s += ((w[i].qs[k] & 15) - 8) * x[i].qs[k] + ((w[i].qs[k] >> 4) - 8) * x[i].qs[k + 16];
        sum += rl_fp16_to_fp32(w[i].d) * rl_fp16_to_fp32(x[i].d) * (float)s;
    }
    return sum;
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma,f16c"))) static float dot4_avx2(const rl_block_q4_0 *w, const rl_block_q8_0 *x, size_t nb) {
    __m256 acc = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1), low = _mm256_set1_epi8(0xF), eight = _mm256_set1_epi8(8);
    for (size_t i = 0; i < nb; i++) {
        __m256 d = _mm256_set1_ps(_cvtsh_ss(w[i].d) * _cvtsh_ss(x[i].d));
        // 16 bytes of nibbles -> 32 bytes: the low nibbles (values 0..15), then the high ones (16..31)
        __m128i t = _mm_loadu_si128((const __m128i *)w[i].qs);
        __m256i qw = _mm256_insertf128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
        qw = _mm256_sub_epi8(_mm256_and_si256(qw, low), eight);
        __m256i qx = _mm256_loadu_si256((const __m256i *)x[i].qs);
        __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(qw, qw), _mm256_sign_epi8(qx, qw));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones)), acc);
    }
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}
#endif

#if defined(__x86_64__)
#define VNNI512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
/* Two blocks per step: their 32 bytes side by side in a 512-bit register, vpdpbusd for the
 * products (unsigned x signed, so |a| against b with a's sign), one fp32 scale per half. */
VNNI512 static float dot_avx512(const rl_block_q8_0 *a, const rl_block_q8_0 *b, size_t nb) {
    __m512 acc = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        __m512i qa = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)a[i].qs)),
                                        _mm256_loadu_si256((const __m256i *)a[i + 1].qs), 1);
        __m512i qb = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)b[i].qs)),
                                        _mm256_loadu_si256((const __m256i *)b[i + 1].qs), 1);
        __m512i sb = _mm512_mask_sub_epi8(qb, _mm512_movepi8_mask(qa), _mm512_setzero_si512(), qb);
        __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(qa), sb);
        __m512 d = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(_cvtsh_ss(a[i].d) * _cvtsh_ss(b[i].d)),
                                        _mm512_set1_ps(_cvtsh_ss(a[i + 1].d) * _cvtsh_ss(b[i + 1].d)));
        acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(p), acc);
    }
    float sum = _mm512_reduce_add_ps(acc);
    if (i < nb) sum += dot_avx2(a + i, b + i, 1);
    return sum;
}

VNNI512 static float dot4_avx512(const rl_block_q4_0 *w, const rl_block_q8_0 *x, size_t nb) {
    // (q - 8) . x = q . x - 8 (sum of x): both with vpdpbusd, q as the unsigned side
    __m512 acc = _mm512_setzero_ps();
    const __m512i low = _mm512_set1_epi8(0xF), eight = _mm512_set1_epi8(8);
    size_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        __m128i t0 = _mm_loadu_si128((const __m128i *)w[i].qs), t1 = _mm_loadu_si128((const __m128i *)w[i + 1].qs);
        __m256i b0 = _mm256_inserti128_si256(_mm256_castsi128_si256(t0), _mm_srli_epi16(t0, 4), 1);
        __m256i b1 = _mm256_inserti128_si256(_mm256_castsi128_si256(t1), _mm_srli_epi16(t1, 4), 1);
        __m512i qw = _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(b0), b1, 1), low);
        __m512i qx = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)x[i].qs)),
                                        _mm256_loadu_si256((const __m256i *)x[i + 1].qs), 1);
        __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), qw, qx);
        __m512i sx = _mm512_dpbusd_epi32(_mm512_setzero_si512(), eight, qx);
        __m512 d = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(_cvtsh_ss(w[i].d) * _cvtsh_ss(x[i].d)),
                                        _mm512_set1_ps(_cvtsh_ss(w[i + 1].d) * _cvtsh_ss(x[i + 1].d)));
        acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(_mm512_sub_epi32(p, sx)), acc);
    }
    float sum = _mm512_reduce_add_ps(acc);
    if (i < nb) sum += dot4_avx2(w + i, x + i, 1);
    return sum;
}

static int has_vnni512(void) {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512vnni");
}
#endif

rl_q4_0_dot_fn rl_q4_0_dot_kernel(const char **name) {
#if defined(__x86_64__)
    int level = infer_simd_level();
    if (level >= INFER_AVX512_VNNI) {
        if (name) *name = "avx512vnni";
        return dot4_avx512;
    }
    if (level >= INFER_AVX2) {
        if (name) *name = "avx2";
        return dot4_avx2;
    }
#endif
    if (name) *name = "scalar";
    return rl_q4_0_dot_ref;
}

/* ---- a quantized copy of a model ----------------------------------------------------------- */

/* Bytes of one row of cols values of a type (0: the type does not fit cols). */
static size_t qrow_bytes(rl_wtype type, int cols) {
    switch (type) {
    case RL_WTYPE_F32: return (size_t)cols * sizeof(float);
    case RL_WTYPE_Q8_0: return cols % RL_Q8_0_BLOCK ? 0 : (size_t)cols / RL_Q8_0_BLOCK * sizeof(rl_block_q8_0);
    case RL_WTYPE_Q4_0: return cols % RL_Q8_0_BLOCK ? 0 : (size_t)cols / RL_Q8_0_BLOCK * sizeof(rl_block_q4_0);
    case RL_WTYPE_Q4_K: return cols % RL_QK_K ? 0 : (size_t)cols / RL_QK_K * sizeof(rl_block_q4_k);
    case RL_WTYPE_Q6_K: return cols % RL_QK_K ? 0 : (size_t)cols / RL_QK_K * sizeof(rl_block_q6_k);
    }
    return 0;
}

/* Decoding reads every weight matrix once per token, which with 4 KB pages is a TLB miss every
 * 1,024 floats; on 2 MB pages one core streams float32 weights measurably faster
 * (docs/benchmarks.md). The model's float32 weights, already written, are offered to the kernel's
 * transparent huge pages: MADV_HUGEPAGE (Debian's THP mode is "madvise"), then MADV_COLLAPSE
 * (Linux 6.1+: now, rather than whenever khugepaged gets there); quantized copies are allocated
 * with rl_big_alloc, which asks before they are written. Only whole 2 MB pages inside [p, p + n)
 * are asked for. A hint: where it fails (another OS, an older kernel, THP off, no free huge
 * page) nothing changes but speed. */
static void huge_pages(const void *p, size_t n) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const uintptr_t H = (uintptr_t)2 << 20;
    uintptr_t a = ((uintptr_t)p + H - 1) & ~(H - 1), e = ((uintptr_t)p + n) & ~(H - 1);
    if (e <= a) return;
    (void)madvise((void *)a, e - a, MADV_HUGEPAGE);
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25 /* linux/mman.h; glibc 2.36 lacks the name */
#endif
    (void)madvise((void *)a, e - a, MADV_COLLAPSE);
#else
    (void)p, (void)n;
#endif
}

void infer_huge_pages_model(const rl_model *m) {
    const rl_model_config *c = &m->cfg;
    uintptr_t lo = UINTPTR_MAX, hi = 0; // the span of the layers' matrices: one allocation (rl_params)
    for (int l = 0; l < c->n_layers; l++)
        for (int md = 0; md < RL_MOD_COUNT; md++) {
            float *w, *b;
            int in, o;
            rl_params_linear(c, &m->w, l, (rl_module)md, &w, &b, &in, &o);
            uintptr_t e = (uintptr_t)(w + (size_t)in * o);
            lo = (uintptr_t)w < lo ? (uintptr_t)w : lo;
            hi = e > hi ? e : hi;
        }
    if (hi > lo) huge_pages((const void *)lo, hi - lo);
    huge_pages(m->w.lm_head, (size_t)c->vocab_size * c->dim * sizeof(float));
}

/* Bytes of one packed group of 16 rows for one block (32 values) or super-block (256). */
static size_t packed_group_bytes(rl_wtype type) {
    switch (type) {
    case RL_WTYPE_Q8_0: return sizeof(infer_q8_0x16);
    case RL_WTYPE_Q4_0: return sizeof(infer_q4_0x16);
    case RL_WTYPE_Q4_K: return sizeof(infer_q4_kx16);
    default: return sizeof(infer_q6_kx16);
    }
}

static rl_status qmat_init(rl_qmat *q, const float *w, int rows, int cols, rl_wtype type, rl_error *err) {
    q->rows = rows;
    q->cols = cols;
    q->f32 = w;
    q->blocks = NULL;
    q->packed = 0;
    q->type = RL_WTYPE_F32;
    if (!qrow_bytes(type, cols)) type = rl_wtype_fallback(type);
    size_t rb = qrow_bytes(type, cols);
    if (type == RL_WTYPE_F32 || !rb) return RL_OK; // stays float32
    q->blocks = rl_big_alloc((size_t)rows * rb);
    if (!q->blocks) return rl_fail(err, RL_ENOMEM, "quantized copy of a %d x %d matrix", rows, cols);
    for (int r = 0; r < rows; r++) {
        uint8_t *dst = (uint8_t *)q->blocks + (size_t)r * rb;
        const float *x = w + (size_t)r * cols;
        if (type == RL_WTYPE_Q4_0) rl_q4_0_quantize((rl_block_q4_0 *)dst, x, (size_t)cols);
        else if (type == RL_WTYPE_Q8_0) rl_q8_0_quantize((rl_block_q8_0 *)dst, x, (size_t)cols);
        else rl_ggml_quantize_row((int)type, dst, x, (size_t)cols); // K types: the GGUF writer's quantizers
    }
    q->type = type;
    q->f32 = NULL;
    // with VNNI, the rows of every quantized type are interleaved 16 at a time for the tiled kernels (qpack.c)
    if (infer_simd_level() >= INFER_AVX512_VNNI) {
        size_t groups = ((size_t)rows + QPACK_R - 1) / QPACK_R, nb = (size_t)cols / (type == RL_WTYPE_Q4_K || type == RL_WTYPE_Q6_K ? RL_QK_K : RL_Q8_0_BLOCK);
        size_t bytes = groups * nb * packed_group_bytes(type);
        void *p = rl_big_alloc(bytes);
        if (!p) return rl_fail(err, RL_ENOMEM, "packed copy of a %d x %d matrix", rows, cols);
        if (type == RL_WTYPE_Q8_0) infer_pack_q8_0(p, q->blocks, rows, nb);
        else if (type == RL_WTYPE_Q4_0) infer_pack_q4_0(p, q->blocks, rows, nb);
        else if (type == RL_WTYPE_Q4_K) infer_pack_q4_k(p, q->blocks, rows, nb);
        else infer_pack_q6_k(p, q->blocks, rows, nb);
        free(q->blocks);
        q->blocks = p;
        q->packed = 1;
    }
    return RL_OK;
}

rl_status rl_qmodel_new(rl_qmodel **out, const rl_model *m, rl_wtype type, rl_error *err) {
    *out = NULL;
    if (type != RL_WTYPE_Q8_0 && type != RL_WTYPE_Q4_0 && type != RL_WTYPE_Q4_K && type != RL_WTYPE_Q6_K && type != RL_WTYPE_F32)
        return rl_fail(err, RL_EUNSUPPORTED, "weights for inference: F32, Q8_0, Q4_0, Q4_K or Q6_K");
    if (m->lora) return rl_fail(err, RL_EUNSUPPORTED, "quantized inference with an unmerged LoRA adapter: merge it first");
    const rl_model_config *c = &m->cfg;
    rl_qmodel *q = calloc(1, sizeof *q);
    if (!q) return rl_fail(err, RL_ENOMEM, "quantized model");
    q->type = type;
    q->n_layers = c->n_layers;
    q->layers = calloc((size_t)c->n_layers, sizeof *q->layers);
    rl_status s = q->layers ? RL_OK : rl_fail(err, RL_ENOMEM, "quantized model");
    for (int l = 0; l < c->n_layers && !s; l++)
        for (int md = 0; md < RL_MOD_COUNT && !s; md++) {
            float *w, *b;
            int in, o;
            rl_params_linear(c, &m->w, l, (rl_module)md, &w, &b, &in, &o);
            s = qmat_init(&q->layers[l][md], w, o, in, type, err);
        }
    if (!s) s = qmat_init(&q->lm_head, m->w.lm_head, c->vocab_size, c->dim, type, err);
    if (s) {
        rl_qmodel_free(q);
        return s;
    }
    if (type == RL_WTYPE_F32) infer_huge_pages_model(m); // borrowed
    const char *k8, *kf;
    q->dot = rl_q8_0_dot_kernel(&k8);
    q->dot4 = rl_q4_0_dot_kernel(NULL);
    q->dot4k = rl_q4_k_dot_kernel(NULL);
    q->dot4k_rows = rl_q4_k_dot_rows_kernel(NULL);
    q->dot6k = rl_q6_k_dot_kernel(NULL);
    q->dotf = rl_f32_dot_kernel(&kf);
    q->kernel = type == RL_WTYPE_F32 ? kf : k8;
    q->simd = infer_simd_level();
    *out = q;
    return RL_OK;
}

static size_t qmat_bytes(const rl_qmat *q) {
    size_t groups = ((size_t)q->rows + QPACK_R - 1) / QPACK_R;
    int k = q->type == RL_WTYPE_Q4_K || q->type == RL_WTYPE_Q6_K;
    if (q->packed) return groups * ((size_t)q->cols / (k ? RL_QK_K : RL_Q8_0_BLOCK)) * packed_group_bytes(q->type);
    return (size_t)q->rows * qrow_bytes(q->type, q->cols);
}

size_t rl_qmodel_bytes(const rl_qmodel *q) {
    size_t n = qmat_bytes(&q->lm_head);
    for (int l = 0; l < q->n_layers; l++)
        for (int md = 0; md < RL_MOD_COUNT; md++) n += qmat_bytes(&q->layers[l][md]);
    return n;
}

const char *rl_qmodel_kernel(const rl_qmodel *q) { return q->kernel; }

rl_wtype rl_wtype_fallback(rl_wtype type) {
    return type == RL_WTYPE_Q4_K ? RL_WTYPE_Q4_0 : type == RL_WTYPE_Q6_K ? RL_WTYPE_Q8_0 : RL_WTYPE_F32;
}

int rl_qmodel_count_asked(const rl_qmodel *q, int *total) {
    int n = q->lm_head.type == q->type, all = 1;
    for (int l = 0; l < q->n_layers; l++)
        for (int md = 0; md < RL_MOD_COUNT; md++, all++) n += q->layers[l][md].type == q->type;
    if (total) *total = all;
    return n;
}

void rl_qmodel_free(rl_qmodel *q) {
    if (!q) return;
    for (int l = 0; q->layers && l < q->n_layers; l++)
        for (int md = 0; md < RL_MOD_COUNT; md++) free(q->layers[l][md].blocks);
    free(q->layers);
    free(q->lm_head.blocks);
    free(q);
}
