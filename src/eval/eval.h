/* eval.h - the public door of src/eval: metrics and evaluation modes.
 *
 * Modes: retrieval (is the oracle document among the retrieved ones: recall@k, MRR, nDCG@10),
 * and the answering modes closed_book (the question alone), rag (the retrieved top-k chunks in
 * the RAFT layout), oracle (the oracle chunk among distractors). Answers are scored by exact
 * match and token F1 of the final answer, numeric match (every figure of the gold answer is in
 * the prediction), citation validity (every quote of the answer is in the documents it was
 * given) and refusal rate. Generation is a callback, so this module does not depend on how
 * text is generated (src/infer, a server, a test double). */
#ifndef RL_EVAL_H
#define RL_EVAL_H

#include <stdint.h>

#include "core/core.h"
#include "retrieve/retrieve.h"

/* ---- questions ----------------------------------------------------------------------------- */

typedef struct rl_eval_question {
    char *id, *question, *answer; /* answer: the gold final answer */
    char *oracle_doc;             /* path relative to a corpus root, or a file name; may be NULL */
} rl_eval_question;

typedef struct rl_eval_set {
    rl_eval_question *q;
    size_t n;
} rl_eval_set;

/* Reads JSONL lines {"question", "answer", "oracle_doc"?, "id"?}; a malformed line is an error
 * naming file and line. */
rl_status rl_eval_set_load(rl_eval_set *set, const char *path, rl_error *err);
void rl_eval_set_free(rl_eval_set *set);

/* ---- metrics --------------------------------------------------------------------------------- */

/* SQuAD-style normalisation: lower case, punctuation and articles (a, an, the) removed,
 * whitespace collapsed. Caller frees. */
char *rl_eval_normalize(const char *s);
int rl_eval_exact_match(const char *prediction, const char *gold);
double rl_eval_f1(const char *prediction, const char *gold);
/* 1 when every number of gold appears in prediction (thousands separators ignored, "1,500"
 * matches "1500"); gold without numbers falls back to exact match. */
int rl_eval_numeric_match(const char *prediction, const char *gold);
/* The final answer of a chain of thought: the text after the last "<ANSWER>:" or, without
 * one, the whole text trimmed. Caller frees. */
char *rl_eval_final_answer(const char *generated);
/* Citation validity: 1 when the answer quotes (##begin_quote##...##end_quote##) at least once
 * and every quote appears in one of the documents; 0 otherwise. */
int rl_eval_citations_valid(const char *generated, const char *const *docs, int n_docs);
int rl_eval_is_refusal(const char *final_answer);

/* Whether a retrieved document path is the oracle: equal paths, or equal file names when the
 * oracle is only a name. */
int rl_eval_doc_matches(const char *retrieved, const char *oracle);

/* Rank metrics of one question from the 1-based rank of the first relevant document among
 * distinct retrieved documents (0 = not found). */
typedef struct rl_rank_metrics {
    double recall_at[11]; /* recall_at[k] for k = 1..10 */
    double mrr, ndcg10;
} rl_rank_metrics;
void rl_eval_rank_metrics(int rank, rl_rank_metrics *m);

/* ---- running ------------------------------------------------------------------------------- */

#define RL_EVAL_MAX_K 50 /* recall@k is kept for k = 1..RL_EVAL_MAX_K */

typedef struct rl_eval_retrieval {
    int n;                             /* questions with an oracle document */
    double recall[RL_EVAL_MAX_K + 1];  /* recall@k, k = 1..RL_EVAL_MAX_K */
    double mrr, ndcg10;                /* means */
} rl_eval_retrieval;

/* Retrieval of every question with an oracle_doc: documents ranked by their best chunk. With
 * dense NULL the ranking is BM25; with dense, hybrid selects reciprocal rank fusion (ho may be
 * NULL for the defaults), else dense only. */
rl_status rl_eval_retrieval_run(rl_store *store, const rl_eval_set *set, rl_dense *dense, int hybrid, const rl_hybrid_opts *ho,
                                rl_eval_retrieval *out, rl_error *err);

/* Generates text for a prompt (the user turn); returns a malloc'ed string (and in *n_tokens the
 * tokens generated) or NULL on failure with err set. */
typedef char *(*rl_generate_fn)(void *ctx, const char *prompt, int *n_tokens, rl_error *err);

typedef enum rl_eval_mode { RL_EVAL_CLOSED_BOOK, RL_EVAL_RAG, RL_EVAL_ORACLE } rl_eval_mode;

/* One answering task: a mode at a k (rag: the retrieved top-k chunks; oracle: the oracle chunk
 * and k-1 distractors; closed_book: k unused). */
typedef struct rl_eval_task {
    rl_eval_mode mode;
    int k;
} rl_eval_task;

typedef struct rl_eval_answers {
    int n;
    double em, f1, numeric_match, citation_validity, refusal_rate; /* means over n */
    long long tokens;                                              /* generated */
    double seconds;                                                /* spent generating */
} rl_eval_answers;

#define RL_EVAL_MAX_WORKERS 64

typedef struct rl_eval_answer_opts {
    const rl_eval_task *tasks;
    int n_tasks;
    rl_generate_fn generate;
    void *const *ctxs; /* one generator context per worker: generate is called on ctxs[w] from worker w's thread */
    int n_workers;     /* questions answered at the same time (1..RL_EVAL_MAX_WORKERS) */
    const char *model;    /* label written in each record; may be NULL */
    rl_buf *records;      /* optional: one JSON line per question and task (see eval-and-run.md) */
    rl_progress *bar;     /* optional: advanced by one per question and task */
} rl_eval_answer_opts;

/* Runs every task on every question and fills out[0..n_tasks). The documents of every question
 * are looked up first (the store is used from the caller's thread only); then n_workers threads
 * take one question at a time and run its tasks back to back (they share a prompt prefix, which
 * the generator's cache reuses); scores and records follow in question order, so the results do
 * not depend on the number of workers (as long as the generator does not). */
rl_status rl_eval_answers_run(rl_store *store, const rl_eval_set *set, const rl_eval_answer_opts *o, rl_eval_answers *out, rl_error *err);

const char *rl_eval_mode_name(rl_eval_mode m);
/* The quotes (##begin_quote##...##end_quote##) of a generation; *n receives their count.
 * Caller frees each and the array. */
char **rl_eval_quotes(const char *generated, int *n);

#endif
