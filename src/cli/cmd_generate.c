/* cmd_generate.c - `raftlm generate`: runs a model from a prompt and prints only the generated
 * text on stdout (logs go to stderr). Greedy at --temp 0, else sampling from --seed with the
 * server's sampler (rl_sampler: --top-k, --top-p, --min-p, --repeat-penalty, in llama.cpp's order).
 * -n counts new tokens; generation also stops at BOS/EOS (llama2.c stops at BOS) or at the
 * model's context length. Without --tokenizer, token ids are printed, one per line. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "infer/infer.h"

static const char *USAGE =
    "--model PATH [--tokenizer PATH] [--lora DIR] [--prompt TEXT | --tokens 1,2,3] [-n N] [--temp T] [--seed S] "
    "[--top-k K] [--top-p P] [--min-p P] [--repeat-penalty R] [--threads N]";

int cmd_generate(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"tokenizer", required_argument, 0, 'k'},
        {"lora", required_argument, 0, 'l'},  {"prompt", required_argument, 0, 'p'},
        {"tokens", required_argument, 0, 'i'}, {"temp", required_argument, 0, 't'},
        {"seed", required_argument, 0, 's'},  {"threads", required_argument, 0, 'j'},
        {"top-k", required_argument, 0, 'K'}, {"top-p", required_argument, 0, 'P'},
        {"min-p", required_argument, 0, 'M'}, {"repeat-penalty", required_argument, 0, 'R'},
        {"help", no_argument, 0, 'h'},        {0, 0, 0, 0},
    };
    const char *model = NULL, *tokp = NULL, *lora = NULL, *prompt = NULL, *tokens = NULL;
    long n_new = 256, threads = 0;
    double temp = 1.0, top_p = 1.0, min_p = 0.0, repeat = 1.0;
    long top_k = 0;
    unsigned long long seed = 42;
    int c;
    while ((c = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'm': model = optarg; break;
        case 'k': tokp = optarg; break;
        case 'l': lora = optarg; break;
        case 'p': prompt = optarg; break;
        case 'i': tokens = optarg; break;
        case 'n': n_new = strtol(optarg, &end, 10); if (*end || n_new < 0) return cli_usage("generate", USAGE); break;
        case 't': temp = strtod(optarg, &end); if (*end || temp < 0) return cli_usage("generate", USAGE); break;
        case 's': seed = strtoull(optarg, &end, 10); if (*end) return cli_usage("generate", USAGE); break;
        case 'j': threads = strtol(optarg, &end, 10); if (*end) return cli_usage("generate", USAGE); break;
        case 'K': top_k = strtol(optarg, &end, 10); if (*end || top_k < 0) return cli_usage("generate", USAGE); break;
        case 'P': top_p = strtod(optarg, &end); if (*end) return cli_usage("generate", USAGE); break;
        case 'M': min_p = strtod(optarg, &end); if (*end) return cli_usage("generate", USAGE); break;
        case 'R': repeat = strtod(optarg, &end); if (*end) return cli_usage("generate", USAGE); break;
        case 'h': printf("usage: raftlm generate %s\n", USAGE); return 0;
        default: return cli_usage("generate", USAGE);
        }
    }
    if (!model || optind < argc || (prompt && tokens)) return cli_usage("generate", USAGE);
    if (!tokp) tokp = cli_model_tokenizer(model); // an HF folder carries its tokenizer
    if (prompt && !tokp) {
        fprintf(stderr, "raftlm: generate: --prompt needs --tokenizer (or give --tokens)\n");
        return 2;
    }
    rl_error err = {0};
    cli_model cm;
    if (cli_model_open(&cm, model, lora, tokp, (int)threads, &err)) return cli_report(&err);
    const rl_model_config *cfg = &cm.model.cfg;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    rl_status s = RL_OK;
    if (tokens) s = cli_parse_tokens(tokens, &ids, &n_ids, &err);
    else if (cm.tok) s = cli_encode_prompt(&cm, prompt ? prompt : "", &ids, &n_ids, &err);
    else {
        ids = rl_xmalloc(sizeof *ids);
        ids[0] = cfg->bos_id >= 0 ? cfg->bos_id : 1;
        n_ids = 1;
    }
    if (!s && n_ids == 0) s = rl_fail(&err, RL_EINVAL, "generate: the prompt has no tokens");
    int bos = cm.tok ? rl_tok_bos(cm.tok) : cfg->bos_id, eos = cm.tok ? rl_tok_eos(cm.tok) : cfg->eos_id;
    int32_t stops[16];
    int n_stops = cm.tok ? rl_tok_stop_ids(cm.tok, stops, 16) : 0;
    long max_T = (long)n_ids + n_new;
    if (cfg->max_seq_len > 0 && max_T > cfg->max_seq_len) {
        rl_warn("generate: stopping at the model's context length (%d tokens)", cfg->max_seq_len);
        max_T = cfg->max_seq_len;
    }
    if (!s && (long)n_ids > max_T)
        s = rl_fail(&err, RL_EINVAL, "generate: the prompt (%zu tokens) is longer than the context (%d)", n_ids, cfg->max_seq_len);
    rl_kv kv = {0};
    if (!s) s = rl_kv_init(&kv, &cm.model, (int)max_T, &err);
    rl_sampler_params sp = rl_sampler_defaults();
    sp.temperature = (float)temp, sp.top_k = (int)top_k, sp.top_p = (float)top_p, sp.min_p = (float)min_p;
    sp.repeat_penalty = (float)repeat, sp.seed = seed;
    rl_sampler *sampler = NULL;
    if (!s) s = rl_sampler_new(&sampler, &sp, cfg->vocab_size, &err); // checks the ranges
    for (size_t i = 0; !s && i < n_ids; i++) rl_sampler_accept(sampler, ids[i]);
    rl_tok_stream *st = cm.tok ? rl_tok_stream_new(cm.tok, 1) : NULL;
    rl_buf out = {0};
    double t0 = rl_now();
    int generated = 0;
    if (st && !s)
        for (size_t i = 0; i < n_ids && !s; i++) s = rl_tok_stream_push(st, ids[i], &out, &err); // prompt: state only
    rl_buf_clear(&out);
    int token = ids[0];
    for (long pos = 0; !s && pos < max_T; pos++) {
        int reading_prompt = pos + 1 < (long)n_ids;
        if (!reading_prompt && generated >= n_new) break;
        float *logits;
        if ((s = rl_model_decode(&cm.model, &kv, token, (int)pos, &logits, &err))) break;
        if (reading_prompt) {
            token = ids[pos + 1];
            continue;
        }
        int next = rl_sampler_sample(sampler, logits, NULL, NULL);
        rl_sampler_accept(sampler, next);
        if (next == bos || next == eos) break;
        int stop = 0;
        for (int k = 0; k < n_stops; k++) stop |= next == stops[k];
        if (stop) break;
        generated++;
        if (st) {
            if ((s = rl_tok_stream_push(st, next, &out, &err))) break;
            fwrite(out.data ? out.data : "", 1, out.len, stdout);
            rl_buf_clear(&out);
        } else {
            printf("%d\n", next);
        }
        fflush(stdout);
        token = next;
    }
    if (st) {
        rl_tok_stream_flush(st, &out);
        fwrite(out.data ? out.data : "", 1, out.len, stdout);
        rl_tok_stream_free(st);
    }
    double dt = rl_now() - t0;
    if (!s) rl_info("generated %d tokens in %.2f s (%.1f tokens/s)", generated, dt, dt > 0 ? generated / dt : 0.0);
    rl_buf_free(&out);
    rl_sampler_free(sampler);
    free(ids);
    rl_kv_free(&kv);
    cli_model_close(&cm);
    return s ? cli_report(&err) : 0;
}
