/* test_infer.c - src/infer: each sampler step on hand-made logits (the distribution it draws
 * from, checked by counting), stop strings, and generation with the real stories260K model
 * (greedy text equal to llama2.c's reference and to `raftlm generate`, streaming pieces,
 * stop strings, limits, prefix reuse, seeds). */
#include <math.h>
#include <pthread.h>

#include "infer/infer.h"
#include "infer/infer_internal.h" /* the packed kernels (qpack.c) */
#include "model/gguf.h"
#include "test.h"

static int32_t draw(rl_sampler *s, const float *logits, int V) {
    float l[64];
    memcpy(l, logits, (size_t)V * sizeof *l);
    return rl_sampler_sample(s, l, NULL, NULL);
}

/* counts of each id over n draws */
static void histogram(const rl_sampler_params *p, const float *logits, int V, int n, int *counts) {
    rl_sampler *s;
    CHECK_OK(rl_sampler_new(&s, p, V, NULL));
    memset(counts, 0, (size_t)V * sizeof *counts);
    for (int i = 0; i < n; i++) counts[draw(s, logits, V)]++;
    rl_sampler_free(s);
}

TEST(sampler_greedy_is_argmax_lowest_id_on_ties) {
    rl_sampler_params p = rl_sampler_defaults();
    p.temperature = 0;
    rl_sampler *s;
    CHECK_OK(rl_sampler_new(&s, &p, 5, NULL));
    float a[5] = {0.1f, 2.0f, -1.0f, 2.0f, 1.9f};
    CHECK_EQ_INT(draw(s, a, 5), 1);
    float b[5] = {-5, -4, -3, -2, -1};
    CHECK_EQ_INT(draw(s, b, 5), 4);
    rl_sampler_free(s);
}

TEST(sampler_temperature_draws_the_softmax) {
    float logits[4] = {0.0f, 1.0f, 2.0f, -1.0f};
    for (int ti = 0; ti < 2; ti++) {
        float T = ti ? 2.0f : 0.7f;
        rl_sampler_params p = rl_sampler_defaults();
        p.temperature = T;
        p.seed = 123;
        int n = 200000, counts[4];
        histogram(&p, logits, 4, n, counts);
        double z = 0, pr[4];
        for (int i = 0; i < 4; i++) z += exp(logits[i] / T);
        for (int i = 0; i < 4; i++) {
            pr[i] = exp(logits[i] / T) / z;
            double got = (double)counts[i] / n, sd = sqrt(pr[i] * (1 - pr[i]) / n);
            CHECK_MSG(fabs(got - pr[i]) < 5 * sd + 1e-4, "T=%g id %d: %.4f drawn, %.4f expected", T, i, got, pr[i]);
        }
    }
}

TEST(sampler_same_seed_same_draws_other_seed_other_draws) {
    float logits[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    rl_sampler_params p = rl_sampler_defaults();
    p.seed = 7;
    rl_sampler *a, *b, *c;
    CHECK_OK(rl_sampler_new(&a, &p, 8, NULL));
    CHECK_OK(rl_sampler_new(&b, &p, 8, NULL));
    p.seed = 8;
    CHECK_OK(rl_sampler_new(&c, &p, 8, NULL));
    int same = 1, differ = 0;
    int32_t first[50];
    for (int i = 0; i < 50; i++) {
        int32_t x = draw(a, logits, 8), y = draw(b, logits, 8), z = draw(c, logits, 8);
        first[i] = x;
        same &= x == y;
        differ |= x != z;
    }
    CHECK(same);
    CHECK(differ);
    rl_sampler_reset(a); // reset: the same sequence again
    int again = 1;
    for (int i = 0; i < 50; i++) again &= draw(a, logits, 8) == first[i];
    CHECK(again);
    rl_sampler_free(a);
    rl_sampler_free(b);
    rl_sampler_free(c);
}

TEST(sampler_top_k_top_p_min_p_keep_only_their_tokens) {
    // probabilities 0.5, 0.3, 0.15, 0.05 at temperature 1
    float logits[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    int counts[4], n = 40000;
    rl_sampler_params p = rl_sampler_defaults();
    p.seed = 1;
    p.top_k = 2;
    histogram(&p, logits, 4, n, counts);
    CHECK(counts[2] == 0 && counts[3] == 0);
    CHECK_MSG(fabs(counts[0] / (double)n - 0.625) < 0.01, "top_k=2: p(0) = %.3f, want 0.625", counts[0] / (double)n);
    p.top_k = 1;
    p.temperature = 5.0f;
    histogram(&p, logits, 4, 1000, counts);
    CHECK_EQ_INT(counts[0], 1000);
    p = rl_sampler_defaults();
    p.seed = 2;
    p.top_p = 0.7f; // 0.5 + 0.3 reaches 0.7: ids 0 and 1
    histogram(&p, logits, 4, n, counts);
    CHECK(counts[0] > 0 && counts[1] > 0 && counts[2] == 0 && counts[3] == 0);
    p.top_p = 0.5f; // exactly the first
    histogram(&p, logits, 4, 1000, counts);
    CHECK_EQ_INT(counts[0], 1000);
    p = rl_sampler_defaults();
    p.seed = 3;
    p.min_p = 0.35f; // keeps p >= 0.175: ids 0 and 1
    histogram(&p, logits, 4, n, counts);
    CHECK(counts[0] > 0 && counts[1] > 0 && counts[2] == 0 && counts[3] == 0);
    CHECK_MSG(fabs(counts[1] / (double)n - 0.375) < 0.01, "min_p: p(1) = %.3f, want 0.375", counts[1] / (double)n);
}

TEST(sampler_penalties_change_exactly_the_seen_tokens) {
    rl_sampler_params p = rl_sampler_defaults();
    p.temperature = 0;
    p.repeat_penalty = 2.0f;
    rl_sampler *s;
    CHECK_OK(rl_sampler_new(&s, &p, 4, NULL));
    rl_sampler_accept(s, 0);
    rl_sampler_accept(s, 2);
    float l[4] = {3.0f, 2.0f, -1.0f, 0.5f};
    CHECK_EQ_INT(rl_sampler_sample(s, l, NULL, NULL), 1); // 3 -> 1.5 < 2
    CHECK(l[0] == 1.5f && l[1] == 2.0f && l[2] == -2.0f && l[3] == 0.5f);
    rl_sampler_free(s);

    p = rl_sampler_defaults();
    p.temperature = 0;
    p.presence_penalty = 0.5f;
    p.frequency_penalty = 0.25f;
    CHECK_OK(rl_sampler_new(&s, &p, 4, NULL));
    for (int i = 0; i < 3; i++) rl_sampler_accept(s, 1);
    rl_sampler_accept(s, 3);
    float m[4] = {0.0f, 2.0f, 1.0f, 1.0f};
    CHECK_EQ_INT(rl_sampler_sample(s, m, NULL, NULL), 2); // 2 - 0.5 - 0.75 = 0.75 < 1
    CHECK(m[1] == 0.75f && m[3] == 0.25f && m[0] == 0.0f && m[2] == 1.0f);
    rl_sampler_free(s);

    // the window: only the last penalty_last_n tokens count
    p = rl_sampler_defaults();
    p.temperature = 0;
    p.frequency_penalty = 1.0f;
    p.penalty_last_n = 1;
    CHECK_OK(rl_sampler_new(&s, &p, 4, NULL));
    rl_sampler_accept(s, 0);
    rl_sampler_accept(s, 1);
    float q[4] = {1.0f, 1.5f, 0.0f, 0.0f};
    CHECK_EQ_INT(rl_sampler_sample(s, q, NULL, NULL), 0);
    CHECK(q[0] == 1.0f && q[1] == 0.5f);
    rl_sampler_free(s);
}

TEST(sampler_logit_bias_and_bans) {
    rl_logit_bias b[2] = {{0, -100.0f}, {3, 5.0f}};
    rl_sampler_params p = rl_sampler_defaults();
    p.bias = b;
    p.n_bias = 2;
    p.temperature = 0;
    rl_sampler *s;
    CHECK_OK(rl_sampler_new(&s, &p, 4, NULL));
    float l[4] = {10.0f, 1.0f, 2.0f, 0.0f};
    CHECK_EQ_INT(rl_sampler_sample(s, l, NULL, NULL), 3);
    rl_sampler_free(s);
    p.temperature = 1.0f;
    b[1].bias = 0;
    int counts[4];
    float m[4] = {10.0f, 1.0f, 1.0f, 1.0f};
    histogram(&p, m, 4, 5000, counts);
    CHECK_EQ_INT(counts[0], 0); // banned even when it dominates
    rl_logit_bias bad = {9, 1.0f};
    p.bias = &bad;
    p.n_bias = 1;
    rl_error err = {0};
    CHECK(rl_sampler_new(&s, &p, 4, &err) == RL_EINVAL);
    CHECK_CONTAINS(err.msg, "outside the vocabulary");
}

TEST(sampler_rejects_bad_parameters) {
    rl_sampler_params bad[6];
    for (int i = 0; i < 6; i++) bad[i] = rl_sampler_defaults();
    bad[0].temperature = -1;
    bad[1].top_p = 0;
    bad[2].min_p = 1.5f;
    bad[3].repeat_penalty = 0;
    bad[4].n_probs = 21;
    bad[5].temperature = NAN;
    for (int i = 0; i < 6; i++) {
        rl_sampler *s = NULL;
        CHECK_MSG(rl_sampler_new(&s, &bad[i], 4, NULL) == RL_EINVAL, "case %d accepted", i);
        CHECK(s == NULL);
    }
}

TEST(sampler_logprobs_are_the_raw_log_softmax) {
    float l[5] = {1.0f, 3.0f, 2.0f, 0.0f, -1.0f};
    double z = 0;
    for (int i = 0; i < 5; i++) z += exp(l[i]);
    rl_sampler_params p = rl_sampler_defaults();
    p.temperature = 0;
    p.n_probs = 3;
    p.repeat_penalty = 2.0f; // changes the pick (3 -> 1.5), not the reported logprobs
    rl_sampler *s;
    CHECK_OK(rl_sampler_new(&s, &p, 5, NULL));
    rl_sampler_accept(s, 1);
    rl_token_prob c, top[3];
    int32_t t = rl_sampler_sample(s, l, &c, top);
    CHECK_EQ_INT(t, 2);
    CHECK_EQ_INT(c.token, 2);
    CHECK_MSG(fabs(c.logprob - (2.0 - log(z))) < 1e-5, "logprob %g, want %g", c.logprob, 2.0 - log(z));
    int want[3] = {1, 2, 0};
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(top[i].token, want[i]);
        CHECK(fabs(top[i].logprob - (log(exp(i == 0 ? 3.0 : i == 1 ? 2.0 : 1.0)) - log(z))) < 1e-5);
    }
    rl_sampler_free(s);
}

TEST(stop_strings_found_and_prefixes_held_back) {
    const char *stop[2] = {"\n\nUser:", "END"};
    size_t safe;
    int which;
    CHECK_EQ_INT(rl_stop_find("hello", 5, stop, 2, &which, &safe), -1);
    CHECK_EQ_INT(safe, 5);
    CHECK_EQ_INT(rl_stop_find("hello\n\nUs", 9, stop, 2, &which, &safe), -1);
    CHECK_EQ_INT(safe, 5); // "\n\nUs" may become the stop string
    CHECK_EQ_INT(rl_stop_find("hi EN", 5, stop, 2, &which, &safe), -1);
    CHECK_EQ_INT(safe, 3);
    CHECK_EQ_INT(rl_stop_find("a END b\n\nUser: c", 17, stop, 2, &which, &safe), 2);
    CHECK_EQ_INT(which, 1);
    CHECK_EQ_INT(safe, 2);
    const char *empty[1] = {""};
    CHECK_EQ_INT(rl_stop_find("abc", 3, empty, 1, &which, &safe), -1);
    CHECK_EQ_INT(safe, 3);
}

/* ---- with the real model ---- */

static char *stories(const char *file) {
    const char *sh = t_shared();
    if (!sh) return NULL;
    char *p = t_fmt("%s/models/stories260K/%s", sh, file);
    if (!rl_path_exists(p)) return free(p), NULL;
    return p;
}

typedef struct model_fixture {
    rl_model m;
    rl_tokenizer *tok;
} model_fixture;

static void open_stories(model_fixture *f) {
    char *bin = stories("stories260K.bin"), *tok = stories("tok512.bin");
    if (!bin || !tok) SKIP("../shared/models/stories260K is not here (a clone without the shared folder)");
    rl_error err = {0};
    CHECK_OK(rl_model_load(&f->m, bin, &err));
    CHECK_OK(rl_tok_load(&f->tok, tok, &err));
    free(bin);
    free(tok);
}

static void close_stories(model_fixture *f) {
    rl_model_free(&f->m);
    rl_tok_free(f->tok);
}

typedef struct collect {
    rl_buf text;
    int calls;
    int stop_after;
} collect;

static int on_piece(void *ctx, const rl_gen_piece *pc) {
    collect *c = ctx;
    rl_buf_append(&c->text, pc->text, pc->len);
    CHECK(rl_utf8_valid(pc->text, pc->len));
    c->calls++;
    return c->stop_after && c->calls >= c->stop_after;
}

TEST(generate_greedy_matches_llama2c_reference_and_streams) {
    model_fixture f = {0};
    open_stories(&f);
    char *ref_path = stories("reference_greedy_200.txt"), *want = NULL;
    size_t wl;
    if (!ref_path) SKIP("no reference_greedy_200.txt");
    CHECK_OK(rl_file_read(ref_path, 0, &want, &wl, NULL));
    rl_infer *inf;
    rl_error err = {0};
    CHECK_OK(rl_infer_new(&inf, &f.m, f.tok, 0, &err));
    CHECK_EQ_INT(rl_infer_n_ctx(inf), f.m.cfg.max_seq_len);
    int32_t *ids;
    size_t n;
    CHECK_OK(rl_infer_tokenize(inf, "", 0, 1, &ids, &n, &err));
    CHECK_EQ_INT(n, 1);
    rl_gen_params p = {.sampling = rl_sampler_defaults(), .max_tokens = 200};
    p.sampling.temperature = 0;
    collect c = {0};
    rl_gen_result r;
    CHECK_OK(rl_infer_generate(inf, ids, n, &p, on_piece, &c, &r, &err));
    CHECK_EQ_STR(r.text, want);
    CHECK_EQ_STR(c.text.data, want);
    CHECK_EQ_INT(r.n_gen, 200);
    CHECK_EQ_INT(r.finish, RL_FINISH_LENGTH);
    CHECK(c.calls >= 190);
    // again: the prompt is in the cache, the text is the same
    rl_gen_result r2;
    CHECK_OK(rl_infer_generate(inf, ids, n, &p, NULL, NULL, &r2, &err));
    CHECK_EQ_STR(r2.text, want);
    rl_gen_result_free(&r2);
    // a longer prompt that extends the cached text reuses it and agrees with a fresh context
    int32_t *ids2;
    size_t n2;
    CHECK_OK(rl_infer_tokenize(inf, "Once upon a time, there was a little girl", 41, 1, &ids2, &n2, &err));
    p.max_tokens = 40;
    CHECK_OK(rl_infer_generate(inf, ids2, n2, &p, NULL, NULL, &r2, &err));
    CHECK(r2.n_cached > 1);
    rl_infer *fresh;
    CHECK_OK(rl_infer_new(&fresh, &f.m, f.tok, 300, &err));
    rl_gen_result r3;
    CHECK_OK(rl_infer_generate(fresh, ids2, n2, &p, NULL, NULL, &r3, &err));
    CHECK_EQ_INT(r3.n_cached, 0);
    CHECK_EQ_STR(r2.text, r3.text);
    rl_gen_result_free(&r2);
    rl_gen_result_free(&r3);
    rl_infer_free(fresh);
    free(ids2);
    rl_gen_result_free(&r);
    rl_buf_free(&c.text);
    free(ids);
    free(want);
    free(ref_path);
    rl_infer_free(inf);
    close_stories(&f);
}

TEST(generate_greedy_matches_raftlm_generate_with_a_prompt) {
    model_fixture f = {0};
    open_stories(&f);
    char *bin = stories("stories260K.bin"), *tokp = stories("tok512.bin"), *want = NULL;
    CHECK_EQ_INT(t_run(t_fmt("%s generate --model %s --tokenizer %s --prompt 'Lily and Ben' --temp 0 -n 60 2>/dev/null",
                             t_bin(), bin, tokp), &want, 0), 0);
    rl_infer *inf;
    CHECK_OK(rl_infer_new(&inf, &f.m, f.tok, 0, NULL));
    int32_t *ids;
    size_t n;
    CHECK_OK(rl_infer_tokenize(inf, "Lily and Ben", 12, 1, &ids, &n, NULL));
    rl_gen_params p = {.sampling = rl_sampler_defaults(), .max_tokens = 60};
    p.sampling.temperature = 0;
    rl_gen_result r;
    CHECK_OK(rl_infer_generate(inf, ids, n, &p, NULL, NULL, &r, NULL));
    CHECK_EQ_STR(r.text, want);
    rl_gen_result_free(&r);
    free(ids);
    free(want);
    free(bin);
    free(tokp);
    rl_infer_free(inf);
    close_stories(&f);
}

TEST(generate_stop_strings_limits_seeds_cancel) {
    model_fixture f = {0};
    open_stories(&f);
    rl_infer *inf;
    rl_error err = {0};
    CHECK_OK(rl_infer_new(&inf, &f.m, f.tok, 64, &err));
    int32_t bos = 1;
    rl_gen_params p = {.sampling = rl_sampler_defaults(), .max_tokens = 100};
    p.sampling.temperature = 0;
    // greedy starts "Once upon a time, there was a little girl named Lily."
    const char *stop[1] = {"little"};
    p.stop = stop;
    p.n_stop = 1;
    collect c = {0};
    rl_gen_result r;
    CHECK_OK(rl_infer_generate(inf, &bos, 1, &p, on_piece, &c, &r, &err));
    CHECK_EQ_STR(r.text, "Once upon a time, there was a ");
    CHECK_EQ_STR(c.text.data, "Once upon a time, there was a ");
    CHECK_EQ_INT(r.finish, RL_FINISH_STOP);
    rl_gen_result_free(&r);
    rl_buf_free(&c.text);
    // context: 64 positions, so at most 64 tokens after BOS
    p.n_stop = 0;
    p.ignore_eos = 1;
    CHECK_OK(rl_infer_generate(inf, &bos, 1, &p, NULL, NULL, &r, &err));
    CHECK_EQ_INT(r.finish, RL_FINISH_LENGTH);
    CHECK_EQ_INT(r.n_gen, 64);
    rl_gen_result_free(&r);
    // a prompt as long as the context is refused
    int32_t longp[64];
    for (int i = 0; i < 64; i++) longp[i] = i ? 300 : 1;
    CHECK(rl_infer_generate(inf, longp, 64, &p, NULL, NULL, &r, &err) == RL_EINVAL);
    CHECK_CONTAINS(err.msg, "context");
    rl_gen_result_free(&r);
    int32_t badp[2] = {1, 100000};
    CHECK(rl_infer_generate(inf, badp, 2, &p, NULL, NULL, &r, &err) == RL_EINVAL);
    rl_gen_result_free(&r);
    // seeds: same seed same text, another seed another text (at temperature 1)
    p.sampling.temperature = 1.0f;
    p.max_tokens = 40;
    char *texts[3];
    for (int i = 0; i < 3; i++) {
        p.sampling.seed = i == 2 ? 99 : 5;
        CHECK_OK(rl_infer_generate(inf, &bos, 1, &p, NULL, NULL, &r, &err));
        texts[i] = rl_xstrdup(r.text);
        rl_gen_result_free(&r);
    }
    CHECK_EQ_STR(texts[0], texts[1]);
    CHECK(strcmp(texts[0], texts[2]) != 0);
    for (int i = 0; i < 3; i++) free(texts[i]);
    // the callback stops it; a cancel flag stops it; logprobs come per token
    c = (collect){.stop_after = 5};
    p.sampling.n_probs = 2;
    CHECK_OK(rl_infer_generate(inf, &bos, 1, &p, on_piece, &c, &r, &err));
    CHECK_EQ_INT(r.finish, RL_FINISH_CANCELLED);
    CHECK_EQ_INT(r.n_gen, 5);
    CHECK(r.logprobs && r.top);
    for (int i = 0; i < r.n_gen; i++) CHECK(r.logprobs[i] <= 0 && r.top[2 * i].logprob >= r.logprobs[i]);
    rl_gen_result_free(&r);
    rl_buf_free(&c.text);
    volatile int cancel = 1;
    p.cancel = &cancel;
    CHECK_OK(rl_infer_generate(inf, &bos, 1, &p, NULL, NULL, &r, &err));
    CHECK_EQ_INT(r.finish, RL_FINISH_CANCELLED);
    CHECK_EQ_INT(r.n_gen, 0);
    rl_gen_result_free(&r);
    rl_infer_free(inf);
    close_stories(&f);
}

/* ---- quantized weights ---- */

static float frand(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((*s >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}

TEST(fp16_conversion_round_trips) {
    float exact[] = {0.0f, 1.0f, -2.0f, 0.5f, 65504.0f, 0x1p-24f, -0x1p-14f, 1024.0f, 0.333251953125f};
    for (size_t i = 0; i < sizeof exact / sizeof *exact; i++)
        CHECK_MSG(rl_fp16_to_fp32(rl_fp32_to_fp16(exact[i])) == exact[i], "%g", exact[i]);
    CHECK_EQ_INT(rl_fp32_to_fp16(1.0f), 0x3c00);
    CHECK_EQ_INT(rl_fp32_to_fp16(-2.0f), 0xc000);
    CHECK_EQ_INT(rl_fp32_to_fp16(1e9f), 0x7c00); // overflow: infinity
    CHECK_EQ_INT(rl_fp32_to_fp16(1.0f + 0x1p-11f), 0x3c00); // a tie rounds to even
    CHECK_EQ_INT(rl_fp32_to_fp16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
    uint64_t s = 1;
    for (int i = 0; i < 100000; i++) {
        float x = frand(&s) * 1000.0f;
        float y = rl_fp16_to_fp32(rl_fp32_to_fp16(x));
        CHECK_MSG(fabsf(y - x) <= fabsf(x) * 0x1p-11f + 0x1p-24f, "%g -> %g", x, y);
    }
}

TEST(q8_0_quantize_error_and_dot_kernels_agree) {
    uint64_t s = 7;
    size_t n = 4096, nb = n / RL_Q8_0_BLOCK;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *dx = malloc(n * sizeof *dx);
    rl_block_q8_0 *qx = malloc(nb * sizeof *qx), *qy = malloc(nb * sizeof *qy);
    for (size_t i = 0; i < n; i++) x[i] = frand(&s) * (i % 97 == 0 ? 30.0f : 1.0f), y[i] = frand(&s);
    x[5] = 0; // a block that is all zeros
    for (int i = 64; i < 96; i++) x[i] = 0.0f;
    rl_q8_0_quantize(qx, x, n);
    rl_q8_0_quantize(qy, y, n);
    rl_q8_0_dequantize(dx, qx, n);
    double worst = 0;
    for (size_t b = 0; b < nb; b++) {
        float d = rl_fp16_to_fp32(qx[b].d);
        for (int i = 0; i < RL_Q8_0_BLOCK; i++) {
            size_t k = b * RL_Q8_0_BLOCK + i;
            double e = fabs(dx[k] - x[k]) / (d > 0 ? d : 1);
            if (e > worst) worst = e;
            CHECK(qx[b].qs[i] >= -127 && qx[b].qs[i] <= 127);
        }
    }
    CHECK_MSG(worst <= 0.5 + 0.01 * 127, "dequantized error %.3f scales", worst); // fp16 scale rounding
    CHECK_EQ_INT(qx[2].d, 0);
    // the kernel this CPU runs against the scalar reference, and against float math
    const char *name;
    rl_q8_0_dot_fn dot = rl_q8_0_dot_kernel(&name);
    double maxerr = 0;
    for (size_t len = 1; len <= nb; len = len * 2 + 1) {
        float a = dot(qx, qy, len), r = rl_q8_0_dot_ref(qx, qy, len);
        double norm = 0;
        for (size_t b = 0; b < len; b++)
            for (int i = 0; i < RL_Q8_0_BLOCK; i++)
                norm += fabs((double)rl_fp16_to_fp32(qx[b].d) * qx[b].qs[i] * rl_fp16_to_fp32(qy[b].d) * qy[b].qs[i]);
        double e = fabs((double)a - r) / (norm > 0 ? norm : 1);
        if (e > maxerr) maxerr = e;
    }
    printf("    q8_0 dot: kernel %s vs scalar, max normalised error %.1e (tol 1e-6)\n", name, maxerr);
    CHECK(maxerr < 1e-6);
    // the quantized dot against the float dot of the original vectors
    double fd = 0, fn = 0;
    for (size_t i = 0; i < n; i++) fd += (double)x[i] * y[i], fn += fabs((double)x[i] * y[i]);
    double qe = fabs(dot(qx, qy, nb) - fd) / fn;
    printf("    q8_0 dot vs float32 dot: normalised error %.1e (tol 1e-2)\n", qe);
    CHECK(qe < 1e-2);
    free(x), free(y), free(dx), free(qx), free(qy);
}

static void quantized_tracks_float32(rl_wtype type, double max_rel, int min_agree_pct, double max_dnll) {
    model_fixture f = {0};
    open_stories(&f);
    rl_error err = {0};
    rl_qmodel *q;
    CHECK_OK(rl_qmodel_new(&q, &f.m, type, &err));
    rl_infer *a, *b;
    CHECK_OK(rl_infer_new(&a, &f.m, f.tok, 0, &err));
    rl_infer_opts o = {.q = q, .n_threads = 2};
    CHECK_OK(rl_infer_new_ex(&b, &f.m, f.tok, &o, &err));
    // teacher-forced along the greedy float32 text: logits error and argmax agreement
    int32_t bos = 1;
    rl_gen_params p = {.sampling = rl_sampler_defaults(), .max_tokens = 200};
    p.sampling.temperature = 0;
    rl_gen_result r;
    CHECK_OK(rl_infer_generate(a, &bos, 1, &p, NULL, NULL, &r, &err));
    int V = f.m.cfg.vocab_size, agree = 0, n = r.n_gen;
    double se = 0, ss = 0, nll_f = 0, nll_q = 0;
    int tok = bos;
    float *la = malloc((size_t)V * sizeof *la);
    for (int t = 0; t < n; t++) {
        float *l1, *l2;
        CHECK_OK(rl_infer_decode(a, tok, t, &l1, &err));
        memcpy(la, l1, (size_t)V * sizeof *la);
        CHECK_OK(rl_infer_decode(b, tok, t, &l2, &err));
        int am = 0, bm = 0;
        double za = 0, zb = 0, ma = la[0], mb = l2[0];
        for (int i = 0; i < V; i++) {
            se += (double)(la[i] - l2[i]) * (la[i] - l2[i]);
            ss += (double)la[i] * la[i];
            if (la[i] > la[am]) am = i;
            if (l2[i] > l2[bm]) bm = i;
            if (la[i] > ma) ma = la[i];
            if (l2[i] > mb) mb = l2[i];
        }
        for (int i = 0; i < V; i++) za += exp(la[i] - ma), zb += exp(l2[i] - mb);
        int next = r.tokens[t];
        nll_f += -(la[next] - ma - log(za));
        nll_q += -(l2[next] - mb - log(zb));
        agree += am == bm;
        tok = next;
    }
    double rel = sqrt(se / ss);
    printf("    stories260K %s (%s, %zu KiB of matrices): logits rel. RMS error %.4f, argmax agreement %d/%d, "
           "NLL of the greedy text %.4f (float32 %.4f)\n", type == RL_WTYPE_Q4_0 ? "Q4_0" : "Q8_0", rl_qmodel_kernel(q), rl_qmodel_bytes(q) / 1024, rel, agree, n,
           nll_q / n, nll_f / n);
    CHECK(rel < max_rel);
    CHECK(agree * 100 >= n * min_agree_pct);
    CHECK(fabs(nll_q - nll_f) / n < max_dnll);
    // and it generates through the same loop
    rl_gen_result r2;
    CHECK_OK(rl_infer_generate(b, &bos, 1, &p, NULL, NULL, &r2, &err));
    CHECK(r2.n_gen > 20);
    if (type == RL_WTYPE_Q8_0) CHECK_MSG(strncmp(r2.text, "Once upon a time", 16) == 0, "Q8_0 text: %.60s", r2.text);
    rl_gen_result_free(&r2);
    rl_gen_result_free(&r);
    free(la);
    rl_infer_free(a);
    rl_infer_free(b);
    rl_qmodel_free(q);
    close_stories(&f);
}

TEST(q8_0_inference_tracks_float32_on_stories260k) { quantized_tracks_float32(RL_WTYPE_Q8_0, 0.05, 90, 0.05); }

TEST(q4_0_inference_tracks_float32_on_stories260k) { quantized_tracks_float32(RL_WTYPE_Q4_0, 0.25, 60, 0.5); }

TEST(batched_prompts_match_token_by_token) {
    model_fixture f = {0};
    open_stories(&f);
    rl_error err = {0};
    int32_t *ids;
    size_t n;
    const char *text = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
                       "One day, she saw a big, red ball. She wanted to play with it, but it was too high. Lily's mom "
                       "said, \"Lily, let's go to the park.\" Lily was sad and didn't know what to do.";
    rl_infer *tmp;
    CHECK_OK(rl_infer_new(&tmp, &f.m, f.tok, 0, &err));
    char text2[1024];
    snprintf(text2, sizeof text2, "%s %s", text, text); // more than one batch of PREFILL_T (128)
    CHECK_OK(rl_infer_tokenize(tmp, text2, strlen(text2), 1, &ids, &n, &err));
    rl_infer_free(tmp);
    CHECK_MSG(n > PREFILL_T && n + 60 < 512, "%zu prompt tokens", n); // two batches, and room for the answer
    rl_qmodel *q;
    CHECK_OK(rl_qmodel_new(&q, &f.m, RL_WTYPE_Q8_0, &err));
    int V = f.m.cfg.vocab_size;
    rl_gen_params p = {.sampling = rl_sampler_defaults(), .max_tokens = 60};
    p.sampling.temperature = 0;
    // Q8_0: batched and one by one give the same bits (logits after the prompt, then the text)
    float *logit[2];
    char *texts[2];
    int n_cached[2];
    for (int b = 0; b < 2; b++) {
        rl_infer_opts o = {.q = q, .batch_prompt = b ? 1 : -1, .n_threads = b ? 2 : 1};
        rl_infer *inf;
        CHECK_OK(rl_infer_new_ex(&inf, &f.m, f.tok, &o, &err));
        rl_gen_result r;
        CHECK_OK(rl_infer_generate(inf, ids, n, &p, NULL, NULL, &r, &err));
        texts[b] = rl_xstrdup(r.text);
        n_cached[b] = r.n_cached;
        rl_gen_result_free(&r);
        // the logits of the prompt's last token, from a fresh context
        rl_infer *inf2;
        CHECK_OK(rl_infer_new_ex(&inf2, &f.m, f.tok, &o, &err));
        p.max_tokens = 1;
        p.sampling.n_probs = 0;
        CHECK_OK(rl_infer_generate(inf2, ids, n, &p, NULL, NULL, &r, &err));
        rl_gen_result_free(&r);
        float *l;
        CHECK_OK(rl_infer_decode(inf2, ids[n - 1], (int)n - 1, &l, &err)); // recompute the last position
        logit[b] = malloc((size_t)V * sizeof(float));
        memcpy(logit[b], l, (size_t)V * sizeof(float));
        p.max_tokens = 60;
        rl_infer_free(inf2);
        rl_infer_free(inf);
    }
    CHECK_EQ_INT(n_cached[0], 0);
    CHECK_EQ_STR(texts[0], texts[1]);
    CHECK(memcmp(logit[0], logit[1], (size_t)V * sizeof(float)) == 0);
    for (int b = 0; b < 2; b++) free(texts[b]), free(logit[b]);
    // float32 batched (sgemm) against rl_model_decode: close, not bitwise
    rl_infer *a, *bt;
    CHECK_OK(rl_infer_new(&a, &f.m, f.tok, 0, &err));
    rl_infer_opts o = {.batch_prompt = 1};
    CHECK_OK(rl_infer_new_ex(&bt, &f.m, f.tok, &o, &err));
    p.max_tokens = 1;
    rl_gen_result r;
    CHECK_OK(rl_infer_generate(a, ids, n - 1, &p, NULL, NULL, &r, &err));
    rl_gen_result_free(&r);
    CHECK_OK(rl_infer_generate(bt, ids, n - 1, &p, NULL, NULL, &r, &err));
    rl_gen_result_free(&r);
    float *la, *lb;
    CHECK_OK(rl_infer_decode(a, ids[n - 1], (int)n - 1, &la, &err));
    float *copy = malloc((size_t)V * sizeof *copy);
    memcpy(copy, la, (size_t)V * sizeof *copy);
    CHECK_OK(rl_infer_decode(bt, ids[n - 1], (int)n - 1, &lb, &err));
    double se = 0, ss = 0;
    for (int i = 0; i < V; i++) se += (double)(copy[i] - lb[i]) * (copy[i] - lb[i]), ss += (double)copy[i] * copy[i];
    printf("    float32 batched prompt vs one by one: logits rel. RMS difference %.1e (tol 1e-4)\n", sqrt(se / ss));
    CHECK(sqrt(se / ss) < 1e-4);
    rl_infer_free(a);
    rl_infer_free(bt);
    // float32 rl_qmodel (the threaded decoding kernels): batched through rl_sgemm vs one by one
    rl_qmodel *qf;
    CHECK_OK(rl_qmodel_new(&qf, &f.m, RL_WTYPE_F32, &err));
    rl_infer_opts of1 = {.q = qf, .batch_prompt = -1}, of2 = {.q = qf, .batch_prompt = 1, .n_threads = 2};
    CHECK_OK(rl_infer_new_ex(&a, &f.m, f.tok, &of1, &err));
    CHECK_OK(rl_infer_new_ex(&bt, &f.m, f.tok, &of2, &err));
    CHECK_OK(rl_infer_generate(a, ids, n - 1, &p, NULL, NULL, &r, &err));
    rl_gen_result_free(&r);
    CHECK_OK(rl_infer_generate(bt, ids, n - 1, &p, NULL, NULL, &r, &err));
    rl_gen_result_free(&r);
    CHECK_OK(rl_infer_decode(a, ids[n - 1], (int)n - 1, &la, &err));
    memcpy(copy, la, (size_t)V * sizeof *copy);
    CHECK_OK(rl_infer_decode(bt, ids[n - 1], (int)n - 1, &lb, &err));
    se = ss = 0;
    for (int i = 0; i < V; i++) se += (double)(copy[i] - lb[i]) * (copy[i] - lb[i]), ss += (double)copy[i] * copy[i];
    printf("    float32 qmodel, batched prompt (rl_sgemm) vs one by one: logits rel. RMS difference %.1e (tol 1e-4)\n",
           sqrt(se / ss));
    CHECK(sqrt(se / ss) < 1e-4);
    free(copy);
    rl_infer_free(a);
    rl_infer_free(bt);
    rl_qmodel_free(qf);
    rl_qmodel_free(q);
    free(ids);
    close_stories(&f);
}

TEST(q4_0_quantize_error_and_dot_kernels_agree) {
    uint64_t s = 9;
    size_t n = 4096, nb = n / RL_Q8_0_BLOCK;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *dx = malloc(n * sizeof *dx);
    rl_block_q4_0 *qx = malloc(nb * sizeof *qx);
    rl_block_q8_0 *qy = malloc(nb * sizeof *qy);
    for (size_t i = 0; i < n; i++) x[i] = frand(&s) * (i % 89 == 0 ? 20.0f : 1.0f), y[i] = frand(&s);
    for (int i = 64; i < 96; i++) x[i] = 0.0f; // an all-zero block
    rl_q4_0_quantize(qx, x, n);
    rl_q8_0_quantize(qy, y, n);
    rl_q4_0_dequantize(dx, qx, n);
    double worst = 0;
    for (size_t b = 0; b < nb; b++) {
        float d = fabsf(rl_fp16_to_fp32(qx[b].d));
        for (int i = 0; i < RL_Q8_0_BLOCK; i++) {
            size_t k = b * RL_Q8_0_BLOCK + i;
            double e = fabs(dx[k] - x[k]) / (d > 0 ? d : 1);
            if (e > worst) worst = e;
        }
    }
    // half a step, except a value of the other sign as large as the block's extreme, which
    // Q4_0's range [-8, 7] clamps by one step (as in llama.cpp); plus the scale's fp16 rounding
    CHECK_MSG(worst <= 1.0 + 8 * 0x1p-10, "dequantized error %.4f steps", worst);
    CHECK(rl_fp16_to_fp32(qx[2].d) == 0.0f);
    const char *name;
    rl_q4_0_dot_fn dot = rl_q4_0_dot_kernel(&name);
    double maxerr = 0;
    for (size_t len = 1; len <= nb; len = len * 2 + 1) {
        float a = dot(qx, qy, len), r = rl_q4_0_dot_ref(qx, qy, len);
        double norm = 0;
        float *wv = malloc(len * RL_Q8_0_BLOCK * sizeof *wv), *xv = malloc(len * RL_Q8_0_BLOCK * sizeof *xv);
        rl_q4_0_dequantize(wv, qx, len * RL_Q8_0_BLOCK);
        rl_q8_0_dequantize(xv, qy, len * RL_Q8_0_BLOCK);
        for (size_t i = 0; i < len * RL_Q8_0_BLOCK; i++) norm += fabs((double)wv[i] * xv[i]);
        double e = fabs((double)a - r) / (norm > 0 ? norm : 1);
        if (e > maxerr) maxerr = e;
        free(wv), free(xv);
    }
    printf("    q4_0 x q8_0 dot: kernel %s vs scalar, max normalised error %.1e (tol 1e-6)\n", name, maxerr);
    CHECK(maxerr < 1e-6);
    double fd = 0, fn = 0;
    for (size_t i = 0; i < n; i++) fd += (double)x[i] * y[i], fn += fabs((double)x[i] * y[i]);
    double qe = fabs(dot(qx, qy, nb) - fd) / fn;
    printf("    q4_0 dot vs float32 dot: normalised error %.1e (tol 5e-2)\n", qe);
    CHECK(qe < 5e-2);
    free(x), free(y), free(dx), free(qx), free(qy);
}

/* ---- K-quants and float32 rows ---- */

/* Relative RMS error of the dequantized values, and the kernels against the scalar reference
 * (normalised by sum |w x|), and the reference against the float dot of the dequantized sides. */
static void kquant_check(int type, double max_rel) {
    uint64_t s = 21;
    size_t n = 8192, nb = n / RL_QK_K;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *dx = malloc(n * sizeof *dx), *dy = malloc(n * sizeof *dy);
    for (size_t i = 0; i < n; i++) x[i] = frand(&s) * (i % 97 == 0 ? 12.0f : 1.0f) + (i >= 4096 ? 0.3f : 0.0f), y[i] = frand(&s);
    for (int i = 256; i < 512; i++) x[i] = 0.0f;        // an all-zero super-block
    for (int i = 512; i < 768; i++) x[i] = fabsf(x[i]); // all positive: Q4_K's min is 0
    size_t bs = type == RL_WTYPE_Q4_K ? sizeof(rl_block_q4_k) : sizeof(rl_block_q6_k);
    uint8_t *qx = malloc(nb * bs);
    rl_block_q8_k *qy = malloc(nb * sizeof *qy);
    CHECK(rl_ggml_quantize_row(type, qx, x, n));
    rl_ggml_dequant(type, qx, dx, n);
    rl_q8_k_quantize(qy, y, n);
    for (size_t i = 0; i < n; i++) dy[i] = qy[i / RL_QK_K].d * qy[i / RL_QK_K].qs[i % RL_QK_K];
    int bsums_ok = 1;
    for (size_t b = 0; b < nb; b++)
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            for (int i = 0; i < 16; i++) sum += qy[b].qs[g * 16 + i];
            bsums_ok &= sum == qy[b].bsums[g];
        }
    CHECK(bsums_ok);
    double se = 0, ss = 0;
    for (size_t i = 0; i < n; i++) se += (double)(dx[i] - x[i]) * (dx[i] - x[i]), ss += (double)x[i] * x[i];
    for (int i = 256; i < 512; i++) CHECK(dx[i] == 0.0f);
    double rel = sqrt(se / ss);
    const char *tn = type == RL_WTYPE_Q4_K ? "q4_k" : "q6_k", *name;
    printf("    %s: dequantized relative RMS error %.4f (tol %.3f)\n", tn, rel, max_rel);
    CHECK(rel < max_rel);
    rl_q4_k_dot_fn d4 = rl_q4_k_dot_kernel(&name);
    rl_q6_k_dot_fn d6 = rl_q6_k_dot_kernel(NULL);
    double kerr = 0, rerr = 0;
    for (size_t len = 1; len <= nb; len = len * 2 + 1) {
        float a, r;
        if (type == RL_WTYPE_Q4_K) a = d4((const rl_block_q4_k *)qx, qy, len), r = rl_q4_k_dot_ref((const rl_block_q4_k *)qx, qy, len);
        else a = d6((const rl_block_q6_k *)qx, qy, len), r = rl_q6_k_dot_ref((const rl_block_q6_k *)qx, qy, len);
        double f = 0, norm = 0;
        for (size_t i = 0; i < len * RL_QK_K; i++) f += (double)dx[i] * dy[i], norm += fabs((double)dx[i] * dy[i]);
        norm = norm > 0 ? norm : 1;
        kerr = fmax(kerr, fabs((double)a - r) / norm);
        rerr = fmax(rerr, fabs((double)r - f) / norm);
    }
    printf("    %s x q8_k dot: kernel %s vs scalar %.1e (tol 1e-6); scalar vs dequantized float dot %.1e (tol 1e-5)\n", tn,
           name, kerr, rerr);
    CHECK(kerr < 1e-6);
    CHECK(rerr < 1e-5);
    double fd = 0, fn = 0, qd = type == RL_WTYPE_Q4_K ? d4((const rl_block_q4_k *)qx, qy, nb) : d6((const rl_block_q6_k *)qx, qy, nb);
    for (size_t i = 0; i < n; i++) fd += (double)x[i] * y[i], fn += fabs((double)x[i] * y[i]);
    printf("    %s dot vs float32 dot: normalised error %.1e (tol 2e-2)\n", tn, fabs(qd - fd) / fn);
    CHECK(fabs(qd - fd) / fn < 2e-2);
    free(x), free(y), free(dx), free(dy), free(qx), free(qy);
}

TEST(q4_k_quantize_error_and_dot_kernels_agree) { kquant_check(RL_WTYPE_Q4_K, 0.12); }

TEST(q6_k_quantize_error_and_dot_kernels_agree) { kquant_check(RL_WTYPE_Q6_K, 0.03); }

/* The batched prompt's Q4_K kernel (one row against several tokens) gives every token the bits of
 * the one-token kernel, for every count of tokens (whole groups of four and the rest). */
TEST(q4_k_rows_kernel_gives_each_token_the_single_dot_bits) {
    enum { NB = 6, NT = 11, OS = 3 };
    uint64_t s = 77;
    float *w = malloc(NB * RL_QK_K * sizeof *w), *y = malloc(NB * RL_QK_K * sizeof *y);
    rl_block_q4_k *qw = malloc(NB * sizeof *qw);
    rl_block_q8_k *qy = malloc((size_t)NT * NB * sizeof *qy);
    for (int i = 0; i < NB * RL_QK_K; i++) w[i] = frand(&s) + (i % 300 == 0 ? 5.0f : 0.0f);
    CHECK(rl_ggml_quantize_row(RL_WTYPE_Q4_K, qw, w, NB * RL_QK_K));
    for (int t = 0; t < NT; t++) {
        for (int i = 0; i < NB * RL_QK_K; i++) y[i] = frand(&s) * (float)(t + 1);
        rl_q8_k_quantize(qy + (size_t)t * NB, y, NB * RL_QK_K);
    }
    const char *name;
    rl_q4_k_dot_fn one = rl_q4_k_dot_kernel(NULL);
    rl_q4_k_dot_rows_fn rows = rl_q4_k_dot_rows_kernel(&name);
    int same = 1;
    for (int nt = 1; nt <= NT; nt++) {
        float out[NT * OS];
        rows(qw, qy, NB, NB, nt, out, OS);
        for (int t = 0; t < nt; t++) {
            float a = one(qw, qy + (size_t)t * NB, NB);
            same &= memcmp(&a, &out[t * OS], sizeof a) == 0;
        }
    }
    printf("    q4_k rows kernel %s: 1..%d tokens, the one-token kernel's bits: %s\n", name, NT, same ? "yes" : "no");
    CHECK(same);
    free(w), free(y), free(qw), free(qy);
}

TEST(f32_dot_kernel_agrees) {
    uint64_t s = 5;
    float a[1000], b[1000];
    for (int i = 0; i < 1000; i++) a[i] = frand(&s), b[i] = frand(&s);
    const char *name;
    rl_f32_dot_fn dot = rl_f32_dot_kernel(&name);
    double worst = 0;
    for (size_t n = 0; n <= 1000; n += 7) {
        double norm = 0;
        for (size_t i = 0; i < n; i++) norm += fabs((double)a[i] * b[i]);
        worst = fmax(worst, fabs((double)dot(a, b, n) - rl_f32_dot_ref(a, b, n)) / (norm > 0 ? norm : 1));
    }
    printf("    f32 dot: kernel %s vs scalar, max normalised error %.1e (tol 1e-6)\n", name, worst);
    CHECK(worst < 1e-6);
}

TEST(every_simd_level_agrees_with_the_scalar_dots) {
    // the dispatcher picks one kernel; the others this CPU runs are checked here by steering it
    uint64_t s = 77;
    size_t n = 32 * 37, nb = n / RL_Q8_0_BLOCK;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    for (size_t i = 0; i < n; i++) x[i] = frand(&s), y[i] = frand(&s);
    rl_block_q8_0 *a = malloc(nb * sizeof *a), *b = malloc(nb * sizeof *b);
    rl_block_q4_0 *c = malloc(nb * sizeof *c);
    rl_q8_0_quantize(a, x, n);
    rl_q8_0_quantize(b, y, n);
    rl_q4_0_quantize(c, x, n);
    const char *levels[] = {NULL, "RAFTLM_NO_AVX512", "RAFTLM_NO_SIMD"};
    for (int l = 0; l < 3; l++) {
        if (levels[l]) setenv(levels[l], "1", 1);
        const char *n8, *n4;
        rl_q8_0_dot_fn d8 = rl_q8_0_dot_kernel(&n8);
        rl_q4_0_dot_fn d4 = rl_q4_0_dot_kernel(&n4);
        for (size_t len = 1; len <= nb; len += 3) {
            double norm = 0;
            for (size_t i = 0; i < len * RL_Q8_0_BLOCK; i++) norm += fabs((double)x[i] * y[i]);
            double e8 = fabs((double)d8(a, b, len) - rl_q8_0_dot_ref(a, b, len)) / norm;
            double e4 = fabs((double)d4(c, b, len) - rl_q4_0_dot_ref(c, b, len)) / norm;
            CHECK_MSG(e8 < 1e-6 && e4 < 1e-6, "%s / %s, %zu blocks: errors %.1e %.1e", n8, n4, len, e8, e4);
        }
        printf("    kernels %s / %s agree with the scalar references\n", n8, n4);
    }
    unsetenv("RAFTLM_NO_AVX512");
    unsetenv("RAFTLM_NO_SIMD");
    free(x), free(y), free(a), free(b), free(c);
}

TEST(packed_q8_0_q4_0_kernels_give_the_scalar_references_bits) {
    // 37 rows (two full groups of 16 and a partial one), 19 blocks, 1..11 and 32 tokens: every
    // output equals rl_q*_0_dot_ref on the row-major blocks, bit for bit
    uint64_t s = 5;
    int rows = 37, T = 32;
    size_t nb = 19, C = nb * RL_Q8_0_BLOCK;
    float *w = malloc((size_t)rows * C * sizeof *w), *x = malloc((size_t)T * C * sizeof *x);
    for (size_t i = 0; i < (size_t)rows * C; i++) w[i] = frand(&s) * (i % 97 == 0 ? 30.0f : 1.0f);
    for (size_t i = 0; i < (size_t)T * C; i++) x[i] = frand(&s) * (i % 61 == 0 ? 10.0f : 1.0f);
    for (size_t i = 64; i < 96; i++) x[i] = 0.0f; // an all-zero activation block
    rl_block_q8_0 *w8 = malloc((size_t)rows * nb * sizeof *w8), *x8 = malloc((size_t)T * nb * sizeof *x8);
    rl_block_q4_0 *w4 = malloc((size_t)rows * nb * sizeof *w4);
    rl_q8_0_quantize(w8, w, (size_t)rows * C);
    rl_q4_0_quantize(w4, w, (size_t)rows * C);
    rl_q8_0_quantize(x8, x, (size_t)T * C);
    infer_xq *xq = malloc((size_t)T * nb * sizeof *xq);
    infer_xq_quantize(xq, x, (size_t)T * C, infer_simd_level());
    int bad = 0;
    for (size_t b = 0; b < (size_t)T * nb; b++) {
        int sum = 0;
        for (int i = 0; i < RL_Q8_0_BLOCK; i++) {
            bad += xq[b].qs[i] != x8[b].qs[i] || xq[b].qu[i] != (uint8_t)(x8[b].qs[i] + 128);
            sum += x8[b].qs[i];
        }
        bad += xq[b].d != rl_fp16_to_fp32(x8[b].d) || xq[b].sum != sum;
    }
    CHECK_MSG(bad == 0, "activation blocks differ from rl_q8_0_quantize's in %d places", bad);
    if (infer_simd_level() < INFER_AVX512_VNNI) {
        free(w), free(x), free(w8), free(x8), free(w4), free(xq);
        SKIP("this CPU has no AVX-512 VNNI: matrices are not packed");
    }
    int groups = (rows + QPACK_R - 1) / QPACK_R;
    infer_q8_0x16 *p8 = malloc((size_t)groups * nb * sizeof *p8);
    infer_q4_0x16 *p4 = malloc((size_t)groups * nb * sizeof *p4);
    infer_pack_q8_0(p8, w8, rows, nb);
    infer_pack_q4_0(p4, w4, rows, nb);
    float *out = malloc((size_t)T * rows * sizeof *out);
    int counts[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 32};
    int diff8 = 0, diff4 = 0;
    for (size_t k = 0; k < sizeof counts / sizeof *counts; k++) {
        int nt = counts[k];
        for (int type = 0; type < 2; type++) {
            for (size_t i = 0; i < (size_t)T * rows; i++) out[i] = -1e30f;
            for (int g = 0; g < groups; g++) {
                int nr = rows - g * QPACK_R < QPACK_R ? rows - g * QPACK_R : QPACK_R;
                if (type == 0) infer_q8_0x16_mm(out + g * QPACK_R, (size_t)rows, p8 + (size_t)g * nb, xq, nb, nr, nt);
                else infer_q4_0x16_mm(out + g * QPACK_R, (size_t)rows, p4 + (size_t)g * nb, xq, nb, nr, nt);
            }
            for (int t = 0; t < T; t++)
                for (int r = 0; r < rows; r++) {
                    float o = out[(size_t)t * rows + r];
                    if (t >= nt) {
                        *(type ? &diff4 : &diff8) += o != -1e30f; // nothing written past T tokens
                        continue;
                    }
                    float ref = type == 0 ? rl_q8_0_dot_ref(w8 + (size_t)r * nb, x8 + (size_t)t * nb, nb)
                                          : rl_q4_0_dot_ref(w4 + (size_t)r * nb, x8 + (size_t)t * nb, nb);
                    *(type ? &diff4 : &diff8) += memcmp(&o, &ref, sizeof o) != 0;
                }
        }
    }
    printf("    packed 16-row kernels (avx512vnni), 37 x %zu, 1..32 tokens: outputs differing from the scalar "
           "references: Q8_0 %d, Q4_0 %d (tol 0)\n", C, diff8, diff4);
    CHECK_EQ_INT(diff8, 0);
    CHECK_EQ_INT(diff4, 0);
    free(w), free(x), free(w8), free(x8), free(w4), free(xq), free(p8), free(p4), free(out);
}

/* 37 rows (two full groups of 16 and a partial one), 3 super-blocks, 1..7 and 13 tokens: every
 * output of the packed K-quant kernels equals the scalar reference on the row-major blocks, bit
 * for bit. */
static int packed_k_check(int type) {
    uint64_t s = 9;
    int rows = 37, T = 13, k4 = type == RL_WTYPE_Q4_K;
    size_t nb = 3, C = nb * RL_QK_K, bs = k4 ? sizeof(rl_block_q4_k) : sizeof(rl_block_q6_k);
    float *w = malloc((size_t)rows * C * sizeof *w), *x = malloc((size_t)T * C * sizeof *x);
    for (size_t i = 0; i < (size_t)rows * C; i++) w[i] = frand(&s) * (i % 97 == 0 ? 30.0f : 1.0f) + (i % 700 < 256 ? 0.4f : 0.0f);
    for (size_t i = 0; i < (size_t)T * C; i++) x[i] = frand(&s) * (i % 61 == 0 ? 10.0f : 1.0f);
    for (size_t i = 256; i < 512; i++) x[i] = 0.0f; // an all-zero activation super-block
    uint8_t *wq = malloc((size_t)rows * nb * bs);
    rl_block_q8_k *xk = malloc((size_t)T * nb * sizeof *xk);
    for (int r = 0; r < rows; r++) CHECK(rl_ggml_quantize_row(type, wq + (size_t)r * nb * bs, w + (size_t)r * C, C));
    rl_q8_k_quantize(xk, x, (size_t)T * C);
    int groups = (rows + QPACK_R - 1) / QPACK_R;
    infer_q4_kx16 *p4 = k4 ? malloc((size_t)groups * nb * sizeof *p4) : NULL;
    infer_q6_kx16 *p6 = k4 ? NULL : malloc((size_t)groups * nb * sizeof *p6);
    if (k4) infer_pack_q4_k(p4, (const rl_block_q4_k *)wq, rows, nb);
    else infer_pack_q6_k(p6, (const rl_block_q6_k *)wq, rows, nb);
    float *out = malloc((size_t)T * rows * sizeof *out);
    int diff = 0;
    for (int nt = 1; nt <= T; nt = nt < 7 ? nt + 1 : T) {
        for (size_t i = 0; i < (size_t)T * rows; i++) out[i] = -1e30f;
        for (int g = 0; g < groups; g++) {
            int nr = rows - g * QPACK_R < QPACK_R ? rows - g * QPACK_R : QPACK_R;
            if (k4) infer_q4_kx16_mm(out + g * QPACK_R, (size_t)rows, p4 + (size_t)g * nb, xk, nb, nr, nt);
            else infer_q6_kx16_mm(out + g * QPACK_R, (size_t)rows, p6 + (size_t)g * nb, xk, nb, nr, nt);
        }
        for (int t = 0; t < T; t++)
            for (int r = 0; r < rows; r++) {
                float o = out[(size_t)t * rows + r];
                if (t >= nt) {
                    diff += o != -1e30f; // nothing written past the tokens asked for
                    continue;
                }
                const uint8_t *row = wq + (size_t)r * nb * bs;
                float ref = k4 ? rl_q4_k_dot_ref((const rl_block_q4_k *)row, xk + (size_t)t * nb, nb)
                               : rl_q6_k_dot_ref((const rl_block_q6_k *)row, xk + (size_t)t * nb, nb);
                diff += memcmp(&o, &ref, sizeof o) != 0;
            }
        if (nt == T) break;
    }
    printf("    packed %s kernel (avx512vnni), 37 x %zu, 1..7 and 13 tokens: outputs differing from the scalar reference: %d "
           "(tol 0)\n", k4 ? "Q4_K" : "Q6_K", C, diff);
    free(w), free(x), free(wq), free(xk), free(p4), free(p6), free(out);
    return diff;
}

TEST(packed_q4_k_q6_k_kernels_give_the_scalar_references_bits) {
    if (infer_simd_level() < INFER_AVX512_VNNI) SKIP("this CPU has no AVX-512 VNNI: matrices are not packed");
    CHECK_EQ_INT(packed_k_check(RL_WTYPE_Q4_K), 0);
    CHECK_EQ_INT(packed_k_check(RL_WTYPE_Q6_K), 0);
}

TEST(attention_kernel_agrees_with_rl_attention_decode) {
    // SmolLM2's heads (9 query, 3 KV, 64 wide) and a 128-wide one, 1..70 cached positions
    uint64_t s = 11;
    int max_T = 80, shapes[2][3] = {{9, 3, 64}, {4, 2, 128}};
    double worst = 0;
    for (int k = 0; k < 2; k++) {
        int NH = shapes[k][0], NKV = shapes[k][1], HD = shapes[k][2];
        size_t kd = (size_t)NKV * HD;
        float *q = malloc((size_t)NH * HD * sizeof *q), *kc = malloc(max_T * kd * sizeof *kc), *vc = malloc(max_T * kd * sizeof *vc);
        float *o1 = malloc((size_t)NH * HD * sizeof *o1), *o2 = malloc((size_t)NH * HD * sizeof *o2);
        float *att = malloc((size_t)NH * max_T * sizeof *att);
        for (int i = 0; i < NH * HD; i++) q[i] = frand(&s) * 2;
        for (size_t i = 0; i < max_T * kd; i++) kc[i] = frand(&s), vc[i] = frand(&s);
        for (int n = 1; n <= 70; n += 3) {
            rl_attention_decode(o1, att, max_T, q, kc, vc, n, NH, NKV, HD, 0.125f);
            for (int h = 0; h < NH; h++) // one head at a time, as the forward's threads run them
                infer_attention_head(infer_simd_level(), o2 + h * HD, att + (size_t)h * max_T, q + h * HD,
                                     kc + (size_t)(h / (NH / NKV)) * HD, vc + (size_t)(h / (NH / NKV)) * HD, (int)kd, n, HD, 0.125f);
            for (int i = 0; i < NH * HD; i++) worst = fmax(worst, fabs((double)o1[i] - o2[i]));
        }
        free(q), free(kc), free(vc), free(o1), free(o2), free(att);
    }
    printf("    attention (%s) vs rl_attention_decode: max abs difference %.1e (values ~1; tol 1e-5)\n",
           infer_simd_level() >= INFER_AVX512 ? "avx512" : "scalar", worst);
    CHECK(worst < 1e-5);
}

/* ---- continuous batching ---- */

typedef struct group_run {
    rl_infer *inf;
    const int32_t *ids;
    size_t n;
    int max_tokens;
    pthread_barrier_t *start;
    char *text;
    rl_status st;
} group_run;

static void *group_thread(void *arg) {
    group_run *r = arg;
    rl_gen_params p = {.sampling = rl_sampler_defaults(), .max_tokens = r->max_tokens};
    p.sampling.temperature = 0;
    rl_gen_result res;
    rl_error err = {0};
    pthread_barrier_wait(r->start);
    r->st = rl_infer_generate(r->inf, r->ids, r->n, &p, NULL, NULL, &res, &err);
    r->text = rl_xstrdup(res.text ? res.text : "");
    rl_gen_result_free(&res);
    return NULL;
}

TEST(group_decoding_gives_each_stream_its_single_stream_text) {
    // four contexts of one group generate at once (prompts of different lengths, answers of
    // different lengths: they join and leave at different steps); each greedy text equals the
    // same context's text alone, for Q8_0 and Q4_0
    model_fixture f = {0};
    open_stories(&f);
    rl_error err = {0};
    const char *prompts[4] = {"Once upon a time", "The little dog ran to the park and saw a big red ball. He",
                              "Lily", "One day, Tom and his mom went to the store to buy"};
    int max_tok[4] = {40, 70, 25, 55};
    int32_t *ids[4];
    size_t n[4];
    rl_infer *tmp;
    CHECK_OK(rl_infer_new(&tmp, &f.m, f.tok, 0, &err));
    for (int i = 0; i < 4; i++) CHECK_OK(rl_infer_tokenize(tmp, prompts[i], strlen(prompts[i]), 1, &ids[i], &n[i], &err));
    rl_infer_free(tmp);
    rl_wtype types[2] = {RL_WTYPE_Q8_0, RL_WTYPE_Q4_0};
    for (int ty = 0; ty < 2; ty++) {
        rl_qmodel *q;
        CHECK_OK(rl_qmodel_new(&q, &f.m, types[ty], &err));
        char *alone[4];
        for (int i = 0; i < 4; i++) {
            rl_infer_opts o = {.q = q};
            rl_infer *inf;
            CHECK_OK(rl_infer_new_ex(&inf, &f.m, f.tok, &o, &err));
            rl_gen_params p = {.sampling = rl_sampler_defaults(), .max_tokens = max_tok[i]};
            p.sampling.temperature = 0;
            rl_gen_result r;
            CHECK_OK(rl_infer_generate(inf, ids[i], n[i], &p, NULL, NULL, &r, &err));
            alone[i] = rl_xstrdup(r.text);
            rl_gen_result_free(&r);
            rl_infer_free(inf);
        }
        // whether streams overlap depends on the scheduler (on a loaded machine one may finish
        // before another has read its prompt): texts must match every time, and within a few
        // tries some step must have decoded several streams at once
        uint64_t steps = 0, toks = 0;
        for (int attempt = 0; attempt < 5 && !(steps > 0 && toks > steps); attempt++) {
            rl_infer_group *g;
            CHECK_OK(rl_infer_group_new(&g, &err));
            group_run runs[4];
            pthread_t th[4];
            pthread_barrier_t start;
            pthread_barrier_init(&start, NULL, 4);
            for (int i = 0; i < 4; i++) {
                rl_infer_opts o = {.q = q, .group = g, .n_threads = i == 0 ? 2 : 1};
                runs[i] = (group_run){.ids = ids[i], .n = n[i], .max_tokens = max_tok[i], .start = &start};
                CHECK_OK(rl_infer_new_ex(&runs[i].inf, &f.m, f.tok, &o, &err));
            }
            for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, group_thread, &runs[i]);
            int same = 0;
            for (int i = 0; i < 4; i++) {
                pthread_join(th[i], NULL);
                CHECK_OK(runs[i].st);
                same += strcmp(runs[i].text, alone[i]) == 0;
                CHECK_MSG(strcmp(runs[i].text, alone[i]) == 0, "stream %d: '%s' alone, '%s' in the group", i, alone[i], runs[i].text);
                free(runs[i].text);
                rl_infer_free(runs[i].inf);
            }
            rl_infer_group_stats(g, &steps, &toks);
            printf("    %s, try %d: 4 streams in one group, %d/4 texts equal to single-stream; %llu tokens in %llu steps (mean batch %.2f)\n",
                   ty ? "Q4_0" : "Q8_0", attempt + 1, same, (unsigned long long)toks, (unsigned long long)steps,
                   steps ? (double)toks / steps : 0);
            pthread_barrier_destroy(&start);
            rl_infer_group_free(g);
        }
        CHECK(steps > 0 && toks > steps); // some steps decoded several streams at once
        for (int i = 0; i < 4; i++) free(alone[i]);
        rl_qmodel_free(q);
    }
    // a group needs quantized weights
    rl_infer_group *g;
    CHECK_OK(rl_infer_group_new(&g, &err));
    rl_infer_opts o = {.group = g};
    rl_infer *inf;
    CHECK(rl_infer_new_ex(&inf, &f.m, f.tok, &o, &err) == RL_EINVAL);
    rl_infer_group_free(g);
    for (int i = 0; i < 4; i++) free(ids[i]);
    close_stories(&f);
}

/* ---- threads ---- */

TEST(decoding_does_not_depend_on_the_thread_count) {
    // a random model big enough for many 16-row groups per product (chunks over several threads),
    // 64-wide heads (the AVX-512 attention) and K-quant rows (256 columns): for every weight type,
    // 1, 2 and 3 threads give the same greedy tokens and the same logits bit for bit, through
    // batched prompts (two batches: more than PREFILL_T tokens) and single-token steps
    rl_error err = {0};
    rl_model m;
    rl_model_config c = {.arch = "llama", .dim = 256, .hidden_dim = 512, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                         .head_dim = 64, .vocab_size = 1000, .max_seq_len = 512, .norm_eps = 1e-5f, .bos_id = 1, .eos_id = 2};
    c.rope.theta = 10000.0f;
    CHECK_OK(rl_model_init(&m, &c, &err));
    uint64_t s = 5;
    for (size_t i = 0; i < m.w.n; i++) m.w.mem[i] = frand(&s) * 0.08f;
    for (int i = 0; i < c.n_layers * c.dim; i++) m.w.rms_att[i] = m.w.rms_ffn[i] = 1.0f;
    for (int i = 0; i < c.dim; i++) m.w.rms_final[i] = 1.0f;
    int32_t prompt[150];
    for (int i = 0; i < 150; i++) prompt[i] = 3 + (i * 37) % 990;
    rl_wtype types[5] = {RL_WTYPE_F32, RL_WTYPE_Q8_0, RL_WTYPE_Q4_0, RL_WTYPE_Q4_K, RL_WTYPE_Q6_K};
    const char *names[5] = {"F32", "Q8_0", "Q4_0", "Q4_K", "Q6_K"};
    for (int ty = 0; ty < 5; ty++) {
        rl_qmodel *q;
        CHECK_OK(rl_qmodel_new(&q, &m, types[ty], &err));
        char *text[3];
        float *logits[3];
        int n_gen[3];
        for (int k = 0; k < 3; k++) {
            // float32 prompts token by token (batches go through rl_sgemm, other sums)
            rl_infer_opts o = {.q = q, .n_threads = k + 1, .batch_prompt = ty == 0 ? -1 : 1};
            rl_infer *inf;
            CHECK_OK(rl_infer_new_ex(&inf, &m, NULL, &o, &err));
            rl_gen_params p = {.sampling = rl_sampler_defaults(), .max_tokens = 40, .ignore_eos = 1};
            p.sampling.temperature = 0;
            rl_gen_result r;
            CHECK_OK(rl_infer_generate(inf, prompt, 150, &p, NULL, NULL, &r, &err));
            text[k] = rl_xstrdup(r.text);
            n_gen[k] = r.n_gen;
            float *l;
            CHECK_OK(rl_infer_decode(inf, r.tokens[r.n_gen - 1], 150 + r.n_gen - 1, &l, &err));
            logits[k] = malloc((size_t)c.vocab_size * sizeof(float));
            memcpy(logits[k], l, (size_t)c.vocab_size * sizeof(float));
            rl_gen_result_free(&r);
            rl_infer_free(inf);
        }
        int same_logits = 1;
        for (int k = 1; k < 3; k++) {
            CHECK_EQ_INT(n_gen[k], n_gen[0]);
            CHECK_MSG(strcmp(text[k], text[0]) == 0, "%s: %d threads' tokens differ from 1 thread's", names[ty], k + 1);
            same_logits &= memcmp(logits[k], logits[0], (size_t)c.vocab_size * sizeof(float)) == 0;
        }
        char shown[25];
        snprintf(shown, sizeof shown, "%s", text[0]);
        for (char *ch = shown; *ch; ch++) *ch = *ch == '\n' ? ' ' : *ch;
        printf("    %s (%s): 150-token prompt + 40 greedy tokens (ids %.24s...) with 1, 2, 3 threads: logits %s\n", names[ty],
               rl_qmodel_kernel(q), shown, same_logits ? "bit-identical" : "DIFFER");
        CHECK(same_logits);
        for (int k = 0; k < 3; k++) free(text[k]), free(logits[k]);
        rl_qmodel_free(q);
    }
    rl_model_free(&m);
}
