/* api.c - OpenAI's request and response shapes: /v1/chat/completions, /v1/completions (plain
 * JSON and server-sent event chunks), /v1/models, and raftlm's /v1/search.
 *
 * Requests are checked field by field (wrong types and ranges are 400s naming the field);
 * unknown fields are ignored, as OpenAI's own server does for most. The prompt of a chat
 * request with retrieval on is exactly the training layout (train/data.c, raft datasets): the
 * RAFT instruction (rl_raft_prompt: <DOCUMENT> blocks, then the question) as the one user turn
 * of the model's chat template, or, for a model without a template, BOS + instruction + "\n".
 * Without retrieval the messages go through the chat template; a model without a template
 * (a base model such as stories260K) gets the messages' contents joined by blank lines as a
 * plain prompt, so that a single user message behaves like `raftlm generate --prompt`.
 *
 * Not done: n > 1, tools / function calling, response_format, echo, suffix, best_of. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve_internal.h"

#define MAX_STOP 16
#define MAX_BIAS 1024
#define MAX_K 50

json_t *api_model_obj(rl_server *s, const char *id) {
    json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:{s:i,s:i}}", "id", id, "object", "model", "created",
                          (json_int_t)s->created, "owned_by", "raftlm", "meta", "n_ctx", s->n_ctx, "n_vocab",
                          s->m->cfg.vocab_size);
    if (o && strcmp(id, s->model_name) != 0) json_object_set_new(o, "parent", json_string(s->model_name)); // an adapter
    return o;
}

json_t *api_models(rl_server *s) {
    json_t *list = json_array();
    json_array_append_new(list, api_model_obj(s, s->model_name));
    for (int a = 0; a < s->o.n_adapters; a++) json_array_append_new(list, api_model_obj(s, s->o.adapters[a].name));
    return json_pack("{s:s,s:o}", "object", "list", "data", list);
}

/* ---- typed fields ------------------------------------------------------------------------ */

typedef struct perr {
    char msg[300];
    const char *code;
} perr;

/* 1: present and valid, 0: absent or null, -1: wrong type or range (e filled). */
static int get_num(json_t *o, const char *key, double lo, double hi, double *out, perr *e) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) {
        snprintf(e->msg, sizeof e->msg, "'%s' must be a number", key);
        return -1;
    }
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi)) {
        snprintf(e->msg, sizeof e->msg, "'%s' must be between %g and %g, got %g", key, lo, hi, x);
        return -1;
    }
    *out = x;
    return 1;
}

static int get_int(json_t *o, const char *key, long long lo, long long hi, long long *out, perr *e) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v)) {
        snprintf(e->msg, sizeof e->msg, "'%s' must be an integer", key);
        return -1;
    }
    long long x = json_integer_value(v);
    if (x < lo || x > hi) {
        snprintf(e->msg, sizeof e->msg, "'%s' must be between %lld and %lld, got %lld", key, lo, hi, x);
        return -1;
    }
    *out = x;
    return 1;
}

static int get_bool(json_t *o, const char *key, int *out, perr *e) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) {
        snprintf(e->msg, sizeof e->msg, "'%s' must be true or false", key);
        return -1;
    }
    *out = json_is_true(v);
    return 1;
}

/* ---- prompts ----------------------------------------------------------------------------- */

static rl_status tokenize(rl_server *s, const char *text, int add_bos, int32_t **ids, size_t *n, rl_error *err) {
    return rl_prompt_tokenize(s->tok, s->m->cfg.bos_id, text, add_bos, ids, n, err);
}

/* The text of a message's content: a string, or a list of {"type":"text","text":...} parts
 * (joined). NULL content (an assistant turn with tool calls) is "". Caller frees. */
static char *content_text(json_t *c, size_t i, perr *e) {
    if (!c || json_is_null(c)) return rl_xstrdup("");
    if (json_is_string(c)) return rl_xstrndup(json_string_value(c), json_string_length(c));
    if (json_is_array(c)) {
        rl_buf b = {0};
        size_t k;
        json_t *part;
        json_array_foreach(c, k, part) {
            json_t *t = json_object_get(part, "text"), *ty = json_object_get(part, "type");
            if (!json_is_object(part) || !json_is_string(ty) || strcmp(json_string_value(ty), "text") != 0 ||
                !json_is_string(t)) {
                snprintf(e->msg, sizeof e->msg, "messages[%zu].content[%zu]: only {\"type\":\"text\",\"text\":...} parts are supported", i, k);
                rl_buf_free(&b);
                return NULL;
            }
            rl_buf_append(&b, json_string_value(t), json_string_length(t));
        }
        return b.data ? rl_buf_take(&b) : rl_xstrdup("");
    }
    snprintf(e->msg, sizeof e->msg, "messages[%zu].content must be a string or a list of text parts", i);
    return NULL;
}

static json_t *hit_json(const rl_hit *h, int with_text) {
    json_t *o = json_pack("{s:I,s:s,s:s,s:f}", "chunk_id", (json_int_t)h->chunk_id, "doc", h->doc ? h->doc : "",
                          "heading", h->heading ? h->heading : "", "score", h->score);
    if (o && with_text) json_object_set_new(o, "text", json_string(h->text ? h->text : ""));
    return o;
}

static rl_status search(rl_server *s, const char *q, int k, const char *mode, const char *prefix, rl_hit **hits, size_t *n,
                        rl_error *err) {
    rl_search_opts so = {.mode = mode, .k = k, .path_prefix = prefix, .hybrid = s->o.hybrid};
    int dense = strcmp(mode, "bm25") != 0;
    pthread_mutex_lock(&s->store_mu);
    if (dense) pthread_mutex_lock(&s->embed_mu);
    rl_status st = rl_search(s->store, s->o.dense, &so, q, hits, n, err);
    if (dense) pthread_mutex_unlock(&s->embed_mu);
    pthread_mutex_unlock(&s->store_mu);
    return st;
}

/* The mode of a search that does not name one: retrieval.mode, "auto" being hybrid when the
 * server has a dense index. */
static const char *default_mode(const rl_server *s) {
    const char *m = s->o.search_mode;
    if (m && strcmp(m, "auto") != 0 && (strcmp(m, "bm25") == 0 || s->o.dense)) return m;
    return s->o.dense ? "hybrid" : "bm25";
}

/* Builds the prompt ids of a chat request; 0 or an HTTP status with e filled. */
static unsigned chat_prompt(rl_server *s, json_t *root, srv_job *j, perr *e) {
    json_t *msgs = json_object_get(root, "messages");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
        snprintf(e->msg, sizeof e->msg, "'messages' must be a non-empty list");
        return 400;
    }
    size_t n = json_array_size(msgs);
    if (n > 4096) {
        snprintf(e->msg, sizeof e->msg, "too many messages (%zu)", n);
        return 400;
    }
    rl_chat_msg *m = rl_xcalloc(n, sizeof *m);
    char **owned = rl_xcalloc(n, sizeof *owned);
    unsigned status = 0;
    long last_user = -1;
    for (size_t i = 0; i < n && !status; i++) {
        json_t *x = json_array_get(msgs, i), *role = json_object_get(x, "role");
        if (!json_is_object(x) || !json_is_string(role)) {
            snprintf(e->msg, sizeof e->msg, "messages[%zu] must be an object with a string 'role'", i);
            status = 400;
            break;
        }
        const char *r = json_string_value(role);
        if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant") && strcmp(r, "developer") &&
            strcmp(r, "tool")) {
            snprintf(e->msg, sizeof e->msg, "messages[%zu].role '%.40s' is not system, developer, user, assistant or tool", i, r);
            status = 400;
            break;
        }
        m[i].role = strcmp(r, "developer") == 0 ? "system" : r;
        if (!(owned[i] = content_text(json_object_get(x, "content"), i, e))) {
            status = 400;
            break;
        }
        m[i].content = owned[i];
        if (strcmp(r, "user") == 0) last_user = (long)i;
    }
    // the raftlm extension: {"retrieval": bool, "k": int}
    json_t *ext = json_object_get(root, "raftlm");
    int retrieval = s->store != NULL;
    long long k = s->o.k;
    if (!status && ext && !json_is_null(ext)) {
        if (!json_is_object(ext)) {
            snprintf(e->msg, sizeof e->msg, "'raftlm' must be an object");
            status = 400;
        } else if (get_bool(ext, "retrieval", &retrieval, e) < 0 || get_int(ext, "k", 1, MAX_K, &k, e) < 0) {
            status = 400;
        }
    }
    rl_error err = {0};
    j->raftlm = json_object();
    if (!status && retrieval && s->store) {
        if (last_user < 0) {
            snprintf(e->msg, sizeof e->msg, "retrieval needs a user message (or send \"raftlm\": {\"retrieval\": false})");
            status = 400;
        } else {
            rl_hit *hits = NULL;
            size_t nh = 0;
            /* the server's search mode (hybrid with an embedder and index), as /v1/search and eval */
            rl_status st = search(s, m[last_user].content, (int)k, default_mode(s), NULL, &hits, &nh, &err);
            if (!st) st = rl_rag_prompt_hits(s->tok, s->m->cfg.bos_id, hits, nh, m[last_user].content, &j->ids, &j->n_ids, &err);
            if (st) {
                rl_hits_free(hits, nh);
                snprintf(e->msg, sizeof e->msg, "cannot build the prompt from the store: %.200s", err.msg);
                status = st == RL_EDB ? 500 : 400;
            } else {
                json_t *src = json_array();
                for (size_t i = 0; i < nh; i++) json_array_append_new(src, hit_json(&hits[i], 0));
                rl_hits_free(hits, nh);
                json_object_set_new(j->raftlm, "retrieval", json_true());
                json_object_set_new(j->raftlm, "sources", src);
            }
        }
    } else if (!status) {
        json_object_set_new(j->raftlm, "retrieval", json_false());
        if (rl_chat_prompt(s->tok, s->m->cfg.bos_id, m, n, &j->ids, &j->n_ids, &err)) {
            snprintf(e->msg, sizeof e->msg, "cannot build the prompt: %.200s", err.msg);
            status = 400;
        }
    }
    for (size_t i = 0; i < n; i++) free(owned[i]);
    free(owned);
    free(m);
    return status;
}

static unsigned completion_prompt(rl_server *s, json_t *root, srv_job *j, perr *e) {
    json_t *p = json_object_get(root, "prompt");
    if (json_is_array(p) && json_array_size(p) == 1 && json_is_string(json_array_get(p, 0))) p = json_array_get(p, 0);
    rl_error err = {0};
    j->raftlm = json_pack("{s:b}", "retrieval", 0);
    if (json_is_string(p)) {
        if (tokenize(s, json_string_value(p), 1, &j->ids, &j->n_ids, &err)) {
            snprintf(e->msg, sizeof e->msg, "cannot tokenize the prompt: %.200s", err.msg);
            return 400;
        }
        return 0;
    }
    if (json_is_array(p) && json_array_size(p) > 0 && json_is_integer(json_array_get(p, 0))) { // token ids
        size_t n = json_array_size(p);
        j->ids = rl_xmalloc(n * sizeof *j->ids);
        for (size_t i = 0; i < n; i++) {
            json_t *v = json_array_get(p, i);
            json_int_t x = json_is_integer(v) ? json_integer_value(v) : -1;
            if (x < 0 || x >= s->m->cfg.vocab_size) {
                snprintf(e->msg, sizeof e->msg, "prompt[%zu] is not a token id of this model", i);
                return 400;
            }
            j->ids[i] = (int32_t)x;
        }
        j->n_ids = n;
        return 0;
    }
    snprintf(e->msg, sizeof e->msg, "'prompt' must be a string (or a list of one string, or of token ids)");
    return 400;
}

/* ---- sampling parameters ------------------------------------------------------------------- */

static unsigned parse_params(rl_server *s, json_t *root, srv_job *j, perr *e) {
    rl_sampler_params *sp = &j->gp.sampling;
    *sp = rl_sampler_defaults();
    sp->penalty_last_n = -1; // OpenAI's penalties look at everything generated so far
    double x;
    long long n;
    int r;
    if ((r = get_num(root, "temperature", 0, 2, &x, e)) < 0) return 400;
    if (r) sp->temperature = (float)x;
    if ((r = get_num(root, "top_p", 1e-9, 1, &x, e)) < 0) return 400;
    if (r) sp->top_p = (float)x;
    if ((r = get_num(root, "min_p", 0, 1, &x, e)) < 0) return 400;
    if (r) sp->min_p = (float)x;
    if ((r = get_int(root, "top_k", 0, 1 << 30, &n, e)) < 0) return 400;
    if (r) sp->top_k = (int)n;
    if ((r = get_num(root, "presence_penalty", -2, 2, &x, e)) < 0) return 400;
    if (r) sp->presence_penalty = (float)x;
    if ((r = get_num(root, "frequency_penalty", -2, 2, &x, e)) < 0) return 400;
    if (r) sp->frequency_penalty = (float)x;
    if ((r = get_num(root, "repeat_penalty", 1e-3, 100, &x, e)) < 0) return 400;
    if (r) sp->repeat_penalty = (float)x;
    if ((r = get_int(root, "repeat_last_n", -1, 1 << 30, &n, e)) < 0) return 400;
    if (r) sp->penalty_last_n = (int)n;
    json_t *seed = json_object_get(root, "seed");
    if (seed && !json_is_null(seed)) {
        if (!json_is_integer(seed)) {
            snprintf(e->msg, sizeof e->msg, "'seed' must be an integer");
            return 400;
        }
        sp->seed = (uint64_t)json_integer_value(seed);
    } else {
        pthread_mutex_lock(&s->mu);
        sp->seed = 0x5eed0000ULL + s->next_id;
        pthread_mutex_unlock(&s->mu);
    }
    if ((r = get_int(root, "n", 1, 1, &n, e)) < 0) {
        snprintf(e->msg, sizeof e->msg, "'n' must be 1 (one choice per request)");
        return 400;
    }
    if ((r = get_bool(root, "stream", &j->stream, e)) < 0) return 400;
    json_t *so = json_object_get(root, "stream_options");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so) || get_bool(so, "include_usage", &j->include_usage, e) < 0) {
            snprintf(e->msg, sizeof e->msg, "'stream_options' must be an object like {\"include_usage\": true}");
            return 400;
        }
    }
    // logprobs: chat has logprobs (bool) + top_logprobs; completions has logprobs (int 0..5)
    if (j->kind == API_CHAT) {
        if (get_bool(root, "logprobs", &j->logprobs, e) < 0) return 400;
        if ((r = get_int(root, "top_logprobs", 0, RL_MAX_TOP_LOGPROBS, &n, e)) < 0) return 400;
        if (r && !j->logprobs) {
            snprintf(e->msg, sizeof e->msg, "'top_logprobs' needs 'logprobs': true");
            return 400;
        }
        if (r) sp->n_probs = (int)n;
    } else {
        if ((r = get_int(root, "logprobs", 0, 5, &n, e)) < 0) return 400;
        if (r) j->logprobs = 1, sp->n_probs = (int)n;
        int echo = 0;
        if (get_bool(root, "echo", &echo, e) < 0) return 400;
        if (echo) {
            snprintf(e->msg, sizeof e->msg, "'echo' is not supported");
            e->code = "unsupported";
            return 400;
        }
    }
    j->gp.logprobs = j->logprobs;
    // stop: a string or a list of strings
    json_t *stop = json_object_get(root, "stop");
    if (stop && !json_is_null(stop)) {
        json_t *one = json_is_string(stop) ? stop : NULL;
        size_t cnt = one ? 1 : json_is_array(stop) ? json_array_size(stop) : (size_t)-1;
        if (cnt == (size_t)-1 || cnt > MAX_STOP) {
            snprintf(e->msg, sizeof e->msg, "'stop' must be a string or a list of up to %d strings", MAX_STOP);
            return 400;
        }
        j->stop = rl_xcalloc(cnt + 1, sizeof *j->stop);
        for (size_t i = 0; i < cnt; i++) {
            json_t *v = one ? one : json_array_get(stop, i);
            if (!json_is_string(v) || json_string_length(v) > 1024) {
                snprintf(e->msg, sizeof e->msg, "'stop' entries must be strings of at most 1024 bytes");
                return 400;
            }
            j->stop[j->n_stop++] = rl_xstrdup(json_string_value(v));
        }
        j->gp.stop = (const char *const *)j->stop;
        j->gp.n_stop = j->n_stop;
    }
    // logit_bias: {"token id": bias}
    json_t *lb = json_object_get(root, "logit_bias");
    if (lb && !json_is_null(lb)) {
        if (!json_is_object(lb) || json_object_size(lb) > MAX_BIAS) {
            snprintf(e->msg, sizeof e->msg, "'logit_bias' must be an object of up to %d \"token id\": bias pairs", MAX_BIAS);
            return 400;
        }
        j->bias = rl_xcalloc(json_object_size(lb) + 1, sizeof *j->bias);
        const char *key;
        json_t *v;
        int nb = 0;
        json_object_foreach(lb, key, v) {
            char *end;
            long id = strtol(key, &end, 10);
            if (!*key || *end || id < 0 || id >= s->m->cfg.vocab_size || !json_is_number(v) ||
                !(json_number_value(v) >= -100 && json_number_value(v) <= 100)) {
                snprintf(e->msg, sizeof e->msg, "logit_bias: '%.40s' must be a token id of this model with a bias in [-100, 100]", key);
                return 400;
            }
            j->bias[nb].token = (int32_t)id;
            j->bias[nb++].bias = (float)json_number_value(v);
        }
        sp->bias = j->bias;
        sp->n_bias = nb;
    }
    int ign = 0;
    if (get_bool(root, "ignore_eos", &ign, e) < 0) return 400;
    j->gp.ignore_eos = ign;
    return 0;
}

/* ---- responses ----------------------------------------------------------------------------- */

static const char *finish_reason(rl_finish f) {
    return f == RL_FINISH_LENGTH || f == RL_FINISH_TIMEOUT ? "length" : "stop";
}

/* A token as text for logprobs: its bytes, invalid UTF-8 replaced by U+FFFD, plus the bytes. */
static json_t *token_obj(const rl_tokenizer *tok, int32_t id, float lp, const rl_token_prob *top, int n_top) {
    char *t = NULL;
    size_t len = 0;
    if (rl_tok_decode(tok, &id, 1, 0, &t, &len, NULL)) t = rl_xstrdup(""), len = 0;
    rl_buf clean = {0};
    json_t *bytes = json_array();
    for (size_t i = 0; i < len; i++) json_array_append_new(bytes, json_integer((unsigned char)t[i]));
    for (size_t i = 0; i < len;) {
        int k = rl_utf8_seq_len((const unsigned char *)t + i, len - i);
        if (k) rl_buf_append(&clean, t + i, (size_t)k), i += (size_t)k;
        else rl_buf_puts(&clean, "\xEF\xBF\xBD"), i++;
    }
    json_t *o = json_pack("{s:s%,s:f,s:o}", "token", clean.data ? clean.data : "", clean.len, "logprob", (double)lp,
                          "bytes", bytes);
    if (top) {
        json_t *arr = json_array();
        for (int i = 0; i < n_top; i++) json_array_append_new(arr, token_obj(tok, top[i].token, top[i].logprob, NULL, 0));
        json_object_set_new(o, "top_logprobs", arr);
    }
    free(t);
    rl_buf_free(&clean);
    return o;
}

static json_t *usage_obj(const srv_job *j) {
    return json_pack("{s:i,s:i,s:i,s:{s:i}}", "prompt_tokens", j->res.n_prompt, "completion_tokens", j->res.n_gen,
                     "total_tokens", j->res.n_prompt + j->res.n_gen, "prompt_tokens_details", "cached_tokens",
                     j->res.n_cached);
}

static json_t *chunk_base(const srv_job *j) {
    return json_pack("{s:s,s:s,s:I,s:s}", "id", j->id, "object",
                     j->kind == API_CHAT ? "chat.completion.chunk" : "text_completion", "created",
                     (json_int_t)j->created, "model", j->model_id);
}

static void sse(srv_job *j, json_t *obj) {
    char *txt = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (!txt) return;
    rl_buf_puts(&j->out, "data: ");
    rl_buf_puts(&j->out, txt);
    rl_buf_puts(&j->out, "\n\n");
    free(txt);
}

static json_t *legacy_logprobs(const rl_tokenizer *tok, const int32_t *ids, const float *lps, const rl_token_prob *top,
                               int n_top, int n) {
    json_t *toks = json_array(), *lp = json_array(), *tops = json_array();
    for (int i = 0; i < n; i++) {
        json_t *t = token_obj(tok, ids[i], lps[i], NULL, 0);
        json_array_append(toks, json_object_get(t, "token"));
        json_decref(t);
        json_array_append_new(lp, json_real(lps[i]));
        json_t *d = json_object();
        for (int k = 0; k < n_top; k++) {
            json_t *tk = token_obj(tok, top[(size_t)i * n_top + k].token, 0, NULL, 0);
            json_object_set_new(d, json_string_value(json_object_get(tk, "token")),
                                json_real(top[(size_t)i * n_top + k].logprob));
            json_decref(tk);
        }
        json_array_append_new(tops, d);
    }
    return json_pack("{s:o,s:o,s:o}", "tokens", toks, "token_logprobs", lp, "top_logprobs", tops);
}

void api_stream_piece(srv_job *j, const rl_gen_piece *pc) {
    if (pc->len == 0 && !(j->logprobs && pc->token >= 0)) return;
    json_t *c = chunk_base(j), *choice;
    json_t *lp = json_null();
    if (j->logprobs && pc->token >= 0) {
        if (j->kind == API_CHAT) {
            json_t *content = json_array();
            json_array_append_new(content, token_obj(j->srv->tok, pc->token, pc->logprob,
                                                     pc->n_top ? pc->top : NULL, pc->n_top));
            lp = json_pack("{s:o}", "content", content);
        } else {
            lp = legacy_logprobs(j->srv->tok, &pc->token, &pc->logprob, pc->top, pc->n_top, 1);
        }
    }
    if (j->kind == API_CHAT)
        choice = json_pack("{s:i,s:{s:s%},s:o,s:n}", "index", 0, "delta", "content", pc->text, pc->len, "logprobs", lp,
                           "finish_reason");
    else
        choice = json_pack("{s:i,s:s%,s:o,s:n}", "index", 0, "text", pc->text, pc->len, "logprobs", lp, "finish_reason");
    json_object_set_new(c, "choices", json_pack("[o]", choice));
    sse(j, c);
}

static json_t *raftlm_final(srv_job *j) {
    json_t *r = json_deep_copy(j->raftlm);
    if (!r) r = json_object();
    char *ans = j->res.text ? rl_raft_answer(j->res.text) : NULL;
    if (ans) json_object_set_new(r, "answer", json_string(ans));
    free(ans);
    json_object_set_new(r, "finish", json_string(rl_finish_name(j->res.finish)));
    double tg = j->res.t_gen > 0 ? j->res.t_gen : 0;
    json_object_set_new(r, "timings",
                        json_pack("{s:f,s:f,s:f}", "prompt_ms", j->res.t_prompt * 1e3, "generation_ms", tg * 1e3,
                                  "tokens_per_second", tg > 0 ? j->res.n_gen / tg : 0.0));
    return r;
}

void api_stream_end(srv_job *j) {
    if (j->st) {
        sse(j, json_pack("{s:{s:s,s:s,s:s}}", "error", "message", j->err.msg, "type", "server_error", "code",
                         "generation_failed"));
    } else {
        json_t *c = chunk_base(j), *choice;
        const char *fr = finish_reason(j->res.finish);
        if (j->kind == API_CHAT)
            choice = json_pack("{s:i,s:{},s:n,s:s}", "index", 0, "delta", "logprobs", "finish_reason", fr);
        else
            choice = json_pack("{s:i,s:s,s:n,s:s}", "index", 0, "text", "", "logprobs", "finish_reason", fr);
        json_object_set_new(c, "choices", json_pack("[o]", choice));
        json_object_set_new(c, "raftlm", raftlm_final(j));
        if (!j->include_usage) json_object_set_new(c, "usage", usage_obj(j));
        sse(j, c);
        if (j->include_usage) {
            c = chunk_base(j);
            json_object_set_new(c, "choices", json_array());
            json_object_set_new(c, "usage", usage_obj(j));
            sse(j, c);
        }
    }
    rl_buf_puts(&j->out, "data: [DONE]\n\n");
}

void api_job_free_request(srv_job *j) {
    free(j->ids);
    free(j->model_id);
    for (int i = 0; i < j->n_stop; i++) free(j->stop[i]);
    free(j->stop);
    free(j->bias);
    json_decref(j->raftlm);
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    srv_job *j = cls;
    pthread_mutex_lock(&j->mu);
    srv_job_wait(j, j->sent);
    size_t avail = j->out.len - j->sent;
    if (avail == 0) {
        pthread_mutex_unlock(&j->mu);
        return MHD_CONTENT_READER_END_OF_STREAM; // done (srv_job_wait returns early only then)
    }
    size_t n = avail < max ? avail : max;
    memcpy(buf, j->out.data + j->sent, n);
    j->sent += n;
    if (j->sent == j->out.len) { // all sent: reuse the buffer
        rl_buf_clear(&j->out);
        j->sent = 0;
    }
    pthread_mutex_unlock(&j->mu);
    return (ssize_t)n;
}

static void stream_free(void *cls) {
    srv_job *j = cls;
    pthread_mutex_lock(&j->mu);
    if (!j->done) j->cancel = 1; // the client went away mid-stream
    pthread_mutex_unlock(&j->mu);
    srv_count_request(j->srv, j->endpoint, 200, rl_now() - j->t0);
    srv_job_release(j);
}

enum MHD_Result api_generate(rl_server *s, struct MHD_Connection *c, json_t *root, int kind, srv_req_info *ri) {
    perr e = {.code = NULL};
    json_t *model = json_object_get(root, "model");
    if (model && !json_is_null(model) && !json_is_string(model))
        return srv_error(s, c, ri, 400, "invalid_request_error", "invalid_type", "'model' must be a string");
    const rl_lora *lora = NULL;
    int known = !json_is_string(model) || strcmp(json_string_value(model), s->model_name) == 0;
    for (int a = 0; a < s->o.n_adapters && !known; a++)
        if (strcmp(json_string_value(model), s->o.adapters[a].name) == 0) known = 1, lora = s->o.adapters[a].lora;
    if (!known) {
        char msg[256];
        snprintf(msg, sizeof msg, "The model '%.80s' does not exist (this server has '%.80s')", json_string_value(model),
                 s->model_name);
        return srv_error(s, c, ri, 404, "invalid_request_error", "model_not_found", msg);
    }
    srv_job *j = srv_job_new(s);
    j->kind = kind;
    j->lora = lora;
    j->model_id = rl_xstrdup(json_is_string(model) ? json_string_value(model) : s->model_name);
    j->fd = ri->fd;
    j->t0 = ri->t0;
    j->endpoint = ri->endpoint;
    j->deadline = ri->t0 + s->o.request_timeout_s;
    j->created = (long long)time(NULL);
    pthread_mutex_lock(&s->mu);
    uint64_t seq = ++s->next_id;
    pthread_mutex_unlock(&s->mu);
    snprintf(j->id, sizeof j->id, "%s-%llx%06llx", kind == API_CHAT ? "chatcmpl" : "cmpl", (unsigned long long)s->created,
             (unsigned long long)seq);
    unsigned status = parse_params(s, root, j, &e);
    long long max_tokens = 0;
    int has_max = 0;
    if (!status) {
        int r1 = get_int(root, "max_tokens", 1, 1LL << 40, &max_tokens, &e);
        int r2 = r1 < 0 ? 0 : get_int(root, "max_completion_tokens", 1, 1LL << 40, &max_tokens, &e);
        if (r1 < 0 || r2 < 0) status = 400;
        has_max = r1 > 0 || r2 > 0;
        if (!status && has_max && max_tokens > s->o.max_tokens) {
            snprintf(e.msg, sizeof e.msg, "max_tokens is %lld; this server allows at most %d", max_tokens, s->o.max_tokens);
            e.code = "max_tokens_too_large";
            status = 400;
        }
    }
    if (!status) status = kind == API_CHAT ? chat_prompt(s, root, j, &e) : completion_prompt(s, root, j, &e);
    if (!status && j->n_ids == 0) {
        snprintf(e.msg, sizeof e.msg, "the prompt is empty");
        status = 400;
    }
    if (!status && (j->n_ids >= (size_t)s->n_ctx || (has_max && (long long)j->n_ids + max_tokens > s->n_ctx))) {
        snprintf(e.msg, sizeof e.msg,
                 "This model's maximum context length is %d tokens. However, you requested %lld tokens (%zu in the "
                 "prompt, %lld for the completion).", s->n_ctx, (long long)j->n_ids + max_tokens, j->n_ids, max_tokens);
        e.code = "context_length_exceeded";
        status = 400;
    }
    if (status) {
        enum MHD_Result r = srv_error(s, c, ri, status, status >= 500 ? "server_error" : "invalid_request_error",
                                      e.code ? e.code : "invalid_request", e.msg);
        srv_job_release(j);
        return r;
    }
    if (!has_max) {
        max_tokens = s->o.max_tokens;
        if ((long long)j->n_ids + max_tokens > s->n_ctx) max_tokens = s->n_ctx - (long long)j->n_ids;
    }
    j->gp.max_tokens = (int)max_tokens;

    if (j->stream) { // the first event goes out with the headers; sources come with it
        json_t *first = chunk_base(j), *choice;
        if (kind == API_CHAT)
            choice = json_pack("{s:i,s:{s:s,s:s},s:n,s:n}", "index", 0, "delta", "role", "assistant", "content", "",
                               "logprobs", "finish_reason");
        else
            choice = json_pack("{s:i,s:s,s:n,s:n}", "index", 0, "text", "", "logprobs", "finish_reason");
        json_object_set_new(first, "choices", json_pack("[o]", choice));
        json_object_set(first, "raftlm", j->raftlm);
        sse(j, first);
    }
    if (srv_enqueue(s, j)) {
        enum MHD_Result r = srv_error(s, c, ri, 503, "server_error", "server_busy",
                                      "the server is busy (all slots and the queue are full) or shutting down; retry later");
        srv_job_release(j);
        return r;
    }
    if (j->stream) {
        struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_reader, j, stream_free);
        if (!resp) {
            pthread_mutex_lock(&j->mu);
            j->cancel = 1;
            pthread_mutex_unlock(&j->mu);
            srv_job_release(j);
            return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        enum MHD_Result r = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp); // the stream_free callback releases the job when MHD is done
        ri->streaming = 1;
        ri->code = 200;
        return r;
    }
    pthread_mutex_lock(&j->mu);
    srv_job_wait(j, 0);
    pthread_mutex_unlock(&j->mu);
    enum MHD_Result r;
    if (j->st) {
        char msg[1100];
        snprintf(msg, sizeof msg, "generation failed: %s", j->err.msg);
        r = srv_error(s, c, ri, 500, "server_error", "generation_failed", msg);
    } else {
        json_t *o = json_pack("{s:s,s:s,s:I,s:s}", "id", j->id, "object", kind == API_CHAT ? "chat.completion" : "text_completion",
                              "created", (json_int_t)j->created, "model", j->model_id);
        json_t *lp = json_null();
        if (j->logprobs && j->res.logprobs) {
            if (kind == API_CHAT) {
                json_t *content = json_array();
                for (int i = 0; i < j->res.n_gen; i++)
                    json_array_append_new(content, token_obj(s->tok, j->res.tokens[i], j->res.logprobs[i],
                                                             j->res.n_probs ? j->res.top + (size_t)i * j->res.n_probs : NULL,
                                                             j->res.n_probs));
                lp = json_pack("{s:o}", "content", content);
            } else {
                lp = legacy_logprobs(s->tok, j->res.tokens, j->res.logprobs, j->res.top, j->res.n_probs, j->res.n_gen);
            }
        }
        json_t *choice;
        if (kind == API_CHAT)
            choice = json_pack("{s:i,s:{s:s,s:s%},s:o,s:s}", "index", 0, "message", "role", "assistant", "content",
                               j->res.text, j->res.len, "logprobs", lp, "finish_reason", finish_reason(j->res.finish));
        else
            choice = json_pack("{s:i,s:s%,s:o,s:s}", "index", 0, "text", j->res.text, j->res.len, "logprobs", lp,
                               "finish_reason", finish_reason(j->res.finish));
        json_object_set_new(o, "choices", json_pack("[o]", choice));
        json_object_set_new(o, "usage", usage_obj(j));
        json_object_set_new(o, "raftlm", raftlm_final(j));
        r = srv_json(c, ri, 200, o);
    }
    srv_job_release(j);
    return r;
}

enum MHD_Result api_search(rl_server *s, struct MHD_Connection *c, json_t *root, srv_req_info *ri) {
    if (!s->store)
        return srv_error(s, c, ri, 404, "invalid_request_error", "no_store",
                         "this server has no store (start it with --store DIR or a config whose output_dir holds store.db)");
    json_t *q = json_object_get(root, "query");
    if (!json_is_string(q) || json_string_length(q) == 0 || json_string_length(q) > 8192)
        return srv_error(s, c, ri, 400, "invalid_request_error", "invalid_type",
                         "'query' must be a non-empty string of at most 8192 bytes");
    perr e = {0};
    long long k = s->o.k;
    if (get_int(root, "k", 1, 100, &k, &e) < 0) return srv_error(s, c, ri, 400, "invalid_request_error", "invalid_type", e.msg);
    const char *mode = default_mode(s);
    json_t *jm = json_object_get(root, "mode");
    if (jm && !json_is_null(jm)) {
        mode = json_string_value(jm);
        if (!mode || (strcmp(mode, "bm25") != 0 && strcmp(mode, "dense") != 0 && strcmp(mode, "hybrid") != 0))
            return srv_error(s, c, ri, 400, "invalid_request_error", "invalid_value", "'mode' must be \"bm25\", \"dense\" or \"hybrid\"");
    }
    if (strcmp(mode, "bm25") != 0 && !s->o.dense)
        return srv_error(s, c, ri, 400, "invalid_request_error", "no_embedding_model",
                         "dense and hybrid search need an embedding model and its index (retrieval.embedding_model, then `raftlm ingest`)");
    const char *prefix = NULL;
    json_t *f = json_object_get(root, "filter");
    if (f && !json_is_null(f)) {
        const char *key;
        json_t *v;
        if (!json_is_object(f))
            return srv_error(s, c, ri, 400, "invalid_request_error", "invalid_type", "'filter' must be an object such as {\"path_prefix\": \"docs/\"}");
        json_object_foreach(f, key, v) {
            if (strcmp(key, "path_prefix") != 0)
                return srv_error(s, c, ri, 400, "invalid_request_error", "invalid_value", "'filter' supports only \"path_prefix\"");
            if (!json_is_string(v) || json_string_length(v) > 4096 || strlen(json_string_value(v)) != json_string_length(v))
                return srv_error(s, c, ri, 400, "invalid_request_error", "invalid_type", "'filter.path_prefix' must be a string of at most 4096 bytes");
            prefix = json_string_value(v);
        }
    }
    rl_hit *hits = NULL;
    size_t n = 0;
    rl_error err = {0};
    if (search(s, json_string_value(q), (int)k, mode, prefix, &hits, &n, &err)) {
        char msg[1100];
        snprintf(msg, sizeof msg, "search failed: %s", err.msg);
        return srv_error(s, c, ri, 500, "server_error", "search_failed", msg);
    }
    json_t *data = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(data, hit_json(&hits[i], 1));
    rl_hits_free(hits, n);
    return srv_json(c, ri, 200, json_pack("{s:s,s:O,s:s,s:o}", "object", "list", "query", q, "mode", mode, "data", data));
}

char *rl_raft_answer(const char *text) {
    const char *tag = "<ANSWER>:", *p = NULL;
    for (const char *q = strstr(text, tag); q; q = strstr(q + 1, tag)) p = q;
    if (!p) return NULL;
    p += strlen(tag);
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    size_t n = strlen(p);
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\n' || p[n - 1] == '\r')) n--;
    return rl_xstrndup(p, n);
}
