/* cmd_train.c - `raftlm train -c raftlm.yaml`: fine-tunes base_model on the configured datasets
 * (LoRA or full), writing checkpoints, train_log.jsonl and the result (a PEFT adapter, or an
 * HF model folder) into <output_dir>/train. --resume continues from the newest checkpoint.
 * base_model_init: random trains a new model of base_model's shape (its config.json, or the
 * header of a checkpoint) from scratch. */
#include <cblas.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/config.h"
#include "train/train.h"

static const char *USAGE = "[-c raftlm.yaml] [--resume] [--threads N]";

int cmd_train(int argc, char **argv) {
    static const struct option opts[] = {{"config", required_argument, 0, 'c'}, {"resume", no_argument, 0, 'r'},
                                         {"threads", required_argument, 0, 'j'}, {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *config = "raftlm.yaml";
    int resume = 0, threads = -1, c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'r': resume = 1; break;
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
    char *out = rl_path_join(cfg.output_dir, "train"), *default_ds = NULL;
    int lora = strcmp(cfg.adapter, "lora") == 0;
    if (!cfg.base_model) s = rl_fail(&err, RL_ECONFIG, "%s: base_model is not set", config);
    else if (strncmp(cfg.optimizer, "adamw", 5) != 0)
        s = rl_fail(&err, RL_EUNSUPPORTED, "%s: optimizer %s is not supported (adamw)", config, cfg.optimizer);
    else if (rl_sched_parse(cfg.lr_scheduler) < 0)
        s = rl_fail(&err, RL_EUNSUPPORTED, "%s: lr_scheduler %s is not supported", config, cfg.lr_scheduler);
    if (!s) {
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
        if (!s) openblas_set_num_threads(rl_gemm_blas_threads(rl_pool_size(cm.pool))); // tensor.h says why
        if (!s && cfg.bf16) {
            cm.model.matmul = RL_GEMM_BF16;
            if (!rl_gemm_has_bf16()) rl_warn("bf16: this CPU has no avx512_bf16; the products run in float32");
        }
    }
    if (!s && cfg.chat_template) s = rl_tok_set_chat_template(cm.tok, cfg.chat_template, &err);
    for (int i = 0; !s && i < (cfg.n_datasets ? cfg.n_datasets : 1); i++) {
        const char *path, *type;
        if (cfg.n_datasets) path = cfg.datasets[i].path, type = cfg.datasets[i].type;
        else path = default_ds = rl_path_join(cfg.output_dir, "datasets/raft_train.jsonl"), type = "raft";
        int t = rl_ds_type_parse(type ? type : "completion");
        if (t < 0) s = rl_fail(&err, RL_EUNSUPPORTED, "%s: dataset type %s is not supported", config, type);
        else s = rl_dataset_load(&train, path, (rl_ds_type)t, cm.tok, cfg.train_on_inputs, cfg.sequence_len,
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
                           .sequence_len = cfg.sequence_len, .sample_packing = cfg.sample_packing,
                           .micro_batch_size = cfg.micro_batch_size,
                           .gradient_accumulation_steps = cfg.gradient_accumulation_steps, .num_epochs = cfg.num_epochs,
                           .max_steps = cfg.max_steps, .learning_rate = (float)cfg.learning_rate,
                           .lr_scheduler = (rl_sched)rl_sched_parse(cfg.lr_scheduler), .warmup_steps = cfg.warmup_steps,
                           .weight_decay = (float)cfg.weight_decay, .max_grad_norm = (float)cfg.max_grad_norm,
                           .eval_steps = cfg.eval_steps, .save_steps = cfg.save_steps, .seed = (uint64_t)cfg.seed,
                           .resume = resume, .gradient_checkpointing = cfg.gradient_checkpointing};
        rl_train_result r;
        s = rl_train_run(&cm.model, &train, &val, &o, &r, &err);
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
    free(out);
    return s ? cli_report(&err) : 0;
}
