/* lora_io.c - reads and writes PEFT LoRA adapters: a folder with adapter_config.json and
 * adapter_model.safetensors, tensors named
 *   base_model.model.model.layers.{l}.{self_attn|mlp}.{module}.lora_{A|B}.weight
 * with A (r, in) and B (out, r), as Hugging Face PEFT writes them.
 *
 * Not handled: adapters on some layers only (layers_to_transform), per-module ranks
 * (rank_pattern / alpha_pattern), DoRA, modules_to_save, bias != "none"; each is a clear error.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "model/safetensors.h"

static void peft_name(char *out, size_t cap, int l, rl_module m, char ab) {
    const char *kind = m <= RL_MOD_O ? "self_attn" : "mlp";
    snprintf(out, cap, "base_model.model.model.layers.%d.%s.%s.lora_%c.weight", l, kind, rl_module_names[m], ab);
}

static int json_nonempty(json_t *v) {
    if (!v || json_is_null(v) || json_is_false(v)) return 0;
    if (json_is_array(v)) return json_array_size(v) > 0;
    if (json_is_object(v)) return json_object_size(v) > 0;
    return 1;
}

rl_status rl_lora_load_peft(rl_lora *lo, const rl_model_config *cfg, const char *dir, rl_error *err) {
    memset(lo, 0, sizeof *lo);
    char *path = rl_path_join(dir, "adapter_config.json");
    char *text = NULL;
    size_t len = 0;
    rl_status s = rl_file_read(path, 1 << 20, &text, &len, err);
    free(path);
    if (s) return s;
    json_error_t jerr;
    json_t *o = json_loadb(text, len, 0, &jerr);
    free(text);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return rl_fail(err, RL_EFORMAT, "%s/adapter_config.json: not a JSON object (%s)", dir, o ? "" : jerr.text);
    }
    const char *pt = json_string_value(json_object_get(o, "peft_type"));
    json_t *jr = json_object_get(o, "r"), *ja = json_object_get(o, "lora_alpha"), *jt = json_object_get(o, "target_modules");
    const char *bias = json_string_value(json_object_get(o, "bias"));
    unsigned targets = 0;
    if (pt && strcmp(pt, "LORA") != 0) s = rl_fail(err, RL_EUNSUPPORTED, "peft_type %s is not supported (LORA)", pt);
    else if (!json_is_integer(jr) || !json_is_number(ja)) s = rl_fail(err, RL_EFORMAT, "r and lora_alpha must be numbers");
    else if (bias && strcmp(bias, "none") != 0) s = rl_fail(err, RL_EUNSUPPORTED, "bias '%s' is not supported (none)", bias);
    else if (json_is_true(json_object_get(o, "fan_in_fan_out"))) s = rl_fail(err, RL_EUNSUPPORTED, "fan_in_fan_out is not supported");
    else if (json_is_true(json_object_get(o, "use_dora"))) s = rl_fail(err, RL_EUNSUPPORTED, "use_dora is not supported");
    else if (json_nonempty(json_object_get(o, "layers_to_transform"))) s = rl_fail(err, RL_EUNSUPPORTED, "layers_to_transform is not supported");
    else if (json_nonempty(json_object_get(o, "rank_pattern")) || json_nonempty(json_object_get(o, "alpha_pattern")))
        s = rl_fail(err, RL_EUNSUPPORTED, "rank_pattern / alpha_pattern are not supported");
    else if (json_nonempty(json_object_get(o, "modules_to_save"))) s = rl_fail(err, RL_EUNSUPPORTED, "modules_to_save is not supported");
    else if (json_is_string(jt)) {
        if (!(targets = rl_lora_parse_targets(json_string_value(jt))))
            s = rl_fail(err, RL_EUNSUPPORTED, "target_modules '%s' is not supported", json_string_value(jt));
    } else if (json_is_array(jt)) {
        size_t i;
        json_t *v;
        json_array_foreach(jt, i, v) {
            unsigned t = json_is_string(v) ? rl_lora_parse_targets(json_string_value(v)) : 0;
            if (!t) {
                s = rl_fail(err, RL_EUNSUPPORTED, "target module %s is not a linear layer of the model",
                            json_is_string(v) ? json_string_value(v) : "(not a string)");
                break;
            }
            targets |= t;
        }
    } else s = rl_fail(err, RL_EFORMAT, "target_modules must be a list or a string");
    int r = json_is_integer(jr) ? (int)json_integer_value(jr) : 0;
    float alpha = (float)json_number_value(ja);
    int rslora = json_is_true(json_object_get(o, "use_rslora"));
    json_t *jd = json_object_get(o, "lora_dropout");
    float dropout = json_is_number(jd) ? (float)json_number_value(jd) : 0.0f;
    if (!s && !(dropout >= 0.0f && dropout < 1.0f)) s = rl_fail(err, RL_EFORMAT, "lora_dropout %g out of range", dropout);
    json_decref(o);
    if (!s) s = rl_lora_init(lo, cfg, r, alpha, rslora, targets, 0, 1, err);
    if (!s) lo->dropout = dropout;
    if (s) {
        rl_error_prefix(err, "%s/adapter_config.json", dir);
        return s;
    }
    path = rl_path_join(dir, "adapter_model.safetensors");
    rl_st_file f;
    s = rl_st_open(&f, path, err);
    free(path);
    if (s) {
        rl_lora_free(lo);
        return s;
    }
    char name[160];
    for (int m = 0; m < RL_MOD_COUNT && !s; m++) {
        if (!(targets & (1u << m))) continue;
        int in, out;
        rl_lora_shapes(cfg, m, &in, &out);
        for (int l = 0; l < cfg->n_layers && !s; l++) {
            int64_t sa[2] = {r, in}, sb[2] = {out, r};
            peft_name(name, sizeof name, l, m, 'A');
            s = rl_st_read_f32(&f, name, lo->a[m] + (size_t)l * r * in, sa, 2, err);
            if (s) break;
            peft_name(name, sizeof name, l, m, 'B');
            s = rl_st_read_f32(&f, name, lo->b[m] + (size_t)l * out * r, sb, 2, err);
        }
    }
    rl_st_close(&f);
    if (s) rl_lora_free(lo);
    return s;
}

rl_status rl_lora_save_peft(const rl_lora *lo, const rl_model_config *cfg, const char *dir, const char *base_model,
                            rl_error *err) {
    rl_status s = rl_mkdir_p(dir, err);
    if (s) return s;
    int n = 0, cap = 2 * RL_MOD_COUNT * cfg->n_layers;
    rl_st_entry *e = rl_xcalloc((size_t)cap, sizeof *e);
    char (*names)[160] = rl_xcalloc((size_t)cap, sizeof *names);
    rl_buf mods = {0};
    for (int m = 0; m < RL_MOD_COUNT; m++) {
        if (!(lo->targets & (1u << m))) continue;
        rl_buf_printf(&mods, "%s\"%s\"", mods.len ? ", " : "", rl_module_names[m]);
        int in, out;
        rl_lora_shapes(cfg, m, &in, &out);
        for (int l = 0; l < cfg->n_layers; l++) {
            peft_name(names[n], sizeof names[n], l, m, 'A');
            e[n] = (rl_st_entry){names[n], lo->a[m] + (size_t)l * lo->r * in, 2, {lo->r, in}};
            n++;
            peft_name(names[n], sizeof names[n], l, m, 'B');
            e[n] = (rl_st_entry){names[n], lo->b[m] + (size_t)l * out * lo->r, 2, {out, lo->r}};
            n++;
        }
    }
    char *path = rl_path_join(dir, "adapter_model.safetensors");
    s = rl_st_write(path, e, n, RL_ST_F32, err);
    free(path);
    if (!s) {
        rl_buf js = {0};
        rl_buf_printf(&js,
                      "{\n  \"peft_type\": \"LORA\",\n  \"task_type\": \"CAUSAL_LM\",\n  \"base_model_name_or_path\": \"%s\",\n"
                      "  \"r\": %d,\n  \"lora_alpha\": %g,\n  \"lora_dropout\": %g,\n  \"use_rslora\": %s,\n"
                      "  \"target_modules\": [%s],\n  \"bias\": \"none\",\n  \"fan_in_fan_out\": false,\n"
                      "  \"inference_mode\": true,\n  \"init_lora_weights\": true\n}\n",
                      base_model ? base_model : "", lo->r, (double)lo->alpha, (double)lo->dropout, lo->rslora ? "true" : "false",
                      mods.data ? mods.data : "");
        path = rl_path_join(dir, "adapter_config.json");
        s = rl_file_write_atomic(path, js.data, js.len, err);
        free(path);
        rl_buf_free(&js);
    }
    rl_buf_free(&mods);
    free(names);
    free(e);
    return s;
}
