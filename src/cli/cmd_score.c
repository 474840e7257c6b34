/* cmd_score.c - `raftlm score`: the negative log-likelihood (natural log) of each token given
 * the ones before it, and their mean. nll[i] belongs to tokens[i+1]; the first token (BOS when
 * --text is encoded) has none. --json prints {"tokens":[...], "nll":[...], "mean_nll": x}. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char *USAGE = "--model PATH [--tokenizer PATH] [--lora DIR] (--text TEXT | --tokens 1,2,3) [--json] [--threads N]";

int cmd_score(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"tokenizer", required_argument, 0, 'k'},
        {"lora", required_argument, 0, 'l'},  {"text", required_argument, 0, 'x'},
        {"tokens", required_argument, 0, 'i'}, {"json", no_argument, 0, 'J'},
        {"threads", required_argument, 0, 'j'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *model = NULL, *tokp = NULL, *lora = NULL, *text = NULL, *tokens = NULL;
    int json = 0, c;
    long threads = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'm': model = optarg; break;
        case 'k': tokp = optarg; break;
        case 'l': lora = optarg; break;
        case 'x': text = optarg; break;
        case 'i': tokens = optarg; break;
        case 'J': json = 1; break;
        case 'j': threads = strtol(optarg, &end, 10); if (*end) return cli_usage("score", USAGE); break;
        case 'h': printf("usage: raftlm score %s\n", USAGE); return 0;
        default: return cli_usage("score", USAGE);
        }
    }
    if (!model || optind < argc || !!text == !!tokens) return cli_usage("score", USAGE);
    if (!tokp) tokp = cli_model_tokenizer(model); // an HF folder carries its tokenizer
    if (text && !tokp) {
        fprintf(stderr, "raftlm: score: --text needs --tokenizer (or give --tokens)\n");
        return 2;
    }
    rl_error err = {0};
    cli_model cm;
    if (cli_model_open(&cm, model, lora, tokp, (int)threads, &err)) return cli_report(&err);
    int32_t *ids = NULL;
    size_t n = 0;
    rl_status s = tokens ? cli_parse_tokens(tokens, &ids, &n, &err) : cli_encode_prompt(&cm, text, &ids, &n, &err);
    if (!s && n < 2) s = rl_fail(&err, RL_EINVAL, "score: need at least two tokens, got %zu", n);
    if (!s && cm.model.cfg.max_seq_len > 0 && n > (size_t)cm.model.cfg.max_seq_len)
        s = rl_fail(&err, RL_EINVAL, "score: %zu tokens exceed the model's context (%d)", n, cm.model.cfg.max_seq_len);
    rl_acts a = {0};
    int *tgt = NULL;
    float mean = 0;
    if (!s) s = rl_acts_init_ex(&a, &cm.model, 1, (int)n, RL_ACTS_CHECKPOINT | RL_ACTS_CHUNKED_LOGITS, &err); // losses only
    if (!s) {
        tgt = rl_xmalloc(n * sizeof *tgt);
        for (size_t i = 0; i + 1 < n; i++) tgt[i] = ids[i + 1];
        tgt[n - 1] = -100;
        s = rl_model_forward(&cm.model, &a, ids, tgt, NULL, NULL, 1, (int)n, &mean, &err);
    }
    if (!s) {
        if (json) {
            printf("{\"tokens\":[");
            for (size_t i = 0; i < n; i++) printf("%s%d", i ? "," : "", ids[i]);
            printf("],\"nll\":[");
            for (size_t i = 0; i + 1 < n; i++) printf("%s%.9g", i ? "," : "", a.losses[i]);
            printf("],\"mean_nll\":%.9g}\n", mean);
        } else {
            for (size_t i = 0; i + 1 < n; i++) {
                size_t pl = 0;
                const char *piece = cm.tok ? rl_tok_piece(cm.tok, ids[i + 1], &pl) : NULL;
                printf("%d\t%.*s\t%.6f\n", ids[i + 1], piece ? (int)pl : 0, piece ? piece : "", a.losses[i]);
            }
            printf("mean_nll\t%.6f\n", mean);
        }
    }
    free(tgt);
    free(ids);
    rl_acts_free(&a);
    cli_model_close(&cm);
    return s ? cli_report(&err) : 0;
}
