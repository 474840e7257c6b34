/* pool.c - a small fixed thread pool with one operation: a parallel for-loop.
 * Work is handed out one index at a time through an atomic counter, which balances uneven
 * items (files of different sizes) well enough; the caller's thread works too.
 * Waiting spins briefly (about 50 microseconds) before sleeping on a condition variable:
 * decoding runs a few hundred short loops per token, and a futex sleep / wake-up per loop cost
 * more than the loops themselves. */
#include "core.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

struct rl_pool {
    int n_threads; /* including the caller */
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    /* the current job */
    void (*fn)(void *, size_t, int);
    void *ctx;
    size_t n;
    atomic_size_t next;
    atomic_int generation, busy;
    int quit;
    int spin; /* pause iterations before sleeping; RAFTLM_POOL_SPIN overrides (0: never spin) */
};

/* One step of a wait loop: a pause, and every 256 steps a yield, so that on a machine with
 * more runnable threads than cores the thread we wait for gets the core. */
static inline void spin_step(int k) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
    if ((k & 255) == 255) sched_yield();
}

int rl_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void run_items(rl_pool *p, int thread) {
    for (;;) {
        size_t i = atomic_fetch_add(&p->next, 1);
        if (i >= p->n) break;
        p->fn(p->ctx, i, thread);
    }
}

typedef struct {
    rl_pool *pool;
    int index;
} worker_arg;

static void *worker(void *arg) {
    worker_arg *wa = arg;
    rl_pool *p = wa->pool;
    int index = wa->index, seen = 0;
    free(wa);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (atomic_load(&p->generation) == seen) { // spin a little before sleeping
            pthread_mutex_unlock(&p->mu);
            for (int k = 0; k < p->spin && atomic_load(&p->generation) == seen; k++) spin_step(k);
            pthread_mutex_lock(&p->mu);
        }
        while (!p->quit && atomic_load(&p->generation) == seen) pthread_cond_wait(&p->cv_work, &p->mu);
        if (p->quit) break;
        seen = atomic_load(&p->generation);
        pthread_mutex_unlock(&p->mu);
        run_items(p, index);
        pthread_mutex_lock(&p->mu);
        if (atomic_fetch_sub(&p->busy, 1) == 1) pthread_cond_signal(&p->cv_done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

rl_pool *rl_pool_create(int n_threads) {
    if (n_threads <= 0) n_threads = rl_cpu_count();
    rl_pool *p = rl_xcalloc(1, sizeof *p);
    p->n_threads = n_threads;
    const char *spin = getenv("RAFTLM_POOL_SPIN");
    p->spin = spin ? atoi(spin) : 4096;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_work, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    p->threads = rl_xcalloc((size_t)n_threads, sizeof *p->threads);
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = rl_xmalloc(sizeof *wa);
        wa->pool = p;
        wa->index = i;
        if (pthread_create(&p->threads[i], NULL, worker, wa) != 0) {
            free(wa);
            p->n_threads = i; /* run with what we got */
            break;
        }
    }
    return p;
}

int rl_pool_size(const rl_pool *pool) { return pool ? pool->n_threads : 1; }

void rl_pool_for(rl_pool *p, size_t n, void (*fn)(void *, size_t, int), void *ctx) {
    if (!p || p->n_threads == 1 || n <= 1) {
        for (size_t i = 0; i < n; i++) fn(ctx, i, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    atomic_store(&p->next, 0);
    atomic_store(&p->busy, p->n_threads - 1);
    atomic_fetch_add(&p->generation, 1);
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    run_items(p, 0);
    for (int k = 0; k < p->spin && atomic_load(&p->busy) > 0; k++) spin_step(k);
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->busy) > 0) pthread_cond_wait(&p->cv_done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void rl_pool_free(rl_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv_work);
    pthread_cond_destroy(&p->cv_done);
    free(p->threads);
    free(p);
}
