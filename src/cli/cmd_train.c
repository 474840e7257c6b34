/* cmd_train.c - `raftlm train -c raftlm.yaml`: fine-tunes base_model on the configured datasets
 * (LoRA or full), writing checkpoints, train_log.jsonl and the result (a PEFT adapter, or an
 * HF model folder) into <output_dir>/train. --resume continues from the newest checkpoint.
 * base_model_init: random trains a new model of base_model's shape (its config.json, or the
 * header of a checkpoint) from scratch.
 *
 * --stage picks what is trained (the stages of `raftlm run`):
 *   raft      (default) base_model on the configured datasets (the RAFT examples) -> <output_dir>/train
 *   pretrain  a new model of pretrain.model_config's shape, from a random init, on the corpus
 *             text (a tokenizer trained on it too, unless `tokenizer` is set) -> <output_dir>/pretrain
 *   dsf       base_model on question -> answer without documents (the RAFT paper's baseline)
 *             -> <output_dir>/dsf */
#include <cblas.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/config.h"
#include "cli/student.h"
#include "train/train.h"

static const char *USAGE = "[-c raftlm.yaml] [--stage raft|pretrain|dsf] [--resume] [--threads N]";

enum { STAGE_RAFT, STAGE_PRETRAIN, STAGE_DSF };

/* tokenizer.json and tokenizer_config.json of folder from, when it has them, into folder to. */
static rl_status copy_tokenizer(const char *from, const char *to, rl_error *err) {
    static const char *const names[] = {"tokenizer.json", "tokenizer_config.json"};
    rl_status s = RL_OK;
    for (int i = 0; i < 2 && !s; i++) {
        char *src = rl_path_join(from, names[i]), *dst = rl_path_join(to, names[i]), *data;
        size_t len;
        if (rl_file_read(src, 0, &data, &len, NULL) == RL_OK) {
            s = rl_file_write_atomic(dst, data, len, err);
            free(data);
        }
        free(src), free(dst);
    }
    return s;
}

/* pretrain: the corpus text as a completion dataset and, without `tokenizer:`, a BPE tokenizer
 * trained on it, both written into place; *tok_path and *ds_path are malloc'ed. */
static rl_status pretrain_prepare(const rl_config *cfg, const char *out, char **tok_path, char **ds_path, rl_error *err) {
    char *db = rl_config_store_path(cfg);
    cli_texts t;
    rl_status s = cli_student_corpus(cfg, db, &t, err);
    free(db);
    if (s) return s;
    rl_info("pretraining text: %zu passages (%zu chunks of held-out documents left out)", t.n, t.n_held_out);
    char *ds_dir = rl_path_join(cfg->output_dir, "datasets");
    *ds_path = rl_path_join(ds_dir, "pretrain_train.jsonl");
    s = rl_mkdir_p(ds_dir, err);
    if (!s) s = cli_student_write_completion(&t, cfg->pretrain.copy_fraction, cfg->pretrain.counterfactual_copies,
                                                 (uint64_t)cfg->seed, *ds_path, err);
    if (!s) s = rl_mkdir_p(out, err);
    if (!s && cfg->tokenizer) *tok_path = rl_xstrdup(cfg->tokenizer);
    else if (!s) {
        char *json;
        double t0 = rl_now();
        /* the RAFT layout's markup once per chunk, so that the merges cover it: otherwise each
         * <DOCUMENT> costs ten tokens of every fine-tuning example (a quarter of a short one) */
        static const char markup[] = "<DOCUMENT>\n</DOCUMENT>\n##Reason: ##begin_quote####end_quote##\n<ANSWER>: ";
        size_t n = t.n;
        const char **texts = rl_xmalloc((2 * n + 1) * sizeof *texts);
        size_t *lens = rl_xmalloc((2 * n + 1) * sizeof *lens);
        for (size_t i = 0; i < n; i++) {
            texts[i] = t.text[i], lens[i] = t.len[i];
            texts[n + i] = markup, lens[n + i] = sizeof markup - 1;
        }
        s = rl_tok_train_bpe(texts, lens, 2 * n, cfg->pretrain.vocab_size, &json, err);
        free(texts), free(lens);
        *tok_path = rl_path_join(out, "tokenizer.json");
        if (!s) s = rl_file_write_atomic(*tok_path, json, strlen(json), err);
        if (!s) rl_info("trained a BPE tokenizer of %d ids in %.1f s: %s", cfg->pretrain.vocab_size, rl_now() - t0, *tok_path);
        free(json);
    }
    free(ds_dir);
    cli_texts_free(&t);
    return s;
}

int cmd_train(int argc, char **argv) {
    static const struct option opts[] = {{"config", required_argument, 0, 'c'}, {"resume", no_argument, 0, 'r'},
                                         {"threads", required_argument, 0, 'j'}, {"stage", required_argument, 0, 's'},
                                         {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    const char *config = "raftlm.yaml";
    int resume = 0, threads = -1, c, stage = STAGE_RAFT;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'r': resume = 1; break;
        case 's':
            if (strcmp(optarg, "raft") == 0) stage = STAGE_RAFT;
            else if (strcmp(optarg, "pretrain") == 0) stage = STAGE_PRETRAIN;
            else if (strcmp(optarg, "dsf") == 0) stage = STAGE_DSF;
            else return cli_usage("train", USAGE);
            break;
        case 'j': threads = atoi(optarg); break;
        case 'h': printf("usage: raftlm train %s\n", USAGE); return 0;
        default: return cli_usage("train", USAGE);
        }
    }
    if (optind < argc) return cli_usage("train", USAGE);
    rl_error err = {0};
    rl_config cfg;
    if (rl_config_load(&cfg, config, &err)) return cli_report(&err);
    rl_status s = RL_OK;
    cli_model cm = {0};
    rl_dataset train = {0}, val = {0};
    char *out = rl_path_join(cfg.output_dir, stage == STAGE_PRETRAIN ? "pretrain" : stage == STAGE_DSF ? "dsf" : "train");
    char *default_ds = NULL, *tok_owned = NULL;
    int lora = stage != STAGE_PRETRAIN && strcmp(cfg.adapter, "lora") == 0;
    /* what a stage changes of the training keys */
    int max_steps = cfg.max_steps, seq_len = cfg.sequence_len, mbs = cfg.micro_batch_size;
    int accum = cfg.gradient_accumulation_steps, warmup = cfg.warmup_steps, epochs = cfg.num_epochs;
    double lr = cfg.learning_rate;
    if (stage == STAGE_PRETRAIN) {
        max_steps = cfg.pretrain.max_steps, seq_len = cfg.pretrain.sequence_len, mbs = cfg.pretrain.micro_batch_size;
        accum = 1, warmup = cfg.pretrain.warmup_steps, lr = cfg.pretrain.learning_rate, epochs = 100000;
    } else if (stage == STAGE_DSF) {
        max_steps = cfg.dsf.max_steps, lr = cfg.dsf.learning_rate, epochs = 100000;
    }
    if (stage == STAGE_PRETRAIN && !cfg.pretrain.model_config)
        s = rl_fail(&err, RL_ECONFIG, "%s: pretrain.model_config is not set", config);
    else if (stage != STAGE_PRETRAIN && !cfg.base_model) s = rl_fail(&err, RL_ECONFIG, "%s: base_model is not set", config);
    else if (strncmp(cfg.optimizer, "adamw", 5) != 0)
        s = rl_fail(&err, RL_EUNSUPPORTED, "%s: optimizer %s is not supported (adamw)", config, cfg.optimizer);
    else if (rl_sched_parse(cfg.lr_scheduler) < 0)
        s = rl_fail(&err, RL_EUNSUPPORTED, "%s: lr_scheduler %s is not supported", config, cfg.lr_scheduler);
    if (!s && stage == STAGE_PRETRAIN) {
        s = pretrain_prepare(&cfg, out, &tok_owned, &default_ds, &err);
        // the shape: a folder holding config.json, or the file itself
        char *shape = rl_path_is_dir(cfg.pretrain.model_config) ? rl_xstrdup(cfg.pretrain.model_config)
                                                                : rl_path_dirname(cfg.pretrain.model_config);
        if (!s) s = cli_model_open_config(&cm, shape, tok_owned, threads >= 0 ? threads : cfg.threads, &err);
        free(shape);
        if (!s && rl_tok_vocab_size(cm.tok) > cm.model.cfg.vocab_size)
            s = rl_fail(&err, RL_ECONFIG, "%s: the tokenizer has %d ids but pretrain.model_config's vocab_size is %d", config,
                        rl_tok_vocab_size(cm.tok), cm.model.cfg.vocab_size);
        if (!s) {
            rl_model_init_random(&cm.model, (uint64_t)cfg.seed, 0.02f);
            rl_info("pretraining a %s model of %d layers, width %d, from a random init", cm.model.cfg.arch, cm.model.cfg.n_layers,
                    cm.model.cfg.dim);
        }
    } else if (!s) {
        // a Hugging Face folder carries its tokenizer; a single-file model needs `tokenizer:`
        const char *tokp = cfg.tokenizer ? cfg.tokenizer : rl_path_is_dir(cfg.base_model) ? cfg.base_model : NULL;
        int random = strcmp(cfg.base_model_init, "random") == 0;
        // random: the shape of base_model (a folder's config.json, or a checkpoint's header), new weights
        s = random && rl_path_is_dir(cfg.base_model)
                ? cli_model_open_config(&cm, cfg.base_model, tokp, threads >= 0 ? threads : cfg.threads, &err)
                : cli_model_open(&cm, cfg.base_model, NULL, tokp, threads >= 0 ? threads : cfg.threads, &err);
        if (!s && random) {
            rl_model_init_random(&cm.model, (uint64_t)cfg.seed, 0.02f);
            rl_info("training a %s model of %d layers from a random init", cm.model.cfg.arch, cm.model.cfg.n_layers);
        }
    }
    if (!s) openblas_set_num_threads(rl_gemm_blas_threads(rl_pool_size(cm.pool))); // tensor.h says why
    if (!s && strcmp(cfg.bf16, "false") != 0) { /* every stage, pretraining included */
        int asked = strcmp(cfg.bf16, "true") == 0;
        if (rl_gemm_has_bf16()) cm.model.matmul = RL_GEMM_BF16;
        else if (asked) rl_warn("bf16: this CPU has no avx512_bf16; the products run in float32");
        else rl_info("bf16: auto: this CPU has no avx512_bf16; training in float32");
    }
    if (!s && cfg.chat_template) s = rl_tok_set_chat_template(cm.tok, cfg.chat_template, &err);
    if (!s && stage == STAGE_DSF) {
        char *raft = rl_path_join(cfg.output_dir, "datasets/raft_train.jsonl");
        size_t n;
        default_ds = rl_path_join(cfg.output_dir, "datasets/dsf_train.jsonl");
        s = cli_student_dsf_data(raft, default_ds, &n, &err);
        if (!s) rl_info("dsf: %zu questions without documents (%s)", n, default_ds);
        free(raft);
    }
    if (!s && stage != STAGE_RAFT) // the stage's own data
        s = rl_dataset_load(&train, default_ds, stage == STAGE_PRETRAIN ? RL_DS_COMPLETION : RL_DS_RAFT, cm.tok,
                            cfg.train_on_inputs, seq_len, cm.model.cfg.vocab_size, &err);
    for (int i = 0; !s && stage == STAGE_RAFT && i < (cfg.n_datasets ? cfg.n_datasets : 1); i++) {
        const char *path, *type;
        if (cfg.n_datasets) path = cfg.datasets[i].path, type = cfg.datasets[i].type;
        else path = default_ds = rl_path_join(cfg.output_dir, "datasets/raft_train.jsonl"), type = "raft";
        int t = rl_ds_type_parse(type ? type : "completion");
        if (t < 0) s = rl_fail(&err, RL_EUNSUPPORTED, "%s: dataset type %s is not supported", config, type);
        else s = rl_dataset_load(&train, path, (rl_ds_type)t, cm.tok, cfg.train_on_inputs, seq_len,
                                 cm.model.cfg.vocab_size, &err);
    }
    if (!s) {
        rl_dataset_split(&train, &val, cfg.val_set_size, (uint64_t)cfg.seed);
        rl_info("%zu training and %zu validation examples", train.n, val.n);
    }
    if (!s && lora) {
        if (cfg.lora_model_dir) s = rl_lora_load_peft(&cm.lora, &cm.model.cfg, cfg.lora_model_dir, &err);
        else {
            unsigned targets = 0;
            for (int i = 0; i < cfg.lora_target_modules.n; i++) {
                unsigned t = rl_lora_parse_targets(cfg.lora_target_modules.items[i]);
                if (!t) {
                    s = rl_fail(&err, RL_ECONFIG, "%s: lora_target_modules: '%s' is not a linear layer (q_proj, k_proj, v_proj, "
                                "o_proj, gate_proj, up_proj, down_proj, all-linear)", config, cfg.lora_target_modules.items[i]);
                    break;
                }
                targets |= t;
            }
            if (!s) s = rl_lora_init(&cm.lora, &cm.model.cfg, cfg.lora_r, (float)cfg.lora_alpha, 0, targets,
                                     (uint64_t)cfg.seed, 0, &err);
        }
        if (!s) cm.model.lora = &cm.lora, cm.has_lora = 1, cm.lora.dropout = (float)cfg.lora_dropout;
    }
    if (!s) {
        rl_train_opts o = {.output_dir = out, .base_model = cfg.base_model, .lora = lora,
                           .sequence_len = seq_len, .sample_packing = cfg.sample_packing || stage == STAGE_PRETRAIN,
                           .micro_batch_size = mbs, .gradient_accumulation_steps = accum, .num_epochs = epochs,
                           .max_steps = max_steps, .learning_rate = (float)lr,
                           .lr_scheduler = (rl_sched)rl_sched_parse(cfg.lr_scheduler), .warmup_steps = warmup,
                           .weight_decay = (float)cfg.weight_decay, .max_grad_norm = (float)cfg.max_grad_norm,
                           .adam_beta1 = (float)cfg.adam_beta1, .adam_beta2 = (float)cfg.adam_beta2,
                           .adam_epsilon = (float)cfg.adam_epsilon,
                           .eval_steps = cfg.eval_steps, .save_steps = cfg.save_steps, .seed = (uint64_t)cfg.seed,
                           .resume = resume, .gradient_checkpointing = cfg.gradient_checkpointing};
        rl_train_result r;
        s = rl_train_run(&cm.model, &train, &val, &o, &r, &err);
        // a fully trained model folder is used on its own (eval, serve): give it base_model's tokenizer
        if (!s && !lora && stage != STAGE_PRETRAIN && rl_path_is_dir(cfg.base_model)) s = copy_tokenizer(cfg.base_model, out, &err);
        if (!s) {
            if (!isnan(r.eval_loss))
                printf("trained %d steps: train loss %.4f -> %.4f, eval loss %.4f -> %.4f; wrote %s\n", r.steps, r.first_loss,
                       r.last_loss, r.first_eval_loss, r.eval_loss, out);
            else printf("trained %d steps: train loss %.4f -> %.4f; wrote %s\n", r.steps, r.first_loss, r.last_loss, out);
            // a full fine-tune is a model folder of its own: it gets the tokenizer too
            if (!lora) cli_save_tokenizer(cfg.tokenizer ? cfg.tokenizer : rl_path_is_dir(cfg.base_model) ? cfg.base_model : NULL, out);
        }
    }
    rl_dataset_free(&val);
    rl_dataset_free(&train);
    cli_model_close(&cm);
    rl_config_free(&cfg);
    free(default_ds);
    free(tok_owned);
    free(out);
    return s ? cli_report(&err) : 0;
}
