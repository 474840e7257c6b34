/* test_run.c - `raftlm run`: every stage from one config; a rerun with nothing changed does no
 * work; changing one document reruns what depends on it. Uses stories260K as the student. */
#include "test.h"

#include <ctype.h>

#include "core/core.h"

#include <jansson.h>

TEST(run_whole_pipeline_then_skip_then_rerun_what_changed) {
    const char *shared = t_shared();
    if (!shared) SKIP("../shared not found: the pipeline test trains stories260K");
    char *dir = t_tmpdir(), *out;
    CHECK_EQ_INT(t_run(t_fmt("cp -r %s/examples/acme/docs/policies %s/docs", t_root(), dir), &out, 1), 0);
    free(out);
    t_write_str(dir, "raftlm.yaml",
                t_fmt("base_model: %s/models/stories260K/stories260K.bin\ntokenizer: %s/models/stories260K/tok512.bin\n"
                      "sequence_len: 512\nmax_steps: 2\nmicro_batch_size: 1\ngradient_accumulation_steps: 1\nlora_r: 4\n"
                      "corpus: {paths: [docs]}\nchunking: {size: 40, overlap: 0}\nraft: {num_distractors: 1}\n"
                      "eval: {modes: [retrieval], models: [{name: base, model: base.bin}, {name: raft, model: out/train}]}\n",
                      shared, shared));
    CHECK_EQ_INT(t_run(t_fmt("cp %s/models/stories260K/stories260K.bin %s/base.bin", shared, dir), &out, 1), 0);
    free(out);
    CHECK_EQ_INT(t_run(t_fmt("%s run -c %s/raftlm.yaml", t_bin(), dir), &out, 1), 0);
    CHECK_CONTAINS(out, "raftlm run: done");
    const char *stages[] = {"ingest  ran", "synth   ran", "train   ran", "eval    ran", "export  ran"};
    for (int i = 0; i < 5; i++) CHECK_CONTAINS(out, stages[i]);
    CHECK_CONTAINS(out, "report.html");
    free(out);
    const char *files[] = {"out/store.db", "out/datasets/raft_train.jsonl", "out/train/adapter_model.safetensors", "out/eval.json",
                           "out/export/model.gguf", "out/export/hf/config.json", "out/run_state.json", "out/report.html", "out/report.json"};
    for (int i = 0; i < 9; i++) CHECK_MSG(rl_path_exists(t_fmt("%s/%s", dir, files[i])), "%s missing", files[i]);

    /* nothing changed: no stage does work */
    CHECK_EQ_INT(t_run(t_fmt("%s run -c %s/raftlm.yaml", t_bin(), dir), &out, 1), 0);
    CHECK_CONTAINS(out, "unchanged");
    CHECK_CONTAINS(out, "(0 asked now");
    CHECK_CONTAINS(out, "train   inputs unchanged");
    CHECK_CONTAINS(out, "eval    inputs unchanged");
    CHECK_CONTAINS(out, "export  inputs unchanged");
    free(out);

    /* an evaluated model's file changes: only eval reruns */
    CHECK_EQ_INT(t_run(t_fmt("printf x >> %s/base.bin", dir), &out, 1), 0);
    free(out);
    CHECK_EQ_INT(t_run(t_fmt("%s run -c %s/raftlm.yaml", t_bin(), dir), &out, 1), 0);
    CHECK_CONTAINS(out, "train   inputs unchanged");
    CHECK_CONTAINS(out, "eval    ran");
    CHECK_CONTAINS(out, "export  inputs unchanged");
    free(out);

    /* one document changes: its chunks are asked about, and training, eval and export rerun */
    t_write_str(dir, "docs/learning-budget.md", "# Learning budget\n\nEvery employee has a learning budget of EUR 2,468.00 per year.\n");
    CHECK_EQ_INT(t_run(t_fmt("%s run -c %s/raftlm.yaml", t_bin(), dir), &out, 1), 0);
    CHECK_CONTAINS(out, "1 updated");
    CHECK(strstr(out, "(0 asked now") == NULL);
    CHECK_CONTAINS(out, "train   ran");
    CHECK_CONTAINS(out, "eval    ran");
    free(out);

    /* --only and --force */
    CHECK_EQ_INT(t_run(t_fmt("%s run -c %s/raftlm.yaml --only eval --force", t_bin(), dir), &out, 1), 0);
    CHECK_CONTAINS(out, "eval    ran");
    CHECK_CONTAINS(out, "train   not asked");
    free(out);
    CHECK(t_run(t_fmt("%s run -c %s/raftlm.yaml --only nonsense", t_bin(), dir), &out, 1) != 0);
    CHECK_CONTAINS(out, "unknown stage");
    free(out);
}

/* The example project's own config (examples/acme/raftlm.yaml: a student trained from scratch,
 * the DSF baseline, RAFT), scaled down to a few steps on part of its documents, so the demo's
 * configuration and stages cannot rot. Needs nothing from ../shared. */
TEST(run_example_student_from_scratch_scaled_down) {
    char *dir = t_tmpdir(), *out;
    const char *acme = t_fmt("%s/examples/acme", t_root());
    CHECK_EQ_INT(t_run(t_fmt("mkdir -p %s/docs && cp -r %s/docs/parts %s/docs/policies %s/docs/ && rm %s/docs/parts/*-page-[2-9].md %s/docs/parts/*-page-1?.md && "
                             "cp -r %s/student %s/ && "
                             "sed -E -e 's/^( *max_steps:).*/\\1 2/' -e 's/^( *(pretrain\\.)?micro_batch_size:).*/\\1 2/' "
                             "-e 's/^( *warmup_steps:).*/\\1 1/' -e 's/^( *vocab_size:).*/\\1 600/' -e 's/^( *save_steps:).*/\\1 1/' "
                             "-e 's/^( *modes:).*/\\1 [retrieval, closed_book, rag]\\n  questions: two.jsonl/' "
                             "%s/raftlm.yaml > %s/raftlm.yaml",
                             dir, acme, acme, dir, dir, dir, acme, dir, acme, dir),
                       &out, 1),
                 0);
    free(out);
    t_write_str(dir, "two.jsonl",
                "{\"question\": \"How much does the brake unit cost?\", \"answer\": \"EUR 1.00\"}\n"
                "{\"question\": \"What is the daily meal allowance?\", \"answer\": \"EUR 45.00\"}\n");
    CHECK_EQ_INT(t_run(t_fmt("cat %s/raftlm.yaml", dir), &out, 1), 0);
    CHECK_CONTAINS(out, "max_steps: 2");
    CHECK_CONTAINS(out, "pretrain:");
    free(out);
    CHECK_EQ_INT(t_run(t_fmt("%s run -c %s/raftlm.yaml", t_bin(), dir), &out, 1), 0);
    CHECK_CONTAINS(out, "raftlm run: done");
    CHECK_CONTAINS(out, "trained a BPE tokenizer of 600 ids");
    const char *stages[] = {"pretrain ran", "dsf     ran", "train   ran", "eval    ran", "export  ran"};
    for (int i = 0; i < 5; i++) CHECK_CONTAINS(out, stages[i]);
    free(out);
    const char *files[] = {"out/pretrain/tokenizer.json", "out/pretrain/model.safetensors", "out/pretrain/config.json",
                           "out/datasets/pretrain_train.jsonl", "out/datasets/dsf_train.jsonl", "out/dsf/model.safetensors",
                           "out/dsf/tokenizer.json", "out/train/model.safetensors", "out/train/tokenizer.json",
                           "out/export/model.gguf", "out/eval.json"};
    for (int i = 0; i < 10; i++) CHECK_MSG(rl_path_exists(t_fmt("%s/%s", dir, files[i])), "%s missing", files[i]);
    /* the DSF data: questions without documents, answers in the final-answer layout */
    CHECK_EQ_INT(t_run(t_fmt("head -n 1 %s/out/datasets/dsf_train.jsonl", dir), &out, 1), 0);
    CHECK_CONTAINS(out, "\"cot_answer\":\"<ANSWER>: ");
    CHECK(strstr(out, "<DOCUMENT>") == NULL);
    free(out);
    /* held-out documents are not pretrained on */
    CHECK_EQ_INT(t_run(t_fmt("for d in $(grep -o '\"oracle_doc\":\"[^\"]*' %s/out/datasets/raft_test.jsonl | cut -d'\"' -f4 | sort -u); do "
                             "grep -m 1 -E '^[A-Za-z0-9 ,.-]{40}' %s/docs/$d | cut -c 1-40; done > %s/held.txt; test -s %s/held.txt && "
                             "! grep -F -f %s/held.txt %s/out/datasets/pretrain_train.jsonl",
                             dir, dir, dir, dir, dir, dir),
                       &out, 1),
                 0);
    free(out);
    /* pretraining reads passages of several chunks, and (copy_fraction 0.5) half of them twice;
     * (counterfactual_copies 4) each passage is followed by four copies with other figures */
    {
        size_t n_lines = 0, twice = 0, longest = 0, copies = 0;
        char *prev = NULL;
        char *text;
        size_t len;
        rl_error err;
        RL_ASSERT(rl_file_read(t_fmt("%s/out/datasets/pretrain_train.jsonl", dir), 0, &text, &len, &err) == RL_OK);
        for (char *line = text, *nl; line && *line; line = nl ? nl + 1 : NULL) {
            nl = strchr(line, '\n');
            json_t *o = json_loadb(line, nl ? (size_t)(nl - line) : strlen(line), 0, NULL);
            const char *s = json_string_value(json_object_get(o, "text"));
            if (s) {
                size_t n = strlen(s);
                n_lines++;
                if (n > longest) longest = n;
                int doubled = n % 2 == 0 && n > 2 && strncmp(s + n / 2 + 1, s, n / 2 - 1) == 0 && s[n / 2 - 1] == '\n';
                twice += doubled;
                char *one = rl_xstrndup(s, doubled ? n / 2 - 1 : n);
                if (prev && strcmp(prev, one) != 0 && strlen(prev) == strlen(one)) {
                    size_t k = 0; /* the same text where it is not a digit */
                    while (one[k] && (one[k] == prev[k] || (isdigit((unsigned char)one[k]) && isdigit((unsigned char)prev[k])))) k++;
                    copies += one[k] == 0;
                }
                free(prev);
                prev = one;
            }
            json_decref(o);
        }
        free(prev);
        free(text);
        CHECK_MSG(copies * 10 >= n_lines * 6, "%zu of %zu passages are copies of the one before with other figures", copies, n_lines);
        CHECK_MSG(longest > 700, "the longest pretraining passage has %zu bytes: chunks were not joined", longest);
        CHECK_MSG(twice * 10 >= n_lines * 4 && twice * 10 <= n_lines * 6, "%zu of %zu passages twice", twice, n_lines);
    }
    /* the exported GGUF carries the trained tokenizer: the same ids as the tokenizer.json */
    const char *probe = "'The brake unit BM-1234 costs EUR 1,234.50. Zoë <s>x</s>'";
    char *a, *b;
    CHECK_EQ_INT(t_run(t_fmt("%s tokenize --no-special --model %s/out/pretrain %s", t_bin(), dir, probe), &a, 0), 0);
    CHECK_EQ_INT(t_run(t_fmt("%s tokenize --no-special --model %s/out/export/model.gguf %s", t_bin(), dir, probe), &b, 0), 0);
    CHECK(strlen(a) > 20);
    CHECK_EQ_STR(a, b);
    free(b);
    /* and it asks for BOS first, as raftlm runs its models (llama.cpp then encodes prompts alike) */
    CHECK_EQ_INT(t_run(t_fmt("%s tokenize --model %s/out/export/model.gguf %s", t_bin(), dir, probe), &b, 0), 0);
    CHECK(strncmp(b, "0 ", 2) == 0 && strcmp(b + 2, a) == 0);
    free(a), free(b);
    /* nothing changed: the student's stages are skipped */
    CHECK_EQ_INT(t_run(t_fmt("%s run -c %s/raftlm.yaml", t_bin(), dir), &out, 1), 0);
    CHECK_CONTAINS(out, "pretrain inputs unchanged");
    CHECK_CONTAINS(out, "dsf     inputs unchanged");
    CHECK_CONTAINS(out, "train   inputs unchanged");
    free(out);
    /* a stage's output deleted by hand: that stage runs again, the others stay skipped */
    CHECK_EQ_INT(t_run(t_fmt("rm -r %s/out/dsf", dir), &out, 1), 0);
    free(out);
    CHECK_EQ_INT(t_run(t_fmt("%s run -c %s/raftlm.yaml", t_bin(), dir), &out, 1), 0);
    CHECK_CONTAINS(out, "dsf: its inputs are unchanged but its outputs are gone");
    CHECK_CONTAINS(out, "dsf     ran");
    CHECK_CONTAINS(out, "pretrain inputs unchanged");
    CHECK_CONTAINS(out, "train   inputs unchanged");
    CHECK(strstr(out, "resuming from") == NULL); /* its folder went with its checkpoints */
    free(out);
    /* RAFT training killed after its checkpoint (save_steps 1 of max_steps 2): the next run
     * resumes from it, not from step 0 */
    CHECK_MSG(rl_path_exists(t_fmt("%s/out/train/checkpoint-1", dir)), "no checkpoint");
    CHECK_EQ_INT(t_run(t_fmt("rm %s/out/train/model.safetensors", dir), &out, 1), 0);
    free(out);
    CHECK_EQ_INT(t_run(t_fmt("%s run -c %s/raftlm.yaml", t_bin(), dir), &out, 1), 0);
    CHECK_CONTAINS(out, "resuming from");
    CHECK_CONTAINS(out, "checkpoint-1");
    CHECK_CONTAINS(out, "train   ran");
    free(out);
    /* but not from a checkpoint made for other inputs */
    CHECK_EQ_INT(t_run(t_fmt("sed -i 's/^learning_rate:.*/learning_rate: 0.001/' %s/raftlm.yaml && rm %s/out/train/model.safetensors", dir, dir),
                       &out, 1),
                 0);
    free(out);
    CHECK_EQ_INT(t_run(t_fmt("%s run -c %s/raftlm.yaml", t_bin(), dir), &out, 1), 0);
    CHECK(strstr(out, "resuming from") == NULL);
    CHECK_CONTAINS(out, "train   ran");
    free(out);
    /* pretrain without a model shape is a config error that names the key */
    t_write_str(dir, "bad.yaml", "pretrain: {enabled: true}\n");
    CHECK(t_run(t_fmt("%s run -c %s/bad.yaml", t_bin(), dir), &out, 1) != 0);
    CHECK_CONTAINS(out, "pretrain.model_config");
    free(out);
}
