/* cmd_convert.c - `raftlm convert IN OUT --to hf|gguf [--type f32|f16|q8_0] [--lora DIR]
 * [--tokenizer tokenizer.bin]`: reads any model raftlm loads (llama2.c checkpoint, HF folder,
 * GGUF) and writes it as a Hugging Face folder or a GGUF file; with --lora the adapter is
 * folded into the weights (a merged model). For GGUF, a llama2.c tokenizer.bin given with
 * --tokenizer becomes the file's tokenizer.ggml.* vocabulary (pieces with U+2581 for spaces). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char *USAGE = "IN OUT --to hf|gguf [--type f32|f16|q8_0] [--lora DIR] [--tokenizer tokenizer.bin]";

typedef struct {
    rl_gguf_vocab v;
    char **tokens;
    float *scores;
    int32_t *types;
} vocab_buf;

static void vocab_free(vocab_buf *vb) {
    for (int i = 0; vb->tokens && i < vb->v.n; i++) free(vb->tokens[i]);
    free(vb->tokens);
    free(vb->scores);
    free(vb->types);
}

/* llama2.c tokenizer.bin: int32 max_len, then per token float score, int32 len, bytes. */
static rl_status vocab_from_llama2c(vocab_buf *vb, const char *path, int n_vocab, rl_error *err) {
    memset(vb, 0, sizeof *vb);
    char *d = NULL;
    size_t len = 0, at = 4;
    rl_status s = rl_file_read(path, 64u << 20, &d, &len, err);
    if (s) return s;
    vb->tokens = rl_xcalloc((size_t)n_vocab, sizeof *vb->tokens);
    vb->scores = rl_xcalloc((size_t)n_vocab, sizeof *vb->scores);
    vb->types = rl_xcalloc((size_t)n_vocab, sizeof *vb->types);
    for (int i = 0; i < n_vocab && !s; i++) {
        int32_t n;
        if (len < 8 || at > len - 8) {
            s = rl_fail(err, RL_EFORMAT, "%s: truncated at token %d (a llama2.c tokenizer.bin of %d tokens?)", path, i, n_vocab);
            break;
        }
        memcpy(&vb->scores[i], d + at, 4);
        memcpy(&n, d + at + 4, 4);
        at += 8;
        if (n < 0 || (size_t)n > len - at) {
            s = rl_fail(err, RL_EFORMAT, "%s: token %d has a bad length", path, i);
            break;
        }
        rl_buf b = {0};
        for (int k = 0; k < n; k++) {
            if (d[at + k] == ' ') rl_buf_puts(&b, "\xE2\x96\x81");
            else rl_buf_putc(&b, d[at + k]);
        }
        vb->tokens[i] = b.data ? rl_buf_take(&b) : rl_xstrdup("");
        at += (size_t)n;
        vb->types[i] = i == 0 ? 2 : (i <= 2 ? 3 : (i <= 258 && !strncmp(vb->tokens[i], "<0x", 3) ? 6 : 1));
        vb->v.n = i + 1;
    }
    free(d);
    vb->v.model = "llama";
    vb->v.tokens = (const char **)vb->tokens;
    vb->v.scores = vb->scores;
    vb->v.types = vb->types;
    vb->v.bos = 1, vb->v.eos = 2, vb->v.unk = 0;
    if (s) vocab_free(vb);
    return s;
}

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
    int gtype = !strcmp(type, "f32") ? 0 : !strcmp(type, "f16") ? 1 : !strcmp(type, "q8_0") ? 8 : -1;
    if ((!gguf && strcmp(to, "hf") != 0) || gtype < 0) {
        fprintf(stderr, "raftlm: convert: --to hf|gguf, --type f32|f16|q8_0\n");
        return 2;
    }
    rl_error err = {0};
    cli_model cm;
    if (cli_model_open(&cm, argv[optind], lora, NULL, 1, &err)) return cli_report(&err);
    if (cm.has_lora) rl_lora_merge(&cm.model);
    rl_status s;
    if (gguf) {
        vocab_buf vb = {0};
        s = tokp ? vocab_from_llama2c(&vb, tokp, cm.model.cfg.vocab_size, &err) : RL_OK;
        if (!s) s = rl_model_save_gguf(&cm.model, argv[optind + 1], gtype, tokp ? &vb.v : NULL, &err);
        if (tokp) vocab_free(&vb);
    } else {
        s = rl_model_save_hf(&cm.model, argv[optind + 1], &err);
    }
    if (!s) rl_info("wrote %s (%s, %d layers%s)", argv[optind + 1], cm.model.cfg.arch, cm.model.cfg.n_layers, lora ? ", LoRA merged" : "");
    cli_model_close(&cm);
    return s ? cli_report(&err) : 0;
}
