/* synth.h - the public door of src/synth: RAFT data synthesis.
 *
 * For each chunk of the store a teacher writes questions, then for each question a chain of
 * thought that quotes the chunk between ##begin_quote## and ##end_quote## and ends with
 * "<ANSWER>: ...". Every answer is verified (quotes verbatim in the chunk, figures of the final
 * answer in the chunk), near-duplicate questions are dropped, and the survivors become RAFT
 * examples: the question with the oracle chunk (with probability p) among hard-negative
 * distractors, split by document into train / validation / test, exported as JSONL.
 *
 * Everything a teacher produces is committed to the store per chunk, so a killed run resumes
 * where it stopped, and a rerun with the same corpus and settings asks the teacher nothing. */
#ifndef RL_SYNTH_H
#define RL_SYNTH_H

#include <stdint.h>

#include "core/core.h"
#include "retrieve/retrieve.h"

/* ---- teachers ---------------------------------------------------------------------------- */

typedef enum rl_task_kind { RL_TASK_QUESTIONS, RL_TASK_ANSWER } rl_task_kind;

/* One request to a teacher. The runner fills the inputs; the teacher fills the outputs. */
typedef struct rl_teacher_task {
    rl_task_kind kind;
    /* inputs */
    const char *chunk_text, *heading, *doc_title;
    int n_questions;      /* RL_TASK_QUESTIONS: how many to ask for */
    const char *question; /* RL_TASK_ANSWER */
    const char *hint;     /* RL_TASK_ANSWER: the teacher's own note from the question step, or NULL */
    void *user;           /* the runner's bookkeeping */
    /* outputs */
    rl_status status; /* RL_OK, or the reason the teacher failed (stored as a rejection) */
    char *error;      /* message when status != RL_OK */
    char **questions; /* RL_TASK_QUESTIONS */
    char **hints;     /* optional, parallel to questions */
    int n_out;
    char *answer; /* RL_TASK_ANSWER: the chain of thought with quotes and <ANSWER>: */
    int64_t prompt_tokens, completion_tokens;
} rl_teacher_task;

typedef struct rl_teacher rl_teacher;
typedef struct rl_teacher_vt {
    const char *name;
    /* Starts a task; returns at once. The task stays owned by the caller. */
    rl_status (*submit)(rl_teacher *t, rl_teacher_task *task, rl_error *err);
    /* Waits until at least one submitted task is finished (or none is pending) and returns up
     * to max of them in done[]; returns their number. */
    int (*poll)(rl_teacher *t, rl_teacher_task **done, int max);
    int (*capacity)(rl_teacher *t); /* tasks in flight at once */
    void (*free)(rl_teacher *t);
} rl_teacher_vt;
struct rl_teacher {
    const rl_teacher_vt *vt;
    /* what identifies this teacher's output (kind, version, model, prompts): stored work is
     * reused only under the same fingerprint */
    char fingerprint[128];
};

/* Offline and deterministic: questions from sentences and table rows that state facts. */
rl_teacher *rl_teacher_extractive_new(void);
void rl_teacher_free(rl_teacher *t);
void rl_teacher_task_clear(rl_teacher_task *task); /* frees the outputs */

/* Any OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp's server, Ollama, raftlm serve). */
typedef struct rl_openai_opts {
    const char *base_url; /* ".../v1": requests go to base_url + "/chat/completions" */
    const char *model, *api_key;
    int max_concurrency; /* requests in flight */
    double timeout_s;    /* per request */
    int max_retries;     /* per request, after the first attempt */
    double retry_base_s; /* first backoff; doubles each retry, capped at 30 s, with jitter */
    double temperature;
    int max_tokens;
    int64_t token_budget; /* stop asking once this many tokens are used (0 = no limit) */
    const char *question_prompt, *answer_prompt; /* templates: {chunk} {heading} {title} {n} {question} */
} rl_openai_opts;
rl_status rl_teacher_openai_new(rl_teacher **out, const rl_openai_opts *opts, rl_error *err);
void rl_teacher_openai_stats(rl_teacher *t, int64_t *requests, int64_t *retries, int64_t *prompt_tokens, int64_t *completion_tokens);
/* Questions from a model's reply: a JSON array (or {"questions": [...]}), repaired when it is
 * fenced, wrapped in prose, has trailing commas or is cut off; else lines ending in '?'.
 * Returns the count (0 for an empty list), or -1 when nothing in the reply can be read;
 * *out is an array of strings the caller frees. */
int rl_parse_questions(const char *content, char ***out);

/* A model raftlm loads itself, prompted through its chat template (greedy by default). */
typedef struct rl_local_opts {
    const char *model, *tokenizer; /* tokenizer NULL: beside the model */
    double temperature;
    int max_tokens;
    uint64_t seed;
    int threads;
    const char *question_prompt, *answer_prompt;
} rl_local_opts;
rl_status rl_teacher_local_new(rl_teacher **out, const rl_local_opts *opts, rl_error *err);

/* The extractive teacher's core, for tests and for reuse: up to max question/answer pairs from
 * one chunk (caller frees with rl_qa_free). */
typedef struct rl_qa {
    char *question, *answer, *quote;
} rl_qa;
int rl_extract_qa(const char *chunk_text, const char *heading, const char *doc_title, int max, rl_qa **out);
void rl_qa_free(rl_qa *qa, int n);
/* A chain-of-thought answer in the RAFT layout, quoting quote and ending in <ANSWER>: answer. */
char *rl_cot_answer(const char *quote, const char *answer);

/* ---- figures (figures.c) ------------------------------------------------------------------- */

/* text with every whole-word occurrence of `from` replaced by `to` (a figure "3" must not hit the
 * 3 inside "AR-300"); *n counts the replacements */
char *rl_figure_replace(const char *text, const char *from, const char *to, int *n);
/* A random figure of the same shape: "EUR 524,410" -> "EUR 381,907", an ISO date a date. */
char *rl_figure_random(const char *fig, uint64_t *rng);
/* text (len bytes) with each of its figures replaced by a random one, the same figure by the same
 * replacement throughout: "placed on 2025-11-04 ... 484085" -> "placed on 2023-02-17 ... 735120". */
char *rl_figures_randomize(const char *text, size_t len, uint64_t *rng);

/* ---- verification ------------------------------------------------------------------------ */

typedef struct rl_verdict {
    int ok;
    const char *reason; /* a short stable code: "no_quote", "quote_not_in_chunk", ... */
    char detail[256];
    char *final_answer; /* the text after <ANSWER>: (caller frees) */
} rl_verdict;

/* Checks a chain-of-thought answer against its oracle chunk. */
void rl_verify_answer(const char *cot, const char *chunk_text, rl_verdict *v);

/* MinHash signatures over word 3-shingles, for near-duplicate questions. */
#define RL_MINHASH_K 64
void rl_minhash(const char *text, uint32_t sig[RL_MINHASH_K]);
double rl_minhash_similarity(const uint32_t *a, const uint32_t *b);

/* ---- the run ----------------------------------------------------------------------------- */

typedef struct rl_synth_opts {
    int questions_per_chunk;
    double p;            /* oracle fraction */
    int num_distractors; /* per example */
    uint64_t seed;
    int random_distractors; /* 0: hard negatives by BM25; 1: random chunks */
    int refuse_without_oracle; /* examples without the oracle answer "the documents do not say" */
    double refusal_fraction;   /* extra examples whose question the given documents cannot answer */
    int counterfactual_copies; /* per training example: copies with its figure replaced (assemble.c) */
    double oracle_alone_fraction; /* training examples holding their oracle shown without distractors */
    double val_fraction, test_fraction;
    double dedup_threshold; /* MinHash similarity at or above which a question is a duplicate */
    int64_t max_examples;   /* stop after this many accepted questions (0 = no limit) */
    const char *out_dir;    /* datasets are written to out_dir/datasets/ */
    const char *teacher_fingerprint; /* the teacher's fingerprint (rl_teacher.fingerprint) */
} rl_synth_opts;

typedef struct rl_synth_report {
    int64_t chunks_total, chunks_done_now, chunks_reused;
    int64_t questions, accepted, rejected, duplicates;
    int64_t examples[3]; /* train, validation, test */
    int64_t refusals, counterfactuals, oracle_alone;
    int64_t prompt_tokens, completion_tokens;
    /* rejection reasons and their counts */
    char *reasons[32];
    int64_t reason_counts[32];
    int n_reasons;
    int distractors_clamped; /* the corpus had fewer chunks than asked for */
    int stopped_by_budget;   /* the teacher's token budget ran out */
    int datasets_written;    /* 0 when the files were already up to date */
    double seconds;
} rl_synth_report;

rl_status rl_synth_run(rl_store *store, rl_teacher *teacher, const rl_synth_opts *opts, rl_synth_report *report, rl_error *err);
void rl_synth_report_free(rl_synth_report *r);

/* Export formats of the accepted examples. */
typedef enum rl_export_format { RL_EXPORT_RAFT, RL_EXPORT_CHAT, RL_EXPORT_COMPLETION, RL_EXPORT_ALPACA, RL_EXPORT_EVAL } rl_export_format;
rl_status rl_export_format_parse(const char *name, rl_export_format *out, rl_error *err);
/* Writes one split (0 train, 1 validation, 2 test, -1 all) in a format, atomically. */
rl_status rl_synth_export(rl_store *store, const rl_synth_opts *opts, rl_export_format fmt, int split, const char *path,
                          int64_t *n_written, rl_error *err);

#endif
