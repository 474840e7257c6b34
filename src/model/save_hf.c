/* save_hf.c - writes a model as a Hugging Face folder (config.json + model.safetensors) that
 * transformers loads as LlamaForCausalLM / Qwen2ForCausalLM, and folds LoRA adapters into the
 * base weights (a "merged" model).
 *
 * Not written here: tokenizer files (the tokenizer module owns those formats; a llama2.c
 * tokenizer.bin has no tokenizer.json to copy), generation_config.json. */
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "model/safetensors.h"

char *rl_model_config_to_hf_json(const rl_model_config *c) {
    rl_buf b = {0};
    int qwen2 = strcmp(c->arch, "qwen2") == 0;
    rl_buf_printf(&b, "{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"%s\",\n",
                  qwen2 ? "Qwen2ForCausalLM" : "LlamaForCausalLM", qwen2 ? "qwen2" : "llama");
    rl_buf_printf(&b, "  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n  \"num_hidden_layers\": %d,\n"
                      "  \"num_attention_heads\": %d,\n  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n"
                      "  \"vocab_size\": %d,\n  \"max_position_embeddings\": %d,\n  \"rms_norm_eps\": %.9g,\n"
                      "  \"rope_theta\": %.9g,\n  \"tie_word_embeddings\": %s,\n  \"hidden_act\": \"silu\",\n",
                  c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->vocab_size,
                  c->max_seq_len > 0 ? c->max_seq_len : 2048, (double)c->norm_eps, (double)c->rope.theta,
                  c->tie_embeddings ? "true" : "false");
    if (c->rope.type == RL_ROPE_LINEAR)
        rl_buf_printf(&b, "  \"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": %.9g},\n", (double)c->rope.factor);
    else if (c->rope.type == RL_ROPE_LLAMA3)
        rl_buf_printf(&b, "  \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": %.9g, \"low_freq_factor\": %.9g, "
                          "\"high_freq_factor\": %.9g, \"original_max_position_embeddings\": %d},\n",
                      (double)c->rope.factor, (double)c->rope.low_freq_factor, (double)c->rope.high_freq_factor,
                      c->rope.original_max_position);
    else rl_buf_puts(&b, "  \"rope_scaling\": null,\n");
    if (qwen2) rl_buf_puts(&b, "  \"use_sliding_window\": false,\n");
    else rl_buf_puts(&b, "  \"attention_bias\": false,\n  \"mlp_bias\": false,\n");
    if (c->bos_id >= 0) rl_buf_printf(&b, "  \"bos_token_id\": %d,\n", c->bos_id);
    if (c->eos_id >= 0) rl_buf_printf(&b, "  \"eos_token_id\": %d,\n", c->eos_id);
    rl_buf_puts(&b, "  \"torch_dtype\": \"float32\"\n}\n");
    return rl_buf_take(&b);
}

rl_status rl_model_save_hf(const rl_model *m, const char *dir, rl_error *err) {
    rl_status s = rl_mkdir_p(dir, err);
    if (s) return s;
    int n = rl_params_count(&m->cfg);
    rl_tensor_ref *refs = rl_xcalloc((size_t)n, sizeof *refs);
    rl_params_list(&m->cfg, &m->w, refs);
    rl_st_entry *e = rl_xcalloc((size_t)n, sizeof *e);
    for (int i = 0; i < n; i++) {
        e[i].name = refs[i].name;
        e[i].data = refs[i].data;
        e[i].ndim = refs[i].ndim;
        e[i].shape[0] = refs[i].shape[0];
        e[i].shape[1] = refs[i].shape[1];
    }
    char *path = rl_path_join(dir, "model.safetensors");
    s = rl_st_write(path, e, n, RL_ST_F32, err);
    free(path);
    if (!s) {
        char *js = rl_model_config_to_hf_json(&m->cfg);
        path = rl_path_join(dir, "config.json");
        s = rl_file_write_atomic(path, js, strlen(js), err);
        free(path);
        free(js);
    }
    free(e);
    free(refs);
    return s;
}

void rl_lora_merge(rl_model *m) {
    const rl_lora *lo = m->lora;
    if (!lo) return;
    for (int mod = 0; mod < RL_MOD_COUNT; mod++) {
        if (!(lo->targets & (1u << mod))) continue;
        for (int l = 0; l < m->cfg.n_layers; l++) {
            float *w;
            int in, out;
            rl_params_linear(&m->cfg, &m->w, l, mod, &w, NULL, &in, &out);
            const float *A = lo->a[mod] + (size_t)l * lo->r * in, *B = lo->b[mod] + (size_t)l * out * lo->r;
            // W (out,in) += scale * B (out,r) A (r,in): row o of W gets scale * sum_k B[o,k] A[k,:]
            for (int o = 0; o < out; o++)
                for (int k = 0; k < lo->r; k++) rl_axpy(w + (size_t)o * in, lo->scale * B[(size_t)o * lo->r + k], A + (size_t)k * in, (size_t)in);
        }
    }
    m->lora = NULL;
}
