/* cmd_ask.c - `raftlm ask "question"`: what the server does for one chat request, from the
 * command line: the top-k chunks of the store for the question, the prompt in the training
 * layout (rl_rag_prompt), generation, then the answer (streamed to stdout), the text after
 * <ANSWER>: and the sources. --json prints one object instead. */
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/project.h"
#include "infer/infer.h"
#include "serve/serve.h"

static const char *USAGE =
    "[-c raftlm.yaml] [--model PATH] [--tokenizer PATH] [--lora DIR] [--store DIR | --no-retrieval]\n"
    "       [-k N] [-n MAX_TOKENS] [--temp T] [--seed S] [--quant f32|q8_0|q4_0] [--threads N] [--json] QUESTION...\n";

static int print_piece(void *ctx, const rl_gen_piece *pc) {
    fwrite(pc->text, 1, pc->len, stdout);
    fflush(stdout);
    return 0;
}

int cmd_ask(int argc, char **argv) {
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'},   {"model", required_argument, 0, 'm'},
        {"tokenizer", required_argument, 0, 'K'}, {"lora", required_argument, 0, 'l'},
        {"store", required_argument, 0, 's'},     {"no-retrieval", no_argument, 0, 'R'},
        {"temp", required_argument, 0, 't'},      {"seed", required_argument, 0, 'S'},
        {"json", no_argument, 0, 'J'},            {"threads", required_argument, 0, 'j'},
        {"quant", required_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},            {0, 0, 0, 0},
    };
    const char *config = NULL, *model = NULL, *tokp = NULL, *lora = NULL, *store = NULL, *quant = NULL;
    long k = 0, n_max = 0, threads = 0;
    double temp = 0;
    unsigned long long seed = 42;
    int no_ret = 0, json = 0, c;
    while ((c = getopt_long(argc, argv, "c:k:n:h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'c': config = optarg; break;
        case 'm': model = optarg; break;
        case 'K': tokp = optarg; break;
        case 'l': lora = optarg; break;
        case 's': store = optarg; break;
        case 'R': no_ret = 1; break;
        case 'q': quant = optarg; break;
        case 'J': json = 1; break;
        case 'k': k = strtol(optarg, &end, 10); if (*end || k < 1 || k > 100) return cli_usage("ask", USAGE); break;
        case 'n': n_max = strtol(optarg, &end, 10); if (*end || n_max < 1) return cli_usage("ask", USAGE); break;
        case 'j': threads = strtol(optarg, &end, 10); if (*end) return cli_usage("ask", USAGE); break;
        case 't': temp = strtod(optarg, &end); if (*end || temp < 0 || temp > 2) return cli_usage("ask", USAGE); break;
        case 'S': seed = strtoull(optarg, &end, 10); if (*end) return cli_usage("ask", USAGE); break;
        case 'h': printf("usage: raftlm ask %s", USAGE); return 0;
        default: return cli_usage("ask", USAGE);
        }
    }
    if (optind >= argc) return cli_usage("ask", USAGE);
    rl_buf q = {0};
    for (int i = optind; i < argc; i++) {
        if (q.len) rl_buf_putc(&q, ' ');
        rl_buf_puts(&q, argv[i]);
    }
    rl_error err = {0};
    cli_rag r;
    if (cli_rag_open(&r, config, model, tokp, lora, store, no_ret, (int)threads, quant, &err)) {
        rl_buf_free(&q);
        return cli_report(&err);
    }
    if (!k) k = r.cfg.retrieval.k;
    if (!n_max) n_max = r.cfg.serve.max_tokens;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    rl_hit *hits = NULL;
    size_t n_hits = 0;
    rl_status s;
    rl_embedder *emb = NULL;
    rl_dense *dense = NULL;
    if (r.store) { /* retrieval.mode, as search and eval: hybrid when there is an embedding model */
        const char *mode = cli_retrieval_mode(&r.cfg);
        if (strcmp(mode, "bm25") != 0) {
            rl_error e2 = {0};
            if (cli_dense_open(&r.cfg, &emb, &dense, &e2)) {
                rl_warn("%s retrieval is off (%s): using bm25", mode, e2.msg);
                mode = "bm25";
            }
        }
        rl_search_opts so = {.mode = mode, .k = (int)k,
                             .hybrid = {r.cfg.retrieval.rrf_k, r.cfg.retrieval.bm25_weight, r.cfg.retrieval.dense_weight}};
        s = rl_search(r.store, dense, &so, q.data, &hits, &n_hits, &err);
        if (!s) s = rl_rag_prompt_hits(r.cm.tok, r.cm.model.cfg.bos_id, hits, n_hits, q.data, &ids, &n_ids, &err);
    } else {
        rl_chat_msg m = {"user", q.data};
        s = rl_chat_prompt(r.cm.tok, r.cm.model.cfg.bos_id, &m, 1, &ids, &n_ids, &err);
    }
    rl_infer *inf = NULL;
    rl_infer_opts io = {.q = r.q, .n_threads = threads > 0 ? (int)threads : rl_cpu_count()};
    if (!s) s = rl_infer_new_ex(&inf, &r.cm.model, r.cm.tok, &io, &err);
    rl_gen_result res = {0};
    if (!s) {
        rl_gen_params p = {.sampling = rl_sampler_defaults(), .max_tokens = (int)n_max};
        p.sampling.temperature = (float)temp;
        p.sampling.seed = seed;
        s = rl_infer_generate(inf, ids, n_ids, &p, json ? NULL : print_piece, NULL, &res, &err);
    }
    if (!s) {
        char *answer = rl_raft_answer(res.text);
        if (json) {
            json_t *src = json_array();
            for (size_t i = 0; i < n_hits; i++)
                json_array_append_new(src, json_pack("{s:I,s:s,s:s,s:f}", "chunk_id", (json_int_t)hits[i].chunk_id, "doc",
                                                     hits[i].doc ? hits[i].doc : "", "heading",
                                                     hits[i].heading ? hits[i].heading : "", "score", hits[i].score));
            json_t *o = json_pack("{s:s,s:s%,s:o,s:o,s:s,s:i,s:i}", "question", q.data, "text", res.text, res.len,
                                  "answer", answer ? json_string(answer) : json_null(), "sources", src, "finish",
                                  rl_finish_name(res.finish), "prompt_tokens", res.n_prompt, "completion_tokens", res.n_gen);
            char *txt = json_dumps(o, JSON_INDENT(2));
            printf("%s\n", txt);
            free(txt);
            json_decref(o);
        } else {
            printf("\n");
            if (answer) printf("\nanswer: %s\n", answer);
            if (n_hits) printf("\nsources:\n");
            for (size_t i = 0; i < n_hits; i++)
                printf("  [%zu] %s%s%s (chunk %lld)\n", i + 1, hits[i].doc, hits[i].heading && *hits[i].heading ? " > " : "",
                       hits[i].heading ? hits[i].heading : "", (long long)hits[i].chunk_id);
        }
        free(answer);
        rl_info("%d prompt tokens, %d generated in %.2f s (%.1f tokens/s)", res.n_prompt, res.n_gen, res.t_gen,
                res.t_gen > 0 ? res.n_gen / res.t_gen : 0.0);
    }
    rl_gen_result_free(&res);
    rl_infer_free(inf);
    rl_hits_free(hits, n_hits);
    rl_dense_close(dense);
    rl_embedder_free(emb);
    free(ids);
    rl_buf_free(&q);
    cli_rag_close(&r);
    return s ? cli_report(&err) : 0;
}
