/* serve.h - the public door of src/serve: an OpenAI-compatible HTTP server (libmicrohttpd) over
 * one model, with retrieval from the project's store built in.
 *
 * Endpoints: GET /health, GET /v1/models, GET /metrics (Prometheus text), POST
 * /v1/chat/completions and /v1/completions (JSON, or server-sent events with `stream: true`),
 * POST /v1/search (BM25, dense or hybrid over the store, with a path-prefix filter), POST
 * /v1/embeddings (the retrieval embedder). Errors have OpenAI's shape
 * {"error":{"message","type","code"}}. docs/serve.md describes requests, extensions
 * (`raftlm` fields) and limits.
 *
 * Threads: one thread per connection (a slow or silent client holds only its own thread, and
 * MHD's connection timeout ends it), `parallel` generation workers, each with its own KV cache
 * over the shared weights, and a bounded queue between them (full: 503 with Retry-After).
 *
 * Ownership: the model, tokenizer and store are borrowed and must outlive the server;
 * rl_server_stop frees the server. No global state; several servers may run in one process. */
#ifndef RL_SERVE_H
#define RL_SERVE_H

#include <stddef.h>

#include "core/core.h"
#include "infer/infer.h"
#include "model/model.h"
#include "retrieve/retrieve.h"
#include "tokenizer/tokenizer.h"

/* A LoRA adapter served beside the base model: a request whose "model" is name generates with
 * it (unmerged: y = x W^T + scale (x A^T) B^T). Borrowed; must outlive the server. */
typedef struct rl_serve_adapter {
    const char *name;
    const rl_lora *lora;
} rl_serve_adapter;

typedef struct rl_serve_opts {
    const char *host;         /* IPv4 address or "localhost" to bind; default 127.0.0.1 */
    int port;                 /* 0: any free port (see rl_server_port) */
    int parallel;             /* generation slots (each its own KV cache) */
    int queue;                /* requests that may wait for a slot; beyond: 503 */
    int n_ctx;                /* context per slot in tokens; 0 = the model's */
    const char *api_key;      /* NULL or "": no key (refused unless host is loopback) */
    const char *model_name;   /* the id /v1/models lists and requests name */
    size_t max_body;          /* request body limit in bytes */
    int max_depth;            /* JSON nesting limit */
    int max_tokens;           /* default and upper limit of max_tokens */
    double request_timeout_s; /* per-request limit (queue + generation) */
    int conn_timeout_s;       /* a connection idle this long is closed (half-sent requests) */
    int max_connections;
    int k;                    /* chunks retrieved per chat request (default) */
    int threads;              /* threads of each slot's matrix products (quantized weights); <= 1: one */
    const rl_qmodel *q;       /* quantized weights (see infer.h), or NULL for float32 */
    const struct rl_serve_adapter *adapters; /* LoRA adapters selectable per request by name */
    int n_adapters;
    int batch_prompt;         /* as rl_infer_opts.batch_prompt (0 = auto) */
    int batch_decode;         /* continuous batching (with q and parallel > 1): the decoding slots step
                                 together, weights read once per step for all; 0 = on, -1 = off */
    /* retrieval's embedder (set with the model in rl_server_ready; borrowed): /v1/embeddings, and
     * dense/hybrid /v1/search when dense (an index over it) is set too. Used under a lock. */
    rl_embedder *embedder;
    rl_dense *dense;
    const char *embedding_name; /* the model id /v1/embeddings answers with (copied) */
    const char *search_mode;    /* /v1/search's default mode (NULL: hybrid with dense, else bm25) */
    rl_hybrid_opts hybrid;      /* rrf_k 0: defaults */
} rl_serve_opts;

/* Defaults: 127.0.0.1:8080, 4 slots, queue 16, 1 MiB bodies, depth 32, max_tokens 512,
 * 300 s per request, 30 s idle connections, 256 connections, k 5, model name "raftlm". */
rl_serve_opts rl_serve_defaults(void);

typedef struct rl_server rl_server;

/* Binds, starts the workers and the HTTP daemon. store may be NULL (no retrieval, /v1/search
 * answers 404). An API key is required when host is not a loopback address. */
rl_status rl_server_start(rl_server **out, rl_model *m, const rl_tokenizer *tok, rl_store *store,
                          const rl_serve_opts *o, rl_error *err);
/* The same in two steps, so that a server can answer while its model loads: start_loading binds
 * and serves /health as 503 {"status":"loading"} (every other endpoint 503 `model_loading`);
 * rl_server_ready attaches the model (the model-related fields of o: n_ctx, threads, q,
 * adapters, batch_prompt, batch_decode, embedder, dense, embedding_name, search_mode, hybrid) and starts the slots, after which /health is 200. */
rl_status rl_server_start_loading(rl_server **out, const rl_serve_opts *o, rl_error *err);
rl_status rl_server_ready(rl_server *s, rl_model *m, const rl_tokenizer *tok, rl_store *store, const rl_serve_opts *o,
                          rl_error *err);
/* The bound TCP port. */
int rl_server_port(const rl_server *s);
/* Stops taking requests (new ones get 503, /health 503) and waits up to timeout_s for the
 * ones in flight to finish; returns how many were still running when it gave up. */
int rl_server_drain(rl_server *s, double timeout_s);
/* Cancels what is left, stops the threads and frees the server (NULL is fine). */
void rl_server_stop(rl_server *s);

/* ---- answers from the knowledge base (also `raftlm ask`) ---- */

/* Prompt ids for a question answered from the store, in the layout the model was fine-tuned on:
 * the top-k BM25 chunks as rl_raft_prompt's <DOCUMENT> blocks, then the question, as the one user
 * turn of the tokenizer's chat template; without a template BOS + that text + "\n" (train/data.c's
 * raft layout). store may be NULL (then no documents). *hits (caller frees with rl_hits_free)
 * receives the chunks used; *ids (caller frees) the prompt. bos is used when the tokenizer has
 * none (-1: no BOS). The store is used from the calling thread only. */
rl_status rl_rag_prompt(const rl_tokenizer *tok, int bos, rl_store *store, const char *question, int k, int32_t **ids,
                        size_t *n_ids, rl_hit **hits, size_t *n_hits, rl_error *err);
/* The same layout from chunks the caller retrieved (any search mode); hits stay the caller's. */
rl_status rl_rag_prompt_hits(const rl_tokenizer *tok, int bos, const rl_hit *hits, size_t n_hits, const char *question,
                             int32_t **ids, size_t *n_ids, rl_error *err);
/* The same layout for plain chat messages (no retrieval): the chat template, or for a model
 * without one the contents joined by blank lines after BOS. */
rl_status rl_chat_prompt(const rl_tokenizer *tok, int bos, const rl_chat_msg *msgs, size_t n, int32_t **ids,
                         size_t *n_ids, rl_error *err);
/* BOS (the tokenizer's, else bos when >= 0, when add_bos) + the text's ids. Caller frees. */
rl_status rl_prompt_tokenize(const rl_tokenizer *tok, int bos, const char *text, int add_bos, int32_t **ids, size_t *n,
                             rl_error *err);

/* ---- helpers exposed for tests ---- */

/* Deepest nesting of arrays/objects in a JSON text (strings skipped), or -1 when it exceeds
 * limit (the scan stops there). */
int rl_json_depth(const char *s, size_t n, int limit);
/* The text after the last "<ANSWER>:" with surrounding space trimmed, or NULL. Caller frees. */
char *rl_raft_answer(const char *text);

#endif
