/* fake_openai.h - a local OpenAI-compatible /v1/chat/completions server for tests and
 * benchmarks. It answers like the extractive teacher would (real questions and cited answers
 * about the passage in the prompt) and injects faults on request:
 *   transport faults on the first attempt of some requests (chosen by a hash of the prompt):
 *     429 with Retry-After, 500, a reply slower than the client's timeout, a truncated body;
 *   content faults by markers in the passage:
 *     BADQUOTE   answers quote a sentence that is not in the passage;
 *     DUPLICATE  the question list repeats its first question;
 *     FENCED     the question list comes in a ```json fence with a trailing comma. */
#ifndef RL_FAKE_OPENAI_H
#define RL_FAKE_OPENAI_H

typedef struct fake_openai fake_openai;

typedef struct fake_openai_opts {
    int transport_faults; /* inject 429/500/slow/truncated on first attempts */
    double slow_s;        /* how long a "slow" reply takes */
    double delay_s;       /* every reply waits this long (for throughput benchmarks) */
} fake_openai_opts;

typedef struct fake_openai_stats {
    int requests, faults_429, faults_500, faults_slow, faults_truncated;
} fake_openai_stats;

fake_openai *fake_openai_start(const fake_openai_opts *o); /* NULL on failure */
int fake_openai_port(const fake_openai *s);
void fake_openai_get_stats(fake_openai *s, fake_openai_stats *st);
void fake_openai_stop(fake_openai *s);

#endif
