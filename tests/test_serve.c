/* test_serve.c - the OpenAI-compatible server with the real stories260K model, started
 * in-process on 127.0.0.1 (a free port) and spoken to over raw sockets: greedy text equal to
 * `raftlm generate` (plain and streamed), /health, /v1/models, /v1/search and answers from a
 * store, every kind of hostile request (each gets its status and OpenAI-shaped error while the
 * server keeps serving), a full queue, a stalled and a vanished client, the API key, drain, and
 * `raftlm serve` as a process stopped by SIGTERM. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "serve/serve.h"
#include "test.h"

/* ---- a tiny HTTP client ---- */

static int t_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void t_send(int fd, const char *data, size_t len) {
    while (len) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n <= 0) return; // the server may close early (413): read its answer anyway
        data += n;
        len -= (size_t)n;
    }
}

/* Reads until EOF (or timeout_ms of silence); returns what came. */
static char *t_recv_all(int fd, int timeout_ms) {
    rl_buf b = {0};
    char chunk[65536];
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, timeout_ms) <= 0) break;
        ssize_t n = recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0) break;
        rl_buf_append(&b, chunk, (size_t)n);
    }
    return b.data ? rl_buf_take(&b) : rl_xstrdup("");
}

typedef struct resp {
    int status;
    char *head, *body; /* body: de-chunked */
} resp;

static void resp_free(resp *r) {
    free(r->head);
    free(r->body);
}

static void parse_response(const char *raw, resp *r) {
    r->status = 0;
    sscanf(raw, "HTTP/1.%*d %d", &r->status);
    const char *sep = strstr(raw, "\r\n\r\n");
    r->head = sep ? rl_xstrndup(raw, (size_t)(sep - raw)) : rl_xstrdup(raw);
    const char *body = sep ? sep + 4 : "";
    if (strcasestr(r->head, "transfer-encoding: chunked")) {
        rl_buf b = {0};
        const char *p = body;
        for (;;) {
            char *end;
            unsigned long n = strtoul(p, &end, 16);
            if (end == p || n == 0) break;
            p = strstr(end, "\r\n");
            if (!p) break;
            p += 2;
            if (strlen(p) < n) break;
            rl_buf_append(&b, p, n);
            p += n + 2;
        }
        r->body = b.data ? rl_buf_take(&b) : rl_xstrdup("");
    } else {
        r->body = rl_xstrdup(body);
    }
}

static resp http(int port, const char *method, const char *path, const char *body, const char *extra_headers) {
    resp r = {0};
    int fd = t_connect(port);
    if (fd < 0) {
        r.head = rl_xstrdup("");
        r.body = rl_xstrdup("");
        return r;
    }
    char *req = t_fmt("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%sContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      method, path, extra_headers ? extra_headers : "", body ? strlen(body) : 0);
    t_send(fd, req, strlen(req));
    if (body) t_send(fd, body, strlen(body));
    char *raw = t_recv_all(fd, 20000);
    parse_response(raw, &r);
    free(raw);
    free(req);
    close(fd);
    return r;
}

static resp post(int port, const char *path, const char *body) { return http(port, "POST", path, body, NULL); }

/* Waits (up to 20 s) until /health says 200: `raftlm serve` listens before its model is loaded. */
static int wait_ready(int port) {
    for (int i = 0; i < 400; i++) {
        resp r = http(port, "GET", "/health", NULL, NULL);
        int st = r.status;
        resp_free(&r);
        if (st == 200) return 1;
        usleep(50000);
    }
    return 0;
}

static json_t *jbody(const resp *r) { return json_loads(r->body, 0, NULL); }

/* error bodies are {"error":{"message","type","code"}} */
static void check_error(const resp *r, int status, const char *code) {
    CHECK_MSG(r->status == status, "status %d, want %d (%s)", r->status, status, r->body);
    json_t *j = jbody(r);
    json_t *e = json_object_get(j, "error");
    CHECK_MSG(json_is_string(json_object_get(e, "message")) && json_is_string(json_object_get(e, "type")),
              "not an OpenAI error body: %s", r->body);
    const char *c = json_string_value(json_object_get(e, "code"));
    CHECK_MSG(c && strcmp(c, code) == 0, "error code %s, want %s", c ? c : "(none)", code);
    json_decref(j);
}

/* Concatenates the deltas (chat) or texts (completions) of an SSE body; *done: ended with [DONE]. */
static char *sse_text(const char *body, int chat, int *done, json_t **last_usage) {
    rl_buf b = {0};
    *done = 0;
    const char *p = body;
    while ((p = strstr(p, "data: "))) {
        p += 6;
        const char *e = strstr(p, "\n\n");
        if (!e) break;
        if (strncmp(p, "[DONE]", 6) == 0) {
            *done = 1;
            CHECK_EQ_STR(e + 2, ""); // nothing after [DONE]
            break;
        }
        json_t *j = json_loadb(p, (size_t)(e - p), 0, NULL);
        CHECK_MSG(j != NULL, "bad SSE event: %.*s", (int)(e - p), p);
        json_t *ch = json_array_get(json_object_get(j, "choices"), 0);
        json_t *t = chat ? json_object_get(json_object_get(ch, "delta"), "content") : json_object_get(ch, "text");
        if (json_is_string(t)) rl_buf_append(&b, json_string_value(t), json_string_length(t));
        if (last_usage && json_object_get(j, "usage")) {
            json_decref(*last_usage);
            *last_usage = json_incref(json_object_get(j, "usage"));
        }
        json_decref(j);
        p = e + 2;
    }
    return b.data ? rl_buf_take(&b) : rl_xstrdup("");
}

static float frand(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((*s >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}

/* ---- the server under test ---- */

typedef struct fixture {
    rl_model m;
    rl_tokenizer *tok;
    rl_store *store;
    rl_server *srv;
    int port;
    char *bin, *tokp, *dir;
} fixture;

static char *stories(const char *file) {
    const char *sh = t_shared();
    if (!sh) return NULL;
    char *p = t_fmt("%s/models/stories260K/%s", sh, file);
    if (!rl_path_exists(p)) return free(p), NULL;
    return p;
}

static rl_store *make_store(const char *dir) {
    char *docs = rl_path_join(dir, "docs"), *db = rl_path_join(dir, "store.db");
    t_write_str(docs, "garden.md", "# Garden\n\n## Watering\n\nThe tomato beds are watered every Tuesday at 7 am by Ben.\n");
    t_write_str(docs, "ball.md", "# Toys\n\nLily keeps the big red ball in the blue box under the stairs.\n");
    rl_store *s;
    rl_error err;
    RL_ASSERT(rl_store_open(&s, db, NULL, &err) == RL_OK);
    const char *paths[] = {docs};
    rl_ingest_opts o = {.paths = paths, .n_paths = 1, .max_file_bytes = 1 << 20, .chunk = {.size = 64, .overlap = 8}};
    rl_ingest_report r;
    RL_ASSERT(rl_ingest(s, &o, &r, &err) == RL_OK);
    rl_ingest_report_free(&r);
    free(docs);
    free(db);
    return s;
}

static void start(fixture *f, rl_serve_opts *o, int with_store) {
    memset(f, 0, sizeof *f);
    f->bin = stories("stories260K.bin");
    f->tokp = stories("tok512.bin");
    if (!f->bin || !f->tokp) SKIP("../shared/models/stories260K is not here (a clone without the shared folder)");
    rl_error err = {0};
    CHECK_OK(rl_model_load(&f->m, f->bin, &err));
    CHECK_OK(rl_tok_load(&f->tok, f->tokp, &err));
    f->dir = t_tmpdir();
    if (with_store) f->store = make_store(f->dir);
    o->host = "127.0.0.1";
    o->port = 0;
    o->model_name = "stories260K";
    rl_status st = rl_server_start(&f->srv, &f->m, f->tok, f->store, o, &err);
    CHECK_MSG(st == RL_OK, "server did not start: %s", err.msg);
    if (st) exit(1);
    f->port = rl_server_port(f->srv);
    CHECK(f->port > 0);
}

static void stop(fixture *f) {
    rl_server_stop(f->srv);
    if (f->store) rl_store_close(f->store);
    rl_tok_free(f->tok);
    rl_model_free(&f->m);
    free(f->bin);
    free(f->tokp);
    free(f->dir);
}

static char *generate_text(const fixture *f, const char *prompt, int n) {
    char *out = NULL;
    int rc = t_run(t_fmt("%s generate --model %s --tokenizer %s --prompt '%s' --temp 0 -n %d 2>/dev/null", t_bin(), f->bin,
                         f->tokp, prompt, n), &out, 0);
    CHECK_EQ_INT(rc, 0);
    return out;
}

TEST(serve_greedy_equals_generate_plain_and_streamed) {
    rl_serve_opts o = rl_serve_defaults();
    o.parallel = 2;
    fixture f;
    start(&f, &o, 0);
    char *want = generate_text(&f, "Once upon a time", 60);
    CHECK(strlen(want) > 100);
    // chat
    resp r = post(f.port, "/v1/chat/completions",
                  "{\"model\":\"stories260K\",\"messages\":[{\"role\":\"user\",\"content\":\"Once upon a time\"}],"
                  "\"temperature\":0,\"max_tokens\":60}");
    CHECK_EQ_INT(r.status, 200);
    CHECK_CONTAINS(r.head, "application/json");
    json_t *j = jbody(&r);
    json_t *ch = json_array_get(json_object_get(j, "choices"), 0);
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(ch, "message"), "content")), want);
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(ch, "message"), "role")), "assistant");
    CHECK_EQ_STR(json_string_value(json_object_get(ch, "finish_reason")), "length");
    CHECK_EQ_STR(json_string_value(json_object_get(j, "object")), "chat.completion");
    json_t *u = json_object_get(j, "usage");
    CHECK_EQ_INT(json_integer_value(json_object_get(u, "completion_tokens")), 60);
    CHECK_EQ_INT(json_integer_value(json_object_get(u, "prompt_tokens")), 5); // BOS + 4
    CHECK_EQ_INT(json_integer_value(json_object_get(u, "total_tokens")), 65);
    json_decref(j);
    resp_free(&r);
    // completions
    r = post(f.port, "/v1/completions", "{\"model\":\"stories260K\",\"prompt\":\"Once upon a time\",\"temperature\":0,\"max_tokens\":60}");
    CHECK_EQ_INT(r.status, 200);
    j = jbody(&r);
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(json_object_get(j, "choices"), 0), "text")), want);
    CHECK_EQ_STR(json_string_value(json_object_get(j, "object")), "text_completion");
    json_decref(j);
    resp_free(&r);
    // streamed chat and completions: the deltas concatenate to the same text, [DONE] ends them
    for (int chat = 0; chat < 2; chat++) {
        r = post(f.port, chat ? "/v1/chat/completions" : "/v1/completions",
                 chat ? "{\"messages\":[{\"role\":\"user\",\"content\":\"Once upon a time\"}],\"temperature\":0,"
                        "\"max_tokens\":60,\"stream\":true,\"stream_options\":{\"include_usage\":true}}"
                      : "{\"prompt\":\"Once upon a time\",\"temperature\":0,\"max_tokens\":60,\"stream\":true}");
        CHECK_EQ_INT(r.status, 200);
        CHECK_CONTAINS(r.head, "text/event-stream");
        int done;
        json_t *usage = NULL;
        char *got = sse_text(r.body, chat, &done, &usage);
        CHECK_EQ_STR(got, want);
        CHECK(done);
        CHECK_MSG(usage && json_integer_value(json_object_get(usage, "completion_tokens")) == 60, "usage missing: %s", r.body);
        json_decref(usage);
        if (chat) CHECK_CONTAINS(r.body, "\"object\":\"chat.completion.chunk\"");
        if (chat) CHECK_CONTAINS(r.body, "\"delta\":{\"role\":\"assistant\"");
        free(got);
        resp_free(&r);
    }
    // a stop string and the same seed twice at temperature 1
    r = post(f.port, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"temperature\":0,\"max_tokens\":60,\"stop\":[\"Lily\"]}");
    j = jbody(&r);
    ch = json_array_get(json_object_get(j, "choices"), 0);
    CHECK_EQ_STR(json_string_value(json_object_get(ch, "text")), ", there was a little girl named ");
    CHECK_EQ_STR(json_string_value(json_object_get(ch, "finish_reason")), "stop");
    json_decref(j);
    resp_free(&r);
    char *seeded[2];
    for (int i = 0; i < 2; i++) {
        r = post(f.port, "/v1/completions", "{\"prompt\":\"Lily\",\"temperature\":1,\"top_p\":0.9,\"seed\":11,\"max_tokens\":30}");
        j = jbody(&r);
        seeded[i] = rl_xstrdup(json_string_value(json_object_get(json_array_get(json_object_get(j, "choices"), 0), "text")));
        json_decref(j);
        resp_free(&r);
    }
    CHECK_EQ_STR(seeded[0], seeded[1]);
    free(seeded[0]);
    free(seeded[1]);
    // logprobs
    r = post(f.port, "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"Lily\"}],\"temperature\":0,"
                                             "\"max_tokens\":3,\"logprobs\":true,\"top_logprobs\":2}");
    j = jbody(&r);
    json_t *content = json_object_get(json_object_get(json_array_get(json_object_get(j, "choices"), 0), "logprobs"), "content");
    CHECK_EQ_INT(json_array_size(content), 3);
    json_t *t0 = json_array_get(content, 0);
    CHECK(json_real_value(json_object_get(t0, "logprob")) <= 0);
    CHECK_EQ_INT(json_array_size(json_object_get(t0, "top_logprobs")), 2);
    json_decref(j);
    resp_free(&r);
    free(want);
    stop(&f);
}

TEST(serve_health_models_metrics_and_routes) {
    rl_serve_opts o = rl_serve_defaults();
    o.parallel = 1;
    fixture f;
    start(&f, &o, 0);
    resp r = http(f.port, "GET", "/health", NULL, NULL);
    CHECK_EQ_INT(r.status, 200);
    CHECK_CONTAINS(r.body, "\"status\":\"ok\"");
    resp_free(&r);
    r = http(f.port, "GET", "/v1/models", NULL, NULL);
    CHECK_EQ_INT(r.status, 200);
    json_t *j = jbody(&r);
    CHECK_EQ_STR(json_string_value(json_object_get(j, "object")), "list");
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(json_object_get(j, "data"), 0), "id")), "stories260K");
    json_decref(j);
    resp_free(&r);
    r = http(f.port, "GET", "/v1/models/stories260K", NULL, NULL);
    CHECK_EQ_INT(r.status, 200);
    resp_free(&r);
    r = http(f.port, "GET", "/v1/nothing", NULL, NULL);
    check_error(&r, 404, "not_found");
    resp_free(&r);
    r = http(f.port, "GET", "/v1/chat/completions", NULL, NULL);
    check_error(&r, 405, "method_not_allowed");
    resp_free(&r);
    r = post(f.port, "/v1/search", "{\"query\":\"ball\"}");
    check_error(&r, 404, "no_store");
    resp_free(&r);
    r = post(f.port, "/v1/completions", "{\"prompt\":\"Lily\",\"max_tokens\":5}");
    CHECK_EQ_INT(r.status, 200);
    resp_free(&r);
    r = http(f.port, "GET", "/metrics", NULL, NULL);
    CHECK_EQ_INT(r.status, 200);
    CHECK_CONTAINS(r.body, "raftlm_requests_total{endpoint=\"completions\",code=\"200\"} 1");
    CHECK_CONTAINS(r.body, "raftlm_requests_total{endpoint=\"health\",code=\"200\"} 1");
    CHECK_CONTAINS(r.body, "raftlm_generated_tokens_total 5");
    CHECK_CONTAINS(r.body, "raftlm_slots 1");
    CHECK_CONTAINS(r.body, "raftlm_request_duration_seconds_count");
    resp_free(&r);
    stop(&f);
}

TEST(serve_search_and_answers_from_the_store) {
    rl_serve_opts o = rl_serve_defaults();
    o.parallel = 1;
    o.k = 2;
    fixture f;
    start(&f, &o, 1);
    resp r = post(f.port, "/v1/search", "{\"query\":\"where is the red ball\",\"k\":1}");
    CHECK_EQ_INT(r.status, 200);
    json_t *j = jbody(&r);
    json_t *data = json_object_get(j, "data");
    CHECK_EQ_INT(json_array_size(data), 1);
    json_t *h = json_array_get(data, 0);
    CHECK_EQ_STR(json_string_value(json_object_get(h, "doc")), "ball.md");
    CHECK_EQ_STR(json_string_value(json_object_get(h, "heading")), "Toys");
    CHECK_CONTAINS(json_string_value(json_object_get(h, "text")), "blue box");
    CHECK(json_real_value(json_object_get(h, "score")) > 0);
    json_decref(j);
    resp_free(&r);
    r = post(f.port, "/v1/search", "{\"query\":5}");
    check_error(&r, 400, "invalid_type");
    resp_free(&r);
    // chat with retrieval: the sources come back, the prompt is the RAFT layout (longer)
    r = post(f.port, "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"When are the tomato beds watered?\"}],"
                                             "\"temperature\":0,\"max_tokens\":20}");
    CHECK_EQ_INT(r.status, 200);
    j = jbody(&r);
    json_t *rl = json_object_get(j, "raftlm");
    CHECK(json_is_true(json_object_get(rl, "retrieval")));
    json_t *src = json_object_get(rl, "sources");
    CHECK(json_array_size(src) >= 1);
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(src, 0), "doc")), "garden.md");
    CHECK_CONTAINS(json_string_value(json_object_get(json_array_get(src, 0), "heading")), "Garden");
    CHECK(json_integer_value(json_object_get(json_array_get(src, 0), "chunk_id")) > 0);
    // the prompt: BOS + "<DOCUMENT>...</DOCUMENT>\n..." + question + "\n", as training writes it
    int32_t *ids;
    size_t n;
    rl_hit *hits;
    size_t nh;
    CHECK_OK(rl_rag_prompt(f.tok, -1, f.store, "When are the tomato beds watered?", 2, &ids, &n, &hits, &nh, NULL));
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(j, "usage"), "prompt_tokens")), n);
    char *text;
    size_t tl;
    CHECK_OK(rl_tok_decode(f.tok, ids, n, 1, &text, &tl, NULL));
    CHECK_MSG(strncmp(text, "<DOCUMENT>", 10) == 0 || strncmp(text, " <DOCUMENT>", 11) == 0, "prompt: %s", text);
    CHECK_CONTAINS(text, "watered every Tuesday");
    CHECK_CONTAINS(text, "</DOCUMENT>\nWhen are the tomato beds watered?\n");
    free(text);
    free(ids);
    rl_hits_free(hits, nh);
    json_decref(j);
    resp_free(&r);
    // retrieval off per request: the plain prompt again, no sources
    r = post(f.port, "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"Once upon a time\"}],"
                                             "\"temperature\":0,\"max_tokens\":20,\"raftlm\":{\"retrieval\":false}}");
    j = jbody(&r);
    char *want = generate_text(&f, "Once upon a time", 20);
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message"), "content")), want);
    CHECK(json_is_false(json_object_get(json_object_get(j, "raftlm"), "retrieval")));
    CHECK(json_object_get(json_object_get(j, "raftlm"), "sources") == NULL);
    free(want);
    json_decref(j);
    resp_free(&r);
    r = post(f.port, "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"raftlm\":{\"k\":0}}");
    check_error(&r, 400, "invalid_request");
    resp_free(&r);
    // the answer after <ANSWER>:
    char *a = rl_raft_answer("reasoning ##begin_quote## x ##end_quote## <ANSWER>:  every Tuesday \n");
    CHECK_EQ_STR(a, "every Tuesday");
    free(a);
    CHECK(rl_raft_answer("no answer here") == NULL);
    stop(&f);
}

TEST(serve_hostile_requests_get_errors_and_the_server_keeps_serving) {
    rl_serve_opts o = rl_serve_defaults();
    o.parallel = 2;
    o.max_tokens = 4096;
    fixture f;
    start(&f, &o, 0);
    struct {
        const char *path, *body;
        int status;
        const char *code;
    } cases[] = {
        {"/v1/chat/completions", "{\"messages\": [", 400, "invalid_json"},
        {"/v1/chat/completions", "not json at all", 400, "invalid_json"},
        {"/v1/chat/completions", "[1,2,3]", 400, "invalid_json"},
        {"/v1/chat/completions", "{\"messages\":\"hello\"}", 400, "invalid_request"},
        {"/v1/chat/completions", "{\"messages\":[{\"role\":5,\"content\":\"x\"}]}", 400, "invalid_request"},
        {"/v1/chat/completions", "{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", 400, "invalid_request"},
        {"/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":{\"a\":1}}]}", 400, "invalid_request"},
        {"/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":\"hot\"}", 400, "invalid_request"},
        {"/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":7}", 400, "invalid_request"},
        {"/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":-1}", 400, "invalid_request"},
        {"/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":1.5}", 400, "invalid_request"},
        {"/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":\"yes\"}", 400, "invalid_request"},
        {"/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":3}", 400, "invalid_request"},
        {"/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[1]}", 400, "invalid_request"},
        {"/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logit_bias\":{\"99999\":1}}", 400, "invalid_request"},
        {"/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":600}", 400, "context_length_exceeded"},
        {"/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":100000}", 400, "max_tokens_too_large"},
        {"/v1/chat/completions", "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", 404, "model_not_found"},
        {"/v1/chat/completions", "{\"model\":[],\"messages\":[]}", 400, "invalid_type"},
        {"/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"caf\xc3\"}]}", 400, "invalid_utf8"},
        {"/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"\xed\xa0\x80\"}]}", 400, "invalid_utf8"},
        {"/v1/completions", "{\"prompt\":12}", 400, "invalid_request"},
        {"/v1/completions", "{\"prompt\":[1,2,99999]}", 400, "invalid_request"},
        {"/v1/completions", "{\"prompt\":\"x\",\"echo\":true}", 400, "unsupported"},
        {"/v1/completions", "{\"prompt\":\"x\",\"a\":1,\"a\":2}", 400, "invalid_json"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        resp r = post(f.port, cases[i].path, cases[i].body);
        CHECK_MSG(r.status == cases[i].status, "case %zu (%s): status %d, want %d: %s", i, cases[i].body, r.status,
                  cases[i].status, r.body);
        check_error(&r, cases[i].status, cases[i].code);
        resp_free(&r);
    }
    // a prompt longer than the context
    rl_buf big = {0};
    rl_buf_puts(&big, "{\"prompt\":\"");
    for (int i = 0; i < 400; i++) rl_buf_puts(&big, "Lily and Ben ");
    rl_buf_puts(&big, "\"}");
    resp r = post(f.port, "/v1/completions", big.data);
    check_error(&r, 400, "context_length_exceeded");
    resp_free(&r);
    rl_buf_free(&big);
    // nesting 10000 deep
    for (int i = 0; i < 10000; i++) rl_buf_putc(&big, '[');
    r = post(f.port, "/v1/completions", big.data);
    check_error(&r, 400, "too_deep");
    resp_free(&r);
    rl_buf_free(&big);
    // a 10 MB body
    char *huge = malloc(10u << 20);
    memset(huge, 'a', 10u << 20);
    huge[0] = '"';
    huge[(10u << 20) - 1] = 0;
    r = post(f.port, "/v1/chat/completions", huge);
    check_error(&r, 413, "request_too_large");
    resp_free(&r);
    // the same without Content-Length (chunked upload)
    int fd = t_connect(f.port);
    const char *hdr = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n";
    t_send(fd, hdr, strlen(hdr));
    for (int i = 0; i < 3; i++) {
        char line[32];
        snprintf(line, sizeof line, "%x\r\n", 1u << 20);
        t_send(fd, line, strlen(line));
        t_send(fd, huge, 1u << 20);
        t_send(fd, "\r\n", 2);
    }
    t_send(fd, "0\r\n\r\n", 5);
    char *raw = t_recv_all(fd, 20000);
    close(fd);
    parse_response(raw, &r);
    check_error(&r, 413, "request_too_large");
    resp_free(&r);
    free(raw);
    free(huge);
    // garbage that is not HTTP
    fd = t_connect(f.port);
    t_send(fd, "\x16\x03\x01\x02\x00garbage\r\n\r\n", 16);
    raw = t_recv_all(fd, 5000);
    close(fd);
    CHECK_MSG(strncmp(raw, "HTTP/1.1 400", 12) == 0 || raw[0] == 0, "garbage got: %.60s", raw);
    free(raw);
    // still serving
    r = post(f.port, "/v1/completions", "{\"prompt\":\"Lily\",\"max_tokens\":5,\"temperature\":0}");
    CHECK_EQ_INT(r.status, 200);
    resp_free(&r);
    stop(&f);
}

static int metric(int port, const char *name) {
    resp r = http(port, "GET", "/metrics", NULL, NULL);
    char *line = t_fmt("\n%s ", name);
    const char *p = strstr(r.body, line);
    int v = -1;
    if (p) v = atoi(p + strlen(line));
    free(line);
    resp_free(&r);
    return v;
}

TEST(serve_stalled_and_vanished_clients_do_not_block_others) {
    rl_serve_opts o = rl_serve_defaults();
    o.parallel = 1;
    o.conn_timeout_s = 3;
    fixture f;
    start(&f, &o, 0);
    // half a request, then silence
    int stall = t_connect(f.port);
    const char *half = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"prompt\":";
    t_send(stall, half, strlen(half));
    int stall2 = t_connect(f.port); // and one that sends nothing at all
    double t0 = rl_now();
    resp r = post(f.port, "/v1/completions", "{\"prompt\":\"Lily\",\"max_tokens\":5}");
    CHECK_EQ_INT(r.status, 200);
    CHECK_MSG(rl_now() - t0 < 2.5, "a stalled client delayed another by %.2f s", rl_now() - t0); // < the 3 s timeout
    resp_free(&r);
    // the stalled connections are closed after the idle timeout
    char *rest = t_recv_all(stall, 9000), *rest2 = t_recv_all(stall2, 9000);
    double waited = rl_now() - t0;
    CHECK_MSG(waited < 8.5, "the stalled connection was not closed (%.1f s)", waited);
    free(rest);
    free(rest2);
    close(stall);
    close(stall2);
    // clients that go away while their request waits for the one slot (behind four long ones):
    // their jobs are cancelled before they generate anything
    const char *longb = "{\"prompt\":\"\",\"max_tokens\":500,\"ignore_eos\":true}";
    int busy[4];
    for (int i = 0; i < 4; i++) {
        busy[i] = t_connect(f.port);
        char *req = t_fmt("POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n%s",
                          strlen(longb), longb);
        t_send(busy[i], req, strlen(req));
        free(req);
    }
    usleep(20000);
    for (int stream = 0; stream < 2; stream++) {
        int fd = t_connect(f.port);
        const char *body = stream ? "{\"prompt\":\"\",\"max_tokens\":500,\"ignore_eos\":true,\"stream\":true}"
                                  : "{\"prompt\":\"\",\"max_tokens\":500,\"ignore_eos\":true}";
        char *req = t_fmt("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s", strlen(body), body);
        t_send(fd, req, strlen(req));
        free(req);
        if (stream) { // the stream's first event comes at once, before the job runs
            char buf[512];
            struct pollfd p = {.fd = fd, .events = POLLIN};
            CHECK(poll(&p, 1, 5000) == 1);
            CHECK(recv(fd, buf, sizeof buf, 0) > 0);
        }
        usleep(20000);
        close(fd); // gone
    }
    for (int i = 0; i < 4; i++) {
        char *all = t_recv_all(busy[i], 20000);
        CHECK_CONTAINS(all, "HTTP/1.1 200");
        free(all);
        close(busy[i]);
    }
    r = post(f.port, "/v1/completions", "{\"prompt\":\"Lily\",\"max_tokens\":5,\"ignore_eos\":true}");
    CHECK_EQ_INT(r.status, 200);
    resp_free(&r);
    int cancelled = metric(f.port, "raftlm_requests_cancelled_total");
    CHECK_MSG(cancelled == 2, "the vanished clients' generations were not cancelled (%d)", cancelled);
    int gen = metric(f.port, "raftlm_generated_tokens_total");
    CHECK_MSG(gen == 4 * 500 + 5 + 5, "the vanished clients' generations ran (%d tokens generated)", gen);
    stop(&f);
}

TEST(serve_full_queue_answers_503_with_retry_after) {
    rl_serve_opts o = rl_serve_defaults();
    o.parallel = 1;
    o.queue = 0;
    fixture f;
    start(&f, &o, 0);
    int fd = t_connect(f.port);
    const char *body = "{\"prompt\":\"\",\"max_tokens\":500,\"ignore_eos\":true,\"stream\":true}";
    char *req = t_fmt("POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n%s",
                      strlen(body), body);
    t_send(fd, req, strlen(req));
    free(req);
    char buf[256];
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CHECK(poll(&p, 1, 5000) == 1);
    CHECK(recv(fd, buf, sizeof buf, 0) > 0); // it is running: the only slot is busy, no queue
    resp r = post(f.port, "/v1/completions", "{\"prompt\":\"Lily\",\"max_tokens\":5}");
    check_error(&r, 503, "server_busy");
    CHECK_CONTAINS(r.head, "Retry-After: 1");
    resp_free(&r);
    char *rest = t_recv_all(fd, 10000); // the first one finishes normally
    CHECK_CONTAINS(rest, "data: [DONE]");
    free(rest);
    close(fd);
    r = post(f.port, "/v1/completions", "{\"prompt\":\"Lily\",\"max_tokens\":5}");
    CHECK_EQ_INT(r.status, 200);
    resp_free(&r);
    CHECK(metric(f.port, "raftlm_requests_rejected_total") == 1);
    stop(&f);
}

TEST(serve_api_key_and_loopback_rule) {
    rl_serve_opts o = rl_serve_defaults();
    o.parallel = 1;
    o.api_key = "sekret";
    fixture f;
    start(&f, &o, 0);
    resp r = http(f.port, "GET", "/v1/models", NULL, NULL);
    check_error(&r, 401, "invalid_api_key");
    resp_free(&r);
    r = http(f.port, "GET", "/v1/models", NULL, "Authorization: Bearer wrong\r\n");
    check_error(&r, 401, "invalid_api_key");
    resp_free(&r);
    r = http(f.port, "GET", "/v1/models", NULL, "Authorization: Bearer sekret\r\n");
    CHECK_EQ_INT(r.status, 200);
    resp_free(&r);
    r = http(f.port, "GET", "/health", NULL, NULL);
    CHECK_EQ_INT(r.status, 200);
    resp_free(&r);
    // off loopback without a key: refused before binding anything
    rl_serve_opts o2 = rl_serve_defaults();
    o2.host = "0.0.0.0";
    rl_server *s2 = NULL;
    rl_error err = {0};
    CHECK(rl_server_start(&s2, &f.m, f.tok, NULL, &o2, &err) == RL_EINVAL);
    CHECK_CONTAINS(err.msg, "API key");
    CHECK(s2 == NULL);
    stop(&f);
}

TEST(serve_drain_finishes_in_flight_then_refuses) {
    rl_serve_opts o = rl_serve_defaults();
    o.parallel = 1;
    fixture f;
    start(&f, &o, 0);
    int fd = t_connect(f.port);
    const char *body = "{\"prompt\":\"\",\"max_tokens\":400,\"ignore_eos\":true,\"stream\":true}";
    char *req = t_fmt("POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n%s",
                      strlen(body), body);
    t_send(fd, req, strlen(req));
    free(req);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CHECK(poll(&p, 1, 5000) == 1);
    CHECK_EQ_INT(rl_server_drain(f.srv, 20), 0);
    char *rest = t_recv_all(fd, 10000);
    CHECK_CONTAINS(rest, "data: [DONE]");
    CHECK_CONTAINS(rest, "\"finish_reason\":\"length\"");
    free(rest);
    close(fd);
    resp r = http(f.port, "GET", "/health", NULL, NULL);
    CHECK_EQ_INT(r.status, 503);
    resp_free(&r);
    r = post(f.port, "/v1/completions", "{\"prompt\":\"Lily\",\"max_tokens\":5}");
    check_error(&r, 503, "server_busy");
    resp_free(&r);
    stop(&f);
}

TEST(serve_cli_answers_then_exits_on_sigterm) {
    char *bin = stories("stories260K.bin"), *tokp = stories("tok512.bin");
    if (!bin || !tokp) SKIP("../shared/models/stories260K is not here (a clone without the shared folder)");
    int out[2];
    CHECK(pipe(out) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        execl(t_bin(), t_bin(), "-q", "serve", "--model", bin, "--tokenizer", tokp, "--port", "0", "--parallel", "2",
              "--no-store", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    char line[256] = {0};
    FILE *fp = fdopen(out[0], "r");
    CHECK(fgets(line, sizeof line, fp) != NULL);
    int port = 0;
    CHECK_MSG(sscanf(line, "listening on http://127.0.0.1:%d", &port) == 1, "first line: %s", line);
    CHECK(wait_ready(port));
    resp r = post(port, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":30,\"temperature\":0}");
    CHECK_EQ_INT(r.status, 200);
    json_t *j = jbody(&r);
    char *want = NULL;
    t_run(t_fmt("%s generate --model %s --tokenizer %s --prompt 'Once upon a time' --temp 0 -n 30 2>/dev/null", t_bin(), bin,
                tokp), &want, 0);
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(json_object_get(j, "choices"), 0), "text")), want);
    free(want);
    json_decref(j);
    resp_free(&r);
    kill(pid, SIGTERM);
    int status = 0;
    double t0 = rl_now();
    while (waitpid(pid, &status, WNOHANG) == 0 && rl_now() - t0 < 10) usleep(20000);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "serve did not exit cleanly on SIGTERM (status %d)", status);
    fclose(fp);
    free(bin);
    free(tokp);
}

/* The steps counted by /metrics after one request (decode_steps_total; -1 when unreadable). */
static long long metrics_steps(int port) {
    resp h = http(port, "GET", "/metrics", NULL, NULL);
    unsigned long long steps = 0;
    const char *at = h.body ? strstr(h.body, "\nraftlm_decode_steps_total ") : NULL;
    long long v = at && sscanf(at, "\nraftlm_decode_steps_total %llu", &steps) == 1 ? (long long)steps : -1;
    resp_free(&h);
    return v;
}

TEST(serve_cli_no_batch_turns_continuous_batching_off) {
    // --quant q8_0 --parallel 2: the slots decode through a group (its steps are counted); with
    // --no-batch each slot decodes alone (no steps) and the answer is the same text
    char *bin = stories("stories260K.bin"), *tokp = stories("tok512.bin");
    if (!bin || !tokp) SKIP("../shared/models/stories260K is not here (a clone without the shared folder)");
    char *text[2] = {0};
    for (int nb = 0; nb < 2; nb++) {
        const char *args[] = {"--model", bin, "--tokenizer", tokp, "--quant", "q8_0", "--parallel", "2", "--no-store",
                              nb ? "--no-batch" : NULL, NULL};
        int port, pid = t_serve_start(args, &port);
        CHECK(pid > 0);
        if (pid <= 0) break;
        resp r = post(port, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":20,\"temperature\":0}");
        CHECK_EQ_INT(r.status, 200);
        json_t *j = jbody(&r);
        const char *got = json_string_value(json_object_get(json_array_get(json_object_get(j, "choices"), 0), "text"));
        text[nb] = rl_xstrdup(got ? got : "");
        json_decref(j);
        resp_free(&r);
        long long steps = metrics_steps(port);
        printf("    --parallel 2 --quant q8_0%s: %lld batched decoding steps\n", nb ? " --no-batch" : "", steps);
        if (nb) CHECK_EQ_INT(steps, 0);
        else CHECK(steps > 0);
        CHECK(t_serve_stop(pid));
    }
    CHECK_EQ_STR(text[0], text[1]);
    free(text[0]), free(text[1]);
    free(bin);
    free(tokp);
}

TEST(ask_cli_answers_from_the_store_and_quantize_writes_gguf) {
    char *bin = stories("stories260K.bin"), *tokp = stories("tok512.bin");
    if (!bin || !tokp) SKIP("../shared/models/stories260K is not here (a clone without the shared folder)");
    char *dir = t_tmpdir(), *out = rl_path_join(dir, "out");
    rl_store *s = make_store(out);
    rl_store_close(s);
    t_write_str(dir, "raftlm.yaml", t_fmt("base_model: %s\ntokenizer: %s\noutput_dir: out\nretrieval: {k: 1}\n", bin, tokp));
    char *got = NULL;
    int rc = t_run(t_fmt("%s -q ask -c %s/raftlm.yaml --json -n 20 'Where does Lily keep the red ball?'", t_bin(), dir), &got, 0);
    CHECK_EQ_INT(rc, 0);
    json_t *j = json_loads(got, 0, NULL);
    CHECK_MSG(j != NULL, "ask --json printed: %s", got);
    json_t *src = json_object_get(j, "sources");
    CHECK_EQ_INT(json_array_size(src), 1);
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(src, 0), "doc")), "ball.md");
    CHECK(json_integer_value(json_object_get(j, "prompt_tokens")) > 20); // the document is in the prompt
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "completion_tokens")), 20);
    json_decref(j);
    free(got);
    // without retrieval: the plain prompt, the text of generate
    rc = t_run(t_fmt("%s -q ask -c %s/raftlm.yaml --no-retrieval --json -n 20 'Once upon a time'", t_bin(), dir), &got, 0);
    j = json_loads(got, 0, NULL);
    char *want = NULL;
    t_run(t_fmt("%s generate --model %s --tokenizer %s --prompt 'Once upon a time' --temp 0 -n 20 2>/dev/null", t_bin(), bin,
                tokp), &want, 0);
    CHECK_EQ_STR(json_string_value(json_object_get(j, "text")), want);
    json_decref(j);
    free(got);
    // quantize: a GGUF file with Q8_0 matrices that generate loads; its greedy text starts the same
    rc = t_run(t_fmt("%s -q quantize %s %s/q8.gguf --tokenizer %s", t_bin(), bin, dir, tokp), &got, 1);
    CHECK_MSG(rc == 0, "quantize: %s", got);
    free(got);
    rc = t_run(t_fmt("%s generate --model %s/q8.gguf --tokenizer %s --prompt 'Once upon a time' --temp 0 -n 20 2>/dev/null",
                     t_bin(), dir, tokp), &got, 0);
    CHECK_EQ_INT(rc, 0);
    CHECK_MSG(strncmp(got, ", there was a little girl", 25) == 0, "Q8_0 GGUF text: %s", got);
    free(got);
    // ask with Q8_0 weights in memory
    rc = t_run(t_fmt("%s -q ask --model %s --tokenizer %s --quant q8_0 --json -n 20 'Once upon a time'", t_bin(), bin, tokp),
               &got, 0);
    CHECK_EQ_INT(rc, 0);
    CHECK_CONTAINS(got, "\"text\": \", there was a little girl");
    free(got);
    // --quant q6_k: stories260K's rows (64 and 172 wide) are not multiples of 256, so every
    // matrix takes llama.cpp's fallback, Q8_0, and the text is Q8_0's
    rc = t_run(t_fmt("%s ask --model %s --tokenizer %s --quant q6_k --json -n 20 'Once upon a time' 2>&1", t_bin(), bin, tokp),
               &got, 0);
    CHECK_EQ_INT(rc, 0);
    CHECK_CONTAINS(got, "weights: Q6_K");
    CHECK_CONTAINS(got, "\"text\": \", there was a little girl");
    free(got);
    rc = t_run(t_fmt("%s -q ask --model %s --tokenizer %s --quant q5 'x' 2>&1", t_bin(), bin, tokp), &got, 0);
    CHECK(rc != 0);
    CHECK_CONTAINS(got, "--quant must be");
    free(got);
    free(want);
    free(out);
    free(dir);
    free(bin);
    free(tokp);
}

typedef struct concurrent_post {
    int port;
    char *body;
    resp r;
} concurrent_post;

static void *post_thread(void *arg) {
    concurrent_post *c = arg;
    c->r = post(c->port, "/v1/completions", c->body);
    return NULL;
}

TEST(serve_with_q8_0_weights_answers_like_rl_infer) {
    // three slots decoding together (continuous batching): four requests at once, each answer
    // the text rl_infer gives alone
    rl_serve_opts o = rl_serve_defaults();
    o.parallel = 3;
    o.threads = 1;
    fixture f;
    // the quantized copy needs the model: load it first through start() with q set afterwards
    memset(&f, 0, sizeof f);
    f.bin = stories("stories260K.bin");
    f.tokp = stories("tok512.bin");
    if (!f.bin || !f.tokp) SKIP("../shared/models/stories260K is not here (a clone without the shared folder)");
    CHECK_OK(rl_model_load(&f.m, f.bin, NULL));
    CHECK_OK(rl_tok_load(&f.tok, f.tokp, NULL));
    rl_qmodel *q;
    CHECK_OK(rl_qmodel_new(&q, &f.m, RL_WTYPE_Q8_0, NULL));
    o.q = q;
    o.host = "127.0.0.1";
    o.port = 0;
    CHECK_OK(rl_server_start(&f.srv, &f.m, f.tok, NULL, &o, NULL));
    f.port = rl_server_port(f.srv);
    rl_infer_opts io = {.q = q};
    rl_infer *inf;
    CHECK_OK(rl_infer_new_ex(&inf, &f.m, f.tok, &io, NULL));
    const char *prompt = "Lily and Ben went to the park. They saw a big dog. The dog was brown and it liked to run. "
                         "Lily threw a ball and the dog ran after it. Ben laughed and clapped his hands.";
    int32_t *ids;
    size_t n;
    CHECK_OK(rl_infer_tokenize(inf, prompt, strlen(prompt), 1, &ids, &n, NULL));
    rl_gen_params p = {.sampling = rl_sampler_defaults(), .max_tokens = 40};
    p.sampling.temperature = 0;
    rl_gen_result r;
    CHECK_OK(rl_infer_generate(inf, ids, n, &p, NULL, NULL, &r, NULL));
    char *body = t_fmt("{\"prompt\":\"%s\",\"temperature\":0,\"max_tokens\":40}", prompt);
    resp h = post(f.port, "/v1/completions", body);
    CHECK_EQ_INT(h.status, 200);
    json_t *j = jbody(&h);
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(json_object_get(j, "choices"), 0), "text")), r.text);
    json_decref(j);
    resp_free(&h);
    free(body);
    rl_gen_result_free(&r);
    free(ids);
    const char *prompts[4] = {"Once upon a time", "The cat sat on the mat and", "Tom had a red ball. He", "One day"};
    int max_tok[4] = {30, 50, 20, 45};
    concurrent_post cp[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        cp[i] = (concurrent_post){.port = f.port};
        cp[i].body = t_fmt("{\"prompt\":\"%s\",\"temperature\":0,\"max_tokens\":%d}", prompts[i], max_tok[i]);
        pthread_create(&th[i], NULL, post_thread, &cp[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(cp[i].r.status, 200);
        CHECK_OK(rl_infer_tokenize(inf, prompts[i], strlen(prompts[i]), 1, &ids, &n, NULL));
        p.max_tokens = max_tok[i];
        CHECK_OK(rl_infer_generate(inf, ids, n, &p, NULL, NULL, &r, NULL));
        j = jbody(&cp[i].r);
        const char *got = json_string_value(json_object_get(json_array_get(json_object_get(j, "choices"), 0), "text"));
        CHECK_MSG(got && strcmp(got, r.text) == 0, "request %d: '%s', alone '%s'", i, got ? got : "(none)", r.text);
        json_decref(j);
        rl_gen_result_free(&r);
        free(ids);
        resp_free(&cp[i].r);
        free(cp[i].body);
    }
    h = http(f.port, "GET", "/metrics", NULL, NULL);
    unsigned long long steps = 0, step_tokens = 0;
    const char *at = strstr(h.body, "\nraftlm_decode_steps_total ");
    if (at) sscanf(at, "\nraftlm_decode_steps_total %llu", &steps);
    at = strstr(h.body, "\nraftlm_decode_step_tokens_total ");
    if (at) sscanf(at, "\nraftlm_decode_step_tokens_total %llu", &step_tokens);
    printf("    continuous batching: %llu tokens in %llu decoding steps\n", step_tokens, steps);
    CHECK(steps > 0 && step_tokens >= steps);
    resp_free(&h);
    rl_infer_free(inf);
    rl_server_stop(f.srv);
    f.srv = NULL;
    rl_qmodel_free(q);
    rl_tok_free(f.tok);
    rl_model_free(&f.m);
    free(f.bin);
    free(f.tokp);
}

TEST(serve_lora_adapters_selected_per_request) {
    rl_serve_opts o = rl_serve_defaults();
    o.parallel = 1; // one slot: switching adapters must not reuse the other's cache
    fixture f;
    memset(&f, 0, sizeof f);
    f.bin = stories("stories260K.bin");
    f.tokp = stories("tok512.bin");
    if (!f.bin || !f.tokp) SKIP("../shared/models/stories260K is not here (a clone without the shared folder)");
    CHECK_OK(rl_model_load(&f.m, f.bin, NULL));
    CHECK_OK(rl_tok_load(&f.tok, f.tokp, NULL));
    // an adapter that changes the text: PEFT init, then B made non-zero
    char *dir = t_tmpdir(), *ad = rl_path_join(dir, "adapter");
    rl_lora lo, loaded;
    CHECK_OK(rl_lora_init(&lo, &f.m.cfg, 4, 8.0f, 0, rl_lora_parse_targets("all-linear"), 3, 0, NULL));
    uint64_t s = 5;
    for (int md = 0; md < RL_MOD_COUNT; md++) {
        int in, out;
        rl_lora_shapes(&f.m.cfg, (rl_module)md, &in, &out);
        for (size_t i = 0; i < (size_t)f.m.cfg.n_layers * out * 4; i++) lo.b[md][i] = frand(&s) * 0.5f;
    }
    CHECK_OK(rl_lora_save_peft(&lo, &f.m.cfg, ad, "stories260K", NULL));
    CHECK_OK(rl_lora_load_peft(&loaded, &f.m.cfg, ad, NULL));
    rl_serve_adapter ads[1] = {{"stories-tuned", &loaded}};
    o.adapters = ads;
    o.n_adapters = 1;
    o.host = "127.0.0.1";
    o.port = 0;
    o.model_name = "stories260K";
    CHECK_OK(rl_server_start(&f.srv, &f.m, f.tok, NULL, &o, NULL));
    f.port = rl_server_port(f.srv);
    resp r = http(f.port, "GET", "/v1/models", NULL, NULL);
    CHECK_CONTAINS(r.body, "\"id\":\"stories-tuned\"");
    CHECK_CONTAINS(r.body, "\"parent\":\"stories260K\"");
    resp_free(&r);
    char *want_base = NULL, *want_tuned = NULL;
    t_run(t_fmt("%s generate --model %s --tokenizer %s --prompt 'Once upon a time' --temp 0 -n 40 2>/dev/null", t_bin(), f.bin,
                f.tokp), &want_base, 0);
    t_run(t_fmt("%s generate --model %s --tokenizer %s --lora %s --prompt 'Once upon a time' --temp 0 -n 40 2>/dev/null",
                t_bin(), f.bin, f.tokp, ad), &want_tuned, 0);
    CHECK(strcmp(want_base, want_tuned) != 0);
    const char *order[5] = {"stories260K", "stories-tuned", "stories260K", "stories-tuned", "stories-tuned"};
    for (int i = 0; i < 5; i++) {
        char *body = t_fmt("{\"model\":\"%s\",\"prompt\":\"Once upon a time\",\"temperature\":0,\"max_tokens\":40}", order[i]);
        r = post(f.port, "/v1/completions", body);
        CHECK_EQ_INT(r.status, 200);
        json_t *j = jbody(&r);
        CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(json_object_get(j, "choices"), 0), "text")),
                     strcmp(order[i], "stories260K") ? want_tuned : want_base);
        CHECK_EQ_STR(json_string_value(json_object_get(j, "model")), order[i]);
        json_decref(j);
        resp_free(&r);
        free(body);
    }
    r = post(f.port, "/v1/completions", "{\"model\":\"stories-other\",\"prompt\":\"x\"}");
    check_error(&r, 404, "model_not_found");
    resp_free(&r);
    rl_server_stop(f.srv);
    // two adapters with one name, or the model's name, are refused
    rl_serve_adapter dup[2] = {{"a", &loaded}, {"a", &loaded}};
    o.adapters = dup;
    o.n_adapters = 2;
    rl_server *s2 = NULL;
    rl_error err = {0};
    CHECK(rl_server_start(&s2, &f.m, f.tok, NULL, &o, &err) == RL_EINVAL);
    CHECK_CONTAINS(err.msg, "two adapters");
    free(want_base);
    free(want_tuned);
    rl_lora_free(&lo);
    rl_lora_free(&loaded);
    rl_tok_free(f.tok);
    rl_model_free(&f.m);
    free(ad);
    free(dir);
    free(f.bin);
    free(f.tokp);
}

TEST(serve_health_says_loading_until_the_model_is_attached) {
    char *bin = stories("stories260K.bin"), *tokp = stories("tok512.bin");
    if (!bin || !tokp) SKIP("../shared/models/stories260K is not here (a clone without the shared folder)");
    rl_serve_opts o = rl_serve_defaults();
    o.host = "127.0.0.1";
    o.port = 0;
    o.parallel = 2;
    rl_server *s;
    CHECK_OK(rl_server_start_loading(&s, &o, NULL));
    int port = rl_server_port(s);
    resp r = http(port, "GET", "/health", NULL, NULL);
    CHECK_EQ_INT(r.status, 503);
    CHECK_CONTAINS(r.body, "\"status\":\"loading\"");
    resp_free(&r);
    r = post(port, "/v1/completions", "{\"prompt\":\"x\"}");
    check_error(&r, 503, "model_loading");
    resp_free(&r);
    r = http(port, "GET", "/metrics", NULL, NULL);
    CHECK_EQ_INT(r.status, 200);
    resp_free(&r);
    rl_model m;
    rl_tokenizer *tok;
    CHECK_OK(rl_model_load(&m, bin, NULL));
    CHECK_OK(rl_tok_load(&tok, tokp, NULL));
    CHECK_OK(rl_server_ready(s, &m, tok, NULL, &o, NULL));
    CHECK(rl_server_ready(s, &m, tok, NULL, &o, NULL) == RL_EINVAL); // once only
    r = http(port, "GET", "/health", NULL, NULL);
    CHECK_EQ_INT(r.status, 200);
    resp_free(&r);
    r = post(port, "/v1/completions", "{\"prompt\":\"Lily\",\"max_tokens\":3}");
    CHECK_EQ_INT(r.status, 200);
    resp_free(&r);
    rl_server_stop(s);
    // a server that never got its model stops cleanly too
    CHECK_OK(rl_server_start_loading(&s, &o, NULL));
    rl_server_stop(s);
    rl_tok_free(tok);
    rl_model_free(&m);
    free(bin);
    free(tokp);
}

/* Random mutations of valid requests (bytes flipped, cut, duplicated, values swapped for other
 * types): every answer is a well-formed HTTP response with 200 or an OpenAI error body, and the
 * server keeps answering. */
TEST(serve_survives_mutated_requests) {
    rl_serve_opts o = rl_serve_defaults();
    o.parallel = 2;
    o.max_tokens = 8;
    fixture f;
    start(&f, &o, 1);
    const char *seeds[] = {
        "{\"model\":\"stories260K\",\"messages\":[{\"role\":\"user\",\"content\":\"Once upon a time\"}],\"temperature\":0,"
        "\"max_tokens\":4,\"stop\":[\"x\"],\"logit_bias\":{\"5\":1},\"logprobs\":true,\"top_logprobs\":2}",
        "{\"prompt\":\"Lily\",\"max_tokens\":4,\"stream\":true,\"seed\":3,\"top_k\":5,\"min_p\":0.1,\"repeat_penalty\":1.1}",
        "{\"messages\":[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"ball\"}]}],"
        "\"raftlm\":{\"retrieval\":true,\"k\":2},\"max_tokens\":3,\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
        "{\"query\":\"red ball\",\"k\":2}",
    };
    const char *paths[] = {"/v1/chat/completions", "/v1/completions", "/v1/chat/completions", "/v1/search"};
    const char *junk[] = {"null", "-1", "1e999", "\"\"", "[]", "{}", "true", "\"\\u0000\"", "99999999999999999999", "[[[[1]]]]",
                          "\"\\ud800\"", "0.5"};
    uint64_t s = 12345;
    int n_ok = 0, n_err = 0;
    for (int it = 0; it < 300; it++) {
        int k = it % 4;
        rl_buf b = {0};
        rl_buf_puts(&b, seeds[k]);
        int muts = 1 + (int)((frand(&s) + 1) * 2);
        for (int m = 0; m < muts && b.len > 2; m++) {
            size_t at = (size_t)((frand(&s) + 1) / 2 * (double)(b.len - 1));
            int kind = (int)((frand(&s) + 1) * 3) % 5;
            if (kind == 0) b.data[at] = (char)(int)((frand(&s) + 1) * 127); // a byte changed
            else if (kind == 1) b.len = at, b.data[at] = 0;                   // cut
            else if (kind == 2) { // a value replaced by junk after a ':'
                char *colon = strchr(b.data + at, ':');
                if (colon) {
                    char *end = colon + 1;
                    while (*end && *end != ',' && *end != '}') end++;
                    rl_buf nb = {0};
                    rl_buf_append(&nb, b.data, (size_t)(colon + 1 - b.data));
                    rl_buf_puts(&nb, junk[(int)((frand(&s) + 1) * 6) % 12]);
                    rl_buf_puts(&nb, end);
                    rl_buf_free(&b);
                    b = nb;
                }
            } else if (kind == 3) { // a stretch duplicated
                size_t len = (size_t)((frand(&s) + 1) * 10);
                if (at + len > b.len) len = b.len - at;
                char *dup = rl_xstrndup(b.data + at, len);
                rl_buf nb = {0};
                rl_buf_append(&nb, b.data, at);
                rl_buf_puts(&nb, dup);
                rl_buf_puts(&nb, b.data + at);
                free(dup);
                rl_buf_free(&b);
                b = nb;
            } else {
                b.data[at] = "{}[]\",:\\"[(int)((frand(&s) + 1) * 4) % 8];
            }
        }
        resp r = post(f.port, paths[k], b.data ? b.data : "");
        CHECK_MSG(r.status == 200 || (r.status >= 400 && r.status < 600), "status %d for %s", r.status, b.data);
        if (r.status == 200) n_ok++;
        else {
            n_err++;
            json_t *j = jbody(&r);
            CHECK_MSG(json_is_string(json_object_get(json_object_get(j, "error"), "message")), "status %d without an error body: %s",
                      r.status, r.body);
            json_decref(j);
        }
        resp_free(&r);
        rl_buf_free(&b);
    }
    printf("    300 mutated requests: %d answered 200, %d refused with an error body\n", n_ok, n_err);
    CHECK(n_ok >= 5 && n_err > 100);
    resp r = http(f.port, "GET", "/health", NULL, NULL);
    CHECK_EQ_INT(r.status, 200);
    resp_free(&r);
    stop(&f);
}
