/* student.h - internal to src/cli: the data of the from-scratch student's stages (student.c). */
#ifndef RL_CLI_STUDENT_H
#define RL_CLI_STUDENT_H

#include "cli/config.h"
#include "core/core.h"

typedef struct cli_texts {
    char **text;
    size_t *len;
    size_t n, cap;
    size_t n_held_out; /* chunks left out because their document is held out */
} cli_texts;

/* The store's text (db_path) as passages of consecutive chunks of one document (up to a quarter of
 * pretrain.sequence_len tokens each), in document order, without the documents held out by
 * synth's validation and test splits; an error when none is left. Free with cli_texts_free. */
rl_status cli_student_corpus(const rl_config *cfg, const char *db_path, cli_texts *out, rl_error *err);
void cli_texts_free(cli_texts *t);
/* {"text": ...} per text (the `completion` dataset type), written atomically: each text, then
 * `counterfactual_copies` more of it with its figures replaced by random ones (seeded by seed);
 * copy_fraction of all of them, evenly spread, twice in a row. */
rl_status cli_student_write_completion(const cli_texts *t, double copy_fraction, int counterfactual_copies, uint64_t seed,
                                       const char *path, rl_error *err);
/* The DSF baseline's data from a RAFT training file: {"instruction": question, "cot_answer":
 * "<ANSWER>: final answer"} per question (refusal examples skipped), the `raft` dataset type,
 * so the question is laid out as at evaluation; written atomically. */
rl_status cli_student_dsf_data(const char *raft_train, const char *path, size_t *n_out, rl_error *err);

#endif
