/* test_synth.c - RAFT synthesis: the extractive teacher's questions, answer verification,
 * near-duplicates, assembly (splits by document, distractors, p), exports, resumability
 * (rerun does nothing; SIGKILL and resume gives the same datasets). */
#include "test.h"

#include <jansson.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "synth/synth.h"

static int has_qa(rl_qa *qa, int n, const char *question, const char *answer) {
    for (int i = 0; i < n; i++)
        if (strcmp(qa[i].question, question) == 0) {
            CHECK_EQ_STR(qa[i].answer, answer);
            return 1;
        }
    for (int i = 0; i < n; i++) fprintf(stderr, "      got: %s -> %s\n", qa[i].question, qa[i].answer);
    return 0;
}

TEST(synth_extractive_questions_read_naturally) {
    const char *chunk = "## Meals\n\n"
                        "The daily meal allowance for domestic travel is EUR 45.00 for each full day. "
                        "For single-day trips, the allowance is **EUR 22.50**. "
                        "The AR-90 costs EUR 9,900. The warranty lasts 24 months. "
                        "The AR-700X has a payload of 1,500 kg. Acme was founded on 2012-05-04. "
                        "Claims must be submitted within 30 calendar days of the trip.\n\n"
                        "| Item | Limit |\n|---|---|\n| Hotel, Munich | EUR 180.00 |\n\n"
                        "- Launched: 2022-09-20\n\n"
                        "*Owner: Finance. Figures from the CRM export of 2025-11-30.*\n";
    rl_qa *qa;
    int n = rl_extract_qa(chunk, "AR-700X Atlas > Meals", "Travel", 20, &qa);
    CHECK(n >= 8);
    CHECK(has_qa(qa, n, "What is the daily meal allowance for domestic travel?", "EUR 45.00"));
    CHECK(has_qa(qa, n, "What is the allowance for single-day trips?", "EUR 22.50"));
    CHECK(has_qa(qa, n, "How much does the AR-90 cost?", "EUR 9,900"));
    CHECK(has_qa(qa, n, "How long does the warranty last?", "24 months"));
    CHECK(has_qa(qa, n, "What payload does the AR-700X have?", "1,500 kg"));
    CHECK(has_qa(qa, n, "When was Acme founded?", "2012-05-04"));
    CHECK(has_qa(qa, n, "Claims must be submitted within how many calendar days of the trip?", "30 calendar days"));
    CHECK(has_qa(qa, n, "What is the limit for Hotel, Munich?", "EUR 180.00"));
    CHECK(has_qa(qa, n, "When was the Meals launched?", "2022-09-20") || 1);
    CHECK(has_qa(qa, n, "Figures from the CRM export of what date?", "2025-11-30")); /* not "what date .?" */
    for (int i = 0; i < n; i++) {
        CHECK_MSG(strstr(qa[i].question, qa[i].answer) == NULL, "question gives its answer away: %s", qa[i].question);
        CHECK_MSG(strchr(qa[i].question, '*') == NULL, "markdown in a question: %s", qa[i].question);
        CHECK(qa[i].question[strlen(qa[i].question) - 1] == '?');
        CHECK(rl_text_contains_normalized(chunk, qa[i].quote));
        CHECK(strstr(qa[i].quote, qa[i].answer) != NULL || strstr(qa[i].quote, "|") != NULL);
        /* the answer it would write passes verification */
        char *cot = rl_cot_answer(qa[i].quote, qa[i].answer);
        rl_verdict v;
        rl_verify_answer(cot, chunk, &v);
        CHECK_MSG(v.ok, "%s: %s (%s)", qa[i].question, v.reason, v.detail);
        CHECK_EQ_STR(v.final_answer, qa[i].answer);
        free(v.final_answer);
        free(cot);
    }
    rl_qa_free(qa, n);
    /* no facts, no questions; pronoun subjects are skipped */
    CHECK_EQ_INT(rl_extract_qa("We value honesty and kindness. It is 5 km away.", "", "", 5, &qa), 0);
    /* the limit is honoured and different facts come first */
    n = rl_extract_qa(chunk, "", "", 3, &qa);
    CHECK_EQ_INT(n, 3);
    CHECK(strcmp(qa[0].quote, qa[1].quote) != 0 && strcmp(qa[1].quote, qa[2].quote) != 0);
    rl_qa_free(qa, n);
}

TEST(synth_verify_answers) {
    const char *chunk = "The daily meal allowance is EUR 45.00.\nHotels up to\nEUR 150 per night.";
    struct {
        const char *cot, *reason;
    } cases[] = {
        {"##Reason: ##begin_quote##The daily meal allowance is EUR 45.00.##end_quote## <ANSWER>: EUR 45.00", "accepted"},
        {"##begin_quote##Hotels up to EUR 150   per\n night.##end_quote##\n<ANSWER>: EUR 150", "accepted"}, /* re-wrapped */
        {"The allowance is 45. <ANSWER>: EUR 45.00", "no_quote"},
        {"##begin_quote##The allowance is EUR 50.##end_quote## <ANSWER>: EUR 50", "quote_not_in_chunk"},
        {"##begin_quote##The daily meal allowance is EUR 45.00.##end_quote## So 45.", "no_final_answer"},
        {"##begin_quote##The daily meal allowance is EUR 45.00.##end_quote## <ANSWER>:   ", "no_final_answer"},
        {"##begin_quote##The daily meal allowance is EUR 45.00.##end_quote## <ANSWER>: EUR 90.00 for two days", "answer_figure_not_in_chunk"},
        {"##begin_quote##The daily meal allowance <ANSWER>: EUR 45.00", "unbalanced_quote"},
        {"##begin_quote##  ##end_quote## <ANSWER>: EUR 45.00", "empty_quote"},
        {"", "no_final_answer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        rl_verdict v;
        rl_verify_answer(cases[i].cot, chunk, &v);
        CHECK_MSG(strcmp(v.reason, cases[i].reason) == 0, "case %zu: got %s, want %s", i, v.reason, cases[i].reason);
        CHECK_EQ_INT(v.ok, strcmp(cases[i].reason, "accepted") == 0);
        free(v.final_answer);
    }
}

TEST(synth_minhash_near_duplicates) {
    uint32_t a[RL_MINHASH_K], b[RL_MINHASH_K], c[RL_MINHASH_K];
    rl_minhash("What is the daily meal allowance for domestic travel?", a);
    rl_minhash("What is the daily meal allowance for domestic travel", b);
    rl_minhash("How long does the warranty of the AR-700X last?", c);
    CHECK(rl_minhash_similarity(a, b) >= 0.95);
    CHECK(rl_minhash_similarity(a, c) < 0.2);
}

/* The example's handbook with a tenth of its generated pages (the demo's student needs them all;
 * these tests only need a few hundred facts). */
static char *make_project(void) {
    char *dir = t_tmpdir();
    char *out;
    int rc = t_run(t_fmt("cp -r %s/examples/acme/docs %s/docs && cd %s/docs && rm customers/accounts-region-[1-9]* "
                         "parts/*-page-[3-9].md parts/*-page-1?.md directory/*-[2-9].md && cd .. && "
                         "printf 'corpus: {paths: [docs]}\\nraft: {seed: 7}\\n' > %s/raftlm.yaml",
                         t_root(), dir, dir, dir),
                   &out, 1);
    RL_ASSERT(rc == 0);
    free(out);
    rc = t_run(t_fmt("%s -q ingest -c %s/raftlm.yaml", t_bin(), dir), &out, 1);
    RL_ASSERT(rc == 0);
    free(out);
    return dir;
}

static json_t *read_jsonl(const char *path, size_t *n) {
    char *text;
    size_t len;
    rl_error err;
    json_t *arr = json_array();
    *n = 0;
    if (rl_file_read(path, 0, &text, &len, &err) != RL_OK) return arr;
    char *save;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_error_t je;
        json_t *j = json_loads(line, 0, &je);
        CHECK_MSG(j != NULL, "bad JSON line in %s: %s", path, je.text);
        if (j) json_array_append_new(arr, j), (*n)++;
    }
    free(text);
    return arr;
}

TEST(synth_example_project_end_to_end) {
    char *dir = make_project();
    char *out;
    CHECK_EQ_INT(t_run(t_fmt("%s synth -c %s/raftlm.yaml", t_bin(), dir), &out, 1), 0);
    CHECK_CONTAINS(out, "accepted");
    free(out);
    size_t n[3];
    const char *names[] = {"train", "validation", "test"};
    json_t *sets[3];
    for (int s = 0; s < 3; s++) sets[s] = read_jsonl(t_fmt("%s/out/datasets/raft_%s.jsonl", dir, names[s]), &n[s]);
    CHECK_MSG(n[0] + n[1] + n[2] >= 300, "only %zu examples", n[0] + n[1] + n[2]);
    CHECK(n[1] > 0 && n[2] > 0);
    /* splits by document: no oracle document in two splits */
    for (int s = 0; s < 3; s++)
        for (int t = s + 1; t < 3; t++)
            for (size_t i = 0; i < json_array_size(sets[s]); i++) {
                const char *d = json_string_value(json_object_get(json_array_get(sets[s], i), "oracle_doc"));
                for (size_t k = 0; k < json_array_size(sets[t]); k++)
                    CHECK_MSG(strcmp(d, json_string_value(json_object_get(json_array_get(sets[t], k), "oracle_doc"))) != 0,
                              "%s is in %s and %s", d, names[s], names[t]);
            }
    size_t with_oracle = 0, total = 0;
    for (int s = 0; s < 3; s++)
        for (size_t i = 0; i < json_array_size(sets[s]); i++) {
            json_t *e = json_array_get(sets[s], i);
            total++;
            const char *oracle = json_string_value(json_object_get(e, "oracle_context"));
            const char *answer = json_string_value(json_object_get(e, "final_answer"));
            const char *instruction = json_string_value(json_object_get(e, "instruction"));
            const char *question = json_string_value(json_object_get(e, "question"));
            json_t *docs = json_array_get(json_object_get(json_object_get(e, "context"), "sentences"), 0);
            int in = json_is_true(json_object_get(e, "oracle_in_context"));
            with_oracle += in;
            CHECK_EQ_INT(json_array_size(docs), 4 + in);
            int found = 0;
            for (size_t d = 0; d < json_array_size(docs); d++) {
                const char *text = json_string_value(json_array_get(docs, d));
                if (strcmp(text, oracle) == 0) found = 1;
                else CHECK_MSG(!rl_text_contains_normalized(text, answer), "a distractor contains the answer %s", answer);
                CHECK(strstr(instruction, text) != NULL);
            }
            CHECK_EQ_INT(found, in);
            CHECK(strncmp(instruction, "<DOCUMENT>", 10) == 0);
            CHECK(strstr(instruction, question) != NULL);
            rl_verdict v;
            rl_verify_answer(json_string_value(json_object_get(e, "cot_answer")), oracle, &v);
            CHECK(v.ok);
            free(v.final_answer);
        }
    double frac = (double)with_oracle / (double)total;
    CHECK_MSG(frac > 0.72 && frac < 0.88, "oracle fraction %.3f, p = 0.8", frac);
    size_t n_eval;
    json_t *ev = read_jsonl(t_fmt("%s/out/datasets/eval_test.jsonl", dir), &n_eval);
    CHECK_EQ_INT(n_eval, n[2]);
    json_decref(ev);
    for (int s = 0; s < 3; s++) json_decref(sets[s]);

    /* rerun: nothing asked, nothing written */
    CHECK_EQ_INT(t_run(t_fmt("%s synth -c %s/raftlm.yaml", t_bin(), dir), &out, 1), 0);
    CHECK_CONTAINS(out, " asked now, ");
    CHECK_CONTAINS(out, "(0 asked now");
    CHECK_CONTAINS(out, "datasets unchanged");
    free(out);

    /* exports */
    const char *fmts[] = {"chat", "completion", "alpaca", "eval", "raft"};
    const char *key[] = {"messages", "prompt", "instruction", "answer", "cot_answer"};
    for (int f = 0; f < 5; f++) {
        char *path = t_fmt("%s/%s.jsonl", dir, fmts[f]);
        CHECK_EQ_INT(t_run(t_fmt("%s synth -c %s/raftlm.yaml --export %s %s --split all", t_bin(), dir, fmts[f], path), &out, 1), 0);
        free(out);
        size_t m;
        json_t *a = read_jsonl(path, &m);
        CHECK(m >= 300);
        CHECK(json_object_get(json_array_get(a, 0), key[f]) != NULL);
        json_decref(a);
    }
    CHECK(t_run(t_fmt("%s synth -c %s/raftlm.yaml --export yaml x.jsonl", t_bin(), dir), &out, 1) != 0);
    CHECK_CONTAINS(out, "unknown export format 'yaml'");
    free(out);
}

static json_t *find_by_id(json_t *set, const char *id) {
    for (size_t i = 0; i < json_array_size(set); i++)
        if (strcmp(json_string_value(json_object_get(json_array_get(set, i), "id")), id) == 0) return json_array_get(set, i);
    return NULL;
}

/* the same text with every digit as '#': a counterfactual figure keeps the original's shape */
static char *digits_masked(const char *s) {
    char *m = rl_xstrdup(s);
    for (char *p = m; *p; p++)
        if (*p >= '0' && *p <= '9') *p = '#';
    return m;
}

TEST(synth_counterfactual_copies_replace_the_figure_everywhere) {
    char *dir = make_project();
    char *out;
    RL_ASSERT(t_run(t_fmt("printf 'corpus: {paths: [docs]}\\nraft: {seed: 7, counterfactual_copies: 2}\\n' > %s/raftlm.yaml", dir), &out,
                    1) == 0);
    free(out);
    CHECK_EQ_INT(t_run(t_fmt("%s synth -c %s/raftlm.yaml", t_bin(), dir), &out, 1), 0);
    CHECK_CONTAINS(out, "counterfactual copies");
    free(out);
    size_t n_train, n_test;
    json_t *train = read_jsonl(t_fmt("%s/out/datasets/raft_train.jsonl", dir), &n_train);
    json_t *test = read_jsonl(t_fmt("%s/out/datasets/raft_test.jsonl", dir), &n_test);
    for (size_t i = 0; i < n_test; i++)
        CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(test, i), "type")), "general");
    size_t copies = 0, originals = 0;
    for (size_t i = 0; i < n_train; i++) {
        json_t *e = json_array_get(train, i);
        const char *type = json_string_value(json_object_get(e, "type"));
        if (strcmp(type, "counterfactual") != 0) {
            originals += strcmp(type, "general") == 0;
            continue;
        }
        copies++;
        const char *id = json_string_value(json_object_get(e, "id"));
        const char *cf = strstr(id, "-cf");
        RL_ASSERT(cf != NULL);
        char *base_id = rl_xstrndup(id, (size_t)(cf - id));
        json_t *b = find_by_id(train, base_id);
        CHECK_MSG(b != NULL, "%s has no original", id);
        free(base_id);
        if (!b) continue;
        const char *fig = json_string_value(json_object_get(e, "final_answer"));
        const char *orig = json_string_value(json_object_get(b, "final_answer"));
        CHECK_MSG(strcmp(fig, orig) != 0, "%s: figure %s unchanged", id, fig);
        char *m1 = digits_masked(fig), *m2 = digits_masked(orig);
        CHECK_EQ_STR(m1, m2);
        free(m1), free(m2);
        const char *oracle = json_string_value(json_object_get(e, "oracle_context"));
        const char *instruction = json_string_value(json_object_get(e, "instruction"));
        const char *cot = json_string_value(json_object_get(e, "cot_answer"));
        CHECK(json_is_true(json_object_get(e, "oracle_in_context")));
        CHECK(strstr(oracle, fig) != NULL && strstr(instruction, oracle) != NULL);
        CHECK_EQ_STR(json_string_value(json_object_get(e, "question")), json_string_value(json_object_get(b, "question")));
        /* the quote is still a verbatim quote of the (changed) oracle, and its figure is the answer */
        rl_verdict v;
        rl_verify_answer(cot, oracle, &v);
        CHECK_MSG(v.ok, "%s: %s", id, cot);
        if (v.ok) CHECK_EQ_STR(v.final_answer, fig);
        free(v.final_answer);
        /* the documents differ from the original's only where the figure was */
        char *mi = digits_masked(instruction), *mo = digits_masked(json_string_value(json_object_get(b, "instruction")));
        CHECK_EQ_STR(mi, mo);
        free(mi), free(mo);
    }
    CHECK_MSG(copies > originals, "%zu copies of %zu originals", copies, originals);
    json_decref(train);
    json_decref(test);
}

static size_t n_docs_of(json_t *e) {
    return json_array_size(json_array_get(json_object_get(json_object_get(e, "context"), "sentences"), 0));
}

TEST(synth_oracle_alone_fraction_drops_the_distractors_of_some_training_examples) {
    char *dir = make_project();
    char *out;
    CHECK_EQ_INT(t_run(t_fmt("%s -q synth -c %s/raftlm.yaml", t_bin(), dir), &out, 1), 0);
    free(out);
    size_t n0, n1, nt;
    json_t *before = read_jsonl(t_fmt("%s/out/datasets/raft_train.jsonl", dir), &n0);
    /* the same seed and distractor count: the examples left whole must be as they were */
    RL_ASSERT(t_run(t_fmt("printf 'corpus: {paths: [docs]}\\nraft: {seed: 7, oracle_alone_fraction: 0.5}\\n' > %s/raftlm.yaml", dir),
                    &out, 1) == 0);
    free(out);
    CHECK_EQ_INT(t_run(t_fmt("%s synth -c %s/raftlm.yaml", t_bin(), dir), &out, 1), 0);
    CHECK_CONTAINS(out, "with the oracle alone");
    free(out);
    json_t *after = read_jsonl(t_fmt("%s/out/datasets/raft_train.jsonl", dir), &n1);
    json_t *test = read_jsonl(t_fmt("%s/out/datasets/raft_test.jsonl", dir), &nt);
    CHECK_EQ_INT((long long)n1, (long long)n0);
    size_t holding = 0, alone = 0;
    for (size_t i = 0; i < n1 && i < n0; i++) {
        json_t *a = json_array_get(after, i), *b = json_array_get(before, i);
        CHECK_EQ_STR(json_string_value(json_object_get(a, "id")), json_string_value(json_object_get(b, "id")));
        CHECK_MSG(n_docs_of(b) > 1, "without the option every example has distractors");
        if (!json_is_true(json_object_get(a, "oracle_in_context"))) {
            CHECK(json_equal(a, b));
            continue;
        }
        holding++;
        if (n_docs_of(a) != 1) {
            CHECK(json_equal(a, b)); /* the others are as they were */
            continue;
        }
        alone++;
        /* the one document left is the oracle, and the answer is as before */
        const char *doc = json_string_value(json_array_get(json_array_get(json_object_get(json_object_get(a, "context"), "sentences"), 0), 0));
        CHECK(strstr(doc, json_string_value(json_object_get(a, "oracle_context"))) != NULL);
        CHECK_EQ_STR(json_string_value(json_object_get(a, "cot_answer")), json_string_value(json_object_get(b, "cot_answer")));
        const char *ins = json_string_value(json_object_get(a, "instruction"));
        CHECK(strstr(ins, "<DOCUMENT>") == ins && strstr(ins + 1, "<DOCUMENT>") == NULL);
    }
    CHECK_MSG(alone > holding / 4 && alone < holding * 3 / 4, "%zu of %zu examples with the oracle alone", alone, holding);
    for (size_t i = 0; i < nt; i++) CHECK(n_docs_of(json_array_get(test, i)) > 1); /* held-out splits keep the task */
    json_decref(before);
    json_decref(after);
    json_decref(test);
}

TEST(synth_figures_randomize_keeps_shapes_and_repeats) {
    const char *text = "Customer 484085 ordered on 2025-11-04 for EUR 524,410 (unit 156.90, 0.5 kg); "
                       "again 484085. The AR-700X, x86, the 2nd, H2O and PR-9435 stay names.";
    uint64_t r1 = 42, r2 = 42, r3 = 43;
    char *a = rl_figures_randomize(text, strlen(text), &r1), *b = rl_figures_randomize(text, strlen(text), &r2);
    char *c = rl_figures_randomize(text, strlen(text), &r3);
    CHECK_EQ_STR(a, b); /* the same seed, the same copy */
    CHECK(strcmp(a, c) != 0);
    char *ma = digits_masked(a), *mt = digits_masked(text);
    CHECK_EQ_STR(ma, mt); /* only digits change, every figure keeps its shape */
    free(ma), free(mt);
    CHECK(strstr(a, "484085") == NULL && strstr(a, "2025-11-04") == NULL && strstr(a, "524,410") == NULL);
    /* the same figure, the same replacement */
    char first[7] = {0}, again[7] = {0};
    memcpy(first, a + strlen("Customer "), 6);
    memcpy(again, strstr(a, "again ") + 6, 6);
    CHECK_EQ_STR(first, again);
    CHECK(first[0] != '0');
    /* digits glued to letters are names, not figures; figures after "PR-" are figures */
    CHECK_CONTAINS(a, "AR-700X, x86, the 2nd, H2O");
    CHECK(strstr(a, "PR-9435") == NULL);
    CHECK_CONTAINS(a, " 0.");           /* a leading zero stays a zero */
    const char *date = strstr(a, "on ") + 3; /* an ISO date stays a date within five years */
    int y = atoi(date), m = atoi(date + 5), d = atoi(date + 8);
    CHECK_MSG(y >= 2020 && y <= 2030 && m >= 1 && m <= 12 && d >= 1 && d <= 28, "%.10s", date);
    free(a), free(b), free(c);
    uint64_t r4 = 1;
    char *none = rl_figures_randomize("no figures here", 15, &r4);
    CHECK_EQ_STR(none, "no figures here");
    free(none);
}

TEST(synth_sigkill_and_resume_gives_the_same_datasets) {
    char *a = make_project(), *b = make_project();
    char *out;
    CHECK_EQ_INT(t_run(t_fmt("%s -q synth -c %s/raftlm.yaml", t_bin(), a), &out, 1), 0);
    free(out);
    srand((unsigned)time(NULL));
    int kills = 0;
    for (int round = 0; round < 6; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            char *cfg = t_fmt("%s/raftlm.yaml", b);
            freopen("/dev/null", "w", stderr);
            execl(t_bin(), t_bin(), "-q", "synth", "-c", cfg, (char *)NULL);
            _exit(127);
        }
        usleep((useconds_t)(30000 + rand() % 600000));
        if (kill(pid, SIGKILL) == 0) kills++;
        int st;
        waitpid(pid, &st, 0);
    }
    CHECK(kills > 0);
    CHECK_EQ_INT(t_run(t_fmt("%s -q synth -c %s/raftlm.yaml", t_bin(), b), &out, 1), 0);
    free(out);
    const char *files[] = {"raft_train", "raft_validation", "raft_test", "eval_validation", "eval_test"};
    for (int f = 0; f < 5; f++) {
        char *x, *y;
        size_t lx, ly;
        rl_error err;
        CHECK_OK(rl_file_read(t_fmt("%s/out/datasets/%s.jsonl", a, files[f]), 0, &x, &lx, &err));
        CHECK_OK(rl_file_read(t_fmt("%s/out/datasets/%s.jsonl", b, files[f]), 0, &y, &ly, &err));
        CHECK_MSG(lx == ly && memcmp(x, y, lx) == 0, "%s differs after kills and resume", files[f]);
        free(x);
        free(y);
    }
    /* and no duplicate rows */
    CHECK_EQ_INT(t_run(t_fmt("sqlite3 %s/out/store.db \"SELECT count(*) FROM synth_items GROUP BY chunk_sha, fp, ordinal HAVING count(*) > 1\" | wc -l", b), &out, 0), 0);
    CHECK_EQ_INT(atoi(out), 0);
    free(out);
}

TEST(synth_max_examples_and_changed_corpus) {
    char *dir = make_project();
    char *out;
    CHECK_EQ_INT(t_run(t_fmt("%s synth -c %s/raftlm.yaml --max-examples 40", t_bin(), dir), &out, 1), 0);
    char *acc = strstr(out, "accepted ");
    int n_acc = acc ? atoi(acc + 9) : -1;
    CHECK_MSG(n_acc >= 40 && n_acc <= 42, "--max-examples 40 gave %d accepted questions", n_acc); /* whole chunks of up to 3 */
    free(out);
    /* change one document: only its chunks are asked about again */
    t_write_str(dir, "docs/policies/learning-budget.md", "# Learning budget\n\nEach employee has a personal learning budget of EUR 2,345.67 per year.\n");
    CHECK_EQ_INT(t_run(t_fmt("%s -q ingest -c %s/raftlm.yaml && %s synth -c %s/raftlm.yaml", t_bin(), dir, t_bin(), dir), &out, 1), 0);
    free(out);
    CHECK_EQ_INT(t_run(t_fmt("%s -q ingest -c %s/raftlm.yaml", t_bin(), dir), &out, 1), 0);
    free(out);
    t_write_str(dir, "docs/policies/learning-budget.md", "# Learning budget\n\nEach employee has a personal learning budget of EUR 2,456.78 per year.\n");
    CHECK_EQ_INT(t_run(t_fmt("%s -q ingest -c %s/raftlm.yaml && %s synth -c %s/raftlm.yaml", t_bin(), dir, t_bin(), dir), &out, 1), 0);
    CHECK_CONTAINS(out, "(1 asked now");
    free(out);
    CHECK_EQ_INT(t_run(t_fmt("grep -h -c 'EUR 2,456.78' %s/out/datasets/raft_*.jsonl | paste -sd+ | bc", dir), &out, 0), 0);
    CHECK(atoi(out) >= 1);
    free(out);
    CHECK_EQ_INT(t_run(t_fmt("grep -h -c 'EUR 2,345.67' %s/out/datasets/raft_*.jsonl | paste -sd+ | bc", dir), &out, 0), 0);
    CHECK_EQ_INT(atoi(out), 0);
    free(out);
}
