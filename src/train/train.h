/* train.h - the public door of src/train: the optimizer (AdamW with decoupled weight decay),
 * gradient-norm clipping, learning-rate schedules, and a training step over a model's full
 * parameters or its LoRA adapters.
 *
 * Conventions follow PyTorch / Hugging Face so that runs can be compared step by step:
 * torch.optim.AdamW's update, torch.nn.utils.clip_grad_norm_'s coefficient, and the
 * transformers schedules (get_{constant,linear,cosine}_schedule_with_warmup, evaluated at the
 * 0-based step before it is taken). Weight decay applies to matrices only (not to norm weights
 * or biases), as the Hugging Face Trainer does.
 */
#ifndef RL_TRAIN_H
#define RL_TRAIN_H

#include "core/core.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

/* ---- AdamW ---- */

typedef struct rl_adamw {
    float beta1, beta2, eps;
    int64_t t;     /* steps taken */
    float *m, *v;  // (n) moments, in the order of the parameters they serve
    size_t n;
} rl_adamw;

rl_status rl_adamw_init(rl_adamw *o, size_t n, float beta1, float beta2, float eps, rl_error *err);
void rl_adamw_free(rl_adamw *o);
/* Starts a step (t += 1); then call rl_adamw_update for every parameter tensor. */
void rl_adamw_begin(rl_adamw *o);
/* p (n) -= lr * (mhat / (sqrt(vhat) + eps) + wd * p), with the gradient g * gscale; m and v
 * are the moments at offset off. Decay is decoupled: p *= 1 - lr * wd first (as PyTorch). */
void rl_adamw_update(rl_adamw *o, float *p, const float *g, size_t off, size_t n, float lr, float wd, float gscale);

/* ---- clipping and schedules ---- */

/* Euclidean norm of the n numbers at g (accumulated in double). */
double rl_sumsq(const float *g, size_t n);
/* clip_grad_norm_'s factor: min(1, max_norm / (norm + 1e-6)); 1 when max_norm <= 0. */
float rl_clip_coef(double norm, float max_norm);

typedef enum rl_sched { RL_SCHED_CONSTANT = 0, RL_SCHED_LINEAR, RL_SCHED_COSINE } rl_sched;
/* Parses "constant", "linear", "cosine"; -1 when unknown. */
int rl_sched_parse(const char *name);
/* The learning rate for 0-based step `step` of `total` with `warmup` warm-up steps. */
float rl_sched_lr(rl_sched kind, float lr, int64_t step, int64_t warmup, int64_t total);

/* ---- one optimizer step over a model ---- */

typedef struct rl_trainer {
    rl_model *m;
    int lora;          /* 1: train m->lora only; 0: full fine-tuning */
    rl_params g;       /* full: gradients */
    rl_lora lg;        /* LoRA: gradients */
    rl_adamw opt;
    float weight_decay, max_grad_norm;
    double last_grad_norm;
    int grads_stale; /* full: zero_grad was called and no backward since (the next one overwrites) */
} rl_trainer;

rl_status rl_trainer_init(rl_trainer *tr, rl_model *m, int lora, float weight_decay, float max_grad_norm,
                          rl_error *err);
void rl_trainer_free(rl_trainer *tr);
/* Starts an accumulated batch: the gradients count as zero (full fine-tuning: the next backward
 * writes them instead of adding, which saves a pass over them; LoRA's are zeroed). */
void rl_trainer_zero_grad(rl_trainer *tr);
/* Adds the gradients of the last forward in a (dscale: see rl_model_backward). */
void rl_trainer_backward(rl_trainer *tr, rl_acts *a, float dscale);
/* Clips and applies one AdamW step at learning rate lr; returns the gradient norm (before clipping). */
double rl_trainer_step(rl_trainer *tr, float lr);

/* ---- datasets (data.c) ---- */

typedef enum rl_ds_type {
    RL_DS_COMPLETION = 0, RL_DS_INPUT_OUTPUT, RL_DS_PROMPT_COMPLETION, RL_DS_ALPACA, RL_DS_CHAT, RL_DS_RAFT,
    RL_DS_TOKENIZED
} rl_ds_type;
/* "completion", "input_output", "prompt_completion", "alpaca", "chat_template", "raft",
 * "tokenized"; -1 when unknown. */
int rl_ds_type_parse(const char *name);

typedef struct rl_example {
    int32_t *ids;    // (n)
    int32_t *labels; // (n) ids[t] or -100 (masked); labels[t] is predicted at position t-1
    int n;
} rl_example;

typedef struct rl_dataset {
    rl_example *ex;
    size_t n, cap;
    size_t n_dropped, n_empty; /* longer than max_len; nothing to learn */
} rl_dataset;

/* Appends the examples of a JSONL file (ds zeroed before the first call). tok may be NULL for
 * "tokenized". Examples longer than max_len (> 0) are dropped; ids >= vocab_size are an error.
 * A malformed line is RL_EFORMAT naming path:line. */
rl_status rl_dataset_load(rl_dataset *ds, const char *path, rl_ds_type type, const rl_tokenizer *tok,
                          int train_on_inputs, int max_len, int vocab_size, rl_error *err);
void rl_dataset_free(rl_dataset *ds);
/* Moves a seeded random val_size (a fraction < 1, or a count) of all's examples into val, which
 * then owns them: free both with rl_dataset_free. */
void rl_dataset_split(rl_dataset *all, rl_dataset *val, double val_size, uint64_t seed);

typedef struct rl_batch {
    int B, T;
    int *tokens, *targets, *pos, *seg; // (B,T) each, in one allocation
    size_t cap;
    int n_valid; /* targets >= 0 */
} rl_batch;

/* Fills b with the examples order[start...] (B rows of at most T tokens; packed: several
 * examples per row with positions restarting; else one per row and T shrinks to the longest).
 * Returns the index in order after the last example used. */
size_t rl_batch_build(rl_batch *b, const rl_dataset *ds, const size_t *order, size_t n_order, size_t start, int B,
                      int T, int packed);
void rl_batch_free(rl_batch *b);

/* ---- the training run (loop.c) ---- */

typedef struct rl_train_opts {
    const char *output_dir;   /* checkpoints, train_log.jsonl, the final adapter or model */
    const char *base_model;   /* written into adapter_config.json */
    int lora;                 /* 1: LoRA (adapters must be attached to the model), 0: full */
    int sequence_len, sample_packing, micro_batch_size, gradient_accumulation_steps;
    int num_epochs, max_steps; /* max_steps > 0 overrides epochs */
    float learning_rate;
    rl_sched lr_scheduler;
    int warmup_steps;
    float weight_decay, max_grad_norm;
    float adam_beta1, adam_beta2, adam_epsilon; /* 0: 0.9, 0.999, 1e-8 */
    int eval_steps, save_steps; /* 0: at the end only */
    uint64_t seed;
    int resume;               /* continue from the newest checkpoint in output_dir */
    int gradient_checkpointing; /* recompute each layer's activations in backward */
    int stop_after;           /* tests: stop (as if killed) after this many steps; 0 = no */
} rl_train_opts;

/* The result of a run. */
typedef struct rl_train_result {
    int steps;
    float first_loss, last_loss;
    float first_eval_loss, eval_loss; /* NaN without a validation split */
} rl_train_result;

/* Trains m on train (and evaluates on val, which may be empty) as described by o. */
rl_status rl_train_run(rl_model *m, const rl_dataset *train, const rl_dataset *val, const rl_train_opts *o,
                       rl_train_result *res, rl_error *err);
/* Removes the checkpoints of output_dir (a run over other inputs must not resume from them). */
rl_status rl_train_clear_checkpoints(const char *output_dir, rl_error *err);
/* Mean loss of m over every example of ds (batches of B rows of at most T tokens). */
rl_status rl_eval_loss(rl_model *m, rl_acts *a, const rl_dataset *ds, int B, int T, int packed, float *loss,
                       rl_error *err);

#endif
