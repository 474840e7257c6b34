/* cli.h - internal header of src/cli: one function per verb (cmd_<verb>.c), each taking the
 * arguments after the verb (argv[0] is the verb) and returning the process exit code. */
#ifndef RL_CLI_H
#define RL_CLI_H

#include "cli/config.h"
#include "core/core.h"
#include "retrieve/retrieve.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

typedef struct rl_cli_verb {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} rl_cli_verb;

int cmd_init(int argc, char **argv);
int cmd_ingest(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int bench_ann(int argc, char **argv); /* `raftlm bench ann`, bench_ann.c */
int bench_embed(int argc, char **argv); /* `raftlm bench embed`, bench_embed.c */
int cmd_convert(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_ask(int argc, char **argv);
int cmd_quantize(int argc, char **argv);

/* Prints "raftlm: <msg>" to stderr and returns the exit code for that status (1; 2 for usage). */
int cli_report(const rl_error *err);
/* Exit code 2 with a usage line. */
int cli_usage(const char *verb, const char *usage);

/* A model opened for the model verbs (model_util.c). */
typedef struct cli_model {
    rl_model model;
    rl_lora lora;
    int has_lora;
    rl_tokenizer *tok; /* NULL without --tokenizer */
    rl_pool *pool;
} cli_model;
rl_status cli_model_open(cli_model *cm, const char *model_path, const char *lora_dir, const char *tok_path,
                         int threads, rl_error *err);
/* A model of the shape in dir/config.json with zeroed weights (for a random init). */
rl_status cli_model_open_config(cli_model *cm, const char *dir, const char *tok_path, int threads, rl_error *err);
void cli_model_close(cli_model *cm);
/* Writes the tokenizer at tok_path (a tokenizer.json, a folder, a GGUF file or a llama2.c
 * tokenizer.bin) into the model folder dir as tokenizer.json + tokenizer_config.json, so that the
 * folder loads on its own; a tokenizer that cannot be written is a warning, not an error. */
void cli_save_tokenizer(const char *tok_path, const char *dir);
/* The tokenizer a model brings along: model_path itself when it is a folder holding
 * tokenizer.json (or tokenizer.bin) or a GGUF file with a vocabulary, else NULL. */
const char *cli_model_tokenizer(const char *model_path);
/* BOS (when the tokenizer or model has one) + the text's tokens, without EOS; caller frees. */
rl_status cli_encode_prompt(const cli_model *cm, const char *text, int32_t **out, size_t *n, rl_error *err);
/* A tokenizer as a GGUF vocabulary: a llama2.c tokenizer.bin ("llama": pieces with U+2581 for
 * spaces) or a byte-level BPE tokenizer.json ("gpt2": tokens, merges, added tokens, the
 * pre-tokenizer's llama.cpp name; a folder means its tokenizer.json). n_vocab: the model's
 * vocabulary; ids the tokenizer lacks become "[PADn]" tokens, as llama.cpp's converter pads. */
typedef struct cli_vocab {
    rl_gguf_vocab v;
    char **tokens;
    float *scores;
    int32_t *types;
    char **merges;
} cli_vocab;
rl_status cli_vocab_load(cli_vocab *vb, const char *path, int n_vocab, rl_error *err);
rl_status cli_vocab_from_llama2c(cli_vocab *vb, const char *path, int n_vocab, rl_error *err);
rl_status cli_vocab_from_tokenizer_json(cli_vocab *vb, const char *path, int n_vocab, rl_error *err);
void cli_vocab_free(cli_vocab *vb);
/* What serve and ask share (cmd_serve.c): the model (base_model, or the fine-tuned result in
 * <output_dir>/train when there is one), tokenizer, adapter and store, from a config and flags. */
typedef struct cli_rag {
    rl_config cfg;
    int has_cfg, opened;
    cli_model cm;
    rl_store *store; /* NULL without a store */
    char *model_name;
    struct rl_qmodel *q; /* with quant q8_0 / q4_0: the quantized matrices (adapter merged first) */
} cli_rag;
/* In two steps (serve listens in between): the config (./raftlm.yaml when config is NULL and no
 * model is given), then the model, tokenizer, adapter, quantized copy and store. cli_rag_close
 * releases either. quant: NULL / "f32" (float32), "q8_0" or "q4_0". */
rl_status cli_rag_config(cli_rag *r, const char *config, const char *model, rl_error *err);
rl_status cli_rag_load(cli_rag *r, const char *model, const char *tok, const char *lora, const char *store_dir, int no_store,
                       int threads, const char *quant, rl_error *err);
rl_status cli_rag_open(cli_rag *r, const char *config, const char *model, const char *tok, const char *lora,
                       const char *store_dir, int no_store, int threads, const char *quant, rl_error *err);
void cli_rag_close(cli_rag *r);
/* The models `raftlm eval` evaluates (cmd_eval.c), resolved from the flags (--model, --lora,
 * --tokenizer, --name: one model), else eval.models, else base_model (unless it is only a shape,
 * base_model_init: random) and the trained result in <output_dir>/train when there is one.
 * A model path that is a PEFT adapter folder becomes that adapter on its base (the adapter's
 * base_model_name_or_path when that exists, else base_model). Names are unique. */
typedef struct cli_eval_model {
    char *name, *model, *lora, *tokenizer; /* lora, tokenizer may be NULL */
} cli_eval_model;
typedef struct cli_eval_flags {
    const char *model, *lora, *tokenizer, *name;
} cli_eval_flags;
rl_status cli_eval_models(const rl_config *cfg, const cli_eval_flags *flags, cli_eval_model **out, int *n, rl_error *err);
void cli_eval_models_free(cli_eval_model *m, int n);
/* "1,2,3" -> ids (caller frees). */
rl_status cli_parse_tokens(const char *list, int32_t **out, size_t *n, rl_error *err);

#endif
