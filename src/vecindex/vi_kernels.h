/* vi_kernels.h - internal to src/vecindex: the distance kernels behind one interface.
 * vi_kernels.c holds a scalar reference and AVX2 / AVX-512 versions compiled with target
 * attributes and chosen at run time (cpuid); tests/test_vecindex.c checks that they agree. */
#ifndef RL_VI_KERNELS_H
#define RL_VI_KERNELS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { RL_VI_SIMD_SCALAR = 0, RL_VI_SIMD_AVX2 = 1, RL_VI_SIMD_AVX512 = 2 } rl_vi_simd;

typedef struct rl_vi_kernels {
    const char *name;
    float (*l2sq)(const float *a, const float *b, size_t n); /* sum (a-b)^2 */
    float (*dot)(const float *a, const float *b, size_t n);  /* sum a*b */
    int32_t (*dot_i8)(const int8_t *a, const int8_t *b, size_t n); /* sum a*b, |a|,|b| <= 127 */
} rl_vi_kernels;

/* The best kernels this CPU runs, capped by `cap` and by $RL_SIMD. */
const rl_vi_kernels *rl_vi_kernels_get(rl_vi_simd cap);
/* NULL when the CPU lacks the level. */
const rl_vi_kernels *rl_vi_kernels_level(rl_vi_simd level);

#endif
