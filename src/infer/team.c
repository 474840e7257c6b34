/* team.c - the threads of one rl_infer context, run together through a whole forward.
 *
 * Why not the core thread pool (rl_pool_for) per matrix product: a decoding step of a 135M model
 * is a few hundred small steps (norm, three products, rope, attention, ...), and handing each
 * product to the pool costs a wake-up and a join, which at two threads cost more than the split
 * saved. Here every thread enters once per forward (infer_team_run) and walks all its steps;
 * forward.c hands out each step's units and waits for them to be done (infer_step_*).
 *
 * Late threads do not hold the others up: a step waits for its units to be done, not for every
 * thread to arrive, so a worker that wakes late (or loses its core to another process) finds the
 * early steps done and joins where the work is; the caller alone can run a whole forward. When
 * the caller has finished the forward, the run is closed: a worker that has not entered it by
 * then skips it, and the caller waits only for those inside (they are past all the work).
 *
 * Between forwards the workers spin for TEAM_SPIN_US (the sampler's work between two decoding
 * steps fits), then sleep on a condition variable until the next run.
 *
 * Not done: pinning threads to cores. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "infer/infer_internal.h"

#define TEAM_SPIN_US 500 /* how long an idle worker spins before sleeping */

/* The run word: generation << 32 | CLOSED | threads inside. */
#define RUN_CLOSED (1ull << 31)
#define RUN_INSIDE 0x7fffffffull
#define RUN_GEN(s) ((uint32_t)((s) >> 32))

struct infer_team {
    int n; /* threads, the caller of infer_team_run included */
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    void (*fn)(void *, int, int);
    void *ctx;
    int quit;
    _Alignas(64) atomic_ullong run;
    _Alignas(64) atomic_int sleeping;
};

void infer_pause(unsigned k) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
    if (k > 1024) sched_yield(); // the thread waited for may need this core
}

typedef struct {
    infer_team *t;
    int index;
} team_arg;

static void *team_worker(void *arg) {
    team_arg a = *(team_arg *)arg;
    free(arg);
    infer_team *t = a.t;
    uint32_t seen = 0;
    for (;;) {
        double t0 = rl_now();
        unsigned long long s;
        for (unsigned k = 0; RUN_GEN(s = atomic_load(&t->run)) == seen; k++) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
            if ((k & 255) == 255 && rl_now() - t0 > TEAM_SPIN_US * 1e-6) {
                pthread_mutex_lock(&t->mu);
                atomic_fetch_add(&t->sleeping, 1); // under the lock: infer_team_run's wake-up cannot be missed
                while (RUN_GEN(atomic_load(&t->run)) == seen) pthread_cond_wait(&t->cv, &t->mu);
                atomic_fetch_sub(&t->sleeping, 1);
                pthread_mutex_unlock(&t->mu);
            }
        }
        if (t->quit) return NULL;
        // enter the run unless it is closed already (then wait for the next one)
        for (;;) {
            if (s & RUN_CLOSED) {
                seen = RUN_GEN(s);
                break;
            }
            if (atomic_compare_exchange_weak(&t->run, &s, s + 1)) { // a failure reloads s: maybe a newer run
                seen = RUN_GEN(s);
                t->fn(t->ctx, a.index, t->n);
                atomic_fetch_sub(&t->run, 1);
                break;
            }
        }
    }
}

infer_team *infer_team_new(int n) {
    if (n < 2) return NULL;
    infer_team *t = calloc(1, sizeof *t);
    if (!t || !(t->th = calloc((size_t)n, sizeof *t->th))) {
        free(t);
        return NULL;
    }
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    t->n = 1;
    for (int i = 1; i < n; i++) {
        team_arg *a = malloc(sizeof *a);
        if (!a) break;
        *a = (team_arg){t, i};
        if (pthread_create(&t->th[i], NULL, team_worker, a) != 0) {
            free(a);
            break; // run with the threads we got
        }
        t->n = i + 1;
    }
    return t;
}

/* A new generation, open, nobody inside; wakes the sleepers. */
static void team_start(infer_team *t) {
    unsigned long long s = atomic_load(&t->run);
    atomic_store(&t->run, (unsigned long long)(RUN_GEN(s) + 1) << 32); // seq_cst, as the load below (and the worker's pair)
    if (atomic_load(&t->sleeping) > 0) {
        pthread_mutex_lock(&t->mu);
        pthread_cond_broadcast(&t->cv);
        pthread_mutex_unlock(&t->mu);
    }
}

void infer_team_free(infer_team *t) {
    if (!t) return;
    t->quit = 1;
    team_start(t);
    for (int i = 1; i < t->n; i++) pthread_join(t->th[i], NULL);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t->th);
    free(t);
}

int infer_team_size(const infer_team *t) { return t ? t->n : 1; }

void infer_team_run(infer_team *t, void (*fn)(void *ctx, int ith, int nth), void *ctx) {
    if (!t || t->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    t->fn = fn;
    t->ctx = ctx;
    team_start(t);
    fn(ctx, 0, t->n);
    atomic_fetch_or(&t->run, RUN_CLOSED);
    for (unsigned k = 0; atomic_load(&t->run) & RUN_INSIDE; k++) infer_pause(k);
}
