/* test_openai_node.c - the official OpenAI JavaScript client (npm package `openai`, installed
 * into tests/node/node_modules by `cd tests/node && npm install`) against `raftlm serve` with
 * stories260K and a small store: at temperature 0 it must get exactly `raftlm generate`'s text,
 * plain and streamed, for chat and completions; models, errors, /health and /v1/search too
 * (tests/node/openai_client.mjs). SKIPs with a message without node or the package. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "retrieve/retrieve.h"
#include "test.h"

TEST(openai_node_client_against_raftlm_serve) {
    const char *sh = t_shared();
    char *bin = sh ? t_fmt("%s/models/stories260K/stories260K.bin", sh) : NULL;
    char *tokp = sh ? t_fmt("%s/models/stories260K/tok512.bin", sh) : NULL;
    if (!bin || !rl_path_exists(bin)) SKIP("../shared/models/stories260K is not here (a clone without the shared folder)");
    if (t_run("node --version >/dev/null 2>&1", NULL, 0) != 0) SKIP("node is not installed");
    char *script = t_fmt("%s/tests/node/openai_client.mjs", t_root());
    char *pkg = t_fmt("%s/tests/node/node_modules/openai/package.json", t_root());
    if (!rl_path_exists(pkg)) SKIP("the npm package openai is not installed (cd tests/node && npm install)");
    // a store with two documents
    char *dir = t_tmpdir(), *docs = rl_path_join(dir, "docs"), *db = rl_path_join(dir, "store.db");
    t_write_str(docs, "garden.md", "# Garden\n\n## Watering\n\nThe tomato beds are watered every Tuesday at 7 am by Ben.\n");
    t_write_str(docs, "ball.md", "# Toys\n\nLily keeps the big red ball in the blue box under the stairs.\n");
    rl_store *s;
    rl_error err;
    CHECK_OK(rl_store_open(&s, db, NULL, &err));
    const char *paths[] = {docs};
    rl_ingest_opts o = {.paths = paths, .n_paths = 1, .max_file_bytes = 1 << 20, .chunk = {.size = 64, .overlap = 8}};
    rl_ingest_report r;
    CHECK_OK(rl_ingest(s, &o, &r, &err));
    rl_ingest_report_free(&r);
    rl_store_close(s);
    // what generate prints
    const char *prompt = "Once upon a time";
    int n = 80;
    char *want = NULL;
    CHECK_EQ_INT(t_run(t_fmt("%s generate --model %s --tokenizer %s --prompt '%s' --temp 0 -n %d 2>/dev/null", t_bin(), bin,
                             tokp, prompt, n), &want, 0), 0);
    t_write_str(dir, "expected.txt", want);
    // the server
    int port = 0;
    const char *args[] = {"--model", bin, "--tokenizer", tokp, "--parallel", "2", "--store", dir, "--name", "stories260K", NULL};
    int pid = t_serve_start(args, &port);
    CHECK_MSG(pid > 0, "serve did not start");
    if (pid <= 0) return;
    char *log = NULL;
    int rc = t_run(t_fmt("node %s http://127.0.0.1:%d/v1 stories260K '%s' %d %s/expected.txt", script, port, prompt, n, dir),
                   &log, 1);
    CHECK_MSG(rc == 0, "the OpenAI client's checks failed:\n%s", log);
    CHECK_CONTAINS(log, "all ok");
    printf("%s", log);
    CHECK(t_serve_stop(pid));
    free(log);
    free(want);
    free(docs);
    free(db);
    free(dir);
    free(script);
    free(pkg);
    free(bin);
    free(tokp);
}
