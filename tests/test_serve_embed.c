/* test_serve_embed.c - POST /v1/embeddings and /v1/search's path-prefix filter with the official
 * OpenAI JavaScript client (tests/node/embeddings_client.mjs): `raftlm serve` with stories260K as
 * the chat model and a BERT fixture (tests/fixtures/bert/minilm_mean) as retrieval's embedder,
 * with e5-style prefixes; the vectors must equal what the library's rl_embedder computes. SKIPs
 * with a message without ../shared, node or the npm package. */
#include <jansson.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "retrieve/retrieve.h"
#include "test.h"

static json_t *vec_json(const float *v, int dim) {
    json_t *a = json_array();
    for (int i = 0; i < dim; i++) json_array_append_new(a, json_real(v[i]));
    return a;
}

TEST(serve_embeddings_openai_node_client) {
    const char *sh = t_shared();
    char *bin = sh ? t_fmt("%s/models/stories260K/stories260K.bin", sh) : NULL;
    if (!bin || !rl_path_exists(bin)) SKIP("../shared/models/stories260K is not here (the server needs a chat model)");
    if (t_run("node --version >/dev/null 2>&1", NULL, 0) != 0) SKIP("node is not installed");
    if (!rl_path_exists(t_fmt("%s/tests/node/node_modules/openai/package.json", t_root())))
        SKIP("the npm package openai is not installed (cd tests/node && npm install)");
    char *tokp = t_fmt("%s/models/stories260K/tok512.bin", sh), *enc = t_fmt("%s/tests/fixtures/bert/minilm_mean", t_root());
    char *dir = t_tmpdir(), *out = NULL;
    t_write_str(dir, "docs/faq/hands.md", "# Hands\n\nwash your hands with soap and water for twenty seconds.\n");
    t_write_str(dir, "docs/faq/masks.md", "# Masks\n\na mask covers the nose and the mouth.\n");
    t_write_str(dir, "docs/news/virus.md", "# Virus\n\nthe virus can live on plastic and steel surfaces for days.\n");
    t_write_str(dir, "docs/news/hands.md", "# More hands\n\nhands that touch surfaces should be washed with soap.\n");
    t_write_str(dir, "raftlm.yaml",
                t_fmt("corpus: {paths: [docs]}\nretrieval: {embedding_model: %s, query_prefix: 'query: ', passage_prefix: 'passage: '}\n", enc));
    CHECK_EQ_INT(t_run(t_fmt("%s ingest -c %s/raftlm.yaml", t_bin(), dir), &out, 1), 0);
    free(out);
    /* what the library computes */
    rl_embedder *e;
    rl_error err = {0};
    CHECK_OK(rl_embedder_open(&e, enc, NULL, 1, &err));
    rl_embedder_set_prefixes(e, "query: ", "passage: ");
    const char *texts[] = {"how do i wash my hands?", "masks cover the nose", "the virus on steel", "a"};
    int n = 4, dim = rl_embedder_dim(e), ntok[4];
    float *v = malloc(sizeof(float) * n * dim), *qv = malloc(sizeof(float) * dim), *tv = malloc(sizeof(float) * dim);
    CHECK_OK(rl_embed_texts(e, RL_EMBED_PASSAGE, texts, (size_t)n, v, ntok, &err));
    CHECK_OK(rl_embed_texts(e, RL_EMBED_QUERY, texts, 1, qv, NULL, &err));
    int32_t toks[] = {2, 20, 9, 3};
    CHECK_OK(rl_embed_tokens(e, toks, 4, tv, &err));
    json_t *w = json_object(), *ta = json_array(), *va = json_array(), *na = json_array(), *tk = json_array();
    for (int i = 0; i < n; i++) {
        json_array_append_new(ta, json_string(texts[i]));
        json_array_append_new(va, vec_json(v + i * dim, dim));
        json_array_append_new(na, json_integer(ntok[i]));
    }
    for (int i = 0; i < 4; i++) json_array_append_new(tk, json_integer(toks[i]));
    json_object_set_new(w, "model", json_string("minilm_mean"));
    json_object_set_new(w, "dim", json_integer(dim));
    json_object_set_new(w, "texts", ta);
    json_object_set_new(w, "vectors", va);
    json_object_set_new(w, "n_tokens", na);
    json_object_set_new(w, "query_vector", vec_json(qv, dim));
    json_object_set_new(w, "tokens", tk);
    json_object_set_new(w, "token_vector", vec_json(tv, dim));
    CHECK(json_dump_file(w, t_fmt("%s/expected.json", dir), 0) == 0);
    json_decref(w);
    rl_embedder_free(e);
    free(v), free(qv), free(tv);
    /* the server */
    int port = 0;
    const char *args[] = {"-c", t_fmt("%s/raftlm.yaml", dir), "--model", bin, "--tokenizer", tokp, "--parallel", "1", NULL};
    int pid = t_serve_start(args, &port);
    CHECK_MSG(pid > 0, "serve did not start");
    if (pid <= 0) return;
    char *log = NULL;
    int rc = t_run(t_fmt("node %s/tests/node/embeddings_client.mjs http://127.0.0.1:%d/v1 %s/expected.json", t_root(), port, dir), &log, 1);
    CHECK_MSG(rc == 0, "the OpenAI client's checks failed:\n%s", log);
    CHECK_CONTAINS(log, "all ok");
    printf("%s", log);
    free(log);
    CHECK(t_serve_stop(pid));
}
