/* cmd_run.c - `raftlm run`: every stage of the project from one raftlm.yaml, in order:
 * ingest, synth, pretrain, dsf, train, eval, export (pretrain and dsf only when the config
 * enables them: a student trained from scratch, and the RAFT paper's baseline).
 *
 * ingest and synth are incremental by themselves (unchanged files are not read, chunks already
 * asked about are not asked again), so they always run and cost little when nothing changed.
 * train, eval and export are skipped when the fingerprint of their inputs (the config file,
 * the training data, the trained model) is the one of their last successful run, recorded in
 * <output_dir>/run_state.json (written atomically after each stage). So a touched document
 * reruns exactly what depends on it. --from / --only / --force override. */
#include <dirent.h>
#include <getopt.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/project.h"
#include "train/train.h"

static const char *usage_text =
    "[-c raftlm.yaml] [--from STAGE] [--only STAGE] [--force]\n\n"
    "Runs the stages ingest, synth, pretrain, dsf, train, eval, export in order. ingest and synth only\n"
    "do what is new; the others are skipped when their inputs have not changed since their last run\n"
    "(<output_dir>/run_state.json). Stages without what they need (no base_model: no train) are skipped.\n"
    "  --from STAGE   start at this stage (the earlier ones are taken as they are)\n"
    "  --only STAGE   run just this stage\n"
    "  --force        run the stages even when their inputs are unchanged\n";

enum { ST_INGEST, ST_SYNTH, ST_PRETRAIN, ST_DSF, ST_TRAIN, ST_EVAL, ST_EXPORT, N_STAGES };
static const char *const stage_names[N_STAGES] = {"ingest", "synth", "pretrain", "dsf", "train", "eval", "export"};
#define STAGE_LIST "ingest, synth, pretrain, dsf, train, eval, export"

static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* A training stage (folder dir) killed half-way resumes from its newest checkpoint when it runs
 * again for the same inputs: the folder keeps the fingerprint its checkpoints were made for
 * (run_fingerprint). Checkpoints made for other inputs (or all, with --force) are removed before
 * it starts afresh. Returns 1 to resume. */
static int resume_or_start_afresh(const char *dir, const char *fp, int force) {
    char *path = rl_path_join(dir, "run_fingerprint"), *prev = NULL;
    size_t len;
    int same = !force && rl_file_read(path, 0, &prev, &len, NULL) == RL_OK && strcmp(prev, fp) == 0;
    rl_error err;
    if (!same && (rl_train_clear_checkpoints(dir, &err) || rl_mkdir_p(dir, &err) || rl_file_write_atomic(path, fp, strlen(fp), &err)))
        rl_warn("%s", err.msg);
    free(prev), free(path);
    return same;
}

/* sha256 of some files' contents (absent files count as empty), as hex. */
static void hash_files(const char *const *paths, int n, const char *extra, char out[65]) {
    rl_buf all = {0};
    for (int i = 0; i < n; i++) {
        char *data;
        size_t len;
        char h[65] = "absent";
        if (paths[i] && rl_file_read(paths[i], 0, &data, &len, NULL) == RL_OK) {
            rl_sha256_hex(data, len, h);
            free(data);
        }
        rl_buf_printf(&all, "%s=%s;", paths[i] ? paths[i] : "-", h);
    }
    if (extra) rl_buf_puts(&all, extra);
    rl_sha256_hex(all.data ? all.data : "", all.len, out);
    rl_buf_free(&all);
}

/* Adds what identifies a model's files to b: each file of path (a file, or the files of a
 * folder) by its sha256 when under 64 MB, else by size and modification time (hashing
 * gigabytes on every run would cost more than the eval it might skip). */
static void fingerprint_path(rl_buf *b, const char *path) {
    if (!path) return;
    struct stat st;
    if (stat(path, &st) != 0) {
        rl_buf_printf(b, "%s=absent;", path);
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        char **names = NULL;
        size_t n = 0;
        while (d && (e = readdir(d)))
            if (e->d_name[0] != '.') names = rl_xrealloc(names, (n + 1) * sizeof *names), names[n++] = rl_xstrdup(e->d_name);
        if (d) closedir(d);
        if (n) qsort(names, n, sizeof *names, cmp_name);
        for (size_t i = 0; i < n; i++) {
            char *f = rl_path_join(path, names[i]);
            if (!rl_path_is_dir(f)) fingerprint_path(b, f); /* checkpoints/ and the like are not the model */
            free(f);
            free(names[i]);
        }
        free(names);
        return;
    }
    char h[65] = "";
    char *data;
    size_t len;
    if (st.st_size < (64 << 20) && rl_file_read(path, 0, &data, &len, NULL) == RL_OK) {
        rl_sha256_hex(data, len, h);
        free(data);
        rl_buf_printf(b, "%s=%s;", path, h);
    } else {
        rl_buf_printf(b, "%s=%lld@%lld.%09ld;", path, (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    }
}

/* Runs a verb in this process, as `raftlm VERB ARGS...` would. */
static int run_verb(int (*fn)(int, char **), const char *verb, ...) {
    char *argv[16];
    int argc = 0;
    argv[argc++] = (char *)verb;
    va_list ap;
    va_start(ap, verb);
    const char *a;
    while ((a = va_arg(ap, const char *)) && argc < 15) argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    optind = 0; /* glibc: a full reset of getopt's state */
    return fn(argc, argv);
}

/* What pretraining reads from the store: every ingested file's content hash, in path order. */
static char *corpus_fingerprint(const char *db_path) {
    sqlite3 *db;
    rl_buf all = {0};
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(db, "SELECT path, sha256 FROM files ORDER BY path", -1, &st, NULL) == SQLITE_OK) {
            while (sqlite3_step(st) == SQLITE_ROW)
                rl_buf_printf(&all, "%s=%s;", (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1));
            sqlite3_finalize(st);
        }
    }
    sqlite3_close(db);
    char *hex = rl_xmalloc(65);
    rl_sha256_hex(all.data ? all.data : "", all.len, hex);
    rl_buf_free(&all);
    return hex;
}

/* CPU time of this process so far: on a shared machine, CPU seconds say more about a stage's
 * cost than wall seconds (though spinning BLAS threads count too). */
static double cpu_seconds(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

static int stage_index(const char *name) {
    for (int i = 0; i < N_STAGES; i++)
        if (strcmp(name, stage_names[i]) == 0) return i;
    return -1;
}

int cmd_run(int argc, char **argv) {
    static const struct option opts[] = {{"config", required_argument, 0, 'c'}, {"from", required_argument, 0, 'f'},
                                         {"only", required_argument, 0, 'o'},   {"force", no_argument, 0, 'F'},
                                         {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    const char *config = "raftlm.yaml", *from = NULL, *only = NULL;
    int force = 0, c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'f': from = optarg; break;
        case 'o': only = optarg; break;
        case 'F': force = 1; break;
        case 'h': printf("usage: raftlm run %s", usage_text); return 0;
        default: return cli_usage("run", usage_text);
        }
    }
    int first = 0, last = N_STAGES - 1;
    if (from && (first = stage_index(from)) < 0) {
        fprintf(stderr, "raftlm: unknown stage '%s' (" STAGE_LIST ")\n", from);
        return 2;
    }
    if (only) {
        if ((first = stage_index(only)) < 0) {
            fprintf(stderr, "raftlm: unknown stage '%s' (" STAGE_LIST ")\n", only);
            return 2;
        }
        last = first;
    }
    char *cfg_path = rl_xstrdup(config);
    rl_error err = {0};
    rl_config cfg;
    char *db_path;
    if (cli_project_open(cfg_path, NULL, &cfg, &db_path, &err)) {
        free(cfg_path);
        return cli_report(&err);
    }
    if (rl_mkdir_p(cfg.output_dir, &err)) {
        free(cfg_path), free(db_path), rl_config_free(&cfg);
        return cli_report(&err);
    }
    char *state_path = rl_path_join(cfg.output_dir, "run_state.json");
    char *text;
    size_t len;
    json_t *state = NULL;
    if (rl_file_read(state_path, 0, &text, &len, NULL) == RL_OK) {
        state = json_loadb(text, len, 0, NULL);
        free(text);
    }
    if (!json_is_object(state)) {
        json_decref(state);
        state = json_object();
    }
    char *ds_dir = rl_path_join(cfg.output_dir, "datasets"), *train_dir = rl_path_join(cfg.output_dir, "train");
    char *export_dir = rl_path_join(cfg.output_dir, "export");
    char *train_ds = rl_path_join(ds_dir, "raft_train.jsonl"), *eval_q = rl_path_join(ds_dir, "eval_test.jsonl");
    char *adapter = rl_path_join(train_dir, "adapter_model.safetensors"), *full = rl_path_join(train_dir, "model.safetensors");
    char *eval_out = rl_path_join(cfg.output_dir, "eval.json"), *report_out = rl_path_join(cfg.output_dir, "report.html");
    /* the from-scratch student's stages: their inputs and what they write */
    char *raft_val = rl_path_join(ds_dir, "raft_validation.jsonl"), *raft_test = rl_path_join(ds_dir, "raft_test.jsonl");
    char *base_weights = cfg.base_model ? rl_path_join(cfg.base_model, "model.safetensors") : NULL;
    char *dsf_dir = rl_path_join(cfg.output_dir, "dsf");
    char *corpus_fp = NULL, *shape = NULL; /* the new model's config.json */
    if (cfg.pretrain.model_config)
        shape = rl_path_is_dir(cfg.pretrain.model_config) ? rl_path_join(cfg.pretrain.model_config, "config.json")
                                                          : rl_xstrdup(cfg.pretrain.model_config);
    const char *status[N_STAGES] = {0};
    double seconds[N_STAGES] = {0}, cpu[N_STAGES] = {0}; /* wall and CPU (user + system, all threads) */
    int code = 0;
    for (int st = 0; st < N_STAGES && !code; st++) {
        if (st < first || st > last) {
            status[st] = "not asked";
            continue;
        }
        double t0 = rl_now(), c0 = cpu_seconds();
        char fp[65] = "";
        const char *skip_reason = NULL;
        /* the fingerprint of what the stage reads */
        if (st == ST_PRETRAIN) {
            if (!cfg.pretrain.enabled) skip_reason = "pretrain.enabled is false";
            free(corpus_fp);
            corpus_fp = corpus_fingerprint(db_path);
            const char *in[] = {cfg_path, shape, raft_val, raft_test};
            hash_files(in, 4, corpus_fp, fp);
        } else if (st == ST_DSF) {
            if (!cfg.dsf.enabled) skip_reason = "dsf.enabled is false";
            else if (!cfg.base_model) skip_reason = "no base_model in the config";
            const char *in[] = {cfg_path, train_ds, base_weights};
            hash_files(in, 3, cfg.base_model, fp);
        } else if (st == ST_TRAIN) {
            if (!cfg.base_model) skip_reason = "no base_model in the config";
            const char *in[] = {cfg_path, train_ds, base_weights};
            hash_files(in, 3, cfg.base_model, fp);
        } else if (st == ST_EVAL) {
            /* the config (eval.models, eval.k_sweep, ...), the questions, and every evaluated
             * model's files (the trained result among them) */
            rl_buf models_fp = {0};
            cli_eval_model *em = NULL;
            int n_em = 0;
            rl_error merr = {0};
            if (cli_eval_models(&cfg, NULL, &em, &n_em, &merr) == RL_OK) {
                for (int i = 0; i < n_em; i++) {
                    rl_buf_printf(&models_fp, "model %s;", em[i].name);
                    fingerprint_path(&models_fp, em[i].model);
                    fingerprint_path(&models_fp, em[i].lora);
                    fingerprint_path(&models_fp, em[i].tokenizer);
                }
                cli_eval_models_free(em, n_em);
            } else {
                rl_buf_printf(&models_fp, "models: %s;", merr.msg); /* eval itself reports it */
            }
            const char *in[] = {cfg_path, eval_q, cfg.eval.questions, adapter, full, base_weights};
            hash_files(in, 6, models_fp.data, fp);
            rl_buf_free(&models_fp);
            if (!rl_path_exists(eval_q) && !cfg.eval.questions) skip_reason = "no questions (synth wrote no test split)";
        } else if (st == ST_EXPORT) {
            const char *in[] = {adapter, full};
            hash_files(in, 2, NULL, fp);
            if (!cfg.base_model || (!rl_path_exists(adapter) && !rl_path_exists(full))) skip_reason = "nothing trained to export";
        }
        /* what the stage leaves behind: gone (deleted by hand, say), it runs again */
        char *made = st == ST_PRETRAIN ? rl_path_join(cfg.output_dir, "pretrain/model.safetensors")
                   : st == ST_DSF      ? rl_path_join(dsf_dir, "model.safetensors")
                   : st == ST_EVAL     ? rl_xstrdup(eval_out)
                   : st == ST_EXPORT   ? rl_xstrdup(export_dir)
                                       : NULL;
        int outputs_there = st == ST_TRAIN ? rl_path_exists(adapter) || rl_path_exists(full) : !made || rl_path_exists(made);
        free(made);
        json_t *prev = json_object_get(json_object_get(state, stage_names[st]), "fingerprint");
        if (!skip_reason && fp[0] && !force && json_is_string(prev) && strcmp(json_string_value(prev), fp) == 0) {
            if (outputs_there) skip_reason = "inputs unchanged";
            else rl_info("== %s: its inputs are unchanged but its outputs are gone: running it again", stage_names[st]);
        }
        if (skip_reason) {
            status[st] = skip_reason;
            rl_info("== %s: skipped (%s)", stage_names[st], skip_reason);
            continue;
        }
        rl_info("== %s", stage_names[st]);
        int rc = 0;
        switch (st) {
        case ST_INGEST: rc = run_verb(cmd_ingest, "ingest", "-c", cfg_path, NULL); break;
        case ST_SYNTH: rc = run_verb(cmd_synth, "synth", "-c", cfg_path, NULL); break;
        case ST_PRETRAIN:
        case ST_DSF:
        case ST_TRAIN: {
            char *dir = st == ST_PRETRAIN ? rl_path_join(cfg.output_dir, "pretrain") : rl_xstrdup(st == ST_DSF ? dsf_dir : train_dir);
            const char *resume = resume_or_start_afresh(dir, fp, force) ? "--resume" : NULL;
            free(dir);
            if (st == ST_TRAIN) rc = run_verb(cmd_train, "train", "-c", cfg_path, resume, NULL);
            else rc = run_verb(cmd_train, "train", "-c", cfg_path, "--stage", st == ST_PRETRAIN ? "pretrain" : "dsf", resume, NULL);
            break;
        }
        case ST_EVAL: {
            /* eval.models, else the base model and the trained result (or retrieval only); eval
             * writes report.html and report.json beside eval.json */
            int saved = dup(STDOUT_FILENO);
            FILE *f = fopen(eval_out, "w");
            if (f && saved >= 0) {
                fflush(stdout);
                dup2(fileno(f), STDOUT_FILENO);
            }
            rc = run_verb(cmd_eval, "eval", "-c", cfg_path, "--json", NULL);
            fflush(stdout);
            if (f && saved >= 0) {
                dup2(saved, STDOUT_FILENO);
                close(saved);
            }
            if (f) fclose(f);
            if (!rc) rl_info("eval results: %s, report: %s", eval_out, report_out);
            break;
        }
        case ST_EXPORT: {
            rc = run_verb(cmd_export, "export", "-c", cfg_path, "--to", "gguf", NULL);
            if (!rc) rc = run_verb(cmd_export, "export", "-c", cfg_path, "--to", "hf", NULL);
            if (!rc) rl_info("exported to %s/ (the PEFT adapter stays in %s)", export_dir, train_dir);
            break;
        }
        }
        seconds[st] = rl_now() - t0, cpu[st] = cpu_seconds() - c0;
        if (rc) {
            status[st] = "FAILED";
            code = rc;
            break;
        }
        status[st] = "ran";
        /* record the success (ingest and synth record when they last ran) */
        json_t *rec = json_pack("{s:s, s:f, s:f, s:i}", "fingerprint", fp, "seconds", seconds[st], "cpu_seconds", cpu[st], "at",
                                (json_int_t)time(NULL));
        json_object_set_new(state, stage_names[st], rec);
        char *dump = json_dumps(state, JSON_INDENT(2));
        if (rl_file_write_atomic(state_path, dump, strlen(dump), &err)) rl_warn("%s", err.msg);
        free(dump);
    }
    fprintf(stderr, "\nraftlm run: %s\n", code ? "stopped at a failed stage" : "done");
    for (int st = 0; st < N_STAGES; st++) {
        fprintf(stderr, "  %-7s %-44s", stage_names[st], status[st] ? status[st] : "not reached");
        if (seconds[st] > 0) fprintf(stderr, " %7.1f s (cpu %.1f s)", seconds[st], cpu[st]);
        fprintf(stderr, "\n");
    }
    fprintf(stderr, "  outputs: store %s, datasets %s/, model %s/, eval %s, report %s, export %s/\n", db_path, ds_dir, train_dir, eval_out,
            report_out, export_dir);
    if (cfg.pretrain.enabled) fprintf(stderr, "  pretrained base model %s/\n", cfg.base_model);
    if (cfg.dsf.enabled) fprintf(stderr, "  DSF baseline %s/\n", dsf_dir);
    free(raft_val), free(raft_test), free(base_weights), free(dsf_dir), free(corpus_fp), free(shape);
    json_decref(state);
    free(state_path), free(ds_dir), free(train_dir), free(export_dir), free(train_ds), free(eval_q), free(adapter), free(full), free(eval_out), free(report_out);
    free(db_path);
    free(cfg_path);
    rl_config_free(&cfg);
    return code;
}
