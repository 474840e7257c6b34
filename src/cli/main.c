/* main.c - raftlm's entry point: global flags, then dispatch to one verb (cmd_<verb>.c). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const rl_cli_verb verbs[] = {
    {"init", cmd_init, "write a commented raftlm.yaml for a new project"},
    {"ingest", cmd_ingest, "documents -> chunks -> store with keyword (BM25) search"},
    {"search", cmd_search, "search the store (BM25)"},
    {"synth", cmd_synth, "chunks -> teacher -> verified questions and cited answers -> RAFT datasets"},
    {"run", cmd_run, "every stage from one raftlm.yaml: ingest, synth, train, eval, export (unchanged ones skipped)"},
    {"eval", cmd_eval, "held-out questions -> retrieval metrics and answer quality (EM, F1, numeric match, citations)"},
    {"generate", cmd_generate, "generate text from a model (greedy or sampled)"},
    {"train", cmd_train, "fine-tune the base model (LoRA or full) on the configured datasets"},
    {"export", cmd_export, "the trained model: merged HF folder or GGUF, or the PEFT adapter"},
    {"convert", cmd_convert, "convert a model to a Hugging Face folder (optionally merging a LoRA adapter)"},
    {"bench", cmd_bench, "benchmarks: training steps against SGEMM; `bench ann`: vector index recall and speed"},
    {"score", cmd_score, "negative log-likelihood of each token of a text under a model"},
    {"tokenize", cmd_tokenize, "text -> token ids (or back) with a model's tokenizer"},
    {"serve", cmd_serve, "OpenAI-compatible HTTP server answering from the knowledge base"},
    {"ask", cmd_ask, "answer a question from the knowledge base (retrieval + the model)"},
    {"quantize", cmd_quantize, "write a model as GGUF with Q8_0 (or F16) matrices"},
};

#define N_VERBS (sizeof verbs / sizeof verbs[0])

static void usage(FILE *out) {
    fprintf(out, "usage: raftlm [--log-level debug|info|warn|error|quiet] [-q] [-v] VERB [ARGS]\n\nverbs:\n");
    for (size_t i = 0; i < N_VERBS; i++) fprintf(out, "  %-10s %s\n", verbs[i].name, verbs[i].summary);
    fprintf(out, "\n'raftlm VERB --help' shows the options of a verb.\n");
}

int cli_report(const rl_error *err) {
    fprintf(stderr, "raftlm: %s\n", err->msg[0] ? err->msg : rl_status_name(err->status));
    return err->status == RL_EINVAL ? 2 : 1;
}

int cli_usage(const char *verb, const char *text) {
    fprintf(stderr, "usage: raftlm %s %s\n", verb, text);
    return 2;
}

int main(int argc, char **argv) {
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            rl_log_set_level(RL_LOG_WARN);
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            rl_log_set_level(RL_LOG_DEBUG);
        } else if (strcmp(a, "--log-level") == 0 && i + 1 < argc) {
            int level = rl_log_level_parse(argv[++i]);
            if (level < 0) {
                fprintf(stderr, "raftlm: unknown log level '%s' (debug, info, warn, error, quiet)\n", argv[i]);
                return 2;
            }
            rl_log_set_level((rl_log_level)level);
        } else if (strcmp(a, "--version") == 0) {
            printf("raftlm 0.1.0\n");
            return 0;
        } else {
            fprintf(stderr, "raftlm: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    for (size_t v = 0; v < N_VERBS; v++)
        if (strcmp(argv[i], verbs[v].name) == 0) {
            optind = 1;
            return verbs[v].run(argc - i, argv + i);
        }
    fprintf(stderr, "raftlm: unknown verb '%s'\n", argv[i]);
    usage(stderr);
    return 2;
}
