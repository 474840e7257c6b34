/* group.c - continuous batching: contexts of one rl_infer_group that are decoding at the same time
 * take each step together, as one batched forward (forward.c) in which every weight matrix is
 * read once for all of them instead of once per context.
 *
 * How: each context runs rl_infer_generate on its own thread, as without a group. A context
 * enters the group's decoding set when its prompt is done and leaves it when its generation
 * ends. To decode a token it submits (token, position) and waits; the thread whose submission
 * completes the set (every decoding context has submitted) runs the step for all of them with
 * its own context's scratch and threads, hands each its logits and wakes them. So a new request
 * joins at the next step after its prompt (prompts are not batched with the steps: they run on
 * their own thread meanwhile), and one that finishes leaves without stopping the others. A
 * context leaving may complete the set of the others; it then runs their step itself.
 *
 * Each token's logits have the same bits as when decoded alone (infer_forward computes every
 * token as for T = 1), so greedy text does not depend on who else is decoding.
 *
 * A member's thread is needed for every step it is in: a callback that blocks for long delays the
 * others' next step too (raftlm serve's callbacks only append to a buffer).
 *
 * Not done: prompts and steps in one batch (a long prompt holds its own thread, not the others'). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "infer/infer_internal.h"

struct rl_infer_group {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n_members; /* contexts created with this group (at most PREFILL_T) */
    int n_active;  /* contexts in their decoding loop */
    int n_sub;     /* of which have submitted the next step */
    int running;   /* a step is being computed (outside the lock) */
    rl_infer *sub[PREFILL_T];
    int32_t tok[PREFILL_T];
    int pos[PREFILL_T];
    float *logits; /* (cap, V): the logits of a step */
    int V, cap;
    uint64_t steps, batched; /* steps run, tokens in them (for the mean batch size) */
};

rl_status rl_infer_group_new(rl_infer_group **out, rl_error *err) {
    *out = NULL;
    rl_infer_group *g = calloc(1, sizeof *g);
    if (!g) return rl_fail(err, RL_ENOMEM, "decoding group");
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    *out = g;
    return RL_OK;
}

void rl_infer_group_free(rl_infer_group *g) {
    if (!g) return;
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g->logits);
    free(g);
}

void rl_infer_group_stats(rl_infer_group *g, uint64_t *steps, uint64_t *tokens) {
    pthread_mutex_lock(&g->mu);
    *steps = g->steps;
    *tokens = g->batched;
    pthread_mutex_unlock(&g->mu);
}

/* Runs the submitted steps while the set is complete; called with the lock held, by a thread of
 * the group (runner: its context lends scratch and threads; it is not decoding meanwhile). */
static void run_steps(rl_infer_group *g, rl_infer *runner) {
    while (g->n_sub > 0 && g->n_sub == g->n_active && !g->running) {
        int T = g->n_sub;
        rl_infer *seq[PREFILL_T];
        int32_t tok[PREFILL_T];
        int pos[PREFILL_T];
        memcpy(seq, g->sub, (size_t)T * sizeof *seq);
        memcpy(tok, g->tok, (size_t)T * sizeof *tok);
        memcpy(pos, g->pos, (size_t)T * sizeof *pos);
        g->n_sub = 0;
        g->running = 1;
        int V = runner->m->cfg.vocab_size;
        rl_status s = RL_OK;
        rl_error err = {0};
        if (!g->logits || g->V != V || g->cap < T) { // grows with the largest step (rows of V floats)
            free(g->logits);
            g->V = V;
            g->cap = T;
            if (!(g->logits = malloc((size_t)T * V * sizeof(float)))) g->cap = 0, s = rl_fail(&err, RL_ENOMEM, "decoding group");
        }
        pthread_mutex_unlock(&g->mu);
        if (!s) s = infer_forward(runner, seq, tok, pos, T, T, g->logits, 0, &err);
        for (int t = 0; t < T; t++) {
            if (!s) memcpy(seq[t]->kv.logits, g->logits + (size_t)t * V, (size_t)V * sizeof(float));
            seq[t]->gstatus = s;
            if (s) seq[t]->gerr = err;
        }
        pthread_mutex_lock(&g->mu);
        for (int t = 0; t < T; t++) seq[t]->gdone = 1;
        g->running = 0;
        g->steps++;
        g->batched += (uint64_t)T;
        pthread_cond_broadcast(&g->cv);
    }
}

rl_status infer_group_join(rl_infer_group *g, rl_error *err) {
    pthread_mutex_lock(&g->mu);
    int ok = g->n_members < PREFILL_T;
    g->n_members += ok;
    pthread_mutex_unlock(&g->mu);
    return ok ? RL_OK : rl_fail(err, RL_EINVAL, "a decoding group holds at most %d contexts", PREFILL_T);
}

void infer_group_unjoin(rl_infer_group *g) {
    pthread_mutex_lock(&g->mu);
    g->n_members--;
    pthread_mutex_unlock(&g->mu);
}

void infer_group_enter(rl_infer *inf) {
    rl_infer_group *g = inf->group;
    pthread_mutex_lock(&g->mu);
    g->n_active++;
    pthread_mutex_unlock(&g->mu);
}

void infer_group_leave(rl_infer *inf) {
    rl_infer_group *g = inf->group;
    pthread_mutex_lock(&g->mu);
    g->n_active--;
    run_steps(g, inf); // the others may all be waiting for this one
    pthread_mutex_unlock(&g->mu);
}

rl_status infer_group_decode(rl_infer *inf, int token, int pos, float **logits, rl_error *err) {
    rl_infer_group *g = inf->group;
    pthread_mutex_lock(&g->mu);
    // at most PREFILL_T contexts decode at once (rl_infer_new_ex refuses more members); the
    // check keeps a broken invariant from writing past the arrays
    if (g->n_sub >= PREFILL_T) {
        pthread_mutex_unlock(&g->mu);
        return rl_fail(err, RL_EINTERNAL, "decoding group: more than %d contexts", PREFILL_T);
    }
    g->sub[g->n_sub] = inf;
    g->tok[g->n_sub] = token;
    g->pos[g->n_sub] = pos;
    g->n_sub++;
    inf->gdone = 0;
    run_steps(g, inf);
    while (!inf->gdone) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    if (inf->gstatus) {
        if (err) *err = inf->gerr;
        *logits = NULL;
        return inf->gstatus;
    }
    *logits = inf->kv.logits;
    return RL_OK;
}
