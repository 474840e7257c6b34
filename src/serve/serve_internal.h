/* serve_internal.h - what serve.c (HTTP, slots, queue) and api.c (OpenAI requests and
 * responses) share inside src/serve. */
#ifndef RL_SERVE_INTERNAL_H
#define RL_SERVE_INTERNAL_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>

#include "infer/infer.h"
#include "serve/serve.h"

enum { API_CHAT = 0, API_COMPLETION = 1, API_SEARCH = 2, API_EMBEDDINGS = 3 };

#define MAX_COUNTERS 64
#define N_LAT_BUCKETS 12

typedef struct srv_job srv_job;

typedef struct srv_slot {
    struct rl_server *srv;
    rl_infer *inf;
    pthread_t thread;
    int started;
    srv_job *current; /* under srv->mu */
    rl_model model;   /* a shallow copy of the served model: its own adapter pointer */
    const rl_lora *last_lora;
} srv_slot;

struct rl_server {
    rl_serve_opts o; /* strings point at the copies below */
    char *host, *model_name, *api_key;
    rl_model *m;
    const rl_tokenizer *tok;
    rl_store *store;
    pthread_mutex_t store_mu; /* the store is one SQLite connection */
    pthread_mutex_t embed_mu; /* the embedder is used by one thread at a time (taken after store_mu) */
    char *embedding_name;
    struct MHD_Daemon *d;
    rl_infer_group *group; /* continuous batching of the slots' decoding steps, or NULL */
    int port, n_ctx;
    long long created;

    pthread_mutex_t mu; /* everything below */
    pthread_cond_t cv_work, cv_idle;
    srv_job *qhead, *qtail;
    int n_queued, n_busy, n_inflight;
    int draining, stopping;
    int ready; /* a model is attached and the slots run */
    srv_slot *slots;
    uint64_t next_id;
    /* metrics */
    struct {
        char endpoint[16];
        unsigned code;
        uint64_t n;
    } counters[MAX_COUNTERS];
    int n_counters;
    uint64_t lat_bucket[N_LAT_BUCKETS], lat_count;
    double lat_sum, gen_seconds;
    uint64_t prompt_tokens, cached_tokens, gen_tokens, cancelled, rejected;
};

/* One generation request, shared by the connection thread and a worker (refcounted). */
struct srv_job {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    srv_job *next; /* queue link, under srv->mu */
    struct rl_server *srv;
    /* the request (read-only once queued) */
    int kind, stream, include_usage, logprobs;
    const rl_lora *lora; /* the adapter the request named (NULL: the model as served) */
    char *model_id; /* the id the response names (owned) */
    int32_t *ids;
    size_t n_ids;
    rl_gen_params gp;
    char **stop;
    int n_stop;
    rl_logit_bias *bias;
    char id[48];
    long long created;
    json_t *raftlm; /* the "raftlm" extension object of the response (sources, retrieval) */
    double deadline, t0;
    const char *endpoint;
    int fd; /* the client's socket, polled for a hang-up while waiting */
    /* progress, under mu */
    volatile int cancel;
    int done;
    rl_buf out; /* SSE bytes not yet sent (streams) */
    size_t sent;
    rl_status st;
    rl_error err;
    rl_gen_result res;
};

typedef struct srv_req_info {
    const char *endpoint;
    unsigned code;
    int fd;
    int streaming; /* the response is a stream: it is counted when it ends */
    double t0;
} srv_req_info;

/* serve.c */
srv_job *srv_job_new(struct rl_server *s);
void srv_job_release(srv_job *j);
int srv_enqueue(struct rl_server *s, srv_job *j);
void srv_job_wait(srv_job *j, size_t seen);
void srv_count_request(struct rl_server *s, const char *endpoint, unsigned code, double seconds);
enum MHD_Result srv_reply(struct MHD_Connection *c, unsigned code, const char *type, const char *body,
                          const char *retry_after);
enum MHD_Result srv_error(struct rl_server *s, struct MHD_Connection *c, srv_req_info *ri, unsigned code,
                          const char *type, const char *errcode, const char *msg);
/* Replies with obj (consumed) as JSON. */
enum MHD_Result srv_json(struct MHD_Connection *c, srv_req_info *ri, unsigned code, json_t *obj);

/* api.c */
json_t *api_models(struct rl_server *s);
json_t *api_model_obj(struct rl_server *s, const char *id);
enum MHD_Result api_search(struct rl_server *s, struct MHD_Connection *c, json_t *root, srv_req_info *ri);
enum MHD_Result api_generate(struct rl_server *s, struct MHD_Connection *c, json_t *root, int kind, srv_req_info *ri);
void api_stream_piece(srv_job *j, const rl_gen_piece *pc); /* j->mu held */
void api_stream_end(srv_job *j);                           /* j->mu held */
void api_job_free_request(srv_job *j);

/* embeddings.c */
enum MHD_Result api_embeddings(struct rl_server *s, struct MHD_Connection *c, json_t *root, srv_req_info *ri);

#endif
