/* gemm.c - matrix products for the engine: an AVX-512 SGEMM of our own, and the per-shape choice
 * between it and OpenBLAS (tensor.h: rl_sgemm).
 *
 * Why our own: Debian's OpenBLAS 0.3.21 has no kernel for this CPU (AMD Zen 5) and runs its
 * 256-bit Haswell kernel, about half of what 512-bit FMAs can do; and its threads spin in
 * sched_yield between calls, which costs on a shared machine. Ours runs on the project's pool.
 *
 * How (the usual packed-panel scheme): op(B) is packed into NR-column panels (which takes care
 * of its transposition), and the micro-kernel computes MR x NR pieces of C in 24 registers, over
 * K in slices of at most KC. Work is shared in one of two ways:
 *   - by columns (column_item), where A is read in place or rounded row by row and fits in cache,
 *     and C has enough panels: an item is a tile of C's columns over all rows; it packs its own
 *     panels of B and sweeps every row past them (one hand-off per product);
 *   - by tiles (tile_item), otherwise: C is cut into NC-column blocks; for a pass of K slices
 *     (up to PASS_B_BYTES of panels) B is packed once by all threads, then MC-row tiles run every
 *     slice of the pass while their part of C stays in cache.
 * Each element of C gets the same sums in the same order either way, for any thread count.
 *
 * float32 mostly does not pack A: the micro-kernel broadcasts its values from where they are
 * (kernel_f32_direct): from the rows of A (the forward x W^T and the input gradients dy W), or
 * for op(A) = A^T (the weight gradients dy^T x) with a narrow C from the rows of the stored A,
 * where the MR values of one k are adjacent. That saves a copy of A per product (1.04-1.2x on
 * the engine's large products, ~1.8x on LoRA's thin ones, 1.3x on the student's logits
 * gradient: docs/benchmarks.md). Otherwise a thread packs op(A)'s MC x KC block into MR-row
 * panels in its own buffer (kernel_f32). bf16 (opt-in): both operands are rounded to bfloat16
 * with pairs of k interleaved, and vdpbf16ps computes two products per lane, accumulated in
 * float32; B is packed, and so is op(A) = A^T, while a row-major A with even K is only rounded
 * row by row (rows_to_bf16: a bf16 copy of a row already holds its pairs of k in order, so no
 * transposing; the same values and sums as packing, 1.0-1.3x on SmolLM2's products).
 *
 * Not here: other architectures (no AVX-512: OpenBLAS does everything), complex or double types.
 */
#include "tensor/tensor.h"

#include <cblas.h>
#include <immintrin.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define MR 12   /* rows of C per micro-kernel call (12 x 2 accumulators of 16 floats) */
#define NR 32   /* columns of C per micro-kernel call */
#define KC 640  /* largest inner-dimension slice; K is cut into equal slices (576: one, 1536: 3 x 512):
                   each slice is one more pass over C, which costs more than reading the B panel
                   (KC x NR floats) from L2 rather than L1 (measured: 320 vs 640 favoured 640, within
                   the noise of a shared machine) */
#define MC 96   /* rows per tile: the packed A block (MC x KC, up to 240 KB) stays in L2 */
#define NC 2048 /* columns per block: the packed B slice (KC x NC, up to 5 MB) */
#define MAXT 64 /* threads with their own A buffer; more are not used */
#define DIRECT_T_MAX_N 256 /* float32 reads op(A) = A^T in place up to this N, packs it above */
#define PASS_B_BYTES ((size_t)8 << 20) /* packed B per pass: the slices of a pass are one hand-off */
#define COL_B_BYTES ((size_t)384 << 10) /* packed B per column tile (column_item): stays in L2 */
#define COL_A_BYTES ((size_t)8 << 20)   /* column_item reads A once per tile: at most this much */

/* ---- CPU features --------------------------------------------------------------------------- */

static int have_avx512(void) {
    static int v = -1; // a benign race: every thread computes the same answer
    if (v < 0) v = __builtin_cpu_supports("avx512f") ? 1 : 0;
    return v;
}

static int have_bf16(void) {
    static int v = -1;
    if (v < 0) {
        // avx512_bf16: CPUID leaf 7 subleaf 1, EAX bit 5 (gcc 12's __builtin_cpu_supports lacks it)
        unsigned a = 0, b, c, d;
        __asm__("cpuid" : "+a"(a), "=b"(b), "=c"(c), "=d"(d) : "c"(0));
        int ok = 0;
        if (a >= 7 && have_avx512()) {
            a = 7;
            __asm__("cpuid" : "+a"(a), "=b"(b), "=c"(c), "=d"(d) : "c"(1));
            ok = (a >> 5) & 1;
        }
        v = ok;
    }
    return v;
}

int rl_gemm_has_bf16(void) { return have_bf16(); }

int rl_gemm_blas_threads(int pool_threads) { return have_avx512() ? 1 : pool_threads; }

/* ---- packing ------------------------------------------------------------------------------- */

/* In-register transpose of 16 rows of 16 floats (r[i][j] -> r[j][i]). */
__attribute__((target("avx512f"))) static inline void transpose16(__m512 r[16]) {
    __m512 t[16], u[16], v[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        u[4 * i + 0] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        u[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        u[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        u[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int h = 0; h < 2; h++)
        for (int i = 0; i < 4; i++) {
            v[8 * h + i] = _mm512_shuffle_f32x4(u[8 * h + i], u[8 * h + 4 + i], 0x88);
            v[8 * h + 4 + i] = _mm512_shuffle_f32x4(u[8 * h + i], u[8 * h + 4 + i], 0xDD);
        }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_f32x4(v[i], v[8 + i], 0x88);
        r[8 + i] = _mm512_shuffle_f32x4(v[i], v[8 + i], 0xDD);
    }
}

static inline __mmask16 lanes(int n) { return n >= 16 ? 0xffff : (__mmask16)((1u << n) - 1); }

/* dst[k * dst_ld + r] = sc * src[r * src_ld + k] for r < 16 (rows past n_rows are zero) and
 * k < n_k <= 16; dst_w (12 or 16) values are written per k. */
__attribute__((target("avx512f"))) static inline void pack_t16(float *dst, int dst_ld, int dst_w, const float *src,
                                                               size_t src_ld, int n_rows, int n_k, float sc) {
    __m512 r[16], vs = _mm512_set1_ps(sc);
    __mmask16 km = lanes(n_k), wm = lanes(dst_w);
    for (int i = 0; i < n_rows; i++) _mm_prefetch((const char *)(src + (size_t)i * src_ld + 64), _MM_HINT_T0);
    for (int i = 0; i < 16; i++) r[i] = i < n_rows ? _mm512_maskz_loadu_ps(km, src + (size_t)i * src_ld) : _mm512_setzero_ps();
    transpose16(r);
    for (int k = 0; k < n_k; k++) _mm512_mask_storeu_ps(dst + (size_t)k * dst_ld, wm, _mm512_mul_ps(r[k], vs));
}

/* Rows [k0, k0 + kn) of the A panels of a slice of kc rows (the panels hold ceil(mc/MR) blocks
 * of (kc, MR)) = sc * A[i0.., p0..p0+kn), rows past mc zero (op(A) = A; A^T: pack_at_rows). */
__attribute__((target("avx512f"))) static void pack_a(float *dst, int kc, int k0, int kn, const rl_gemm_term *t,
                                                      int i0, int mc, int p0, float sc) {
    const float *A = t->A;
    size_t lda = (size_t)t->lda;
    for (int ir = 0; ir < mc; ir += MR, dst += (size_t)MR * kc) {
        int mr = mc - ir < MR ? mc - ir : MR;
        float *d = dst + (size_t)k0 * MR;
        for (int k = 0; k < kn; k += 16)
            pack_t16(d + (size_t)k * MR, MR, MR, A + (size_t)(i0 + ir) * lda + p0 + k, lda, mr, kn - k < 16 ? kn - k : 16, sc);
    }
}

/* Panels [0, np) of a column tile from B's rows (op(B) = B): rows [k0, k0 + kn) of panel p (at
 * dst + p * pstride floats, NR columns, zero past column n) = sc * B[p0 + k, j0 + p NR ..]. Each
 * row of B is read once across all the panels, as one run (np x 128 bytes), rather than once per
 * panel as two 64-byte pieces: the strided walk down B costs a miss per run, not per piece. */
__attribute__((target("avx512f"))) static void pack_b_rows(float *dst, size_t pstride, int np, int k0, int kn,
                                                           const rl_gemm_term *t, int p0, int j0, int n, float sc) {
    const float *B = t->B + (size_t)p0 * t->ldb + j0;
    size_t ldb = (size_t)t->ldb;
    __m512 vs = _mm512_set1_ps(sc);
    for (int k = 0; k < kn; k++, B += ldb) {
        _mm_prefetch((const char *)(B + 4 * ldb), _MM_HINT_T0);
        float *d = dst + (size_t)(k0 + k) * NR;
        for (int p = 0; p < np; p++, d += pstride) {
            int c = n - p * NR;
            _mm512_store_ps(d, _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes(c), B + p * NR), vs));
            _mm512_store_ps(d + 16, _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes(c - 16 > 0 ? c - 16 : 0), B + p * NR + 16), vs));
        }
    }
}

/* Rows [k0, k0 + kn) of one NR-column panel (kc, NR) = sc * op(B)[p0..p0+kn, j0..], columns past nr zero. */
__attribute__((target("avx512f"))) static void pack_b_panel(float *dst, int k0, int kn, const rl_gemm_term *t, int p0,
                                                            int j0, int nr, float sc) {
    if (!t->tb) {
        pack_b_rows(dst, 0, 1, k0, kn, t, p0, j0, nr, sc);
        return;
    }
    const float *B = t->B;
    size_t ldb = (size_t)t->ldb;
    dst += (size_t)k0 * NR;
    for (int h = 0; h < NR; h += 16) {
        int n = nr - h < 0 ? 0 : nr - h < 16 ? nr - h : 16;
        for (int k = 0; k < kn; k += 16)
            pack_t16(dst + (size_t)k * NR + h, NR, 16, B + (size_t)(j0 + h) * ldb + p0 + k, ldb, n, kn - k < 16 ? kn - k : 16, sc);
    }
}

/* bf16 panels: the float32 panel (kc, w) with rows k and k+1 paired into 32-bit words (bf16 of
 * row k low, row k+1 high; an odd last row pairs with 0): (kc2, w) words, kc2 = ceil(kc/2).
 * In place is fine: word row k2 is written after float rows 2k2, 2k2+1 were read, and the words
 * take half the bytes. */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void panel_to_bf16(uint32_t *dst, const float *src,
                                                                                 int w, int kc) {
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                         21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (int k2 = 0; k2 < (kc + 1) / 2; k2++)
        for (int j = 0; j < w; j += 16) {
            __mmask16 m = lanes(w - j);
            __m512 lo = _mm512_maskz_loadu_ps(m, src + (size_t)(2 * k2) * w + j);
            __m512 hi = 2 * k2 + 1 < kc ? _mm512_maskz_loadu_ps(m, src + (size_t)(2 * k2 + 1) * w + j) : _mm512_setzero_ps();
            __m512i both = (__m512i)_mm512_cvtne2ps_pbh(hi, lo); // bf16: lo in words 0-15, hi in 16-31
            _mm512_mask_storeu_epi32(dst + (size_t)k2 * w + j, m, _mm512_permutexvar_epi16(idx, both));
        }
}

/* The same words as packing to float32 and then panel_to_bf16, in one pass: float32 rows k and
 * k + 1 (already scaled) become 16 words of bf16 pairs (k low, k + 1 high), wm of them stored. */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static inline void store_pairs(uint32_t *dst, __mmask16 wm, __m512 lo,
                                                                                       __m512 hi) {
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                         21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    _mm512_mask_storeu_epi32(dst, wm, _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(hi, lo)));
}

/* pack_b_rows into bf16 panels (kc2, NR words each, pstride floats apart): rows k and k + 1 paired
 * (k0 even; an odd last row pairs with 0), the same words as packing to float32 and then
 * panel_to_bf16. */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void pack_b_rows_bf16(float *dst, size_t pstride, int np, int k0,
                                                                                    int kn, const rl_gemm_term *t, int p0,
                                                                                    int j0, int n, float sc) {
    const float *B = t->B + (size_t)p0 * t->ldb + j0;
    size_t ldb = (size_t)t->ldb;
    __m512 vs = _mm512_set1_ps(sc), zero = _mm512_setzero_ps();
    for (int k = 0; k < kn; k += 2, B += 2 * ldb) {
        _mm_prefetch((const char *)(B + 4 * ldb), _MM_HINT_T0);
        _mm_prefetch((const char *)(B + 5 * ldb), _MM_HINT_T0);
        int two = k + 1 < kn;
        uint32_t *d = (uint32_t *)dst + (size_t)(k0 + k) / 2 * NR;
        for (int p = 0; p < np; p++, d += pstride) {
            int c = n - p * NR;
            for (int h = 0; h < NR; h += 16) {
                __mmask16 m = lanes(c - h > 0 ? c - h : 0);
                __m512 lo = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, B + p * NR + h), vs);
                __m512 hi = two ? _mm512_mul_ps(_mm512_maskz_loadu_ps(m, B + ldb + p * NR + h), vs) : zero;
                store_pairs(d + h, 0xffff, lo, hi);
            }
        }
    }
}

/* dst (word rows of stride w) from row k0 / 2 on = the bf16 pairs of sc * src[k * src_ld + 0..n)
 * for k < kn, zero past n; k0 is even, and an odd last row pairs with 0 (w <= 16). */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void pack_copy16_bf16(uint32_t *dst, int w, int k0,
                                                                                    const float *src, size_t src_ld,
                                                                                    int n, int kn, float sc) {
    __mmask16 m = lanes(n), wm = lanes(w);
    __m512 vs = _mm512_set1_ps(sc);
    for (int k = 0; k < kn; k += 2) {
        __m512 lo = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, src + (size_t)k * src_ld), vs);
        __m512 hi = k + 1 < kn ? _mm512_mul_ps(_mm512_maskz_loadu_ps(m, src + (size_t)(k + 1) * src_ld), vs) : _mm512_setzero_ps();
        store_pairs(dst + (size_t)(k0 + k) / 2 * w, wm, lo, hi);
    }
}

/* As pack_b_panel, straight into the bf16 panel (kc2, NR) words: k0 is even. */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void pack_b_panel_bf16(uint32_t *dst, int k0, int kn,
                                                                                     const rl_gemm_term *t, int p0, int j0,
                                                                                     int nr, float sc) {
    const float *B = t->B;
    size_t ldb = (size_t)t->ldb;
    __m512 vs = _mm512_set1_ps(sc);
    for (int h = 0; h < NR; h += 16) {
        int n = nr - h < 0 ? 0 : nr - h < 16 ? nr - h : 16;
        if (!t->tb) { // one panel's pairs half by half (pack_b_rows_bf16 with one panel measured 0.98x here)
            pack_copy16_bf16(dst + h, NR, k0, B + (size_t)p0 * ldb + j0 + h, ldb, n, kn, sc);
            continue;
        }
        for (int k = 0; k < kn; k += 16) {
            int nk = kn - k < 16 ? kn - k : 16;
            __m512 r[16];
            const float *src = B + (size_t)(j0 + h) * ldb + p0 + k;
            for (int i = 0; i < n; i++) _mm_prefetch((const char *)(src + (size_t)i * ldb + 64), _MM_HINT_T0);
            for (int i = 0; i < 16; i++) r[i] = i < n ? _mm512_maskz_loadu_ps(lanes(nk), src + (size_t)i * ldb) : _mm512_setzero_ps();
            transpose16(r);
            for (int i = 0; i < nk; i += 2)
                store_pairs(dst + (size_t)(k0 + k + i) / 2 * NR + h, 0xffff, _mm512_mul_ps(r[i], vs),
                            i + 1 < nk ? _mm512_mul_ps(r[i + 1], vs) : _mm512_setzero_ps());
        }
    }
}

/* op(A) = A^T into the MR-row panels of a block (as pack_a): for each k the mc values
 * A[p0 + k][i0 ..] are one run of memory, read once and split among the panels, where packing
 * panel by panel read 48 bytes of every row per panel. */
__attribute__((target("avx512f"))) static void pack_at_rows(float *dst, int kc, int k0, int kn, const rl_gemm_term *t, int i0,
                                                            int mc, int p0, float sc) {
    size_t lda = (size_t)t->lda;
    const float *src = t->A + (size_t)p0 * lda + i0;
    __m512 vs = _mm512_set1_ps(sc);
    for (int k = 0; k < kn; k++, src += lda) {
        for (int o = 0; o < mc; o += 16) _mm_prefetch((const char *)(src + 4 * lda + o), _MM_HINT_T0);
        float *d = dst + (size_t)(k0 + k) * MR;
        for (int ir = 0; ir < mc; ir += MR, d += (size_t)MR * kc)
            _mm512_mask_storeu_ps(d, lanes(MR), _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes(mc - ir), src + ir), vs));
    }
}

/* pack_at_rows into bf16 pair panels (word rows of MR, k0 even; an odd last k pairs with 0): the
 * same words as pack_at_rows and then panel_to_bf16. */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void pack_at_rows_bf16(float *dst, int kc, int k0, int kn,
                                                                                     const rl_gemm_term *t, int i0, int mc,
                                                                                     int p0, float sc) {
    size_t lda = (size_t)t->lda;
    const float *src = t->A + (size_t)p0 * lda + i0;
    __m512 vs = _mm512_set1_ps(sc), zero = _mm512_setzero_ps();
    for (int k = 0; k < kn; k += 2, src += 2 * lda) {
        for (int o = 0; o < mc; o += 16) {
            _mm_prefetch((const char *)(src + 4 * lda + o), _MM_HINT_T0);
            _mm_prefetch((const char *)(src + 5 * lda + o), _MM_HINT_T0);
        }
        int two = k + 1 < kn;
        uint32_t *d = (uint32_t *)dst + (size_t)(k0 + k) / 2 * MR;
        for (int ir = 0; ir < mc; ir += MR, d += (size_t)MR * kc) {
            __mmask16 m = lanes(mc - ir);
            __m512 lo = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, src + ir), vs);
            __m512 hi = two ? _mm512_mul_ps(_mm512_maskz_loadu_ps(m, src + lda + ir), vs) : zero;
            store_pairs(d, lanes(MR), lo, hi);
        }
    }
}

/* ---- micro-kernels ------------------------------------------------------------------------- */

/* Writes the MR x NR accumulators into C (mr x nr valid): C = alpha * acc + beta * C, and C is
 * not read when beta == 0. */
__attribute__((target("avx512f"))) static void store_tile(__m512 acc[MR][2], float *C, int ldc, int mr, int nr,
                                                          float alpha, float beta) {
    __mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? 0xffff : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0;
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int i = 0; i < mr; i++) {
        float *c = C + (size_t)i * ldc;
        __m512 r0 = _mm512_mul_ps(acc[i][0], va), r1 = _mm512_mul_ps(acc[i][1], va);
        if (beta != 0.0f) {
            r0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m0, c), vb, r0);
            r1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m1, c + 16), vb, r1);
        }
        _mm512_mask_storeu_ps(c, m0, r0);
        _mm512_mask_storeu_ps(c + 16, m1, r1);
    }
}

/* acc (MR x NR) = a (kc, MR) panel times b (kc, NR): a packed panel (bk = NR) or B's rows (bk = ldb). */
__attribute__((target("avx512f"))) static void kernel_f32(int kc, const float *restrict a, const float *restrict b,
                                                          size_t bk, float *C, int ldc, int mr, int nr, float alpha,
                                                          float beta) {
    __m512 acc[MR][2];
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int i = 0; i < mr; i++) { // C's lines arrive while the products run
        _mm_prefetch((const char *)(C + (size_t)i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(C + (size_t)i * ldc + 16), _MM_HINT_T0);
    }
    for (int k = 0; k < kc; k++, a += MR, b += bk) {
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
        _mm_prefetch((const char *)(b + 8 * bk), _MM_HINT_T0);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            __m512 ai = _mm512_set1_ps(a[i]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
        }
    }
    store_tile(acc, C, ldc, mr, nr, alpha, beta);
}

/* kernel_f32 with op(A) read in place: segment s (one per term of a sum) holds element (i, k)
 * at as[s][i * sis[s] + k * sks[s]] (row-major A: (lda, 1); op(A) = A^T: (1, lda), whose MR
 * values of a k are then adjacent) for ks[s] values of k; rows past mr repeat row mr - 1 (their
 * results are not stored). Saves the copy of A, which costs about as much as the products
 * themselves when N is small (a 128-wide model). */
__attribute__((target("avx512f"), always_inline)) static inline void
kernel_f32_direct_body(int n_seg, const float *const *as, const size_t *sis, const size_t *sks, int unit_k, const int *ks,
                       const float *restrict b, float *C, int ldc, int mr, int nr, float beta, int nv) {
    __m512 acc[MR][2];
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int i = 0; i < mr; i++) {
        _mm_prefetch((const char *)(C + (size_t)i * ldc), _MM_HINT_T0);
        if (nv == 2) _mm_prefetch((const char *)(C + (size_t)i * ldc + 16), _MM_HINT_T0);
    }
    for (int sg = 0; sg < n_seg; sg++) {
        const float *a = as[sg];
        size_t off[MR], sk = unit_k ? 1 : sks[sg]; // a constant 1 keeps the 12 offsets in registers
        for (int i = 0; i < MR; i++) off[i] = (size_t)(i < mr ? i : mr - 1) * sis[sg];
        for (int k = 0; k < ks[sg]; k++, b += NR, a += sk) {
            __m512 b0 = _mm512_load_ps(b), b1 = nv == 2 ? _mm512_load_ps(b + 16) : b0;
            _mm_prefetch((const char *)(b + 8 * NR), _MM_HINT_T0);
#pragma GCC unroll 12
            for (int i = 0; i < MR; i++) {
                __m512 ai = _mm512_set1_ps(a[off[i]]);
                acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
                if (nv == 2) acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
            }
        }
    }
    store_tile(acc, C, ldc, mr, nr, 1.0f, beta);
}

/* Rows of A read along k (every segment's stride sks 1: the forward and the input gradients)
 * get their own copy of the loop: with the stride a variable, two of the offsets no longer fit
 * in registers (measured 5-10% slower). */
__attribute__((target("avx512f"))) static void kernel_f32_direct(int n_seg, const float *const *as, const size_t *sis,
                                                                 const size_t *sks, const int *ks, const float *restrict b,
                                                                 float *C, int ldc, int mr, int nr, float beta) {
    int unit = 1;
    for (int sg = 0; sg < n_seg; sg++) unit &= sks[sg] == 1;
    // a panel of at most 16 columns (LoRA's rank-16 products, a product's last panel): half the
    // products and none of the empty half's (the same sums for the columns that are stored)
    if (nr <= 16) {
        if (unit) kernel_f32_direct_body(n_seg, as, sis, sks, 1, ks, b, C, ldc, mr, nr, beta, 1);
        else kernel_f32_direct_body(n_seg, as, sis, sks, 0, ks, b, C, ldc, mr, nr, beta, 1);
    } else if (unit) kernel_f32_direct_body(n_seg, as, sis, sks, 1, ks, b, C, ldc, mr, nr, beta, 2);
    else kernel_f32_direct_body(n_seg, as, sis, sks, 0, ks, b, C, ldc, mr, nr, beta, 2);
}

__attribute__((target("avx512f,avx512bf16"))) static void kernel_bf16(int kc2, const uint32_t *restrict a,
                                                                      const uint32_t *restrict b, float *C, int ldc,
                                                                      int mr, int nr, float alpha, float beta) {
    __m512 acc[MR][2];
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int i = 0; i < mr; i++) {
        _mm_prefetch((const char *)(C + (size_t)i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(C + (size_t)i * ldc + 16), _MM_HINT_T0);
    }
    for (int k = 0; k < kc2; k++, a += MR, b += NR) {
        __m512bh b0 = (__m512bh)_mm512_load_si512(b), b1 = (__m512bh)_mm512_load_si512(b + 16);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            __m512bh ai = (__m512bh)_mm512_set1_epi32((int)a[i]);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
        }
    }
    store_tile(acc, C, ldc, mr, nr, alpha, beta);
}

/* bf16 with op(A) = A: rows [i0, i0 + mc) of a term's A, k in [k0, k0 + kn), times sc, rounded
 * to bfloat16 into rows of dst (stride ld bf16 values) from column c0, in order: since pairs of
 * adjacent k are what vdpbf16ps multiplies, a row-major bf16 copy needs no transposing (unlike
 * pack_a), and the values are those pack_a would give. */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void rows_to_bf16(uint16_t *dst, int ld, int c0,
                                                                                const rl_gemm_term *t, int i0, int mc,
                                                                                int k0, int kn, float sc) {
    __m512 vs = _mm512_set1_ps(sc);
    for (int i = 0; i < mc; i++) {
        const float *src = t->A + (size_t)(i0 + i) * t->lda + k0;
        uint16_t *d = dst + (size_t)i * ld + c0;
        for (int j = 0; j < kn; j += 32) {
            int n = kn - j;
            __m512 lo = _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes(n), src + j), vs);
            __m512 hi = _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes(n - 16 > 0 ? n - 16 : 0), src + j + 16), vs);
            __mmask32 m = n >= 32 ? 0xffffffffu : (__mmask32)((1u << n) - 1);
            _mm512_mask_storeu_epi16(d + j, m, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
        }
    }
}

/* kernel_bf16 with A as rows of bf16 pairs (stride lda words; rows past mr repeat row mr - 1). */
__attribute__((target("avx512f,avx512bf16"))) static void kernel_bf16_rows(int kc2, const uint32_t *a, size_t lda,
                                                                           const uint32_t *restrict b, float *C, int ldc,
                                                                           int mr, int nr, float beta) {
    __m512 acc[MR][2];
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int i = 0; i < mr; i++) {
        _mm_prefetch((const char *)(C + (size_t)i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(C + (size_t)i * ldc + 16), _MM_HINT_T0);
    }
    size_t off[MR];
    for (int i = 0; i < MR; i++) off[i] = (size_t)(i < mr ? i : mr - 1) * lda;
    for (int k = 0; k < kc2; k++, a++, b += NR) {
        __m512bh b0 = (__m512bh)_mm512_load_si512(b), b1 = (__m512bh)_mm512_load_si512(b + 16);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            __m512bh ai = (__m512bh)_mm512_set1_epi32((int)a[off[i]]);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
        }
    }
    store_tile(acc, C, ldc, mr, nr, 1.0f, beta);
}

static float *alloc_floats(size_t n) {
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    // large: rl_big_alloc (2 MB aligned, huge pages: the panels are read with strides)
    float *p = bytes >= ((size_t)4 << 20) ? rl_big_alloc(bytes) : aligned_alloc(64, bytes);
    RL_ASSERT(p != NULL); // as rl_xmalloc: out of memory for a few megabytes of scratch is fatal
    return p;
}

/* ---- the blocked product over the pool ------------------------------------------------------ */

#define MAX_TERMS 8

typedef struct {
    int bf16, M, N, K, ldc, n_terms;
    int direct;                    /* float32, A read in place (kernel_f32_direct); alpha goes into B's panels */
    int bf16_rows;                 /* bf16 with every op(A) = A and every K even: A's block becomes bf16 rows */
    int bf16_even;                 /* bf16 with every term starting at an even k: panels packed straight to pairs */
    rl_gemm_term terms[MAX_TERMS]; /* concatenated along K; each term's alpha is applied to its A */
    int koff[MAX_TERMS + 1];       /* term i covers K range [koff[i], koff[i+1]) */
    int b_in_place[MAX_TERMS];     /* float32 with A packed, op(B) = B: full panels read B's rows where they are */
    float *C;
    float beta;              /* the caller's beta: for slice 0; later slices add to C */
    int kc_even;             /* K is cut into slices of kc_even (the last may be shorter) */
    int j0, nc, n_panels;    /* the current column block */
    int s_lo, s_hi;          /* the slices of the current pass */
    int n_jt;                /* column tiles (of NR panels) per row tile */
    int jt_panels;           /* NR panels per column tile */
    float *bpack;            /* the pass's packed B: slice by slice, panel by panel, kc_even x NR each */
    uint16_t *arows;         /* column_item with bf16: all of A as bf16 rows (M x K) */
    float *apack[MAXT];      /* per-thread packed A block of every slice of the pass (MC x kc_even each) */
    int apack_i0[MAXT];      /* the row tile held there (-1: none) */
} gemm_job;

static void slice_at(const gemm_job *g, int s, int *p0, int *kc) {
    *p0 = s * g->kc_even;
    *kc = g->K - *p0 < g->kc_even ? g->K - *p0 : g->kc_even;
}

/* The part [lo, hi) of term t that falls in the slice [p0, p0 + kc) (lo >= hi: none). */
static void term_part(const gemm_job *g, int t, int p0, int kc, int *lo, int *hi) {
    *lo = g->koff[t] > p0 ? g->koff[t] : p0;
    *hi = g->koff[t + 1] < p0 + kc ? g->koff[t + 1] : p0 + kc;
}

static float *b_panel(const gemm_job *g, int s, int p) {
    return g->bpack + ((size_t)(s - g->s_lo) * g->n_panels + p) * g->kc_even * NR;
}

static void pack_b_item(void *vctx, size_t i, int thread) {
    gemm_job *g = vctx;
    int s = g->s_lo + (int)(i / (size_t)g->n_panels), p = (int)(i % (size_t)g->n_panels), p0, kc;
    slice_at(g, s, &p0, &kc);
    int jr = p * NR, nr = g->nc - jr < NR ? g->nc - jr : NR;
    float *dst = b_panel(g, s, p); // bf16: the words of the panel fill its first half
    if (g->bf16_even) {
        for (int t = 0; t < g->n_terms; t++) {
            int lo, hi;
            term_part(g, t, p0, kc, &lo, &hi);
            if (lo < hi) pack_b_panel_bf16((uint32_t *)dst, lo - p0, hi - lo, &g->terms[t], lo - g->koff[t], g->j0 + jr, nr, 1.0f);
        }
        return;
    }
    for (int t = 0; t < g->n_terms; t++) {
        int lo, hi;
        term_part(g, t, p0, kc, &lo, &hi);
        if (lo < hi && !(g->b_in_place[t] && nr == NR))
            pack_b_panel(dst, lo - p0, hi - lo, &g->terms[t], lo - g->koff[t], g->j0 + jr, nr, g->direct ? g->terms[t].alpha : 1.0f);
    }
    if (g->bf16) panel_to_bf16((uint32_t *)dst, dst, NR, kc);
    (void)thread;
}

/* One tile of C (MC rows, jt_panels panels) over every slice of the pass: the tile stays in
 * this core's cache from slice to slice, and a pass needs one hand-off, not one per slice. */
static void tile_item(void *vctx, size_t item, int thread) {
    gemm_job *g = vctx;
    int it = (int)(item / (size_t)g->n_jt), jt = (int)(item % (size_t)g->n_jt);
    int i0 = it * MC, mc = g->M - i0 < MC ? g->M - i0 : MC;
    int p_lo = jt * g->jt_panels, p_hi = p_lo + g->jt_panels < g->n_panels ? p_lo + g->jt_panels : g->n_panels;
    int fresh = g->apack_i0[thread] != i0; // items come in row-tile order, so a thread repacks rarely
    g->apack_i0[thread] = i0;
    for (int s = g->s_lo; s < g->s_hi; s++) {
        int p0, kc;
        slice_at(g, s, &p0, &kc);
        float beta = s == 0 ? g->beta : 1.0f;
        float *ap = g->apack[thread] + (size_t)(s - g->s_lo) * MC * g->kc_even;
        if (g->direct) {
            const float *as[MAX_TERMS];
            size_t sis[MAX_TERMS], sks[MAX_TERMS];
            int ks[MAX_TERMS];
            for (int ir = 0; ir < mc; ir += MR) { // rows outer: the MR rows of A stay in L1 across the panels
                int mr = mc - ir < MR ? mc - ir : MR, n_seg = 0;
                for (int t = 0; t < g->n_terms; t++) {
                    int lo, hi;
                    term_part(g, t, p0, kc, &lo, &hi);
                    if (lo >= hi) continue;
                    size_t lda = (size_t)g->terms[t].lda, i = (size_t)(i0 + ir), k = (size_t)(lo - g->koff[t]);
                    sis[n_seg] = g->terms[t].ta ? 1 : lda;
                    sks[n_seg] = g->terms[t].ta ? lda : 1;
                    as[n_seg] = g->terms[t].A + i * sis[n_seg] + k * sks[n_seg];
                    ks[n_seg++] = hi - lo;
                }
                for (int p = p_lo; p < p_hi; p++) {
                    int jr = p * NR, nr = g->nc - jr < NR ? g->nc - jr : NR;
                    kernel_f32_direct(n_seg, as, sis, sks, ks, b_panel(g, s, p), g->C + (size_t)(i0 + ir) * g->ldc + g->j0 + jr,
                                      g->ldc, mr, nr, beta);
                }
            }
            continue;
        }
        if (g->bf16_rows) {
            uint16_t *rows = (uint16_t *)ap; // (mc, kc) bf16: kc is even, so every row is whole pairs
            if (fresh)
                for (int t = 0; t < g->n_terms; t++) {
                    int lo, hi;
                    term_part(g, t, p0, kc, &lo, &hi);
                    if (lo < hi) rows_to_bf16(rows, kc, lo - p0, &g->terms[t], i0, mc, lo - g->koff[t], hi - lo, g->terms[t].alpha);
                }
            for (int ir = 0; ir < mc; ir += MR) { // rows outer: the MR rows stay in L1 across the panels
                int mr = mc - ir < MR ? mc - ir : MR;
                const uint32_t *a = (const uint32_t *)(rows + (size_t)ir * kc);
                for (int p = p_lo; p < p_hi; p++) {
                    int jr = p * NR, nr = g->nc - jr < NR ? g->nc - jr : NR;
                    kernel_bf16_rows(kc / 2, a, (size_t)kc / 2, (const uint32_t *)b_panel(g, s, p),
                                     g->C + (size_t)(i0 + ir) * g->ldc + g->j0 + jr, g->ldc, mr, nr, beta);
                }
            }
            continue;
        }
        if (fresh && g->bf16_even) // op(A) = A^T (bf16 rows take op(A) = A): its rows are copied
            for (int t = 0; t < g->n_terms; t++) {
                int lo, hi;
                term_part(g, t, p0, kc, &lo, &hi);
                if (lo < hi) pack_at_rows_bf16(ap, kc, lo - p0, hi - lo, &g->terms[t], i0, mc, lo - g->koff[t], g->terms[t].alpha);
            }
        else if (fresh) {
            for (int t = 0; t < g->n_terms; t++) {
                int lo, hi;
                term_part(g, t, p0, kc, &lo, &hi);
                if (lo >= hi) continue;
                if (g->terms[t].ta) pack_at_rows(ap, kc, lo - p0, hi - lo, &g->terms[t], i0, mc, lo - g->koff[t], g->terms[t].alpha);
                else pack_a(ap, kc, lo - p0, hi - lo, &g->terms[t], i0, mc, lo - g->koff[t], g->terms[t].alpha);
            }
            if (g->bf16)
                for (int ir = 0; ir < mc; ir += MR) {
                    float *panel = ap + (size_t)(ir / MR) * kc * MR;
                    panel_to_bf16((uint32_t *)panel, panel, MR, kc);
                }
        }
        for (int p = p_lo; p < p_hi; p++) {
            int jr = p * NR, nr = g->nc - jr < NR ? g->nc - jr : NR;
            const rl_gemm_term *t0 = &g->terms[0];
            int in_place = g->b_in_place[0] && nr == NR;
            const float *bp = in_place ? t0->B + (size_t)p0 * t0->ldb + g->j0 + jr : b_panel(g, s, p);
            size_t bk = in_place ? (size_t)t0->ldb : NR;
            for (int ir = 0; ir < mc; ir += MR) {
                int mr = mc - ir < MR ? mc - ir : MR;
                float *c = g->C + (size_t)(i0 + ir) * g->ldc + g->j0 + jr;
                const float *a = ap + (size_t)(ir / MR) * kc * MR;
                if (g->bf16) kernel_bf16((kc + 1) / 2, (const uint32_t *)a, (const uint32_t *)bp, c, g->ldc, mr, nr, 1.0f, beta);
                else kernel_f32(kc, a, bp, bk, c, g->ldc, mr, nr, 1.0f, beta);
            }
        }
    }
}

/* float32 with A read in place, by columns: item = a tile of jt_panels panels of C, all M rows.
 * The item packs its own panels of B (slice by slice, into its thread's buffer, while they are
 * hot in this core's cache) and sweeps every row of A past them: one hand-off per product, no
 * packing phase that both cores wait for, and packing (which waits on memory) overlaps the other
 * core's products. A is read from cache once per item; each C element gets the same sums in the
 * same order as tile_item. */
static void column_item(void *vctx, size_t item, int thread) {
    gemm_job *g = vctx;
    int p_lo = (int)item * g->jt_panels, p_hi = p_lo + g->jt_panels < g->n_panels ? p_lo + g->jt_panels : g->n_panels;
    float *bcol = g->apack[thread]; // kc_even x NR floats per panel of the tile
    int n_slices = (g->K + g->kc_even - 1) / g->kc_even;
    for (int s = 0; s < n_slices; s++) {
        int p0, kc;
        slice_at(g, s, &p0, &kc);
        float beta = s == 0 ? g->beta : 1.0f;
        for (int t = 0; t < g->n_terms; t++) {
            int lo, hi;
            term_part(g, t, p0, kc, &lo, &hi);
            if (lo >= hi) continue;
            const rl_gemm_term *tm = &g->terms[t];
            float sc = g->bf16 ? 1.0f : tm->alpha;
            if (!tm->tb) { // B's rows: one run across the tile's panels per row
                size_t pstride = (size_t)g->kc_even * NR;
                if (g->bf16) pack_b_rows_bf16(bcol, pstride, p_hi - p_lo, lo - p0, hi - lo, tm, lo - g->koff[t], p_lo * NR, g->N - p_lo * NR, sc);
                else pack_b_rows(bcol, pstride, p_hi - p_lo, lo - p0, hi - lo, tm, lo - g->koff[t], p_lo * NR, g->N - p_lo * NR, sc);
                continue;
            }
            for (int p = p_lo; p < p_hi; p++) {
                int jr = p * NR, nr = g->N - jr < NR ? g->N - jr : NR;
                float *dst = bcol + (size_t)(p - p_lo) * g->kc_even * NR;
                if (g->bf16) pack_b_panel_bf16((uint32_t *)dst, lo - p0, hi - lo, tm, lo - g->koff[t], jr, nr, sc);
                else pack_b_panel(dst, lo - p0, hi - lo, tm, lo - g->koff[t], jr, nr, sc);
            }
        }
        if (g->bf16) { // A's bf16 rows were made before: pairs of k in order, stride K / 2 words
            for (int i0 = 0; i0 < g->M; i0 += MR) {
                int mr = g->M - i0 < MR ? g->M - i0 : MR;
                const uint32_t *a = (const uint32_t *)(g->arows + (size_t)i0 * g->K + p0);
                for (int p = p_lo; p < p_hi; p++) {
                    int jr = p * NR, nr = g->N - jr < NR ? g->N - jr : NR;
                    kernel_bf16_rows(kc / 2, a, (size_t)g->K / 2, (const uint32_t *)(bcol + (size_t)(p - p_lo) * g->kc_even * NR),
                                     g->C + (size_t)i0 * g->ldc + jr, g->ldc, mr, nr, beta);
                }
            }
            continue;
        }
        const float *as[MAX_TERMS];
        size_t sis[MAX_TERMS], sks[MAX_TERMS];
        int ks[MAX_TERMS];
        for (int i0 = 0; i0 < g->M; i0 += MR) { // rows outer: the MR rows of A stay in L1 across the panels
            int mr = g->M - i0 < MR ? g->M - i0 : MR, n_seg = 0;
            for (int t = 0; t < g->n_terms; t++) {
                int lo, hi;
                term_part(g, t, p0, kc, &lo, &hi);
                if (lo >= hi) continue;
                size_t lda = (size_t)g->terms[t].lda, k = (size_t)(lo - g->koff[t]);
                sis[n_seg] = g->terms[t].ta ? 1 : lda;
                sks[n_seg] = g->terms[t].ta ? lda : 1;
                as[n_seg] = g->terms[t].A + (size_t)i0 * sis[n_seg] + k * sks[n_seg];
                ks[n_seg++] = hi - lo;
            }
            for (int p = p_lo; p < p_hi; p++) {
                int jr = p * NR, nr = g->N - jr < NR ? g->N - jr : NR;
                kernel_f32_direct(n_seg, as, sis, sks, ks, bcol + (size_t)(p - p_lo) * g->kc_even * NR,
                                  g->C + (size_t)i0 * g->ldc + jr, g->ldc, mr, nr, beta);
            }
        }
    }
    (void)thread;
}

/* bf16 rows of all of A for column_item: rows [32 i, 32 i + 32). */
static void arows_item(void *vctx, size_t item, int thread) {
    gemm_job *g = vctx;
    int i0 = (int)item * 32, mc = g->M - i0 < 32 ? g->M - i0 : 32;
    for (int t = 0; t < g->n_terms; t++)
        rows_to_bf16(g->arows + (size_t)i0 * g->K, g->K, g->koff[t], &g->terms[t], i0, mc, 0, g->terms[t].K, g->terms[t].alpha);
    (void)thread;
}

/* A process-wide scratch for the packed panels, reused across calls (page faults on a fresh
 * multi-megabyte buffer per call cost as much as a small product); a caller that finds it in
 * use allocates its own. */
static float *g_scratch;
static size_t g_scratch_n;
static atomic_flag g_scratch_busy = ATOMIC_FLAG_INIT;

static float *scratch_get(size_t need, int *own) {
    *own = atomic_flag_test_and_set(&g_scratch_busy); // set: in use by another caller
    if (*own) return alloc_floats(need);
    if (g_scratch_n < need) {
        free(g_scratch);
        g_scratch = alloc_floats(need);
        g_scratch_n = need;
    }
    return g_scratch;
}

static void scratch_put(float *mem, int own) {
    if (own) free(mem);
    else atomic_flag_clear(&g_scratch_busy);
}

static void gemm_own(int bf16, int n_terms, const rl_gemm_term *terms, int M, int N, int K, float beta, float *C, int ldc,
                     rl_pool *pool) {
    int nt = rl_pool_size(pool);
    if (nt > MAXT) nt = MAXT;
    int n_slices = (K + KC - 1) / KC, kc_even = ((K + n_slices - 1) / n_slices + 1) / 2 * 2;
    // float32: op(A) = A^T in place reads MR values of a k from each of kc rows, more than L1
    // holds; it wins only where a packed block would serve few panels (N <= DIRECT_T_MAX_N;
    // measured: the student's logits dW, N = 128: 1.29x; SmolLM2's dW, N = 576: packing 1.09x).
    // bf16: A's rows are rounded in place of packing when every op(A) = A and every K is even
    // (pairs of k must not straddle two terms; slices are even).
    int direct = !bf16, bf16_rows = bf16;
    for (int t = 0; t < n_terms; t++) {
        direct &= !terms[t].ta || N <= DIRECT_T_MAX_N;
        bf16_rows &= !terms[t].ta && terms[t].K % 2 == 0;
    }
    int n_panels = (N + NR - 1) / NR;
    // by columns (column_item) when A is not packed and stays in cache, since every column tile
    // reads all of it (not the logits' input gradient, K = V)
    int by_columns = (direct || bf16_rows) && (size_t)M * K * (bf16 ? 2 : 4) <= COL_A_BYTES;
    if (by_columns && n_panels >= 3 * nt) { // enough column tiles to share out
        // panels per tile: 4 tiles per thread, and at most COL_B_BYTES of B per tile (in L2)
        int jt = n_panels / (4 * nt), jt_max = (int)(COL_B_BYTES / (sizeof(float) * NR * (size_t)kc_even));
        jt = jt < 1 ? 1 : jt > jt_max ? (jt_max < 1 ? 1 : jt_max) : jt;
        // the nearest tile width whose tile count the threads share evenly (9 tiles on 2 threads
        // left one core idle for a ninth of the product), the wider on a tie
        int even = 0;
        for (int w = 1; w <= (jt_max < 1 ? 1 : jt_max); w++) {
            int dw = w > jt ? w - jt : jt - w, de = even > jt ? even - jt : jt - even;
            if (((n_panels + w - 1) / w) % nt == 0 && (!even || dw <= de)) even = w;
        }
        if (even) jt = even;
        size_t per_thread = (size_t)jt * kc_even * NR, rows = bf16 ? ((size_t)M * K + 1) / 2 + 16 : 0;
        int own;
        float *mem = scratch_get(rows + (size_t)nt * per_thread + 16, &own);
        gemm_job g = {.bf16 = bf16, .M = M, .N = N, .K = K, .ldc = ldc, .n_terms = n_terms, .C = C, .beta = beta,
                      .kc_even = kc_even, .direct = direct, .bf16_rows = bf16_rows, .n_panels = n_panels, .jt_panels = jt,
                      .arows = bf16 ? (uint16_t *)(mem + (size_t)nt * per_thread) : NULL};
        for (int t = 0; t < n_terms; t++) {
            g.terms[t] = terms[t];
            g.koff[t + 1] = g.koff[t] + terms[t].K;
        }
        for (int t = 0; t < nt; t++) g.apack[t] = mem + (size_t)t * per_thread;
        if (bf16) rl_pool_for(nt > 1 ? pool : NULL, (size_t)(M + 31) / 32, arows_item, &g);
        rl_pool_for(nt > 1 ? pool : NULL, (size_t)((n_panels + jt - 1) / jt), column_item, &g);
        scratch_put(mem, own);
        return;
    }
    int nc_max = NC < N ? NC : N, panels_max = (nc_max + NR - 1) / NR;
    // slices per pass: as many as PASS_B_BYTES of packed B hold (at least one)
    size_t slice_b = (size_t)kc_even * panels_max * NR;
    int per_pass = (int)(PASS_B_BYTES / sizeof(float) / slice_b);
    per_pass = per_pass < 1 ? 1 : per_pass > n_slices ? n_slices : per_pass;
    size_t a_floats = (size_t)per_pass * MC * kc_even, b_floats = (size_t)per_pass * slice_b;
    size_t need = b_floats + (size_t)nt * a_floats + 16;
    int own;
    float *mem = scratch_get(need, &own);
    gemm_job g = {.bf16 = bf16, .M = M, .N = N, .K = K, .ldc = ldc, .n_terms = n_terms, .C = C, .beta = beta,
                  .kc_even = kc_even, .bpack = mem, .direct = direct, .bf16_rows = bf16_rows};
    // packing straight to pairs: B always; A where it is packed, which must be op(A) = A^T then
    g.bf16_even = bf16;
    for (int t = 0; t < n_terms; t++) g.bf16_even &= (t == n_terms - 1 || terms[t].K % 2 == 0) && (g.bf16_rows || terms[t].ta);
    for (int t = 0; t < n_terms; t++) {
        g.terms[t] = terms[t];
        g.koff[t + 1] = g.koff[t] + terms[t].K;
        // with A packed (one term), B's rows are read where they are when packing would be a
        // plain copy (float32, op(B) = B): the weight gradients dy^T x, 1.03-1.06x; with A read
        // in place too, packed panels stream better (B in place measured 0.91-0.92x on dy W)
        g.b_in_place[t] = !bf16 && !terms[t].tb && !g.direct && n_terms == 1;
    }
    for (int t = 0; t < nt; t++) g.apack[t] = mem + b_floats + (size_t)t * a_floats;
    int n_it = (M + MC - 1) / MC;
    for (int j0 = 0; j0 < N; j0 += NC) {
        g.j0 = j0;
        g.nc = N - j0 < NC ? N - j0 : NC;
        g.n_panels = (g.nc + NR - 1) / NR;
        // enough tiles for the threads to share out: split columns when there are few row tiles
        g.n_jt = n_it >= 4 * nt ? 1 : (4 * nt + n_it - 1) / n_it;
        if (g.n_jt > g.n_panels) g.n_jt = g.n_panels;
        g.jt_panels = (g.n_panels + g.n_jt - 1) / g.n_jt;
        g.n_jt = (g.n_panels + g.jt_panels - 1) / g.jt_panels;
        for (g.s_lo = 0; g.s_lo < n_slices; g.s_lo = g.s_hi) {
            g.s_hi = g.s_lo + per_pass < n_slices ? g.s_lo + per_pass : n_slices;
            for (int t = 0; t < nt; t++) g.apack_i0[t] = -1;
            rl_pool_for(nt > 1 ? pool : NULL, (size_t)(g.s_hi - g.s_lo) * g.n_panels, pack_b_item, &g);
            rl_pool_for(nt > 1 ? pool : NULL, (size_t)n_it * g.n_jt, tile_item, &g);
        }
    }
    scratch_put(mem, own);
}

/* ---- dispatch ------------------------------------------------------------------------------ */

static void scale_c(float *C, int ldc, int M, int N, float beta) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j];
}

void rl_sgemm_sum(rl_gemm_impl impl, int n_terms, const rl_gemm_term *terms, int M, int N, float beta, float *C,
                  int ldc, rl_pool *pool) {
    RL_ASSERT(n_terms >= 0 && n_terms <= MAX_TERMS);
    if (M <= 0 || N <= 0) return;
    int K = 0, n = 0;
    rl_gemm_term t[MAX_TERMS];
    for (int i = 0; i < n_terms; i++)
        if (terms[i].K > 0) K += terms[i].K, t[n++] = terms[i];
    if (K == 0) {
        scale_c(C, ldc, M, N, beta);
        return;
    }
    if (impl == RL_GEMM_AUTO) {
        // measured on the engine's shapes (docs/benchmarks.md): ours wins down to LoRA's rank-16
        // products (x A^T, dt B with N = 16 read A in place: 1.2-1.3x OpenBLAS; dA with M = 16:
        // 1.1-1.3x; dB: even); thinner ones go to OpenBLAS
        impl = have_avx512() && M >= 16 && N >= 16 ? RL_GEMM_OWN : RL_GEMM_BLAS;
    }
    if (impl == RL_GEMM_BF16 && !have_bf16()) impl = have_avx512() ? RL_GEMM_OWN : RL_GEMM_BLAS;
    if (impl == RL_GEMM_OWN && !have_avx512()) impl = RL_GEMM_BLAS;
    if (impl == RL_GEMM_BLAS) {
        for (int i = 0; i < n; i++)
            cblas_sgemm(CblasRowMajor, t[i].ta ? CblasTrans : CblasNoTrans, t[i].tb ? CblasTrans : CblasNoTrans, M, N,
                        t[i].K, t[i].alpha, t[i].A, t[i].lda, t[i].B, t[i].ldb, i == 0 ? beta : 1.0f, C, ldc);
        return;
    }
    gemm_own(impl == RL_GEMM_BF16, n, t, M, N, K, beta, C, ldc, pool);
}

void rl_sgemm_impl(rl_gemm_impl impl, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc, rl_pool *pool) {
    rl_gemm_term t = {.ta = ta, .tb = tb, .K = K, .alpha = alpha, .A = A, .lda = lda, .B = B, .ldb = ldb};
    rl_sgemm_sum(impl, 1, &t, M, N, beta, C, ldc, pool);
}

void rl_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
              float beta, float *C, int ldc, rl_pool *pool) {
    rl_sgemm_impl(RL_GEMM_AUTO, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, pool);
}
