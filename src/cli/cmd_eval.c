/* cmd_eval.c - `raftlm eval`: retrieval metrics and answering quality on held-out questions.
 *
 * Questions come from --questions FILE.jsonl or the synthesized test split
 * (<output_dir>/datasets/eval_test.jsonl). The answering modes generate greedily with the
 * model (base_model of the config, or --model) in the layout it was trained on: the model's
 * chat template when it has one, else BOS + prompt + "\n" (as the trainer's raft format). */
#include <getopt.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/project.h"
#include "eval/eval.h"
#include "infer/infer.h"

static const char *usage_text =
    "[-c raftlm.yaml] [--questions FILE.jsonl] [--modes retrieval,closed_book,rag,oracle] [-k K]\n"
    "          [--model PATH [--tokenizer PATH] [--lora DIR] [--name NAME]] [--max-questions N] [--max-new-tokens N] [--json]\n\n"
    "Evaluates on held-out questions (default: <output_dir>/datasets/eval_test.jsonl from `raftlm synth`; any JSONL\n"
    "with question, answer and optional oracle_doc works). Modes: retrieval (recall@1/3/5, MRR, nDCG@10 of the\n"
    "oracle document), closed_book (the question alone), rag (the retrieved top-k chunks in the RAFT layout),\n"
    "oracle (the oracle chunk among distractors). Answers are scored by exact match, token F1, numeric match,\n"
    "citation validity and refusal rate. Results are stored in the project store; --json prints one object.\n";

/* ---- greedy generation (src/infer) ------------------------------------------------------------ */

typedef struct gen_ctx {
    cli_model cm;
    rl_infer *inf;
    int max_new;
    int64_t tokens;
    double seconds;
} gen_ctx;

static char *generate(void *ctx, const char *prompt, rl_error *err) {
    gen_ctx *g = ctx;
    int32_t *ids = NULL;
    size_t n = 0;
    rl_status s;
    if (rl_tok_chat_family(g->cm.tok) != RL_CHAT_UNKNOWN) {
        rl_chat_msg msg = {"user", prompt};
        char *text;
        if ((s = rl_tok_chat_render(g->cm.tok, &msg, 1, 1, &text, err))) return NULL;
        s = rl_tok_encode(g->cm.tok, text, strlen(text), 0, &ids, &n, err);
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
        g->tokens += res.n_gen;
        g->seconds += res.t_prompt + res.t_gen;
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

int cmd_eval(int argc, char **argv) {
    enum { O_Q = 1000, O_MODES, O_MODEL, O_TOK, O_LORA, O_NAME, O_MAXQ, O_MAXNEW, O_JSON };
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},    {"questions", required_argument, 0, O_Q},
                                         {"modes", required_argument, 0, O_MODES},  {"model", required_argument, 0, O_MODEL},
                                         {"tokenizer", required_argument, 0, O_TOK}, {"lora", required_argument, 0, O_LORA},
                                         {"name", required_argument, 0, O_NAME},    {"max-questions", required_argument, 0, O_MAXQ},
                                         {"max-new-tokens", required_argument, 0, O_MAXNEW}, {"json", no_argument, 0, O_JSON},
                                         {"help", no_argument, 0, 'h'},             {0, 0, 0, 0}};
    const char *config = NULL, *questions = NULL, *modes = NULL, *model = NULL, *tok = NULL, *lora = NULL, *name = NULL;
    int k = 0, json = 0, max_q = 0, max_new = 128, c;
    while ((c = getopt_long(argc, argv, "c:k:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'k': k = atoi(optarg); break;
        case O_Q: questions = optarg; break;
        case O_MODES: modes = optarg; break;
        case O_MODEL: model = optarg; break;
        case O_TOK: tok = optarg; break;
        case O_LORA: lora = optarg; break;
        case O_NAME: name = optarg; break;
        case O_MAXQ: max_q = atoi(optarg); break;
        case O_MAXNEW: max_new = atoi(optarg); break;
        case O_JSON: json = 1; break;
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
    gen_ctx g = {0};
    int have_model = 0;
    rl_embedder *emb = NULL;
    rl_dense *dense = NULL;
    json_t *root = json_object(), *jmodes = json_object();
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
    const char *model_path = model ? model : cfg.base_model;
    const char *model_name = name ? name : model_path ? rl_path_basename(model_path) : "none";
    int answering = want[1] || want[2] || want[3];
    if (answering && !model_path) {
        if (modes) {
            rl_fail(&err, RL_EINVAL, "the answering modes need a model: pass --model PATH (or set base_model)");
            goto fail;
        }
        rl_warn("no model configured (base_model): only the retrieval mode is evaluated");
        answering = 0;
    }
    if (answering) {
        const char *tok_path = tok ? tok : cfg.tokenizer ? cfg.tokenizer : model_path;
        if (cli_model_open(&g.cm, model_path, lora, tok_path, cfg.threads, &err)) goto fail;
        if (!g.cm.tok) {
            rl_fail(&err, RL_EINVAL, "the model needs a tokenizer: pass --tokenizer PATH");
            goto fail;
        }
        have_model = 1;
        g.max_new = max_new > 0 ? max_new : 128;
        if (rl_infer_new(&g.inf, &g.cm.model, g.cm.tok, 0, &err)) goto fail;
    }
    rl_info("eval: %zu questions from %s", set.n, qpath);
    if (want[0]) {
        /* bm25, and with an embedding model also dense and hybrid ("retrieval" is the configured one) */
        const char *mode = cli_retrieval_mode(&cfg);
        if (cfg.retrieval.embedding_model && cli_dense_open(&cfg, &emb, &dense, &err)) goto fail;
        rl_hybrid_opts ho = {cfg.retrieval.rrf_k, cfg.retrieval.bm25_weight, cfg.retrieval.dense_weight};
        const char *names[3] = {"bm25", "dense", "hybrid"};
        for (int rm = 0; rm < (dense ? 3 : 1); rm++) {
            rl_eval_retrieval r;
            if (rl_eval_retrieval_run(store, &set, rm ? dense : NULL, rm == 2, &ho, &r, &err)) goto fail;
            json_t *m = json_pack("{s:i, s:f, s:f, s:f, s:f, s:f}", "n", r.n, "recall@1", r.recall[1], "recall@3", r.recall[3], "recall@5",
                                  r.recall[5], "mrr", r.mrr, "ndcg@10", r.ndcg10);
            store_result(store, names[rm], "retrieval", k, m);
            char key[32];
            snprintf(key, sizeof key, "retrieval_%s", names[rm]);
            if (strcmp(mode, names[rm]) == 0) json_object_set(jmodes, "retrieval", m);
            if (dense) json_object_set(jmodes, key, m);
            json_decref(m);
        }
    }
    rl_eval_mode ms[3] = {RL_EVAL_CLOSED_BOOK, RL_EVAL_RAG, RL_EVAL_ORACLE};
    for (int i = 0; i < 3 && answering; i++) {
        if (!want[i + 1]) continue;
        rl_eval_answer_opts ao = {.mode = ms[i], .k = k, .generate = generate, .ctx = &g};
        rl_eval_answers a;
        int64_t tok0 = g.tokens;
        double s0 = g.seconds;
        if (rl_eval_answers_run(store, &set, &ao, &a, &err)) goto fail;
        double tps = g.seconds > s0 ? (double)(g.tokens - tok0) / (g.seconds - s0) : 0;
        json_t *m = json_pack("{s:i, s:f, s:f, s:f, s:f, s:f, s:f}", "n", a.n, "em", a.em, "f1", a.f1, "numeric_match", a.numeric_match,
                              "citation_validity", a.citation_validity, "refusal_rate", a.refusal_rate, "tokens_per_s", tps);
        store_result(store, model_name, rl_eval_mode_name(ms[i]), k, m);
        json_object_set_new(jmodes, rl_eval_mode_name(ms[i]), m);
    }
    json_object_set_new(root, "model", json_string(model_name));
    json_object_set_new(root, "questions", json_string(qpath));
    json_object_set_new(root, "n_questions", json_integer((json_int_t)set.n));
    json_object_set_new(root, "k", json_integer(k));
    json_object_set(root, "modes", jmodes);
    if (json) {
        char *s = json_dumps(root, JSON_INDENT(2));
        printf("%s\n", s);
        free(s);
    } else {
        printf("%-16s %-10s %6s  %s\n", "mode", "model", "n", "metrics");
        const char *key;
        json_t *m;
        json_object_foreach(jmodes, key, m) {
            printf("%-16s %-10.10s %6lld ", key, strncmp(key, "retrieval", 9) == 0 ? "-" : model_name,
                   (long long)json_integer_value(json_object_get(m, "n")));
            const char *mk;
            json_t *mv;
            json_object_foreach(m, mk, mv) if (json_is_real(mv)) printf(" %s %.3f", mk, json_real_value(mv));
            printf("\n");
        }
    }
    goto out;
fail:
    code = cli_report(&err);
out:
    json_decref(jmodes);
    json_decref(root);
    rl_infer_free(g.inf);
    if (have_model) cli_model_close(&g.cm);
    rl_eval_set_free(&set);
    rl_dense_close(dense);
    rl_embedder_free(emb);
    rl_store_close(store);
    free(qpath);
    free(db_path);
    rl_config_free(&cfg);
    return code;
}
