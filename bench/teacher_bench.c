/* teacher_bench.c - throughput of the OpenAI-compatible teacher: a local server (in a child
 * process) answers every request after a fixed delay; synthesis runs with N requests in flight.
 * Reports requests/s and the client's CPU time per request.
 * usage: teacher-bench CORPUS_DIR [in_flight=64] [delay_s=1.0] */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../tests/fake_openai.h"
#include "synth/synth.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: teacher-bench CORPUS_DIR [in_flight] [delay_s]\n");
        return 2;
    }
    int in_flight = argc > 2 ? atoi(argv[2]) : 64;
    double delay = argc > 3 ? atof(argv[3]) : 1.0;
    int pipefd[2];
    if (pipe(pipefd) != 0) return 1;
    pid_t server = fork();
    if (server == 0) {
        fake_openai_opts fo = {.delay_s = delay};
        fake_openai *s = fake_openai_start(&fo);
        int port = s ? fake_openai_port(s) : 0;
        if (write(pipefd[1], &port, sizeof port) != sizeof port) _exit(1);
        pause();
        _exit(0);
    }
    int port = 0;
    if (read(pipefd[0], &port, sizeof port) != sizeof port || !port) {
        fprintf(stderr, "server did not start\n");
        return 1;
    }
    rl_log_set_level(RL_LOG_WARN);
    char db[4096];
    snprintf(db, sizeof db, "%s/bench-store/store.db", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    unlink(db);
    rl_error err;
    rl_store *store;
    if (rl_store_open(&store, db, NULL, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    const char *paths[] = {argv[1]};
    rl_ingest_opts io = {.paths = paths, .n_paths = 1, .max_file_bytes = 64 << 20, .chunk = {.size = 256, .overlap = 32}};
    rl_ingest_report ir;
    if (rl_ingest(store, &io, &ir, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", port);
    rl_openai_opts oo = {.base_url = url, .model = "fake", .max_concurrency = in_flight, .timeout_s = 30, .max_retries = 2, .max_tokens = 512};
    rl_teacher *t;
    if (rl_teacher_openai_new(&t, &oo, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    char out_dir[4096];
    snprintf(out_dir, sizeof out_dir, "%s/bench-store", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    rl_synth_opts so = {.questions_per_chunk = 3, .p = 0.8, .num_distractors = 4, .seed = 7, .dedup_threshold = 0.8,
                        .val_fraction = 0.05, .test_fraction = 0.1, .out_dir = out_dir, .teacher_fingerprint = t->fingerprint};
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    double t0 = rl_now();
    rl_synth_report rep;
    rl_status s = rl_synth_run(store, t, &so, &rep, &err);
    double wall = rl_now() - t0;
    getrusage(RUSAGE_SELF, &r1);
    int64_t reqs, retries, pt, ct;
    rl_teacher_openai_stats(t, &reqs, &retries, &pt, &ct);
    double cpu = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) + (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) * 1e-6 +
                 (double)(r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) + (double)(r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) * 1e-6;
    kill(server, SIGTERM);
    waitpid(server, NULL, 0);
    if (s) return fprintf(stderr, "%s\n", err.msg), 1;
    printf("teacher: %lld requests in %.1f s with %d in flight and %.2f s per reply: %.1f requests/s (ideal %.1f), "
           "client CPU %.2f ms per request (incl. verification and storing), %lld retries\n",
           (long long)reqs, wall, in_flight, delay, (double)reqs / wall, in_flight / delay, cpu * 1e3 / (double)reqs, (long long)retries);
    rl_synth_report_free(&rep);
    rl_teacher_free(t);
    rl_store_close(store);
    return 0;
}
