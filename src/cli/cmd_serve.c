/* cmd_serve.c - `raftlm serve`: the OpenAI-compatible server (src/serve) over a model, its
 * fine-tuned adapter and the project's store; and what `raftlm ask` shares with it: finding the
 * model, tokenizer, adapter and store from raftlm.yaml and the flags (cli_rag_open).
 *
 * The process blocks SIGINT/SIGTERM in every thread and waits for them in main: the first one
 * drains (requests in flight finish, new ones get 503; up to --drain seconds), then exits 0. */
#include <cblas.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/project.h"
#include "infer/infer.h"
#include "serve/serve.h"

rl_status cli_rag_config(cli_rag *r, const char *config, const char *model, rl_error *err) {
    memset(r, 0, sizeof *r);
    if (config || (!model && rl_path_exists("raftlm.yaml"))) {
        char *db = NULL;
        rl_status s = cli_project_open(config, NULL, &r->cfg, &db, err);
        free(db);
        if (s) return s;
        r->has_cfg = 1;
    } else {
        rl_config_defaults(&r->cfg, ".");
    }
    return RL_OK;
}

rl_status cli_rag_load(cli_rag *r, const char *model, const char *tokp, const char *lora, const char *store_dir,
                       int no_store, int threads, const char *quant, rl_error *err) {
    rl_status s = RL_OK;
    char *db = NULL, *lora_owned = NULL, *model_owned = NULL;
    static const struct {
        const char *name, *label;
        rl_wtype type;
    } quants[] = {{"q8_0", "Q8_0", RL_WTYPE_Q8_0}, {"q4_0", "Q4_0", RL_WTYPE_Q4_0}, {"q4_k", "Q4_K", RL_WTYPE_Q4_K},
                  {"q6_k", "Q6_K", RL_WTYPE_Q6_K}};
    if (!quant && r->has_cfg) quant = r->cfg.serve.quant;
    int qi = -1, nq = (int)(sizeof quants / sizeof quants[0]);
    for (int i = 0; quant && i < nq; i++)
        if (!strcmp(quant, quants[i].name)) qi = i;
    if (quant && strcmp(quant, "f32") && qi < 0)
        return rl_fail(err, RL_EINVAL, "--quant must be f32, q8_0, q4_0, q4_k or q6_k, got '%s'", quant);
    if (!model) model = r->cfg.base_model;
    if (!model) return rl_fail(err, RL_EINVAL, "no model: pass --model PATH or -c raftlm.yaml with base_model");
    if (r->has_cfg && !lora && model == r->cfg.base_model) { // the fine-tuned result, when there is one
        char *out = rl_path_join(r->cfg.output_dir, "train");
        char *ac = rl_path_join(out, "adapter_config.json"), *mc = rl_path_join(out, "config.json");
        if (rl_path_exists(ac)) lora = lora_owned = rl_xstrdup(out);
        else if (rl_path_exists(mc) && r->cfg.adapter && strcmp(r->cfg.adapter, "full") == 0) model = model_owned = rl_xstrdup(out);
        free(ac);
        free(mc);
        free(out);
    }
    if (!tokp) tokp = r->cfg.tokenizer;
    char ext[16];
    rl_path_ext(model, ext, sizeof ext);
    if (!tokp && (rl_path_is_dir(model) || strcmp(ext, "gguf") == 0)) tokp = model;
    if (!tokp) s = rl_fail(err, RL_EINVAL, "the model %s has no tokenizer beside it: pass --tokenizer PATH (or tokenizer: in the config)", model);
    if (!s) s = cli_model_open(&r->cm, model, lora, tokp, threads, err);
    if (!s) r->opened = 1;
    if (!s && r->cfg.chat_template) s = rl_tok_set_chat_template(r->cm.tok, r->cfg.chat_template, err);
    if (!s && qi >= 0) {
        if (r->cm.model.lora) rl_lora_merge(&r->cm.model); // quantize the fine-tuned weights
        s = rl_qmodel_new(&r->q, &r->cm.model, quants[qi].type, err);
        if (!s) {
            int all, asked = rl_qmodel_count_asked(r->q, &all);
            rl_info("weights: %s (%.1f MB of matrices, %s kernel)", quants[qi].label, rl_qmodel_bytes(r->q) / 1e6,
                    rl_qmodel_kernel(r->q));
            const char *fb = "float32";
            for (int i = 0; i < nq; i++)
                if (quants[i].type == rl_wtype_fallback(quants[qi].type)) fb = quants[i].label;
            if (asked < all)
                rl_info("weights: %d of %d matrices do not fit %s's blocks and use %s instead", all - asked, all,
                        quants[qi].label, fb);
        }
    }
    if (!s && !no_store) {
        if (store_dir) db = rl_path_join(store_dir, "store.db");
        else if (r->has_cfg) db = rl_config_store_path(&r->cfg);
        if (db && !rl_path_exists(db)) {
            if (store_dir) s = rl_fail(err, RL_ENOTFOUND, "no store at %s (run `raftlm ingest` first)", db);
            else rl_warn("no store at %s yet: answering without retrieval (run `raftlm ingest`)", db);
        } else if (db) {
            rl_store_opts so = {.stemming = -1};
            s = rl_store_open(&r->store, db, &so, err);
        }
    }
    if (!s) {
        const char *base = rl_path_basename(model);
        r->model_name = rl_xstrdup(*base ? base : model);
        if (lora) rl_info("adapter: %s", lora);
        if (r->store) rl_info("store: %s", db);
    }
    free(db);
    free(lora_owned);
    free(model_owned);
    return s;
}

rl_status cli_rag_open(cli_rag *r, const char *config, const char *model, const char *tokp, const char *lora,
                       const char *store_dir, int no_store, int threads, const char *quant, rl_error *err) {
    rl_status s = cli_rag_config(r, config, model, err);
    if (!s) s = cli_rag_load(r, model, tokp, lora, store_dir, no_store, threads, quant, err);
    if (s) cli_rag_close(r);
    return s;
}


void cli_rag_close(cli_rag *r) {
    if (r->store) rl_store_close(r->store);
    rl_qmodel_free(r->q);
    if (r->opened) cli_model_close(&r->cm);
    rl_config_free(&r->cfg);
    free(r->model_name);
    memset(r, 0, sizeof *r);
}

static const char *USAGE =
    "[-c raftlm.yaml] [--model PATH] [--tokenizer PATH] [--lora DIR] [--store DIR | --no-store]\n"
    "       [--host ADDR] [--port N] [--parallel N] [--queue N] [--ctx N] [--max-tokens N] [--timeout S]\n"
    "       [--api-key KEY] [--name NAME] [--drain S] [--quant f32|q8_0|q4_0|q4_k|q6_k] [--threads N] [--no-batch]\n"
    "       [--adapter NAME=DIR]... [--embedding-model PATH]\n\n"
    "Serves the model over OpenAI's API (/v1/chat/completions, /v1/completions, /v1/models) plus\n"
    "/v1/search, /v1/embeddings, /health and /metrics; with a store, chat answers are grounded on retrieved chunks.\n"
    "/v1/embeddings and dense /v1/search use retrieval.embedding_model (or --embedding-model PATH) with the\n"
    "configured query/passage prefixes; dense search needs the store's vectors.idx (`raftlm ingest`).\n"
    "--adapter NAME=DIR (repeatable) serves a PEFT adapter beside the model: requests naming NAME use it.\n"
    "--no-batch turns continuous batching off (with --quant and --parallel > 1 the generating slots\n"
    "otherwise decode each step together); each slot then decodes on its own.\n"
    "Prints the address it listens on (a line 'listening on http://HOST:PORT'); --port 0 picks a free port.\n"
    "The API key comes from --api-key or the environment variable serve.api_key_env (RAFTLM_API_KEY);\n"
    "it is required when --host is not a loopback address.\n";

int cmd_serve(int argc, char **argv) {
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'},   {"model", required_argument, 0, 'm'},
        {"tokenizer", required_argument, 0, 'k'}, {"lora", required_argument, 0, 'l'},
        {"store", required_argument, 0, 's'},     {"no-store", no_argument, 0, 'S'},
        {"host", required_argument, 0, 'H'},      {"port", required_argument, 0, 'p'},
        {"parallel", required_argument, 0, 'P'},  {"queue", required_argument, 0, 'Q'},
        {"ctx", required_argument, 0, 'C'},       {"max-tokens", required_argument, 0, 'n'},
        {"timeout", required_argument, 0, 't'},   {"api-key", required_argument, 0, 'a'},
        {"name", required_argument, 0, 'N'},      {"drain", required_argument, 0, 'd'},
        {"threads", required_argument, 0, 'j'},   {"conn-timeout", required_argument, 0, 'T'},
        {"quant", required_argument, 0, 'q'},     {"adapter", required_argument, 0, 'A'},
        {"embedding-model", required_argument, 0, 'E'},
        {"no-batch", no_argument, 0, 'b'},        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *config = NULL, *model = NULL, *tokp = NULL, *lora = NULL, *store = NULL, *host = NULL, *key = NULL,
               *name = NULL, *quant = NULL, *emb_model = NULL;
    long port = -1, parallel = 0, queue = -1, ctx = 0, max_tokens = 0, threads = 0, conn_timeout = 0;
    double timeout = 0, drain = 30;
    int no_store = 0, no_batch = 0, c, n_ad = 0;
    const char *ad_arg[32];
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'c': config = optarg; break;
        case 'm': model = optarg; break;
        case 'k': tokp = optarg; break;
        case 'l': lora = optarg; break;
        case 's': store = optarg; break;
        case 'S': no_store = 1; break;
        case 'b': no_batch = 1; break;
        case 'H': host = optarg; break;
        case 'a': key = optarg; break;
        case 'N': name = optarg; break;
        case 'q': quant = optarg; break;
        case 'E': emb_model = optarg; break;
        case 'A':
            if (n_ad == 32 || !strchr(optarg, '=') || optarg[0] == '=') return cli_usage("serve", USAGE);
            ad_arg[n_ad++] = optarg;
            break;
#define NUM(var, lo, hi)                                                                                 \
    var = strtol(optarg, &end, 10);                                                                      \
    if (*end || var < (lo) || var > (hi)) return cli_usage("serve", USAGE);                              \
    break
        case 'p': NUM(port, 0, 65535);
        case 'P': NUM(parallel, 1, 1024);
        case 'Q': NUM(queue, 0, 1 << 20);
        case 'C': NUM(ctx, 1, 1 << 24);
        case 'n': NUM(max_tokens, 1, 1 << 24);
        case 'j': NUM(threads, 0, 4096);
        case 'T': NUM(conn_timeout, 1, 86400);
#undef NUM
        case 't': timeout = strtod(optarg, &end); if (*end || timeout <= 0) return cli_usage("serve", USAGE); break;
        case 'd': drain = strtod(optarg, &end); if (*end || drain < 0) return cli_usage("serve", USAGE); break;
        case 'h': printf("usage: raftlm serve %s", USAGE); return 0;
        default: return cli_usage("serve", USAGE);
        }
    }
    if (optind < argc) return cli_usage("serve", USAGE);
    // signals are blocked before any thread starts, so that only sigwait below sees them
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    rl_error err = {0};
    cli_rag r;
    if (cli_rag_config(&r, config, model, &err)) {
        cli_rag_close(&r);
        return cli_report(&err);
    }
    rl_serve_opts o = rl_serve_defaults();
    o.host = host ? host : r.cfg.serve.host;
    o.port = port >= 0 ? (int)port : r.cfg.serve.port;
    o.parallel = parallel ? (int)parallel : r.cfg.serve.parallel;
    o.queue = queue >= 0 ? (int)queue : r.cfg.serve.queue;
    o.n_ctx = ctx ? (int)ctx : r.cfg.serve.context;
    o.max_tokens = max_tokens ? (int)max_tokens : r.cfg.serve.max_tokens;
    o.request_timeout_s = timeout > 0 ? timeout : r.cfg.serve.request_timeout_s;
    o.max_body = (size_t)r.cfg.serve.max_body_kb * 1024;
    if (conn_timeout) o.conn_timeout_s = (int)conn_timeout;
    o.k = r.cfg.retrieval.k;
    if (no_batch) o.batch_decode = -1;
    const char *mpath = model ? model : r.cfg.base_model;
    o.model_name = name ? name : mpath && *rl_path_basename(mpath) ? rl_path_basename(mpath) : "raftlm";
    const char *env = r.cfg.serve.api_key_env ? r.cfg.serve.api_key_env : "RAFTLM_API_KEY";
    o.api_key = key ? key : getenv(env);
    // The slots are the parallelism: BLAS threads inside each one-token matrix-vector product
    // only fight each other (measured: 10x slower with 2 slots on 2 cores). Each slot gets
    // cores / parallel BLAS threads (OpenBLAS's setting is process-wide, hence here in main).
    int per_slot = rl_cpu_count() / (o.parallel > 0 ? o.parallel : 1);
    if (per_slot < 1) per_slot = 1;
    openblas_set_num_threads(threads > 0 ? (int)threads : per_slot);
    o.threads = threads > 0 ? (int)threads : per_slot;

    // listen first: while the model loads, /health answers 503 {"status":"loading"}
    rl_server *srv = NULL;
    if (rl_server_start_loading(&srv, &o, &err)) {
        cli_rag_close(&r);
        return cli_report(&err);
    }
    printf("listening on http://%s:%d\n", o.host, rl_server_port(srv));
    fflush(stdout);
    rl_status s = cli_rag_load(&r, model, tokp, lora, store, no_store, (int)threads, quant, &err);
    rl_lora ad_lora[32];
    rl_serve_adapter ads[32];
    char *ad_names[32] = {0};
    int n_loaded = 0;
    for (int a = 0; a < n_ad && !s; a++) {
        const char *eq = strchr(ad_arg[a], '=');
        ad_names[a] = rl_xstrndup(ad_arg[a], (size_t)(eq - ad_arg[a]));
        if ((s = rl_lora_load_peft(&ad_lora[a], &r.cm.model.cfg, eq + 1, &err))) {
            rl_error_prefix(&err, "adapter %s", ad_names[a]);
            break;
        }
        n_loaded++;
        ads[a] = (rl_serve_adapter){.name = ad_names[a], .lora = &ad_lora[a]};
        rl_info("adapter %s: %s (r %d)", ad_names[a], eq + 1, ad_lora[a].r);
    }
    o.adapters = ads;
    o.n_adapters = n_loaded;
    // retrieval's embedder: /v1/embeddings, and dense/hybrid /v1/search over the store's index
    rl_embedder *emb = NULL;
    rl_dense *dense = NULL;
    if (!s && emb_model) {
        free(r.cfg.retrieval.embedding_model);
        r.cfg.retrieval.embedding_model = rl_xstrdup(emb_model);
    }
    if (!s && r.cfg.retrieval.embedding_model) {
        if (!(s = cli_embedder_open(&r.cfg, &emb, &err)) && r.store) {
            char *db = store ? rl_path_join(store, "store.db") : rl_config_store_path(&r.cfg);
            char *sdir = rl_path_dirname(db), *idx = rl_path_join(sdir, "vectors.idx");
            rl_error e2 = {0};
            if (rl_dense_open(&dense, emb, idx, &e2)) rl_warn("dense search is off: %s", e2.msg);
            free(db), free(sdir), free(idx);
        }
        o.embedder = emb;
        o.dense = dense;
        o.embedding_name = rl_path_basename(r.cfg.retrieval.embedding_model);
        if (!*o.embedding_name) o.embedding_name = "embedding";
    }
    o.search_mode = r.cfg.retrieval.mode;
    o.hybrid = (rl_hybrid_opts){r.cfg.retrieval.rrf_k, r.cfg.retrieval.bm25_weight, r.cfg.retrieval.dense_weight};
    o.q = r.q;
    if (!s) s = rl_server_ready(srv, &r.cm.model, r.cm.tok, r.store, &o, &err);
    if (!s) {
        rl_info("serving %s (%d slots, queue %d%s%s)", o.model_name, o.parallel, o.queue, r.store ? ", retrieval on" : "",
                o.api_key && *o.api_key ? ", API key required" : "");
        int sig = 0;
        sigwait(&sigs, &sig);
        rl_info("signal %d: draining (up to %g s)", sig, drain);
        int left = rl_server_drain(srv, drain);
        if (left) rl_warn("%d requests still running after %g s; cancelling them", left, drain);
    }
    rl_server_stop(srv);
    rl_dense_close(dense);
    rl_embedder_free(emb);
    for (int a = 0; a < n_ad; a++) {
        if (a < n_loaded) rl_lora_free(&ad_lora[a]);
        free(ad_names[a]);
    }
    cli_rag_close(&r);
    if (s) return cli_report(&err);
    rl_info("stopped");
    return 0;
}
