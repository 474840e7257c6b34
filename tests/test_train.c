/* test_train.c - datasets (every format, masking, malformed lines), and fine-tuning the real
 * stories260K model: LoRA and full fine-tuning lower the validation loss, the written adapter
 * scores exactly as the in-memory one, and a run stopped after a checkpoint resumes exactly. */
#include "test.h"

#include <math.h>

#include "train/train.h"

static const char *names[] = {"Tom", "Lily", "Ben", "Sue", "Max", "Mia", "Sam", "Zoe"};
static const char *things[] = {"red ball", "blue kite", "big box", "green hat", "small cup", "toy car"};

/* A small corpus with a pattern the model does not know yet. */
static char *write_stories(const char *dir, int n) {
    rl_buf b = {0};
    for (int i = 0; i < n; i++)
        rl_buf_printf(&b, "{\"text\": \"%s found a %s. The %s was in the garden. %s said: zork zork, my %s!\"}\n",
                      names[i % 8], things[i % 6], things[i % 6], names[i % 8], things[(i / 8) % 6]);
    t_write_str(dir, "stories.jsonl", b.data);
    rl_buf_free(&b);
    return t_fmt("%s/stories.jsonl", dir);
}

typedef struct {
    rl_model m;
    rl_tokenizer *tok;
    rl_lora lo;
    rl_dataset train, val;
} setup;

static int setup_open(setup *s, int lora, int n_examples) {
    memset(s, 0, sizeof *s);
    const char *sh = t_shared();
    char *bin = sh ? t_fmt("%s/models/stories260K/stories260K.bin", sh) : NULL;
    if (!bin || !rl_path_exists(bin)) return 0;
    rl_error err = {0};
    CHECK_OK(rl_model_load(&s->m, bin, &err));
    CHECK_OK(rl_tok_load(&s->tok, t_fmt("%s/models/stories260K/tok512.bin", sh), &err));
    if (lora) {
        CHECK_OK(rl_lora_init(&s->lo, &s->m.cfg, 4, 8.0f, 0, rl_lora_parse_targets("all-linear"), 3, 0, &err));
        s->m.lora = &s->lo;
    }
    char *dir = t_tmpdir();
    char *path = write_stories(dir, n_examples);
    rl_status st = rl_dataset_load(&s->train, path, RL_DS_COMPLETION, s->tok, 0, 64, s->m.cfg.vocab_size, &err);
    CHECK_MSG(st == RL_OK, "%s", err.msg);
    rl_dataset_split(&s->train, &s->val, 0.2, 11);
    return 1;
}

static void setup_close(setup *s) {
    rl_dataset_free(&s->val);
    rl_dataset_free(&s->train);
    if (s->m.lora) rl_lora_free(&s->lo);
    rl_tok_free(s->tok);
    rl_model_free(&s->m);
}

static rl_train_opts opts(const char *out, int lora) {
    rl_train_opts o = {.output_dir = out, .base_model = "stories260K", .lora = lora, .sequence_len = 64,
                       .sample_packing = 1, .micro_batch_size = 2, .gradient_accumulation_steps = 2,
                       .num_epochs = 1, .max_steps = 12, .learning_rate = lora ? 1e-2f : 2e-3f,
                       .lr_scheduler = RL_SCHED_COSINE, .warmup_steps = 2, .weight_decay = 0.0f,
                       .max_grad_norm = 1.0f, .eval_steps = 6, .save_steps = 0, .seed = 5};
    return o;
}

TEST(train_lora_lowers_val_loss_and_adapter_roundtrips) {
    setup s;
    if (!setup_open(&s, 1, 40)) SKIP("../shared/models/stories260K is not here");
    char *out = t_tmpdir();
    rl_train_opts o = opts(out, 1);
    rl_train_result r;
    rl_error err = {0};
    rl_status st = rl_train_run(&s.m, &s.train, &s.val, &o, &r, &err);
    CHECK_MSG(st == RL_OK, "%s", err.msg);
    fprintf(stderr, "    LoRA: val loss %.4f -> %.4f, train loss %.4f -> %.4f\n", r.first_eval_loss, r.eval_loss, r.first_loss, r.last_loss);
    CHECK(r.eval_loss < 0.8f * r.first_eval_loss);
    // the adapter on disk scores exactly as the one in memory
    rl_acts a;
    CHECK_OK(rl_acts_init(&a, &s.m, 2, 64, &err));
    float mem_loss, disk_loss;
    CHECK_OK(rl_eval_loss(&s.m, &a, &s.val, 2, 64, 1, &mem_loss, &err));
    rl_lora back;
    CHECK_OK(rl_lora_load_peft(&back, &s.m.cfg, out, &err));
    s.m.lora = &back;
    CHECK_OK(rl_eval_loss(&s.m, &a, &s.val, 2, 64, 1, &disk_loss, &err));
    s.m.lora = &s.lo;
    CHECK_MSG(mem_loss == disk_loss, "in memory %.9g, from disk %.9g", mem_loss, disk_loss);
    rl_lora_free(&back);
    char *log = NULL;
    size_t len;
    CHECK_OK(rl_file_read(t_fmt("%s/train_log.jsonl", out), 0, &log, &len, &err));
    CHECK_CONTAINS(log, "{\"step\": 12, \"epoch\":");
    CHECK_CONTAINS(log, "\"grad_norm\":");
    CHECK_CONTAINS(log, "{\"step\": 12, \"eval_loss\":");
    free(log);
    rl_acts_free(&a);
    setup_close(&s);
}

static double logged_loss(const char *out, int step) {
    char *log = NULL, *key = t_fmt("{\"step\": %d, \"epoch\":", step);
    size_t len;
    rl_error err;
    if (rl_file_read(t_fmt("%s/train_log.jsonl", out), 0, &log, &len, &err) != RL_OK) return NAN;
    const char *p = strstr(log, key), *l = p ? strstr(p, "\"loss\": ") : NULL;
    double v = l ? strtod(l + 8, NULL) : NAN;
    free(log);
    return v;
}

/* adam_beta2 reaches the optimizer: Adam's bias-corrected first step does not depend on it, the
 * later ones do */
TEST(train_adam_betas_reach_the_optimizer) {
    setup s;
    if (!setup_open(&s, 0, 40)) SKIP("../shared/models/stories260K is not here");
    rl_model_free(&s.m);
    rl_error err = {0};
    double loss[2][2];
    for (int run = 0; run < 2; run++) {
        CHECK_OK(rl_model_load(&s.m, t_fmt("%s/models/stories260K/stories260K.bin", t_shared()), &err));
        char *out = t_tmpdir();
        rl_train_opts o = opts(out, 0);
        o.max_steps = 4, o.eval_steps = 0, o.gradient_accumulation_steps = 1, o.lr_scheduler = RL_SCHED_CONSTANT;
        o.warmup_steps = 0;
        if (run) o.adam_beta2 = 0.5f;
        rl_train_result r;
        CHECK_OK(rl_train_run(&s.m, &s.train, &s.val, &o, &r, &err));
        loss[run][0] = logged_loss(out, 2), loss[run][1] = logged_loss(out, 4);
        if (run == 0) rl_model_free(&s.m);
    }
    fprintf(stderr, "    step 2: %.6f / %.6f, step 4: %.6f / %.6f\n", loss[0][0], loss[1][0], loss[0][1], loss[1][1]);
    CHECK(!isnan(loss[0][0]) && fabs(loss[0][0] - loss[1][0]) < 1e-5);
    CHECK(fabs(loss[0][1] - loss[1][1]) > 1e-4);
    setup_close(&s);
}

TEST(train_full_lowers_val_loss) {
    setup s;
    if (!setup_open(&s, 0, 40)) SKIP("../shared/models/stories260K is not here");
    char *out = t_tmpdir();
    rl_train_opts o = opts(out, 0);
    rl_train_result r;
    rl_error err = {0};
    rl_status st = rl_train_run(&s.m, &s.train, &s.val, &o, &r, &err);
    CHECK_MSG(st == RL_OK, "%s", err.msg);
    fprintf(stderr, "    full: val loss %.4f -> %.4f, train loss %.4f -> %.4f\n", r.first_eval_loss, r.eval_loss, r.first_loss, r.last_loss);
    CHECK(r.eval_loss < 0.8f * r.first_eval_loss);
    CHECK(rl_path_exists(t_fmt("%s/model.safetensors", out)));
    setup_close(&s);
}

/* The lines of train_log.jsonl with a "loss" (training steps). */
static char *loss_lines(const char *dir) {
    char *text = NULL;
    size_t len;
    if (rl_file_read(t_fmt("%s/train_log.jsonl", dir), 0, &text, &len, NULL)) return rl_xstrdup("");
    rl_buf b = {0};
    for (char *p = strtok(text, "\n"); p; p = strtok(NULL, "\n")) {
        char *l = strstr(p, "\"loss\":"), *e = l ? strstr(l, ", \"lr\"") : NULL;
        if (l && e) rl_buf_printf(&b, "%.*s\n", (int)(e - p), p); // step, epoch, loss
    }
    free(text);
    return b.data ? rl_buf_take(&b) : rl_xstrdup("");
}

/* bf16 mixed precision tracks float32: the same 12 full fine-tuning steps on stories260K from the
 * same weights, once with float32 products and once with bf16 ones; every training loss and the
 * final validation loss agree within 2% (bf16 rounds the products' inputs to 8 significant bits;
 * the weights and AdamW's state stay float32). */
TEST(train_bf16_tracks_f32_losses) {
    if (!rl_gemm_has_bf16()) SKIP("this CPU has no avx512_bf16 (bf16 runs in float32 here)");
    setup s[2];
    if (!setup_open(&s[0], 0, 40)) SKIP("../shared/models/stories260K is not here");
    setup_open(&s[1], 0, 40);
    s[1].m.matmul = RL_GEMM_BF16;
    rl_train_result r[2];
    char *out[2];
    for (int i = 0; i < 2; i++) {
        out[i] = t_tmpdir();
        rl_train_opts o = opts(out[i], 0);
        rl_error err = {0};
        rl_status st = rl_train_run(&s[i].m, &s[i].train, &s[i].val, &o, &r[i], &err);
        CHECK_MSG(st == RL_OK, "%s", err.msg);
    }
    char *l32 = loss_lines(out[0]), *l16 = loss_lines(out[1]);
    double worst = 0;
    int n = 0;
    for (char *a = l32, *b = l16; (a = strstr(a, "\"loss\": ")) && (b = strstr(b, "\"loss\": ")); a++, b++, n++) {
        double la = atof(a + 8), lb = atof(b + 8), d = fabs(la - lb) / la;
        worst = d > worst ? d : worst;
        CHECK_MSG(d <= 0.02, "step %d: float32 loss %.5f, bf16 %.5f", n + 1, la, lb);
    }
    CHECK_EQ_INT(n, 12);
    double dv = fabs(r[0].eval_loss - r[1].eval_loss) / r[0].eval_loss;
    fprintf(stderr, "    bf16 vs float32: %d training losses, largest rel diff %.2e; val loss %.4f vs %.4f (tol 2e-2)\n", n,
            worst, r[1].eval_loss, r[0].eval_loss);
    CHECK(dv <= 0.02);
    CHECK(r[1].eval_loss < 0.8f * r[1].first_eval_loss);
    free(l32), free(l16);
    setup_close(&s[0]);
    setup_close(&s[1]);
}

static void check_resume(int lora) {
    setup s1, s2;
    if (!setup_open(&s1, lora, 30)) SKIP("../shared/models/stories260K is not here");
    setup_open(&s2, lora, 30);
    char *a = t_tmpdir(), *b = t_tmpdir();
    rl_error err = {0};
    rl_train_result r;
    rl_train_opts o = opts(a, lora);
    o.max_steps = 8;
    o.save_steps = 3;
    CHECK_OK(rl_train_run(&s1.m, &s1.train, &s1.val, &o, &r, &err)); // uninterrupted
    o.output_dir = b;
    o.stop_after = 5; // "killed" after step 5: the newest checkpoint is step 3
    CHECK_OK(rl_train_run(&s2.m, &s2.train, &s2.val, &o, &r, &err));
    CHECK_EQ_INT(r.steps, 5);
    setup_close(&s2);
    setup_open(&s2, lora, 30); // a fresh process: the base model and a new adapter init
    o.stop_after = 0;
    o.resume = 1;
    rl_status st = rl_train_run(&s2.m, &s2.train, &s2.val, &o, &r, &err);
    CHECK_MSG(st == RL_OK, "%s", err.msg);
    CHECK_EQ_INT(r.steps, 8);
    char *la = loss_lines(a), *lb = loss_lines(b);
    CHECK_EQ_STR(lb, la);
    fprintf(stderr, "    %s resume: %d identical loss lines after resuming from step 3\n", lora ? "LoRA" : "full",
            (int)(strlen(la) ? 8 : 0));
    free(la);
    free(lb);
    setup_close(&s1);
    setup_close(&s2);
}

TEST(train_resume_is_exact_lora) { check_resume(1); }
TEST(train_resume_is_exact_full) { check_resume(0); }

/* ---- datasets ------------------------------------------------------------------------------ */

TEST(dataset_formats_and_masks) {
    const char *sh = t_shared();
    char *tp = sh ? t_fmt("%s/models/stories260K/tok512.bin", sh) : NULL;
    if (!tp || !rl_path_exists(tp)) SKIP("../shared/models/stories260K is not here");
    rl_tokenizer *tok;
    rl_error err = {0};
    CHECK_OK(rl_tok_load(&tok, tp, &err));
    char *dir = t_tmpdir();
    struct {
        rl_ds_type type;
        const char *line;
        int masked_prefix; /* some labels are -100 */
    } cases[] = {
        {RL_DS_COMPLETION, "{\"text\": \"Once upon a time\"}", 0},
        {RL_DS_PROMPT_COMPLETION, "{\"prompt\": \"Q: who?\", \"completion\": \" Lily\"}", 1},
        {RL_DS_ALPACA, "{\"instruction\": \"Name a girl\", \"input\": \"\", \"output\": \"Lily\"}", 1},
        {RL_DS_INPUT_OUTPUT, "{\"segments\": [{\"label\": false, \"text\": \"Q: who?\"}, {\"label\": true, \"text\": \" Lily\"}]}", 1},
        {RL_DS_RAFT, "{\"id\": \"x\", \"instruction\": \"<DOCUMENT>Lily is a girl.</DOCUMENT> Who is a girl?\", "
                     "\"cot_answer\": \"##begin_quote##Lily is a girl.##end_quote## <ANSWER>: Lily\"}", 1},
        {RL_DS_TOKENIZED, "{\"input_ids\": [1, 403, 407, 261], \"labels\": [-100, -100, 407, 261]}", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        t_write_str(dir, "d.jsonl", t_fmt("%s\n\n", cases[i].line));
        rl_dataset ds = {0};
        rl_status st = rl_dataset_load(&ds, t_fmt("%s/d.jsonl", dir), cases[i].type, tok, 0, 512, 512, &err);
        CHECK_MSG(st == RL_OK, "case %zu: %s", i, err.msg);
        CHECK_EQ_INT(ds.n, 1);
        if (ds.n) {
            int masked = 0, trained = 0;
            for (int t = 0; t < ds.ex[0].n; t++) masked += ds.ex[0].labels[t] == -100, trained += ds.ex[0].labels[t] >= 0;
            CHECK_MSG(trained > 0, "case %zu trains nothing", i);
            CHECK_MSG((masked > 0) == (cases[i].masked_prefix != 0), "case %zu: %d masked", i, masked);
        }
        rl_dataset_free(&ds);
        // train_on_inputs: nothing masked
        st = rl_dataset_load(&ds, t_fmt("%s/d.jsonl", dir), cases[i].type, tok, 1, 512, 512, &err);
        if (ds.n && cases[i].type != RL_DS_TOKENIZED)
            for (int t = 0; t < ds.ex[0].n; t++) CHECK(ds.ex[0].labels[t] >= 0);
        rl_dataset_free(&ds);
    }
    // malformed lines name file and line
    t_write_str(dir, "bad.jsonl", "{\"text\": \"fine\"}\n{\"text\": 5}\n");
    rl_dataset ds = {0};
    CHECK(rl_dataset_load(&ds, t_fmt("%s/bad.jsonl", dir), RL_DS_COMPLETION, tok, 0, 512, 512, &err) == RL_EFORMAT);
    CHECK_CONTAINS(err.msg, "bad.jsonl:2");
    rl_dataset_free(&ds);
    t_write_str(dir, "bad.jsonl", "{\"text\": \"fine\"}\n{\"text\": \"unterminated}\n");
    CHECK(rl_dataset_load(&ds, t_fmt("%s/bad.jsonl", dir), RL_DS_COMPLETION, tok, 0, 512, 512, &err) == RL_EFORMAT);
    CHECK_CONTAINS(err.msg, "bad.jsonl:2: invalid JSON");
    rl_dataset_free(&ds);
    t_write_str(dir, "bad.jsonl", "{\"input_ids\": [1, 2, 9999]}\n");
    CHECK(rl_dataset_load(&ds, t_fmt("%s/bad.jsonl", dir), RL_DS_TOKENIZED, NULL, 0, 512, 512, &err) == RL_EFORMAT);
    CHECK_CONTAINS(err.msg, "vocabulary");
    rl_dataset_free(&ds);
    // long examples are dropped, not truncated
    t_write_str(dir, "long.jsonl", "{\"input_ids\": [1, 2, 3, 4, 5, 6, 7, 8]}\n{\"input_ids\": [1, 2, 3]}\n");
    CHECK_OK(rl_dataset_load(&ds, t_fmt("%s/long.jsonl", dir), RL_DS_TOKENIZED, NULL, 0, 4, 512, &err));
    CHECK_EQ_INT(ds.n, 1);
    CHECK_EQ_INT(ds.n_dropped, 1);
    rl_dataset_free(&ds);
    rl_tok_free(tok);
}

TEST(batch_packing_positions_and_targets) {
    rl_dataset ds = {0};
    char *dir = t_tmpdir();
    rl_error err;
    t_write_str(dir, "t.jsonl", "{\"input_ids\": [1, 10, 11]}\n{\"input_ids\": [1, 20, 21, 22], \"labels\": [-100, -100, 21, 22]}\n");
    CHECK_OK(rl_dataset_load(&ds, t_fmt("%s/t.jsonl", dir), RL_DS_TOKENIZED, NULL, 0, 8, 64, &err));
    size_t order[2] = {0, 1};
    rl_batch b = {0};
    size_t next = rl_batch_build(&b, &ds, order, 2, 0, 1, 8, 1);
    CHECK_EQ_INT(next, 2);
    int tok[8] = {1, 10, 11, 1, 20, 21, 22, 0}, tgt[8] = {10, 11, -100, -100, 21, 22, -100, -100};
    int pos[8] = {0, 1, 2, 0, 1, 2, 3, 7}, seg[8] = {0, 0, 0, 1, 1, 1, 1, 2};
    for (int t = 0; t < 8; t++) {
        CHECK_EQ_INT(b.tokens[t], tok[t]);
        CHECK_EQ_INT(b.targets[t], tgt[t]);
        CHECK_EQ_INT(b.pos[t], pos[t]);
        CHECK_EQ_INT(b.seg[t], seg[t]);
    }
    CHECK_EQ_INT(b.n_valid, 4);
    next = rl_batch_build(&b, &ds, order, 2, 0, 2, 8, 0); // unpacked: one per row, T = longest
    CHECK_EQ_INT(b.T, 4);
    CHECK_EQ_INT(b.targets[2], -100);
    CHECK_EQ_INT(b.tokens[4 + 3], 22);
    rl_batch_free(&b);
    rl_dataset_free(&ds);
}

/* ---- the CLI: raftlm train, SIGKILL, --resume ---------------------------------------------- */

static char *write_project(const char *dir, const char *sh, int max_steps, int save_steps, const char *adapter) {
    write_stories(dir, 60);
    char *yaml = t_fmt("base_model: %s/models/stories260K/stories260K.bin\n"
                       "tokenizer: %s/models/stories260K/tok512.bin\n"
                       "datasets:\n  - path: stories.jsonl\n    type: completion\n"
                       "adapter: %s\nlora_r: 4\nlora_alpha: 8\nlora_dropout: 0.1\nlora_target_modules: [all-linear]\n"
                       "sequence_len: 64\nmicro_batch_size: 2\ngradient_accumulation_steps: 2\nmax_steps: %d\n"
                       "learning_rate: 0.003\nlr_scheduler: cosine\nwarmup_steps: 5\nval_set_size: 0.1\n"
                       "eval_steps: 50\nsave_steps: %d\nseed: 3\nthreads: 1\noutput_dir: out\n",
                       sh, sh, adapter, max_steps, save_steps);
    t_write_str(dir, "raftlm.yaml", yaml);
    return t_fmt("%s/raftlm.yaml", dir);
}

TEST(train_cli_sigkill_then_resume_matches_uninterrupted) {
    const char *sh = t_shared();
    if (!sh || !rl_path_exists(t_fmt("%s/models/stories260K/stories260K.bin", sh))) SKIP("../shared/models/stories260K is not here");
    char *a = t_tmpdir(), *b = t_tmpdir(), *out = NULL;
    char *ya = write_project(a, sh, 300, 25, "lora"), *yb = write_project(b, sh, 300, 25, "lora");
    int rc = t_run(t_fmt("cd %s && %s -q train -c %s", a, t_bin(), ya), &out, 1);
    CHECK_MSG(rc == 0, "%s", out);
    CHECK_CONTAINS(out, "trained 300 steps");
    free(out);
    // the same run, killed with SIGKILL once a checkpoint exists, then resumed
    rc = t_run(t_fmt("cd %s && (%s -q train -c %s >/dev/null 2>&1 & pid=$!; "
                     "while [ ! -d out/train/checkpoint-100 ] && kill -0 $pid 2>/dev/null; do sleep 0.01; done; "
                     "kill -9 $pid; wait $pid; echo killed)", b, t_bin(), yb), &out, 1);
    CHECK_CONTAINS(out, "killed");
    free(out);
    int finished = rl_path_exists(t_fmt("%s/out/train/adapter_model.safetensors", b));
    if (finished) fprintf(stderr, "    (the run finished before the kill landed; resume still checked)\n");
    rc = t_run(t_fmt("cd %s && %s -q train -c %s --resume", b, t_bin(), yb), &out, 1);
    CHECK_MSG(rc == 0, "%s", out);
    free(out);
    char *la = loss_lines(t_fmt("%s/out/train", a)), *lb = loss_lines(t_fmt("%s/out/train", b));
    CHECK(strlen(la) > 0);
    CHECK_EQ_STR(lb, la);
    free(la);
    free(lb);
    // the exported adapter loads back with --lora and scores like the run's own eval
    rc = t_run(t_fmt("%s score --model %s/models/stories260K/stories260K.bin --lora %s/out/train --tokens 1,403,407,261 --json 2>/dev/null",
                     t_bin(), sh, a), &out, 0);
    CHECK_EQ_INT(rc, 0);
    CHECK_CONTAINS(out, "mean_nll");
    free(out);
}

/* `bf16: auto` (or true) reaches the engine through raftlm train: the run's losses differ from float32's
 * (the products are rounded) but stay close, and the adapter is written. */
TEST(train_cli_bf16_key) {
    const char *sh = t_shared();
    if (!sh || !rl_path_exists(t_fmt("%s/models/stories260K/stories260K.bin", sh))) SKIP("../shared/models/stories260K is not here");
    if (!rl_gemm_has_bf16()) SKIP("this CPU has no avx512_bf16 (bf16 runs in float32 here)");
    char *a = t_tmpdir(), *b = t_tmpdir(), *out = NULL;
    char *ya = write_project(a, sh, 6, 0, "lora"), *yb = write_project(b, sh, 6, 0, "lora");
    char *text = NULL;
    size_t len;
    CHECK_OK(rl_file_read(yb, 0, &text, &len, NULL));
    t_write_str(b, "raftlm.yaml", t_fmt("%sbf16: auto\n", text)); // Axolotl's usual value: bf16 where the CPU has it
    free(text);
    for (int i = 0; i < 2; i++) {
        int rc = t_run(t_fmt("cd %s && %s -q train -c %s", i ? b : a, t_bin(), i ? yb : ya), &out, 1);
        CHECK_MSG(rc == 0, "%s", out);
        free(out);
    }
    char *la = loss_lines(t_fmt("%s/out/train", a)), *lb = loss_lines(t_fmt("%s/out/train", b));
    CHECK(strlen(la) > 0 && strcmp(la, lb) != 0); // bf16 took effect
    double x = atof(strstr(la, "\"loss\": ") + 8), y = atof(strstr(lb, "\"loss\": ") + 8);
    CHECK_MSG(fabs(x - y) <= 0.02 * x, "first loss float32 %.5f, bf16 %.5f", x, y);
    CHECK(rl_path_exists(t_fmt("%s/out/train/adapter_model.safetensors", b)));
    free(la), free(lb);
}

/* An Axolotl QLoRA config as people write it trains: `adapter: qlora` runs as LoRA on the
 * unquantized base, and the GPU-only keys are ignored with a warning that names them. */
TEST(train_cli_axolotl_qlora_config) {
    const char *sh = t_shared();
    if (!sh || !rl_path_exists(t_fmt("%s/models/stories260K/stories260K.bin", sh))) SKIP("../shared/models/stories260K is not here");
    char *d = t_tmpdir(), *out = NULL, *text = NULL;
    char *y = write_project(d, sh, 4, 0, "qlora");
    size_t len;
    CHECK_OK(rl_file_read(y, 0, &text, &len, NULL));
    t_write_str(d, "raftlm.yaml", t_fmt("%sload_in_4bit: true\nstrict: false\nbf16: auto\nfp16: false\ntf32: false\n"
                                        "flash_attention: true\nwandb_project: raft\nlogging_steps: 1\n", text));
    free(text);
    int rc = t_run(t_fmt("cd %s && %s train -c %s", d, t_bin(), y), &out, 1);
    CHECK_MSG(rc == 0, "%s", out);
    CHECK_CONTAINS(out, "adapter: qlora: training a LoRA adapter");
    CHECK_CONTAINS(out, "flash_attention: ignored");
    CHECK_CONTAINS(out, "wandb_project: ignored");
    CHECK(rl_path_exists(t_fmt("%s/out/train/adapter_model.safetensors", d)));
    free(out);
}

TEST(train_cli_config_errors) {
    const char *sh = t_shared();
    if (!sh || !rl_path_exists(t_fmt("%s/models/stories260K/stories260K.bin", sh))) SKIP("../shared/models/stories260K is not here");
    char *d = t_tmpdir(), *out = NULL;
    char *y = write_project(d, sh, 3, 0, "lora");
    t_write_str(d, "stories.jsonl", "{\"text\": \"ok\"}\nnot json\n");
    int rc = t_run(t_fmt("cd %s && %s train -c %s", d, t_bin(), y), &out, 1);
    CHECK(rc != 0);
    CHECK_CONTAINS(out, "stories.jsonl:2");
    free(out);
}

static double score_mean(const char *args) {
    char *out = NULL;
    int rc = t_run(t_fmt("%s score %s --tokens 1,403,407,261,378,432,383,286 --json 2>/dev/null", t_bin(), args), &out, 0);
    const char *p = rc == 0 && out ? strstr(out, "\"mean_nll\":") : NULL;
    double v = p ? strtod(p + 11, NULL) : NAN;
    free(out);
    return v;
}

TEST(train_then_export_merged_and_adapter_score_alike) {
    const char *sh = t_shared();
    if (!sh || !rl_path_exists(t_fmt("%s/models/stories260K/stories260K.bin", sh))) SKIP("../shared/models/stories260K is not here");
    char *d = t_tmpdir(), *out = NULL;
    char *y = write_project(d, sh, 20, 0, "lora");
    int rc = t_run(t_fmt("cd %s && %s -q train -c %s", d, t_bin(), y), &out, 1);
    CHECK_MSG(rc == 0, "%s", out);
    free(out);
    const char *to[] = {"hf", "gguf", "peft"};
    for (int i = 0; i < 3; i++) {
        rc = t_run(t_fmt("cd %s && %s -q export -c %s --to %s --type f32", d, t_bin(), y, to[i]), &out, 1);
        CHECK_MSG(rc == 0, "%s", out);
        free(out);
    }
    char *bin = t_fmt("%s/models/stories260K/stories260K.bin", sh);
    double base = score_mean(t_fmt("--model %s", bin));
    double adapter = score_mean(t_fmt("--model %s --lora %s/out/train", bin, d));
    double peft = score_mean(t_fmt("--model %s --lora %s/out/export/adapter", bin, d));
    double hf = score_mean(t_fmt("--model %s/out/export/hf", d));
    double gguf = score_mean(t_fmt("--model %s/out/export/model.gguf", d));
    fprintf(stderr, "    mean NLL: base %.6f, base+adapter %.6f, exported adapter %.6f, merged HF %.6f, merged GGUF %.6f\n",
            base, adapter, peft, hf, gguf);
    CHECK(adapter == peft);
    CHECK(fabs(hf - adapter) <= 1e-5 * adapter && fabs(gguf - adapter) <= 1e-5 * adapter);
    CHECK(fabs(adapter - base) > 1e-4); // training changed the model
}

TEST(train_cli_random_init_learns) {
    const char *sh = t_shared();
    if (!sh || !rl_path_exists(t_fmt("%s/models/stories260K/stories260K.bin", sh))) SKIP("../shared/models/stories260K is not here");
    char *d = t_tmpdir(), *out = NULL;
    char *y = write_project(d, sh, 40, 0, "full");
    char *yaml = NULL;
    size_t len;
    rl_error err;
    CHECK_OK(rl_file_read(y, 0, &yaml, &len, &err));
    t_write_str(d, "raftlm.yaml", t_fmt("%sbase_model_init: random\n", yaml));
    int rc = t_run(t_fmt("cd %s && %s train -c %s 2>&1", d, t_bin(), y), &out, 0);
    CHECK_MSG(rc == 0, "%s", out);
    CHECK_CONTAINS(out, "from a random init");
    float l0 = 0, l1 = 0, e0 = 0, e1 = 0;
    const char *p = out ? strstr(out, "train loss") : NULL;
    CHECK(p && sscanf(p, "train loss %f -> %f, eval loss %f -> %f", &l0, &l1, &e0, &e1) == 4);
    fprintf(stderr, "    random init: train loss %.3f -> %.3f, eval loss %.3f -> %.3f (ln 512 = 6.238)\n", l0, l1, e0, e1);
    CHECK(fabsf(e0 - 6.238f) < 0.2f); // a random model is uniform over the vocabulary
    CHECK(e1 < e0 - 1.0f);
    free(out);
    free(yaml);
}
