/* gguf.c - GGUF (v2/v3) models: a checked reader (metadata + tensor directory over a memory
 * map), dequantization of F32, F16, BF16, Q8_0, Q4_0, Q4_K and Q6_K into float32, the model
 * loader for the "llama" and "qwen2" architectures, and a writer (F32, F16, Q8_0, Q4_0, Q4_K,
 * Q6_K; quantizers in ggml_quant.c) with the metadata, tensor names and tokenizer.ggml.*
 * vocabulary (SentencePiece "llama" or byte-level BPE "gpt2") llama.cpp expects.
 *
 * Layout notes: a GGUF tensor lists its dimensions fastest-first (ne[0] = columns), so an
 * nn.Linear weight (out, in) is stored with dims [in, out] and the same bytes. llama.cpp's
 * converter permutes the rows of Q and K for the "llama" architecture into interleaved RoPE
 * pairs (qwen2 keeps Hugging Face's half-split layout); the loader undoes it and the writer
 * redoes it. llama3-style RoPE scaling arrives as a rope_freqs tensor of per-pair divisors.
 *
 * Every count, length, dimension and offset is checked against the file before use; the
 * block formats are those of ggml (block sizes 32 and 256).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/gguf.h"
#include "model/model.h"

enum { T_U8 = 0, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64, T_F64 };
static const size_t scalar_size[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

typedef struct {
    const uint8_t *p, *end;
    int bad;
} rd;

static int need(rd *r, size_t n) {
    if (r->bad || (size_t)(r->end - r->p) < n) return r->bad = 1, 0;
    return 1;
}
static uint64_t rd_u(rd *r, int bytes) {
    if (!need(r, (size_t)bytes)) return 0;
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = (v << 8) | r->p[i];
    r->p += bytes;
    return v;
}
static const char *rd_str(rd *r, size_t *len) {
    uint64_t n = rd_u(r, 8);
    if (r->bad || n > (1u << 30) || !need(r, (size_t)n)) return r->bad = 1, NULL;
    const char *s = (const char *)r->p;
    r->p += n;
    *len = (size_t)n;
    return s;
}

/* ---- ggml block formats ---------------------------------------------------------------------- */

size_t rl_ggml_row_bytes(int type, int64_t n, int *ok) {
    *ok = 1;
    switch (type) {
    case RL_GGML_F32: return (size_t)n * 4;
    case RL_GGML_F16:
    case RL_GGML_BF16: return (size_t)n * 2;
    case RL_GGML_Q8_0: if (n % 32) break; return (size_t)n / 32 * 34;
    case RL_GGML_Q4_0: if (n % 32) break; return (size_t)n / 32 * 18;
    case RL_GGML_Q4_K: if (n % 256) break; return (size_t)n / 256 * 144;
    case RL_GGML_Q6_K: if (n % 256) break; return (size_t)n / 256 * 210;
    }
    *ok = 0;
    return 0;
}

const char *rl_ggml_type_name(int type) {
    switch (type) {
    case RL_GGML_F32: return "F32";
    case RL_GGML_F16: return "F16";
    case RL_GGML_BF16: return "BF16";
    case RL_GGML_Q8_0: return "Q8_0";
    case RL_GGML_Q4_0: return "Q4_0";
    case RL_GGML_Q4_K: return "Q4_K";
    case RL_GGML_Q6_K: return "Q6_K";
    default: return "unsupported";
    }
}

static float h2f(const uint8_t *p) { return rl_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

void rl_ggml_dequant(int type, const uint8_t *src, float *dst, size_t n) {
    switch (type) {
    case RL_GGML_F32: memcpy(dst, src, n * 4); return;
    case RL_GGML_F16: for (size_t i = 0; i < n; i++) dst[i] = h2f(src + 2 * i); return;
    case RL_GGML_BF16: for (size_t i = 0; i < n; i++) dst[i] = rl_bf16_to_f32((uint16_t)(src[2 * i] | src[2 * i + 1] << 8)); return;
    case RL_GGML_Q8_0: // d (f16), 32 x int8
        for (size_t b = 0; b < n / 32; b++, src += 34) {
            float d = h2f(src);
            for (int j = 0; j < 32; j++) dst[b * 32 + j] = d * (float)(int8_t)src[2 + j];
        }
        return;
    case RL_GGML_Q4_0: // d (f16), 16 bytes: low nibbles are elements 0..15, high nibbles 16..31, offset 8
        for (size_t b = 0; b < n / 32; b++, src += 18) {
            float d = h2f(src);
            for (int j = 0; j < 16; j++) {
                dst[b * 32 + j] = d * (float)((src[2 + j] & 0xF) - 8);
                dst[b * 32 + j + 16] = d * (float)((src[2 + j] >> 4) - 8);
            }
        }
        return;
    case RL_GGML_Q4_K: // d, dmin (f16), 12 bytes of 6-bit scales and mins for 8 groups of 32, 128 bytes of nibbles
        for (size_t b = 0; b < n / 256; b++, src += 144) {
            float d = h2f(src), dmin = h2f(src + 2);
            const uint8_t *sc = src + 4, *q = src + 16;
            float *y = dst + b * 256;
            for (int g = 0; g < 8; g++) {
                uint8_t s, m;
                if (g < 4) s = sc[g] & 63, m = sc[g + 4] & 63;
                else s = (uint8_t)((sc[g + 4] & 0xF) | ((sc[g - 4] >> 6) << 4)), m = (uint8_t)((sc[g + 4] >> 4) | ((sc[g] >> 6) << 4));
                // groups pair up over 32 bytes: even groups take the low nibbles, odd the high
                const uint8_t *qq = q + (g / 2) * 32;
                for (int l = 0; l < 32; l++)
                    y[g * 32 + l] = d * s * (float)((g & 1) ? qq[l] >> 4 : qq[l] & 0xF) - dmin * m;
            }
        }
        return;
    case RL_GGML_Q6_K: // 128 bytes low 4 bits, 64 bytes high 2 bits, 16 int8 scales, d (f16)
        for (size_t b = 0; b < n / 256; b++, src += 210) {
            const uint8_t *ql = src, *qh = src + 128;
            const int8_t *sc = (const int8_t *)(src + 192);
            float d = h2f(src + 208), *y = dst + b * 256;
            for (int half = 0; half < 2; half++, y += 128, ql += 64, qh += 32, sc += 8)
                for (int l = 0; l < 32; l++) {
                    int is = l / 16;
                    int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                    int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    y[l] = d * sc[is] * (float)q1;
                    y[l + 32] = d * sc[is + 2] * (float)q2;
                    y[l + 64] = d * sc[is + 4] * (float)q3;
                    y[l + 96] = d * sc[is + 6] * (float)q4;
                }
        }
        return;
    }
}

void rl_ggml_quant_q8_0(uint8_t *dst, const float *src, size_t n) {
    // ggml's reference: d = max|x| / 127, q = round(x / d)
    for (size_t b = 0; b < n / 32; b++, dst += 34) {
        const float *x = src + b * 32;
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
        float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
        uint16_t h = rl_f32_to_f16(d);
        dst[0] = (uint8_t)h;
        dst[1] = (uint8_t)(h >> 8);
        for (int j = 0; j < 32; j++) dst[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
    }
}

/* ---- reading ------------------------------------------------------------------------------- */

void rl_gguf_close(rl_gguf *g) {
    free(g->kv);
    free(g->t);
    rl_mmap_close(&g->map);
    memset(g, 0, sizeof *g);
}

/* Skips (or records) one value of type `type`; depth bounds nested arrays. */
static void skip_value(rd *r, uint32_t type, int depth) {
    if (type == T_STR) {
        size_t n;
        rd_str(r, &n);
    } else if (type == T_ARR) {
        uint32_t et = (uint32_t)rd_u(r, 4);
        uint64_t n = rd_u(r, 8);
        if (depth > 2 || et > T_F64) {
            r->bad = 1;
            return;
        }
        if (et != T_STR && et != T_ARR) {
            if (n > (uint64_t)(r->end - r->p) / scalar_size[et] || !need(r, (size_t)n * scalar_size[et])) {
                r->bad = 1;
                return;
            }
            r->p += n * scalar_size[et];
        } else
            for (uint64_t i = 0; i < n && !r->bad; i++) skip_value(r, et, depth + 1);
    } else if (type <= T_F64) {
        if (need(r, scalar_size[type])) r->p += scalar_size[type];
    } else r->bad = 1;
}

rl_status rl_gguf_open(rl_gguf *g, const char *path, rl_error *err) {
    memset(g, 0, sizeof *g);
    rl_status s = rl_mmap_open(&g->map, path, err);
    if (s) return s;
    if (g->map.size < 24 || memcmp(g->map.data, "GGUF", 4) != 0) { /* (an empty file maps to NULL) */
        rl_gguf_close(g);
        return rl_fail(err, RL_EFORMAT, "%s: not a GGUF file", path);
    }
    rd r = {g->map.data, g->map.data + g->map.size, 0};
    r.p += 4;
    g->version = (uint32_t)rd_u(&r, 4);
    uint64_t nt = rd_u(&r, 8), nkv = rd_u(&r, 8);
    if (g->version < 2 || g->version > 3) {
        rl_gguf_close(g);
        return rl_fail(err, RL_EUNSUPPORTED, "%s: GGUF version %u (supported: 2, 3)", path, g->version);
    }
    // every entry takes at least 8+4 (kv) or 8+4+8+4 (tensor) bytes: bounds the counts by the size
    if (nkv > g->map.size / 12 || nt > g->map.size / 24) {
        rl_gguf_close(g);
        return rl_fail(err, RL_EFORMAT, "%s: %llu tensors / %llu metadata entries cannot fit in %zu bytes", path,
                       (unsigned long long)nt, (unsigned long long)nkv, g->map.size);
    }
    g->kv = rl_xcalloc((size_t)nkv + 1, sizeof *g->kv);
    g->t = rl_xcalloc((size_t)nt + 1, sizeof *g->t);
    g->alignment = 32;
    for (uint64_t i = 0; i < nkv && !r.bad; i++) {
        rl_gguf_kv *kv = &g->kv[g->n_kv];
        kv->key = rd_str(&r, &kv->key_len);
        kv->type = (uint32_t)rd_u(&r, 4);
        kv->val = r.p;
        if (kv->type == T_ARR) {
            rd peek = r;
            kv->arr_type = (uint32_t)rd_u(&peek, 4);
            kv->arr_n = rd_u(&peek, 8);
        }
        skip_value(&r, kv->type, 0);
        if (r.bad) break;
        g->n_kv++;
        if (kv->key_len == 17 && memcmp(kv->key, "general.alignment", 17) == 0 && kv->type == T_U32) {
            rd v = {kv->val, g->map.data + g->map.size, 0};
            g->alignment = (uint32_t)rd_u(&v, 4);
            if (g->alignment == 0 || g->alignment > 65536 || (g->alignment & (g->alignment - 1))) r.bad = 1;
        }
    }
    for (uint64_t i = 0; i < nt && !r.bad; i++) {
        rl_gguf_tensor *t = &g->t[g->n_t];
        t->name = rd_str(&r, &t->name_len);
        uint32_t nd = (uint32_t)rd_u(&r, 4);
        if (nd == 0 || nd > 4) {
            r.bad = 1;
            break;
        }
        t->ndim = (int)nd;
        t->numel = 1;
        for (uint32_t d = 0; d < nd; d++) {
            uint64_t x = rd_u(&r, 8);
            if (x == 0 || x > (1ull << 40) || t->numel > (1ull << 40) / x) r.bad = 1;
            t->dims[d] = (int64_t)x;
            t->numel *= x;
        }
        t->type = (int)rd_u(&r, 4);
        t->offset = rd_u(&r, 8);
        if (!r.bad) g->n_t++;
    }
    if (r.bad) {
        rl_gguf_close(g);
        return rl_fail(err, RL_EFORMAT, "%s: the GGUF header is truncated or damaged", path);
    }
    size_t here = (size_t)(r.p - g->map.data);
    size_t data = (here + g->alignment - 1) / g->alignment * g->alignment;
    if (data > g->map.size) data = g->map.size;
    for (int i = 0; i < g->n_t; i++) {
        rl_gguf_tensor *t = &g->t[i];
        int ok;
        size_t bytes = rl_ggml_row_bytes(t->type, t->dims[0], &ok) * (size_t)(t->numel / (uint64_t)t->dims[0]);
        t->nbytes = bytes;
        t->supported = ok;
        if (ok && (t->offset > g->map.size - data || bytes > g->map.size - data - t->offset)) {
            // the message first: the name lives in the mapping that close releases
            rl_fail(err, RL_EFORMAT, "%s: tensor '%.*s' (%zu bytes at offset %llu) runs past the end of the file: truncated",
                    path, (int)(t->name_len > 200 ? 200 : t->name_len), t->name, bytes, (unsigned long long)t->offset);
            rl_gguf_close(g);
            return RL_EFORMAT;
        }
        t->data = ok ? g->map.data + data + t->offset : NULL;
    }
    return RL_OK;
}

const rl_gguf_kv *rl_gguf_find_kv(const rl_gguf *g, const char *key) {
    size_t n = strlen(key);
    for (int i = 0; i < g->n_kv; i++)
        if (g->kv[i].key_len == n && memcmp(g->kv[i].key, key, n) == 0) return &g->kv[i];
    return NULL;
}

const rl_gguf_tensor *rl_gguf_find_tensor(const rl_gguf *g, const char *name) {
    size_t n = strlen(name);
    for (int i = 0; i < g->n_t; i++)
        if (g->t[i].name_len == n && memcmp(g->t[i].name, name, n) == 0) return &g->t[i];
    return NULL;
}

/* Integer or float metadata as a double; returns 0 when absent or not a number. */
int rl_gguf_get_num(const rl_gguf *g, const char *key, double *out) {
    const rl_gguf_kv *kv = rl_gguf_find_kv(g, key);
    if (!kv || kv->type > T_F64 || kv->type == T_STR || kv->type == T_ARR || kv->type == T_BOOL) return 0;
    rd r = {kv->val, g->map.data + g->map.size, 0};
    uint64_t u = rd_u(&r, (int)scalar_size[kv->type]);
    switch (kv->type) {
    case T_U8: case T_U16: case T_U32: case T_U64: *out = (double)u; break;
    case T_I8: *out = (int8_t)u; break;
    case T_I16: *out = (int16_t)u; break;
    case T_I32: *out = (int32_t)u; break;
    case T_I64: *out = (double)(int64_t)u; break;
    case T_F32: { uint32_t b = (uint32_t)u; float f; memcpy(&f, &b, 4); *out = f; break; }
    default: { double d; memcpy(&d, &u, 8); *out = d; break; }
    }
    return !r.bad;
}

/* A string value copied into out (cap bytes); returns 0 when absent or not a string. */
int rl_gguf_get_str(const rl_gguf *g, const char *key, char *out, size_t cap) {
    const rl_gguf_kv *kv = rl_gguf_find_kv(g, key);
    if (!kv || kv->type != T_STR || cap == 0) return 0;
    rd r = {kv->val, g->map.data + g->map.size, 0};
    size_t n;
    const char *s = rd_str(&r, &n);
    if (!s) return 0;
    if (n >= cap) n = cap - 1;
    memcpy(out, s, n);
    out[n] = 0;
    return 1;
}

/* ---- the model loader ---------------------------------------------------------------------- */

static void permute_interleaved_to_half(float *w, int n_heads, int HD, int C) {
    size_t row = (size_t)C * sizeof(float);
    float *tmp = rl_xmalloc((size_t)HD * row);
    for (int h = 0; h < n_heads; h++) {
        float *head = w + (size_t)h * HD * C;
        for (int j = 0; j < HD / 2; j++) {
            memcpy(tmp + (size_t)j * C, head + (size_t)(2 * j) * C, row);
            memcpy(tmp + (size_t)(j + HD / 2) * C, head + (size_t)(2 * j + 1) * C, row);
        }
        memcpy(head, tmp, (size_t)HD * row);
    }
    free(tmp);
}

static void permute_half_to_interleaved(float *w, int n_heads, int HD, int C) {
    size_t row = (size_t)C * sizeof(float);
    float *tmp = rl_xmalloc((size_t)HD * row);
    for (int h = 0; h < n_heads; h++) {
        float *head = w + (size_t)h * HD * C;
        for (int j = 0; j < HD / 2; j++) {
            memcpy(tmp + (size_t)(2 * j) * C, head + (size_t)j * C, row);
            memcpy(tmp + (size_t)(2 * j + 1) * C, head + (size_t)(j + HD / 2) * C, row);
        }
        memcpy(head, tmp, (size_t)HD * row);
    }
    free(tmp);
}

/* llama.cpp tensor name of one of our tensors (HF name in, GGUF name out); 0 if none. */
static int gguf_name(const char *hf, char *out, size_t cap) {
    static const char *const map[][2] = {
        {"input_layernorm.weight", "attn_norm.weight"}, {"self_attn.q_proj.weight", "attn_q.weight"},
        {"self_attn.k_proj.weight", "attn_k.weight"},   {"self_attn.v_proj.weight", "attn_v.weight"},
        {"self_attn.q_proj.bias", "attn_q.bias"},       {"self_attn.k_proj.bias", "attn_k.bias"},
        {"self_attn.v_proj.bias", "attn_v.bias"},       {"self_attn.o_proj.weight", "attn_output.weight"},
        {"post_attention_layernorm.weight", "ffn_norm.weight"}, {"mlp.gate_proj.weight", "ffn_gate.weight"},
        {"mlp.up_proj.weight", "ffn_up.weight"},        {"mlp.down_proj.weight", "ffn_down.weight"},
    };
    if (!strcmp(hf, "model.embed_tokens.weight")) return snprintf(out, cap, "token_embd.weight"), 1;
    if (!strcmp(hf, "model.norm.weight")) return snprintf(out, cap, "output_norm.weight"), 1;
    if (!strcmp(hf, "lm_head.weight")) return snprintf(out, cap, "output.weight"), 1;
    int l, n = 0;
    if (sscanf(hf, "model.layers.%d.%n", &l, &n) != 1 || n == 0) return 0;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(hf + n, map[i][0])) return snprintf(out, cap, "blk.%d.%s", l, map[i][1]), 1;
    return 0;
}

/* A metadata number, or -1 when it cannot be held by the int or float it goes into (converting it
 * would be undefined behaviour); -1 then fails the model config's checks with a clear error. */
static double gguf_meta_num(double v) { return v > -2147483648.0 && v < 2147483648.0 ? v : -1; }

rl_status rl_model_load_gguf(rl_model *m, const char *path, rl_error *err) {
    memset(m, 0, sizeof *m);
    rl_gguf g;
    rl_status s = rl_gguf_open(&g, path, err);
    if (s) return s;
    char arch[32] = "";
    rl_gguf_get_str(&g, "general.architecture", arch, sizeof arch);
    if (strcmp(arch, "llama") != 0 && strcmp(arch, "qwen2") != 0) {
        rl_gguf_close(&g);
        return rl_fail(err, RL_EUNSUPPORTED, "%s: GGUF architecture '%s' is not supported (llama, qwen2)", path, arch);
    }
    rl_model_config c = {0};
    snprintf(c.arch, sizeof c.arch, "%.15s", arch);
    char key[96];
    double v;
#define NUM(field, name, def)                                                          \
    do {                                                                               \
        snprintf(key, sizeof key, "%s." name, arch);                                   \
        v = (def);                                                                     \
        rl_gguf_get_num(&g, key, &v);                                                  \
        field = gguf_meta_num(v);                                                      \
    } while (0)
    NUM(c.dim, "embedding_length", 0);
    NUM(c.hidden_dim, "feed_forward_length", 0);
    NUM(c.n_layers, "block_count", 0);
    NUM(c.n_heads, "attention.head_count", 0);
    NUM(c.n_kv_heads, "attention.head_count_kv", c.n_heads);
    NUM(c.head_dim, "attention.key_length", c.n_heads > 0 ? c.dim / c.n_heads : 0);
    NUM(c.max_seq_len, "context_length", 2048);
    NUM(c.norm_eps, "attention.layer_norm_rms_epsilon", 1e-5);
    NUM(c.rope.theta, "rope.freq_base", 10000.0);
#undef NUM
    c.qkv_bias = strcmp(arch, "qwen2") == 0;
    char rtype[32] = "";
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    if (rl_gguf_get_str(&g, key, rtype, sizeof rtype) && strcmp(rtype, "none") != 0) {
        if (strcmp(rtype, "linear") != 0) {
            rl_gguf_close(&g);
            return rl_fail(err, RL_EUNSUPPORTED, "%s: rope scaling '%s' is not supported (linear; llama3 via rope_freqs)", path, rtype);
        }
        c.rope.type = RL_ROPE_LINEAR;
        snprintf(key, sizeof key, "%s.rope.scaling.factor", arch);
        v = 1.0;
        rl_gguf_get_num(&g, key, &v);
        c.rope.factor = (float)gguf_meta_num(v);
    }
    const rl_gguf_tensor *emb = rl_gguf_find_tensor(&g, "token_embd.weight");
    if (!emb || emb->ndim != 2) {
        rl_gguf_close(&g);
        return rl_fail(err, RL_EFORMAT, "%s: no 2-D token_embd.weight tensor", path);
    }
    c.vocab_size = (int)(emb->dims[1] < (1 << 24) ? emb->dims[1] : 0);
    c.tie_embeddings = rl_gguf_find_tensor(&g, "output.weight") == NULL;
    c.bos_id = c.eos_id = -1;
    if (rl_gguf_get_num(&g, "tokenizer.ggml.bos_token_id", &v)) c.bos_id = (int)gguf_meta_num(v);
    if (rl_gguf_get_num(&g, "tokenizer.ggml.eos_token_id", &v)) c.eos_id = (int)gguf_meta_num(v);
    if ((s = rl_model_init(m, &c, err))) {
        rl_error_prefix(err, "%s", path);
        rl_gguf_close(&g);
        return s;
    }
    int n = rl_params_count(&c);
    rl_tensor_ref *refs = rl_xcalloc((size_t)n, sizeof *refs);
    rl_params_list(&c, &m->w, refs);
    for (int i = 0; i < n && !s; i++) {
        char gn[96];
        if (!gguf_name(refs[i].name, gn, sizeof gn)) continue;
        const rl_gguf_tensor *t = rl_gguf_find_tensor(&g, gn);
        if (!t) {
            s = rl_fail(err, RL_EFORMAT, "%s: missing tensor '%s'", path, gn);
            break;
        }
        // GGUF dims are fastest-first: (out, in) is [in, out]
        int same = refs[i].ndim == t->ndim && t->dims[0] == (refs[i].ndim == 2 ? refs[i].shape[1] : refs[i].shape[0]) &&
                   (refs[i].ndim == 1 || t->dims[1] == refs[i].shape[0]);
        if (!same) s = rl_fail(err, RL_EFORMAT, "%s: tensor '%s' has the wrong shape for the metadata", path, gn);
        else if (!t->supported)
            s = rl_fail(err, RL_EUNSUPPORTED, "%s: tensor '%s' has ggml type %d (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K)",
                        path, gn, t->type);
        else rl_ggml_dequant(t->type, t->data, refs[i].data, refs[i].n);
    }
    free(refs);
    const rl_gguf_tensor *rf = rl_gguf_find_tensor(&g, "rope_freqs.weight");
    if (!s && rf) { // llama3 scaling as per-pair divisors of the frequencies
        if (rf->ndim != 1 || rf->dims[0] != c.head_dim / 2 || rf->type != RL_GGML_F32)
            s = rl_fail(err, RL_EFORMAT, "%s: rope_freqs.weight must be F32 [%d]", path, c.head_dim / 2);
        else {
            float *f = rl_xmalloc((size_t)c.head_dim / 2 * sizeof(float));
            rl_ggml_dequant(RL_GGML_F32, rf->data, f, (size_t)c.head_dim / 2);
            for (int i = 0; i < c.head_dim / 2; i++)
                if (f[i] > 0) m->inv_freq[i] /= f[i];
            free(f);
        }
    }
    if (!s && !strcmp(arch, "llama"))
        for (int l = 0; l < c.n_layers; l++) {
            permute_interleaved_to_half(m->w.wq + (size_t)l * c.n_heads * c.head_dim * c.dim, c.n_heads, c.head_dim, c.dim);
            permute_interleaved_to_half(m->w.wk + (size_t)l * c.n_kv_heads * c.head_dim * c.dim, c.n_kv_heads, c.head_dim, c.dim);
        }
    rl_gguf_close(&g);
    if (s) rl_model_free(m);
    return s;
}

/* ---- writing ------------------------------------------------------------------------------- */

static void w_u32(rl_buf *b, uint32_t v) { rl_buf_append(b, &v, 4); }
static void w_u64(rl_buf *b, uint64_t v) { rl_buf_append(b, &v, 8); }
static void w_str(rl_buf *b, const char *s, size_t n) {
    w_u64(b, n);
    rl_buf_append(b, s, n);
}
static void kv_str(rl_buf *b, int *n, const char *k, const char *v) {
    w_str(b, k, strlen(k)), w_u32(b, T_STR), w_str(b, v, strlen(v)), (*n)++;
}
static void kv_u32(rl_buf *b, int *n, const char *k, uint32_t v) { w_str(b, k, strlen(k)), w_u32(b, T_U32), w_u32(b, v), (*n)++; }
static void kv_bool(rl_buf *b, int *n, const char *k, int v) {
    uint8_t x = (uint8_t)(v != 0);
    w_str(b, k, strlen(k)), w_u32(b, T_BOOL), rl_buf_append(b, &x, 1), (*n)++;
}
static void kv_f32(rl_buf *b, int *n, const char *k, float v) {
    w_str(b, k, strlen(k)), w_u32(b, T_F32), rl_buf_append(b, &v, 4), (*n)++;
}

rl_status rl_model_save_gguf(const rl_model *m, const char *path, int type, const rl_gguf_vocab *vocab, rl_error *err) {
    const rl_model_config *c = &m->cfg;
    if (type != RL_GGML_F32 && type != RL_GGML_F16 && type != RL_GGML_Q8_0 && type != RL_GGML_Q4_0 && type != RL_GGML_Q4_K &&
        type != RL_GGML_Q6_K)
        return rl_fail(err, RL_EINVAL, "GGUF output type must be F32, F16, Q8_0, Q4_0, Q4_K or Q6_K");
    if (vocab && vocab->n != c->vocab_size)
        return rl_fail(err, RL_EINVAL, "the vocabulary has %d tokens, the model %d (llama.cpp needs them equal)", vocab->n,
                       c->vocab_size);
    if (c->rope.type == RL_ROPE_LLAMA3) return rl_fail(err, RL_EUNSUPPORTED, "writing llama3 rope scaling to GGUF is not supported yet");
    int llama = strcmp(c->arch, "qwen2") != 0;
    const char *arch = llama ? "llama" : "qwen2";
    rl_buf kv = {0};
    int nkv = 0;
    char key[96];
    kv_str(&kv, &nkv, "general.architecture", arch);
    kv_str(&kv, &nkv, "general.name", "raftlm export");
    kv_u32(&kv, &nkv, "general.alignment", 32);
    // llama_ftype: ALL_F32 0, MOSTLY_F16 1, Q4_0 2, Q8_0 7, Q4_K_S 14, Q6_K 18
    kv_u32(&kv, &nkv, "general.file_type",
           type == RL_GGML_F32 ? 0 : type == RL_GGML_F16 ? 1 : type == RL_GGML_Q4_0 ? 2 : type == RL_GGML_Q8_0 ? 7
                                                           : type == RL_GGML_Q4_K ? 14 : 18);
#define KU(name, val) (snprintf(key, sizeof key, "%s." name, arch), kv_u32(&kv, &nkv, key, (uint32_t)(val)))
#define KF(name, val) (snprintf(key, sizeof key, "%s." name, arch), kv_f32(&kv, &nkv, key, (float)(val)))
    KU("context_length", c->max_seq_len > 0 ? c->max_seq_len : 2048);
    KU("embedding_length", c->dim);
    KU("block_count", c->n_layers);
    KU("feed_forward_length", c->hidden_dim);
    KU("attention.head_count", c->n_heads);
    KU("attention.head_count_kv", c->n_kv_heads);
    KU("attention.key_length", c->head_dim);
    KU("attention.value_length", c->head_dim);
    KU("rope.dimension_count", c->head_dim);
    KU("vocab_size", c->vocab_size);
    KF("rope.freq_base", c->rope.theta);
    KF("attention.layer_norm_rms_epsilon", c->norm_eps);
    if (c->rope.type == RL_ROPE_LINEAR) {
        snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
        kv_str(&kv, &nkv, key, "linear");
        KF("rope.scaling.factor", c->rope.factor);
    }
#undef KU
#undef KF
    if (vocab) { // tokenizer.ggml.*
        kv_str(&kv, &nkv, "tokenizer.ggml.model", vocab->model);
        if (vocab->pre) kv_str(&kv, &nkv, "tokenizer.ggml.pre", vocab->pre);
        w_str(&kv, "tokenizer.ggml.tokens", 21), w_u32(&kv, T_ARR), w_u32(&kv, T_STR), w_u64(&kv, (uint64_t)vocab->n), nkv++;
        for (int i = 0; i < vocab->n; i++) w_str(&kv, vocab->tokens[i], strlen(vocab->tokens[i]));
        if (vocab->scores) {
            w_str(&kv, "tokenizer.ggml.scores", 21), w_u32(&kv, T_ARR), w_u32(&kv, T_F32), w_u64(&kv, (uint64_t)vocab->n), nkv++;
            rl_buf_append(&kv, vocab->scores, (size_t)vocab->n * 4);
        }
        w_str(&kv, "tokenizer.ggml.token_type", 25), w_u32(&kv, T_ARR), w_u32(&kv, T_I32), w_u64(&kv, (uint64_t)vocab->n), nkv++;
        rl_buf_append(&kv, vocab->types, (size_t)vocab->n * 4);
        if (vocab->merges) {
            w_str(&kv, "tokenizer.ggml.merges", 21), w_u32(&kv, T_ARR), w_u32(&kv, T_STR), w_u64(&kv, (uint64_t)vocab->n_merges), nkv++;
            for (int i = 0; i < vocab->n_merges; i++) w_str(&kv, vocab->merges[i], strlen(vocab->merges[i]));
        }
        if (vocab->bos >= 0) kv_u32(&kv, &nkv, "tokenizer.ggml.bos_token_id", (uint32_t)vocab->bos);
        if (vocab->eos >= 0) kv_u32(&kv, &nkv, "tokenizer.ggml.eos_token_id", (uint32_t)vocab->eos);
        if (vocab->unk >= 0) kv_u32(&kv, &nkv, "tokenizer.ggml.unknown_token_id", (uint32_t)vocab->unk);
        if (vocab->pad >= 0) kv_u32(&kv, &nkv, "tokenizer.ggml.padding_token_id", (uint32_t)vocab->pad);
        if (vocab->add_bos) kv_bool(&kv, &nkv, "tokenizer.ggml.add_bos_token", vocab->add_bos > 0);
        if (vocab->add_eos) kv_bool(&kv, &nkv, "tokenizer.ggml.add_eos_token", vocab->add_eos > 0);
    }
    // tensors: norms and biases stay F32 (as llama.cpp's converter keeps 1-D tensors)
    int n = rl_params_count(c);
    rl_tensor_ref *refs = rl_xcalloc((size_t)n, sizeof *refs);
    rl_params_list(c, &m->w, refs);
    rl_buf ti = {0}, data = {0};
    float *tmp = NULL;
    int nt = 0;
    rl_status s = RL_OK;
    for (int i = 0; i < n; i++) {
        char gn[96];
        if (!gguf_name(refs[i].name, gn, sizeof gn)) continue;
        int tt = refs[i].ndim == 1 ? RL_GGML_F32 : type;
        int ok;
        int64_t cols = refs[i].ndim == 2 ? refs[i].shape[1] : refs[i].shape[0];
        size_t rb = rl_ggml_row_bytes(tt, cols, &ok);
        if (!ok && (tt == RL_GGML_Q4_K || tt == RL_GGML_Q6_K)) // rows not a multiple of 256: llama.cpp's fallbacks
            tt = tt == RL_GGML_Q4_K ? RL_GGML_Q4_0 : RL_GGML_Q8_0, rb = rl_ggml_row_bytes(tt, cols, &ok);
        if (!ok) tt = RL_GGML_F16, rb = rl_ggml_row_bytes(tt, cols, &ok); // rows not a multiple of 32
        const float *src = refs[i].data;
        int is_q = strstr(gn, "attn_q.weight") != NULL, is_k = strstr(gn, "attn_k.weight") != NULL;
        if (llama && (is_q || is_k)) {
            tmp = rl_xrealloc(tmp, refs[i].n * sizeof(float));
            memcpy(tmp, src, refs[i].n * sizeof(float));
            permute_half_to_interleaved(tmp, is_q ? c->n_heads : c->n_kv_heads, c->head_dim, c->dim);
            src = tmp;
        }
        w_str(&ti, gn, strlen(gn));
        w_u32(&ti, (uint32_t)refs[i].ndim);
        w_u64(&ti, (uint64_t)cols);
        if (refs[i].ndim == 2) w_u64(&ti, (uint64_t)refs[i].shape[0]);
        w_u32(&ti, (uint32_t)tt);
        while (data.len % 32) rl_buf_putc(&data, 0);
        w_u64(&ti, data.len);
        size_t rows = refs[i].ndim == 2 ? (size_t)refs[i].shape[0] : 1, start = data.len;
        rl_buf_reserve(&data, rb * rows);
        for (size_t r = 0; r < rows; r++) {
            const float *x = src + r * (size_t)cols;
            uint8_t *dst = (uint8_t *)data.data + start + r * rb;
            rl_ggml_quantize_row(tt, dst, x, (size_t)cols);
        }
        data.len = start + rb * rows;
        nt++;
    }
    free(tmp);
    free(refs);
    rl_buf out = {0};
    rl_buf_append(&out, "GGUF", 4);
    w_u32(&out, 3);
    w_u64(&out, (uint64_t)nt);
    w_u64(&out, (uint64_t)nkv);
    rl_buf_append(&out, kv.data, kv.len);
    rl_buf_append(&out, ti.data, ti.len);
    while (out.len % 32) rl_buf_putc(&out, 0);
    rl_atomic_file f;
    if (!(s = rl_atomic_open(&f, path, err))) {
        if (fwrite(out.data, 1, out.len, f.fp) != out.len || (data.len && fwrite(data.data, 1, data.len, f.fp) != data.len)) {
            rl_atomic_abort(&f);
            s = rl_fail(err, RL_EIO, "cannot write %s", path);
        } else s = rl_atomic_commit(&f, err);
    }
    rl_buf_free(&out);
    rl_buf_free(&kv);
    rl_buf_free(&ti);
    rl_buf_free(&data);
    return s;
}
