/* generate.c - the generation loop: prompt through the KV cache, then sample / decode until a
 * stop condition (see infer.h).
 *
 * How: the context remembers which tokens its cache holds; a new prompt that starts with the
 * same tokens decodes only the rest (the last prompt token is always decoded again, since its
 * logits are needed). The loop is the one of `raftlm generate` (same positions, same decode
 * calls), so greedy output is the same text. Generated text goes through the tokenizer's
 * streaming decoder (whole UTF-8 characters only) into a pending buffer; what cannot be the
 * start of a stop string is released to the callback, the rest waits for the next token.
 *
 * Prompts go token by token through rl_model_decode (float32: the exact text of `raftlm
 * generate`), or in batches of PREFILL_T tokens through infer_forward (forward.c) when batching
 * is on. With an rl_qmodel each decoding step is infer_forward with one token (rl_model_decode's
 * computation with the matrix products on the rl_qmodel's blocks, over the context's threads),
 * or, in a group, a step shared with the other contexts decoding (group.c).
 *
 * Not done: several sequences per cache. */
#include <stdlib.h>
#include <string.h>

#include <math.h>

#include "infer/infer_internal.h"


const char *rl_finish_name(rl_finish f) {
    switch (f) {
    case RL_FINISH_STOP: return "stop";
    case RL_FINISH_LENGTH: return "length";
    case RL_FINISH_TIMEOUT: return "timeout";
    case RL_FINISH_CANCELLED: return "cancelled";
    default: return "none";
    }
}

rl_status rl_infer_new(rl_infer **out, rl_model *m, const rl_tokenizer *tok, int n_ctx, rl_error *err) {
    rl_infer_opts o = {.n_ctx = n_ctx};
    return rl_infer_new_ex(out, m, tok, &o, err);
}

rl_status rl_infer_new_ex(rl_infer **out, rl_model *m, const rl_tokenizer *tok, const rl_infer_opts *o, rl_error *err) {
    *out = NULL;
    int n_ctx = o->n_ctx;
    int max = m->cfg.max_seq_len > 0 ? m->cfg.max_seq_len : 2048;
    if (n_ctx <= 0 || n_ctx > max) n_ctx = max;
    rl_infer *inf = calloc(1, sizeof *inf);
    if (!inf) return rl_fail(err, RL_ENOMEM, "generation context");
    inf->m = m;
    inf->tok = tok;
    rl_status s = rl_kv_init(&inf->kv, m, n_ctx, err);
    if (!s && !(inf->cache = malloc((size_t)n_ctx * sizeof *inf->cache)))
        s = rl_fail(err, RL_ENOMEM, "generation context of %d tokens", n_ctx);
    if (!s && o->q) {
        const rl_model_config *c = &m->cfg;
        int big = c->dim > c->hidden_dim ? c->dim : c->hidden_dim;
        if (c->n_heads * c->head_dim > big) big = c->n_heads * c->head_dim;
        inf->q = o->q;
        if (!(inf->xq = malloc((size_t)PREFILL_T * ((size_t)big / RL_Q8_0_BLOCK + 1) * sizeof *inf->xq)) ||
            !(inf->xk = malloc((size_t)PREFILL_T * ((size_t)big / RL_QK_K + 1) * sizeof *inf->xk)) ||
            !(inf->xp = malloc((size_t)PREFILL_T * ((size_t)big / RL_Q8_0_BLOCK + 1) * sizeof *inf->xp)))
            s = rl_fail(err, RL_ENOMEM, "generation context");
        // the forward's threads (team.c); float32 weights also keep a pool for their prompts' SGEMM
        if (!s && o->n_threads > 1) inf->team = infer_team_new(o->n_threads);
        if (!s && o->n_threads > 1 && o->q->type == RL_WTYPE_F32) inf->pool = rl_pool_create(o->n_threads);
    }
    if (!s && !o->q) infer_huge_pages_model(m); // float32 decoding (BLAS) streams them every token
    if (!s && o->group) {
        if (!o->q) s = rl_fail(err, RL_EINVAL, "a decoding group needs quantized weights (rl_qmodel)");
        else if (!(s = infer_group_join(o->group, err))) inf->group = o->group;
    }
    // batched prompts: on by default with quantized weights (the same bits as one token at a
    // time); for float32 only when asked (sgemm sums in another order than the decoding dot
    // products, so the text could drift from `raftlm generate`); never with an unmerged adapter
    inf->batch = o->batch_prompt > 0 || (o->batch_prompt == 0 && o->q && o->q->type != RL_WTYPE_F32);
    if (m->lora) inf->batch = 0;
    if (s) {
        rl_infer_free(inf);
        return s;
    }
    *out = inf;
    return RL_OK;
}

void rl_infer_free(rl_infer *inf) {
    if (!inf) return;
    if (inf->group) infer_group_unjoin(inf->group);
    free(inf->xq);
    free(inf->xk);
    free(inf->xp);
    free(inf->pf);
    free(inf->patt);
    free(inf->ctr);
    if (inf->pool) rl_pool_free(inf->pool);
    infer_team_free(inf->team);
    rl_kv_free(&inf->kv);
    free(inf->cache);
    free(inf);
}

int rl_infer_n_ctx(const rl_infer *inf) { return inf->kv.max_T; }

void rl_infer_reset(rl_infer *inf) { inf->n_cache = 0; }

rl_status rl_infer_tokenize(const rl_infer *inf, const char *text, size_t len, int add_bos, int32_t **ids, size_t *n,
                            rl_error *err) {
    int32_t *v = NULL;
    size_t k = 0;
    *ids = NULL;
    *n = 0;
    if (!inf->tok) return rl_fail(err, RL_EINVAL, "no tokenizer");
    rl_status s = rl_tok_encode(inf->tok, text, len, 0, &v, &k, err);
    if (s) return s;
    int bos = rl_tok_bos(inf->tok);
    if (bos < 0) bos = inf->m->cfg.bos_id;
    if (add_bos && bos >= 0) {
        int32_t *w = realloc(v, (k + 1) * sizeof *w);
        if (!w) {
            free(v);
            return rl_fail(err, RL_ENOMEM, "prompt of %zu tokens", k);
        }
        v = w;
        memmove(v + 1, v, k * sizeof *v);
        v[0] = bos;
        k++;
    }
    *ids = v;
    *n = k;
    return RL_OK;
}

/* ---- decoding with quantized weights -------------------------------------------------------- */

rl_status rl_infer_decode(rl_infer *inf, int token, int pos, float **logits, rl_error *err) {
    if (!inf->q) return rl_model_decode(inf->m, &inf->kv, token, pos, logits, err);
    rl_status s = infer_forward(inf, NULL, &token, &pos, 1, 1, inf->kv.logits, 0, err);
    *logits = s ? NULL : inf->kv.logits;
    return s;
}

long rl_stop_find(const char *text, size_t len, const char *const *stop, int n_stop, int *which, size_t *safe) {
    long first = -1;
    size_t hold = 0;
    if (which) *which = -1;
    for (int i = 0; i < n_stop; i++) {
        size_t sl = stop[i] ? strlen(stop[i]) : 0;
        if (!sl) continue;
        const char *at = memmem(text, len, stop[i], sl);
        if (at && (first < 0 || at - text < first)) {
            first = at - text;
            if (which) *which = i;
        }
        for (size_t k = sl - 1 < len ? sl - 1 : len; k > hold; k--)
            if (memcmp(text + len - k, stop[i], k) == 0) {
                hold = k;
                break;
            }
    }
    if (safe) *safe = first >= 0 ? (size_t)first : len - hold;
    return first;
}

void rl_gen_result_free(rl_gen_result *r) {
    free(r->text);
    free(r->tokens);
    free(r->logprobs);
    free(r->top);
    memset(r, 0, sizeof *r);
}

/* Per-token arrays of the result, grown as tokens come. */
static int result_push(rl_gen_result *r, size_t *cap, int32_t tok, const rl_token_prob *chosen, const rl_token_prob *top,
                       int want_lp) {
    if ((size_t)r->n_gen == *cap) {
        size_t c = *cap ? 2 * *cap : 64;
        int32_t *t = realloc(r->tokens, c * sizeof *t);
        if (!t) return -1;
        r->tokens = t;
        if (want_lp) {
            float *l = realloc(r->logprobs, c * sizeof *l);
            if (!l) return -1;
            r->logprobs = l;
        }
        if (r->n_probs) {
            rl_token_prob *p = realloc(r->top, c * (size_t)r->n_probs * sizeof *p);
            if (!p) return -1;
            r->top = p;
        }
        *cap = c;
    }
    r->tokens[r->n_gen] = tok;
    if (want_lp) r->logprobs[r->n_gen] = chosen->logprob;
    if (r->n_probs) memcpy(r->top + (size_t)r->n_gen * r->n_probs, top, (size_t)r->n_probs * sizeof *top);
    r->n_gen++;
    return 0;
}

rl_status rl_infer_generate(rl_infer *inf, const int32_t *prompt, size_t n_prompt, const rl_gen_params *p,
                            rl_gen_callback cb, void *cb_ctx, rl_gen_result *res, rl_error *err) {
    memset(res, 0, sizeof *res);
    rl_model *m = inf->m;
    int V = m->cfg.vocab_size, max_T = inf->kv.max_T;
    if (n_prompt == 0) return rl_fail(err, RL_EINVAL, "the prompt has no tokens");
    if (n_prompt >= (size_t)max_T)
        return rl_fail(err, RL_EINVAL, "the prompt has %zu tokens; the context holds %d (prompt and answer together)",
                       n_prompt, max_T);
    for (size_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= V)
            return rl_fail(err, RL_EINVAL, "prompt token %d is outside the vocabulary (%d)", prompt[i], V);
    rl_sampler *smp = NULL;
    /* a model may have more output rows than its tokenizer has ids (a student whose config
     * rounds the vocabulary up): ids the tokenizer cannot decode are never sampled */
    int V_sample = inf->tok && rl_tok_vocab_size(inf->tok) < V ? rl_tok_vocab_size(inf->tok) : V;
    rl_status s = rl_sampler_new(&smp, &p->sampling, V_sample, err);
    if (s) return s;
    res->n_probs = p->sampling.n_probs;
    int want_lp = p->logprobs || p->sampling.n_probs > 0;
    rl_token_prob chosen = {0}, top[RL_MAX_TOP_LOGPROBS];

    int bos = -1, eos = -1;
    int32_t stops[16];
    int n_stops = 0;
    if (inf->tok) {
        bos = rl_tok_bos(inf->tok), eos = rl_tok_eos(inf->tok);
        n_stops = rl_tok_stop_ids(inf->tok, stops, 16);
    } else {
        bos = m->cfg.bos_id, eos = m->cfg.eos_id;
    }
    rl_tok_stream *st = inf->tok ? rl_tok_stream_new(inf->tok, 1) : NULL;
    rl_buf pending = {0}, all = {0};

    // prompt: reuse the cached prefix, decode the rest
    double t0 = rl_now();
    size_t same = 0;
    while (same < (size_t)inf->n_cache && same < n_prompt && inf->cache[same] == prompt[same]) same++;
    if (same >= n_prompt) same = n_prompt - 1; // the last prompt token's logits are needed
    inf->n_cache = (int)same;
    res->n_prompt = (int)n_prompt;
    res->n_cached = (int)same;
    float *logits = NULL;
    for (size_t i = same; i < n_prompt && !s;) {
        if (p->cancel && *p->cancel) break;
        int T = 1;
        if (inf->batch) {
            T = n_prompt - i < PREFILL_T ? (int)(n_prompt - i) : PREFILL_T;
            int pos[PREFILL_T];
            for (int t = 0; t < T; t++) pos[t] = (int)i + t;
            int last = i + T == n_prompt;
            s = infer_forward(inf, NULL, prompt + i, pos, T, last, inf->kv.logits, 1, err);
            if (last) logits = inf->kv.logits;
        } else {
            s = rl_infer_decode(inf, prompt[i], (int)i, &logits, err);
        }
        if (s) break;
        for (int t = 0; t < T; t++) inf->cache[inf->n_cache++] = prompt[i + t];
        i += (size_t)T;
    }
    for (size_t i = 0; i < n_prompt && !s; i++) {
        rl_sampler_accept(smp, prompt[i]);
        if (st) s = rl_tok_stream_push(st, prompt[i], &pending, err); // the decoder's state only
    }
    rl_buf_clear(&pending);
    res->t_prompt = rl_now() - t0;
    t0 = rl_now();

    size_t cap = 0;
    int pos = (int)n_prompt; // where the next sampled token goes
    int max_new = p->max_tokens > 0 ? p->max_tokens : max_T;
    rl_finish fin = RL_FINISH_NONE;
    int stopped_by_string = 0;
    if (!s && inf->n_cache < (int)n_prompt) fin = RL_FINISH_CANCELLED; // cancelled during the prompt
    int grouped = inf->group && !s && fin == RL_FINISH_NONE;
    if (grouped) infer_group_enter(inf);
    while (!s && fin == RL_FINISH_NONE) {
        if (p->cancel && *p->cancel) {
            fin = RL_FINISH_CANCELLED;
            break;
        }
        if (p->deadline > 0 && rl_now() > p->deadline) {
            fin = RL_FINISH_TIMEOUT;
            break;
        }
        int32_t tok = rl_sampler_sample(smp, logits, want_lp ? &chosen : NULL, res->n_probs ? top : NULL);
        if (!p->ignore_eos) {
            int stop = tok == eos || tok == bos;
            for (int k = 0; k < n_stops; k++) stop |= tok == stops[k];
            for (int k = 0; k < p->n_stop_ids; k++) stop |= tok == p->stop_ids[k];
            if (stop) {
                fin = RL_FINISH_STOP;
                break;
            }
        }
        if (result_push(res, &cap, tok, &chosen, top, want_lp)) {
            s = rl_fail(err, RL_ENOMEM, "generation result");
            break;
        }
        rl_sampler_accept(smp, tok);
        if (st) {
            if ((s = rl_tok_stream_push(st, tok, &pending, err))) break;
        } else {
            rl_buf_printf(&pending, "%d\n", tok);
        }
        size_t safe = pending.len;
        if (p->n_stop > 0 && rl_stop_find(pending.data ? pending.data : "", pending.len, p->stop, p->n_stop, NULL, &safe) >= 0) {
            fin = RL_FINISH_STOP;
            stopped_by_string = 1;
        }
        rl_gen_piece piece = {.token = tok, .text = pending.data ? pending.data : "", .len = safe,
                              .logprob = chosen.logprob, .top = top, .n_top = res->n_probs};
        rl_buf_append(&all, piece.text, safe);
        int want_stop = cb ? cb(cb_ctx, &piece) : 0;
        if (stopped_by_string) {
            rl_buf_clear(&pending);
            break;
        }
        memmove(pending.data, pending.data + safe, pending.len - safe);
        pending.len -= safe;
        pending.data[pending.len] = 0;
        if (want_stop) fin = RL_FINISH_CANCELLED;
        else if (res->n_gen >= max_new || pos >= max_T) fin = RL_FINISH_LENGTH; // tok cannot be decoded
        if (fin) break;
        if ((s = grouped ? infer_group_decode(inf, tok, pos, &logits, err) : rl_infer_decode(inf, tok, pos, &logits, err))) break;
        inf->cache[inf->n_cache++] = tok;
        pos++;
    }
    if (grouped) infer_group_leave(inf);
    if (!s && !stopped_by_string) { // release what was held back
        if (st) rl_tok_stream_flush(st, &pending);
        if (pending.len) {
            rl_gen_piece piece = {.token = -1, .text = pending.data, .len = pending.len};
            rl_buf_append(&all, pending.data, pending.len);
            if (cb) cb(cb_ctx, &piece);
        }
    }
    res->t_gen = rl_now() - t0;
    res->finish = fin;
    res->len = all.len;
    res->text = all.data ? rl_buf_take(&all) : rl_xstrdup("");
    rl_buf_free(&all);
    rl_buf_free(&pending);
    if (st) rl_tok_stream_free(st);
    rl_sampler_free(smp);
    return s;
}
