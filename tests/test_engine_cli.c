/* test_engine_cli.c - the real stories260K model (../shared/models/stories260K): llama2.c
 * loading, greedy generation against llama2.c's own output, `raftlm score`, damaged files. */
#include "test.h"

#include <math.h>

#include "model/model.h"

static char *stories(const char *file) {
    const char *sh = t_shared();
    if (!sh) return NULL;
    char *p = t_fmt("%s/models/stories260K/%s", sh, file);
    if (!rl_path_exists(p)) return NULL;
    return p;
}

#define NEED_STORIES(var, file)                                                                  \
    char *var = stories(file);                                                                   \
    if (!var) SKIP("../shared/models/stories260K is not here (a clone without the shared folder)")

TEST(stories260k_loads_with_checked_sizes) {
    NEED_STORIES(bin, "stories260K.bin");
    rl_model m;
    rl_error err = {0};
    rl_status s = rl_model_load(&m, bin, &err);
    CHECK_MSG(s == RL_OK, "%s", err.msg);
    if (s) return;
    CHECK_EQ_INT(m.cfg.dim, 64);
    CHECK_EQ_INT(m.cfg.hidden_dim, 172);
    CHECK_EQ_INT(m.cfg.n_layers, 5);
    CHECK_EQ_INT(m.cfg.n_heads, 8);
    CHECK_EQ_INT(m.cfg.n_kv_heads, 4);
    CHECK_EQ_INT(m.cfg.vocab_size, 512);
    CHECK_EQ_INT(m.cfg.tie_embeddings, 1);
    rl_model_free(&m);
}

TEST(stories260k_damaged_files) {
    NEED_STORIES(bin, "stories260K.bin");
    char *dir = t_tmpdir();
    rl_model m;
    rl_error err = {0};
    char *p = t_fmt("%s/cut.bin", dir);
    CHECK_EQ_INT(t_run(t_fmt("head -c 500000 %s > %s", bin, p), NULL, 0), 0);
    CHECK(rl_model_load(&m, p, &err) == RL_EFORMAT);
    CHECK_CONTAINS(err.msg, "truncated");
    p = t_fmt("%s/short.bin", dir);
    t_write_str(dir, "short.bin", "abc");
    CHECK(rl_model_load(&m, p, &err) == RL_EFORMAT);
    // a header that lies: huge layer count, negative sizes, zero heads
    int32_t hdrs[][7] = {{64, 172, 1000000, 8, 4, 512, 512}, {-64, 172, 5, 8, 4, 512, 512},
                         {64, 172, 5, 0, 4, 512, 512},       {64, 172, 5, 8, 3, 512, 512},
                         {64, 172, 5, 8, 4, INT32_MIN, 512}, {64, 172, 5, 8, 4, 512, -1}};
    for (size_t i = 0; i < sizeof hdrs / sizeof hdrs[0]; i++) {
        char *q = t_fmt("%s/lie%zu.bin", dir, i);
        CHECK_EQ_INT(t_run(t_fmt("cp %s %s", bin, q), NULL, 0), 0);
        FILE *f = fopen(q, "r+b");
        RL_ASSERT(f);
        fwrite(hdrs[i], 4, 7, f);
        fclose(f);
        rl_status s = rl_model_load(&m, q, &err);
        CHECK_MSG(s == RL_EFORMAT, "header %zu: status %d (%s)", i, s, err.msg);
        if (s == RL_OK) rl_model_free(&m);
    }
    CHECK(rl_model_load(&m, t_fmt("%s/nope.bin", dir), &err) == RL_ENOTFOUND);
    // and the CLI says so instead of crashing
    char *out = NULL;
    int rc = t_run(t_fmt("%s generate --model %s/cut.bin -n 3", t_bin(), dir), &out, 1);
    CHECK(rc == 1);
    CHECK_CONTAINS(out, "truncated");
    free(out);
}

TEST(stories260k_greedy_matches_llama2c) {
    NEED_STORIES(bin, "stories260K.bin");
    NEED_STORIES(tok, "tok512.bin");
    NEED_STORIES(ref, "reference_greedy_200.txt");
    char *want = NULL, *got = NULL;
    size_t wl;
    rl_error err;
    CHECK_OK(rl_file_read(ref, 0, &want, &wl, &err));
    int rc = t_run(t_fmt("%s generate --model %s --tokenizer %s --temp 0 -n 200 2>/dev/null", t_bin(), bin, tok), &got, 0);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_STR(got, want);
    free(got);
    // without a tokenizer: the ids, one per line; the first ones are " Once upon a time"
    rc = t_run(t_fmt("%s generate --model %s --temp 0 -n 4 2>/dev/null", t_bin(), bin), &got, 0);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_STR(got, "403\n407\n261\n378\n");
    free(got);
    free(want);
}

/* Sampling: a seed gives the same text every run, another seed another text; --top-k 1 at any
 * temperature is greedy (the reference); a bad --top-p is an error, not a crash. */
TEST(stories260k_generate_sampling) {
    NEED_STORIES(bin, "stories260K.bin");
    NEED_STORIES(tok, "tok512.bin");
    NEED_STORIES(ref, "reference_greedy_200.txt");
    char *want = NULL, *a = NULL, *b = NULL, *c = NULL, *k1 = NULL;
    size_t wl;
    rl_error err;
    CHECK_OK(rl_file_read(ref, 0, &want, &wl, &err));
    const char *base = t_fmt("%s generate --model %s --tokenizer %s -n 60 --temp 0.9 --top-p 0.95 --min-p 0.02", t_bin(), bin, tok);
    CHECK_EQ_INT(t_run(t_fmt("%s --seed 7 2>/dev/null", base), &a, 0), 0);
    CHECK_EQ_INT(t_run(t_fmt("%s --seed 7 2>/dev/null", base), &b, 0), 0);
    CHECK_EQ_INT(t_run(t_fmt("%s --seed 8 2>/dev/null", base), &c, 0), 0);
    CHECK_EQ_STR(a, b);
    CHECK(strcmp(a, c) != 0);
    CHECK(strlen(a) > 20);
    CHECK_EQ_INT(t_run(t_fmt("%s generate --model %s --tokenizer %s -n 200 --temp 1.5 --top-k 1 --seed 3 2>/dev/null", t_bin(), bin, tok), &k1, 0), 0);
    CHECK_EQ_STR(k1, want);
    free(k1);
    CHECK(t_run(t_fmt("%s generate --model %s --tokenizer %s -n 5 --top-p 1.5 2>&1", t_bin(), bin, tok), &k1, 0) != 0);
    CHECK_CONTAINS(k1, "top_p");
    free(a), free(b), free(c), free(k1), free(want);
}

TEST(stories260k_score_agrees_with_decode) {
    NEED_STORIES(bin, "stories260K.bin");
    NEED_STORIES(tok, "tok512.bin");
    char *out = NULL;
    int rc = t_run(t_fmt("%s score --model %s --tokenizer %s --text 'Once upon a time, there was a little girl named Lily.' --json 2>/dev/null",
                         t_bin(), bin, tok), &out, 0);
    CHECK_EQ_INT(rc, 0);
    CHECK_CONTAINS(out, "{\"tokens\":[1,403,407,261,378,");
    CHECK_CONTAINS(out, "\"mean_nll\":");
    if (rc != 0 || !strstr(out, "\"nll\":[")) {
        free(out);
        return;
    }
    // the same NLLs from token-by-token decoding with the KV cache
    int ids[64], n = 0;
    const char *p = strstr(out, "[") + 1;
    while (*p != ']') {
        ids[n++] = (int)strtol(p, (char **)&p, 10);
        if (*p == ',') p++;
    }
    const char *q = strstr(out, "\"nll\":[") + 7;
    double nll[64];
    for (int i = 0; i < n - 1; i++) {
        nll[i] = strtod(q, (char **)&q);
        q++;
    }
    double mean = strtod(strstr(out, "\"mean_nll\":") + 11, NULL);
    rl_model m;
    rl_error err;
    CHECK_OK(rl_model_load(&m, bin, &err));
    rl_kv kv;
    CHECK_OK(rl_kv_init(&kv, &m, n, &err));
    double worst = 0, sum = 0;
    for (int t = 0; t + 1 < n; t++) {
        float *lg;
        CHECK_OK(rl_model_decode(&m, &kv, ids[t], t, &lg, &err));
        double mx = lg[0], s = 0;
        for (int i = 1; i < m.cfg.vocab_size; i++) mx = lg[i] > mx ? lg[i] : mx;
        for (int i = 0; i < m.cfg.vocab_size; i++) s += exp(lg[i] - mx);
        double want = log(s) + mx - lg[ids[t + 1]];
        sum += want;
        double d = fabs(want - nll[t]); // nats: relative error is meaningless for a near-zero NLL
        if (d > worst) worst = d;
    }
    fprintf(stderr, "    score vs decode: max abs diff %.2e nats (tol 1e-4); mean nll %.4f\n", worst, mean);
    CHECK(worst < 1e-4);
    CHECK(fabs(sum / (n - 1) - mean) < 1e-4 * mean);
    CHECK(mean > 0.01 && mean < 3.0); // a trained model finds its own story likely
    rl_kv_free(&kv);
    rl_model_free(&m);
    free(out);
    // plain output and bad input
    rc = t_run(t_fmt("%s score --model %s --tokens 1,403,407 2>/dev/null", t_bin(), bin), &out, 0);
    CHECK_EQ_INT(rc, 0);
    CHECK_CONTAINS(out, "mean_nll\t");
    free(out);
    rc = t_run(t_fmt("%s score --model %s --tokens 1,403,99999", t_bin(), bin), &out, 1);
    CHECK(rc != 0);
    CHECK_CONTAINS(out, "vocabulary");
    free(out);
    rc = t_run(t_fmt("%s score --model %s --tokens 1,x", t_bin(), bin), &out, 1);
    CHECK(rc == 2);
    free(out);
}

static double json_mean(const char *out) {
    const char *p = out ? strstr(out, "\"mean_nll\":") : NULL;
    return p ? strtod(p + 11, NULL) : NAN;
}

TEST(stories260k_convert_to_hf_same_text_and_nll) {
    NEED_STORIES(bin, "stories260K.bin");
    NEED_STORIES(tok, "tok512.bin");
    NEED_STORIES(ref, "reference_greedy_200.txt");
    char *dir = t_tmpdir(), *out = NULL, *want = NULL;
    size_t wl;
    rl_error err;
    CHECK_OK(rl_file_read(ref, 0, &want, &wl, &err));
    CHECK_EQ_INT(t_run(t_fmt("%s convert %s %s/hf --to hf 2>/dev/null", t_bin(), bin, dir), NULL, 0), 0);
    CHECK_EQ_INT(t_run(t_fmt("%s generate --model %s/hf --tokenizer %s --temp 0 -n 200 2>/dev/null", t_bin(), dir, tok), &out, 0), 0);
    CHECK_EQ_STR(out, want);
    free(out);
    const char *text = "Lily wanted to play with the big red ball in the park.";
    char *a = NULL, *b = NULL;
    CHECK_EQ_INT(t_run(t_fmt("%s score --model %s --tokenizer %s --text '%s' --json 2>/dev/null", t_bin(), bin, tok, text), &a, 0), 0);
    CHECK_EQ_INT(t_run(t_fmt("%s score --model %s/hf --tokenizer %s --text '%s' --json 2>/dev/null", t_bin(), dir, tok, text), &b, 0), 0);
    CHECK_EQ_STR(a, b); // same weights, same arithmetic: identical digits
    free(a);
    free(b);
    CHECK(t_run(t_fmt("%s convert %s %s/x --to onnx 2>/dev/null", t_bin(), bin, dir), NULL, 0) == 2);
    // with --tokenizer the folder gets tokenizer.json + tokenizer_config.json and stands alone
    CHECK_EQ_INT(t_run(t_fmt("%s convert %s %s/hf2 --to hf --tokenizer %s 2>/dev/null", t_bin(), bin, dir, tok), NULL, 0), 0);
    CHECK(rl_path_exists(t_fmt("%s/hf2/tokenizer.json", dir)));
    CHECK(rl_path_exists(t_fmt("%s/hf2/tokenizer_config.json", dir)));
    CHECK_EQ_INT(t_run(t_fmt("%s generate --model %s/hf2 --temp 0 -n 200 2>/dev/null", t_bin(), dir), &out, 0), 0);
    CHECK_EQ_STR(out, want);
    free(out);
    CHECK_EQ_INT(t_run(t_fmt("%s score --model %s/hf2 --text '%s' --json 2>/dev/null", t_bin(), dir, text), &b, 0), 0);
    CHECK_EQ_INT(t_run(t_fmt("%s score --model %s --tokenizer %s --text '%s' --json 2>/dev/null", t_bin(), bin, tok, text), &a, 0), 0);
    CHECK_EQ_STR(a, b);
    free(a);
    free(b);
    // and converting that folder again carries its tokenizer along
    CHECK_EQ_INT(t_run(t_fmt("%s convert %s/hf2 %s/hf3 --to hf 2>/dev/null", t_bin(), dir, dir), NULL, 0), 0);
    CHECK(rl_path_exists(t_fmt("%s/hf3/tokenizer.json", dir)));
    free(want);
}

TEST(lora_merged_export_scores_as_base_plus_adapter) {
    char *fx = t_fmt("%s/tests/fixtures/engine/qwen2_bias", t_root());
    char *dir = t_tmpdir(), *a = NULL, *b = NULL;
    const char *toks = "1,5,9,33,17,42,8,60,3,11";
    CHECK_EQ_INT(t_run(t_fmt("%s score --model %s --lora %s/lora --tokens %s --json 2>/dev/null", t_bin(), fx, fx, toks), &a, 0), 0);
    CHECK_EQ_INT(t_run(t_fmt("%s convert %s %s/merged --to hf --lora %s/lora 2>/dev/null", t_bin(), fx, dir, fx), NULL, 0), 0);
    CHECK_EQ_INT(t_run(t_fmt("%s score --model %s/merged --tokens %s --json 2>/dev/null", t_bin(), dir, toks), &b, 0), 0);
    double ma = json_mean(a), mb = json_mean(b);
    fprintf(stderr, "    base+adapter %.7f merged %.7f: rel diff %.1e (tol 1e-5)\n", ma, mb, fabs(ma - mb) / ma);
    CHECK(fabs(ma - mb) <= 1e-5 * ma);
    free(a);
    // and the adapter changes the model (the test could fail)
    CHECK_EQ_INT(t_run(t_fmt("%s score --model %s --tokens %s --json 2>/dev/null", t_bin(), fx, toks), &a, 0), 0);
    CHECK(fabs(json_mean(a) - ma) > 1e-3);
    free(a);
    free(b);
}
