/* cmd_eval.c - `raftlm eval`: retrieval metrics and answering quality on held-out questions,
 * for one or several models, with a sweep over k, and the report.
 *
 * Questions come from --questions FILE.jsonl or the synthesized test split
 * (<output_dir>/datasets/eval_test.jsonl). The answering modes generate greedily with each
 * model (cli_eval_models: the flags, eval.models, or base_model and the trained result) in the
 * layout it was trained on: the model's chat template when it has one, else BOS + prompt +
 * "\n" (as the trainer's raft format). Models are evaluated one after the other (each loaded
 * once); the tasks of one question (modes, the k of the sweep) run back to back so the
 * generator's cache reuses their common prompt prefix. Every answer goes to
 * <output_dir>/eval_answers.jsonl; the summary, curves and a sample to report.json/.html. */
#include <cblas.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/project.h"
#include "eval/eval.h"
#include "eval/report.h"
#include "infer/infer.h"

static const char *usage_text =
    "[-c raftlm.yaml] [--questions FILE.jsonl] [--modes retrieval,closed_book,rag,oracle] [-k K] [--k-sweep 1,3,5]\n"
    "          [--model PATH [--tokenizer PATH] [--lora DIR] [--name NAME]] [--max-questions N] [--max-new-tokens N]\n"
    "          [--parallel N] [--samples N] [--no-report] [--json]\n\n"
    "Evaluates on held-out questions (default: <output_dir>/datasets/eval_test.jsonl from `raftlm synth`; any JSONL\n"
    "with question, answer and optional oracle_doc works). Modes: retrieval (recall@1/3/5, MRR, nDCG@10 of the\n"
    "oracle document), closed_book (the question alone), rag (the retrieved top-k chunks in the RAFT layout),\n"
    "oracle (the oracle chunk among distractors). Answers are scored by exact match, token F1, numeric match,\n"
    "citation validity and refusal rate. Models: --model/--lora (one), else eval.models, else base_model and the\n"
    "trained result. --k-sweep (or eval.k_sweep) runs rag and recall@k for each k. Results are stored in the\n"
    "project store, every answer in <output_dir>/eval_answers.jsonl, and the report in <output_dir>/report.html\n"
    "and report.json (--no-report: not written; --samples N questions shown, default 6). --parallel N (or\n"
    "eval.parallel) answers N questions at once (default: one per core). --json prints one object.\n";

/* ---- which models ----------------------------------------------------------------------------- */

static int has_file(const char *dir, const char *name) {
    char *p = rl_path_join(dir, name);
    int ok = rl_path_exists(p);
    free(p);
    return ok;
}

/* A tokenizer that travels with a model: a folder holding tokenizer.json, or a .gguf file. */
static int tokenizer_beside(const char *model) {
    char ext[16];
    rl_path_ext(model, ext, sizeof ext);
    return rl_path_is_dir(model) ? has_file(model, "tokenizer.json") : strcmp(ext, "gguf") == 0;
}

/* The base of a PEFT adapter folder: its base_model_name_or_path when that exists here. */
static char *adapter_base(const char *dir) {
    char *p = rl_path_join(dir, "adapter_config.json"), *text, *base = NULL;
    size_t len;
    if (rl_file_read(p, 1 << 20, &text, &len, NULL) == RL_OK) {
        json_t *j = json_loadb(text, len, 0, NULL);
        const char *b = json_string_value(json_object_get(j, "base_model_name_or_path"));
        if (b && *b && rl_path_exists(b)) base = rl_xstrdup(b);
        json_decref(j);
        free(text);
    }
    free(p);
    return base;
}

static rl_status resolve_model(const rl_config *cfg, const char *label, const char *name, const char *model, const char *lora,
                               const char *tok, cli_eval_model *out, rl_error *err) {
    memset(out, 0, sizeof *out);
    if (!model) model = cfg->base_model;
    if (!model) return rl_fail(err, RL_EINVAL, "%s: no model (give model:, or set base_model)", label);
    if (!rl_path_exists(model)) return rl_fail(err, RL_ENOTFOUND, "%s: %s does not exist", label, model);
    char *base = NULL;
    if (rl_path_is_dir(model) && has_file(model, "adapter_config.json") && !has_file(model, "config.json")) {
        /* a PEFT adapter folder (e.g. out/train after LoRA training): the adapter on its base */
        if (lora) return rl_fail(err, RL_EINVAL, "%s: %s is an adapter folder; give it as lora: with the base as model:", label, model);
        lora = model;
        model = base = adapter_base(lora);
        if (!model) model = cfg->base_model;
        if (!model) return rl_fail(err, RL_EINVAL, "%s: the adapter %s needs its base model: set base_model", label, lora);
    }
    if (!tok) tok = tokenizer_beside(model)                                     ? model
                    : cfg->tokenizer                                             ? cfg->tokenizer
                    : cfg->base_model && tokenizer_beside(cfg->base_model) ? cfg->base_model
                                                                                 : NULL;
    if (!tok) {
        free(base);
        return rl_fail(err, RL_EINVAL, "%s: no tokenizer for %s (give tokenizer:, or set tokenizer in the config)", label, model);
    }
    out->name = rl_xstrdup(name ? name : rl_path_basename(lora ? lora : model));
    out->model = rl_xstrdup(model);
    out->lora = lora ? rl_xstrdup(lora) : NULL;
    out->tokenizer = rl_xstrdup(tok);
    free(base);
    return RL_OK;
}

void cli_eval_models_free(cli_eval_model *m, int n) {
    for (int i = 0; i < n; i++) free(m[i].name), free(m[i].model), free(m[i].lora), free(m[i].tokenizer);
    free(m);
}

rl_status cli_eval_models(const rl_config *cfg, const cli_eval_flags *fl, cli_eval_model **out, int *n, rl_error *err) {
    *out = NULL;
    *n = 0;
    cli_eval_model *m = rl_xcalloc((size_t)cfg->eval.n_models + 2, sizeof *m);
    int k = 0;
    rl_status s = RL_OK;
    if (fl && (fl->model || fl->lora)) {
        s = resolve_model(cfg, "--model", fl->name, fl->model, fl->lora, fl->tokenizer, &m[k], err);
        if (!s) k++;
    } else if (cfg->eval.n_models > 0) {
        for (int i = 0; i < cfg->eval.n_models && !s; i++) {
            const rl_eval_model_cfg *e = &cfg->eval.models[i];
            char label[64];
            snprintf(label, sizeof label, "eval.models[%d]", i);
            s = resolve_model(cfg, label, e->name, e->model, e->lora, e->tokenizer, &m[k], err);
            if (!s) k++;
        }
    } else if (cfg->base_model) {
        /* the base (unless it is only a shape to train from scratch), and what training made */
        if (!cfg->base_model_init || strcmp(cfg->base_model_init, "random") != 0) {
            s = resolve_model(cfg, "base_model", "base", cfg->base_model, NULL, fl ? fl->tokenizer : NULL, &m[k], err);
            if (!s) k++;
        }
        char *train = rl_path_join(cfg->output_dir, "train");
        const char *trained_name = cfg->n_datasets == 0 ? "raft" : "trained"; /* the default data is RAFT's */
        /* what `adapter` says training writes (a folder may hold a stale result of the other kind) */
        int full = cfg->adapter && strcmp(cfg->adapter, "full") == 0;
        int has_adapter = has_file(train, "adapter_config.json") && has_file(train, "adapter_model.safetensors");
        int has_full = has_file(train, "config.json") && has_file(train, "model.safetensors");
        if (!s && has_adapter && !(full && has_full)) {
            s = resolve_model(cfg, "the trained adapter", trained_name, NULL, train, fl ? fl->tokenizer : NULL, &m[k], err);
            if (!s) k++;
        } else if (!s && has_full) {
            s = resolve_model(cfg, "the trained model", trained_name, train, NULL, fl ? fl->tokenizer : NULL, &m[k], err);
            if (!s) k++;
        }
        free(train);
    }
    for (int i = 0; i < k && !s; i++)
        for (int j = 0; j < i && !s; j++)
            if (strcmp(m[i].name, m[j].name) == 0) s = rl_fail(err, RL_EINVAL, "two models named '%s': give each a name", m[i].name);
    if (s) {
        cli_eval_models_free(m, k);
        return s;
    }
    *out = m;
    *n = k;
    return RL_OK;
}

/* ---- greedy generation (src/infer) ------------------------------------------------------------ */

/* One worker's generator: its own context (cache) over the shared model and tokenizer. */
typedef struct gen_ctx {
    const cli_model *cm;
    rl_infer *inf;
    int max_new;
    long long prompt_tokens, cached_tokens; /* how much of the prompts the cache already held */
} gen_ctx;

static char *generate(void *ctx, const char *prompt, int *n_tokens, rl_error *err) {
    gen_ctx *g = ctx;
    int32_t *ids = NULL;
    size_t n = 0;
    rl_status s;
    *n_tokens = 0;
    if (rl_tok_chat_family(g->cm->tok) != RL_CHAT_UNKNOWN) {
        rl_chat_msg msg = {"user", prompt};
        char *text;
        if ((s = rl_tok_chat_render(g->cm->tok, &msg, 1, 1, &text, err))) return NULL;
        s = rl_tok_encode(g->cm->tok, text, strlen(text), 0, &ids, &n, err);
        free(text);
    } else {
        char *text = rl_xasprintf("%s\n", prompt); /* the trainer's raft layout without a chat template */
        s = rl_infer_tokenize(g->inf, text, strlen(text), 1, &ids, &n, err);
        free(text);
    }
    if (s) return NULL;
    /* too long for the context: keep the end (the question), drop the start after BOS */
    int ctx_len = rl_infer_n_ctx(g->inf), max_new = g->max_new < ctx_len / 2 ? g->max_new : ctx_len / 2;
    size_t keep = (size_t)(ctx_len - max_new - 1);
    if (n > keep) {
        memmove(ids + 1, ids + 1 + (n - keep), (keep - 1) * sizeof *ids);
        n = keep;
    }
    rl_gen_params p = {.sampling = rl_sampler_defaults(), .max_tokens = max_new};
    p.sampling.temperature = 0; /* greedy */
    rl_gen_result res = {0};
    s = rl_infer_generate(g->inf, ids, n, &p, NULL, NULL, &res, err);
    free(ids);
    char *text = NULL;
    if (!s) {
        text = res.text;
        res.text = NULL;
        *n_tokens = res.n_gen;
        g->prompt_tokens += res.n_prompt;
        g->cached_tokens += res.n_cached;
    }
    rl_gen_result_free(&res);
    return text;
}

/* ---- storing and printing ----------------------------------------------------------------------- */

static void store_result(rl_store *store, const char *model, const char *mode, int k, json_t *metrics) {
    sqlite3 *db = rl_store_db(store);
    sqlite3_exec(db,
                 "CREATE TABLE IF NOT EXISTS eval_runs(id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, model TEXT NOT NULL,"
                 " mode TEXT NOT NULL, k INTEGER NOT NULL, metrics TEXT NOT NULL)",
                 NULL, NULL, NULL);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "INSERT INTO eval_runs(at, model, mode, k, metrics) VALUES (?,?,?,?,?)", -1, &st, NULL) != SQLITE_OK) return;
    char *m = json_dumps(metrics, JSON_COMPACT);
    sqlite3_bind_int64(st, 1, (int64_t)time(NULL));
    sqlite3_bind_text(st, 2, model, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, mode, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, k);
    sqlite3_bind_text(st, 5, m ? m : "{}", -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) rl_warn("could not store the eval result: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    free(m);
}

static int parse_modes(const char *list, int *want, rl_error *err) {
    static const char *names[] = {"retrieval", "closed_book", "rag", "oracle", "raft"};
    memset(want, 0, 5 * sizeof *want);
    char *copy = rl_xstrdup(list), *save;
    for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        int ok = 0;
        for (int i = 0; i < 5; i++)
            if (strcmp(t, names[i]) == 0) want[i] = 1, ok = 1;
        if (!ok) {
            free(copy);
            return rl_fail(err, RL_EINVAL, "unknown mode '%s' (retrieval, closed_book, rag, oracle)", t);
        }
    }
    free(copy);
    /* "raft" is the RAFT model in the rag layout: the same mode for the model under test */
    if (want[4]) want[2] = 1;
    return RL_OK;
}

/* "1,3,5" -> ks in 1..RL_EVAL_MAX_K, ascending, without repeats. */
static rl_status parse_ks(const char *list, int *ks, int *n, rl_error *err) {
    *n = 0;
    char *copy = rl_xstrdup(list), *save;
    rl_status s = RL_OK;
    for (char *t = strtok_r(copy, ", ", &save); t && !s; t = strtok_r(NULL, ", ", &save)) {
        char *end;
        long v = strtol(t, &end, 10);
        if (*end || v < 1 || v > RL_EVAL_MAX_K) s = rl_fail(err, RL_EINVAL, "--k-sweep: '%s' is not a k from 1 to %d", t, RL_EVAL_MAX_K);
        else if (*n < RL_EVAL_MAX_K) ks[(*n)++] = (int)v;
    }
    free(copy);
    return s;
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

static json_t *answer_json(const rl_eval_answers *a) {
    return json_pack("{s:i, s:f, s:f, s:f, s:f, s:f, s:f}", "n", a->n, "em", a->em, "f1", a->f1, "numeric_match", a->numeric_match,
                     "citation_validity", a->citation_validity, "refusal_rate", a->refusal_rate, "tokens_per_s",
                     a->seconds > 0 ? (double)a->tokens / a->seconds : 0.0);
}

static double num(const json_t *o, const char *k) {
    const json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* The terminal table: answering modes by model, retrieval, the k sweep. */
static void print_tables(FILE *f, const json_t *metrics, const json_t *retrieval, const json_t *sweep) {
    size_t i;
    const json_t *r;
    if (json_array_size(metrics)) {
        fprintf(f, "%-16s %-12s %3s %5s  %6s %6s %6s %6s %6s %8s\n", "model", "mode", "k", "n", "EM", "F1", "num", "cite", "refuse", "tok/s");
        json_array_foreach(metrics, i, r) {
            fprintf(f, "%-16.16s %-12s %3.0f %5.0f  %6.3f %6.3f %6.3f %6.3f %6.3f %8.1f\n", json_string_value(json_object_get(r, "model")),
                    json_string_value(json_object_get(r, "mode")), num(r, "k"), num(r, "n"), num(r, "em"), num(r, "f1"), num(r, "numeric_match"),
                    num(r, "citation_validity"), num(r, "refusal_rate"), num(r, "tokens_per_s"));
        }
    }
    if (json_array_size(retrieval)) {
        if (json_array_size(metrics)) fprintf(f, "\n");
        fprintf(f, "%-16s %5s  %8s %8s %8s %6s %7s\n", "retrieval", "n", "recall@1", "recall@3", "recall@5", "MRR", "nDCG@10");
        json_array_foreach(retrieval, i, r) {
            fprintf(f, "%-16s %5.0f  %8.3f %8.3f %8.3f %6.3f %7.3f\n", json_string_value(json_object_get(r, "ranking")), num(r, "n"), num(r, "recall@1"),
                    num(r, "recall@3"), num(r, "recall@5"), num(r, "mrr"), num(r, "ndcg@10"));
        }
    }
    if (json_array_size(sweep)) {
        fprintf(f, "\n%-6s %8s", "k", "recall@k");
        const char *key;
        const json_t *v;
        json_object_foreach(json_object_get(json_array_get(sweep, 0), "rag"), key, v) fprintf(f, "  %10.10s F1", key);
        fprintf(f, "\n");
        json_array_foreach(sweep, i, r) {
            fprintf(f, "%-6.0f %8.3f", num(r, "k"), num(r, "recall@k"));
            json_object_foreach(json_object_get(r, "rag"), key, v) fprintf(f, "  %13.3f", num(v, "f1"));
            fprintf(f, "\n");
        }
    }
}

/* The training curves of the models that were trained here (a train_log.jsonl beside the
 * adapter or the model), else the project's own <output_dir>/train. */
static json_t *train_curves(const rl_config *cfg, const cli_eval_model *models, int n_models) {
    json_t *curves = json_array();
    for (int i = 0; i <= n_models; i++) {
        char *dir = i < n_models ? rl_xstrdup(models[i].lora ? models[i].lora : models[i].model) : rl_path_join(cfg->output_dir, "train");
        if (i == n_models && json_array_size(curves)) { /* the project's train folder only when no model had a log */
            free(dir);
            break;
        }
        char *log = rl_path_is_dir(dir) ? rl_path_join(dir, "train_log.jsonl") : NULL;
        json_t *c;
        int skipped;
        rl_error err = {0};
        if (log && rl_path_exists(log)) {
            if (rl_report_train_log(log, 2000, &c, &skipped, &err) == RL_OK) {
                if (skipped) rl_warn("%s: %d lines that are not loss records were skipped", log, skipped);
                json_object_set_new(c, "model", json_string(i < n_models ? models[i].name : "train"));
                json_object_set_new(c, "log", json_string(log));
                json_array_append_new(curves, c);
            } else {
                rl_warn("report: %s", err.msg);
            }
        }
        free(log);
        free(dir);
    }
    return curves;
}

/* Up to max records of evenly spaced questions for the report, in the main modes (not the
 * extra k of the sweep). */
static json_t *pick_samples(const rl_buf *records, size_t n_questions, int max_questions, int main_k) {
    json_t *out = json_array();
    if (!records->data || max_questions <= 0) return out;
    size_t step = n_questions > (size_t)max_questions ? n_questions / (size_t)max_questions : 1;
    /* records are question-major per model: the question's index is its order among the ids */
    json_t *index = json_object(); /* id -> question number */
    size_t next = 0;
    for (const char *p = records->data; p < records->data + records->len;) {
        const char *nl = memchr(p, '\n', (size_t)(records->data + records->len - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(records->data + records->len - p);
        json_t *r = json_loadb(p, n, 0, NULL);
        const char *id = json_string_value(json_object_get(r, "id")), *mode = json_string_value(json_object_get(r, "mode"));
        if (id && mode) {
            json_t *qi = json_object_get(index, id);
            if (!qi) json_object_set_new(index, id, qi = json_integer((json_int_t)next++));
            size_t q = (size_t)json_integer_value(qi);
            int k = (int)json_integer_value(json_object_get(r, "k"));
            if (q % step == 0 && q / step < (size_t)max_questions && (strcmp(mode, "closed_book") == 0 || k == main_k))
                json_array_append(out, r);
        }
        json_decref(r);
        p += n + 1;
    }
    json_decref(index);
    return out;
}

static void iso_now(char *out, size_t cap) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int cmd_eval(int argc, char **argv) {
    enum { O_Q = 1000, O_MODES, O_MODEL, O_TOK, O_LORA, O_NAME, O_MAXQ, O_MAXNEW, O_JSON, O_SWEEP, O_SAMPLES, O_NOREPORT, O_PARALLEL };
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},         {"questions", required_argument, 0, O_Q},
                                         {"modes", required_argument, 0, O_MODES},       {"model", required_argument, 0, O_MODEL},
                                         {"tokenizer", required_argument, 0, O_TOK},     {"lora", required_argument, 0, O_LORA},
                                         {"name", required_argument, 0, O_NAME},         {"max-questions", required_argument, 0, O_MAXQ},
                                         {"max-new-tokens", required_argument, 0, O_MAXNEW}, {"json", no_argument, 0, O_JSON},
                                         {"k-sweep", required_argument, 0, O_SWEEP},     {"samples", required_argument, 0, O_SAMPLES},
                                         {"no-report", no_argument, 0, O_NOREPORT},      {"parallel", required_argument, 0, O_PARALLEL},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *config = NULL, *questions = NULL, *modes = NULL, *sweep_arg = NULL;
    cli_eval_flags fl = {0};
    int k = 0, json = 0, max_q = 0, max_new = 128, n_samples = 6, report = 1, n_workers = 0, c;
    while ((c = getopt_long(argc, argv, "c:k:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'k': k = atoi(optarg); break;
        case O_Q: questions = optarg; break;
        case O_MODES: modes = optarg; break;
        case O_MODEL: fl.model = optarg; break;
        case O_TOK: fl.tokenizer = optarg; break;
        case O_LORA: fl.lora = optarg; break;
        case O_NAME: fl.name = optarg; break;
        case O_MAXQ: max_q = atoi(optarg); break;
        case O_MAXNEW: max_new = atoi(optarg); break;
        case O_JSON: json = 1; break;
        case O_SWEEP: sweep_arg = optarg; break;
        case O_SAMPLES: n_samples = atoi(optarg); break;
        case O_NOREPORT: report = 0; break;
        case O_PARALLEL: n_workers = atoi(optarg); break;
        case 'h': printf("usage: raftlm eval %s", usage_text); return 0;
        default: return cli_usage("eval", usage_text);
        }
    }
    rl_error err = {0};
    rl_config cfg;
    char *db_path;
    if (cli_project_open(config, NULL, &cfg, &db_path, &err)) return cli_report(&err);
    int code = 0, want[5];
    rl_store *store = NULL;
    rl_eval_set set = {0};
    cli_eval_model *models = NULL;
    int n_models = 0;
    rl_embedder *emb = NULL;
    rl_dense *dense = NULL;
    rl_buf records = {0};
    rl_eval_answers *results = NULL; /* n_models x n_tasks */
    rl_eval_task tasks[3 + RL_EVAL_MAX_K];
    int n_tasks = 0, ks[RL_EVAL_MAX_K], n_ks = 0;
    rl_eval_retrieval bm25 = {0};
    int have_bm25 = 0;
    json_t *root = json_object(), *jmodes = json_object(), *metrics_rows = json_array(), *retrieval_rows = json_array(), *sweep = json_array();
    char *qpath = questions ? rl_xstrdup(questions) : cfg.eval.questions ? rl_xstrdup(cfg.eval.questions) : NULL;
    if (!qpath) {
        char *dir = rl_path_join(cfg.output_dir, "datasets");
        qpath = rl_path_join(dir, "eval_test.jsonl");
        free(dir);
        if (!rl_path_exists(qpath)) {
            rl_fail(&err, RL_ENOTFOUND, "no questions: %s does not exist (run `raftlm synth`, or pass --questions FILE.jsonl)", qpath);
            goto fail;
        }
    }
    if (k <= 0) k = cfg.eval.k;
    if (modes) {
        if (parse_modes(modes, want, &err)) goto fail;
    } else {
        rl_buf b = {0};
        for (int i = 0; i < cfg.eval.modes.n; i++) rl_buf_printf(&b, "%s%s", i ? "," : "", cfg.eval.modes.items[i]);
        rl_status s = parse_modes(b.data ? b.data : "retrieval", want, &err);
        rl_buf_free(&b);
        if (s) goto fail;
    }
    if (sweep_arg) {
        if (parse_ks(sweep_arg, ks, &n_ks, &err)) goto fail;
    } else {
        for (int i = 0; i < cfg.eval.k_sweep.n && n_ks < RL_EVAL_MAX_K; i++) ks[n_ks++] = cfg.eval.k_sweep.items[i];
    }
    qsort(ks, (size_t)n_ks, sizeof *ks, cmp_int);
    {
        int u = 0;
        for (int i = 0; i < n_ks; i++)
            if (!u || ks[u - 1] != ks[i]) ks[u++] = ks[i];
        n_ks = u;
    }
    if (!rl_path_exists(db_path)) {
        rl_fail(&err, RL_ENOTFOUND, "no store at %s: run `raftlm ingest` first", db_path);
        goto fail;
    }
    if (rl_store_open(&store, db_path, NULL, &err)) goto fail;
    if (rl_eval_set_load(&set, qpath, &err)) goto fail;
    if (max_q > 0 && (size_t)max_q < set.n) {
        for (size_t i = (size_t)max_q; i < set.n; i++)
            free(set.q[i].id), free(set.q[i].question), free(set.q[i].answer), free(set.q[i].oracle_doc);
        set.n = (size_t)max_q;
    }
    int answering = want[1] || want[2] || want[3];
    if (answering) {
        rl_error merr = {0};
        if (cli_eval_models(&cfg, &fl, &models, &n_models, &merr) || n_models == 0) {
            if (modes || fl.model || fl.lora || cfg.eval.n_models) {
                if (!merr.status) rl_fail(&merr, RL_EINVAL, "the answering modes need a model: pass --model PATH (or set base_model)");
                err = merr;
                goto fail;
            }
            rl_warn("%s: only the retrieval mode is evaluated", merr.status ? merr.msg : "no model configured (base_model)");
            answering = 0;
        }
    }
    /* the tasks of each question: the modes at k, then rag at each other k of the sweep */
    if (answering) {
        /* rag last, by increasing k: each prompt starts with the previous one's documents, a
         * prefix the generator's cache keeps */
        if (want[1]) tasks[n_tasks++] = (rl_eval_task){RL_EVAL_CLOSED_BOOK, 0};
        if (want[3]) tasks[n_tasks++] = (rl_eval_task){RL_EVAL_ORACLE, k};
        for (int i = 0; i < n_ks && want[2]; i++)
            if (ks[i] < k) tasks[n_tasks++] = (rl_eval_task){RL_EVAL_RAG, ks[i]};
        if (want[2]) tasks[n_tasks++] = (rl_eval_task){RL_EVAL_RAG, k};
        for (int i = 0; i < n_ks && want[2]; i++)
            if (ks[i] > k) tasks[n_tasks++] = (rl_eval_task){RL_EVAL_RAG, ks[i]};
    }
    rl_info("eval: %zu questions from %s, %d model%s, %d task%s per question", set.n, qpath, n_models, n_models == 1 ? "" : "s", n_tasks,
            n_tasks == 1 ? "" : "s");
    if (want[0] || n_ks) {
        /* bm25, and with an embedding model also dense and hybrid ("retrieval" is the configured one) */
        const char *mode = cli_retrieval_mode(&cfg);
        if (want[0] && cfg.retrieval.embedding_model && cli_dense_open(&cfg, &emb, &dense, &err)) goto fail;
        rl_hybrid_opts ho = {cfg.retrieval.rrf_k, cfg.retrieval.bm25_weight, cfg.retrieval.dense_weight};
        const char *names[3] = {"bm25", "dense", "hybrid"};
        for (int rm = 0; rm < (dense ? 3 : 1); rm++) {
            rl_eval_retrieval r;
            if (rl_eval_retrieval_run(store, &set, rm ? dense : NULL, rm == 2, &ho, &r, &err)) goto fail;
            if (rm == 0) bm25 = r, have_bm25 = 1;
            if (!want[0]) break;
            json_t *m = json_pack("{s:i, s:f, s:f, s:f, s:f, s:f}", "n", r.n, "recall@1", r.recall[1], "recall@3", r.recall[3], "recall@5",
                                  r.recall[5], "mrr", r.mrr, "ndcg@10", r.ndcg10);
            store_result(store, names[rm], "retrieval", k, m);
            char key[32];
            snprintf(key, sizeof key, "retrieval_%s", names[rm]);
            if (strcmp(mode, names[rm]) == 0) json_object_set(jmodes, "retrieval", m);
            if (dense) json_object_set(jmodes, key, m);
            json_t *row = json_deep_copy(m);
            json_object_set_new(row, "ranking", json_string(names[rm]));
            json_array_append_new(retrieval_rows, row);
            json_decref(m);
        }
    }
    if (answering) {
        results = rl_xcalloc((size_t)(n_models * n_tasks), sizeof *results);
        rl_progress bar;
        rl_progress_start(&bar, "eval answers", "answers", (double)set.n * n_models * n_tasks);
        /* workers: questions answered at once, each with its own cache over the shared weights;
         * BLAS threads inside each one-token product share the cores that remain */
        if (n_workers <= 0) n_workers = cfg.eval.parallel > 0 ? cfg.eval.parallel : rl_cpu_count();
        if (n_workers > RL_EVAL_MAX_WORKERS) n_workers = RL_EVAL_MAX_WORKERS;
        if ((size_t)n_workers > set.n) n_workers = (int)set.n;
        if (n_workers < 1) n_workers = 1;
        for (int mi = 0; mi < n_models; mi++) {
            const cli_eval_model *md = &models[mi];
            rl_info("eval: model %s (%s%s%s), %d worker%s", md->name, md->model, md->lora ? " + adapter " : "", md->lora ? md->lora : "",
                    n_workers, n_workers == 1 ? "" : "s");
            cli_model cm;
            rl_status s = cli_model_open(&cm, md->model, md->lora, md->tokenizer, cfg.threads, &err);
            if (s) {
                rl_progress_finish(&bar);
                goto fail;
            }
            int blas = (cfg.threads > 0 ? cfg.threads : rl_cpu_count()) / n_workers;
            openblas_set_num_threads(blas > 0 ? blas : 1);
            if (cfg.chat_template) s = rl_tok_set_chat_template(cm.tok, cfg.chat_template, &err);
            gen_ctx g[RL_EVAL_MAX_WORKERS] = {{0}};
            void *ctxs[RL_EVAL_MAX_WORKERS];
            for (int w = 0; w < n_workers && !s; w++) {
                g[w] = (gen_ctx){.cm = &cm, .max_new = max_new > 0 ? max_new : 128};
                ctxs[w] = &g[w];
                s = rl_infer_new(&g[w].inf, &cm.model, cm.tok, 0, &err);
            }
            rl_eval_answer_opts ao = {.tasks = tasks, .n_tasks = n_tasks, .generate = generate, .ctxs = ctxs, .n_workers = n_workers,
                                      .model = md->name, .records = &records, .bar = &bar};
            if (!s) s = rl_eval_answers_run(store, &set, &ao, results + (size_t)mi * n_tasks, &err);
            long long pt = 0, ct = 0;
            for (int w = 0; w < n_workers; w++) rl_infer_free(g[w].inf), pt += g[w].prompt_tokens, ct += g[w].cached_tokens;
            if (!s) rl_info("eval: model %s: %lld prompt tokens, %.1f%% of them already in the cache (a shared prefix)", md->name, pt,
                            pt ? 100.0 * ct / pt : 0.0);
            cli_model_close(&cm);
            if (s) {
                rl_progress_finish(&bar);
                goto fail;
            }
        }
        rl_progress_finish(&bar);
        /* the modes (at k): one model keeps the flat shape, several map model -> metrics */
        for (int t = 0; t < n_tasks; t++) {
            if (tasks[t].mode == RL_EVAL_RAG && tasks[t].k != k) continue; /* only in the sweep */
            const char *mname = rl_eval_mode_name(tasks[t].mode);
            json_t *per = n_models > 1 ? json_object() : NULL;
            for (int mi = 0; mi < n_models; mi++) {
                json_t *m = answer_json(&results[(size_t)mi * n_tasks + t]);
                store_result(store, models[mi].name, mname, k, m);
                json_t *row = json_pack("{s:s, s:s, s:i}", "model", models[mi].name, "mode", mname, "k", tasks[t].mode == RL_EVAL_CLOSED_BOOK ? 0 : k);
                json_object_update(row, m);
                json_array_append_new(metrics_rows, row);
                if (per) json_object_set_new(per, models[mi].name, m);
                else json_object_set_new(jmodes, mname, m);
            }
            if (per) json_object_set_new(jmodes, mname, per);
        }
    }
    /* the sweep: recall@k (bm25, the ranking rag uses) and rag at each k for each model */
    for (int i = 0; i < n_ks; i++) {
        json_t *pt = json_pack("{s:i}", "k", ks[i]);
        if (have_bm25 && bm25.n) json_object_set_new(pt, "recall@k", json_real(bm25.recall[ks[i]]));
        json_t *rag = json_object();
        for (int t = 0; t < n_tasks; t++) {
            if (tasks[t].mode != RL_EVAL_RAG || tasks[t].k != ks[i]) continue;
            for (int mi = 0; mi < n_models; mi++) {
                json_t *m = answer_json(&results[(size_t)mi * n_tasks + t]);
                if (ks[i] != k) store_result(store, models[mi].name, "rag", ks[i], m); /* k itself is stored above */
                json_object_set_new(rag, models[mi].name, m);
            }
        }
        json_object_set_new(pt, "rag", rag);
        json_array_append_new(sweep, pt);
    }
    json_t *jmodels = json_array();
    for (int mi = 0; mi < n_models; mi++)
        json_array_append_new(jmodels, json_pack("{s:s, s:s, s:o, s:s}", "name", models[mi].name, "model", models[mi].model, "lora",
                                                 models[mi].lora ? json_string(models[mi].lora) : json_null(), "tokenizer", models[mi].tokenizer));
    json_object_set_new(root, "model", n_models == 1 ? json_string(models[0].name) : json_null());
    json_object_set_new(root, "models", jmodels);
    json_object_set_new(root, "questions", json_string(qpath));
    json_object_set_new(root, "n_questions", json_integer((json_int_t)set.n));
    json_object_set_new(root, "k", json_integer(k));
    json_object_set(root, "modes", jmodes);
    if (n_ks) json_object_set(root, "k_sweep", sweep);
    if (records.len) {
        char *path = rl_path_join(cfg.output_dir, "eval_answers.jsonl");
        if (rl_mkdir_p(cfg.output_dir, &err) || rl_file_write_atomic(path, records.data, records.len, &err)) rl_warn("%s", err.msg);
        else rl_info("eval: every answer in %s", path);
        free(path);
        err = (rl_error){0};
    }
    if (report) {
        json_t *rep = json_deep_copy(root);
        char created[32], *cj = rl_config_to_json(&cfg);
        iso_now(created, sizeof created);
        json_object_set_new(rep, "created", json_string(created));
        json_object_set_new(rep, "config_file", json_string(cfg.file));
        json_object_set_new(rep, "config", cj ? json_loads(cj, 0, NULL) : json_null());
        free(cj);
        json_object_set(rep, "metrics", metrics_rows);
        json_object_set(rep, "retrieval", retrieval_rows);
        json_object_set_new(rep, "train_curves", train_curves(&cfg, models, n_models));
        json_object_set_new(rep, "samples", pick_samples(&records, set.n, n_samples, k));
        if (rl_report_write(cfg.output_dir, rep, &err)) rl_warn("report not written: %s", err.msg);
        else rl_info("eval: report in %s/report.html", cfg.output_dir);
        err = (rl_error){0};
        json_decref(rep);
    }
    if (json) {
        char *s = json_dumps(root, JSON_INDENT(2));
        printf("%s\n", s);
        free(s);
        if (rl_log_get_level() <= RL_LOG_INFO) print_tables(stderr, metrics_rows, retrieval_rows, sweep);
    } else {
        print_tables(stdout, metrics_rows, retrieval_rows, sweep);
    }
    goto out;
fail:
    code = cli_report(&err);
out:
    json_decref(jmodes);
    json_decref(metrics_rows);
    json_decref(retrieval_rows);
    json_decref(sweep);
    json_decref(root);
    free(results);
    rl_buf_free(&records);
    cli_eval_models_free(models, n_models);
    rl_eval_set_free(&set);
    rl_dense_close(dense);
    rl_embedder_free(emb);
    rl_store_close(store);
    free(qpath);
    free(db_path);
    rl_config_free(&cfg);
    return code;
}
