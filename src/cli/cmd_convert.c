/* cmd_convert.c - `raftlm convert IN OUT --to hf [--lora DIR]`: reads any model raftlm loads
 * (llama2.c checkpoint, HF folder) and writes it as a Hugging Face folder; with --lora the
 * adapter is folded into the weights (a merged model). GGUF output is not written yet. */
#include <getopt.h>
#include <string.h>

#include "cli/cli.h"

static const char *USAGE = "IN OUT --to hf [--lora DIR]";

int cmd_convert(int argc, char **argv) {
    static const struct option opts[] = {
        {"to", required_argument, 0, 't'}, {"lora", required_argument, 0, 'l'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *to = NULL, *lora = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 't': to = optarg; break;
        case 'l': lora = optarg; break;
        case 'h': printf("usage: raftlm convert %s\n", USAGE); return 0;
        default: return cli_usage("convert", USAGE);
        }
    }
    if (optind + 2 != argc || !to) return cli_usage("convert", USAGE);
    if (strcmp(to, "hf") != 0) {
        fprintf(stderr, "raftlm: convert: --to %s is not supported yet (hf)\n", to);
        return 2;
    }
    rl_error err = {0};
    cli_model cm;
    if (cli_model_open(&cm, argv[optind], lora, NULL, 1, &err)) return cli_report(&err);
    if (cm.has_lora) rl_lora_merge(&cm.model);
    rl_status s = rl_model_save_hf(&cm.model, argv[optind + 1], &err);
    if (!s) rl_info("wrote %s (%s, %d layers%s)", argv[optind + 1], cm.model.cfg.arch, cm.model.cfg.n_layers, lora ? ", LoRA merged" : "");
    cli_model_close(&cm);
    return s ? cli_report(&err) : 0;
}
