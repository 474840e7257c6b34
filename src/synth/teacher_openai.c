/* teacher_openai.c - a teacher behind any OpenAI-compatible /chat/completions endpoint.
 *
 * Many requests are in flight at once through one libcurl multi handle (max_concurrency).
 * Failures that may pass (timeouts, dropped connections, 408/429/5xx, a body that is not
 * JSON, questions that cannot be parsed even after repair) are retried with exponential
 * backoff and jitter, waiting at least what a Retry-After header asks; errors that will not
 * pass (400, 401, 403, 404) fail the task with the server's message. Token usage is summed
 * per task and in total; a token budget stops new requests once it is spent.
 *
 * Deliberately not here: streaming responses (a whole answer is needed before verification). */
#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "synth/synth_internal.h"

typedef struct request {
    rl_teacher_task *task;
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    rl_buf resp;
    long retry_after; /* seconds from the last response's Retry-After, -1 if none */
    int attempt;
    double ready_at; /* when a waiting retry may start */
    int active;      /* added to the multi handle */
    char last_error[256];
    struct request *next;        /* in the waiting list */
    struct request *active_next; /* in the active list */
} request;

typedef struct openai {
    rl_teacher base;
    rl_openai_opts o;
    char *url, *auth;
    CURLM *multi;
    request *waiting;  /* not started yet or backing off, unordered */
    request *active;   /* transfers in progress */
    int n_active, n_waiting;
    rl_teacher_task **done;
    int n_done, cap_done;
    uint64_t rng;
    int64_t prompt_tokens, completion_tokens, requests, retries;
} openai;

/* ---- parsing questions robustly ---------------------------------------------------------- */

static int add_question(char ***qs, int *n, const char *q) {
    while (isspace((unsigned char)*q)) q++;
    size_t len = strlen(q);
    while (len && isspace((unsigned char)q[len - 1])) len--;
    if (len < 5) return 0;
    *qs = rl_xrealloc(*qs, (size_t)(*n + 1) * sizeof **qs);
    (*qs)[(*n)++] = rl_xstrndup(q, len);
    return 1;
}

static int questions_from_json(json_t *j, char ***qs, int *n) {
    if (json_is_object(j)) {
        json_t *inner = json_object_get(j, "questions");
        return inner ? questions_from_json(inner, qs, n) : 0;
    }
    if (!json_is_array(j)) return 0;
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v) {
        if (json_is_string(v)) add_question(qs, n, json_string_value(v));
        else if (json_is_object(v) && json_is_string(json_object_get(v, "question")))
            add_question(qs, n, json_string_value(json_object_get(v, "question")));
    }
    return *n > 0;
}

/* The repair pass: models wrap JSON in code fences, add prose around it, leave trailing
 * commas, or stop mid-array when they hit max_tokens. */
static char *repair_json_array(const char *s) {
    const char *a = strchr(s, '[');
    if (!a) return NULL;
    const char *z = strrchr(s, ']');
    rl_buf b = {0};
    if (z && z > a) rl_buf_append(&b, a, (size_t)(z - a + 1));
    else {
        /* truncated: keep complete strings only, then close the array */
        rl_buf_puts(&b, a);
        int in = 0, esc = 0;
        size_t last_end = 0;
        for (size_t i = 0; i < b.len; i++) {
            char c = b.data[i];
            if (esc) esc = 0;
            else if (c == '\\') esc = 1;
            else if (c == '"') {
                in = !in;
                if (!in) last_end = i + 1;
            }
        }
        if (in || last_end) b.len = last_end ? last_end : 1;
        rl_buf_putc(&b, ']');
    }
    /* trailing commas */
    rl_buf out = {0};
    for (size_t i = 0; i < b.len; i++) {
        if (b.data[i] == ',') {
            size_t k = i + 1;
            while (k < b.len && isspace((unsigned char)b.data[k])) k++;
            if (k < b.len && (b.data[k] == ']' || b.data[k] == '}')) continue;
        }
        rl_buf_putc(&out, b.data[i]);
    }
    rl_buf_free(&b);
    return rl_buf_take(&out);
}

int rl_parse_questions(const char *content, char ***out) {
    char **qs = NULL;
    int n = 0;
    json_error_t je;
    json_t *j = json_loads(content, JSON_DECODE_ANY, &je);
    if (!j) {
        char *fixed = repair_json_array(content);
        if (fixed) j = json_loads(fixed, 0, &je);
        free(fixed);
    }
    int parsed = 0;
    if (j) {
        /* an empty list is an answer: the passage has nothing worth asking about */
        parsed = json_is_array(j) || (json_is_object(j) && json_is_array(json_object_get(j, "questions")));
        questions_from_json(j, &qs, &n);
        json_decref(j);
    }
    if (n == 0 && !parsed) { /* last resort: lines that are questions ("1. What ...?") */
        char *copy = rl_xstrdup(content), *save;
        for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            while (*line && (isdigit((unsigned char)*line) || strchr(" .)-*\"", *line))) line++;
            size_t len = strlen(line);
            while (len && strchr(" \",", line[len - 1])) line[--len] = 0;
            if (len > 5 && line[len - 1] == '?') add_question(&qs, &n, line);
        }
        free(copy);
        if (n == 0) return *out = NULL, -1;
    }
    *out = qs;
    return n;
}

/* ---- requests ------------------------------------------------------------------------------ */

static size_t on_body(char *data, size_t size, size_t n, void *user) {
    request *r = user;
    if (r->resp.len + size * n > (64u << 20)) return 0; /* a runaway response */
    rl_buf_append(&r->resp, data, size * n);
    return size * n;
}

static size_t on_header(char *data, size_t size, size_t n, void *user) {
    request *r = user;
    size_t len = size * n;
    if (len > 12 && strncasecmp(data, "retry-after:", 12) == 0) {
        long v = strtol(data + 12, NULL, 10);
        if (v >= 0 && v < 3600) r->retry_after = v;
    }
    return len;
}

static uint64_t next_rand(openai *x) {
    x->rng ^= x->rng << 13, x->rng ^= x->rng >> 7, x->rng ^= x->rng << 17;
    return x->rng;
}

static void start_request(openai *x, request *r) {
    rl_buf_clear(&r->resp);
    r->retry_after = -1;
    r->easy = curl_easy_init();
    RL_ASSERT(r->easy != NULL);
    curl_easy_setopt(r->easy, CURLOPT_URL, x->url);
    curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(r->easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(r->easy, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, (long)(x->o.timeout_s * 1000));
    curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)(x->o.timeout_s * 1000 < 30000 ? x->o.timeout_s * 1000 : 30000));
    curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
    curl_easy_setopt(r->easy, CURLOPT_ACCEPT_ENCODING, "");
    curl_multi_add_handle(x->multi, r->easy);
    r->active = 1;
    r->active_next = x->active;
    x->active = r;
    x->n_active++;
    x->requests++;
}

static void finish(openai *x, request *r, rl_status status, const char *error) {
    rl_teacher_task *t = r->task;
    t->status = status;
    if (status != RL_OK) t->error = rl_xstrdup(error ? error : "request failed");
    if (x->n_done == x->cap_done) x->cap_done = x->cap_done ? 2 * x->cap_done : 64, x->done = rl_xrealloc(x->done, (size_t)x->cap_done * sizeof *x->done);
    x->done[x->n_done++] = t;
    curl_slist_free_all(r->headers);
    free(r->body);
    rl_buf_free(&r->resp);
    free(r);
}

static void schedule_retry(openai *x, request *r, const char *why) {
    snprintf(r->last_error, sizeof r->last_error, "%s", why);
    if (r->attempt >= x->o.max_retries) {
        char msg[400];
        snprintf(msg, sizeof msg, "gave up after %d attempts: %s", r->attempt + 1, why);
        finish(x, r, RL_EIO, msg);
        return;
    }
    /* exponential backoff with equal jitter; a server's Retry-After is a floor */
    double base = x->o.retry_base_s * (double)(1u << (r->attempt < 16 ? r->attempt : 16));
    if (base > 30) base = 30;
    double delay = base / 2 + base / 2 * (double)(next_rand(x) >> 11) / 9007199254740992.0;
    if (r->retry_after >= 0 && delay < (double)r->retry_after) delay = (double)r->retry_after + 0.05 * (double)(next_rand(x) % 10) / 10;
    r->attempt++;
    r->ready_at = rl_now() + delay;
    x->retries++;
    rl_debug("teacher: retry %d in %.2f s: %s", r->attempt, delay, why);
    r->next = x->waiting;
    x->waiting = r;
    x->n_waiting++;
}

/* A finished transfer: success, a retry, or a failure. */
static void on_done(openai *x, request *r, CURLcode code) {
    long http = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &http);
    curl_multi_remove_handle(x->multi, r->easy);
    curl_easy_cleanup(r->easy);
    r->easy = NULL;
    r->active = 0;
    for (request **pp = &x->active; *pp; pp = &(*pp)->active_next)
        if (*pp == r) {
            *pp = r->active_next;
            break;
        }
    x->n_active--;
    char why[300];
    if (code != CURLE_OK) {
        snprintf(why, sizeof why, "%s", curl_easy_strerror(code));
        schedule_retry(x, r, why);
        return;
    }
    if (http == 408 || http == 429 || http >= 500) {
        snprintf(why, sizeof why, "HTTP %ld", http);
        schedule_retry(x, r, why);
        return;
    }
    json_error_t je;
    json_t *j = r->resp.data ? json_loadb(r->resp.data, r->resp.len, 0, &je) : NULL;
    if (http != 200) {
        json_t *m = j ? json_object_get(json_object_get(j, "error"), "message") : NULL;
        snprintf(why, sizeof why, "HTTP %ld from %s: %.200s%s", http, x->url, m ? json_string_value(m) : r->resp.data ? r->resp.data : "",
                 http == 401 ? " (check the API key in the environment variable teacher.api_key_env names)" : "");
        json_decref(j);
        finish(x, r, RL_EIO, why);
        return;
    }
    const char *content = NULL;
    if (j) {
        json_t *c = json_object_get(json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message"), "content");
        content = json_string_value(c);
    }
    if (!content) {
        snprintf(why, sizeof why, "the response is not a chat completion (%s)", j ? "no choices[0].message.content" : je.text);
        json_decref(j);
        schedule_retry(x, r, why);
        return;
    }
    rl_teacher_task *t = r->task;
    json_t *usage = json_object_get(j, "usage");
    int64_t pt = json_integer_value(json_object_get(usage, "prompt_tokens")), ct = json_integer_value(json_object_get(usage, "completion_tokens"));
    t->prompt_tokens += pt;
    t->completion_tokens += ct;
    x->prompt_tokens += pt;
    x->completion_tokens += ct;
    if (t->kind == RL_TASK_QUESTIONS) {
        char **qs;
        int n = rl_parse_questions(content, &qs);
        if (n < 0) {
            snprintf(why, sizeof why, "no questions in the reply (%.80s)", content);
            json_decref(j);
            schedule_retry(x, r, why);
            return;
        }
        if (n > t->n_questions) { /* more than asked for: keep the first n */
            for (int i = t->n_questions; i < n; i++) free(qs[i]);
            n = t->n_questions;
        }
        t->questions = qs;
        t->n_out = n;
    } else {
        t->answer = rl_xstrdup(content);
    }
    json_decref(j);
    finish(x, r, RL_OK, NULL);
}

static rl_status oa_submit(rl_teacher *tt, rl_teacher_task *t, rl_error *err) {
    openai *x = (openai *)tt;
    if (x->o.token_budget > 0 && x->prompt_tokens + x->completion_tokens >= x->o.token_budget)
        return rl_fail(err, RL_EINTERRUPTED, "the teacher's token budget of %lld tokens is spent (teacher.token_budget)", (long long)x->o.token_budget);
    char *user = syn_prompt_fill(t->kind == RL_TASK_QUESTIONS ? (x->o.question_prompt ? x->o.question_prompt : syn_default_question_prompt)
                                                            : (x->o.answer_prompt ? x->o.answer_prompt : syn_default_answer_prompt),
                               t);
    json_t *req = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s}], s:f, s:i}", "model", x->o.model ? x->o.model : "default", "messages", "role",
                            "system", "content", syn_teacher_system_prompt, "role", "user", "content", user, "temperature", x->o.temperature,
                            "max_tokens", x->o.max_tokens);
    free(user);
    if (!req) return rl_fail(err, RL_EINVAL, "cannot build the request (text is not valid UTF-8?)");
    request *r = rl_xcalloc(1, sizeof *r);
    r->task = t;
    r->body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    r->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (x->auth) r->headers = curl_slist_append(r->headers, x->auth);
    r->ready_at = 0;
    r->next = x->waiting;
    x->waiting = r;
    x->n_waiting++;
    return RL_OK;
}

static int oa_poll(rl_teacher *tt, rl_teacher_task **done, int max) {
    openai *x = (openai *)tt;
    for (;;) {
        double now = rl_now(), next_ready = 1e30;
        /* start what is due, up to the concurrency */
        for (request **pp = &x->waiting; *pp;) {
            request *r = *pp;
            if (r->ready_at <= now && x->n_active < x->o.max_concurrency) {
                *pp = r->next;
                x->n_waiting--;
                start_request(x, r);
                continue;
            }
            if (r->ready_at < next_ready) next_ready = r->ready_at;
            pp = &r->next;
        }
        int running;
        curl_multi_perform(x->multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(x->multi, &left)))
            if (msg->msg == CURLMSG_DONE) {
                request *r;
                curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
                on_done(x, r, msg->data.result);
            }
        if (x->n_done > 0) {
            int n = x->n_done < max ? x->n_done : max;
            memcpy(done, x->done, (size_t)n * sizeof *done);
            memmove(x->done, x->done + n, (size_t)(x->n_done - n) * sizeof *x->done);
            x->n_done -= n;
            return n;
        }
        if (x->n_active == 0 && x->n_waiting == 0) return 0;
        double wait = x->n_active ? 0.2 : next_ready - rl_now();
        if (x->n_waiting && next_ready - rl_now() < wait) wait = next_ready - rl_now();
        if (wait < 0) wait = 0;
        if (wait > 1) wait = 1; /* next_ready is "never" (1e30) when nothing waits on a timer */
        curl_multi_poll(x->multi, NULL, 0, (int)(wait * 1000) + 1, NULL);
    }
}

static int oa_capacity(rl_teacher *tt) { return ((openai *)tt)->o.max_concurrency; }

static void oa_free(rl_teacher *tt) {
    openai *x = (openai *)tt;
    /* in-flight transfers of an aborted run */
    while (x->waiting) {
        request *r = x->waiting;
        x->waiting = r->next;
        curl_slist_free_all(r->headers), free(r->body), rl_buf_free(&r->resp), free(r);
    }
    while (x->active) {
        request *r = x->active;
        x->active = r->active_next;
        curl_multi_remove_handle(x->multi, r->easy);
        curl_easy_cleanup(r->easy);
        curl_slist_free_all(r->headers), free(r->body), rl_buf_free(&r->resp), free(r);
    }
    curl_multi_cleanup(x->multi);
    free(x->done);
    free(x->url);
    free(x->auth);
    free(x);
}

static const rl_teacher_vt openai_vt = {"openai", oa_submit, oa_poll, oa_capacity, oa_free};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_setup(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

void rl_teacher_openai_stats(rl_teacher *t, int64_t *requests, int64_t *retries, int64_t *prompt_tokens, int64_t *completion_tokens) {
    openai *x = (openai *)t;
    *requests = x->requests;
    *retries = x->retries;
    *prompt_tokens = x->prompt_tokens;
    *completion_tokens = x->completion_tokens;
}

rl_status rl_teacher_openai_new(rl_teacher **out, const rl_openai_opts *o, rl_error *err) {
    *out = NULL;
    if (!o->base_url || !o->base_url[0])
        return rl_fail(err, RL_ECONFIG, "teacher.base_url is required for the openai teacher (e.g. http://127.0.0.1:8000/v1)");
    if (strncmp(o->base_url, "http://", 7) != 0 && strncmp(o->base_url, "https://", 8) != 0)
        return rl_fail(err, RL_ECONFIG, "teacher.base_url must start with http:// or https://, got \"%s\"", o->base_url);
    pthread_once(&curl_once, curl_setup);
    openai *x = rl_xcalloc(1, sizeof *x);
    x->base.vt = &openai_vt;
    x->o = *o;
    if (x->o.max_concurrency < 1) x->o.max_concurrency = 1;
    if (x->o.timeout_s <= 0) x->o.timeout_s = 120;
    if (x->o.max_retries < 0) x->o.max_retries = 0;
    if (x->o.retry_base_s <= 0) x->o.retry_base_s = 0.5;
    if (x->o.max_tokens <= 0) x->o.max_tokens = 1024;
    size_t bl = strlen(o->base_url);
    x->url = rl_xasprintf("%.*s/chat/completions", (int)(bl && o->base_url[bl - 1] == '/' ? bl - 1 : bl), o->base_url);
    if (o->api_key && o->api_key[0]) x->auth = rl_xasprintf("Authorization: Bearer %s", o->api_key);
    x->multi = curl_multi_init();
    curl_multi_setopt(x->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)x->o.max_concurrency);
    x->rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)(rl_now() * 1e6);
    /* the fingerprint: what shapes the output (not the key, not the concurrency) */
    char *fp = rl_xasprintf("openai:%s:%s:%g:%d:%s:%s", o->base_url, o->model ? o->model : "", o->temperature, o->max_tokens,
                            o->question_prompt ? o->question_prompt : "", o->answer_prompt ? o->answer_prompt : "");
    char hex[65];
    rl_sha256_hex(fp, strlen(fp), hex);
    snprintf(x->base.fingerprint, sizeof x->base.fingerprint, "openai:%.40s:%.16s", o->model ? o->model : "", hex);
    free(fp);
    *out = &x->base;
    return RL_OK;
}
