/* ggml_quant.c - quantization of float32 rows into ggml's block formats, for the GGUF writer and
 * for src/infer's quantized weights: Q4_0 (32 values, one fp16 scale), Q4_K and Q6_K
 * (super-blocks of 256 values with 6-bit / 8-bit sub-block scales). The byte layouts are
 * ggml's (the dequantizers in gguf.c read them back; llama.cpp reads the files).
 *
 * How the K-quants choose their scales (our own method, simpler than llama.cpp's search):
 *   Q4_K: each group of 32 gets the affine map value = s * q - m, q in 0..15, from its min
 *         (clamped to <= 0) and max; the eight s and eight m become 6-bit multiples of the
 *         super-block's d and dmin; then q is rounded against the quantized s and m, and a
 *         least-squares refit of s and m to the chosen q, alternated with rounding, lowers the error.
 *   Q6_K: each group of 16 gets scale = (its value of largest magnitude) / -32, so that value
 *         lands exactly on q = 0 (level -32) like Q4_0 does; the sixteen scales become int8
 *         multiples of d; q is rounded against the quantized scale.
 * What it deliberately does not do: importance weighting (llama.cpp's imatrix) or an
 * exhaustive search over scales; the error is reported per type in docs/benchmarks.md. */
#include <math.h>
#include <string.h>

#include "model/gguf.h"
#include "model/model.h"

static void put_f16(uint8_t *p, float f) {
    uint16_t h = rl_f32_to_f16(f);
    p[0] = (uint8_t)h, p[1] = (uint8_t)(h >> 8);
}
static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

void rl_ggml_quant_q4_0(uint8_t *dst, const float *src, size_t n) {
    // d = (value of largest magnitude) / -8: that value becomes q = 0 exactly (llama.cpp's rule)
    for (size_t b = 0; b < n / 32; b++, dst += 18) {
        const float *v = src + b * 32;
        float amax = 0.0f, max = 0.0f;
        for (int i = 0; i < 32; i++)
            if (fabsf(v[i]) > amax) amax = fabsf(v[i]), max = v[i];
        float d = max / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(dst, d);
        for (int i = 0; i < 16; i++) {
            int q0 = clampi((int)(v[i] * id + 8.5f), 0, 15), q1 = clampi((int)(v[i + 16] * id + 8.5f), 0, 15);
            dst[2 + i] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

/* The 12 scale bytes of Q4_K: groups 0..3 keep 6 bits in bytes 0..3 (scale) and 4..7 (min);
 * groups 4..7 put their low 4 bits in bytes 8..11 and their top 2 bits in the spare top bits
 * of bytes 0..7. */
static void q4k_pack_scales(uint8_t *sc, const uint8_t *s, const uint8_t *m) {
    memset(sc, 0, 12);
    for (int g = 0; g < 8; g++) {
        if (g < 4) {
            sc[g] |= s[g];
            sc[g + 4] |= m[g];
        } else {
            sc[g + 4] = (uint8_t)((s[g] & 15) | ((m[g] & 15) << 4));
            sc[g - 4] |= (uint8_t)((s[g] >> 4) << 6);
            sc[g] |= (uint8_t)((m[g] >> 4) << 6);
        }
    }
}

void rl_ggml_quant_q4_k(uint8_t *dst, const float *src, size_t n) {
    // block: d, dmin (fp16), scales[12], qs[128]; value = d * s[g] * q - dmin * m[g]
    for (size_t b = 0; b < n / 256; b++, dst += 144) {
        const float *x = src + b * 256;
        float scale[8], mn[8], smax = 0.0f, mmax = 0.0f;
        for (int g = 0; g < 8; g++) {
            const float *v = x + g * 32;
            float lo = 0.0f, hi = -INFINITY;
            for (int i = 0; i < 32; i++) {
                lo = v[i] < lo ? v[i] : lo;
                hi = v[i] > hi ? v[i] : hi;
            }
            float sc = (hi - lo) / 15.0f, m = -lo;
            // alternate: round to the map, refit the map to the rounding (least squares)
            for (int it = 0; it < 4 && sc > 0; it++) {
                double sq = 0, sqq = 0, sx = 0, sqx = 0;
                for (int i = 0; i < 32; i++) {
                    double qi = clampi((int)lrintf((v[i] + m) / sc), 0, 15);
                    sq += qi, sqq += qi * qi, sx += v[i], sqx += qi * v[i];
                }
                double det = 32 * sqq - sq * sq;
                if (det <= 0) break;
                double ns = (32 * sqx - sq * sx) / det, nm = (ns * sq - sx) / 32;
                if (ns <= 0 || nm < 0) break; // the min must stay <= 0 (stored as a positive m)
                sc = (float)ns, m = (float)nm;
            }
            scale[g] = sc;
            mn[g] = m;
            smax = fmaxf(smax, scale[g]);
            mmax = fmaxf(mmax, mn[g]);
        }
        uint8_t q[256], s6[8], m6[8];
        for (int pass = 0; pass < 2; pass++) {
            float d = smax / 63.0f, dmin = mmax / 63.0f;
            float id = d > 0 ? 1.0f / d : 0.0f, idm = dmin > 0 ? 1.0f / dmin : 0.0f;
            for (int g = 0; g < 8; g++) {
                s6[g] = (uint8_t)clampi((int)lrintf(scale[g] * id), 0, 63);
                m6[g] = (uint8_t)clampi((int)lrintf(mn[g] * idm), 0, 63);
                float gs = d * s6[g], gm = dmin * m6[g], ig = gs > 0 ? 1.0f / gs : 0.0f;
                for (int i = 0; i < 32; i++) q[g * 32 + i] = (uint8_t)clampi((int)lrintf((x[g * 32 + i] + gm) * ig), 0, 15);
            }
            put_f16(dst, d);
            put_f16(dst + 2, dmin);
            if (pass == 1) break;
            // refit each group's (scale, min) to its q by least squares: x ~ s q - m
            smax = mmax = 0.0f;
            for (int g = 0; g < 8; g++) {
                double sq = 0, sqq = 0, sx = 0, sqx = 0;
                for (int i = 0; i < 32; i++) {
                    double qi = q[g * 32 + i], xi = x[g * 32 + i];
                    sq += qi, sqq += qi * qi, sx += xi, sqx += qi * xi;
                }
                double det = 32 * sqq - sq * sq;
                if (det > 0) {
                    double s = (32 * sqx - sq * sx) / det, m = (s * sq - sx) / 32;
                    if (s > 0 && m >= 0) scale[g] = (float)s, mn[g] = (float)m;
                }
                smax = fmaxf(smax, scale[g]);
                mmax = fmaxf(mmax, mn[g]);
            }
        }
        q4k_pack_scales(dst + 4, s6, m6);
        uint8_t *qs = dst + 16;
        for (int k = 0; k < 4; k++) // groups 2k (low nibbles) and 2k+1 (high) share 32 bytes
            for (int i = 0; i < 32; i++) qs[k * 32 + i] = (uint8_t)(q[64 * k + i] | (q[64 * k + 32 + i] << 4));
    }
}

void rl_ggml_quant_q6_k(uint8_t *dst, const float *src, size_t n) {
    // block: ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] (int8), d (fp16);
    // value i = d * scales[i / 16] * (q - 32)
    for (size_t b = 0; b < n / 256; b++, dst += 210) {
        const float *x = src + b * 256;
        float scale[16], amax = 0.0f;
        for (int g = 0; g < 16; g++) {
            float gmax = 0.0f, max = 0.0f;
            for (int i = 0; i < 16; i++)
                if (fabsf(x[g * 16 + i]) > gmax) gmax = fabsf(x[g * 16 + i]), max = x[g * 16 + i];
            scale[g] = max / -32.0f;
            amax = fmaxf(amax, fabsf(scale[g]));
        }
        float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
        int8_t *sc = (int8_t *)(dst + 192);
        uint8_t q[256];
        for (int g = 0; g < 16; g++) {
            sc[g] = (int8_t)clampi((int)lrintf(scale[g] * id), -128, 127);
            float gs = d * sc[g], ig = gs != 0.0f ? 1.0f / gs : 0.0f;
            for (int i = 0; i < 16; i++) q[g * 16 + i] = (uint8_t)clampi((int)lrintf(x[g * 16 + i] * ig) + 32, 0, 63);
        }
        put_f16(dst + 208, d);
        uint8_t *ql = dst, *qh = dst + 128;
        for (int h = 0; h < 2; h++) // each half of 128: four runs of 32 share ql (two nibbles) and qh (four 2-bit fields)
            for (int l = 0; l < 32; l++) {
                const uint8_t *qq = q + h * 128;
                ql[h * 64 + l] = (uint8_t)((qq[l] & 15) | ((qq[l + 64] & 15) << 4));
                ql[h * 64 + l + 32] = (uint8_t)((qq[l + 32] & 15) | ((qq[l + 96] & 15) << 4));
                qh[h * 32 + l] = (uint8_t)((qq[l] >> 4) | ((qq[l + 32] >> 4) << 2) | ((qq[l + 64] >> 4) << 4) | ((qq[l + 96] >> 4) << 6));
            }
    }
}

int rl_ggml_quantize_row(int type, void *dst, const float *src, size_t n) {
    int ok;
    rl_ggml_row_bytes(type, (int64_t)n, &ok);
    if (!ok) return 0;
    uint8_t *d = dst;
    switch (type) {
    case RL_GGML_F32: memcpy(d, src, n * 4); return 1;
    case RL_GGML_F16:
        for (size_t i = 0; i < n; i++) put_f16(d + 2 * i, src[i]);
        return 1;
    case RL_GGML_Q8_0: rl_ggml_quant_q8_0(d, src, n); return 1;
    case RL_GGML_Q4_0: rl_ggml_quant_q4_0(d, src, n); return 1;
    case RL_GGML_Q4_K: rl_ggml_quant_q4_k(d, src, n); return 1;
    case RL_GGML_Q6_K: rl_ggml_quant_q6_k(d, src, n); return 1;
    }
    return 0;
}
