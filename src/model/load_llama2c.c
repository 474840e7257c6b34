/* load_llama2c.c - reads llama2.c checkpoints (the legacy "version 0" format of run.c).
 *
 * Layout: seven little-endian int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 * vocab_size, seq_len; a negative vocab_size means an untied classifier follows), then float32
 * arrays: token_embedding (V,C), rms_att (L,C), wq (L,C,C), wk (L,KD,C), wv (L,KD,C),
 * wo (L,C,C), rms_ffn (L,C), w1 (L,F,C), w2 (L,C,F), w3 (L,F,C), rms_final (C), two legacy RoPE
 * tables (seq_len*HD/2 floats each, skipped), then wcls (V,C) only when untied.
 * The file size must equal exactly what the header implies: anything else is a damaged or
 * different file. llama2.c rotates interleaved pairs (x[2i], x[2i+1]); we permute the rows of
 * wq and wk into Hugging Face's half-split layout so that the one forward serves every format.
 *
 * Not handled: the newer llama2.c "version 1/2" export formats (magic "ak42").
 */
#include "model/model.h"

#include <stdlib.h>
#include <string.h>

static void permute_interleaved_to_half(float *w, int n_heads, int HD, int C) {
    // w (n_heads*HD, C): per head, row 2j -> j and row 2j+1 -> j + HD/2
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

rl_status rl_model_load_llama2c(rl_model *m, const char *path, rl_error *err) {
    memset(m, 0, sizeof *m);
    rl_mmap map;
    rl_status s = rl_mmap_open(&map, path, err);
    if (s) return s;
    if (map.size < 28) {
        rl_mmap_close(&map);
        return rl_fail(err, RL_EFORMAT, "%s: %zu bytes is too short for a llama2.c checkpoint header", path, map.size);
    }
    int32_t h[7];
    memcpy(h, map.data, sizeof h);
    if (memcmp(map.data, "ak42", 4) == 0 || memcmp(map.data, "GGUF", 4) == 0) {
        rl_mmap_close(&map);
        return rl_fail(err, RL_EUNSUPPORTED, "%s: only legacy llama2.c checkpoints (and HF folders) are supported so far",
                       path);
    }
    rl_model_config c = {0};
    snprintf(c.arch, sizeof c.arch, "llama");
    c.dim = h[0];
    c.hidden_dim = h[1];
    c.n_layers = h[2];
    c.n_heads = h[3];
    c.n_kv_heads = h[4];
    c.tie_embeddings = h[5] > 0;
    c.vocab_size = h[5] > 0 ? h[5] : (h[5] == INT32_MIN ? 0 : -h[5]);
    c.max_seq_len = h[6];
    c.head_dim = c.n_heads > 0 ? c.dim / c.n_heads : 0;
    c.norm_eps = 1e-5f;
    c.rope.theta = 10000.0f;
    c.bos_id = 1;
    c.eos_id = 2;
    if (c.n_heads > 0 && c.dim % c.n_heads != 0) {
        rl_mmap_close(&map);
        return rl_fail(err, RL_EFORMAT, "%s: dim %d is not a multiple of n_heads %d (not a llama2.c checkpoint?)", path,
                       c.dim, c.n_heads);
    }
    if ((s = rl_model_config_check(&c, err)) || c.max_seq_len <= 0 || c.max_seq_len > (1 << 22)) {
        if (!s) s = rl_fail(err, RL_EFORMAT, "seq_len %d out of range", c.max_seq_len);
        rl_error_prefix(err, "%s: not a valid llama2.c checkpoint", path);
        rl_mmap_close(&map);
        return s;
    }
    // sizes are bounded by rl_model_config_check, so these products fit comfortably in 64 bits
    uint64_t C = (uint64_t)c.dim, F = (uint64_t)c.hidden_dim, L = (uint64_t)c.n_layers, V = (uint64_t)c.vocab_size;
    uint64_t KD = (uint64_t)c.n_kv_heads * c.head_dim, HD = (uint64_t)c.head_dim;
    uint64_t floats = V * C + L * C + L * C * C + 2 * L * KD * C + L * C * C + L * C + 3 * L * F * C + C +
                      (uint64_t)c.max_seq_len * HD + (c.tie_embeddings ? 0 : V * C);
    uint64_t expect = 28 + floats * 4;
    if (map.size != expect) {
        rl_mmap_close(&map);
        return rl_fail(err, RL_EFORMAT,
                       "%s: file has %zu bytes but its header (dim %d, hidden %d, layers %d, heads %d/%d, vocab %d, "
                       "seq_len %d) implies %llu: truncated or not a llama2.c checkpoint",
                       path, map.size, c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size,
                       c.max_seq_len, (unsigned long long)expect);
    }
    if ((s = rl_model_init(m, &c, err))) {
        rl_mmap_close(&map);
        return s;
    }
    const float *src = (const float *)(map.data + 28);
    rl_params *p = &m->w;
#define TAKE(dst, count)                                                  \
    do {                                                                  \
        memcpy((dst), src, (size_t)(count) * sizeof(float));              \
        src += (count);                                                   \
    } while (0)
    TAKE(p->wte, V * C);
    TAKE(p->rms_att, L * C);
    TAKE(p->wq, L * C * C);
    TAKE(p->wk, L * KD * C);
    TAKE(p->wv, L * KD * C);
    TAKE(p->wo, L * C * C);
    TAKE(p->rms_ffn, L * C);
    TAKE(p->w1, L * F * C);
    TAKE(p->w2, L * C * F);
    TAKE(p->w3, L * F * C);
    TAKE(p->rms_final, C);
    src += (uint64_t)c.max_seq_len * HD; // legacy freq_cis_real and freq_cis_imag
    if (!c.tie_embeddings) TAKE(p->lm_head, V * C);
#undef TAKE
    rl_mmap_close(&map);
    for (int l = 0; l < c.n_layers; l++) {
        permute_interleaved_to_half(p->wq + (size_t)l * C * C, c.n_heads, c.head_dim, c.dim);
        permute_interleaved_to_half(p->wk + (size_t)l * KD * C, c.n_kv_heads, c.head_dim, c.dim);
    }
    rl_debug("loaded llama2.c checkpoint %s: dim %d, layers %d, heads %d/%d, vocab %d", path, c.dim, c.n_layers,
             c.n_heads, c.n_kv_heads, c.vocab_size);
    return RL_OK;
}
