/* teacher_local.c - a teacher that is a model raftlm loads itself (HF folder, GGUF, llama2.c),
 * prompted through its chat template (or plain text without one), generating with src/infer.
 * One task at a time, finished inside submit: a local model on a CPU gains nothing from
 * overlapping requests. Questions are parsed as from a remote teacher (rl_parse_questions);
 * a reply without readable questions fails the chunk, which a rerun tries again. */
#include <stdlib.h>
#include <string.h>

#include "infer/infer.h"
#include "synth/synth_internal.h"

typedef struct local_teacher {
    rl_teacher base;
    rl_model model;
    rl_tokenizer *tok;
    rl_pool *pool;
    rl_infer *inf;
    rl_local_opts o;
    rl_teacher_task **done;
    int n_done, cap_done;
} local_teacher;

static char *render(local_teacher *x, const char *user, int32_t **ids, size_t *n, rl_error *err) {
    if (rl_tok_chat_family(x->tok) != RL_CHAT_UNKNOWN) {
        rl_chat_msg msgs[2] = {{"system", syn_teacher_system_prompt}, {"user", user}};
        char *text;
        if (rl_tok_chat_render(x->tok, msgs, 2, 1, &text, err)) return NULL;
        if (rl_tok_encode(x->tok, text, strlen(text), 0, ids, n, err)) {
            free(text);
            return NULL;
        }
        return text;
    }
    char *text = rl_xasprintf("%s\n", user);
    if (rl_infer_tokenize(x->inf, text, strlen(text), 1, ids, n, err)) {
        free(text);
        return NULL;
    }
    return text;
}

static rl_status lt_submit(rl_teacher *tt, rl_teacher_task *t, rl_error *err) {
    local_teacher *x = (local_teacher *)tt;
    char *user = syn_prompt_fill(t->kind == RL_TASK_QUESTIONS ? (x->o.question_prompt ? x->o.question_prompt : syn_default_question_prompt)
                                                              : (x->o.answer_prompt ? x->o.answer_prompt : syn_default_answer_prompt),
                                 t);
    int32_t *ids = NULL;
    size_t n = 0;
    rl_error e = {0};
    char *text = render(x, user, &ids, &n, &e);
    free(user);
    t->status = RL_OK;
    int ctx = rl_infer_n_ctx(x->inf), max_new = x->o.max_tokens > 0 ? x->o.max_tokens : 512;
    if (!text) t->status = e.status ? e.status : RL_EINTERNAL, t->error = rl_xstrdup(e.msg);
    else if ((int)n + 8 >= ctx) {
        t->status = RL_EINVAL;
        t->error = rl_xasprintf("the prompt has %zu tokens, the model's context %d (use smaller chunks)", n, ctx);
    } else {
        rl_gen_params p = {.sampling = rl_sampler_defaults(), .max_tokens = max_new < ctx - (int)n ? max_new : ctx - (int)n - 1};
        p.sampling.temperature = (float)x->o.temperature;
        p.sampling.seed = x->o.seed ^ rl_hash64(text, strlen(text)); /* same prompt, same reply */
        rl_gen_result res = {0};
        if (rl_infer_generate(x->inf, ids, n, &p, NULL, NULL, &res, &e)) {
            t->status = e.status;
            t->error = rl_xstrdup(e.msg);
        } else {
            t->prompt_tokens = res.n_prompt;
            t->completion_tokens = res.n_gen;
            if (t->kind == RL_TASK_QUESTIONS) {
                char **qs;
                int k = rl_parse_questions(res.text ? res.text : "", &qs);
                if (k < 0) {
                    t->status = RL_EFORMAT;
                    t->error = rl_xasprintf("no questions in the reply (%.80s)", res.text ? res.text : "");
                } else {
                    for (int i = t->n_questions; i < k; i++) free(qs[i]);
                    t->questions = qs;
                    t->n_out = k < t->n_questions ? k : t->n_questions;
                }
            } else {
                t->answer = res.text;
                res.text = NULL;
            }
        }
        rl_gen_result_free(&res);
    }
    free(text);
    free(ids);
    if (x->n_done == x->cap_done) x->cap_done = x->cap_done ? 2 * x->cap_done : 16, x->done = rl_xrealloc(x->done, (size_t)x->cap_done * sizeof *x->done);
    x->done[x->n_done++] = t;
    (void)err;
    return RL_OK;
}

static int lt_poll(rl_teacher *tt, rl_teacher_task **done, int max) {
    local_teacher *x = (local_teacher *)tt;
    int n = x->n_done < max ? x->n_done : max;
    memcpy(done, x->done, (size_t)n * sizeof *done);
    memmove(x->done, x->done + n, (size_t)(x->n_done - n) * sizeof *x->done);
    x->n_done -= n;
    return n;
}

static int lt_capacity(rl_teacher *tt) { return 1; }

static void lt_free(rl_teacher *tt) {
    local_teacher *x = (local_teacher *)tt;
    rl_infer_free(x->inf);
    rl_tok_free(x->tok);
    rl_model_free(&x->model);
    rl_pool_free(x->pool);
    free(x->done);
    free(x);
}

static const rl_teacher_vt local_vt = {"local", lt_submit, lt_poll, lt_capacity, lt_free};

rl_status rl_teacher_local_new(rl_teacher **out, const rl_local_opts *o, rl_error *err) {
    *out = NULL;
    if (!o->model) return rl_fail(err, RL_ECONFIG, "teacher.model is required for the local teacher (a model file or folder)");
    local_teacher *x = rl_xcalloc(1, sizeof *x);
    x->base.vt = &local_vt;
    x->o = *o;
    rl_status s = rl_model_load(&x->model, o->model, err);
    if (!s) s = rl_tok_load(&x->tok, o->tokenizer ? o->tokenizer : o->model, err);
    if (!s) {
        x->pool = rl_pool_create(o->threads);
        x->model.pool = x->pool;
        s = rl_infer_new(&x->inf, &x->model, x->tok, 0, err);
    }
    if (s) {
        rl_error_prefix(err, "local teacher %s", o->model);
        lt_free(&x->base);
        return s;
    }
    char *fp = rl_xasprintf("local:%s:%g:%d:%s:%s", o->model, o->temperature, o->max_tokens, o->question_prompt ? o->question_prompt : "",
                            o->answer_prompt ? o->answer_prompt : "");
    char hex[65];
    rl_sha256_hex(fp, strlen(fp), hex);
    free(fp);
    snprintf(x->base.fingerprint, sizeof x->base.fingerprint, "local:%.32s:%.16s", rl_path_basename(o->model), hex);
    *out = &x->base;
    return RL_OK;
}
