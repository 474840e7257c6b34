/* fuzz_serve.c - libFuzzer target for the HTTP API: a server over stories260K (and a store when
 * FUZZ_STORE names a store.db) runs in this process; each input's first byte picks the endpoint
 * (chat, completions, embeddings, search) and the rest is the POST body, sent over a real socket.
 * Every answer must be a complete HTTP response: 200, or 4xx/5xx with an OpenAI-shaped error body;
 * a crash or sanitizer report in the server is a crash of this process. Run from the repository
 * root with ../shared beside it:
 *   make fuzz && build-fuzz/fuzz_serve -max_total_time=60 CORPUS_DIR SEED_DIR
 * (seeds: request bodies such as {"messages":[{"role":"user","content":"hi"}],"max_tokens":4}).
 * FUZZ_QUANT=1 serves Q8_0 weights with three slots, so decoding goes through continuous batching. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <errno.h>
#include <unistd.h>

#include "serve/serve.h"

static rl_server *srv;
static rl_model model;
static rl_tokenizer *tok;
static rl_store *store;
static rl_qmodel *qmodel;

static void start(void) {
    rl_error err;
    const char *dir = getenv("FUZZ_MODEL_DIR") ? getenv("FUZZ_MODEL_DIR") : "../shared/models/stories260K";
    char mp[512], tp[512];
    snprintf(mp, sizeof mp, "%s/stories260K.bin", dir);
    snprintf(tp, sizeof tp, "%s/tok512.bin", dir);
    if (rl_model_load(&model, mp, &err) || rl_tok_load(&tok, tp, &err)) {
        fprintf(stderr, "fuzz_serve: %s (set FUZZ_MODEL_DIR to stories260K's folder)\n", err.msg);
        abort();
    }
    if (getenv("FUZZ_STORE") && rl_store_open(&store, getenv("FUZZ_STORE"), NULL, &err)) {
        fprintf(stderr, "fuzz_serve: %s\n", err.msg);
        abort();
    }
    rl_serve_opts o = rl_serve_defaults();
    o.port = 0;
    o.parallel = 2;
    o.max_tokens = 16; /* keep each generation short; larger requests are refused, which is tested too */
    o.request_timeout_s = 10;
    if (getenv("FUZZ_QUANT")) { /* Q8_0 weights: decoding steps of the slots batched together */
        if (rl_qmodel_new(&qmodel, &model, RL_WTYPE_Q8_0, &err)) {
            fprintf(stderr, "fuzz_serve: %s\n", err.msg);
            abort();
        }
        o.q = qmodel;
        o.parallel = 3;
    }
    if (rl_server_start(&srv, &model, tok, store, &o, &err)) {
        fprintf(stderr, "fuzz_serve: %s\n", err.msg);
        abort();
    }
}

/* Sends one request and reads the whole answer (the server closes or sends Content-Length). */
static size_t roundtrip(const char *path, const uint8_t *body, size_t n, char *out, size_t cap) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)rl_server_port(srv))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) abort(); /* the server is gone */
    char head[256];
    int hn = snprintf(head, sizeof head,
                      "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
                      "Content-Length: %zu\r\n\r\n", path, n);
    if (write(fd, head, (size_t)hn) != hn || (n && write(fd, body, n) != (ssize_t)n)) {
        close(fd);
        return 0;
    }
    size_t got = 0;
    ssize_t r;
    /* libFuzzer's timer signal interrupts reads */
    while (got + 1 < cap && ((r = read(fd, out + got, cap - 1 - got)) > 0 || (r < 0 && errno == EINTR)))
        if (r > 0) got += (size_t)r;
    out[got] = 0;
    close(fd);
    return got;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!srv) start();
    if (size < 1) return 0;
    static const char *paths[] = {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/search"};
    static char resp[1 << 20];
    size_t n = roundtrip(paths[data[0] % 4], data + 1, size - 1, resp, sizeof resp);
    int status = 0;
    if (n < 12 || sscanf(resp, "HTTP/1.1 %d", &status) != 1) {
        fprintf(stderr, "fuzz_serve: no HTTP response (%zu bytes)\n", n);
        abort();
    }
    if (status != 200 && !strstr(resp, "\"error\"")) {
        fprintf(stderr, "fuzz_serve: status %d without an error body:\n%s\n", status, resp);
        abort();
    }
    return 0;
}
