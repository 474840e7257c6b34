/* synth_internal.h - shared by run.c, assemble.c and figures.c (not public). */
#ifndef RL_SYNTH_INTERNAL_H
#define RL_SYNTH_INTERNAL_H

#include <sqlite3.h>

#include "synth/synth.h"

/* splitmix64: the small seeded generator behind every random choice of synthesis */
static inline uint64_t rl_splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A chunk of the store as synthesis sees it. */
typedef struct syn_chunk {
    int64_t id, doc_id;
    int ordinal;
    char *text, *heading, *title, *doc_path;
    char sha[65]; /* of heading, title and text: what the teacher saw */
} syn_chunk;

typedef struct syn_chunks {
    syn_chunk *c;
    size_t n;
} syn_chunks;

rl_status syn_load_chunks(sqlite3 *db, syn_chunks *out, rl_error *err);
void syn_chunks_free(syn_chunks *c);
rl_status syn_ensure_tables(sqlite3 *db, rl_error *err);
/* What identifies a run's settings for reuse: the teacher and questions_per_chunk. */
char *syn_fingerprint(const rl_synth_opts *o);

/* One finished RAFT example. */
typedef struct syn_example {
    char *id;
    int split; /* 0 train, 1 validation, 2 test */
    char *question, *cot_answer, *final_answer;
    char *oracle_text, *oracle_doc;
    int64_t oracle_chunk_id;
    int oracle_in_context, refusal;
    int counterfactual; /* a copy with its figure replaced (raft.counterfactual_copies) */
    char **docs, **titles; /* in the order shown */
    int n_docs;
} syn_example;

typedef struct syn_examples {
    syn_example *e;
    size_t n;
    int64_t duplicates, refusals, counterfactuals, oracle_alone;
    int distractors_clamped;
} syn_examples;

/* Builds every example from the accepted items (deterministic for a store and options). */
rl_status syn_assemble(rl_store *store, const rl_synth_opts *o, const syn_chunks *chunks, syn_examples *out, rl_error *err);
void syn_examples_free(syn_examples *x);
/* Renders one example as a JSON line in a format (no newline); caller frees. */
char *syn_example_json(const syn_example *e, rl_export_format fmt);

/* The teachers' prompts (prompts.c): templates with {chunk} {heading} {title} {n} {question}. */
extern const char *const syn_default_question_prompt, *const syn_default_answer_prompt, *const syn_teacher_system_prompt;
char *syn_prompt_fill(const char *tpl, const rl_teacher_task *t); /* caller frees */

#define SYN_SYSTEM_PROMPT                                                                                                  \
    "Answer the question using the documents. Quote the sentences you use between ##begin_quote## and ##end_quote##, " \
    "then give the final answer after <ANSWER>:. If the documents do not contain the answer, say so."
#define SYN_REFUSAL "The documents do not say."

#endif
