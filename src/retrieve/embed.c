/* embed.c - sentence embeddings from the engine's models, the chunk vectors in the store, and
 * dense and hybrid (reciprocal rank fusion) search over an HNSW index.
 *
 * A decoder model serves as the encoder here: the final normalised hidden states of the text's
 * tokens, mean-pooled and L2-normalised. Dedicated BERT-family encoders will plug in behind
 * the same rl_embedder interface. Vectors live in the store (chunk_vectors, deleted with their
 * chunk), the index in its own file rebuilt from them, so the store stays the one truth. */
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "retrieve/store_internal.h"
#include "tokenizer/tokenizer.h"
#include "vecindex/vecindex.h"

struct rl_embedder {
    rl_model model;
    rl_tokenizer *tok;
    rl_pool *pool;
    rl_acts acts;
    int max_tokens;
    char fingerprint[80];
};

rl_status rl_embedder_open(rl_embedder **out, const char *model_path, const char *tokenizer_path, int threads, rl_error *err) {
    *out = NULL;
    rl_embedder *e = rl_xcalloc(1, sizeof *e);
    rl_status s = rl_model_load(&e->model, model_path, err);
    if (s) {
        rl_error_prefix(err, "embedding model");
        free(e);
        return s;
    }
    s = rl_tok_load(&e->tok, tokenizer_path ? tokenizer_path : model_path, err);
    if (s) {
        rl_error_prefix(err, "embedding model's tokenizer (set retrieval.embedding_tokenizer)");
        rl_model_free(&e->model);
        free(e);
        return s;
    }
    e->max_tokens = e->model.cfg.max_seq_len < 256 ? e->model.cfg.max_seq_len : 256;
    if ((s = rl_acts_init(&e->acts, &e->model, 1, e->max_tokens, err))) {
        rl_tok_free(e->tok);
        rl_model_free(&e->model);
        free(e);
        return s;
    }
    e->pool = rl_pool_create(threads);
    e->model.pool = e->pool;
    /* identity: the weights' first values and the shape (cheap, and changes with the model) */
    rl_buf id = {0};
    rl_buf_printf(&id, "%s:%d:%d:%d:%d:", e->model.cfg.arch, e->model.cfg.dim, e->model.cfg.n_layers, e->model.cfg.vocab_size,
                  e->model.cfg.hidden_dim);
    rl_tensor_ref *refs = rl_xcalloc((size_t)rl_params_count(&e->model.cfg) + 1, sizeof *refs);
    int n = rl_params_list(&e->model.cfg, &e->model.w, refs);
    for (int i = 0; i < n; i++)
        if (refs[i].data && refs[i].n) rl_buf_append(&id, refs[i].data, (refs[i].n < 64 ? refs[i].n : 64) * sizeof(float));
    free(refs);
    char hex[65];
    rl_sha256_hex(id.data, id.len, hex);
    rl_buf_free(&id);
    snprintf(e->fingerprint, sizeof e->fingerprint, "meanpool:%.24s:%d", hex, e->model.cfg.dim);
    *out = e;
    return RL_OK;
}

void rl_embedder_free(rl_embedder *e) {
    if (!e) return;
    rl_acts_free(&e->acts);
    rl_tok_free(e->tok);
    rl_model_free(&e->model);
    rl_pool_free(e->pool);
    free(e);
}

int rl_embedder_dim(const rl_embedder *e) { return e->model.cfg.dim; }
const char *rl_embedder_fingerprint(const rl_embedder *e) { return e->fingerprint; }

rl_status rl_embed_text(rl_embedder *e, const char *text, float *out, rl_error *err) {
    int32_t *ids = NULL;
    size_t n = 0;
    rl_status s = rl_tok_encode(e->tok, text, strlen(text), 0, &ids, &n, err);
    if (s) return s;
    int T = (int)n + 1;
    if (T > e->max_tokens) T = e->max_tokens;
    int *tokens = rl_xmalloc((size_t)T * sizeof *tokens);
    int bos = rl_tok_bos(e->tok) >= 0 ? rl_tok_bos(e->tok) : e->model.cfg.bos_id;
    tokens[0] = bos >= 0 ? bos : (n ? ids[0] : 0);
    for (int t = 1; t < T; t++) tokens[t] = ids[t - 1];
    free(ids);
    s = rl_model_forward(&e->model, &e->acts, tokens, NULL, NULL, NULL, 1, T, NULL, err);
    free(tokens);
    if (s) return s;
    int C = e->model.cfg.dim, from = T > 1 ? 1 : 0; /* the BOS position says nothing about the text */
    memset(out, 0, (size_t)C * sizeof *out);
    for (int t = from; t < T; t++)
        for (int c = 0; c < C; c++) out[c] += e->acts.lnf[(size_t)t * C + c];
    double norm = 0;
    for (int c = 0; c < C; c++) norm += (double)out[c] * out[c];
    norm = sqrt(norm);
    for (int c = 0; c < C; c++) out[c] = norm > 0 ? (float)(out[c] / norm) : 0;
    return RL_OK;
}

/* ---- vectors in the store ------------------------------------------------------------------- */

static rl_status ensure_vector_table(rl_store *s, rl_error *err) {
    return store_exec(s,
                      "CREATE TABLE IF NOT EXISTS chunk_vectors(chunk_id INTEGER PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,"
                      " model TEXT NOT NULL, vec BLOB NOT NULL)",
                      err);
}

rl_status rl_store_embed(rl_store *s, rl_embedder *e, const char *index_path, int64_t *n_embedded, rl_error *err) {
    *n_embedded = 0;
    rl_status r = ensure_vector_table(s, err);
    if (r) return r;
    /* vectors of another model are useless now */
    sqlite3_stmt *st;
    if (store_prepare(s, &st, "DELETE FROM chunk_vectors WHERE model <> ?", err)) return RL_EDB;
    sqlite3_bind_text(st, 1, e->fingerprint, -1, SQLITE_STATIC);
    sqlite3_step(st);
    int64_t dropped = sqlite3_changes(s->db);
    sqlite3_finalize(st);
    if (store_prepare(s, &st, "SELECT c.id, c.heading, c.text FROM chunks c LEFT JOIN chunk_vectors v ON v.chunk_id = c.id WHERE v.chunk_id IS NULL ORDER BY c.id",
                      err))
        return RL_EDB;
    int64_t *ids = NULL;
    char **texts = NULL;
    size_t n = 0, cap = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (n == cap) cap = cap ? 2 * cap : 256, ids = rl_xrealloc(ids, cap * sizeof *ids), texts = rl_xrealloc(texts, cap * sizeof *texts);
        ids[n] = sqlite3_column_int64(st, 0);
        const char *h = (const char *)sqlite3_column_text(st, 1), *t = (const char *)sqlite3_column_text(st, 2);
        texts[n++] = h && h[0] ? rl_xasprintf("%s\n%s", h, t) : rl_xstrdup(t);
    }
    sqlite3_finalize(st);
    int dim = rl_embedder_dim(e);
    float *vec = rl_xmalloc((size_t)dim * sizeof *vec);
    sqlite3_stmt *ins = NULL;
    if (n && store_prepare(s, &ins, "INSERT OR REPLACE INTO chunk_vectors(chunk_id, model, vec) VALUES (?,?,?)", err)) r = RL_EDB;
    rl_progress bar;
    rl_progress_start(&bar, "embed", "chunks", (double)n);
    for (size_t i = 0; i < n && !r; i++) {
        if (i % 64 == 0) r = store_exec(s, "BEGIN IMMEDIATE", err);
        if (!r) r = rl_embed_text(e, texts[i], vec, err);
        if (!r) {
            sqlite3_bind_int64(ins, 1, ids[i]);
            sqlite3_bind_text(ins, 2, e->fingerprint, -1, SQLITE_STATIC);
            sqlite3_bind_blob(ins, 3, vec, dim * (int)sizeof *vec, SQLITE_STATIC);
            if (sqlite3_step(ins) != SQLITE_DONE) r = store_fail(s, err, "store vector");
            sqlite3_reset(ins);
            (*n_embedded)++;
        }
        if (!r && (i % 64 == 63 || i + 1 == n)) r = store_exec(s, "COMMIT", err);
        rl_progress_add(&bar, 1);
    }
    if (r) store_exec(s, "ROLLBACK", NULL);
    rl_progress_finish(&bar);
    sqlite3_finalize(ins);
    for (size_t i = 0; i < n; i++) free(texts[i]);
    free(texts);
    free(ids);
    free(vec);
    if (r) return r;
    /* the index: rebuilt from the store when vectors changed or it is missing */
    int64_t count = 0, deleted_chunks = 0;
    if (store_prepare(s, &st, "SELECT count(*) FROM chunk_vectors", err)) return RL_EDB;
    if (sqlite3_step(st) == SQLITE_ROW) count = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    char stored[64] = "";
    store_get_meta(s, "vector_count", stored, sizeof stored, NULL);
    deleted_chunks = atoll(stored) != count;
    if (!*n_embedded && !dropped && !deleted_chunks && rl_path_exists(index_path)) return RL_OK;
    rl_vi_params p;
    rl_vi_params_default(&p, dim);
    p.metric = RL_VI_COSINE;
    rl_vindex *vi;
    if ((r = rl_vindex_create(&vi, &p, err))) return r;
    uint64_t *vid = rl_xmalloc((size_t)(count ? count : 1) * sizeof *vid);
    float *all = rl_xmalloc((size_t)(count ? count : 1) * (size_t)dim * sizeof *all);
    size_t m = 0;
    if (store_prepare(s, &st, "SELECT chunk_id, vec FROM chunk_vectors", err)) r = RL_EDB;
    while (!r && sqlite3_step(st) == SQLITE_ROW && m < (size_t)count) {
        if (sqlite3_column_bytes(st, 1) != dim * (int)sizeof(float)) continue; /* a vector of another size: skip */
        vid[m] = (uint64_t)sqlite3_column_int64(st, 0);
        memcpy(all + m * (size_t)dim, sqlite3_column_blob(st, 1), (size_t)dim * sizeof(float));
        m++;
    }
    sqlite3_finalize(st);
    rl_pool *pool = rl_pool_create(0);
    if (!r && m) r = rl_vindex_add_batch(vi, m, vid, all, pool, err);
    rl_pool_free(pool);
    if (!r) r = rl_vindex_save(vi, index_path, err);
    if (!r) {
        char num[32];
        snprintf(num, sizeof num, "%lld", (long long)count);
        r = store_set_meta(s, "vector_count", num, err);
    }
    rl_vindex_free(vi);
    free(vid);
    free(all);
    return r;
}

/* ---- dense and hybrid search ------------------------------------------------------------------ */

struct rl_dense {
    rl_embedder *e;
    rl_vindex *vi;
};

rl_status rl_dense_open(rl_dense **out, rl_embedder *e, const char *index_path, rl_error *err) {
    *out = NULL;
    rl_vindex *vi;
    rl_status s = rl_vindex_load(&vi, index_path, err);
    if (s) {
        if (s == RL_ENOTFOUND) rl_fail(err, s, "no vector index at %s: run `raftlm ingest` with retrieval.embedding_model set", index_path);
        return s;
    }
    if (rl_vindex_params(vi)->dim != rl_embedder_dim(e)) {
        rl_vindex_free(vi);
        return rl_fail(err, RL_EINVAL, "the vector index has dimension %d but the embedding model %d: run `raftlm ingest` again",
                       rl_vindex_params(vi)->dim, rl_embedder_dim(e));
    }
    rl_dense *d = rl_xcalloc(1, sizeof *d);
    d->e = e;
    d->vi = vi;
    *out = d;
    return RL_OK;
}

void rl_dense_close(rl_dense *d) {
    if (!d) return;
    rl_vindex_free(d->vi);
    free(d);
}

/* Fills hits from chunk ids, in order, with the given scores. */
static rl_status hits_from_ids(rl_store *s, const int64_t *ids, const double *scores, size_t n, rl_hit **hits, size_t *n_hits, rl_error *err) {
    sqlite3_stmt *st;
    *hits = NULL;
    *n_hits = 0;
    if (store_prepare(s, &st, "SELECT c.doc_id, d.path, c.heading, c.text FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id = ?", err))
        return RL_EDB;
    rl_hit *out = rl_xcalloc(n ? n : 1, sizeof *out);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(st, 1, ids[i]);
        if (sqlite3_step(st) == SQLITE_ROW) {
            rl_hit *h = &out[k++];
            h->chunk_id = ids[i];
            h->doc_id = sqlite3_column_int64(st, 0);
            h->score = scores[i];
            h->doc = rl_xstrdup((const char *)sqlite3_column_text(st, 1));
            h->heading = rl_xstrdup((const char *)sqlite3_column_text(st, 2));
            h->text = rl_xstrdup((const char *)sqlite3_column_text(st, 3));
        }
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    *hits = out;
    *n_hits = k;
    return RL_OK;
}

rl_status rl_search_dense(rl_store *s, rl_dense *d, const char *query, int k, rl_hit **hits, size_t *n_hits, rl_error *err) {
    *hits = NULL;
    *n_hits = 0;
    if (k <= 0) return rl_fail(err, RL_EINVAL, "k must be positive, got %d", k);
    int dim = rl_embedder_dim(d->e);
    float *q = rl_xmalloc((size_t)dim * sizeof *q);
    rl_status r = rl_embed_text(d->e, query, q, err);
    rl_vi_hit *vh = rl_xmalloc((size_t)k * sizeof *vh);
    int n = 0;
    rl_vi_search_opts so = {.ef = k > 64 ? k : 64};
    if (!r) r = rl_vindex_search(d->vi, NULL, q, k, &so, vh, &n, err);
    int64_t *ids = rl_xmalloc((size_t)(n ? n : 1) * sizeof *ids);
    double *scores = rl_xmalloc((size_t)(n ? n : 1) * sizeof *scores);
    for (int i = 0; i < n; i++) ids[i] = (int64_t)vh[i].id, scores[i] = 1.0 - vh[i].dist; /* cosine similarity */
    if (!r) r = hits_from_ids(s, ids, scores, (size_t)n, hits, n_hits, err);
    free(q), free(vh), free(ids), free(scores);
    return r;
}

rl_status rl_search_hybrid(rl_store *s, rl_dense *d, const rl_hybrid_opts *o, const char *query, int k, rl_hit **hits, size_t *n_hits,
                           rl_error *err) {
    rl_hybrid_opts def = {60, 1.0, 1.0};
    if (!o) o = &def;
    int depth = k * 4 > 50 ? k * 4 : 50;
    rl_hit *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    rl_status r = rl_search_bm25(s, query, depth, &a, &na, err);
    if (!r) r = rl_search_dense(s, d, query, depth, &b, &nb, err);
    /* fuse by chunk id */
    size_t cap = na + nb;
    int64_t *ids = rl_xmalloc((cap ? cap : 1) * sizeof *ids);
    double *sc = rl_xcalloc(cap ? cap : 1, sizeof *sc);
    size_t n = 0;
    for (int list = 0; list < 2 && !r; list++) {
        rl_hit *h = list ? b : a;
        size_t nh = list ? nb : na;
        double w = list ? o->dense_weight : o->bm25_weight;
        for (size_t i = 0; i < nh; i++) {
            size_t j = 0;
            while (j < n && ids[j] != h[i].chunk_id) j++;
            if (j == n) ids[n] = h[i].chunk_id, sc[n] = 0, n++;
            sc[j] += w / (o->rrf_k + (double)(i + 1));
        }
    }
    /* sort by fused score (stable for ties: BM25 order first) */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && sc[j] > sc[j - 1]; j--) {
            double t = sc[j];
            sc[j] = sc[j - 1], sc[j - 1] = t;
            int64_t u = ids[j];
            ids[j] = ids[j - 1], ids[j - 1] = u;
        }
    if (n > (size_t)k) n = (size_t)k;
    if (!r) r = hits_from_ids(s, ids, sc, n, hits, n_hits, err);
    rl_hits_free(a, na);
    rl_hits_free(b, nb);
    free(ids);
    free(sc);
    return r;
}
