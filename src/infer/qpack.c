/* qpack.c - Q8_0 / Q4_0 / Q4_K / Q6_K matrices repacked at load for AVX-512 VNNI, and their kernel: a tile of
 * 16 weight rows against up to 8 tokens (decoding is 1 token, a batched prompt many).
 *
 * How: the rows of a matrix are taken 16 at a time; for each block of 32 columns the 16 rows'
 * bytes are interleaved four at a time, so that a 64-byte load holds 4 consecutive values of
 * each of the 16 rows (one 32-bit lane per row). One vpdpbusd against 4 activation bytes
 * broadcast to every lane then adds 4 products to each of the 16 rows' sums: a block of 16 rows
 * is 8 instructions per token, and its weights are loaded (and Q4_0's nibbles split) once for
 * all the tokens of a tile (up to 8). Q4_0 needs no nibble shuffle: GGUF's byte j already holds values j
 * (low nibble) and j + 16 (high nibble), so the low nibbles of lane group s are values 4s..4s+3
 * and the high ones 16+4s..16+4s+3.
 *   vpdpbusd multiplies unsigned by signed bytes. Q4_0: the nibbles (0..15) are the unsigned
 * side and the -8 comes back as 8 * (sum of the activation block). Q8_0: the activation
 * shifted by 128 (x ^ 0x80) is the unsigned side and 128 * (sum of the weight block, stored at
 * pack time) is taken off.
 *   Each output is computed as the scalar references do (rl_q8_0_dot_ref, rl_q4_0_dot_ref):
 * the block's exact integer sum, times (d_w * d_x), added block by block in order. So the
 * kernel gives the references' bits, and a token gives the same bits alone or in a batch.
 *
 * Q4_K: the same interleaving over a super-block's 128 bytes of nibbles; each 32-value group's
 * 16 row sums come from 8 vpdpbusd, are multiplied by the rows' six-bit scales and added up
 * exactly, and the mins' part is the rows' mins times the activation's group sums; then
 * d x_d dot - dmin x_d mins per block, in the reference's order (rl_q4_k_dot_ref's bits).
 * Q6_K: ql and qh interleaved the same way (the same bytes as the row-major blocks); the six-bit
 * values q + 32 are the unsigned side, and the -32 returns as 32 * scale * group sum of x.
 *
 * Not done: an AVX2 variant (without VNNI the row-major blocks and quant.c's kernels are used). */
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "infer/infer_internal.h"

#if defined(__x86_64__)
/* rl_q8_0_quantize's arithmetic (amax / 127, x * (1 / d) rounded to nearest even) 32 values at a
 * time: the same bytes. */
__attribute__((target("avx512f,avx512bw,avx512vl"))) static void xq_quantize_avx512(infer_xq *out, const float *x, size_t n) {
    for (size_t b = 0; b < n / RL_Q8_0_BLOCK; b++) {
        __m512 v0 = _mm512_loadu_ps(x + b * RL_Q8_0_BLOCK), v1 = _mm512_loadu_ps(x + b * RL_Q8_0_BLOCK + 16);
        float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        float d = amax / 127.0f, id = d > 0.0f ? 1.0f / d : 0.0f;
        __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, _mm512_set1_ps(id)));
        __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, _mm512_set1_ps(id)));
        __m128i b0 = _mm512_cvtsepi32_epi8(q0), b1 = _mm512_cvtsepi32_epi8(q1);
        _mm_storeu_si128((__m128i *)out[b].qs, b0);
        _mm_storeu_si128((__m128i *)(out[b].qs + 16), b1);
        _mm_storeu_si128((__m128i *)out[b].qu, _mm_xor_si128(b0, _mm_set1_epi8((char)0x80)));
        _mm_storeu_si128((__m128i *)(out[b].qu + 16), _mm_xor_si128(b1, _mm_set1_epi8((char)0x80)));
        out[b].sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
        out[b].d = rl_fp16_to_fp32(rl_fp32_to_fp16(d));
    }
}
#endif

void infer_xq_quantize(infer_xq *out, const float *x, size_t n, int simd) {
    // x (n), out (n / 32): rl_q8_0_quantize's values, with the fp16 scale as float and the sum
#if defined(__x86_64__)
    if (simd >= INFER_AVX512) {
        xq_quantize_avx512(out, x, n);
        return;
    }
#endif
    for (size_t b = 0; b < n / RL_Q8_0_BLOCK; b++) {
        rl_block_q8_0 q;
        rl_q8_0_quantize(&q, x + b * RL_Q8_0_BLOCK, RL_Q8_0_BLOCK);
        int sum = 0;
        for (int i = 0; i < RL_Q8_0_BLOCK; i++) {
            out[b].qs[i] = q.qs[i];
            out[b].qu[i] = (uint8_t)(q.qs[i] ^ 0x80);
            sum += q.qs[i];
        }
        out[b].d = rl_fp16_to_fp32(q.d);
        out[b].sum = sum;
    }
}

void infer_pack_q4_0(infer_q4_0x16 *out, const rl_block_q4_0 *w, int rows, size_t nb) {
    // w (rows, nb) blocks; out (ceil(rows / 16), nb); rows past the end are zero (scale 0)
    for (int g = 0; g < (rows + QPACK_R - 1) / QPACK_R; g++)
        for (size_t b = 0; b < nb; b++) {
            infer_q4_0x16 *o = out + (size_t)g * nb + b;
            memset(o, 0, sizeof *o);
            for (int r = 0; r < QPACK_R && g * QPACK_R + r < rows; r++) {
                const rl_block_q4_0 *src = w + (size_t)(g * QPACK_R + r) * nb + b;
                o->d[r] = src->d;
                for (int s = 0; s < 4; s++) memcpy(o->qs + 64 * s + 4 * r, src->qs + 4 * s, 4);
            }
        }
}

void infer_pack_q8_0(infer_q8_0x16 *out, const rl_block_q8_0 *w, int rows, size_t nb) {
    for (int g = 0; g < (rows + QPACK_R - 1) / QPACK_R; g++)
        for (size_t b = 0; b < nb; b++) {
            infer_q8_0x16 *o = out + (size_t)g * nb + b;
            memset(o, 0, sizeof *o);
            for (int r = 0; r < QPACK_R && g * QPACK_R + r < rows; r++) {
                const rl_block_q8_0 *src = w + (size_t)(g * QPACK_R + r) * nb + b;
                int sum = 0;
                for (int i = 0; i < RL_Q8_0_BLOCK; i++) sum += src->qs[i];
                o->d[r] = src->d;
                o->sum[r] = (int16_t)sum; // |sum| <= 32 * 127
                for (int s = 0; s < 8; s++) memcpy(o->qs + 64 * s + 4 * r, src->qs + 4 * s, 4);
            }
        }
}

void infer_pack_q4_k(infer_q4_kx16 *out, const rl_block_q4_k *w, int rows, size_t nb) {
    for (int g = 0; g < (rows + QPACK_R - 1) / QPACK_R; g++)
        for (size_t b = 0; b < nb; b++) {
            infer_q4_kx16 *o = out + (size_t)g * nb + b;
            memset(o, 0, sizeof *o);
            for (int r = 0; r < QPACK_R && g * QPACK_R + r < rows; r++) {
                const rl_block_q4_k *src = w + (size_t)(g * QPACK_R + r) * nb + b;
                uint8_t sc[8], mn[8];
                infer_q4k_scales(src->scales, sc, mn);
                o->d[r] = src->d;
                o->dmin[r] = src->dmin;
                for (int j = 0; j < 8; j++) o->sc[j][r] = sc[j], o->mn[j][r] = mn[j];
                for (int k = 0; k < 4; k++)
                    for (int s = 0; s < 8; s++) memcpy(o->qs + 64 * (8 * k + s) + 4 * r, src->qs + 32 * k + 4 * s, 4);
            }
        }
}

void infer_pack_q6_k(infer_q6_kx16 *out, const rl_block_q6_k *w, int rows, size_t nb) {
    for (int g = 0; g < (rows + QPACK_R - 1) / QPACK_R; g++)
        for (size_t b = 0; b < nb; b++) {
            infer_q6_kx16 *o = out + (size_t)g * nb + b;
            memset(o, 0, sizeof *o);
            for (int r = 0; r < QPACK_R && g * QPACK_R + r < rows; r++) {
                const rl_block_q6_k *src = w + (size_t)(g * QPACK_R + r) * nb + b;
                o->d[r] = src->d;
                for (int j = 0; j < 16; j++) o->sc[j][r] = src->scales[j];
                for (int v = 0; v < 32; v++) memcpy(o->ql + 64 * v + 4 * r, src->ql + 64 * (v / 16) + 4 * (v % 16), 4);
                for (int v = 0; v < 16; v++) memcpy(o->qh + 64 * v + 4 * r, src->qh + 32 * (v / 8) + 4 * (v % 8), 4);
            }
        }
}

#if defined(__x86_64__)
#define VNNI512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

static inline int32_t dword(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* out[t * ldo + r] (r < 16, masked by m) = row r of the group . token t, for t < NT <= 8 (a
 * constant after inlining). x: token t's blocks start at x + t * xs. */
VNNI512 static inline __attribute__((always_inline)) void q4_tile(float *out, size_t ldo, const infer_q4_0x16 *w,
                                                                  const infer_xq *x, size_t xs, size_t nb, __mmask16 m,
                                                                  const int NT) {
    const __m512i low = _mm512_set1_epi8(15);
    __m512 acc[8];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();
    for (size_t b = 0; b < nb; b++) {
        __m512i q[8];
        _Pragma("GCC unroll 8")
        for (int s = 0; s < 4; s++) {
            __m512i raw = _mm512_loadu_si512(w[b].qs + 64 * s);
            q[s] = _mm512_and_si512(raw, low);
            q[s + 4] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), low);
        }
        __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)w[b].d));
        _Pragma("GCC unroll 8")
        for (int t = 0; t < NT; t++) {
            const infer_xq *xb = x + t * xs + b;
            __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
            _Pragma("GCC unroll 8")
            for (int s = 0; s < 4; s++) {
                s0 = _mm512_dpbusd_epi32(s0, q[s], _mm512_set1_epi32(dword(xb->qs + 4 * s)));
                s1 = _mm512_dpbusd_epi32(s1, q[s + 4], _mm512_set1_epi32(dword(xb->qs + 16 + 4 * s)));
            }
            __m512i si = _mm512_sub_epi32(_mm512_add_epi32(s0, s1), _mm512_set1_epi32(8 * xb->sum));
            __m512 dd = _mm512_mul_ps(dw, _mm512_set1_ps(xb->d));
            acc[t] = _mm512_add_ps(acc[t], _mm512_mul_ps(dd, _mm512_cvtepi32_ps(si)));
        }
    }
    _Pragma("GCC unroll 8")
    for (int t = 0; t < NT; t++) _mm512_mask_storeu_ps(out + t * ldo, m, acc[t]);
}

VNNI512 static inline __attribute__((always_inline)) void q8_tile(float *out, size_t ldo, const infer_q8_0x16 *w,
                                                                  const infer_xq *x, size_t xs, size_t nb, __mmask16 m,
                                                                  const int NT) {
    __m512 acc[8];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();
    for (size_t b = 0; b < nb; b++) {
        __m512i q[8];
        _Pragma("GCC unroll 8")
        for (int s = 0; s < 8; s++) q[s] = _mm512_loadu_si512(w[b].qs + 64 * s);
        __m512i corr = _mm512_slli_epi32(_mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)w[b].sum)), 7);
        __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)w[b].d));
        _Pragma("GCC unroll 8")
        for (int t = 0; t < NT; t++) {
            const infer_xq *xb = x + t * xs + b;
            __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
            _Pragma("GCC unroll 8")
            for (int s = 0; s < 4; s++) {
                s0 = _mm512_dpbusd_epi32(s0, _mm512_set1_epi32(dword(xb->qu + 4 * s)), q[s]);
                s1 = _mm512_dpbusd_epi32(s1, _mm512_set1_epi32(dword(xb->qu + 16 + 4 * s)), q[s + 4]);
            }
            __m512i si = _mm512_sub_epi32(_mm512_add_epi32(s0, s1), corr);
            __m512 dd = _mm512_mul_ps(dw, _mm512_set1_ps(xb->d));
            acc[t] = _mm512_add_ps(acc[t], _mm512_mul_ps(dd, _mm512_cvtepi32_ps(si)));
        }
    }
    _Pragma("GCC unroll 8")
    for (int t = 0; t < NT; t++) _mm512_mask_storeu_ps(out + t * ldo, m, acc[t]);
}

/* Q4_K, NT <= 4 tokens: per 64-value chunk k the 16 rows' nibbles are split once for all tokens. */
VNNI512 static inline __attribute__((always_inline)) void q4k_tile(float *out, size_t ldo, const infer_q4_kx16 *w,
                                                                   const rl_block_q8_k *x, size_t xs, size_t nb, __mmask16 m,
                                                                   const int NT) {
    const __m512i low = _mm512_set1_epi8(15);
    __m512 acc[4];
    _Pragma("GCC unroll 4")
    for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();
    for (size_t b = 0; b < nb; b++) {
        __m512i a32[4];
        _Pragma("GCC unroll 4")
        for (int t = 0; t < NT; t++) a32[t] = _mm512_setzero_si512();
        for (int k = 0; k < 4; k++) {
            __m512i lo[8], hi[8];
            _Pragma("GCC unroll 8")
            for (int s = 0; s < 8; s++) {
                __m512i raw = _mm512_loadu_si512(w[b].qs + 64 * (8 * k + s));
                lo[s] = _mm512_and_si512(raw, low);
                hi[s] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), low);
            }
            __m512i slo = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)w[b].sc[2 * k]));
            __m512i shi = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)w[b].sc[2 * k + 1]));
            _Pragma("GCC unroll 4")
            for (int t = 0; t < NT; t++) {
                const int8_t *xq = x[t * xs + b].qs + 64 * k;
                __m512i sl = _mm512_setzero_si512(), sh = _mm512_setzero_si512();
                _Pragma("GCC unroll 8")
                for (int s = 0; s < 8; s++) {
                    sl = _mm512_dpbusd_epi32(sl, lo[s], _mm512_set1_epi32(dword(xq + 4 * s)));
                    sh = _mm512_dpbusd_epi32(sh, hi[s], _mm512_set1_epi32(dword(xq + 32 + 4 * s)));
                }
                a32[t] = _mm512_add_epi32(a32[t], _mm512_add_epi32(_mm512_mullo_epi32(sl, slo), _mm512_mullo_epi32(sh, shi)));
            }
        }
        __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)w[b].d));
        __m512 dm = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)w[b].dmin));
        _Pragma("GCC unroll 4")
        for (int t = 0; t < NT; t++) {
            const rl_block_q8_k *xb = x + t * xs + b;
            __m512i mins = _mm512_setzero_si512();
            for (int g = 0; g < 8; g++)
                mins = _mm512_add_epi32(mins, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)w[b].mn[g])),
                                                                 _mm512_set1_epi32(xb->bsums[2 * g] + xb->bsums[2 * g + 1])));
            __m512 v = _mm512_sub_ps(_mm512_mul_ps(dw, _mm512_cvtepi32_ps(a32[t])), _mm512_mul_ps(dm, _mm512_cvtepi32_ps(mins)));
            acc[t] = _mm512_add_ps(acc[t], _mm512_mul_ps(_mm512_set1_ps(xb->d), v));
        }
    }
    _Pragma("GCC unroll 4")
    for (int t = 0; t < NT; t++) _mm512_mask_storeu_ps(out + t * ldo, m, acc[t]);
}

/* Q6_K, NT <= 4 tokens. The six-bit values q + 32 (0..63) are the unsigned side of vpdpbusd;
 * the -32 comes back as 32 * scale * (the activation's group sum). Per half h and quad q of
 * 4-byte lanes, one ql vector gives the values of two groups (low and high nibbles, each with
 * two bits of qh), and the quad covers groups 8h + q, + 2, + 4, + 6. */
VNNI512 static inline __attribute__((always_inline)) void q6k_tile(float *out, size_t ldo, const infer_q6_kx16 *w,
                                                                   const rl_block_q8_k *x, size_t xs, size_t nb, __mmask16 m,
                                                                   const int NT) {
    const __m512i m0f = _mm512_set1_epi8(0x0F), m03 = _mm512_set1_epi8(0x03), m0c = _mm512_set1_epi8(0x0C),
                  m30 = _mm512_set1_epi8(0x30), mc0 = _mm512_set1_epi8((char)0xC0);
    __m512 acc[4];
    _Pragma("GCC unroll 4")
    for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();
    for (size_t b = 0; b < nb; b++) {
        __m512i a32[4];
        _Pragma("GCC unroll 4")
        for (int t = 0; t < NT; t++) a32[t] = _mm512_setzero_si512();
        for (int h = 0; h < 2; h++)
            for (int q = 0; q < 2; q++)
                for (int half = 0; half < 2; half++) { // half 0: ql bytes 0..31 of h (groups +0, +4); 1: 32..63 (+2, +6)
                    __m512i lo[4], hi[4];
                    _Pragma("GCC unroll 4")
                    for (int i = 0; i < 4; i++) {
                        int s = 4 * q + i;
                        __m512i l = _mm512_loadu_si512(w[b].ql + 64 * (16 * h + 8 * half + s));
                        __m512i qh = _mm512_loadu_si512(w[b].qh + 64 * (8 * h + s));
                        __m512i l4 = _mm512_and_si512(_mm512_srli_epi16(l, 4), m0f);
                        if (!half) {
                            lo[i] = _mm512_or_si512(_mm512_and_si512(l, m0f), _mm512_slli_epi16(_mm512_and_si512(qh, m03), 4));
                            hi[i] = _mm512_or_si512(l4, _mm512_and_si512(qh, m30));
                        } else {
                            lo[i] = _mm512_or_si512(_mm512_and_si512(l, m0f), _mm512_slli_epi16(_mm512_and_si512(qh, m0c), 2));
                            hi[i] = _mm512_or_si512(l4, _mm512_srli_epi16(_mm512_and_si512(qh, mc0), 2));
                        }
                    }
                    int glo = 8 * h + 2 * half + q, ghi = glo + 4; // values 16 glo.., 16 ghi..
                    __m512i slo = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)w[b].sc[glo]));
                    __m512i shi = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)w[b].sc[ghi]));
                    _Pragma("GCC unroll 4")
                    for (int t = 0; t < NT; t++) {
                        const int8_t *xq = x[t * xs + b].qs;
                        __m512i sl = _mm512_setzero_si512(), sh = _mm512_setzero_si512();
                        _Pragma("GCC unroll 4")
                        for (int i = 0; i < 4; i++) {
                            sl = _mm512_dpbusd_epi32(sl, lo[i], _mm512_set1_epi32(dword(xq + 16 * glo + 4 * i)));
                            sh = _mm512_dpbusd_epi32(sh, hi[i], _mm512_set1_epi32(dword(xq + 16 * ghi + 4 * i)));
                        }
                        a32[t] = _mm512_add_epi32(a32[t], _mm512_add_epi32(_mm512_mullo_epi32(sl, slo), _mm512_mullo_epi32(sh, shi)));
                    }
                }
        __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)w[b].d));
        _Pragma("GCC unroll 4")
        for (int t = 0; t < NT; t++) {
            const rl_block_q8_k *xb = x + t * xs + b;
            __m512i off = _mm512_setzero_si512();
            for (int g = 0; g < 16; g++)
                off = _mm512_add_epi32(off, _mm512_mullo_epi32(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)w[b].sc[g])),
                                                               _mm512_set1_epi32(xb->bsums[g])));
            __m512i dot = _mm512_sub_epi32(a32[t], _mm512_slli_epi32(off, 5));
            acc[t] = _mm512_add_ps(acc[t], _mm512_mul_ps(_mm512_mul_ps(dw, _mm512_set1_ps(xb->d)), _mm512_cvtepi32_ps(dot)));
        }
    }
    _Pragma("GCC unroll 4")
    for (int t = 0; t < NT; t++) _mm512_mask_storeu_ps(out + t * ldo, m, acc[t]);
}

/* T tokens in tiles of W (8 for Q8_0 / Q4_0, 4 for the K types: the weights of a block loaded and
 * split once per tile), the rest in one smaller tile; each tile size is its own unrolled copy
 * (sizes of W and more only occur below W, so they stand for 1 there and never run). */
#define TILE_N(n, W) ((n) < (W) ? (n) : 1)
#define TILES(tile, W, out, ldo, w, x, nb, m, T)                                                           \
    do {                                                                                                   \
        int t_ = 0;                                                                                        \
        for (; t_ + (W) <= (T); t_ += (W)) tile((out) + t_ * (ldo), ldo, w, (x) + t_ * (nb), nb, nb, m, W); \
        float *o_ = (out) + t_ * (ldo);                                                                    \
        __typeof__(x) x_ = (x) + t_ * (nb);                                                                \
        switch ((T) - t_) {                                                                                \
        case 7: tile(o_, ldo, w, x_, nb, nb, m, TILE_N(7, W)); break;                                      \
        case 6: tile(o_, ldo, w, x_, nb, nb, m, TILE_N(6, W)); break;                                      \
        case 5: tile(o_, ldo, w, x_, nb, nb, m, TILE_N(5, W)); break;                                      \
        case 4: tile(o_, ldo, w, x_, nb, nb, m, TILE_N(4, W)); break;                                      \
        case 3: tile(o_, ldo, w, x_, nb, nb, m, 3); break;                                                 \
        case 2: tile(o_, ldo, w, x_, nb, nb, m, 2); break;                                                 \
        case 1: tile(o_, ldo, w, x_, nb, nb, m, 1); break;                                                 \
        }                                                                                                  \
    } while (0)

VNNI512 void infer_q4_0x16_mm(float *out, size_t ldo, const infer_q4_0x16 *w, const infer_xq *x, size_t nb, int nr, int T) {
    __mmask16 m = (__mmask16)(nr >= 16 ? 0xFFFF : (1u << nr) - 1);
    TILES(q4_tile, 8, out, ldo, w, x, nb, m, T);
}

VNNI512 void infer_q8_0x16_mm(float *out, size_t ldo, const infer_q8_0x16 *w, const infer_xq *x, size_t nb, int nr, int T) {
    __mmask16 m = (__mmask16)(nr >= 16 ? 0xFFFF : (1u << nr) - 1);
    TILES(q8_tile, 8, out, ldo, w, x, nb, m, T);
}
VNNI512 void infer_q4_kx16_mm(float *out, size_t ldo, const infer_q4_kx16 *w, const rl_block_q8_k *x, size_t nb, int nr,
                              int T) {
    __mmask16 m = (__mmask16)(nr >= 16 ? 0xFFFF : (1u << nr) - 1);
    TILES(q4k_tile, 4, out, ldo, w, x, nb, m, T);
}
VNNI512 void infer_q6_kx16_mm(float *out, size_t ldo, const infer_q6_kx16 *w, const rl_block_q8_k *x, size_t nb, int nr,
                              int T) {
    __mmask16 m = (__mmask16)(nr >= 16 ? 0xFFFF : (1u << nr) - 1);
    TILES(q6k_tile, 4, out, ldo, w, x, nb, m, T);
}
#else
void infer_q6_kx16_mm(float *out, size_t ldo, const infer_q6_kx16 *w, const rl_block_q8_k *x, size_t nb, int nr, int T) {}
void infer_q4_kx16_mm(float *out, size_t ldo, const infer_q4_kx16 *w, const rl_block_q8_k *x, size_t nb, int nr, int T) {}
void infer_q4_0x16_mm(float *out, size_t ldo, const infer_q4_0x16 *w, const infer_xq *x, size_t nb, int nr, int T) {}
void infer_q8_0x16_mm(float *out, size_t ldo, const infer_q8_0x16 *w, const infer_xq *x, size_t nb, int nr, int T) {}
#endif
