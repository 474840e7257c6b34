/* tensor_simd.h - AVX-512 helpers shared by the kernels of src/tensor (internal to the module).
 * Callers choose them at run time (tensor_avx512()); every kernel has a scalar path too. */
#ifndef RL_TENSOR_SIMD_H
#define RL_TENSOR_SIMD_H

#include <immintrin.h>
#include <stdlib.h>

/* 1 when the CPU has AVX-512F and RAFTLM_NO_AVX512 is not set (the tests compare both paths;
 * read on every call, so that a test can switch). */
static inline int tensor_avx512(void) { return __builtin_cpu_supports("avx512f") && !getenv("RAFTLM_NO_AVX512"); }

/* exp(x) as 2^n * p(r), n = round(x / ln 2), r = x - n ln 2, p a degree-7 Taylor polynomial
 * (|r| <= ln2/2: relative error below 2 ulp). x below -100 is clamped (exp(-100) ~ 4e-44, a
 * subnormal: callers that need an exact 0 for -inf mask it). */
__attribute__((target("avx512f"))) static inline __m512 tensor_exp512(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-100.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145752f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860677e-6f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* The first n (0..16) lanes. */
static inline __mmask16 tensor_lanes(int n) { return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1); }

#endif
