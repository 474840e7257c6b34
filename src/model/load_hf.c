/* load_hf.c - reads Hugging Face model folders: config.json plus model.safetensors, or shards
 * listed in model.safetensors.index.json. Tensors may be F32, F16 or BF16; the files are
 * memory-mapped and converted straight into the model's float32 parameters.
 *
 * safetensors: u64 little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
 * then the data; offsets are relative to the end of the header. Every tensor's dtype, shape,
 * byte length and offsets are checked against each other and against the file size before
 * any byte is read.
 *
 * Not handled here: quantized or F64 tensors, tensors beyond what the config describes
 * (ignored with a debug line), GGUF (a separate loader).
 */
#include "model/model.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "model/safetensors.h"

/* ---- config.json ------------------------------------------------------------------------- */

static int json_int(json_t *o, const char *key, int def, int *ok) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return def;
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        if (x < INT32_MIN || x > INT32_MAX) *ok = 0;
        return (int)x;
    }
    if (json_is_array(v) && json_array_size(v) > 0 && json_is_integer(json_array_get(v, 0)))
        return (int)json_integer_value(json_array_get(v, 0)); // eos_token_id may be a list
    *ok = 0;
    return def;
}

static double json_num(json_t *o, const char *key, double def, int *ok) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return def;
    if (json_is_number(v)) return json_number_value(v);
    *ok = 0;
    return def;
}

static int json_bool(json_t *o, const char *key, int def, int *ok) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return def;
    if (json_is_boolean(v)) return json_is_true(v);
    *ok = 0;
    return def;
}

rl_status rl_model_config_from_hf_json(rl_model_config *c, const char *text, size_t len, rl_error *err) {
    memset(c, 0, sizeof *c);
    json_error_t jerr;
    json_t *o = json_loadb(text, len, 0, &jerr);
    if (!o) return rl_fail(err, RL_EFORMAT, "config.json: line %d: %s", jerr.line, jerr.text);
    rl_status s = RL_OK;
    if (!json_is_object(o)) {
        s = rl_fail(err, RL_EFORMAT, "config.json: not a JSON object");
        goto done;
    }
    const char *type = json_string_value(json_object_get(o, "model_type"));
    if (!type) {
        s = rl_fail(err, RL_EFORMAT, "config.json: no model_type");
        goto done;
    }
    int qwen2 = strcmp(type, "qwen2") == 0;
    if (strcmp(type, "llama") != 0 && !qwen2) {
        s = rl_fail(err, RL_EUNSUPPORTED, "config.json: model_type '%s' is not supported (llama, qwen2)", type);
        goto done;
    }
    snprintf(c->arch, sizeof c->arch, "%s", type);
    int ok = 1;
    c->dim = json_int(o, "hidden_size", 0, &ok);
    c->hidden_dim = json_int(o, "intermediate_size", 0, &ok);
    c->n_layers = json_int(o, "num_hidden_layers", 0, &ok);
    c->n_heads = json_int(o, "num_attention_heads", 0, &ok);
    c->n_kv_heads = json_int(o, "num_key_value_heads", c->n_heads, &ok);
    c->head_dim = json_int(o, "head_dim", c->n_heads > 0 ? c->dim / c->n_heads : 0, &ok);
    c->vocab_size = json_int(o, "vocab_size", 0, &ok);
    c->max_seq_len = json_int(o, "max_position_embeddings", 2048, &ok);
    c->norm_eps = (float)json_num(o, "rms_norm_eps", 1e-6, &ok);
    c->rope.theta = (float)json_num(o, "rope_theta", 10000.0, &ok);
    c->tie_embeddings = json_bool(o, "tie_word_embeddings", 0, &ok);
    c->bos_id = json_int(o, "bos_token_id", -1, &ok);
    c->eos_id = json_int(o, "eos_token_id", -1, &ok);
    c->qkv_bias = qwen2;
    if (!ok) {
        s = rl_fail(err, RL_EFORMAT, "config.json: a size or flag has the wrong type");
        goto done;
    }
    const char *act = json_string_value(json_object_get(o, "hidden_act"));
    if (act && strcmp(act, "silu") != 0) {
        s = rl_fail(err, RL_EUNSUPPORTED, "config.json: hidden_act '%s' is not supported (silu)", act);
        goto done;
    }
    if (json_bool(o, "mlp_bias", 0, &ok)) {
        s = rl_fail(err, RL_EUNSUPPORTED, "config.json: mlp_bias is not supported");
        goto done;
    }
    if (!qwen2 && json_bool(o, "attention_bias", 0, &ok)) {
        s = rl_fail(err, RL_EUNSUPPORTED, "config.json: attention_bias (bias on o_proj too) is not supported");
        goto done;
    }
    if (qwen2 && json_bool(o, "use_sliding_window", 0, &ok)) {
        s = rl_fail(err, RL_EUNSUPPORTED, "config.json: use_sliding_window is not supported");
        goto done;
    }
    json_t *rs = json_object_get(o, "rope_scaling");
    if (rs && !json_is_null(rs)) {
        const char *rt = json_string_value(json_object_get(rs, "rope_type"));
        if (!rt) rt = json_string_value(json_object_get(rs, "type"));
        if (!rt) rt = "(none)";
        c->rope.factor = (float)json_num(rs, "factor", 1.0, &ok);
        if (strcmp(rt, "default") == 0) {
            c->rope.type = RL_ROPE_DEFAULT;
        } else if (strcmp(rt, "linear") == 0) {
            c->rope.type = RL_ROPE_LINEAR;
        } else if (strcmp(rt, "llama3") == 0) {
            c->rope.type = RL_ROPE_LLAMA3;
            c->rope.low_freq_factor = (float)json_num(rs, "low_freq_factor", 1.0, &ok);
            c->rope.high_freq_factor = (float)json_num(rs, "high_freq_factor", 4.0, &ok);
            c->rope.original_max_position = json_int(rs, "original_max_position_embeddings", 8192, &ok);
        } else {
            s = rl_fail(err, RL_EUNSUPPORTED, "config.json: rope_scaling type '%s' is not supported (linear, llama3)", rt);
            goto done;
        }
        if (!ok) {
            s = rl_fail(err, RL_EFORMAT, "config.json: rope_scaling has a value of the wrong type");
            goto done;
        }
    }
    if ((s = rl_model_config_check(c, err))) rl_error_prefix(err, "config.json");
done:
    json_decref(o);
    return s;
}

/* ---- the folder ------------------------------------------------------------------------ */

rl_status rl_model_load_hf(rl_model *m, const char *dir, rl_error *err) {
    memset(m, 0, sizeof *m);
    char *cfg_path = rl_path_join(dir, "config.json");
    char *text = NULL;
    size_t len = 0;
    rl_model_config cfg;
    rl_status s = rl_file_read(cfg_path, 1 << 20, &text, &len, err);
    if (!s) {
        s = rl_model_config_from_hf_json(&cfg, text, len, err);
        if (s) rl_error_prefix(err, "%s", dir);
    }
    free(text);
    free(cfg_path);
    if (s) return s;

    rl_st_set set;
    if ((s = rl_st_set_open_dir(&set, dir, err))) return s;
    if ((s = rl_model_init(m, &cfg, err))) {
        rl_st_set_close(&set);
        return s;
    }
    int n = rl_params_count(&cfg);
    rl_tensor_ref *refs = rl_xcalloc((size_t)n, sizeof *refs);
    rl_params_list(&cfg, &m->w, refs);
    for (int i = 0; i < n && !s; i++) s = rl_st_set_read_f32(&set, refs[i].name, refs[i].data, refs[i].shape, refs[i].ndim, err);
    free(refs);
    rl_st_set_close(&set);
    if (s) {
        rl_error_prefix(err, "%s", dir);
        rl_model_free(m);
        return s;
    }
    rl_debug("loaded %s model from %s: dim %d, layers %d, heads %d/%d, vocab %d", cfg.arch, dir, cfg.dim,
             cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.vocab_size);
    return RL_OK;
}
