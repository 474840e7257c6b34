/* fake_openai.c - see fake_openai.h. */
#include "fake_openai.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "synth/synth.h"

struct fake_openai {
    struct MHD_Daemon *daemon;
    int port;
    fake_openai_opts o;
    pthread_mutex_t mu;
    fake_openai_stats st;
    /* attempts per prompt, so faults hit first attempts only */
    uint64_t *seen_h;
    int *seen_n;
    int n_seen, cap_seen;
};

typedef struct upload {
    char *data;
    size_t len;
} upload;

static int attempt_of(fake_openai *s, uint64_t h) {
    pthread_mutex_lock(&s->mu);
    int n = 0;
    for (int i = 0; i < s->n_seen; i++)
        if (s->seen_h[i] == h) n = ++s->seen_n[i];
    if (!n) {
        if (s->n_seen == s->cap_seen) {
            s->cap_seen = s->cap_seen ? 2 * s->cap_seen : 256;
            s->seen_h = realloc(s->seen_h, (size_t)s->cap_seen * sizeof *s->seen_h);
            s->seen_n = realloc(s->seen_n, (size_t)s->cap_seen * sizeof *s->seen_n);
        }
        s->seen_h[s->n_seen] = h;
        s->seen_n[s->n_seen++] = n = 1;
    }
    s->st.requests++;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *body, const char *retry_after) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (retry_after) MHD_add_response_header(r, "Retry-After", retry_after);
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

/* The text between two markers, or NULL. Caller frees. */
static char *between(const char *s, const char *a, const char *b) {
    const char *p = strstr(s, a);
    if (!p) return NULL;
    p += strlen(a);
    const char *q = strstr(p, b);
    return q ? rl_xstrndup(p, (size_t)(q - p)) : NULL;
}

static char *content_for(const char *user) {
    char *passage = between(user, "<passage>\n", "\n</passage>");
    if (!passage) return rl_xstrdup("I cannot see a passage.");
    char *title = between(user, "document \"", "\" (section: ");
    char *heading = between(user, "(section: ", "):\n");
    if (heading && strcmp(heading, "-") == 0) heading[0] = 0;
    if (title && strcmp(title, "-") == 0) title[0] = 0;
    char *question = between(user, "Question: ", "\n\n");
    rl_qa *qa;
    char *out;
    if (!question) {
        char *n_text = between(user, "Write ", " different questions");
        int n = n_text ? atoi(n_text) : 3;
        free(n_text);
        int k = rl_extract_qa(passage, heading, title, n, &qa);
        json_t *arr = json_array();
        for (int i = 0; i < k; i++) json_array_append_new(arr, json_string(qa[i].question));
        if (strstr(passage, "DUPLICATE") && k >= 2) json_array_set_new(arr, (size_t)k - 1, json_string(qa[0].question));
        char *list = json_dumps(arr, JSON_COMPACT);
        json_decref(arr);
        if (strstr(passage, "FENCED") && k >= 1) {
            size_t l = strlen(list);
            list[l - 1] = 0; /* drop ']' to add a trailing comma */
            out = rl_xasprintf("Here are the questions:\n```json\n%s,\n]\n```\n", list);
        } else {
            out = rl_xstrdup(list);
        }
        free(list);
        rl_qa_free(qa, k);
    } else {
        int k = rl_extract_qa(passage, heading, title, 64, &qa);
        out = NULL;
        for (int i = 0; i < k && !out; i++)
            if (strcmp(qa[i].question, question) == 0) {
                const char *quote = qa[i].quote;
                char *bad = strstr(passage, "BADQUOTE") ? rl_xasprintf("%s (as paraphrased)", quote) : NULL;
                out = rl_cot_answer(bad ? bad : quote, qa[i].answer);
                free(bad);
            }
        if (!out) out = rl_xasprintf("##Reason: I am not sure.\n<ANSWER>: unknown");
        rl_qa_free(qa, k);
    }
    free(passage);
    free(title);
    free(heading);
    free(question);
    return out;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method, const char *version,
                              const char *data, size_t *size, void **con_cls) {
    fake_openai *s = cls;
    upload *u = *con_cls;
    if (!u) {
        u = calloc(1, sizeof *u);
        *con_cls = u;
        return MHD_YES;
    }
    if (*size) {
        u->data = realloc(u->data, u->len + *size + 1);
        memcpy(u->data + u->len, data, *size);
        u->len += *size;
        u->data[u->len] = 0;
        *size = 0;
        return MHD_YES;
    }
    if (strcmp(method, "POST") != 0 || !strstr(url, "/chat/completions"))
        return reply(c, 404, "{\"error\":{\"message\":\"not found\",\"type\":\"invalid_request_error\"}}", NULL);
    json_error_t je;
    json_t *req = u->data ? json_loadb(u->data, u->len, 0, &je) : NULL;
    const char *user = req ? json_string_value(json_object_get(json_array_get(json_object_get(req, "messages"), 1), "content")) : NULL;
    if (!user) {
        json_decref(req);
        return reply(c, 400, "{\"error\":{\"message\":\"bad request\",\"type\":\"invalid_request_error\"}}", NULL);
    }
    uint64_t h = rl_hash64(user, strlen(user));
    int attempt = attempt_of(s, h);
    if (s->o.delay_s > 0) usleep((useconds_t)(s->o.delay_s * 1e6));
    if (s->o.transport_faults && attempt == 1) {
        int f = (int)(h % 9);
        if (f == 1) {
            pthread_mutex_lock(&s->mu), s->st.faults_429++, pthread_mutex_unlock(&s->mu);
            json_decref(req);
            return reply(c, 429, "{\"error\":{\"message\":\"rate limited\",\"type\":\"rate_limit\"}}", "1");
        }
        if (f == 2) {
            pthread_mutex_lock(&s->mu), s->st.faults_500++, pthread_mutex_unlock(&s->mu);
            json_decref(req);
            return reply(c, 500, "{\"error\":{\"message\":\"internal error\",\"type\":\"server_error\"}}", NULL);
        }
        if (f == 3) {
            pthread_mutex_lock(&s->mu), s->st.faults_slow++, pthread_mutex_unlock(&s->mu);
            usleep((useconds_t)(s->o.slow_s * 1e6)); /* the client has given up by now */
        }
    }
    char *content = content_for(user);
    json_t *resp = json_pack("{s:s, s:s, s:s, s:[{s:i, s:{s:s, s:s}, s:s}], s:{s:i, s:i, s:i}}", "id", "chatcmpl-fake", "object",
                             "chat.completion", "model", "fake", "choices", "index", 0, "message", "role", "assistant", "content",
                             content, "finish_reason", "stop", "usage", "prompt_tokens", (int)(strlen(user) / 4), "completion_tokens",
                             (int)(strlen(content) / 4), "total_tokens", (int)((strlen(user) + strlen(content)) / 4));
    char *body = json_dumps(resp, JSON_COMPACT);
    json_decref(resp);
    json_decref(req);
    free(content);
    if (s->o.transport_faults && attempt == 1 && h % 9 == 4) {
        pthread_mutex_lock(&s->mu), s->st.faults_truncated++, pthread_mutex_unlock(&s->mu);
        body[strlen(body) / 2] = 0; /* a proxy cut the body off */
    }
    enum MHD_Result ret = reply(c, 200, body, NULL);
    free(body);
    return ret;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    upload *u = *con_cls;
    if (u) free(u->data), free(u);
    *con_cls = NULL;
}

fake_openai *fake_openai_start(const fake_openai_opts *o) {
    fake_openai *s = calloc(1, sizeof *s);
    s->o = *o;
    if (s->o.slow_s <= 0) s->o.slow_s = 2.0;
    pthread_mutex_init(&s->mu, NULL);
    struct sockaddr_in addr = {0}; /* loopback only */
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->daemon = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, handle, s,
                                 MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                                 MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_END);
    if (!s->daemon) {
        free(s);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : 0;
    return s;
}

int fake_openai_port(const fake_openai *s) { return s->port; }

void fake_openai_get_stats(fake_openai *s, fake_openai_stats *st) {
    pthread_mutex_lock(&s->mu);
    *st = s->st;
    pthread_mutex_unlock(&s->mu);
}

void fake_openai_stop(fake_openai *s) {
    if (!s) return;
    MHD_stop_daemon(s->daemon);
    pthread_mutex_destroy(&s->mu);
    free(s->seen_h);
    free(s->seen_n);
    free(s);
}
