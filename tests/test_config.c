/* test_config.c - raftlm.yaml: defaults, types, ranges, unknown keys, syntax errors (each
 * with file:line), path resolution and the `raftlm init` template. */
#include "test.h"

#include "cli/config.h"

static rl_status load_text(const char *yaml, rl_config *cfg, rl_error *err, char **dir_out) {
    char *dir = t_tmpdir();
    t_write_str(dir, "raftlm.yaml", yaml);
    char *path = rl_path_join(dir, "raftlm.yaml");
    rl_status s = rl_config_load(cfg, path, err);
    free(path);
    if (dir_out) *dir_out = dir;
    else free(dir);
    return s;
}

TEST(config_defaults_and_values) {
    rl_config cfg;
    rl_error err = {0};
    char *dir;
    CHECK_OK(load_text("base_model: models/student\nlora_r: 8\nlearning_rate: 1e-4\nsample_packing: no\n"
                       "chunking:\n  size: 128\n  overlap: 16\nlora_target_modules: [q_proj, v_proj]\n"
                       "corpus:\n  paths: [docs/, extra.md]\n",
                       &cfg, &err, &dir));
    CHECK_EQ_INT(cfg.lora_r, 8);
    CHECK(cfg.learning_rate == 1e-4);
    CHECK(!cfg.sample_packing);
    CHECK_EQ_INT(cfg.chunking.size, 128);
    CHECK_EQ_INT(cfg.chunking.overlap, 16);
    CHECK_EQ_INT(cfg.lora_target_modules.n, 2);
    CHECK_EQ_STR(cfg.lora_target_modules.items[1], "v_proj");
    /* defaults */
    CHECK_EQ_INT(cfg.retrieval.k, 5);
    CHECK_EQ_STR(cfg.teacher.type, "extractive");
    CHECK(cfg.raft.p == 0.8);
    CHECK_EQ_INT(cfg.serve.port, 8080);
    /* relative paths resolve against the config's folder */
    char *want = t_fmt("%s/models/student", dir);
    CHECK_EQ_STR(cfg.base_model, want);
    free(want);
    want = t_fmt("%s/out", dir);
    CHECK_EQ_STR(cfg.output_dir, want);
    free(want);
    CHECK_EQ_INT(cfg.corpus.paths.n, 2);
    want = t_fmt("%s/extra.md", dir);
    CHECK_EQ_STR(cfg.corpus.paths.items[1], want);
    free(want);
    rl_config_free(&cfg);
}

TEST(config_wrong_type_names_file_line_key) {
    rl_config cfg;
    rl_error err = {0};
    CHECK_EQ_INT(load_text("# comment\nbase_model: x\n\n\n\n\n\n\n\n\n\nlora_r: abc\n", &cfg, &err, NULL), RL_ECONFIG);
    CHECK_CONTAINS(err.msg, "raftlm.yaml:12: lora_r: expected a positive integer, got \"abc\"");
}

TEST(config_out_of_range_and_enum) {
    rl_config cfg;
    rl_error err = {0};
    CHECK_EQ_INT(load_text("serve:\n  port: 70000\n", &cfg, &err, NULL), RL_ECONFIG);
    CHECK_CONTAINS(err.msg, "raftlm.yaml:2: serve.port: must be from 1 to 65535, got 70000");
    CHECK_EQ_INT(load_text("raft:\n  p: 1.5\n", &cfg, &err, NULL), RL_ECONFIG);
    CHECK_CONTAINS(err.msg, ":2: raft.p: must be from 0 to 1");
    CHECK_EQ_INT(load_text("lr_scheduler: wavy\n", &cfg, &err, NULL), RL_ECONFIG);
    CHECK_CONTAINS(err.msg, ":1: lr_scheduler: expected one of constant, linear, cosine; got \"wavy\"");
    CHECK_EQ_INT(load_text("sample_packing: maybe\n", &cfg, &err, NULL), RL_ECONFIG);
    CHECK_CONTAINS(err.msg, ":1: sample_packing: expected true or false");
    CHECK_EQ_INT(load_text("chunking: {size: 64, overlap: 64}\n", &cfg, &err, NULL), RL_ECONFIG);
    CHECK_CONTAINS(err.msg, "chunking.overlap: must be smaller than chunking.size");
    CHECK_EQ_INT(load_text("lora_r: [1, 2]\n", &cfg, &err, NULL), RL_ECONFIG);
    CHECK_CONTAINS(err.msg, ":1: lora_r: expected an integer, got a list");
}

TEST(config_unknown_key_suggests) {
    rl_config cfg;
    rl_error err = {0};
    CHECK_EQ_INT(load_text("lora_r: 8\nlora_alhpa: 16\n", &cfg, &err, NULL), RL_ECONFIG);
    CHECK_CONTAINS(err.msg, "raftlm.yaml:2: lora_alhpa: unknown key (did you mean 'lora_alpha'?)");
    CHECK_EQ_INT(load_text("chunking:\n  size: 100\n  sise: 3\n", &cfg, &err, NULL), RL_ECONFIG);
    CHECK_CONTAINS(err.msg, ":3: chunking.sise: unknown key (did you mean 'chunking.size'?)");
    CHECK_EQ_INT(load_text("completely_unrelated_setting: 1\n", &cfg, &err, NULL), RL_ECONFIG);
    CHECK_CONTAINS(err.msg, ":1: completely_unrelated_setting: unknown key");
    CHECK_EQ_INT(load_text("seed: 1\nseed: 2\n", &cfg, &err, NULL), RL_ECONFIG);
    CHECK_CONTAINS(err.msg, ":2: seed: duplicate key (first set on line 1)");
}

/* An Axolotl config as people write them: `bf16: auto`, and keys that mean nothing on a CPU
 * (fp16, tf32, flash_attention, wandb_*, ...), which load with a warning instead of an error;
 * a key in a section is still checked, and an enum left empty keeps its default. */
TEST(config_axolotl_keys) {
    rl_config cfg;
    rl_error err = {0};
    CHECK_OK(load_text("base_model: m\nbf16: auto\nfp16: false\ntf32: false\nflash_attention: true\n"
                       "wandb_project: demo\nwandb_entity:\nlogging_steps: 1\nload_in_8bit: false\nstrict: false\n"
                       "fsdp_config:\n  fsdp_offload_params: true\nlr_scheduler:\n",
                       &cfg, &err, NULL));
    CHECK_EQ_STR(cfg.bf16, "auto");
    CHECK_EQ_STR(cfg.lr_scheduler, "cosine");
    rl_config_free(&cfg);
    CHECK_OK(load_text("adapter: qlora\nload_in_4bit: true\n", &cfg, &err, NULL));
    CHECK_EQ_STR(cfg.adapter, "lora");
    rl_config_free(&cfg);
    CHECK_OK(load_text("bf16: true\n", &cfg, &err, NULL));
    CHECK_EQ_STR(cfg.bf16, "true");
    rl_config_free(&cfg);
    CHECK_OK(load_text("seed: 1\n", &cfg, &err, NULL));
    CHECK_EQ_STR(cfg.bf16, "false");
    rl_config_free(&cfg);
    CHECK_EQ_INT(load_text("bf16: sometimes\n", &cfg, &err, NULL), RL_ECONFIG);
    CHECK_CONTAINS(err.msg, ":1: bf16: expected one of false, true, auto");
    CHECK_EQ_INT(load_text("chunking:\n  tf32: true\n", &cfg, &err, NULL), RL_ECONFIG);
    CHECK_CONTAINS(err.msg, ":2: chunking.tf32: unknown key");
}

TEST(config_yaml_syntax_error_has_line) {
    rl_config cfg;
    rl_error err = {0};
    CHECK_EQ_INT(load_text("lora_r: 8\nchunking:\n  size: [1, 2\n  overlap: 3\n", &cfg, &err, NULL), RL_ECONFIG);
    CHECK_CONTAINS(err.msg, "raftlm.yaml:");
    CHECK_CONTAINS(err.msg, "YAML syntax error");
    CHECK_EQ_INT(load_text("a: b: c\n", &cfg, &err, NULL), RL_ECONFIG);
    CHECK_CONTAINS(err.msg, "raftlm.yaml:1: YAML syntax error");
    CHECK_EQ_INT(load_text("- just\n- a list\n", &cfg, &err, NULL), RL_ECONFIG);
    CHECK_CONTAINS(err.msg, "expected a mapping");
}

TEST(config_empty_file_is_all_defaults) {
    rl_config cfg;
    rl_error err = {0};
    CHECK_OK(load_text("", &cfg, &err, NULL));
    CHECK_EQ_INT(cfg.chunking.size, 256);
    rl_config_free(&cfg);
    CHECK_OK(load_text("# only a comment\ncorpus:\n", &cfg, &err, NULL));
    rl_config_free(&cfg);
}

TEST(config_datasets) {
    rl_config cfg;
    rl_error err = {0};
    CHECK_OK(load_text("datasets:\n  - path: data/a.jsonl\n    type: alpaca\n  - path: b.jsonl\n", &cfg, &err, NULL));
    CHECK_EQ_INT(cfg.n_datasets, 2);
    CHECK_EQ_STR(cfg.datasets[0].type, "alpaca");
    CHECK_EQ_STR(cfg.datasets[1].type, "raft");
    rl_config_free(&cfg);
    CHECK_EQ_INT(load_text("datasets:\n  - path: a.jsonl\n    typ: alpaca\n", &cfg, &err, NULL), RL_ECONFIG);
    CHECK_CONTAINS(err.msg, ":3: datasets[0].typ: unknown key");
}

TEST(config_init_template_loads_and_lists_every_section) {
    char *dir = t_tmpdir();
    char *out;
    CHECK_EQ_INT(t_run(t_fmt("%s init %s", t_bin(), dir), &out, 1), 0);
    free(out);
    char *path = rl_path_join(dir, "raftlm.yaml");
    char *text;
    size_t len;
    rl_error err;
    CHECK_OK(rl_file_read(path, 0, &text, &len, &err));
    const char *keys[] = {"base_model:", "lora_r: 16", "lora_alpha:", "sequence_len:", "micro_batch_size:", "learning_rate:",
                          "corpus:", "chunking:", "retrieval:", "teacher:", "raft:", "eval:", "serve:", "output_dir: out",
                          "  size: 256", "  overlap: 32", "  p: 0.8", "  num_distractors: 4"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) CHECK_CONTAINS(text, keys[i]);
    rl_config cfg;
    CHECK_OK(rl_config_load(&cfg, path, &err));
    CHECK_EQ_INT(cfg.lora_r, 16);
    CHECK_EQ_INT(cfg.eval.modes.n, 4);
    rl_config_free(&cfg);
    /* refuses to overwrite */
    CHECK(t_run(t_fmt("%s init %s", t_bin(), dir), &out, 1) != 0);
    CHECK_CONTAINS(out, "already exists");
    free(out);
    free(text);
}

TEST(config_eval_models_and_k_sweep) {
    rl_config cfg;
    rl_error err = {0};
    char *dir;
    CHECK_OK(load_text("base_model: models/base\neval:\n  k_sweep: [1, 3, 5]\n  models:\n    - {name: base}\n"
                       "    - {name: dsf, model: out/dsf/train}\n    - name: raft\n      model: models/base\n      lora: out/train\n"
                       "      tokenizer: tok.json\n",
                       &cfg, &err, &dir));
    CHECK_EQ_INT(cfg.eval.k_sweep.n, 3);
    CHECK_EQ_INT(cfg.eval.k_sweep.items[2], 5);
    CHECK_EQ_INT(cfg.eval.n_models, 3);
    CHECK_EQ_STR(cfg.eval.models[0].name, "base");
    CHECK(cfg.eval.models[0].model == NULL);
    CHECK_EQ_STR(cfg.eval.models[1].model, t_fmt("%s/out/dsf/train", dir)); /* relative to the config's folder */
    CHECK_EQ_STR(cfg.eval.models[2].lora, t_fmt("%s/out/train", dir));
    CHECK_EQ_STR(cfg.eval.models[2].tokenizer, t_fmt("%s/tok.json", dir));
    /* the resolved config as JSON, for the report */
    char *js = rl_config_to_json(&cfg);
    CHECK_CONTAINS(js, "\"k_sweep\": [\n      1,\n      3,\n      5\n    ]");
    CHECK_CONTAINS(js, t_fmt("\"lora\": \"%s/out/train\"", dir));
    CHECK_CONTAINS(js, "\"size\": 256");
    free(js);
    rl_config_free(&cfg);
    CHECK_EQ_INT(load_text("eval:\n  k_sweep: [1, 0]\n", &cfg, &err, NULL), RL_ECONFIG);
    CHECK_CONTAINS(err.msg, ":2: eval.k_sweep: must be from 1 to 50, got 0");
    CHECK_EQ_INT(load_text("eval:\n  k_sweep: 3\n", &cfg, &err, NULL), RL_ECONFIG);
    CHECK_CONTAINS(err.msg, "eval.k_sweep: expected a list of integers");
    CHECK_EQ_INT(load_text("eval:\n  k_sweep: [a]\n", &cfg, &err, NULL), RL_ECONFIG);
    CHECK_CONTAINS(err.msg, "eval.k_sweep: expected a positive integer, got \"a\"");
    CHECK_EQ_INT(load_text("eval:\n  models:\n    - {name: a, modle: x}\n", &cfg, &err, NULL), RL_ECONFIG);
    CHECK_CONTAINS(err.msg, ":3: eval.models[0].modle: unknown key (model keys: name, model, lora, tokenizer)");
    CHECK_EQ_INT(load_text("eval:\n  models:\n    - {name: a}\n    - {name: a, model: y}\n", &cfg, &err, NULL), RL_ECONFIG);
    CHECK_CONTAINS(err.msg, ":4: eval.models: two models named \"a\"");
    CHECK_EQ_INT(load_text("eval:\n  models: out/train\n", &cfg, &err, NULL), RL_ECONFIG);
    CHECK_CONTAINS(err.msg, "eval.models: expected a list");
    CHECK_EQ_INT(load_text("eval:\n  models: [out/train]\n", &cfg, &err, NULL), RL_ECONFIG);
    CHECK_CONTAINS(err.msg, "each model must be a mapping");
}
