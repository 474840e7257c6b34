/* test_run.c - `raftlm run`: every stage from one config; a rerun with nothing changed does no
 * work; changing one document reruns what depends on it. Uses stories260K as the student. */
#include "test.h"

#include "core/core.h"

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
