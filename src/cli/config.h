/* config.h - raftlm.yaml: typed settings with defaults, loaded and validated against one schema.
 *
 * The schema (config.c) is the single source of truth: it fills defaults, checks types and
 * ranges (errors name file:line: key), resolves relative paths against the config file's
 * folder, and writes the fully commented file of `raftlm init`. Training keys use Axolotl's
 * names; the other stages have their own sections (corpus, chunking, retrieval, teacher, raft,
 * eval, serve). Later modules receive plain option structs filled from this, never the YAML. */
#ifndef RL_CONFIG_H
#define RL_CONFIG_H

#include <stdbool.h>

#include "core/core.h"

typedef struct rl_strlist {
    char **items;
    int n;
} rl_strlist;

typedef struct rl_intlist {
    int *items;
    int n;
} rl_intlist;

typedef struct rl_dataset_cfg {
    char *path;           /* JSONL file (resolved) */
    char *type;           /* completion | input_output | alpaca | chat_template | raft | tokenized */
    char *field_messages; /* for chat_template: the field holding the messages */
    char *split;          /* train | validation | test */
} rl_dataset_cfg;

/* One model of eval.models (paths resolved; NULL = not given). */
typedef struct rl_eval_model_cfg {
    char *name;      /* label in results and the report; NULL = the model's file name */
    char *model;     /* model file/folder, or a PEFT adapter folder (then on base_model) */
    char *lora;      /* a PEFT adapter folder applied on model */
    char *tokenizer; /* when it is neither the config's tokenizer nor beside the model */
} rl_eval_model_cfg;

typedef struct rl_config {
    char *file; /* the config file as the user named it (for messages) */
    char *dir;  /* its folder: relative paths resolve against it */

    /* training (Axolotl's vocabulary) */
    char *base_model;
    char *base_model_init; /* "pretrained" or "random" (train a tiny model from scratch) */
    char *tokenizer;       /* tokenizer path when it is not beside the model */
    char *chat_template;   /* a Jinja template string or a family name, overriding the model's */
    rl_dataset_cfg *datasets;
    int n_datasets;
    char *adapter; /* "lora" or "full" */
    int lora_r;
    double lora_alpha, lora_dropout;
    rl_strlist lora_target_modules;
    char *lora_model_dir;
    int sequence_len;
    bool sample_packing;
    int micro_batch_size, gradient_accumulation_steps, num_epochs, max_steps;
    double learning_rate;
    char *lr_scheduler;
    int warmup_steps;
    char *optimizer;
    double weight_decay, max_grad_norm;
    double adam_beta1, adam_beta2, adam_epsilon;
    bool train_on_inputs;
    double val_set_size;
    int eval_steps, save_steps;
    bool gradient_checkpointing;
    char *bf16; /* false | true | auto: matrix products with bf16 inputs (RL_GEMM_BF16) */
    int seed;
    int threads; /* 0 = all cores */
    char *output_dir;

    struct {
        rl_strlist paths;   /* files or folders (resolved) */
        rl_strlist include; /* glob patterns on the relative path; empty = all supported types */
        rl_strlist exclude;
        int max_file_mb;
    } corpus;
    struct {
        int size, overlap; /* in tokens */
        char *tokenizer;   /* token counts from this tokenizer; null = word-based estimate */
    } chunking;
    struct {
        char *mode; /* auto | bm25 | dense | hybrid */
        int k;
        char *embedding_model, *embedding_tokenizer;
        char *query_prefix, *passage_prefix; /* put before queries / chunks when embedding; NULL = none */
        int rrf_k;
        double bm25_weight, dense_weight;
        bool stemming; /* porter stemming in the keyword index */
    } retrieval;
    struct {
        char *type; /* extractive | openai | local */
        char *base_url, *model, *api_key_env, *tokenizer;
        int max_concurrency;
        double timeout_s;
        double temperature;
        int max_tokens;
        int max_retries;
        double retry_base_s;
        long long token_budget;
        double price_prompt_per_mtok, price_completion_per_mtok;
        char *question_prompt, *answer_prompt;
    } teacher;
    struct {
        int questions_per_chunk;
        double p;
        int num_distractors;
        int seed;
        char *distractors; /* hard | random */
        char *without_oracle; /* memorize | refuse */
        double refusal_fraction;
        int counterfactual_copies;
        double oracle_alone_fraction;
        double val_fraction, test_fraction;
    } raft;
    /* the from-scratch student (cmd_train --stage pretrain / dsf; cmd_run's stages of the same names) */
    struct {
        bool enabled;
        char *model_config; /* HF config.json (or its folder): the shape of the new model */
        int vocab_size;     /* of the BPE tokenizer trained on the corpus when `tokenizer` is null */
        int max_steps, sequence_len, micro_batch_size, warmup_steps;
        double copy_fraction;
        int counterfactual_copies; /* more copies of each passage, its figures random */
        double learning_rate;
    } pretrain;
    struct {
        bool enabled; /* the RAFT paper's baseline: question -> answer without documents */
        int max_steps;
        double learning_rate;
    } dsf;
    struct {
        rl_strlist modes;
        int k;
        char *questions;
        rl_eval_model_cfg *models; /* eval.models; n_models 0 = the default (base + trained) */
        int n_models;
        rl_intlist k_sweep;        /* k values for rag and recall@k; empty = no sweep */
        int parallel;              /* questions answered at once; 0 = one per core */
    } eval;
    struct {
        char *host;
        int port, parallel;
        char *api_key_env;
        int max_tokens;
        int queue;               /* requests waiting for a slot before 503 */
        int context;             /* tokens per slot; 0 = the model's */
        double request_timeout_s;
        int max_body_kb;
        char *quant;             /* f32 | q8_0 | q4_0: the weights' format in memory */
    } serve;
} rl_config;

/* Loads and validates path. On error returns RL_ECONFIG (or RL_ENOTFOUND/RL_EIO) with a message
 * such as `raftlm.yaml:12: lora_r: expected a positive integer, got "abc"`. */
rl_status rl_config_load(rl_config *cfg, const char *path, rl_error *err);
/* All defaults, as if from an empty file in folder dir. */
void rl_config_defaults(rl_config *cfg, const char *dir);
void rl_config_free(rl_config *cfg);
/* The full commented config with every key and its default (what `raftlm init` writes). */
char *rl_config_template(void);
/* The resolved config as a JSON object text (every key of the schema, paths resolved), for
 * the report. Caller frees. */
char *rl_config_to_json(const rl_config *cfg);
/* <output_dir>/store.db; caller frees. */
char *rl_config_store_path(const rl_config *cfg);

#endif
