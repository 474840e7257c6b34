/* cmd_synth.c - `raftlm synth`: chunks -> teacher -> verified questions and cited answers ->
 * RAFT examples in <output_dir>/datasets/, or an export in another format. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/project.h"
#include "synth/synth.h"

static const char *usage_text =
    "[-c raftlm.yaml] [--max-examples N] [--export FORMAT OUT.jsonl [--split S]]\n\n"
    "Asks the teacher (teacher: in the config) for questions and cited answers about every chunk,\n"
    "verifies them, and writes RAFT examples to <output_dir>/datasets/raft_{train,validation,test}.jsonl\n"
    "and eval_{validation,test}.jsonl. Resumable: work is saved per chunk; a rerun only does what is new.\n"
    "  -c, --config FILE     project config (default ./raftlm.yaml)\n"
    "  --max-examples N      stop after N accepted questions\n"
    "  --export FORMAT OUT   write the examples as raft, chat, completion, alpaca or eval JSONL\n"
    "  --split S             with --export: train, validation, test or all (default train; eval: test)\n";

static void cli_synth_opts(const rl_config *cfg, rl_synth_opts *o) {
    memset(o, 0, sizeof *o);
    o->questions_per_chunk = cfg->raft.questions_per_chunk;
    o->p = cfg->raft.p;
    o->num_distractors = cfg->raft.num_distractors;
    o->seed = (uint64_t)cfg->raft.seed;
    o->random_distractors = strcmp(cfg->raft.distractors, "random") == 0;
    o->refuse_without_oracle = strcmp(cfg->raft.without_oracle, "refuse") == 0;
    o->refusal_fraction = cfg->raft.refusal_fraction;
    o->counterfactual_copies = cfg->raft.counterfactual_copies;
    o->oracle_alone_fraction = cfg->raft.oracle_alone_fraction;
    o->val_fraction = cfg->raft.val_fraction;
    o->test_fraction = cfg->raft.test_fraction;
    o->dedup_threshold = 0.8;
    o->out_dir = cfg->output_dir;
}

int cmd_synth(int argc, char **argv) {
    static const struct option opts[] = {{"config", required_argument, 0, 'c'}, {"max-examples", required_argument, 0, 'm'},
                                         {"export", required_argument, 0, 'e'}, {"split", required_argument, 0, 's'},
                                         {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    const char *config = NULL, *export_fmt = NULL, *split_name = NULL;
    long long max_examples = 0;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'm': max_examples = atoll(optarg); break;
        case 'e': export_fmt = optarg; break;
        case 's': split_name = optarg; break;
        case 'h': printf("usage: raftlm synth %s", usage_text); return 0;
        default: return cli_usage("synth", usage_text);
        }
    }
    if (export_fmt && optind >= argc) return cli_usage("synth", "--export FORMAT OUT.jsonl   (where should the file go?)");
    rl_error err = {0};
    rl_config cfg;
    char *db_path;
    if (cli_project_open(config, NULL, &cfg, &db_path, &err)) return cli_report(&err);
    int code = 0;
    rl_store *store = NULL;
    rl_teacher *teacher = NULL;
    rl_synth_opts o;
    rl_synth_report rep = {0};
    char *local_model = NULL;
    cli_synth_opts(&cfg, &o);
    o.max_examples = max_examples;
    if (!rl_path_exists(db_path)) {
        rl_fail(&err, RL_ENOTFOUND, "no store at %s: run `raftlm ingest -c %s` first", db_path, cfg.file);
        goto fail;
    }
    if (rl_store_open(&store, db_path, NULL, &err)) goto fail;
    if (strcmp(cfg.teacher.type, "openai") == 0) {
        const char *key = cfg.teacher.api_key_env ? getenv(cfg.teacher.api_key_env) : NULL;
        rl_openai_opts oo = {
            .base_url = cfg.teacher.base_url,
            .model = cfg.teacher.model,
            .api_key = key,
            .max_concurrency = cfg.teacher.max_concurrency,
            .timeout_s = cfg.teacher.timeout_s,
            .max_retries = cfg.teacher.max_retries,
            .retry_base_s = cfg.teacher.retry_base_s,
            .temperature = cfg.teacher.temperature,
            .max_tokens = cfg.teacher.max_tokens,
            .token_budget = cfg.teacher.token_budget,
            .question_prompt = cfg.teacher.question_prompt,
            .answer_prompt = cfg.teacher.answer_prompt,
        };
        if (rl_teacher_openai_new(&teacher, &oo, &err)) {
            rl_error_prefix(&err, "%s", cfg.file);
            goto fail;
        }
        if (!key && strstr(cfg.teacher.base_url, "127.0.0.1") == NULL && strstr(cfg.teacher.base_url, "localhost") == NULL)
            rl_warn("no API key: the environment variable %s is not set", cfg.teacher.api_key_env ? cfg.teacher.api_key_env : "(none)");
    } else if (strcmp(cfg.teacher.type, "local") == 0) {
        /* teacher.model names a model (openai) or a path (local): a path is relative to the config */
        local_model = cfg.teacher.model ? rl_path_join(cfg.dir, cfg.teacher.model) : NULL;
        rl_local_opts lo = {.model = local_model, .tokenizer = cfg.teacher.tokenizer, .temperature = cfg.teacher.temperature,
                            .max_tokens = cfg.teacher.max_tokens, .seed = (uint64_t)cfg.raft.seed, .threads = cfg.threads,
                            .question_prompt = cfg.teacher.question_prompt, .answer_prompt = cfg.teacher.answer_prompt};
        if (rl_teacher_local_new(&teacher, &lo, &err)) goto fail;
    } else if (strcmp(cfg.teacher.type, "extractive") == 0) {
        teacher = rl_teacher_extractive_new();
    } else {
        rl_fail(&err, RL_EUNSUPPORTED, "%s: teacher.type: '%s' is unknown (extractive, openai, local)", cfg.file, cfg.teacher.type);
        goto fail;
    }
    o.teacher_fingerprint = teacher->fingerprint;
    if (export_fmt) {
        rl_export_format fmt;
        if (rl_export_format_parse(export_fmt, &fmt, &err)) goto fail;
        int split = fmt == RL_EXPORT_EVAL ? 2 : 0;
        if (split_name) {
            if (strcmp(split_name, "train") == 0) split = 0;
            else if (strcmp(split_name, "validation") == 0) split = 1;
            else if (strcmp(split_name, "test") == 0) split = 2;
            else if (strcmp(split_name, "all") == 0) split = -1;
            else {
                rl_fail(&err, RL_EINVAL, "--split must be train, validation, test or all, got '%s'", split_name);
                goto fail;
            }
        }
        int64_t n;
        if (rl_synth_export(store, &o, fmt, split, argv[optind], &n, &err)) goto fail;
        rl_info("wrote %lld examples to %s", (long long)n, argv[optind]);
        goto out;
    }
    if (rl_synth_run(store, teacher, &o, &rep, &err)) goto fail;
    rl_info("synth: %lld chunks (%lld asked now, %lld already done) in %.1f s", (long long)rep.chunks_total, (long long)rep.chunks_done_now,
            (long long)rep.chunks_reused, rep.seconds);
    rl_info("questions: %lld, accepted %lld, rejected %lld, near-duplicates dropped %lld", (long long)rep.questions,
            (long long)rep.accepted, (long long)rep.rejected, (long long)rep.duplicates);
    for (int i = 0; i < rep.n_reasons; i++) rl_info("  %-40s %lld", rep.reasons[i], (long long)rep.reason_counts[i]);
    if (strcmp(cfg.teacher.type, "openai") == 0) {
        int64_t reqs, retries, pt, ct;
        rl_teacher_openai_stats(teacher, &reqs, &retries, &pt, &ct);
        double cost = (double)pt * cfg.teacher.price_prompt_per_mtok / 1e6 + (double)ct * cfg.teacher.price_completion_per_mtok / 1e6;
        rl_info("teacher: %lld requests (%lld retries), %lld prompt + %lld completion tokens this run, ~%.4f in cost; "
                "all runs: %lld + %lld tokens",
                (long long)reqs, (long long)retries, (long long)pt, (long long)ct, cost, (long long)rep.prompt_tokens,
                (long long)rep.completion_tokens);
    }
    if (rep.stopped_by_budget) rl_warn("stopped early: teacher.token_budget is spent; rerun (with a larger budget) to continue");
    rl_info("examples: %lld train (%lld counterfactual copies, %lld with the oracle alone), %lld validation, %lld test (%lld refusals)%s",
            (long long)rep.examples[0], (long long)rep.counterfactuals, (long long)rep.oracle_alone, (long long)rep.examples[1],
            (long long)rep.examples[2], (long long)rep.refusals, rep.datasets_written ? "" : "; datasets unchanged");
    if (rep.datasets_written) rl_info("datasets: %s/datasets/", cfg.output_dir);
    goto out;
fail:
    code = cli_report(&err);
out:
    rl_synth_report_free(&rep);
    rl_teacher_free(teacher);
    free(local_model);
    rl_store_close(store);
    free(db_path);
    rl_config_free(&cfg);
    return code;
}
