/* serve.c - the HTTP side of the server: libmicrohttpd plumbing, request limits, routing,
 * authentication, the slot workers and their bounded queue, metrics, drain and stop.
 * The OpenAI request parsing and response shapes live in api.c (serve_internal.h).
 *
 * How a request goes: MHD runs the access handler on the connection's own thread. The first
 * call checks the route, the API key and Content-Length; body bytes are collected up to
 * max_body (beyond it they are read and dropped, up to a hard cap, so that the client gets a
 * clean 413 rather than a reset); the last call validates (UTF-8, nesting depth), parses
 * (jansson) and turns the body into a job: prompt ids and generation parameters. The job goes
 * into the queue (or 503 when it is full); a worker slot takes it, generates into its own KV
 * cache and, for streams, appends SSE events to the job's buffer as tokens come. A non-streaming
 * request waits on the job; a streaming one returns a callback response whose reader waits for
 * bytes. While waiting, the connection's socket is polled for a hang-up, so a vanished client
 * cancels its job at the next token instead of holding a slot.
 *
 * Continuous batching (with quantized weights and several slots): each slot still generates on
 * its own thread, but the decoding steps of the slots that are generating at the same time run
 * as one batched forward (rl_infer_group), so the weights are read once per step for all of them;
 * a new request joins at the step after its prompt.
 *
 * Not done: IPv6, TLS (put a reverse proxy in front). */
#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "serve/serve_internal.h"

rl_serve_opts rl_serve_defaults(void) {
    rl_serve_opts o = {0};
    o.host = "127.0.0.1";
    o.port = 8080;
    o.parallel = 4;
    o.queue = 16;
    o.model_name = "raftlm";
    o.max_body = 1 << 20;
    o.max_depth = 32;
    o.max_tokens = 512;
    o.request_timeout_s = 300;
    o.conn_timeout_s = 30;
    o.max_connections = 256;
    o.k = 5;
    return o;
}

/* ---- metrics ---------------------------------------------------------------------------- */

static const double LAT_BUCKETS[N_LAT_BUCKETS] = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};

void srv_count_request(rl_server *s, const char *endpoint, unsigned code, double seconds) {
    pthread_mutex_lock(&s->mu);
    int i = 0;
    for (; i < s->n_counters; i++)
        if (s->counters[i].code == code && strcmp(s->counters[i].endpoint, endpoint) == 0) break;
    if (i == s->n_counters && s->n_counters < MAX_COUNTERS) {
        snprintf(s->counters[i].endpoint, sizeof s->counters[i].endpoint, "%s", endpoint);
        s->counters[i].code = code;
        s->counters[i].n = 0;
        s->n_counters++;
    }
    if (i < s->n_counters) s->counters[i].n++;
    for (int b = 0; b < N_LAT_BUCKETS; b++)
        if (seconds <= LAT_BUCKETS[b]) s->lat_bucket[b]++;
    s->lat_count++;
    s->lat_sum += seconds;
    pthread_mutex_unlock(&s->mu);
}

static char *metrics_text(rl_server *s) {
    rl_buf b = {0};
    uint64_t steps = 0, step_tokens = 0;
    pthread_mutex_lock(&s->mu);
    rl_infer_group *g = s->ready ? s->group : NULL;
    pthread_mutex_unlock(&s->mu);
    if (g) rl_infer_group_stats(g, &steps, &step_tokens); // the group's own lock, not under s->mu
    pthread_mutex_lock(&s->mu);
    rl_buf_puts(&b, "# HELP raftlm_requests_total HTTP requests by endpoint and status code.\n"
                    "# TYPE raftlm_requests_total counter\n");
    for (int i = 0; i < s->n_counters; i++)
        rl_buf_printf(&b, "raftlm_requests_total{endpoint=\"%s\",code=\"%u\"} %llu\n", s->counters[i].endpoint,
                      s->counters[i].code, (unsigned long long)s->counters[i].n);
    rl_buf_puts(&b, "# HELP raftlm_request_duration_seconds Time from the request to its last byte.\n"
                    "# TYPE raftlm_request_duration_seconds histogram\n");
    for (int i = 0; i < N_LAT_BUCKETS; i++)
        rl_buf_printf(&b, "raftlm_request_duration_seconds_bucket{le=\"%g\"} %llu\n", LAT_BUCKETS[i],
                      (unsigned long long)s->lat_bucket[i]);
    rl_buf_printf(&b, "raftlm_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)s->lat_count);
    rl_buf_printf(&b, "raftlm_request_duration_seconds_sum %.6f\n", s->lat_sum);
    rl_buf_printf(&b, "raftlm_request_duration_seconds_count %llu\n", (unsigned long long)s->lat_count);
    rl_buf_printf(&b,
                  "# HELP raftlm_prompt_tokens_total Prompt tokens processed.\n# TYPE raftlm_prompt_tokens_total counter\n"
                  "raftlm_prompt_tokens_total %llu\n"
                  "# HELP raftlm_prompt_tokens_cached_total Prompt tokens found in a slot's cache.\n"
                  "# TYPE raftlm_prompt_tokens_cached_total counter\nraftlm_prompt_tokens_cached_total %llu\n"
                  "# HELP raftlm_generated_tokens_total Tokens generated.\n# TYPE raftlm_generated_tokens_total counter\n"
                  "raftlm_generated_tokens_total %llu\n"
                  "# HELP raftlm_generation_seconds_total Time slots spent generating.\n"
                  "# TYPE raftlm_generation_seconds_total counter\nraftlm_generation_seconds_total %.6f\n"
                  "# HELP raftlm_requests_cancelled_total Generations stopped because the client went away.\n"
                  "# TYPE raftlm_requests_cancelled_total counter\nraftlm_requests_cancelled_total %llu\n"
                  "# HELP raftlm_requests_rejected_total Requests refused because the queue was full or the server draining.\n"
                  "# TYPE raftlm_requests_rejected_total counter\nraftlm_requests_rejected_total %llu\n"
                  "# HELP raftlm_queue_depth Requests waiting for a slot.\n# TYPE raftlm_queue_depth gauge\n"
                  "raftlm_queue_depth %d\n"
                  "# HELP raftlm_slots_busy Slots generating now.\n# TYPE raftlm_slots_busy gauge\nraftlm_slots_busy %d\n"
                  "# HELP raftlm_slots Generation slots.\n# TYPE raftlm_slots gauge\nraftlm_slots %d\n"
                  "# HELP raftlm_decode_steps_total Batched decoding steps (continuous batching).\n"
                  "# TYPE raftlm_decode_steps_total counter\nraftlm_decode_steps_total %llu\n"
                  "# HELP raftlm_decode_step_tokens_total Tokens decoded in those steps (per step: the batch).\n"
                  "# TYPE raftlm_decode_step_tokens_total counter\nraftlm_decode_step_tokens_total %llu\n",
                  (unsigned long long)s->prompt_tokens, (unsigned long long)s->cached_tokens,
                  (unsigned long long)s->gen_tokens, s->gen_seconds, (unsigned long long)s->cancelled,
                  (unsigned long long)s->rejected, s->n_queued, s->n_busy, s->o.parallel, (unsigned long long)steps,
                  (unsigned long long)step_tokens);
    pthread_mutex_unlock(&s->mu);
    return rl_buf_take(&b);
}

/* ---- jobs and the queue ----------------------------------------------------------------- */

void srv_job_release(srv_job *j) {
    pthread_mutex_lock(&j->mu);
    int left = --j->refs;
    pthread_mutex_unlock(&j->mu);
    if (left) return;
    api_job_free_request(j);
    rl_gen_result_free(&j->res);
    rl_buf_free(&j->out);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

srv_job *srv_job_new(rl_server *s) {
    srv_job *j = rl_xcalloc(1, sizeof *j);
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->srv = s;
    j->refs = 1;
    return j;
}

/* Queues j for a slot; 0 on success, -1 when the queue is full or the server draining. */
int srv_enqueue(rl_server *s, srv_job *j) {
    pthread_mutex_lock(&s->mu);
    if (s->draining || s->n_inflight >= s->o.parallel + s->o.queue) { // every slot busy, the queue full
        s->rejected++;
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    pthread_mutex_lock(&j->mu);
    j->refs++; // the worker's reference
    pthread_mutex_unlock(&j->mu);
    j->next = NULL;
    if (s->qtail) s->qtail->next = j;
    else s->qhead = j;
    s->qtail = j;
    s->n_queued++;
    s->n_inflight++;
    pthread_cond_signal(&s->cv_work);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static int on_piece(void *ctx, const rl_gen_piece *pc) {
    srv_job *j = ctx;
    if (j->stream) {
        pthread_mutex_lock(&j->mu);
        api_stream_piece(j, pc);
        pthread_cond_broadcast(&j->cv);
        pthread_mutex_unlock(&j->mu);
    }
    return j->cancel;
}

static void *worker_main(void *arg) {
    srv_slot *slot = arg;
    rl_server *s = slot->srv;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->qhead && !s->stopping) pthread_cond_wait(&s->cv_work, &s->mu);
        if (!s->qhead) { // stopping and nothing left
            pthread_mutex_unlock(&s->mu);
            break;
        }
        srv_job *j = s->qhead;
        s->qhead = j->next;
        if (!s->qhead) s->qtail = NULL;
        s->n_queued--;
        s->n_busy++;
        slot->current = j;
        int stopping = s->stopping;
        pthread_mutex_unlock(&s->mu);

        rl_gen_params gp = j->gp;
        gp.cancel = &j->cancel;
        gp.deadline = j->deadline;
        if (stopping) j->cancel = 1;
        const rl_lora *lora = j->lora ? j->lora : s->m->lora;
        if (lora != slot->last_lora) { // another adapter: the cached keys and values are not its own
            slot->model.lora = (rl_lora *)lora;
            rl_infer_reset(slot->inf);
            slot->last_lora = lora;
        }
        j->st = rl_infer_generate(slot->inf, j->ids, j->n_ids, &gp, on_piece, j, &j->res, &j->err);
        pthread_mutex_lock(&s->mu);
        slot->current = NULL;
        s->n_busy--;
        s->n_inflight--;
        if (!j->st) {
            s->prompt_tokens += (uint64_t)j->res.n_prompt;
            s->cached_tokens += (uint64_t)j->res.n_cached;
            s->gen_tokens += (uint64_t)j->res.n_gen;
            s->gen_seconds += j->res.t_prompt + j->res.t_gen;
            if (j->res.finish == RL_FINISH_CANCELLED && j->cancel) s->cancelled++;
        }
        pthread_cond_broadcast(&s->cv_idle);
        pthread_mutex_unlock(&s->mu);
        // the slot and the counters are updated before the client can see the end
        pthread_mutex_lock(&j->mu);
        if (j->stream) api_stream_end(j);
        j->done = 1;
        pthread_cond_broadcast(&j->cv);
        pthread_mutex_unlock(&j->mu);
        srv_job_release(j);
    }
    return NULL;
}

/* Waits until the job has news (bytes past *seen or done), polling the client's socket for a
 * hang-up every 100 ms: a client that went away cancels the job. Call with j->mu held. */
void srv_job_wait(srv_job *j, size_t seen) {
    while (!j->done && j->out.len <= seen) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&j->cv, &j->mu, &ts);
        if (j->fd >= 0 && !j->cancel) {
            struct pollfd p = {.fd = j->fd, .events = POLLRDHUP};
            if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) j->cancel = 1;
        }
    }
}

/* ---- HTTP ------------------------------------------------------------------------------- */

/* Hard cap on bytes read and dropped after a body went over max_body (then the connection is
 * closed); keeps the 413 clean for honest clients without reading forever from hostile ones. */
#define DRAIN_CAP (64u << 20)

typedef struct srv_req {
    rl_buf body;
    int too_big;
    size_t dropped;
    double t0;
    const char *endpoint; /* metrics label */
    int answered;
} srv_req;

enum MHD_Result srv_reply(struct MHD_Connection *c, unsigned code, const char *type, const char *body,
                          const char *retry_after) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    if (retry_after) MHD_add_response_header(r, "Retry-After", retry_after);
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

enum MHD_Result srv_error(rl_server *s, struct MHD_Connection *c, srv_req_info *ri, unsigned code, const char *type,
                          const char *errcode, const char *msg) {
    json_t *e = json_pack("{s:{s:s,s:s,s:s?}}", "error", "message", msg, "type", type, "code", errcode);
    char *txt = e ? json_dumps(e, JSON_COMPACT) : NULL;
    json_decref(e);
    enum MHD_Result r = srv_reply(c, code, "application/json", txt ? txt : "{\"error\":{}}",
                                  code == 503 ? "1" : NULL);
    free(txt);
    if (ri) ri->code = code;
    (void)s;
    return r;
}

enum MHD_Result srv_json(struct MHD_Connection *c, srv_req_info *ri, unsigned code, json_t *obj) {
    char *txt = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (!txt) return MHD_NO;
    enum MHD_Result r = srv_reply(c, code, "application/json", txt, NULL);
    free(txt);
    if (ri) ri->code = code;
    return r;
}

static int is_loopback(const char *host) {
    return strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0;
}

static int key_ok(const rl_server *s, struct MHD_Connection *c) {
    if (!s->api_key) return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return 0;
    h += 7;
    size_t a = strlen(h), b = strlen(s->api_key);
    unsigned diff = (unsigned)(a != b); // constant time over the key's length
    for (size_t i = 0; i < b; i++) diff |= (unsigned)((i < a ? (unsigned char)h[i] : 0) ^ (unsigned char)s->api_key[i]);
    return diff == 0;
}

int rl_json_depth(const char *p, size_t n, int limit) {
    int depth = 0, max = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (in_str) {
            if (ch == '\\') i++;
            else if (ch == '"') in_str = 0;
        } else if (ch == '"') {
            in_str = 1;
        } else if (ch == '[' || ch == '{') {
            if (++depth > max) max = depth;
            if (depth > limit) return -1;
        } else if (ch == ']' || ch == '}') {
            depth--;
        }
    }
    return max;
}

static enum MHD_Result dispatch(rl_server *s, struct MHD_Connection *c, const char *url, const char *method, srv_req *rq,
                                srv_req_info *ri) {
    int get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    if (strcmp(url, "/health") == 0) {
        ri->endpoint = "health";
        if (!get) return srv_error(s, c, ri, 405, "invalid_request_error", "method_not_allowed", "use GET");
        int draining, ready;
        pthread_mutex_lock(&s->mu);
        draining = s->draining;
        ready = s->ready;
        pthread_mutex_unlock(&s->mu);
        const char *st = draining ? "draining" : ready ? "ok" : "loading";
        return srv_json(c, ri, draining || !ready ? 503 : 200, json_pack("{s:s}", "status", st));
    }
    if (!key_ok(s, c))
        return srv_error(s, c, ri, 401, "invalid_request_error", "invalid_api_key",
                         "missing or wrong API key (send 'Authorization: Bearer KEY')");
    if (strcmp(url, "/metrics") == 0) {
        ri->endpoint = "metrics";
        if (!get) return srv_error(s, c, ri, 405, "invalid_request_error", "method_not_allowed", "use GET");
        char *m = metrics_text(s);
        enum MHD_Result r = srv_reply(c, 200, "text/plain; version=0.0.4", m, NULL);
        free(m);
        ri->code = 200;
        return r;
    }
    pthread_mutex_lock(&s->mu);
    int ready = s->ready;
    pthread_mutex_unlock(&s->mu);
    if (!ready) {
        ri->endpoint = "other";
        return srv_error(s, c, ri, 503, "server_error", "model_loading", "the model is still loading; retry shortly");
    }
    if (strcmp(url, "/v1/models") == 0 || strcmp(url, "/models") == 0) {
        ri->endpoint = "models";
        if (!get) return srv_error(s, c, ri, 405, "invalid_request_error", "method_not_allowed", "use GET");
        return srv_json(c, ri, 200, api_models(s));
    }
    if (strncmp(url, "/v1/models/", 11) == 0) {
        ri->endpoint = "models";
        const char *id = url + 11;
        int known = strcmp(id, s->model_name) == 0;
        for (int a = 0; a < s->o.n_adapters && !known; a++) known = strcmp(id, s->o.adapters[a].name) == 0;
        if (!known) return srv_error(s, c, ri, 404, "invalid_request_error", "model_not_found", "no such model");
        return srv_json(c, ri, 200, api_model_obj(s, id));
    }
    int kind = strcmp(url, "/v1/chat/completions") == 0 ? API_CHAT
               : strcmp(url, "/v1/completions") == 0     ? API_COMPLETION
               : strcmp(url, "/v1/search") == 0          ? API_SEARCH
               : strcmp(url, "/v1/embeddings") == 0      ? API_EMBEDDINGS
                                                         : -1;
    if (kind < 0) {
        ri->endpoint = "other";
        return srv_error(s, c, ri, 404, "invalid_request_error", "not_found", "no such endpoint");
    }
    ri->endpoint = kind == API_CHAT ? "chat" : kind == API_COMPLETION ? "completions" : kind == API_SEARCH ? "search" : "embeddings";
    if (!post) return srv_error(s, c, ri, 405, "invalid_request_error", "method_not_allowed", "use POST");
    if (rq->too_big) {
        char msg[128];
        snprintf(msg, sizeof msg, "the request body is larger than the limit (%zu bytes)", s->o.max_body);
        return srv_error(s, c, ri, 413, "invalid_request_error", "request_too_large", msg);
    }
    const char *body = rq->body.data ? rq->body.data : "";
    if (!rl_utf8_valid(body, rq->body.len))
        return srv_error(s, c, ri, 400, "invalid_request_error", "invalid_utf8", "the request body is not valid UTF-8");
    if (rl_json_depth(body, rq->body.len, s->o.max_depth) < 0) {
        char msg[96];
        snprintf(msg, sizeof msg, "the JSON is nested deeper than %d levels", s->o.max_depth);
        return srv_error(s, c, ri, 400, "invalid_request_error", "too_deep", msg);
    }
    json_error_t jerr;
    json_t *root = json_loadb(body, rq->body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        char msg[300];
        snprintf(msg, sizeof msg, "malformed JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        return srv_error(s, c, ri, 400, "invalid_request_error", "invalid_json", msg);
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return srv_error(s, c, ri, 400, "invalid_request_error", "invalid_json", "the body must be a JSON object");
    }
    enum MHD_Result r = kind == API_SEARCH       ? api_search(s, c, root, ri)
                        : kind == API_EMBEDDINGS ? api_embeddings(s, c, root, ri)
                                                 : api_generate(s, c, root, kind, ri);
    json_decref(root);
    return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls) {
    rl_server *s = cls;
    srv_req *rq = *con_cls;
    if (!rq) { // headers are in
        rq = rl_xcalloc(1, sizeof *rq);
        rq->t0 = rl_now();
        *con_cls = rq;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl) {
            char *end;
            unsigned long long n = strtoull(cl, &end, 10);
            if (n > s->o.max_body) rq->too_big = 1;
            if (n > DRAIN_CAP) { // not worth reading: answer now, MHD closes the connection
                srv_req_info ri = {.endpoint = "other"};
                rq->answered = 1;
                enum MHD_Result r = srv_error(s, c, &ri, 413, "invalid_request_error", "request_too_large",
                                              "the request body is larger than the limit");
                srv_count_request(s, ri.endpoint, ri.code, rl_now() - rq->t0);
                return r;
            }
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (rq->answered) return MHD_YES;
        if (!rq->too_big && rq->body.len + n > s->o.max_body) {
            rq->too_big = 1;
            rl_buf_free(&rq->body);
        }
        if (rq->too_big) {
            rq->dropped += n;
            return rq->dropped > DRAIN_CAP ? MHD_NO : MHD_YES;
        }
        rl_buf_append(&rq->body, upload_data, n);
        return MHD_YES;
    }
    if (rq->answered) return MHD_YES;
    rq->answered = 1;
    srv_req_info ri = {.endpoint = "other", .t0 = rq->t0};
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    ri.fd = ci ? ci->connect_fd : -1;
    enum MHD_Result r = dispatch(s, c, url, method, rq, &ri);
    if (!ri.streaming) srv_count_request(s, ri.endpoint, ri.code, rl_now() - rq->t0);
    return r;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    srv_req *rq = *con_cls;
    if (!rq) return;
    rl_buf_free(&rq->body);
    free(rq);
    *con_cls = NULL;
}

rl_status rl_server_start_loading(rl_server **out, const rl_serve_opts *opts, rl_error *err) {
    *out = NULL;
    rl_serve_opts o = opts ? *opts : rl_serve_defaults();
    rl_serve_opts d = rl_serve_defaults();
    if (!o.host || !*o.host) o.host = d.host;
    if (!o.model_name || !*o.model_name) o.model_name = d.model_name;
    if (o.parallel <= 0) o.parallel = 1;
    if (o.queue < 0) o.queue = 0;
    if (!o.max_body) o.max_body = d.max_body;
    if (o.max_depth <= 0) o.max_depth = d.max_depth;
    if (o.max_tokens <= 0) o.max_tokens = d.max_tokens;
    if (o.request_timeout_s <= 0) o.request_timeout_s = d.request_timeout_s;
    if (o.conn_timeout_s <= 0) o.conn_timeout_s = d.conn_timeout_s;
    if (o.max_connections <= 0) o.max_connections = d.max_connections;
    if (o.k <= 0) o.k = d.k;
    if (o.port < 0 || o.port > 65535) return rl_fail(err, RL_EINVAL, "serve: port %d", o.port);
    int has_key = o.api_key && *o.api_key;
    if (!has_key && !is_loopback(o.host))
        return rl_fail(err, RL_EINVAL,
                       "serve: binding to %s (not loopback) needs an API key (--api-key or the environment variable "
                       "named by serve.api_key_env)", o.host);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o.port)};
    if (inet_pton(AF_INET, strcmp(o.host, "localhost") == 0 ? "127.0.0.1" : o.host, &sa.sin_addr) != 1)
        return rl_fail(err, RL_EINVAL, "serve: '%s' is not an IPv4 address", o.host);

    rl_server *s = rl_xcalloc(1, sizeof *s);
    s->o = o;
    s->host = rl_xstrdup(o.host);
    s->model_name = rl_xstrdup(o.model_name);
    s->o.host = s->host;
    s->o.model_name = s->model_name;
    s->api_key = has_key ? rl_xstrdup(o.api_key) : NULL;
    s->o.api_key = s->api_key;
    s->o.q = NULL, s->o.adapters = NULL, s->o.n_adapters = 0; // set by rl_server_ready
    s->o.embedder = NULL, s->o.dense = NULL, s->o.embedding_name = NULL, s->o.search_mode = NULL;
    s->created = (long long)time(NULL);
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->store_mu, NULL);
    pthread_mutex_init(&s->embed_mu, NULL);
    pthread_cond_init(&s->cv_work, NULL);
    pthread_cond_init(&s->cv_idle, NULL);
    s->slots = rl_xcalloc((size_t)o.parallel, sizeof *s->slots);
    s->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ITC, 0, NULL, NULL,
                            on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)o.conn_timeout_s, MHD_OPTION_CONNECTION_LIMIT, (unsigned)o.max_connections,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                            (size_t)64 * 1024, MHD_OPTION_END);
    if (!s->d) {
        rl_server_stop(s);
        return rl_fail(err, RL_EIO, "serve: cannot listen on %s:%d (in use, or not an address of this machine)", o.host,
                       o.port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : o.port;
    *out = s;
    return RL_OK;
}

rl_status rl_server_ready(rl_server *s, rl_model *m, const rl_tokenizer *tok, rl_store *store, const rl_serve_opts *o,
                          rl_error *err) {
    pthread_mutex_lock(&s->mu);
    int already = s->ready || s->slots[0].inf;
    pthread_mutex_unlock(&s->mu);
    if (already) return rl_fail(err, RL_EINVAL, "serve: the server already has its model");
    if (!m || !tok) return rl_fail(err, RL_EINVAL, "serve: a model and a tokenizer are needed");
    rl_serve_opts def = rl_serve_defaults();
    if (!o) o = &def;
    rl_status st = RL_OK;
    if (o->n_adapters > 0 && o->q) st = rl_fail(err, RL_EUNSUPPORTED, "serve: adapters need float32 weights (no --quant)");
    // each slot decodes through its own shallow copy of the model (shared weights), whose adapter
    // pointer it sets per request; its cache is sized for the largest adapter rank
    const rl_lora *widest = m->lora;
    for (int a = 0; a < o->n_adapters && !st; a++) {
        const rl_lora *lo = o->adapters[a].lora;
        if (!lo || !o->adapters[a].name || !*o->adapters[a].name)
            st = rl_fail(err, RL_EINVAL, "serve: adapter %d has no name or weights", a);
        else if (strcmp(o->adapters[a].name, s->model_name) == 0)
            st = rl_fail(err, RL_EINVAL, "serve: adapter name '%s' is the model's", s->model_name);
        else if (!widest || lo->r > widest->r) widest = lo;
        for (int b = 0; b < a && !st; b++)
            if (strcmp(o->adapters[a].name, o->adapters[b].name) == 0)
                st = rl_fail(err, RL_EINVAL, "serve: two adapters named '%s'", o->adapters[a].name);
    }
    // continuous batching: the slots' decoding steps run as one batched forward (infer.h)
    if (!st && o->q && s->o.parallel > 1 && o->batch_decode >= 0) st = rl_infer_group_new(&s->group, err);
    for (int i = 0; i < s->o.parallel && !st; i++) {
        s->slots[i].srv = s;
        s->slots[i].model = *m;
        s->slots[i].model.lora = (rl_lora *)widest;
        rl_infer_opts io = {.n_ctx = o->n_ctx, .q = o->q, .n_threads = o->threads, .batch_prompt = o->batch_prompt,
                            .group = s->group};
        st = rl_infer_new_ex(&s->slots[i].inf, &s->slots[i].model, tok, &io, err);
        s->slots[i].model.lora = m->lora;
        s->slots[i].last_lora = m->lora;
    }
    if (st) {
        for (int i = 0; i < s->o.parallel; i++) rl_infer_free(s->slots[i].inf), s->slots[i].inf = NULL;
        rl_infer_group_free(s->group);
        s->group = NULL;
        return st;
    }
    pthread_mutex_lock(&s->mu);
    s->m = m;
    s->tok = tok;
    s->store = store;
    s->o.n_ctx = o->n_ctx;
    s->o.threads = o->threads;
    s->o.q = o->q;
    s->o.adapters = o->adapters;
    s->o.n_adapters = o->n_adapters;
    s->o.batch_prompt = o->batch_prompt;
    s->o.batch_decode = o->batch_decode;
    s->o.embedder = o->embedder;
    s->o.dense = o->embedder ? o->dense : NULL;
    s->embedding_name = rl_xstrdup(o->embedding_name ? o->embedding_name : "embedding");
    s->o.embedding_name = s->embedding_name;
    s->o.search_mode = o->search_mode;
    s->o.hybrid = o->hybrid;
    s->n_ctx = rl_infer_n_ctx(s->slots[0].inf);
    for (int i = 0; i < s->o.parallel && !st; i++) {
        if (pthread_create(&s->slots[i].thread, NULL, worker_main, &s->slots[i]) != 0) {
            st = rl_fail(err, RL_EINTERNAL, "serve: cannot start a worker thread");
            break;
        }
        s->slots[i].started = 1;
    }
    s->ready = !st;
    pthread_mutex_unlock(&s->mu);
    return st;
}

rl_status rl_server_start(rl_server **out, rl_model *m, const rl_tokenizer *tok, rl_store *store,
                          const rl_serve_opts *o, rl_error *err) {
    rl_status st = rl_server_start_loading(out, o, err);
    if (st) return st;
    if ((st = rl_server_ready(*out, m, tok, store, o, err))) {
        rl_server_stop(*out);
        *out = NULL;
    }
    return st;
}

int rl_server_port(const rl_server *s) { return s->port; }

int rl_server_drain(rl_server *s, double timeout_s) {
    pthread_mutex_lock(&s->mu);
    s->draining = 1;
    double until = rl_now() + timeout_s;
    while (s->n_inflight > 0 && rl_now() < until) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&s->cv_idle, &s->mu, &ts);
    }
    int left = s->n_inflight;
    pthread_mutex_unlock(&s->mu);
    return left;
}

void rl_server_stop(rl_server *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->draining = 1;
    s->stopping = 1;
    // queued and running jobs end at their next token, so that streams end and the connection
    // threads waiting on them return before MHD joins them
    for (srv_job *j = s->qhead; j; j = j->next) j->cancel = 1;
    for (int i = 0; s->slots && i < s->o.parallel; i++)
        if (s->slots[i].current) s->slots[i].current->cancel = 1;
    pthread_cond_broadcast(&s->cv_work);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->o.parallel; i++)
        if (s->slots && s->slots[i].started) pthread_join(s->slots[i].thread, NULL);
    if (s->d) MHD_stop_daemon(s->d);
    for (int i = 0; s->slots && i < s->o.parallel; i++) rl_infer_free(s->slots[i].inf);
    rl_infer_group_free(s->group); // after its contexts
    // (slots without a started thread exist when rl_server_ready was never called or failed)
    free(s->slots);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->store_mu);
    pthread_mutex_destroy(&s->embed_mu);
    free(s->embedding_name);
    pthread_cond_destroy(&s->cv_work);
    pthread_cond_destroy(&s->cv_idle);
    free(s->host);
    free(s->model_name);
    free(s->api_key);
    free(s);
}
