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
} rl_trainer;

rl_status rl_trainer_init(rl_trainer *tr, rl_model *m, int lora, float weight_decay, float max_grad_norm,
                          rl_error *err);
void rl_trainer_free(rl_trainer *tr);
/* Zeroes the gradients (start of an accumulated batch). */
void rl_trainer_zero_grad(rl_trainer *tr);
/* Adds the gradients of the last forward in a (dscale: see rl_model_backward). */
void rl_trainer_backward(rl_trainer *tr, rl_acts *a, float dscale);
/* Clips and applies one AdamW step at learning rate lr; returns the gradient norm (before clipping). */
double rl_trainer_step(rl_trainer *tr, float lr);

#endif
