/* test_teacher.c - the OpenAI-compatible teacher against a local fault-injecting server:
 * transport faults (429 + Retry-After, 500, timeouts, truncated bodies) are retried and leave
 * no trace in the data; content faults (quotes not in the chunk, duplicate questions, fenced
 * JSON) are rejected, dropped or repaired with exact counts. */
#include "test.h"

#include <unistd.h>

#include "fake_openai.h"
#include "synth/synth.h"

TEST(teacher_parse_questions_with_repair) {
    struct {
        const char *reply;
        int n;
        const char *first;
    } cases[] = {
        {"[\"What is A?\", \"What is B?\"]", 2, "What is A?"},
        {"```json\n[\"What is A?\",\n \"What is B?\",\n]\n```", 2, "What is A?"},
        {"Sure! Here you go:\n[\"What is A?\", \"What is B?\"] Hope this helps.", 2, "What is A?"},
        {"{\"questions\": [\"What is A?\"]}", 1, "What is A?"},
        {"[{\"question\": \"What is A?\"}, {\"question\": \"What is B?\"}]", 2, "What is A?"},
        {"[\"What is A?\", \"What is B?\", \"What is the C", 2, "What is A?"}, /* cut off by max_tokens */
        {"1. What is A?\n2. What is B?\n", 2, "What is A?"},
        {"I cannot help with that.", -1, NULL},
        {"", -1, NULL},
        {"[", 0, NULL},
        {"[]", 0, NULL},
        {"```json\n[]\n```", 0, NULL},
        {"[\"\\u00e9t\\u00e9?\", 5, null]", 1, "été?"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char **qs;
        int n = rl_parse_questions(cases[i].reply, &qs);
        CHECK_MSG(n == cases[i].n, "case %zu: %d questions, want %d", i, n, cases[i].n);
        if (n > 0 && cases[i].first) CHECK_EQ_STR(qs[0], cases[i].first);
        for (int k = 0; k < n; k++) free(qs[k]);
        if (n < 0) CHECK(qs == NULL);
        free(qs);
    }
}

static char *project_with(const char *docs_cmd, int port, int extractive) {
    char *dir = t_tmpdir(), *out;
    RL_ASSERT(t_run(t_fmt("mkdir -p %s/docs && %s", dir, t_fmt(docs_cmd, dir)), &out, 1) == 0);
    free(out);
    if (extractive) t_write_str(dir, "raftlm.yaml", "corpus: {paths: [docs]}\nteacher: {type: extractive}\n");
    else
        t_write_str(dir, "raftlm.yaml",
                    t_fmt("corpus: {paths: [docs]}\nteacher:\n  type: openai\n  base_url: http://127.0.0.1:%d/v1\n  model: fake\n"
                          "  timeout_s: 1\n  retry_base_s: 0.05\n  max_retries: 4\n  max_concurrency: 16\n",
                          port));
    RL_ASSERT(t_run(t_fmt("%s -q ingest -c %s/raftlm.yaml", t_bin(), dir), &out, 1) == 0);
    free(out);
    return dir;
}

TEST(teacher_openai_transport_faults_leave_no_trace) {
    fake_openai_opts fo = {.transport_faults = 1, .slow_s = 2.0};
    fake_openai *srv = fake_openai_start(&fo);
    if (!srv) SKIP("cannot start the local test server");
    const char *copy = t_fmt("cp -r %s/examples/acme/docs/policies %s/examples/acme/docs/finance %%s/docs/", t_root(), t_root());
    char *a = project_with(copy, 0, 1), *b = project_with(copy, fake_openai_port(srv), 0);
    char *out;
    CHECK_EQ_INT(t_run(t_fmt("%s synth -c %s/raftlm.yaml", t_bin(), a), &out, 1), 0);
    free(out);
    CHECK_EQ_INT(t_run(t_fmt("%s synth -c %s/raftlm.yaml", t_bin(), b), &out, 1), 0);
    CHECK_CONTAINS(out, "retries");
    CHECK_MSG(strstr(out, "teacher_failed") == NULL, "%s", out);
    free(out);
    fake_openai_stats st;
    fake_openai_get_stats(srv, &st);
    fprintf(stderr, "    server: %d requests; faults: %d x 429, %d x 500, %d slow, %d truncated\n", st.requests, st.faults_429, st.faults_500,
            st.faults_slow, st.faults_truncated);
    CHECK(st.faults_429 > 0 && st.faults_500 > 0 && st.faults_slow > 0 && st.faults_truncated > 0);
    /* every fault was retried: the datasets equal the extractive teacher's, byte for byte */
    const char *files[] = {"raft_train", "raft_validation", "raft_test", "eval_test"};
    for (int f = 0; f < 4; f++) {
        char *x, *y;
        size_t lx, ly;
        rl_error err;
        CHECK_OK(rl_file_read(t_fmt("%s/out/datasets/%s.jsonl", a, files[f]), 0, &x, &lx, &err));
        CHECK_OK(rl_file_read(t_fmt("%s/out/datasets/%s.jsonl", b, files[f]), 0, &y, &ly, &err));
        CHECK(lx > 0);
        CHECK_MSG(lx == ly && memcmp(x, y, lx) == 0, "%s differs between the extractive teacher and the faulty server", files[f]);
        free(x);
        free(y);
    }
    /* and a rerun asks the server nothing */
    int before = st.requests;
    CHECK_EQ_INT(t_run(t_fmt("%s synth -c %s/raftlm.yaml", t_bin(), b), &out, 1), 0);
    free(out);
    fake_openai_get_stats(srv, &st);
    CHECK_EQ_INT(st.requests, before);
    fake_openai_stop(srv);
}

TEST(teacher_openai_content_faults_counted_exactly) {
    fake_openai_opts fo = {0};
    fake_openai *srv = fake_openai_start(&fo);
    if (!srv) SKIP("cannot start the local test server");
    const char *docs =
        "printf '# Travel\\n\\nThe daily meal allowance is EUR 45.00. The hotel limit is EUR 150.00. Trains are booked in second class for trips under 4 hours.\\n' > %s/docs/a.md && "
        "printf '# Warranty\\n\\nNote BADQUOTE. The warranty lasts 24 months. The battery warranty lasts 12 months.\\n' > %s/docs/b.md && "
        "printf '# Leave\\n\\nNote DUPLICATE. All employees get 30 days of paid leave per year. Parental leave is paid for 14 weeks.\\n' > %s/docs/c.md && "
        "printf '# Budget\\n\\nNote FENCED. The FY2026 budget is EUR 62,140,000. The capex budget is EUR 4,950,000.\\n' > %s/docs/d.md";
    char *dir = t_tmpdir(), *out;
    char *cmd = t_fmt("mkdir -p %s/docs && ", dir);
    char *full = t_fmt("%s%s", cmd, t_fmt(docs, dir, dir, dir, dir));
    CHECK_EQ_INT(t_run(full, &out, 1), 0);
    free(out);
    t_write_str(dir, "raftlm.yaml",
                t_fmt("corpus: {paths: [docs]}\nraft: {num_distractors: 2}\nteacher:\n  type: openai\n  base_url: http://127.0.0.1:%d/v1\n"
                      "  timeout_s: 5\n  price_prompt_per_mtok: 1.0\n  price_completion_per_mtok: 2.0\n",
                      fake_openai_port(srv)));
    CHECK_EQ_INT(t_run(t_fmt("%s -q ingest -c %s/raftlm.yaml && %s synth -c %s/raftlm.yaml", t_bin(), dir, t_bin(), dir), &out, 1), 0);
    /* a: 3 questions accepted; b: 2 answers quote a sentence that is not there; c: 2 questions,
     * one a duplicate; d: 2 questions from a fenced reply with a trailing comma */
    CHECK_CONTAINS(out, "questions: 9, accepted 7, rejected 2, near-duplicates dropped 1");
    CHECK_CONTAINS(out, "quote_not_in_chunk");
    CHECK_CONTAINS(out, "duplicate_question");
    CHECK_CONTAINS(out, "in cost");
    free(out);
    CHECK_EQ_INT(t_run(t_fmt("sqlite3 %s/out/store.db \"SELECT count(*) FROM synth_items WHERE reason = 'quote_not_in_chunk'\"", dir), &out, 0), 0);
    CHECK_EQ_INT(atoi(out), 2);
    free(out);
    CHECK_EQ_INT(t_run(t_fmt("sqlite3 %s/out/store.db \"SELECT sum(prompt_tokens) > 0 AND sum(completion_tokens) > 0 FROM synth_items\"", dir), &out, 0), 0);
    CHECK_EQ_INT(atoi(out), 1);
    free(out);
    fake_openai_stop(srv);
}

TEST(teacher_openai_unreachable_and_bad_config) {
    char *dir = t_tmpdir(), *out;
    t_write_str(dir, "docs/a.md", "# A\n\nThe daily meal allowance is EUR 45.00.\n");
    /* a port nothing listens on: every chunk fails after its retries, the run says so, and
     * nothing is marked done (a rerun retries) */
    t_write_str(dir, "raftlm.yaml", "corpus: {paths: [docs]}\nteacher:\n  type: openai\n  base_url: http://127.0.0.1:9/v1\n"
                                    "  timeout_s: 1\n  max_retries: 1\n  retry_base_s: 0.01\n");
    CHECK_EQ_INT(t_run(t_fmt("%s -q ingest -c %s/raftlm.yaml && %s synth -c %s/raftlm.yaml", t_bin(), dir, t_bin(), dir), &out, 1), 0);
    CHECK_CONTAINS(out, "teacher failed");
    CHECK_CONTAINS(out, "teacher_failed_chunks");
    free(out);
    CHECK_EQ_INT(t_run(t_fmt("sqlite3 %s/out/store.db 'SELECT count(*) FROM synth_chunks'", dir), &out, 0), 0);
    CHECK_EQ_INT(atoi(out), 0);
    free(out);
    t_write_str(dir, "raftlm.yaml", "corpus: {paths: [docs]}\nteacher: {type: openai}\n");
    CHECK(t_run(t_fmt("%s synth -c %s/raftlm.yaml", t_bin(), dir), &out, 1) != 0);
    CHECK_CONTAINS(out, "teacher.base_url is required");
    free(out);
}

/* The same synthesis with raftlm's own server as the teacher (stories260K: real HTTP, real
 * generation, nonsense answers): the run completes and counts why things were rejected. */
TEST(teacher_openai_against_raftlm_serve) {
    const char *shared = t_shared();
    if (!shared) SKIP("../shared not found: the served teacher is stories260K");
    char *dir = t_tmpdir(), *out;
    CHECK_EQ_INT(t_run(t_fmt("%s serve --model %s/models/stories260K/stories260K.bin --tokenizer %s/models/stories260K/tok512.bin "
                             "--no-store --name stories260K --host 127.0.0.1 --port 0 --parallel 2 --max-tokens 48 > %s/serve.log 2>&1 &",
                             t_bin(), shared, shared, dir),
                       &out, 1),
                 0);
    free(out);
    int port = 0;
    for (int i = 0; i < 200 && !port; i++) {
        char *log;
        size_t len;
        rl_error err;
        if (rl_file_read(t_fmt("%s/serve.log", dir), 0, &log, &len, &err) == RL_OK) {
            char *p = strstr(log, "listening on http://127.0.0.1:");
            if (p) port = atoi(p + strlen("listening on http://127.0.0.1:"));
            free(log);
        }
        if (!port) usleep(50000);
    }
    CHECK_MSG(port > 0, "raftlm serve did not start");
    if (!port) return;
    t_write_str(dir, "docs/a.md", "# Travel\n\nThe daily meal allowance is EUR 45.00. The hotel limit is EUR 150.00.\n");
    t_write_str(dir, "docs/b.md", "# Leave\n\nEmployees get 30 days of paid leave per year.\n");
    t_write_str(dir, "raftlm.yaml",
                t_fmt("corpus: {paths: [docs]}\nchunking: {size: 40, overlap: 0}\nteacher:\n  type: openai\n  base_url: http://127.0.0.1:%d/v1\n"
                      "  model: stories260K\n  max_tokens: 48\n  timeout_s: 60\n  max_retries: 1\n  retry_base_s: 0.01\n  max_concurrency: 2\n",
                      port));
    CHECK_EQ_INT(t_run(t_fmt("%s -q ingest -c %s/raftlm.yaml && %s synth -c %s/raftlm.yaml", t_bin(), dir, t_bin(), dir), &out, 1), 0);
    fprintf(stderr, "    %s", out);
    CHECK_CONTAINS(out, "teacher: ");
    CHECK_CONTAINS(out, "requests");
    /* a tiny story model writes no usable questions or cited answers: nothing is accepted, and
     * every chunk is either failed (and left for a rerun) or stored with its rejections */
    CHECK_CONTAINS(out, "accepted 0,");
    CHECK_CONTAINS(out, "no questions in the reply"); /* the model's story, retried, then counted */
    CHECK_CONTAINS(out, "teacher_failed_chunks");
    CHECK(strstr(out, " 0 prompt + 0 completion tokens this run") == NULL); /* real generations happened */
    free(out);
    /* the server is still healthy */
    CHECK_EQ_INT(t_run(t_fmt("curl -s http://127.0.0.1:%d/health", port), &out, 0), 0);
    CHECK_CONTAINS(out, "ok");
    free(out);
}

TEST(teacher_local_model_runs_in_process) {
    const char *shared = t_shared();
    if (!shared) SKIP("../shared not found: the local teacher is stories260K");
    char *dir = t_tmpdir(), *out;
    t_write_str(dir, "docs/a.md", "# Travel\n\nThe daily meal allowance is EUR 45.00.\n");
    t_write_str(dir, "raftlm.yaml", t_fmt("corpus: {paths: [docs]}\nchunking: {size: 40, overlap: 0}\nteacher: {type: local, model: %s/models/stories260K/stories260K.bin, "
                                          "tokenizer: %s/models/stories260K/tok512.bin, max_tokens: 40}\n",
                                          shared, shared));
    CHECK_EQ_INT(t_run(t_fmt("%s -q ingest -c %s/raftlm.yaml && %s -v synth -c %s/raftlm.yaml", t_bin(), dir, t_bin(), dir), &out, 1), 0);
    /* a story model writes stories, not questions: the chunk fails with the reason and is left for a rerun */
    CHECK_CONTAINS(out, "no questions in the reply");
    CHECK_CONTAINS(out, "teacher_failed_chunks");
    free(out);
    t_write_str(dir, "bad.yaml", "corpus: {paths: [docs]}\nteacher: {type: local, model: nowhere.bin}\n");
    CHECK(t_run(t_fmt("%s synth -c %s/bad.yaml", t_bin(), dir), &out, 1) != 0);
    CHECK_CONTAINS(out, "local teacher");
    free(out);
}
