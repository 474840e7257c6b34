/* test_eval.c - evaluation metrics (checked against hand-computed values), retrieval
 * evaluation on a corpus with known ranks, and the `raftlm eval` command. */
#include "test.h"

#include <jansson.h>
#include <math.h>

#include "eval/eval.h"

#define NEAR(a, b) (fabs((a) - (b)) < 1e-9)

TEST(eval_rank_metrics_hand_computed) {
    /* four questions whose oracle documents are ranked 1, 3, not found, 2 */
    int ranks[4] = {1, 3, 0, 2};
    double r1 = 0, r3 = 0, r5 = 0, mrr = 0, ndcg = 0;
    for (int i = 0; i < 4; i++) {
        rl_rank_metrics m;
        rl_eval_rank_metrics(ranks[i], &m);
        r1 += m.recall_at[1] / 4, r3 += m.recall_at[3] / 4, r5 += m.recall_at[5] / 4, mrr += m.mrr / 4, ndcg += m.ndcg10 / 4;
    }
    CHECK(NEAR(r1, 0.25));
    CHECK(NEAR(r3, 0.75));
    CHECK(NEAR(r5, 0.75));
    CHECK(NEAR(mrr, (1 + 1.0 / 3 + 0 + 0.5) / 4));                      /* 0.458333 */
    CHECK(NEAR(ndcg, (1 + 1 / log2(4.0) + 0 + 1 / log2(3.0)) / 4));     /* 0.532732 */
    rl_rank_metrics m;
    rl_eval_rank_metrics(11, &m); /* beyond the cut-off */
    CHECK(m.mrr == 0 && m.ndcg10 == 0 && m.recall_at[10] == 0);
}

TEST(eval_answer_metrics) {
    CHECK(rl_eval_exact_match("The EUR 45.00.", "eur 45.00"));
    CHECK(!rl_eval_exact_match("EUR 45", "EUR 45.00 per day"));
    CHECK(NEAR(rl_eval_f1("EUR 45.00 per day", "EUR 45.00"), 2 * (2.0 / 4) * 1.0 / (2.0 / 4 + 1.0)));
    CHECK(NEAR(rl_eval_f1("nothing", "EUR 45.00"), 0));
    CHECK(rl_eval_numeric_match("It is EUR 1500 per night", "EUR 1,500.00"));
    CHECK(rl_eval_numeric_match("between 2025-03-11 and 24 months", "24 months"));
    CHECK(!rl_eval_numeric_match("EUR 150", "EUR 1,500.00"));
    CHECK(rl_eval_numeric_match("Stuttgart", "stuttgart")); /* no numbers: exact match */
    char *f = rl_eval_final_answer("##Reason: ... ##begin_quote##x##end_quote##\n<ANSWER>: EUR 45.00\nmore text");
    CHECK_EQ_STR(f, "EUR 45.00");
    free(f);
    f = rl_eval_final_answer("  just text  ");
    CHECK_EQ_STR(f, "just text");
    free(f);
    const char *docs[] = {"The daily meal\nallowance is EUR 45.00.", "Other."};
    CHECK(rl_eval_citations_valid("##begin_quote##The daily meal allowance is EUR 45.00.##end_quote## <ANSWER>: EUR 45.00", docs, 2));
    CHECK(!rl_eval_citations_valid("##begin_quote##The allowance is EUR 50.##end_quote##", docs, 2));
    CHECK(!rl_eval_citations_valid("no quotes at all", docs, 2));
    CHECK(rl_eval_is_refusal("The documents do not say."));
    CHECK(!rl_eval_is_refusal("EUR 45.00"));
    CHECK(rl_eval_doc_matches("policies/travel.md", "policies/travel.md"));
    CHECK(rl_eval_doc_matches("policies/travel.md", "travel.md"));
    CHECK(rl_eval_doc_matches("policies/travel.md", "docs/policies/travel.md"));
    CHECK(!rl_eval_doc_matches("policies/travel.md", "other/travel.md"));
    CHECK(!rl_eval_doc_matches("policies/travel.md", "leave.md"));
}

TEST(eval_retrieval_known_ranks) {
    char *dir = t_tmpdir(), *out;
    /* every question's words appear in its oracle only, except q3 whose oracle is never found */
    t_write_str(dir, "docs/a.md", "# Alpha\n\nThe zebra budget is EUR 10.\n");
    t_write_str(dir, "docs/b.md", "# Beta\n\nThe giraffe limit is EUR 20. Zebra zebra zebra.\n");
    t_write_str(dir, "docs/c.md", "# Gamma\n\nThe okapi quota is 30 units.\n");
    t_write_str(dir, "q.jsonl",
                "{\"question\": \"giraffe limit?\", \"answer\": \"EUR 20\", \"oracle_doc\": \"b.md\"}\n"
                "{\"question\": \"okapi quota?\", \"answer\": \"30 units\", \"oracle_doc\": \"docs/c.md\"}\n"
                "{\"question\": \"zebra?\", \"answer\": \"EUR 10\", \"oracle_doc\": \"a.md\"}\n"
                "{\"question\": \"unicorn?\", \"answer\": \"none\", \"oracle_doc\": \"a.md\"}\n"
                "{\"question\": \"no oracle given\", \"answer\": \"x\"}\n");
    t_write_str(dir, "raftlm.yaml", "corpus: {paths: [docs]}\n");
    CHECK_EQ_INT(t_run(t_fmt("%s -q ingest -c %s/raftlm.yaml", t_bin(), dir), &out, 1), 0);
    free(out);
    CHECK_EQ_INT(t_run(t_fmt("%s eval -c %s/raftlm.yaml --questions %s/q.jsonl --modes retrieval --json", t_bin(), dir, dir), &out, 0), 0);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    CHECK_MSG(j != NULL, "not JSON: %s", out);
    json_t *r = json_object_get(json_object_get(j, "modes"), "retrieval");
    /* "zebra?" ranks b.md first (three zebras) and a.md second; "unicorn?" finds nothing:
     * ranks 1, 1, 2, 0 over the 4 questions with an oracle */
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "n")), 4);
    CHECK(NEAR(json_real_value(json_object_get(r, "recall@1")), 0.5));
    CHECK(NEAR(json_real_value(json_object_get(r, "recall@3")), 0.75));
    CHECK(NEAR(json_real_value(json_object_get(r, "mrr")), (1 + 1 + 0.5 + 0) / 4));
    CHECK(NEAR(json_real_value(json_object_get(r, "ndcg@10")), (1 + 1 + 1 / log2(3.0) + 0) / 4));
    json_decref(j);
    free(out);
    /* stored in the project store */
    CHECK_EQ_INT(t_run(t_fmt("sqlite3 %s/out/store.db \"SELECT count(*) FROM eval_runs WHERE mode = 'retrieval'\"", dir), &out, 0), 0);
    CHECK_EQ_INT(atoi(out), 1);
    free(out);
    /* a malformed question file names file and line */
    t_write_str(dir, "bad.jsonl", "{\"question\": \"a\", \"answer\": \"b\"}\n{\"question\": 5}\n");
    CHECK(t_run(t_fmt("%s eval -c %s/raftlm.yaml --questions %s/bad.jsonl --modes retrieval", t_bin(), dir, dir), &out, 1) != 0);
    CHECK_CONTAINS(out, "bad.jsonl:2:");
    free(out);
    CHECK(t_run(t_fmt("%s eval -c %s/raftlm.yaml --questions %s/q.jsonl --modes rag", t_bin(), dir, dir), &out, 1) != 0);
    CHECK_CONTAINS(out, "need a model");
    free(out);
}

TEST(eval_real_questions_over_real_documents) {
    const char *shared = t_shared();
    if (!shared) SKIP("../shared not found: the covid-faq retrieval evaluation needs ../shared/data/covid-faq");
    /* the FAQ answers as documents, the FAQ questions as the question set (oracle = own answer) */
    char *dir = t_tmpdir(), *out;
    const char *py = "import csv,json,os,sys\n"
                     "d=sys.argv[1]; os.makedirs(d+'/docs',exist_ok=True); q=open(d+'/q.jsonl','w')\n"
                     "for i,r in enumerate(csv.DictReader(open(sys.argv[2]))):\n"
                     "  open(d+'/docs/faq-%d.txt'%i,'w').write(r['answer'])\n"
                     "  q.write(json.dumps({'question':r['question'],'answer':r['answer'][:80],'oracle_doc':'faq-%d.txt'%i})+'\\n')\n";
    t_write_str(dir, "mk.py", py);
    if (t_run(t_fmt("python3 %s/mk.py %s %s/data/covid-faq/faq_covidbert.csv", dir, dir, shared), &out, 1) != 0) {
        free(out);
        SKIP("python3 is needed to convert the CSV for this check");
    }
    free(out);
    /* dense with the only model at hand (stories260K, a tiny story generator: a weak encoder,
     * reported as such), bm25 and hybrid */
    t_write_str(dir, "raftlm.yaml", t_fmt("corpus: {paths: [docs]}\nretrieval: {mode: bm25, embedding_model: %s/models/stories260K/stories260K.bin, "
                                          "embedding_tokenizer: %s/models/stories260K/tok512.bin}\n",
                                          shared, shared));
    CHECK_EQ_INT(t_run(t_fmt("%s -q ingest -c %s/raftlm.yaml", t_bin(), dir), &out, 1), 0);
    free(out);
    CHECK_EQ_INT(t_run(t_fmt("%s eval -c %s/raftlm.yaml --questions %s/q.jsonl --modes retrieval --json", t_bin(), dir, dir), &out, 0), 0);
    json_t *j = json_loads(out, 0, NULL);
    const char *rm[] = {"retrieval_dense", "retrieval_hybrid"};
    for (int i = 0; i < 2; i++) {
        json_t *x = json_object_get(json_object_get(j, "modes"), rm[i]);
        CHECK_MSG(x != NULL, "%s missing", rm[i]);
        fprintf(stderr, "    covid-faq %s (embedder: stories260K mean-pooled, weak): recall@1 %.3f recall@5 %.3f MRR %.3f\n", rm[i],
                json_real_value(json_object_get(x, "recall@1")), json_real_value(json_object_get(x, "recall@5")),
                json_real_value(json_object_get(x, "mrr")));
        CHECK(json_real_value(json_object_get(x, "recall@5")) > 5.0 / 213); /* better than chance */
    }
    json_t *r = json_object_get(json_object_get(j, "modes"), "retrieval");
    double r1 = json_real_value(json_object_get(r, "recall@1")), r3 = json_real_value(json_object_get(r, "recall@3")),
           r5 = json_real_value(json_object_get(r, "recall@5")), mrr = json_real_value(json_object_get(r, "mrr"));
    fprintf(stderr, "    covid-faq (213 real questions): recall@1 %.3f recall@3 %.3f recall@5 %.3f MRR %.3f nDCG@10 %.3f\n", r1, r3, r5, mrr,
            json_real_value(json_object_get(r, "ndcg@10")));
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "n")), 213);
    CHECK(r1 <= r3 && r3 <= r5 && r1 > 0.3 && r5 < 1.0);
    CHECK(mrr >= r1 && mrr <= r5);
    json_decref(j);
    free(out);
}

TEST(eval_answering_modes_run_with_a_real_model) {
    const char *shared = t_shared();
    if (!shared) SKIP("../shared not found: answering modes are run with stories260K");
    char *dir = t_tmpdir(), *out;
    t_write_str(dir, "docs/a.md", "# Travel\n\nThe daily meal allowance is EUR 45.00.\n");
    t_write_str(dir, "docs/b.md", "# Leave\n\nEmployees get 30 days of paid leave.\n");
    t_write_str(dir, "q.jsonl", "{\"question\": \"What is the daily meal allowance?\", \"answer\": \"EUR 45.00\", \"oracle_doc\": \"a.md\"}\n");
    t_write_str(dir, "raftlm.yaml", t_fmt("corpus: {paths: [docs]}\nbase_model: %s/models/stories260K/stories260K.bin\ntokenizer: %s/models/stories260K/tok512.bin\n",
                                          shared, shared));
    CHECK_EQ_INT(t_run(t_fmt("%s -q ingest -c %s/raftlm.yaml", t_bin(), dir), &out, 1), 0);
    free(out);
    CHECK_EQ_INT(t_run(t_fmt("%s eval -c %s/raftlm.yaml --questions %s/q.jsonl --modes retrieval,closed_book,rag,oracle -k 2 --json --max-new-tokens 20",
                             t_bin(), dir, dir),
                       &out, 0),
                 0);
    json_t *j = json_loads(out, 0, NULL);
    CHECK_MSG(j != NULL, "not JSON: %s", out);
    json_t *modes = json_object_get(j, "modes");
    const char *names[] = {"closed_book", "rag", "oracle"};
    const char *keys[] = {"em", "f1", "numeric_match", "citation_validity", "refusal_rate"};
    for (int m = 0; m < 3; m++) {
        json_t *x = json_object_get(modes, names[m]);
        CHECK_MSG(x != NULL, "mode %s missing", names[m]);
        for (int k = 0; k < 5; k++) CHECK(json_is_real(json_object_get(x, keys[k])));
        CHECK_EQ_INT(json_integer_value(json_object_get(x, "n")), 1);
    }
    json_decref(j);
    free(out);
}

/* The contract of eval.models (base, a DSF model, a RAFT adapter), the k sweep, the answers
 * file and the report, on stories260K with two tiny trainings (a full fine-tune and a LoRA). */
TEST(eval_several_models_k_sweep_and_report) {
    const char *shared = t_shared();
    if (!shared) SKIP("../shared not found: several models are evaluated with stories260K");
    char *dir = t_tmpdir(), *out;
    t_write_str(dir, "docs/a.md", "# Travel\n\nThe daily meal allowance is EUR 45.00.\n");
    t_write_str(dir, "docs/b.md", "# Leave\n\nEmployees get 30 days of paid leave.\n");
    t_write_str(dir, "docs/c.md", "# Parking\n\nParking costs EUR 3.00 per day. </script><svg onload=alert(1)>\n"); /* hostile */
    t_write_str(dir, "q.jsonl",
                "{\"question\": \"What is the daily meal allowance?\", \"answer\": \"EUR 45.00\", \"oracle_doc\": \"a.md\"}\n"
                "{\"question\": \"How many days of paid leave?\", \"answer\": \"30 days\", \"oracle_doc\": \"b.md\"}\n"
                "{\"question\": \"What does parking cost per day?\", \"answer\": \"EUR 3.00\", \"oracle_doc\": \"c.md\"}\n");
    rl_buf train = {0};
    for (int i = 0; i < 8; i++) rl_buf_puts(&train, "{\"text\": \"The daily meal allowance is EUR 45.00. Employees get 30 days of paid leave.\"}\n");
    t_write(dir, "train.jsonl", train.data, train.len);
    rl_buf_free(&train);
    char *common = t_fmt("corpus: {paths: [docs]}\nbase_model: %s/models/stories260K/stories260K.bin\ntokenizer: %s/models/stories260K/tok512.bin\n"
                         "sequence_len: 64\nmax_steps: 3\nmicro_batch_size: 1\ngradient_accumulation_steps: 1\nlora_r: 4\neval_steps: 1\n"
                         "val_set_size: 0.25\ndatasets: [{path: train.jsonl, type: completion}]\n",
                         shared, shared);
    t_write_str(dir, "dsf.yaml", t_fmt("%sadapter: full\noutput_dir: dsf\n", common));
    t_write_str(dir, "raftlm.yaml", t_fmt("%seval:\n  k_sweep: [3, 1, 2]\n  models:\n    - {name: base}\n    - {name: dsf, model: dsf/train}\n"
                                          "    - {name: raft, model: out/train}\n",
                                          common));
    CHECK_EQ_INT(t_run(t_fmt("%s -q train -c %s/dsf.yaml && %s -q train -c %s/raftlm.yaml && %s -q ingest -c %s/raftlm.yaml", t_bin(), dir, t_bin(),
                             dir, t_bin(), dir),
                       &out, 1),
                 0);
    free(out);
    CHECK_EQ_INT(t_run(t_fmt("%s eval -c %s/raftlm.yaml --questions %s/q.jsonl --modes retrieval,closed_book,rag,oracle -k 2 --json "
                             "--max-new-tokens 8 2>%s/stderr.txt",
                             t_bin(), dir, dir, dir),
                       &out, 0),
                 0);
    json_t *j = json_loads(out, 0, NULL);
    CHECK_MSG(j != NULL, "not JSON: %s", out);
    free(out);
    /* several models: answering modes map model -> metrics; retrieval stays model-independent */
    const char *models[] = {"base", "dsf", "raft"}, *modes[] = {"closed_book", "rag", "oracle"};
    const char *keys[] = {"em", "f1", "numeric_match", "citation_validity", "refusal_rate"};
    json_t *jm = json_object_get(j, "modes");
    CHECK(json_is_real(json_object_get(json_object_get(jm, "retrieval"), "recall@1")));
    for (int d = 0; d < 3; d++)
        for (int m = 0; m < 3; m++) {
            json_t *x = json_object_get(json_object_get(jm, modes[d]), models[m]);
            CHECK_MSG(x != NULL, "%s/%s missing", modes[d], models[m]);
            for (int k = 0; k < 5; k++) CHECK(json_is_real(json_object_get(x, keys[k])));
            CHECK_EQ_INT(json_integer_value(json_object_get(x, "n")), 3);
        }
    CHECK_EQ_INT(json_array_size(json_object_get(j, "models")), 3);
    /* the models resolved as documented: dsf is the full folder, raft the adapter on base_model */
    json_t *dsf = json_array_get(json_object_get(j, "models"), 1), *raft = json_array_get(json_object_get(j, "models"), 2);
    CHECK_CONTAINS(json_string_value(json_object_get(dsf, "model")), "dsf/train");
    CHECK(json_is_null(json_object_get(dsf, "lora")));
    CHECK_CONTAINS(json_string_value(json_object_get(raft, "model")), "stories260K.bin");
    CHECK_CONTAINS(json_string_value(json_object_get(raft, "lora")), "out/train");
    /* the sweep, sorted: recall@k and rag per model at each k; rag at k = 2 is the mode's */
    json_t *sw = json_object_get(j, "k_sweep");
    CHECK_EQ_INT(json_array_size(sw), 3);
    for (int i = 0; i < 3; i++) {
        json_t *pt = json_array_get(sw, (size_t)i);
        CHECK_EQ_INT(json_integer_value(json_object_get(pt, "k")), i + 1);
        CHECK(json_is_real(json_object_get(pt, "recall@k")));
        for (int m = 0; m < 3; m++) CHECK(json_is_real(json_object_get(json_object_get(json_object_get(pt, "rag"), models[m]), "f1")));
    }
    CHECK(json_equal(json_object_get(json_object_get(json_array_get(sw, 1), "rag"), "raft"), json_object_get(json_object_get(jm, "rag"), "raft")));
    json_decref(j);
    /* the terminal table went to stderr beside --json */
    char *err_text;
    size_t len;
    CHECK_OK(rl_file_read(t_fmt("%s/stderr.txt", dir), 0, &err_text, &len, NULL));
    CHECK_CONTAINS(err_text, "model            mode");
    CHECK_CONTAINS(err_text, "dsf              oracle");
    free(err_text);
    /* every answer: 3 models x 3 questions x (3 modes + rag at k 1 and 3) */
    CHECK_EQ_INT(t_run(t_fmt("wc -l < %s/out/eval_answers.jsonl", dir), &out, 0), 0);
    CHECK_EQ_INT(atoi(out), 3 * 3 * 5);
    free(out);
    /* stored: the sweep's extra k too */
    CHECK_EQ_INT(t_run(t_fmt("sqlite3 %s/out/store.db \"SELECT count(*) FROM eval_runs WHERE mode = 'rag'\"", dir), &out, 0), 0);
    CHECK_EQ_INT(atoi(out), 9);
    free(out);
    /* the report: both trained models' curves, the metrics rows, samples with the documents */
    json_t *r = json_load_file(t_fmt("%s/out/report.json", dir), 0, NULL);
    CHECK(r != NULL);
    json_t *curves = json_object_get(r, "train_curves");
    CHECK_EQ_INT(json_array_size(curves), 2);
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(curves, 0), "model")), "dsf");
    CHECK_EQ_INT(json_array_size(json_object_get(json_array_get(curves, 1), "train")), 3);
    CHECK_EQ_INT(json_array_size(json_object_get(r, "metrics")), 9);
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(r, "config"), "base_model")),
                 t_fmt("%s/models/stories260K/stories260K.bin", shared));
    json_t *s0 = NULL;
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(r, "samples"), i, s) if (!s0 && strcmp(json_string_value(json_object_get(s, "mode")), "rag") == 0) s0 = s;
    CHECK(s0 && json_array_size(json_object_get(s0, "documents")) >= 1);
    CHECK(s0 && json_is_string(json_object_get(json_array_get(json_object_get(s0, "documents"), 0), "text")));
    json_decref(r);
    char *html;
    CHECK_OK(rl_file_read(t_fmt("%s/out/report.html", dir), 0, &html, &len, NULL));
    CHECK_CONTAINS(html, "Parking costs EUR 3.00 per day. &lt;/script&gt;&lt;svg onload=alert(1)&gt;"); /* the document seen, as text */
    CHECK(strstr(html, "<svg onload") == NULL && strstr(html, "<script") == NULL);
    CHECK_CONTAINS(html, "<tr class=\"metrics-row\" data-model=\"dsf\" data-mode=\"rag\">");
    free(html);

    /* without eval.models: base_model and the trained result (named raft: the default data is
     * RAFT's, here it is not, so "trained") */
    t_write_str(dir, "default.yaml", common);
    CHECK_EQ_INT(t_run(t_fmt("%s eval -c %s/default.yaml --questions %s/q.jsonl --modes rag -k 1 --json --max-new-tokens 4 --no-report", t_bin(), dir,
                             dir),
                       &out, 0),
                 0);
    j = json_loads(out, 0, NULL);
    CHECK(json_object_get(json_object_get(json_object_get(j, "modes"), "rag"), "base") != NULL);
    CHECK(json_object_get(json_object_get(json_object_get(j, "modes"), "rag"), "trained") != NULL);
    json_t *trained = json_array_get(json_object_get(j, "models"), 1);
    CHECK_CONTAINS(json_string_value(json_object_get(trained, "model")), "stories260K.bin");
    CHECK_CONTAINS(json_string_value(json_object_get(trained, "lora")), "out/train");
    json_decref(j);
    free(out);
    /* a model that does not exist, and two models of one name, are errors that say so */
    t_write_str(dir, "bad.yaml", t_fmt("%seval: {models: [{name: x, model: nowhere/model.bin}]}\n", common));
    CHECK(t_run(t_fmt("%s eval -c %s/bad.yaml --questions %s/q.jsonl --modes rag", t_bin(), dir, dir), &out, 1) != 0);
    CHECK_CONTAINS(out, "eval.models[0]");
    CHECK_CONTAINS(out, "does not exist");
    free(out);
    t_write_str(dir, "bad.yaml", t_fmt("%seval: {models: [{model: out/train}, {model: dsf/train}]}\n", common));
    CHECK(t_run(t_fmt("%s eval -c %s/bad.yaml --questions %s/q.jsonl --modes rag", t_bin(), dir, dir), &out, 1) != 0);
    CHECK_CONTAINS(out, "two models named 'train'");
    free(out);
}

TEST(eval_quotes_and_hostile_answers) {
    int n;
    char **q = rl_eval_quotes("a ##begin_quote##one##end_quote## b ##begin_quote##two##end_quote## ##begin_quote##open", &n);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_STR(q[0], "one");
    CHECK_EQ_STR(q[1], "two");
    CHECK_EQ_STR(q[2], "open"); /* an unclosed quote runs to the end */
    for (int i = 0; i < n; i++) free(q[i]);
    free(q);
    q = rl_eval_quotes("no quotes", &n);
    CHECK_EQ_INT(n, 0);
    free(q);
}
