/* config.c - the raftlm.yaml schema, its loader (libyaml's document API, which keeps line
 * numbers) and the commented template that `raftlm init` writes.
 *
 * One table of fields drives everything: defaults are YAML text parsed by the same code as the
 * user's values, so the template, the defaults and validation cannot drift apart. */
#include "cli/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include <yaml.h>

typedef enum {
    F_SECTION, /* a mapping heading: only for the template and for known section names */
    F_INT,
    F_INT64,
    F_FLOAT,
    F_BOOL,
    F_STR,
    F_PATH, /* a string resolved against the config's folder */
    F_ENUM,
    F_STRLIST,
    F_PATHLIST,
    F_DATASETS, /* list of mappings, see dataset_fields */
    F_INTLIST,  /* rl_intlist; min/max bound every item */
    F_EVAL_MODELS, /* list of mappings, see eval_model_fields */
} field_kind;

typedef struct field {
    const char *key; /* dotted: "chunking.size" */
    field_kind kind;
    size_t off;
    const char *def; /* YAML text of the default; "null" = none; lists: comma-separated items */
    double min, max;
    const char *values; /* F_ENUM: "a|b|c" */
    const char *doc;
} field;

#define O(f) offsetof(rl_config, f)
#define NONE 0, 0
static const field fields[] = {
    {"base_model", F_PATH, O(base_model), "null", NONE, 0,
     "student model: an HF folder (config.json + *.safetensors), a .gguf file or a llama2.c .bin"},
    {"base_model_init", F_ENUM, O(base_model_init), "pretrained", NONE, "pretrained|random",
     "pretrained: load base_model's weights; random: train a new model of that shape from scratch"},
    {"tokenizer", F_PATH, O(tokenizer), "null", NONE, 0,
     "tokenizer.json / tokenizer.bin / .gguf when it is not beside base_model"},
    {"chat_template", F_STR, O(chat_template), "null", NONE, 0,
     "override the model's chat template (a Jinja string or a family: chatml, llama3, llama2, ...)"},
    {"datasets", F_DATASETS, O(datasets), "", NONE, 0,
     "training data; empty = the RAFT examples that `raftlm synth` writes to output_dir"},
    {"adapter", F_ENUM, O(adapter), "lora", NONE, "lora|full|qlora",
     "lora: train a LoRA adapter; full: full fine-tuning; qlora (Axolotl's): LoRA on the unquantized base"},
    {"lora_r", F_INT, O(lora_r), "16", 1, 4096, 0, "LoRA rank"},
    {"lora_alpha", F_FLOAT, O(lora_alpha), "32", 0, 1e6, 0, "LoRA scaling numerator (scale = alpha / r)"},
    {"lora_dropout", F_FLOAT, O(lora_dropout), "0.05", 0, 0.99, 0, "dropout on the LoRA input"},
    {"lora_target_modules", F_STRLIST, O(lora_target_modules), "all-linear", NONE, 0,
     "modules that get adapters: all-linear, or names such as q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj"},
    {"lora_model_dir", F_PATH, O(lora_model_dir), "null", NONE, 0, "continue from this PEFT adapter folder"},
    {"sequence_len", F_INT, O(sequence_len), "1024", 8, 1 << 20, 0, "tokens per training sequence"},
    {"sample_packing", F_BOOL, O(sample_packing), "true", NONE, 0,
     "pack several examples into one sequence (attention never crosses examples)"},
    {"micro_batch_size", F_INT, O(micro_batch_size), "1", 1, 65536, 0, "sequences per forward/backward"},
    {"gradient_accumulation_steps", F_INT, O(gradient_accumulation_steps), "8", 1, 65536, 0,
     "micro-batches per optimizer step"},
    {"num_epochs", F_INT, O(num_epochs), "3", 1, 100000, 0, "passes over the training data"},
    {"max_steps", F_INT, O(max_steps), "0", 0, 1e9, 0, "stop after this many optimizer steps (0 = no limit)"},
    {"learning_rate", F_FLOAT, O(learning_rate), "0.0002", 0, 10, 0, "peak learning rate"},
    {"lr_scheduler", F_ENUM, O(lr_scheduler), "cosine", NONE, "constant|linear|cosine", "learning-rate schedule after warmup"},
    {"warmup_steps", F_INT, O(warmup_steps), "10", 0, 1e9, 0, "linear warmup steps"},
    {"optimizer", F_ENUM, O(optimizer), "adamw_torch", NONE, "adamw|adamw_torch|adamw_torch_fused",
     "AdamW with decoupled weight decay (the Axolotl names are accepted)"},
    {"weight_decay", F_FLOAT, O(weight_decay), "0.0", 0, 10, 0, "decoupled weight decay"},
    {"adam_beta1", F_FLOAT, O(adam_beta1), "0.9", 0, 0.999999, 0, "AdamW's first-moment decay"},
    {"adam_beta2", F_FLOAT, O(adam_beta2), "0.999", 0, 0.999999, 0, "AdamW's second-moment decay (0.95 is steadier for small models)"},
    {"adam_epsilon", F_FLOAT, O(adam_epsilon), "1e-8", 1e-30, 1, 0, "AdamW's epsilon"},
    {"max_grad_norm", F_FLOAT, O(max_grad_norm), "1.0", 0, 1e9, 0, "clip the global gradient norm (0 = off)"},
    {"train_on_inputs", F_BOOL, O(train_on_inputs), "false", NONE, 0, "false: the loss covers only the answers"},
    {"val_set_size", F_FLOAT, O(val_set_size), "0.05", 0, 0.9, 0, "fraction of the data held out for validation"},
    {"eval_steps", F_INT, O(eval_steps), "50", 0, 1e9, 0, "validation loss every N steps (0 = at the end only)"},
    {"save_steps", F_INT, O(save_steps), "100", 0, 1e9, 0, "checkpoint every N steps (0 = at the end only)"},
    {"gradient_checkpointing", F_BOOL, O(gradient_checkpointing), "false", NONE, 0,
     "recompute activations per layer in the backward pass (less memory, ~30% slower)"},
    {"bf16", F_ENUM, O(bf16), "false", NONE, "false|true|auto",
     "bf16 mixed precision: matrix products on bfloat16 inputs (float32 sums, weights and optimizer state); "
     "auto: where the CPU has avx512_bf16"},
    {"seed", F_INT, O(seed), "42", 0, 2147483647, 0, "random seed for training"},
    {"threads", F_INT, O(threads), "0", 0, 4096, 0, "worker threads (0 = all cores)"},
    {"output_dir", F_PATH, O(output_dir), "out", NONE, 0, "store.db, indexes, datasets, checkpoints and the report go here"},

    {"corpus", F_SECTION, 0, 0, NONE, 0, "the knowledge base"},
    {"corpus.paths", F_PATHLIST, O(corpus.paths), "docs", NONE, 0,
     "files or folders to ingest (.txt .md .rst .html .htm .pdf .jsonl)"},
    {"corpus.include", F_STRLIST, O(corpus.include), "", NONE, 0, "only files whose relative path matches one of these globs"},
    {"corpus.exclude", F_STRLIST, O(corpus.exclude), "", NONE, 0, "skip files whose relative path matches one of these globs"},
    {"corpus.max_file_mb", F_INT, O(corpus.max_file_mb), "100", 1, 1 << 20, 0, "larger files are skipped with a warning"},

    {"chunking", F_SECTION, 0, 0, NONE, 0, "how documents are cut into chunks"},
    {"chunking.size", F_INT, O(chunking.size), "256", 16, 1 << 20, 0, "target chunk size in tokens (never exceeded)"},
    {"chunking.overlap", F_INT, O(chunking.overlap), "32", 0, 1 << 20, 0,
     "tokens repeated from the end of a chunk at the start of the next one"},
    {"chunking.tokenizer", F_PATH, O(chunking.tokenizer), "null", NONE, 0,
     "count tokens with this tokenizer (null: a word-based estimate, see docs/chunking.md)"},

    {"retrieval", F_SECTION, 0, 0, NONE, 0, "search over the chunks"},
    {"retrieval.mode", F_ENUM, O(retrieval.mode), "auto", NONE, "auto|bm25|dense|hybrid",
     "bm25 (keyword), dense (embeddings), hybrid (both, fused by reciprocal rank); auto: hybrid with an embedding model, else bm25"},
    {"retrieval.k", F_INT, O(retrieval.k), "5", 1, 1000, 0, "chunks retrieved per question"},
    {"retrieval.embedding_model", F_PATH, O(retrieval.embedding_model), "null", NONE, 0,
     "embedding model for dense retrieval: a BERT-family sentence encoder (HF folder or GGUF; MiniLM, bge, e5, gte) or any model raftlm loads (mean-pooled hidden states)"},
    {"retrieval.embedding_tokenizer", F_PATH, O(retrieval.embedding_tokenizer), "null", NONE, 0,
     "tokenizer of the embedding model when it is not beside it"},
    {"retrieval.query_prefix", F_STR, O(retrieval.query_prefix), "null", NONE, 0,
     "text put before every query when embedding it (e5: \"query: \"; bge: its query instruction)"},
    {"retrieval.passage_prefix", F_STR, O(retrieval.passage_prefix), "null", NONE, 0,
     "text put before every chunk when embedding it (e5: \"passage: \"); changing either prefix re-embeds"},
    {"retrieval.rrf_k", F_INT, O(retrieval.rrf_k), "60", 1, 100000, 0, "hybrid: the k of reciprocal rank fusion, 1/(k + rank)"},
    {"retrieval.bm25_weight", F_FLOAT, O(retrieval.bm25_weight), "1.0", 0, 1000, 0, "hybrid: weight of the keyword ranking"},
    {"retrieval.dense_weight", F_FLOAT, O(retrieval.dense_weight), "1.0", 0, 1000, 0, "hybrid: weight of the embedding ranking"},
    {"retrieval.stemming", F_BOOL, O(retrieval.stemming), "true", NONE, 0, "Porter stemming in the keyword index"},

    {"teacher", F_SECTION, 0, 0, NONE, 0, "the model that writes questions and cited answers"},
    {"teacher.type", F_ENUM, O(teacher.type), "extractive", NONE, "extractive|openai|local",
     "extractive (offline, no model), openai (any OpenAI-compatible endpoint) or local (a model file)"},
    {"teacher.base_url", F_STR, O(teacher.base_url), "null", NONE, 0, "for openai: e.g. http://127.0.0.1:8000/v1"},
    {"teacher.model", F_STR, O(teacher.model), "null", NONE, 0, "model name (openai) or path (local, relative to this file)"},
    {"teacher.tokenizer", F_PATH, O(teacher.tokenizer), "null", NONE, 0, "local: the teacher's tokenizer when it is not beside the model"},
    {"teacher.api_key_env", F_STR, O(teacher.api_key_env), "OPENAI_API_KEY", NONE, 0, "environment variable holding the API key"},
    {"teacher.max_concurrency", F_INT, O(teacher.max_concurrency), "16", 1, 4096, 0, "requests in flight at once"},
    {"teacher.timeout_s", F_FLOAT, O(teacher.timeout_s), "120", 1, 86400, 0, "per-request time limit in seconds"},
    {"teacher.temperature", F_FLOAT, O(teacher.temperature), "0.2", 0, 2, 0, "sampling temperature"},
    {"teacher.max_tokens", F_INT, O(teacher.max_tokens), "1024", 1, 1 << 20, 0, "answer length limit"},
    {"teacher.max_retries", F_INT, O(teacher.max_retries), "6", 0, 100, 0,
     "retries of a failed request (timeouts, 429, 5xx), with exponential backoff and jitter; Retry-After is honoured"},
    {"teacher.retry_base_s", F_FLOAT, O(teacher.retry_base_s), "0.5", 0.001, 60, 0, "first backoff in seconds (doubles per retry, at most 30 s)"},
    {"teacher.token_budget", F_INT64, O(teacher.token_budget), "0", 0, 9e18, 0, "stop asking once this many tokens are used (0 = no limit)"},
    {"teacher.price_prompt_per_mtok", F_FLOAT, O(teacher.price_prompt_per_mtok), "0", 0, 1e6, 0, "price per million prompt tokens, for the cost estimate"},
    {"teacher.price_completion_per_mtok", F_FLOAT, O(teacher.price_completion_per_mtok), "0", 0, 1e6, 0,
     "price per million completion tokens, for the cost estimate"},
    {"teacher.question_prompt", F_STR, O(teacher.question_prompt), "null", NONE, 0,
     "prompt asking for questions (placeholders {chunk} {heading} {title} {n}); null = built-in"},
    {"teacher.answer_prompt", F_STR, O(teacher.answer_prompt), "null", NONE, 0,
     "prompt asking for a cited answer (placeholders {chunk} {heading} {title} {question}); null = built-in"},

    {"raft", F_SECTION, 0, 0, NONE, 0, "how RAFT training examples are assembled"},
    {"raft.questions_per_chunk", F_INT, O(raft.questions_per_chunk), "3", 1, 100, 0, "questions asked per chunk"},
    {"raft.p", F_FLOAT, O(raft.p), "0.8", 0, 1, 0, "fraction of examples whose documents include the oracle chunk"},
    {"raft.num_distractors", F_INT, O(raft.num_distractors), "4", 0, 100, 0, "distractor chunks per example"},
    {"raft.seed", F_INT, O(raft.seed), "7", 0, 2147483647, 0, "random seed for synthesis and assembly"},
    {"raft.distractors", F_ENUM, O(raft.distractors), "hard", NONE, "hard|random", "hard: retrieved look-alikes; random: any chunk"},
    {"raft.without_oracle", F_ENUM, O(raft.without_oracle), "memorize", NONE, "memorize|refuse",
     "what examples without the oracle teach: answer anyway (paper) or say the documents do not tell"},
    {"raft.refusal_fraction", F_FLOAT, O(raft.refusal_fraction), "0.0", 0, 1, 0, "fraction of unanswerable questions"},
    {"raft.counterfactual_copies", F_INT, O(raft.counterfactual_copies), "0", 0, 16, 0,
     "per training example whose answer is a figure: copies with the figure replaced by a random one in its document, "
     "quote and answer, so the student learns to read facts rather than recall them"},
    {"raft.oracle_alone_fraction", F_FLOAT, O(raft.oracle_alone_fraction), "0.0", 0, 1, 0,
     "fraction of the training examples that hold their oracle shown with it alone, no distractors: "
     "an easier form of the task that teaches a student trained from scratch to copy from its document sooner"},
    {"raft.val_fraction", F_FLOAT, O(raft.val_fraction), "0.05", 0, 0.9, 0, "documents held out for validation"},
    {"raft.test_fraction", F_FLOAT, O(raft.test_fraction), "0.1", 0, 0.9, 0, "documents held out for the test split"},

    {"pretrain", F_SECTION, 0, 0, NONE, 0, "train the student from scratch on the corpus text first (no pretrained model needed)"},
    {"pretrain.enabled", F_BOOL, O(pretrain.enabled), "false", NONE, 0,
     "run the pretrain stage; base_model defaults to its result, <output_dir>/pretrain"},
    {"pretrain.model_config", F_PATH, O(pretrain.model_config), "null", NONE, 0,
     "HF config.json (or its folder) with the shape of the new model (its vocab_size must hold the tokenizer's ids)"},
    {"pretrain.vocab_size", F_INT, O(pretrain.vocab_size), "2048", 258, 1 << 20, 0,
     "byte-level BPE tokenizer trained on the corpus when `tokenizer` is null"},
    {"pretrain.max_steps", F_INT, O(pretrain.max_steps), "200", 1, 1e9, 0, "optimizer steps (full training, packed corpus chunks)"},
    {"pretrain.learning_rate", F_FLOAT, O(pretrain.learning_rate), "0.002", 0, 10, 0, "peak learning rate (cosine after warmup)"},
    {"pretrain.sequence_len", F_INT, O(pretrain.sequence_len), "512", 8, 1 << 20, 0, "tokens per packed sequence"},
    {"pretrain.micro_batch_size", F_INT, O(pretrain.micro_batch_size), "8", 1, 65536, 0, "sequences per step"},
    {"pretrain.copy_fraction", F_FLOAT, O(pretrain.copy_fraction), "0.0", 0, 1, 0,
     "fraction of passages shown twice in a row, so the student learns to copy from its context (RAFT answers quote)"},
    {"pretrain.counterfactual_copies", F_INT, O(pretrain.counterfactual_copies), "0", 0, 64, 0,
     "more copies of each passage with its figures replaced by random ones: figures then come from reading, not recall"},
    {"pretrain.warmup_steps", F_INT, O(pretrain.warmup_steps), "20", 0, 1e9, 0, "linear warmup steps"},

    {"dsf", F_SECTION, 0, 0, NONE, 0, "the baseline: base_model fine-tuned on question -> answer without documents"},
    {"dsf.enabled", F_BOOL, O(dsf.enabled), "false", NONE, 0,
     "run the dsf stage (into <output_dir>/dsf, with the training keys above except these)"},
    {"dsf.max_steps", F_INT, O(dsf.max_steps), "200", 1, 1e9, 0, "optimizer steps"},
    {"dsf.learning_rate", F_FLOAT, O(dsf.learning_rate), "0.001", 0, 10, 0, "peak learning rate"},

    {"eval", F_SECTION, 0, 0, NONE, 0, "evaluation"},
    {"eval.modes", F_STRLIST, O(eval.modes), "retrieval,closed_book,rag,raft", NONE, 0,
     "retrieval, closed_book, rag, oracle, raft"},
    {"eval.k", F_INT, O(eval.k), "5", 1, 1000, 0, "chunks retrieved per question"},
    {"eval.questions", F_PATH, O(eval.questions), "null", NONE, 0, "JSONL of question/answer[/oracle_doc]; null = the test split"},
    /* the models compared and the k sweep (docs/eval-and-run.md) */
    {"eval.models", F_EVAL_MODELS, O(eval.models), "", NONE, 0,
     "models to compare, each {name, model, lora, tokenizer}; model may be a trained folder (out/train); empty = base_model and the trained result"},
    {"eval.k_sweep", F_INTLIST, O(eval.k_sweep), "", 1, 50, 0, "rag and recall@k for each of these k (e.g. [1, 3, 5, 10]); empty = no sweep"},
    {"eval.parallel", F_INT, O(eval.parallel), "0", 0, 64, 0, "questions answered at the same time, each by its own generator (0 = one per core)"},

    {"serve", F_SECTION, 0, 0, NONE, 0, "the OpenAI-compatible server"},
    {"serve.host", F_STR, O(serve.host), "127.0.0.1", NONE, 0, "address to bind (an API key is required off loopback)"},
    {"serve.port", F_INT, O(serve.port), "8080", 1, 65535, 0, "TCP port"},
    {"serve.parallel", F_INT, O(serve.parallel), "4", 1, 1024, 0, "requests generated at once"},
    {"serve.api_key_env", F_STR, O(serve.api_key_env), "RAFTLM_API_KEY", NONE, 0, "environment variable holding the API key"},
    {"serve.max_tokens", F_INT, O(serve.max_tokens), "512", 1, 1 << 20, 0, "default and upper limit of max_tokens"},
    {"serve.queue", F_INT, O(serve.queue), "16", 0, 1 << 20, 0, "requests that may wait for a slot (beyond: 503 + Retry-After)"},
    {"serve.context", F_INT, O(serve.context), "0", 0, 1 << 24, 0, "context per slot in tokens (0 = the model's)"},
    {"serve.request_timeout_s", F_FLOAT, O(serve.request_timeout_s), "300", 1, 86400, 0, "per-request time limit (queue + generation)"},
    {"serve.max_body_kb", F_INT, O(serve.max_body_kb), "1024", 1, 1 << 20, 0, "request body limit in KiB"},
    {"serve.quant", F_ENUM, O(serve.quant), "f32", NONE, "f32|q8_0|q4_0|q4_k|q6_k",
     "weights in memory: f32 (exactly `raftlm generate`), q8_0 (about 3x faster), q4_0 / q4_k / q6_k (smaller; "
     "K types fall back to q4_0 / q8_0 for rows not a multiple of 256 wide)"},
};
#define N_FIELDS (sizeof fields / sizeof fields[0])

#define D(f) offsetof(rl_dataset_cfg, f)
static const field dataset_fields[] = {
    {"path", F_PATH, D(path), "null", NONE, 0, "JSONL file"},
    {"type", F_ENUM, D(type), "raft", NONE, "completion|input_output|alpaca|chat_template|raft|tokenized", "record format"},
    {"field_messages", F_STR, D(field_messages), "messages", NONE, 0, "chat_template: field holding the messages"},
    {"split", F_ENUM, D(split), "train", NONE, "train|validation|test", "which split this file is"},
};
#define N_DATASET_FIELDS (sizeof dataset_fields / sizeof dataset_fields[0])

#define M(f) offsetof(rl_eval_model_cfg, f)
static const field eval_model_fields[] = {
    {"name", F_STR, M(name), "null", NONE, 0, "label in the results"},
    {"model", F_PATH, M(model), "null", NONE, 0, "model file or folder, or a PEFT adapter folder; null = base_model"},
    {"lora", F_PATH, M(lora), "null", NONE, 0, "PEFT adapter folder on model"},
    {"tokenizer", F_PATH, M(tokenizer), "null", NONE, 0, "tokenizer when it is not the config's nor beside the model"},
};
#define N_EVAL_MODEL_FIELDS (sizeof eval_model_fields / sizeof eval_model_fields[0])

/* ---- values ------------------------------------------------------------------------------ */

typedef struct load_ctx {
    const char *file, *dir;
    rl_error *err;
} load_ctx;

static rl_status key_error(load_ctx *c, int line, const char *key, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static rl_status key_error(load_ctx *c, int line, const char *key, const char *fmt, ...) {
    char what[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (line > 0) return rl_fail(c->err, RL_ECONFIG, "%s:%d: %s: %s", c->file, line, key, what);
    return rl_fail(c->err, RL_ECONFIG, "%s: %s: %s", c->file, key, what);
}

/* A short quoted rendering of a user's value for messages. */
static void quote_value(char *out, size_t cap, const char *v) {
    size_t n = strlen(v);
    if (n > 60) snprintf(out, cap, "\"%.57s...\"", v);
    else snprintf(out, cap, "\"%s\"", v);
}

static int is_null_scalar(const char *v, int plain) {
    return plain && (v[0] == 0 || strcmp(v, "~") == 0 || strcasecmp(v, "null") == 0);
}

static const char *describe_node(const yaml_node_t *n) {
    return n->type == YAML_MAPPING_NODE ? "a mapping" : n->type == YAML_SEQUENCE_NODE ? "a list" : "a value";
}

static void free_strlist(rl_strlist *l) {
    for (int i = 0; i < l->n; i++) free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

static char *resolve_path(load_ctx *c, const char *v) {
    if (v[0] == '/') return rl_xstrdup(v);
    if (v[0] == '~' && v[1] == '/' && getenv("HOME")) return rl_path_join(getenv("HOME"), v + 2);
    return rl_path_join(c->dir, v);
}

/* Sets one scalar field from text v; plain = unquoted in YAML (only then "null" means none). */
static rl_status set_scalar(load_ctx *c, const field *f, void *base, const char *key, const char *v, int plain, int line) {
    char q[80];
    quote_value(q, sizeof q, v);
    void *dst = (char *)base + f->off;
    switch (f->kind) {
    case F_INT: {
        char *end;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        int ok = v[0] && *end == 0 && errno == 0;
        if (!ok || x < f->min || x > f->max) {
            if (!ok && f->min == 1) return key_error(c, line, key, "expected a positive integer, got %s", q);
            if (!ok && f->min == 0) return key_error(c, line, key, "expected a non-negative integer, got %s", q);
            if (!ok) return key_error(c, line, key, "expected an integer from %.0f to %.0f, got %s", f->min, f->max, q);
            return key_error(c, line, key, "must be from %.0f to %.0f, got %lld", f->min, f->max, x);
        }
        *(int *)dst = (int)x;
        return RL_OK;
    }
    case F_INT64: {
        char *end;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (!v[0] || *end != 0 || errno != 0 || x < f->min) return key_error(c, line, key, "expected a non-negative integer, got %s", q);
        *(long long *)dst = x;
        return RL_OK;
    }
    case F_FLOAT: {
        char *end;
        errno = 0;
        double x = strtod(v, &end);
        if (!v[0] || *end != 0 || errno != 0 || !isfinite(x))
            return key_error(c, line, key, "expected a number from %g to %g, got %s", f->min, f->max, q);
        if (x < f->min || x > f->max) return key_error(c, line, key, "must be from %g to %g, got %s", f->min, f->max, v);
        *(double *)dst = x;
        return RL_OK;
    }
    case F_BOOL: {
        static const char *yes[] = {"true", "yes", "on"}, *no[] = {"false", "no", "off"};
        for (int i = 0; i < 3; i++) {
            if (strcasecmp(v, yes[i]) == 0) return *(bool *)dst = true, RL_OK;
            if (strcasecmp(v, no[i]) == 0) return *(bool *)dst = false, RL_OK;
        }
        return key_error(c, line, key, "expected true or false, got %s", q);
    }
    case F_STR:
    case F_PATH:
    case F_ENUM: {
        char **s = dst;
        free(*s);
        *s = NULL;
        if (is_null_scalar(v, plain)) { // an enum left empty keeps its default: the code reads every enum
            if (f->kind == F_ENUM) *s = rl_xstrdup(f->def);
            return RL_OK;
        }
        if (f->kind == F_ENUM) {
            size_t n = strlen(v);
            const char *p = f->values;
            int found = 0;
            while (*p) {
                const char *bar = strchr(p, '|');
                size_t len = bar ? (size_t)(bar - p) : strlen(p);
                if (len == n && strncmp(p, v, n) == 0) found = 1;
                p += len + (bar ? 1 : 0);
            }
            if (!found) {
                rl_buf list = {0};
                for (const char *b = f->values; *b; b++) rl_buf_puts(&list, *b == '|' ? ", " : (char[]){*b, 0});
                rl_status st = key_error(c, line, key, "expected one of %s; got %s", list.data, q);
                rl_buf_free(&list);
                return st;
            }
        }
        *s = f->kind == F_PATH ? resolve_path(c, v) : rl_xstrdup(v);
        return RL_OK;
    }
    default:
        return key_error(c, line, key, "internal: not a scalar field");
    }
}

static void list_push(rl_strlist *l, char *s) {
    l->items = rl_xrealloc(l->items, (size_t)(l->n + 1) * sizeof *l->items);
    l->items[l->n++] = s;
}

/* ---- defaults ------------------------------------------------------------------------------- */

static void apply_defaults(const field *fs, size_t n, void *base, const char *dir) {
    rl_error err;
    load_ctx c = {"(defaults)", dir, &err};
    for (size_t i = 0; i < n; i++) {
        const field *f = &fs[i];
        if (f->kind == F_SECTION || f->kind == F_DATASETS || f->kind == F_EVAL_MODELS || f->kind == F_INTLIST) continue;
        if (f->kind == F_STRLIST || f->kind == F_PATHLIST) {
            rl_strlist *l = (rl_strlist *)((char *)base + f->off);
            free_strlist(l);
            const char *p = f->def;
            while (*p) {
                const char *comma = strchr(p, ',');
                size_t len = comma ? (size_t)(comma - p) : strlen(p);
                char *item = rl_xstrndup(p, len);
                if (f->kind == F_PATHLIST) {
                    char *r = resolve_path(&c, item);
                    free(item);
                    item = r;
                }
                list_push(l, item);
                p += len + (comma ? 1 : 0);
            }
            continue;
        }
        rl_status s = set_scalar(&c, f, base, f->key, f->def, 1, 0);
        RL_ASSERT(s == RL_OK); /* a bad default is a bug in the table */
    }
}

void rl_config_defaults(rl_config *cfg, const char *dir) {
    memset(cfg, 0, sizeof *cfg);
    cfg->dir = rl_xstrdup(dir);
    cfg->file = rl_xstrdup("raftlm.yaml");
    apply_defaults(fields, N_FIELDS, cfg, dir);
}

static void free_fields(const field *fs, size_t n, void *base) {
    for (size_t i = 0; i < n; i++) {
        const field *f = &fs[i];
        void *p = (char *)base + f->off;
        if (f->kind == F_STR || f->kind == F_PATH || f->kind == F_ENUM) {
            free(*(char **)p);
            *(char **)p = NULL;
        } else if (f->kind == F_STRLIST || f->kind == F_PATHLIST) {
            free_strlist(p);
        } else if (f->kind == F_INTLIST) {
            free(((rl_intlist *)p)->items);
            memset(p, 0, sizeof(rl_intlist));
        }
    }
}

void rl_config_free(rl_config *cfg) {
    if (!cfg) return;
    free_fields(fields, N_FIELDS, cfg);
    for (int i = 0; i < cfg->n_datasets; i++) free_fields(dataset_fields, N_DATASET_FIELDS, &cfg->datasets[i]);
    free(cfg->datasets);
    for (int i = 0; i < cfg->eval.n_models; i++) free_fields(eval_model_fields, N_EVAL_MODEL_FIELDS, &cfg->eval.models[i]);
    free(cfg->eval.models);
    free(cfg->file);
    free(cfg->dir);
    memset(cfg, 0, sizeof *cfg);
}

/* ---- loading -------------------------------------------------------------------------------- */

static const field *find_field(const field *fs, size_t n, const char *key) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(fs[i].key, key) == 0) return &fs[i];
    return NULL;
}

/* Axolotl keys that mean nothing on a CPU, or that raftlm does always: an Axolotl config loads
 * with a warning for each rather than failing on the first. */
static const struct {
    const char *key, *why;
} axolotl_noops[] = {
    {"fp16", "a GPU setting; raftlm trains in float32, or bf16 with `bf16: true`"},
    {"tf32", "a GPU setting"},
    {"flash_attention", "raftlm's attention is always flash style (no T x T scores kept)"},
    {"sdp_attention", "raftlm's attention is always flash style (no T x T scores kept)"},
    {"xformers_attention", "raftlm's attention is always flash style (no T x T scores kept)"},
    {"flash_attn_cross_entropy", "the loss over the vocabulary is always fused"},
    {"flash_attn_rms_norm", "RMSNorm is always fused"},
    {"strict", "no effect"},
    {"logging_steps", "every step goes to train_log.jsonl"},
    {"load_in_8bit", "the base model is trained in float32 (or bf16 products); quantize for serving instead"},
    {"load_in_4bit", "the base model is trained in float32 (or bf16 products); quantize for serving instead"},
    {"model_type", "read from the model's config.json"},
    {"tokenizer_type", "read from the tokenizer's files"},
    {"trust_remote_code", "no code is ever run from a model folder"},
    {"dataset_prepared_path", "datasets are tokenized in memory"},
    {"pad_to_sequence_len", "rows are packed or padded as needed"},
    {"eval_sample_packing", "validation follows sample_packing"},
    {"group_by_length", "no effect"},
    {"deepspeed", "a GPU setting (raftlm scales out over MPI)"},
    {"fsdp", "a GPU setting (raftlm scales out over MPI)"},
    {"fsdp_config", "a GPU setting (raftlm scales out over MPI)"},
    {"wandb_project", "no Weights & Biases: see train_log.jsonl"},
    {"wandb_entity", "no Weights & Biases: see train_log.jsonl"},
    {"wandb_watch", "no Weights & Biases: see train_log.jsonl"},
    {"wandb_name", "no Weights & Biases: see train_log.jsonl"},
    {"wandb_log_model", "no Weights & Biases: see train_log.jsonl"},
    {"debug", "no effect (use -v)"},
};

static const char *axolotl_noop(const char *key) {
    for (size_t i = 0; i < sizeof axolotl_noops / sizeof axolotl_noops[0]; i++)
        if (strcmp(axolotl_noops[i].key, key) == 0) return axolotl_noops[i].why;
    return NULL;
}

static rl_status unknown_key(load_ctx *c, const field *fs, size_t n, const char *key, int line) {
    const char *best = NULL;
    int best_d = 4;
    for (size_t i = 0; i < n; i++) {
        int d = rl_levenshtein(key, fs[i].key);
        if (d < best_d) best_d = d, best = fs[i].key;
    }
    if (best) return key_error(c, line, key, "unknown key (did you mean '%s'?)", best);
    return key_error(c, line, key, "unknown key (see `raftlm init` for every key)");
}

static rl_status load_value(load_ctx *c, yaml_document_t *doc, const field *f, void *base, const char *key, yaml_node_t *v);

static rl_status load_mapping(load_ctx *c, yaml_document_t *doc, yaml_node_t *map, const field *fs, size_t n, void *base,
                              const char *prefix) {
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        int line = (int)k->start_mark.line + 1;
        if (k->type != YAML_SCALAR_NODE)
            return rl_fail(c->err, RL_ECONFIG, "%s:%d: keys must be plain names", c->file, line);
        char key[256];
        snprintf(key, sizeof key, "%s%s%s", prefix, prefix[0] ? "." : "", (const char *)k->data.scalar.value);
        /* duplicate keys silently override in most YAML loaders; here they are a mistake */
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            yaml_node_t *k2 = yaml_document_get_node(doc, q->key);
            if (k2->type == YAML_SCALAR_NODE && strcmp((const char *)k2->data.scalar.value, (const char *)k->data.scalar.value) == 0)
                return key_error(c, line, key, "duplicate key (first set on line %d)", (int)k2->start_mark.line + 1);
        }
        const field *f = find_field(fs, n, key);
        const char *noop = !f && !prefix[0] && fs == fields ? axolotl_noop(key) : NULL;
        if (noop) {
            rl_warn("%s:%d: %s: ignored (%s)", c->file, line, key, noop);
            continue;
        }
        if (!f) return unknown_key(c, fs, n, key, line);
        if (f->kind == F_SECTION) {
            if (v->type == YAML_SCALAR_NODE && is_null_scalar((const char *)v->data.scalar.value, v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE))
                continue; /* "corpus:" with nothing under it */
            if (v->type != YAML_MAPPING_NODE)
                return key_error(c, (int)v->start_mark.line + 1, key, "expected a mapping of settings, got %s", describe_node(v));
            rl_status s = load_mapping(c, doc, v, fs, n, base, key);
            if (s) return s;
            continue;
        }
        rl_status s = load_value(c, doc, f, base, key, v);
        if (s) return s;
    }
    return RL_OK;
}

static rl_status load_value(load_ctx *c, yaml_document_t *doc, const field *f, void *base, const char *key, yaml_node_t *v) {
    int line = (int)v->start_mark.line + 1;
    if (f->kind == F_STRLIST || f->kind == F_PATHLIST) {
        rl_strlist *l = (rl_strlist *)((char *)base + f->off);
        free_strlist(l);
        if (v->type == YAML_MAPPING_NODE) return key_error(c, line, key, "expected a list, got a mapping");
        if (v->type == YAML_SCALAR_NODE) { /* one item may be written without brackets */
            const char *s = (const char *)v->data.scalar.value;
            if (is_null_scalar(s, v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)) return RL_OK;
            list_push(l, f->kind == F_PATHLIST ? resolve_path(c, s) : rl_xstrdup(s));
            return RL_OK;
        }
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
            yaml_node_t *e = yaml_document_get_node(doc, *it);
            if (e->type != YAML_SCALAR_NODE)
                return key_error(c, (int)e->start_mark.line + 1, key, "list items must be plain values, got %s", describe_node(e));
            const char *s = (const char *)e->data.scalar.value;
            list_push(l, f->kind == F_PATHLIST ? resolve_path(c, s) : rl_xstrdup(s));
        }
        return RL_OK;
    }
    if (f->kind == F_DATASETS) {
        rl_config *cfg = base;
        if (v->type == YAML_SCALAR_NODE && is_null_scalar((const char *)v->data.scalar.value, 1)) return RL_OK;
        if (v->type != YAML_SEQUENCE_NODE) return key_error(c, line, key, "expected a list of {path, type}, got %s", describe_node(v));
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
            yaml_node_t *e = yaml_document_get_node(doc, *it);
            int eline = (int)e->start_mark.line + 1;
            if (e->type != YAML_MAPPING_NODE) return key_error(c, eline, key, "each dataset must be a mapping with path and type");
            cfg->datasets = rl_xrealloc(cfg->datasets, (size_t)(cfg->n_datasets + 1) * sizeof *cfg->datasets);
            rl_dataset_cfg *d = &cfg->datasets[cfg->n_datasets++];
            memset(d, 0, sizeof *d);
            apply_defaults(dataset_fields, N_DATASET_FIELDS, d, c->dir);
            for (yaml_node_pair_t *p = e->data.mapping.pairs.start; p < e->data.mapping.pairs.top; p++) {
                yaml_node_t *k = yaml_document_get_node(doc, p->key);
                yaml_node_t *dv = yaml_document_get_node(doc, p->value);
                int kline = (int)k->start_mark.line + 1;
                char dkey[256];
                snprintf(dkey, sizeof dkey, "datasets[%d].%s", cfg->n_datasets - 1,
                         k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "?");
                const field *df = k->type == YAML_SCALAR_NODE ? find_field(dataset_fields, N_DATASET_FIELDS, (const char *)k->data.scalar.value) : NULL;
                if (!df) return key_error(c, kline, dkey, "unknown key (dataset keys: path, type, field_messages, split)");
                if (dv->type != YAML_SCALAR_NODE) return key_error(c, kline, dkey, "expected a value, got %s", describe_node(dv));
                rl_status s = set_scalar(c, df, d, dkey, (const char *)dv->data.scalar.value,
                                         dv->data.scalar.style == YAML_PLAIN_SCALAR_STYLE, kline);
                if (s) return s;
            }
            if (!d->path) return key_error(c, eline, key, "dataset %d has no path", cfg->n_datasets);
        }
        return RL_OK;
    }
    if (f->kind == F_INTLIST) {
        rl_intlist *l = (rl_intlist *)((char *)base + f->off);
        free(l->items);
        memset(l, 0, sizeof *l);
        if (v->type == YAML_SCALAR_NODE && is_null_scalar((const char *)v->data.scalar.value, v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE))
            return RL_OK;
        if (v->type != YAML_SEQUENCE_NODE) return key_error(c, line, key, "expected a list of integers such as [1, 3, 5], got %s", describe_node(v));
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
            yaml_node_t *e = yaml_document_get_node(doc, *it);
            if (e->type != YAML_SCALAR_NODE)
                return key_error(c, (int)e->start_mark.line + 1, key, "list items must be integers, got %s", describe_node(e));
            int x;
            field one = *f;
            one.kind = F_INT;
            one.off = 0;
            rl_status s = set_scalar(c, &one, &x, key, (const char *)e->data.scalar.value, 1, (int)e->start_mark.line + 1);
            if (s) return s;
            l->items = rl_xrealloc(l->items, (size_t)(l->n + 1) * sizeof *l->items);
            l->items[l->n++] = x;
        }
        return RL_OK;
    }
    if (f->kind == F_EVAL_MODELS) {
        rl_config *cfg = base;
        if (v->type == YAML_SCALAR_NODE && is_null_scalar((const char *)v->data.scalar.value, 1)) return RL_OK;
        if (v->type != YAML_SEQUENCE_NODE) return key_error(c, line, key, "expected a list of {name, model, lora, tokenizer}, got %s", describe_node(v));
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
            yaml_node_t *e = yaml_document_get_node(doc, *it);
            int eline = (int)e->start_mark.line + 1;
            if (e->type != YAML_MAPPING_NODE) return key_error(c, eline, key, "each model must be a mapping such as {name: raft, model: out/train}");
            cfg->eval.models = rl_xrealloc(cfg->eval.models, (size_t)(cfg->eval.n_models + 1) * sizeof *cfg->eval.models);
            rl_eval_model_cfg *m = &cfg->eval.models[cfg->eval.n_models++];
            memset(m, 0, sizeof *m);
            for (yaml_node_pair_t *p = e->data.mapping.pairs.start; p < e->data.mapping.pairs.top; p++) {
                yaml_node_t *k = yaml_document_get_node(doc, p->key);
                yaml_node_t *mv = yaml_document_get_node(doc, p->value);
                int kline = (int)k->start_mark.line + 1;
                char mkey[256];
                snprintf(mkey, sizeof mkey, "eval.models[%d].%s", cfg->eval.n_models - 1,
                         k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "?");
                const field *mf =
                    k->type == YAML_SCALAR_NODE ? find_field(eval_model_fields, N_EVAL_MODEL_FIELDS, (const char *)k->data.scalar.value) : NULL;
                if (!mf) return key_error(c, kline, mkey, "unknown key (model keys: name, model, lora, tokenizer)");
                if (mv->type != YAML_SCALAR_NODE) return key_error(c, kline, mkey, "expected a value, got %s", describe_node(mv));
                rl_status s = set_scalar(c, mf, m, mkey, (const char *)mv->data.scalar.value, mv->data.scalar.style == YAML_PLAIN_SCALAR_STYLE, kline);
                if (s) return s;
            }
            for (int i = 0; m->name && i < cfg->eval.n_models - 1; i++)
                if (cfg->eval.models[i].name && strcmp(cfg->eval.models[i].name, m->name) == 0)
                    return key_error(c, eline, key, "two models named \"%s\"", m->name);
        }
        return RL_OK;
    }
    if (v->type != YAML_SCALAR_NODE) {
        const char *want = f->kind == F_INT ? "an integer" : f->kind == F_FLOAT ? "a number" : f->kind == F_BOOL ? "true or false" : "a value";
        return key_error(c, line, key, "expected %s, got %s", want, describe_node(v));
    }
    return set_scalar(c, f, base, key, (const char *)v->data.scalar.value, v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE, line);
}

static rl_status validate(load_ctx *c, rl_config *cfg) {
    if (cfg->adapter && strcmp(cfg->adapter, "qlora") == 0) { // an Axolotl QLoRA config runs as LoRA
        rl_warn("%s: adapter: qlora: training a LoRA adapter on the unquantized base (no 4-bit base on a CPU; a 0.1-2B "
                "model fits in memory as it is)", c->file);
        free(cfg->adapter);
        cfg->adapter = rl_xstrdup("lora");
    }
    if (cfg->chunking.overlap >= cfg->chunking.size)
        return key_error(c, 0, "chunking.overlap", "must be smaller than chunking.size (%d), got %d", cfg->chunking.size,
                         cfg->chunking.overlap);
    static const char *modes[] = {"retrieval", "closed_book", "rag", "oracle", "raft"};
    for (int i = 0; i < cfg->eval.modes.n; i++) {
        int ok = 0;
        for (int m = 0; m < 5; m++) ok |= strcmp(cfg->eval.modes.items[i], modes[m]) == 0;
        if (!ok)
            return key_error(c, 0, "eval.modes", "unknown mode \"%s\" (retrieval, closed_book, rag, oracle, raft)", cfg->eval.modes.items[i]);
    }
    if (cfg->pretrain.enabled) {
        if (!cfg->pretrain.model_config)
            return key_error(c, 0, "pretrain.model_config", "must name the new model's config.json when pretrain.enabled is true");
        if (!cfg->base_model) cfg->base_model = rl_path_join(cfg->output_dir, "pretrain"); /* what the stage writes */
    }
    return RL_OK;
}

rl_status rl_config_load(rl_config *cfg, const char *path, rl_error *err) {
    char *dir = rl_path_dirname(path);
    rl_config_defaults(cfg, dir);
    free(dir);
    free(cfg->file);
    cfg->file = rl_xstrdup(path);
    load_ctx c = {cfg->file, cfg->dir, err};

    char *text;
    size_t len;
    rl_status s = rl_file_read(path, 16 << 20, &text, &len, err);
    if (s) {
        if (s == RL_ENOTFOUND) rl_fail(err, s, "config file %s not found (create one with `raftlm init`)", path);
        rl_config_free(cfg);
        return s;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        const yaml_mark_t *m = parser.problem ? &parser.problem_mark : &parser.context_mark;
        s = rl_fail(err, RL_ECONFIG, "%s:%d: YAML syntax error: %s%s%s", path, (int)m->line + 1,
                    parser.problem ? parser.problem : "unknown problem", parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        free(text);
        rl_config_free(cfg);
        return s;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root && root->type == YAML_MAPPING_NODE) {
        s = load_mapping(&c, &doc, root, fields, N_FIELDS, cfg, "");
    } else if (root && !(root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0)) {
        s = rl_fail(err, RL_ECONFIG, "%s:%d: expected a mapping of settings (key: value) at the top level", path,
                    (int)root->start_mark.line + 1);
    }
    if (s == RL_OK) s = validate(&c, cfg);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    free(text);
    if (s) rl_config_free(cfg);
    return s;
}

/* ---- as JSON (for the report) ------------------------------------------------------------- */

static void fields_to_json(json_t *obj, const field *fs, size_t n, const void *base, int nested) {
    for (size_t i = 0; i < n; i++) {
        const field *f = &fs[i];
        const void *p = (const char *)base + f->off;
        const char *dot = nested ? NULL : strchr(f->key, '.');
        json_t *dst = obj;
        if (dot) { /* "chunking.size" goes to {"chunking": {"size": ...}} */
            char sec[64];
            snprintf(sec, sizeof sec, "%.*s", (int)(dot - f->key), f->key);
            dst = json_object_get(obj, sec);
            if (!dst) json_object_set_new(obj, sec, dst = json_object());
        }
        const char *key = dot ? dot + 1 : f->key;
        json_t *v = NULL;
        switch (f->kind) {
        case F_SECTION: continue;
        case F_INT: v = json_integer(*(const int *)p); break;
        case F_INT64: v = json_integer(*(const long long *)p); break;
        case F_FLOAT: v = json_real(*(const double *)p); break;
        case F_BOOL: v = json_boolean(*(const bool *)p); break;
        case F_STR:
        case F_PATH:
        case F_ENUM: v = *(char *const *)p ? json_string(*(char *const *)p) : json_null(); break;
        case F_STRLIST:
        case F_PATHLIST: {
            const rl_strlist *l = p;
            v = json_array();
            for (int k = 0; k < l->n; k++) json_array_append_new(v, json_string(l->items[k]));
            break;
        }
        case F_INTLIST: {
            const rl_intlist *l = p;
            v = json_array();
            for (int k = 0; k < l->n; k++) json_array_append_new(v, json_integer(l->items[k]));
            break;
        }
        case F_DATASETS: {
            const rl_config *cfg = base;
            v = json_array();
            for (int k = 0; k < cfg->n_datasets; k++) {
                json_t *d = json_object();
                fields_to_json(d, dataset_fields, N_DATASET_FIELDS, &cfg->datasets[k], 1);
                json_array_append_new(v, d);
            }
            break;
        }
        case F_EVAL_MODELS: {
            const rl_config *cfg = base;
            v = json_array();
            for (int k = 0; k < cfg->eval.n_models; k++) {
                json_t *d = json_object();
                fields_to_json(d, eval_model_fields, N_EVAL_MODEL_FIELDS, &cfg->eval.models[k], 1);
                json_array_append_new(v, d);
            }
            break;
        }
        }
        json_object_set_new(dst, key, v);
    }
}

char *rl_config_to_json(const rl_config *cfg) {
    json_t *o = json_object();
    fields_to_json(o, fields, N_FIELDS, cfg, 0);
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    return text; /* jansson allocates with malloc: free() releases it */
}

char *rl_config_store_path(const rl_config *cfg) { return rl_path_join(cfg->output_dir, "store.db"); }

/* ---- the template --------------------------------------------------------------------------- */

static void yaml_scalar_out(rl_buf *b, const char *v) {
    int plain = v[0] && !strchr(":#{}[],&*!|>'\"%@`", v[0]) && !strstr(v, ": ") && !strstr(v, " #") && v[strlen(v) - 1] != ' ' &&
                v[0] != ' ' && strcasecmp(v, "null") != 0 && strcasecmp(v, "true") != 0 && strcasecmp(v, "false") != 0;
    if (plain) rl_buf_puts(b, v);
    else {
        rl_buf_putc(b, '"');
        for (const char *p = v; *p; p++) {
            if (*p == '"' || *p == '\\') rl_buf_putc(b, '\\');
            rl_buf_putc(b, *p);
        }
        rl_buf_putc(b, '"');
    }
}

static void default_out(rl_buf *b, const field *f) {
    if (f->kind == F_STRLIST || f->kind == F_PATHLIST) {
        rl_buf_putc(b, '[');
        const char *p = f->def;
        int first = 1;
        while (*p) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            char *item = rl_xstrndup(p, len);
            if (!first) rl_buf_puts(b, ", ");
            yaml_scalar_out(b, item);
            free(item);
            first = 0;
            p += len + (comma ? 1 : 0);
        }
        rl_buf_putc(b, ']');
    } else if (f->kind == F_STR || f->kind == F_PATH || f->kind == F_ENUM) {
        if (strcmp(f->def, "null") == 0) rl_buf_puts(b, "null");
        else if (f->kind == F_ENUM) rl_buf_puts(b, f->def); // an enum's plain word reads back as itself (bf16: false)
        else yaml_scalar_out(b, f->def);
    } else {
        rl_buf_puts(b, f->def);
    }
}

char *rl_config_template(void) {
    rl_buf b = {0};
    rl_buf_puts(&b,
                "# raftlm.yaml - one file describes the whole RAFT project.\n"
                "# Every key is listed with its default; delete what you do not change.\n"
                "# Relative paths are relative to this file's folder.\n"
                "# Training keys use Axolotl's names. Docs: docs/config.md\n\n");
    for (size_t i = 0; i < N_FIELDS; i++) {
        const field *f = &fields[i];
        const char *dot = strchr(f->key, '.');
        if (f->kind == F_SECTION) {
            rl_buf_printf(&b, "\n%s:  # %s\n", f->key, f->doc);
            continue;
        }
        const char *name = dot ? dot + 1 : f->key;
        const char *indent = dot ? "  " : "";
        if (f->kind == F_DATASETS) {
            rl_buf_printf(&b, "%s# %s\n%s# e.g.\n%s#   - path: out/datasets/raft_train.jsonl\n%s#     type: raft\n", indent, f->doc,
                          indent, indent, indent);
            rl_buf_printf(&b, "%s%s: []\n", indent, name);
            continue;
        }
        if (f->kind == F_EVAL_MODELS) {
            rl_buf_printf(&b, "%s# %s\n%s# e.g.\n%s#   - {name: base, model: models/student}\n%s#   - {name: raft, model: out/train}\n", indent,
                          f->doc, indent, indent, indent);
            rl_buf_printf(&b, "%s%s: []\n", indent, name);
            continue;
        }
        if (f->kind == F_INTLIST) {
            rl_buf_printf(&b, "%s# %s\n%s%s: []\n", indent, f->doc, indent, name);
            continue;
        }
        rl_buf_printf(&b, "%s# %s", indent, f->doc);
        if (f->kind == F_ENUM) {
            rl_buf_puts(&b, " (");
            for (const char *p = f->values; *p; p++) rl_buf_puts(&b, *p == '|' ? ", " : (char[]){*p, 0});
            rl_buf_puts(&b, ")");
        }
        rl_buf_printf(&b, "\n%s%s: ", indent, name);
        default_out(&b, f);
        rl_buf_putc(&b, '\n');
    }
    return rl_buf_take(&b);
}
