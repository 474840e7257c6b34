/* cmd_export.c - `raftlm export -c raftlm.yaml --to hf|gguf|peft`: the result of `raftlm train`
 * (<output_dir>/train: a PEFT adapter, or a full model) as a merged Hugging Face folder, a merged
 * GGUF file (F32, F16 or Q8_0), or the PEFT adapter itself, in <output_dir>/export/ unless
 * --out says where. GGUF files get a tokenizer vocabulary when the tokenizer is a llama2.c
 * tokenizer.bin or a byte-level BPE tokenizer.json with Qwen2's pre-tokenizer (what raftlm
 * trains for a student from scratch); other vocabularies: not yet. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/config.h"

static const char *USAGE = "[-c raftlm.yaml] --to hf|gguf|peft [--type f32|f16|q8_0] [--out PATH]";

int cmd_export(int argc, char **argv) {
    static const struct option opts[] = {{"config", required_argument, 0, 'c'}, {"to", required_argument, 0, 't'},
                                         {"type", required_argument, 0, 'y'},   {"out", required_argument, 0, 'o'},
                                         {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    const char *config = "raftlm.yaml", *to = NULL, *type = "f16", *out = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 't': to = optarg; break;
        case 'y': type = optarg; break;
        case 'o': out = optarg; break;
        case 'h': printf("usage: raftlm export %s\n", USAGE); return 0;
        default: return cli_usage("export", USAGE);
        }
    }
    int gtype = !strcmp(type, "f32") ? 0 : !strcmp(type, "f16") ? 1 : !strcmp(type, "q8_0") ? 8 : -1;
    if (optind < argc || !to || gtype < 0 || (strcmp(to, "hf") && strcmp(to, "gguf") && strcmp(to, "peft")))
        return cli_usage("export", USAGE);
    rl_error err = {0};
    rl_config cfg;
    if (rl_config_load(&cfg, config, &err)) return cli_report(&err);
    int lora = strcmp(cfg.adapter, "lora") == 0;
    char *trained = rl_path_join(cfg.output_dir, "train");
    char *dflt = rl_path_join(cfg.output_dir, !strcmp(to, "gguf") ? "export/model.gguf" : !strcmp(to, "hf") ? "export/hf" : "export/adapter");
    const char *dst = out ? out : dflt;
    rl_status s = RL_OK;
    cli_model cm = {0};
    if (!cfg.base_model) s = rl_fail(&err, RL_ECONFIG, "%s: base_model is not set", config);
    else if (!lora && !strcmp(to, "peft")) s = rl_fail(&err, RL_EINVAL, "--to peft needs adapter: lora (this project trains all weights)");
    else s = cli_model_open(&cm, lora ? cfg.base_model : trained, lora ? trained : NULL, NULL, cfg.threads, &err);
    if (!s) {
        if (!strcmp(to, "peft")) {
            s = rl_lora_save_peft(&cm.lora, &cm.model.cfg, dst, cfg.base_model, &err);
        } else {
            if (cm.has_lora) rl_lora_merge(&cm.model);
            char *folder = rl_path_dirname(dst);
            if (!strcmp(to, "gguf")) s = rl_mkdir_p(folder, &err);
            free(folder);
            if (!s && !strcmp(to, "hf")) {
                s = rl_model_save_hf(&cm.model, dst, &err);
                char ext[16];
                rl_path_ext(cfg.base_model, ext, sizeof ext);
                const char *own = rl_path_is_dir(cfg.base_model) || !strcmp(ext, "gguf") ? cfg.base_model : NULL;
                if (!s) cli_save_tokenizer(cfg.tokenizer ? cfg.tokenizer : own, dst);
            } else if (!s) {
                cli_vocab vb = {0};
                // the tokenizer: `tokenizer:`, else the one beside a base model folder
                const char *tokp = cfg.tokenizer ? cfg.tokenizer : rl_path_is_dir(cfg.base_model) ? cfg.base_model : NULL;
                rl_error verr = {0};
                int have = tokp && !cli_vocab_load(&vb, tokp, cm.model.cfg.vocab_size, &verr);
                if (!have) rl_warn("export: the GGUF file gets no tokenizer (%s)", tokp ? verr.msg : "no tokenizer configured");
                // raftlm trains and runs its models with BOS first (cli_encode_prompt, the
                // datasets), whatever the tokenizer's own post-processor does: say so to llama.cpp
                if (have && vb.v.bos >= 0) vb.v.add_bos = 1;
                if (!s) s = rl_model_save_gguf(&cm.model, dst, gtype, have ? &vb.v : NULL, &err);
                if (have) cli_vocab_free(&vb);
            }
        }
    }
    if (!s) printf("wrote %s\n", dst);
    cli_model_close(&cm);
    rl_config_free(&cfg);
    free(trained);
    free(dflt);
    return s ? cli_report(&err) : 0;
}
