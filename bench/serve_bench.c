/* serve_bench.c - load test of the OpenAI-compatible server on loopback (make bench-serve).
 *
 *   serve-bench MODEL TOKENIZER [CLIENTS] [REQUESTS_PER_CLIENT] [MAX_TOKENS] [PARALLEL] [QUANT] [BATCH]
 *
 * QUANT: none (float32 through rl_model_decode, the default), f32, q8_0 or q4_0 (an rl_qmodel, as
 * `raftlm serve --quant`); BATCH: 1 (continuous batching of the slots' decoding, the default with
 * QUANT) or 0 (each slot decodes on its own).
 *
 * Starts the server in-process on 127.0.0.1 (a free port), warms it up, then CLIENTS threads
 * each send REQUESTS_PER_CLIENT completions (temperature 0.8, own seed, max_tokens, ignore_eos so
 * that every request generates the same number of tokens) one after another, half of them
 * streamed. Reports failed requests, requests/s, generated tokens/s, p50/p99 latency, and the
 * process's resident memory after the warm-up and after the run (no growth expected).
 * Also measures single-stream decoding speed (tokens/s) through rl_infer: up to 511 tokens from a
 * two-token prompt. */
#include <arpa/inet.h>
#include <cblas.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "infer/infer.h"
#include "serve/serve.h"

typedef struct client {
    int port, id, n, max_tokens;
    double *lat;
    int failed;
    long tokens;
} client;

static int request(int port, const char *body, char **out) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    char *req = rl_xasprintf("POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: "
                             "application/json\r\nContent-Length: %zu\r\n\r\n%s", strlen(body), body);
    send(fd, req, strlen(req), MSG_NOSIGNAL);
    free(req);
    rl_buf b = {0};
    char chunk[16384];
    ssize_t n;
    while ((n = recv(fd, chunk, sizeof chunk, 0)) > 0) rl_buf_append(&b, chunk, (size_t)n);
    close(fd);
    int status = 0;
    if (b.data) sscanf(b.data, "HTTP/1.1 %d", &status);
    *out = b.data ? rl_buf_take(&b) : rl_xstrdup("");
    return status;
}

static void *client_main(void *arg) {
    client *c = arg;
    for (int i = 0; i < c->n; i++) {
        int stream = (i + c->id) % 2;
        char *body = rl_xasprintf("{\"prompt\":\"Once upon a time\",\"max_tokens\":%d,\"temperature\":0.8,\"seed\":%d,"
                                  "\"ignore_eos\":true,\"stream\":%s}", c->max_tokens, c->id * 1000 + i,
                                  stream ? "true" : "false");
        char *out = NULL;
        double t0 = rl_now();
        int st = request(c->port, body, &out);
        c->lat[i] = rl_now() - t0;
        int ok = st == 200 && (stream ? strstr(out, "data: [DONE]") != NULL : strstr(out, "\"finish_reason\":\"length\"") != NULL);
        if (!ok) c->failed++;
        else c->tokens += c->max_tokens;
        free(out);
        free(body);
    }
    return NULL;
}

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void run_round(int port, int clients, int per, int max_tokens, double *secs, int *failed, long *tokens, double *lat_all) {
    pthread_t *th = calloc((size_t)clients, sizeof *th);
    client *cs = calloc((size_t)clients, sizeof *cs);
    double t0 = rl_now();
    for (int i = 0; i < clients; i++) {
        cs[i] = (client){.port = port, .id = i, .n = per, .max_tokens = max_tokens, .lat = lat_all + (size_t)i * per};
        pthread_create(&th[i], NULL, client_main, &cs[i]);
    }
    *failed = 0;
    *tokens = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(th[i], NULL);
        *failed += cs[i].failed;
        *tokens += cs[i].tokens;
    }
    *secs = rl_now() - t0;
    free(th);
    free(cs);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: serve-bench MODEL TOKENIZER [CLIENTS] [REQUESTS_PER_CLIENT] [MAX_TOKENS] [PARALLEL] "
                        "[none|f32|q8_0|q4_0] [BATCH 1|0]\n");
        return 2;
    }
    int clients = argc > 3 ? atoi(argv[3]) : 8, per = argc > 4 ? atoi(argv[4]) : 25;
    int max_tokens = argc > 5 ? atoi(argv[5]) : 64, parallel = argc > 6 ? atoi(argv[6]) : 2;
    const char *quant = argc > 7 ? argv[7] : "none";
    int batch = argc > 8 ? atoi(argv[8]) : 1, qtype = -1;
    if (!strcmp(quant, "f32")) qtype = RL_WTYPE_F32;
    else if (!strcmp(quant, "q8_0")) qtype = RL_WTYPE_Q8_0;
    else if (!strcmp(quant, "q4_0")) qtype = RL_WTYPE_Q4_0;
    else if (strcmp(quant, "none")) return fprintf(stderr, "serve-bench: QUANT is none, f32, q8_0 or q4_0\n"), 2;
    rl_log_set_level(RL_LOG_WARN);
    openblas_set_num_threads(1); // as raftlm serve does with one core per slot (see cmd_serve.c)
    rl_model m;
    rl_tokenizer *tok;
    rl_error err = {0};
    if (rl_model_load(&m, argv[1], &err) || rl_tok_load(&tok, argv[2], &err)) {
        fprintf(stderr, "serve-bench: %s\n", err.msg);
        return 1;
    }
    rl_qmodel *q = NULL;
    if (qtype >= 0 && rl_qmodel_new(&q, &m, (rl_wtype)qtype, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    // single-stream decoding speed
    rl_infer *inf;
    rl_infer_opts io = {.q = q};
    if (rl_infer_new_ex(&inf, &m, tok, &io, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    int32_t bos = rl_tok_bos(tok) >= 0 ? rl_tok_bos(tok) : 1;
    int n_single = rl_infer_n_ctx(inf) - 1 < 511 ? rl_infer_n_ctx(inf) - 1 : 511; // stories260K: its whole context
    rl_gen_params gp = {.sampling = rl_sampler_defaults(), .max_tokens = n_single, .ignore_eos = 1};
    gp.sampling.temperature = 0;
    rl_gen_result r;
    double best = 0;
    for (int i = 0; i < 3; i++) {
        int32_t p[2] = {bos, 400 + i}; // a different prompt each time: no cache reuse
        if (rl_infer_generate(inf, p, 2, &gp, NULL, NULL, &r, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
        double tps = r.t_gen > 0 ? r.n_gen / r.t_gen : 0;
        if (tps > best) best = tps;
        rl_gen_result_free(&r);
    }
    rl_infer_free(inf);
    printf("decode (one stream, %s, weights %s): %.0f tokens/s\n", rl_path_basename(argv[1]), quant, best);

    rl_serve_opts o = rl_serve_defaults();
    o.host = "127.0.0.1";
    o.port = 0;
    o.parallel = parallel;
    o.queue = clients;
    o.max_tokens = max_tokens;
    o.q = q;
    o.batch_decode = batch ? 0 : -1;
    rl_server *srv;
    if (rl_server_start(&srv, &m, tok, NULL, &o, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    int port = rl_server_port(srv);
    double *lat = calloc((size_t)clients * per, sizeof *lat);
    double secs;
    int failed;
    long tokens;
    run_round(port, clients, per < 5 ? per : 5, max_tokens, &secs, &failed, &tokens, lat); // warm-up
    long rss0 = rss_kb();
    run_round(port, clients, per, max_tokens, &secs, &failed, &tokens, lat);
    long rss1 = rss_kb();
    int n = clients * per;
    qsort(lat, (size_t)n, sizeof *lat, cmp_double);
    printf("load: %d clients x %d requests (%d tokens each, half streamed), %d slots, weights %s, continuous batching %s\n",
           clients, per, max_tokens, parallel, quant, q && parallel > 1 && batch ? "on" : "off");
    printf("  failed requests: %d of %d\n", failed, n);
    printf("  throughput: %.1f requests/s, %.0f generated tokens/s\n", n / secs, tokens / secs);
    printf("  latency: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", lat[n / 2] * 1e3, lat[(int)(n * 0.99)] * 1e3,
           lat[n - 1] * 1e3);
    printf("  resident memory: %ld KiB after warm-up, %ld KiB after the run (%+ld KiB)\n", rss0, rss1, rss1 - rss0);
    rl_server_stop(srv);
    rl_qmodel_free(q);
    free(lat);
    rl_tok_free(tok);
    rl_model_free(&m);
    return failed ? 1 : 0;
}
