/* cmd_convert.c - `raftlm convert IN OUT --to hf|gguf [--type f32|f16|q8_0|q4_0|q4_k|q6_k]
 * [--lora DIR] [--tokenizer T]`: reads any model raftlm loads (llama2.c checkpoint, HF folder,
 * GGUF) and writes it as a Hugging Face folder or a GGUF file; with --lora the adapter is
 * folded into the weights (a merged model). For GGUF, --tokenizer (a llama2.c tokenizer.bin, or a byte-level BPE
 * tokenizer.json or its folder) becomes the file's tokenizer.ggml.* vocabulary. An
 * HF folder gets tokenizer.json + tokenizer_config.json (from --tokenizer, or the input's own). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char *USAGE = "IN OUT --to hf|gguf [--type f32|f16|q8_0|q4_0|q4_k|q6_k] [--lora DIR]\n"
                            "       [--tokenizer tokenizer.bin|tokenizer.json|DIR]";

int cmd_convert(int argc, char **argv) {
    static const struct option opts[] = {
        {"to", required_argument, 0, 't'},        {"lora", required_argument, 0, 'l'},
        {"type", required_argument, 0, 'y'},      {"tokenizer", required_argument, 0, 'k'},
        {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
    const char *to = NULL, *lora = NULL, *type = "f32", *tokp = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 't': to = optarg; break;
        case 'l': lora = optarg; break;
        case 'y': type = optarg; break;
        case 'k': tokp = optarg; break;
        case 'h': printf("usage: raftlm convert %s\n", USAGE); return 0;
        default: return cli_usage("convert", USAGE);
        }
    }
    if (optind + 2 != argc || !to) return cli_usage("convert", USAGE);
    int gguf = strcmp(to, "gguf") == 0;
    int gtype = !strcmp(type, "f32") ? 0 : !strcmp(type, "f16") ? 1 : !strcmp(type, "q8_0") ? 8 : !strcmp(type, "q4_0") ? 2
              : !strcmp(type, "q4_k") ? 12 : !strcmp(type, "q6_k") ? 14 : -1;
    if ((!gguf && strcmp(to, "hf") != 0) || gtype < 0) {
        fprintf(stderr, "raftlm: convert: --to hf|gguf, --type f32|f16|q8_0|q4_0|q4_k|q6_k\n");
        return 2;
    }
    rl_error err = {0};
    cli_model cm;
    if (cli_model_open(&cm, argv[optind], lora, NULL, 1, &err)) return cli_report(&err);
    if (cm.has_lora) rl_lora_merge(&cm.model);
    rl_status s;
    if (gguf) {
        cli_vocab vb = {0};
        s = tokp ? cli_vocab_load(&vb, tokp, cm.model.cfg.vocab_size, &err) : RL_OK;
        if (!s) s = rl_model_save_gguf(&cm.model, argv[optind + 1], gtype, tokp ? &vb.v : NULL, &err);
        if (tokp) cli_vocab_free(&vb);
    } else {
        s = rl_model_save_hf(&cm.model, argv[optind + 1], &err);
        // the tokenizer goes beside the weights: --tokenizer, or the one a folder or GGUF file holds
        const char *in = argv[optind];
        char ext[16];
        rl_path_ext(in, ext, sizeof ext);
        if (!s) cli_save_tokenizer(tokp ? tokp : (rl_path_is_dir(in) || !strcmp(ext, "gguf")) ? in : NULL, argv[optind + 1]);
    }
    if (!s) rl_info("wrote %s (%s, %d layers%s)", argv[optind + 1], cm.model.cfg.arch, cm.model.cfg.n_layers, lora ? ", LoRA merged" : "");
    cli_model_close(&cm);
    return s ? cli_report(&err) : 0;
}
