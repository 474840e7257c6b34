/* test_bert.c - the BERT-family encoder against PyTorch (tests/fixtures/bert, written by
 * scripts/make_bert_fixtures.py): token ids, last hidden states of a padded batch, pooled
 * sentence embeddings through rl_embedder (HF folders and a GGUF file), prefixes, and damaged
 * files. */
#include <jansson.h>
#include <math.h>

#include "model/model.h"
#include "model/safetensors.h"
#include "retrieve/retrieve.h"
#include "test.h"
#include "tokenizer/tokenizer.h"

#define TOL 1e-4

static char *fixture(const char *name) { return t_fmt("%s/tests/fixtures/bert/%s", t_root(), name); }

typedef struct ref {
    rl_st_file f;
    json_t *meta;
    int n_texts;
} ref;

static void ref_open(ref *r, const char *name) {
    rl_error err = {0};
    CHECK_OK(rl_st_open(&r->f, t_fmt("%s/ref.safetensors", fixture(name)), &err));
    json_error_t je;
    r->meta = json_load_file(t_fmt("%s/ref.json", fixture(name)), 0, &je);
    CHECK(r->meta != NULL);
    r->n_texts = (int)json_array_size(json_object_get(r->meta, "texts"));
}

static void ref_close(ref *r) {
    rl_st_close(&r->f);
    json_decref(r->meta);
}

static const char *ref_text(ref *r, int i) { return json_string_value(json_array_get(json_object_get(r->meta, "texts"), (size_t)i)); }

static const rl_st_tensor *ref_tensor(ref *r, const char *fmt, int i) {
    const rl_st_tensor *t = rl_st_find(&r->f, t_fmt(fmt, i));
    if (!t) rl_test_fail(__FILE__, __LINE__, "fixture lacks %s", t_fmt(fmt, i));
    return t;
}

static const int32_t *ref_ids(ref *r, int i, int *n) {
    const rl_st_tensor *t = ref_tensor(r, "ids.%d", i);
    *n = (int)t->numel;
    return (const int32_t *)t->data;
}

static const float *ref_f32(ref *r, const char *fmt, int i) { return (const float *)ref_tensor(r, fmt, i)->data; }

/* The encoder alone: the tokenizer's ids (truncated as the model says) equal the reference's, and
 * all texts as one padded batch give the reference's unpadded hidden states and pooled vectors. */
static void check_forward(const char *name, rl_bert_pooling pooling, int normalize) {
    ref r;
    ref_open(&r, name);
    rl_error err = {0};
    rl_bert m;
    CHECK_OK(rl_bert_load(&m, fixture(name), &err));
    CHECK_EQ_INT(m.pooling, pooling);
    CHECK_EQ_INT(m.normalize, normalize);
    CHECK_EQ_INT(m.max_tokens, json_integer_value(json_object_get(r.meta, "max_len")));
    rl_tokenizer *tok;
    CHECK_OK(rl_tok_load(&tok, fixture(name), &err));
    int B = r.n_texts, T = 0;
    int *lens = calloc((size_t)B, sizeof *lens);
    for (int i = 0; i < B; i++) {
        int n;
        const int32_t *want = ref_ids(&r, i, &n);
        int32_t *ids;
        size_t got;
        CHECK_OK(rl_tok_encode(tok, ref_text(&r, i), strlen(ref_text(&r, i)), 1, &ids, &got, &err));
        /* truncation keeps [CLS] + the first max-2 + [SEP] */
        if ((int)got > m.max_tokens) ids[m.max_tokens - 1] = ids[got - 1], got = (size_t)m.max_tokens;
        CHECK_EQ_INT(got, n);
        for (int t = 0; t < n && t < (int)got; t++) CHECK_EQ_INT(ids[t], want[t]);
        free(ids);
        lens[i] = n;
        if (n > T) T = n;
    }
    int *tokens = calloc((size_t)B * T, sizeof *tokens);
    for (int i = 0; i < B; i++) {
        int n;
        const int32_t *ids = ref_ids(&r, i, &n);
        for (int t = 0; t < n; t++) tokens[i * T + t] = ids[t];
    }
    int C = m.cfg.dim;
    float *hidden = malloc(sizeof(float) * (size_t)B * T * C), *pooled = malloc(sizeof(float) * (size_t)B * C);
    CHECK_OK(rl_bert_forward(&m, hidden, tokens, NULL, lens, B, T, &err));
    rl_bert_pool(&m, pooled, hidden, lens, B, T);
    double dh = 0, dp = 0;
    for (int i = 0; i < B; i++) {
        const float *h = ref_f32(&r, "hidden.%d", i), *p = ref_f32(&r, "pooled.%d", i);
        for (int t = 0; t < lens[i]; t++)
            for (int c = 0; c < C; c++) dh = fmax(dh, fabs(hidden[((size_t)i * T + t) * C + c] - h[t * C + c]));
        for (int c = 0; c < C; c++) dp = fmax(dp, fabs(pooled[(size_t)i * C + c] - p[c]));
    }
    /* token types */
    int n;
    const int32_t *tid = (const int32_t *)ref_tensor(&r, "typed.ids", 0)->data, *tty = (const int32_t *)ref_tensor(&r, "typed.types", 0)->data;
    n = (int)ref_tensor(&r, "typed.ids", 0)->numel;
    int *tk = malloc(sizeof(int) * n), *ty = malloc(sizeof(int) * n);
    for (int t = 0; t < n; t++) tk[t] = tid[t], ty[t] = tty[t];
    float *th = malloc(sizeof(float) * (size_t)n * C);
    CHECK_OK(rl_bert_forward(&m, th, tk, ty, &n, 1, n, &err));
    const float *want = ref_f32(&r, "typed.hidden", 0);
    double dt = 0;
    for (int i = 0; i < n * C; i++) dt = fmax(dt, fabs(th[i] - want[i]));
    printf("  %s: max |diff| hidden %.2e, pooled %.2e, with token types %.2e (tolerance %.0e)\n", name, dh, dp, dt, TOL);
    CHECK(dh < TOL);
    CHECK(dp < TOL);
    CHECK(dt < TOL);
    free(tk), free(ty), free(th), free(tokens), free(lens), free(hidden), free(pooled);
    rl_tok_free(tok);
    rl_bert_free(&m);
    ref_close(&r);
}

TEST(bert_minilm_mean_vs_pytorch) { check_forward("minilm_mean", RL_BERT_POOL_MEAN, 1); }
TEST(bert_bge_cls_bf16_prefix_vs_pytorch) { check_forward("bge_cls", RL_BERT_POOL_CLS, 1); }
TEST(bert_e5_mean_f16_no_normalize_vs_pytorch) { check_forward("e5_mean_raw", RL_BERT_POOL_MEAN, 0); }

/* The embedder end to end (tokenize, truncate, batch, pool): path is a folder or a .gguf. */
static void check_embedder(const char *name, const char *model_path) {
    ref r;
    ref_open(&r, name);
    rl_error err = {0};
    rl_embedder *e;
    CHECK_OK(rl_embedder_open(&e, model_path, NULL, 2, &err));
    if (!e) {
        printf("  %s\n", err.msg);
        return;
    }
    int C = rl_embedder_dim(e), B = r.n_texts;
    const char **texts = calloc((size_t)B, sizeof *texts);
    for (int i = 0; i < B; i++) texts[i] = ref_text(&r, i);
    float *out = malloc(sizeof(float) * (size_t)B * C), *one = malloc(sizeof(float) * C);
    int *ntok = calloc((size_t)B, sizeof *ntok);
    CHECK_OK(rl_embed_texts(e, RL_EMBED_RAW, texts, (size_t)B, out, ntok, &err));
    double d = 0;
    for (int i = 0; i < B; i++) {
        int n;
        ref_ids(&r, i, &n);
        CHECK_EQ_INT(ntok[i], n);
        const float *p = ref_f32(&r, "pooled.%d", i);
        for (int c = 0; c < C; c++) d = fmax(d, fabs(out[(size_t)i * C + c] - p[c]));
    }
    /* one at a time gives the same as the batch */
    CHECK_OK(rl_embed_text(e, texts[1], one, &err));
    double d1 = 0;
    for (int c = 0; c < C; c++) d1 = fmax(d1, fabs(one[c] - out[C + c]));
    printf("  %s via %s: max |diff| pooled %.2e, alone vs batched %.2e (tolerance %.0e)\n", name, rl_path_basename(model_path), d, d1, TOL);
    CHECK(d < TOL);
    CHECK(d1 < 1e-5);
    /* token arrays: the ids themselves */
    int n;
    const int32_t *ids = ref_ids(&r, 1, &n);
    CHECK_OK(rl_embed_tokens(e, ids, (size_t)n, one, &err));
    d1 = 0;
    for (int c = 0; c < C; c++) d1 = fmax(d1, fabs(one[c] - out[C + c]));
    CHECK(d1 < 1e-5);
    int32_t bad = 1 << 20;
    CHECK(rl_embed_tokens(e, &bad, 1, one, &err) == RL_EINVAL);
    free(texts), free(out), free(one), free(ntok);
    rl_embedder_free(e);
    ref_close(&r);
}

TEST(bert_embedder_hf_folders) {
    check_embedder("minilm_mean", fixture("minilm_mean"));
    check_embedder("bge_cls", fixture("bge_cls"));
    check_embedder("e5_mean_raw", fixture("e5_mean_raw"));
}

TEST(bert_embedder_gguf_same_as_folder) {
    char *g = t_fmt("%s/model.gguf", fixture("minilm_mean"));
    char arch[32];
    rl_model_detect_arch(g, arch, sizeof arch);
    CHECK_EQ_STR(arch, "bert");
    rl_model_detect_arch(fixture("bge_cls"), arch, sizeof arch);
    CHECK_EQ_STR(arch, "bert");
    check_embedder("minilm_mean", g);
}

/* Prefixes: a query is embedded as prefix + text; they change the fingerprint. */
TEST(bert_embedder_prefixes) {
    rl_error err = {0};
    rl_embedder *e;
    CHECK_OK(rl_embedder_open(&e, fixture("e5_mean_raw"), NULL, 1, &err));
    char *fp0 = strdup(rl_embedder_fingerprint(e));
    int C = rl_embedder_dim(e);
    float *a = malloc(sizeof(float) * C), *b = malloc(sizeof(float) * C), *c = malloc(sizeof(float) * C);
    const char *q = "wash hands";
    rl_embedder_set_prefixes(e, "query: ", "passage: ");
    CHECK(strcmp(fp0, rl_embedder_fingerprint(e)) != 0);
    CHECK_OK(rl_embed_texts(e, RL_EMBED_QUERY, &q, 1, a, NULL, &err));
    const char *full = "query: wash hands";
    CHECK_OK(rl_embed_texts(e, RL_EMBED_RAW, &full, 1, b, NULL, &err));
    CHECK_OK(rl_embed_texts(e, RL_EMBED_PASSAGE, &q, 1, c, NULL, &err));
    CHECK(memcmp(a, b, sizeof(float) * C) == 0);
    CHECK(memcmp(a, c, sizeof(float) * C) != 0);
    rl_embedder_set_prefixes(e, NULL, NULL);
    CHECK_EQ_STR(rl_embedder_fingerprint(e), fp0);
    free(a), free(b), free(c), free(fp0);
    rl_embedder_free(e);
}

static void copy_file(const char *from, const char *to_dir, const char *rel) {
    char *data;
    size_t len;
    rl_error err = {0};
    CHECK_OK(rl_file_read(from, 0, &data, &len, &err));
    t_write(to_dir, rel, data, len);
    free(data);
}

/* Damaged files are clear errors, never crashes. */
TEST(bert_damaged_files) {
    rl_error err = {0};
    rl_bert m;
    char *src = fixture("minilm_mean");
    /* GGUF cut at many lengths, and bytes flipped in the header and directory */
    char *data;
    size_t len;
    CHECK_OK(rl_file_read(t_fmt("%s/model.gguf", src), 0, &data, &len, &err));
    char *tmp = t_tmpdir();
    int refused = 0, tried = 0;
    for (size_t cut = 0; cut < len; cut += cut < 512 ? 7 : 4099) {
        t_write(tmp, "cut.gguf", data, cut);
        rl_error e2 = {0};
        rl_status s = rl_bert_load(&m, t_fmt("%s/cut.gguf", tmp), &e2);
        tried++;
        if (s) {
            refused++;
            CHECK(e2.msg[0] != 0);
        } else rl_bert_free(&m);
    }
    CHECK_EQ_INT(refused, tried);
    uint64_t rng = 7;
    for (int i = 0; i < 300; i++) {
        char *d2 = malloc(len);
        memcpy(d2, data, len);
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        size_t at = (size_t)(rng >> 33) % 2048;
        d2[at] = (char)(rng >> 13);
        t_write(tmp, "flip.gguf", d2, len);
        if (rl_bert_load(&m, t_fmt("%s/flip.gguf", tmp), &err) == RL_OK) {
            int lens = 3, tk[3] = {2, 5, 3};
            float *h = malloc(sizeof(float) * 3 * m.cfg.dim);
            rl_bert_forward(&m, h, tk, NULL, &lens, 1, 3, &err);
            free(h);
            rl_bert_free(&m);
        }
        free(d2);
    }
    free(data);
    /* HF folder: bad config, missing tensor, wrong pooling */
    char *d = t_tmpdir();
    copy_file(t_fmt("%s/model.safetensors", src), d, "model.safetensors");
    copy_file(t_fmt("%s/tokenizer.json", src), d, "tokenizer.json");
    t_write_str(d, "config.json", "{\"model_type\": \"bert\", \"hidden_size\": \"32\"}");
    CHECK(rl_bert_load(&m, d, &err) == RL_EFORMAT);
    CHECK_CONTAINS(err.msg, "config.json");
    copy_file(t_fmt("%s/config.json", src), d, "config.json");
    t_write_str(d, "modules.json", "[{\"type\": \"sentence_transformers.models.Pooling\", \"path\": \"1_Pooling\"}]");
    t_write_str(d, "1_Pooling/config.json", "{\"pooling_mode_max_tokens\": true}");
    CHECK(rl_bert_load(&m, d, &err) == RL_EUNSUPPORTED);
    CHECK_CONTAINS(err.msg, "pooling_mode");
    t_write_str(d, "modules.json", "{not json");
    CHECK(rl_bert_load(&m, d, &err) == RL_EFORMAT);
    t_write_str(d, "modules.json", "[]");
    CHECK_OK(rl_bert_load(&m, d, &err));
    CHECK_EQ_INT(m.pooling, RL_BERT_POOL_MEAN);
    CHECK_EQ_INT(m.normalize, 0);
    /* a bad id and too many positions */
    int lens = 2, tk[2] = {2, 100000};
    float h[2 * 64];
    CHECK(rl_bert_forward(&m, h, tk, NULL, &lens, 1, 2, &err) == RL_EINVAL);
    CHECK(rl_bert_forward(&m, h, tk, NULL, &lens, 1, 100000, &err) == RL_EINVAL);
    rl_bert_free(&m);
    t_write_str(d, "config.json",
                "{\"model_type\": \"bert\", \"hidden_size\": 32, \"num_attention_heads\": 4, \"num_hidden_layers\": 3, "
                "\"intermediate_size\": 64, \"vocab_size\": 215, \"max_position_embeddings\": 40}");
    CHECK(rl_bert_load(&m, d, &err) != RL_OK);
    CHECK_CONTAINS(err.msg, "encoder.layer.2");
    t_write_str(d, "config.json", "{\"model_type\": \"roberta\"}");
    CHECK(rl_bert_load(&m, d, &err) == RL_EUNSUPPORTED);
}

/* `raftlm ingest` + `raftlm search` with a BERT encoder: self-retrieval, --path-prefix in every
 * mode, and a changed passage prefix re-embeds every chunk. */
TEST(bert_cli_ingest_search_path_prefix) {
    char *dir = t_tmpdir(), *out;
    t_write_str(dir, "docs/faq/hands.md", "# Hands\n\nwash your hands with soap and water for twenty seconds.\n");
    t_write_str(dir, "docs/faq/masks.md", "# Masks\n\na mask covers the nose and the mouth.\n");
    t_write_str(dir, "docs/news/virus.md", "# Virus\n\nthe virus can live on plastic and steel surfaces for days.\n");
    t_write_str(dir, "docs/news/hands.md", "# More hands\n\nhands that touch surfaces should be washed with soap.\n");
    const char *cfg = "corpus: {paths: [docs]}\nretrieval: {embedding_model: %s%s}\n";
    t_write_str(dir, "raftlm.yaml", t_fmt(cfg, fixture("minilm_mean"), ""));
    CHECK_EQ_INT(t_run(t_fmt("%s ingest -c %s/raftlm.yaml", t_bin(), dir), &out, 1), 0);
    CHECK_CONTAINS(out, "embedded 4 new chunks");
    free(out);
    /* a chunk's own text (heading + body, as embedded) is its own nearest neighbour */
    CHECK_EQ_INT(t_run(t_fmt("%s search -c %s/raftlm.yaml --mode dense --json -k 4 \"$(printf 'Masks\\n# Masks\\n\\na mask covers the nose and the mouth.')\"",
                             t_bin(), dir),
                       &out, 0),
                 0);
    json_t *j = json_loads(out, 0, NULL);
    json_t *r0 = json_array_get(json_object_get(j, "results"), 0);
    CHECK_EQ_STR(json_string_value(json_object_get(r0, "doc")), "faq/masks.md");
    CHECK(json_real_value(json_object_get(r0, "score")) > 0.999);
    json_decref(j);
    free(out);
    const char *modes[] = {"bm25", "dense", "hybrid"};
    for (int m = 0; m < 3; m++) {
        CHECK_EQ_INT(t_run(t_fmt("%s search -c %s/raftlm.yaml --mode %s --path-prefix news/ --json -k 10 'hands soap surfaces'", t_bin(), dir,
                                 modes[m]),
                           &out, 0),
                     0);
        j = json_loads(out, 0, NULL);
        json_t *res = json_object_get(j, "results");
        CHECK_MSG(json_array_size(res) >= 1, "%s: no results", modes[m]);
        size_t i;
        json_t *it;
        json_array_foreach(res, i, it) CHECK_MSG(strncmp(json_string_value(json_object_get(it, "doc")), "news/", 5) == 0, "%s: %s",
                                                 modes[m], json_string_value(json_object_get(it, "doc")));
        if (m > 0) CHECK_EQ_INT(json_array_size(res), 2); /* every chunk under news/, no other */
        json_decref(j);
        free(out);
        CHECK_EQ_INT(t_run(t_fmt("%s search -c %s/raftlm.yaml --mode %s --path-prefix nowhere/ --json 'hands'", t_bin(), dir, modes[m]), &out, 0), 0);
        j = json_loads(out, 0, NULL);
        CHECK_EQ_INT(json_array_size(json_object_get(j, "results")), 0);
        json_decref(j);
        free(out);
    }
    /* prefixes are part of the fingerprint: every chunk is embedded again */
    t_write_str(dir, "raftlm.yaml", t_fmt(cfg, fixture("minilm_mean"), ", query_prefix: 'query: ', passage_prefix: 'passage: '"));
    CHECK_EQ_INT(t_run(t_fmt("%s ingest -c %s/raftlm.yaml", t_bin(), dir), &out, 1), 0);
    CHECK_CONTAINS(out, "embedded 4 new chunks");
    free(out);
    CHECK_EQ_INT(t_run(t_fmt("%s ingest -c %s/raftlm.yaml", t_bin(), dir), &out, 1), 0);
    CHECK(!strstr(out, "embedded 4"));
    free(out);
}
