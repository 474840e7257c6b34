/* embed.c - sentence embeddings, the chunk vectors in the store, and dense and hybrid
 * (reciprocal rank fusion) search over an HNSW index.
 *
 * Two kinds of encoder sit behind rl_embedder:
 *   - a BERT-family sentence encoder (rl_bert: MiniLM, bge, e5, gte as published), pooled and
 *     normalised as its sentence-transformers modules say; texts are embedded in padded batches
 *     of similar length (sorted, so that little is padding), [CLS] ... [SEP], cut at the model's
 *     max_seq_length;
 *   - any decoder model the engine loads: the final normalised hidden states of the text's tokens
 *     (after BOS), mean-pooled and L2-normalised, one text at a time.
 * Query and passage prefixes (e5's "query: " / "passage: ", bge's query instruction) are put in
 * front of the text here, so that ingest, search, eval and the server agree; they are part of
 * the fingerprint. Vectors live in the store (chunk_vectors, deleted with their chunk), the index
 * in its own file rebuilt from them, so the store stays the one truth. */
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "retrieve/store_internal.h"
#include "tokenizer/tokenizer.h"
#include "vecindex/vecindex.h"

/* a batch of the BERT path holds at most this many texts and padded tokens */
#define EMBED_BATCH 32
#define EMBED_BATCH_TOKENS 4096

struct rl_embedder {
    int is_bert;
    rl_bert bert;
    rl_model model; /* decoder models */
    rl_acts acts;
    rl_tokenizer *tok;
    rl_pool *pool;
    int max_tokens;
    int dim;
    char *prefix[2]; /* RL_EMBED_QUERY, RL_EMBED_PASSAGE ("" when none) */
    char model_id[40];
    char fingerprint[128];
};

static void update_fingerprint(rl_embedder *e) {
    char hex[65] = "";
    rl_buf id = {0};
    rl_buf_printf(&id, "%s\x1f%s", e->prefix[0], e->prefix[1]);
    rl_sha256_hex(id.data, id.len, hex);
    rl_buf_free(&id);
    if (!e->prefix[0][0] && !e->prefix[1][0])
        snprintf(e->fingerprint, sizeof e->fingerprint, "%s", e->model_id); /* as before prefixes existed */
    else snprintf(e->fingerprint, sizeof e->fingerprint, "%s:prefix=%.12s", e->model_id, hex);
}

/* identity: the shape, pooling, truncation and every tensor's first values (cheap, and changes with the model) */
static void model_identity(rl_embedder *e) {
    rl_buf id = {0};
    const char *kind;
    if (e->is_bert) {
        const rl_bert_config *c = &e->bert.cfg;
        rl_buf_printf(&id, "bert:%d:%d:%d:%d:%d:%d:%d:%g:%d:%d:%d:", c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->vocab_size, c->max_pos,
                      c->n_types, c->eps, e->bert.pooling, e->bert.normalize, e->max_tokens);
        /* tensors are laid out one after another in mem: sample 64 floats every 4096 */
        for (size_t i = 0; i < e->bert.n; i += 4096) rl_buf_append(&id, e->bert.mem + i, (e->bert.n - i < 64 ? e->bert.n - i : 64) * sizeof(float));
        kind = e->bert.pooling == RL_BERT_POOL_CLS ? "clspool" : "meanpool";
    } else {
        rl_buf_printf(&id, "%s:%d:%d:%d:%d:", e->model.cfg.arch, e->model.cfg.dim, e->model.cfg.n_layers, e->model.cfg.vocab_size,
                      e->model.cfg.hidden_dim);
        rl_tensor_ref *refs = rl_xcalloc((size_t)rl_params_count(&e->model.cfg) + 1, sizeof *refs);
        int n = rl_params_list(&e->model.cfg, &e->model.w, refs);
        for (int i = 0; i < n; i++)
            if (refs[i].data && refs[i].n) rl_buf_append(&id, refs[i].data, (refs[i].n < 64 ? refs[i].n : 64) * sizeof(float));
        free(refs);
        kind = "meanpool";
    }
    char hex[65];
    rl_sha256_hex(id.data, id.len, hex);
    rl_buf_free(&id);
    snprintf(e->model_id, sizeof e->model_id, "%s:%.24s:%d", kind, hex, e->dim);
}

rl_status rl_embedder_open(rl_embedder **out, const char *model_path, const char *tokenizer_path, int threads, rl_error *err) {
    *out = NULL;
    rl_embedder *e = rl_xcalloc(1, sizeof *e);
    char arch[32];
    rl_model_detect_arch(model_path, arch, sizeof arch);
    e->is_bert = strcmp(arch, "bert") == 0;
    rl_status s = e->is_bert ? rl_bert_load(&e->bert, model_path, err) : rl_model_load(&e->model, model_path, err);
    if (s) {
        rl_error_prefix(err, "embedding model");
        free(e);
        return s;
    }
    if ((s = rl_tok_load(&e->tok, tokenizer_path ? tokenizer_path : model_path, err))) {
        rl_error_prefix(err, "embedding model's tokenizer (set retrieval.embedding_tokenizer)");
        goto fail;
    }
    e->pool = rl_pool_create(threads);
    if (e->is_bert) {
        e->dim = e->bert.cfg.dim;
        e->max_tokens = e->bert.max_tokens;
        e->bert.pool = e->pool;
        if (rl_tok_vocab_size(e->tok) > e->bert.cfg.vocab_size) {
            s = rl_fail(err, RL_EFORMAT, "the tokenizer has %d ids but the encoder only %d", rl_tok_vocab_size(e->tok), e->bert.cfg.vocab_size);
            goto fail;
        }
    } else {
        e->dim = e->model.cfg.dim;
        e->max_tokens = e->model.cfg.max_seq_len < 256 ? e->model.cfg.max_seq_len : 256;
        if ((s = rl_acts_init(&e->acts, &e->model, 1, e->max_tokens, err))) goto fail;
        e->model.pool = e->pool;
    }
    e->prefix[0] = rl_xstrdup("");
    e->prefix[1] = rl_xstrdup("");
    model_identity(e);
    update_fingerprint(e);
    *out = e;
    return RL_OK;
fail:
    rl_embedder_free(e);
    return s;
}

void rl_embedder_set_prefixes(rl_embedder *e, const char *query_prefix, const char *passage_prefix) {
    free(e->prefix[0]);
    free(e->prefix[1]);
    e->prefix[0] = rl_xstrdup(query_prefix ? query_prefix : "");
    e->prefix[1] = rl_xstrdup(passage_prefix ? passage_prefix : "");
    update_fingerprint(e);
}

void rl_embedder_free(rl_embedder *e) {
    if (!e) return;
    rl_acts_free(&e->acts);
    rl_tok_free(e->tok);
    if (e->is_bert) rl_bert_free(&e->bert);
    else rl_model_free(&e->model);
    rl_pool_free(e->pool);
    free(e->prefix[0]);
    free(e->prefix[1]);
    free(e);
}

int rl_embedder_dim(const rl_embedder *e) { return e->dim; }
int rl_embedder_max_tokens(const rl_embedder *e) { return e->max_tokens; }
const char *rl_embedder_fingerprint(const rl_embedder *e) { return e->fingerprint; }

/* The ids the encoder sees for a text: BERT: [CLS] text [SEP] cut to max_tokens (the cut keeps
 * [SEP], as transformers' truncation does); decoders: BOS + text cut to max_tokens. */
static rl_status encode_for_model(rl_embedder *e, rl_embed_kind kind, const char *text, int **out, int *n_out, rl_error *err) {
    char *full = NULL;
    if (kind != RL_EMBED_RAW && e->prefix[kind][0]) full = rl_xasprintf("%s%s", e->prefix[kind], text), text = full;
    int32_t *ids = NULL;
    size_t n = 0;
    rl_status s = rl_tok_encode(e->tok, text, strlen(text), e->is_bert, &ids, &n, err);
    free(full);
    if (s) return s;
    int T;
    int *tokens;
    if (e->is_bert) {
        T = (int)n <= e->max_tokens ? (int)n : e->max_tokens;
        tokens = rl_xmalloc((size_t)(T ? T : 1) * sizeof *tokens);
        for (int t = 0; t < T; t++) tokens[t] = ids[t];
        if (T < (int)n && T >= 2) tokens[T - 1] = ids[n - 1];
    } else {
        T = (int)n + 1 <= e->max_tokens ? (int)n + 1 : e->max_tokens;
        tokens = rl_xmalloc((size_t)T * sizeof *tokens);
        int bos = rl_tok_bos(e->tok) >= 0 ? rl_tok_bos(e->tok) : e->model.cfg.bos_id;
        tokens[0] = bos >= 0 ? bos : (n ? ids[0] : 0);
        for (int t = 1; t < T; t++) tokens[t] = ids[t - 1];
    }
    free(ids);
    *out = tokens;
    *n_out = T;
    return RL_OK;
}

/* Decoder path: one sequence, mean over the positions after BOS. */
static rl_status embed_decoder(rl_embedder *e, const int *tokens, int T, float *out, rl_error *err) {
    if (T <= 0) return rl_fail(err, RL_EINVAL, "nothing to embed");
    rl_status s = rl_model_forward(&e->model, &e->acts, tokens, NULL, NULL, NULL, 1, T, NULL, err);
    if (s) return s;
    int C = e->dim, from = T > 1 ? 1 : 0; /* the BOS position says nothing about the text */
    memset(out, 0, (size_t)C * sizeof *out);
    for (int t = from; t < T; t++)
        for (int c = 0; c < C; c++) out[c] += e->acts.lnf[(size_t)t * C + c];
    double norm = 0;
    for (int c = 0; c < C; c++) norm += (double)out[c] * out[c];
    norm = sqrt(norm);
    for (int c = 0; c < C; c++) out[c] = norm > 0 ? (float)(out[c] / norm) : 0;
    return RL_OK;
}

/* BERT path: sequences seq[order[0..n)] as one padded batch. */
static rl_status embed_bert_batch(rl_embedder *e, int *const *seq, const int *len, const size_t *order, int n, float *out, rl_error *err) {
    int T = 1;
    for (int i = 0; i < n; i++)
        if (len[order[i]] > T) T = len[order[i]];
    size_t C = (size_t)e->dim;
    int *tokens = rl_xcalloc((size_t)n * T, sizeof *tokens), *lens = rl_xmalloc((size_t)n * sizeof *lens);
    for (int i = 0; i < n; i++) {
        lens[i] = len[order[i]];
        memcpy(tokens + (size_t)i * T, seq[order[i]], (size_t)lens[i] * sizeof *tokens);
    }
    float *hidden = rl_xmalloc((size_t)n * T * C * sizeof *hidden), *pooled = rl_xmalloc((size_t)n * C * sizeof *pooled);
    rl_status s = rl_bert_forward(&e->bert, hidden, tokens, NULL, lens, n, T, err);
    if (!s) {
        rl_bert_pool(&e->bert, pooled, hidden, lens, n, T);
        for (int i = 0; i < n; i++) memcpy(out + order[i] * C, pooled + (size_t)i * C, C * sizeof *out);
    }
    free(tokens), free(lens), free(hidden), free(pooled);
    return s;
}

static int cmp_len_desc(const void *a, const void *b, void *ctx) {
    const int *len = ctx;
    int x = len[*(const size_t *)a], y = len[*(const size_t *)b];
    return x != y ? (y > x) - (y < x) : (*(const size_t *)a > *(const size_t *)b) - (*(const size_t *)a < *(const size_t *)b);
}

/* Embeds n token sequences; progress (may be NULL) advances by one per sequence. */
static rl_status embed_sequences(rl_embedder *e, int *const *seq, const int *len, size_t n, float *out, rl_progress *bar, rl_error *err) {
    rl_status s = RL_OK;
    if (!e->is_bert) {
        for (size_t i = 0; i < n && !s; i++) {
            s = embed_decoder(e, seq[i], len[i], out + i * (size_t)e->dim, err);
            if (bar) rl_progress_add(bar, 1);
        }
        return s;
    }
    size_t *order = rl_xmalloc((n ? n : 1) * sizeof *order);
    for (size_t i = 0; i < n; i++) order[i] = i;
    qsort_r(order, n, sizeof *order, cmp_len_desc, (void *)len); /* similar lengths together: little padding */
    for (size_t i = 0; i < n && !s;) {
        size_t j = i + 1;
        /* longest first, so len[order[i]] is the batch's padded length */
        while (j < n && j - i < EMBED_BATCH && (j - i + 1) * (size_t)len[order[i]] <= EMBED_BATCH_TOKENS) j++;
        s = embed_bert_batch(e, seq, len, order + i, (int)(j - i), out, err);
        if (bar) rl_progress_add(bar, (double)(j - i));
        i = j;
    }
    free(order);
    return s;
}

rl_status rl_embed_texts(rl_embedder *e, rl_embed_kind kind, const char *const *texts, size_t n, float *out, int *n_tokens, rl_error *err) {
    int **seq = rl_xcalloc(n ? n : 1, sizeof *seq);
    int *len = rl_xcalloc(n ? n : 1, sizeof *len);
    rl_status s = RL_OK;
    for (size_t i = 0; i < n && !s; i++) s = encode_for_model(e, kind, texts[i], &seq[i], &len[i], err);
    if (!s) s = embed_sequences(e, seq, len, n, out, NULL, err);
    for (size_t i = 0; i < n; i++) {
        if (n_tokens) n_tokens[i] = len[i];
        free(seq[i]);
    }
    free(seq);
    free(len);
    return s;
}

rl_status rl_embed_text(rl_embedder *e, const char *text, float *out, rl_error *err) {
    return rl_embed_texts(e, RL_EMBED_RAW, &text, 1, out, NULL, err);
}

rl_status rl_embed_tokens(rl_embedder *e, const int32_t *ids, size_t n, float *out, rl_error *err) {
    if (n == 0) return rl_fail(err, RL_EINVAL, "an empty token array has no embedding");
    int V = e->is_bert ? e->bert.cfg.vocab_size : e->model.cfg.vocab_size;
    /* decoders: BOS first, as for texts (its position is left out of the mean) */
    int bos = e->is_bert ? -1 : rl_tok_bos(e->tok) >= 0 ? rl_tok_bos(e->tok) : e->model.cfg.bos_id;
    int off = bos >= 0 ? 1 : 0;
    int T = n + (size_t)off < (size_t)e->max_tokens ? (int)n + off : e->max_tokens;
    int *tokens = rl_xmalloc((size_t)T * sizeof *tokens);
    rl_status s = RL_OK;
    if (off) tokens[0] = bos;
    for (int t = off; t < T && !s; t++) {
        int32_t id = ids[t - off];
        if (id < 0 || id >= V) s = rl_fail(err, RL_EINVAL, "token id %d is outside the vocabulary (%d)", id, V);
        tokens[t] = id;
    }
    if (!s) s = embed_sequences(e, &tokens, &T, 1, out, NULL, err);
    free(tokens);
    return s;
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
    /* groups of GROUP chunks: tokenized, embedded in batches, committed in one transaction */
    enum { GROUP = 256 };
    float *vec = rl_xmalloc((size_t)GROUP * dim * sizeof *vec);
    int *seq_len = rl_xmalloc(GROUP * sizeof *seq_len);
    int **seq = rl_xcalloc(GROUP, sizeof *seq);
    sqlite3_stmt *ins = NULL;
    if (n && store_prepare(s, &ins, "INSERT OR REPLACE INTO chunk_vectors(chunk_id, model, vec) VALUES (?,?,?)", err)) r = RL_EDB;
    rl_progress bar;
    rl_progress_start(&bar, "embed", "chunks", (double)n);
    for (size_t i = 0; i < n && !r; i += GROUP) {
        size_t g = n - i < GROUP ? n - i : GROUP;
        for (size_t j = 0; j < g && !r; j++) r = encode_for_model(e, RL_EMBED_PASSAGE, texts[i + j], &seq[j], &seq_len[j], err);
        if (!r) r = embed_sequences(e, seq, seq_len, g, vec, &bar, err);
        if (!r) r = store_exec(s, "BEGIN IMMEDIATE", err);
        for (size_t j = 0; j < g && !r; j++) {
            sqlite3_bind_int64(ins, 1, ids[i + j]);
            sqlite3_bind_text(ins, 2, e->fingerprint, -1, SQLITE_STATIC);
            sqlite3_bind_blob(ins, 3, vec + j * dim, dim * (int)sizeof *vec, SQLITE_STATIC);
            if (sqlite3_step(ins) != SQLITE_DONE) r = store_fail(s, err, "store vector");
            sqlite3_reset(ins);
            (*n_embedded)++;
        }
        if (!r) r = store_exec(s, "COMMIT", err);
        else store_exec(s, "ROLLBACK", NULL);
        for (size_t j = 0; j < g; j++) free(seq[j]), seq[j] = NULL;
    }
    rl_progress_finish(&bar);
    sqlite3_finalize(ins);
    for (size_t i = 0; i < n; i++) free(texts[i]);
    free(texts);
    free(ids);
    free(vec);
    free(seq);
    free(seq_len);
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

/* The chunk ids of documents under a path prefix (an allow-list for the index). */
static rl_status prefix_ids(rl_store *s, const char *prefix, uint64_t **ids, size_t *n, rl_error *err) {
    sqlite3_stmt *st;
    *ids = NULL;
    *n = 0;
    if (store_prepare(s, &st, "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE instr(d.path, ?1) = 1", err)) return RL_EDB;
    sqlite3_bind_text(st, 1, prefix, -1, SQLITE_STATIC);
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) cap = cap ? 2 * cap : 256, *ids = rl_xrealloc(*ids, cap * sizeof **ids);
        (*ids)[(*n)++] = (uint64_t)sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? RL_OK : store_fail(s, err, "path prefix");
}

static rl_status search_dense(rl_store *s, rl_dense *d, const char *query, int k, const char *prefix, rl_hit **hits, size_t *n_hits,
                              rl_error *err) {
    *hits = NULL;
    *n_hits = 0;
    if (k <= 0) return rl_fail(err, RL_EINVAL, "k must be positive, got %d", k);
    uint64_t *allow = NULL;
    size_t n_allow = 0;
    rl_status r = RL_OK;
    if (prefix && prefix[0]) {
        if ((r = prefix_ids(s, prefix, &allow, &n_allow, err))) return r;
        if (!n_allow) return RL_OK; /* nothing under the prefix */
    }
    int dim = rl_embedder_dim(d->e);
    float *q = rl_xmalloc((size_t)dim * sizeof *q);
    r = rl_embed_texts(d->e, RL_EMBED_QUERY, &query, 1, q, NULL, err);
    rl_vi_hit *vh = rl_xmalloc((size_t)k * sizeof *vh);
    int n = 0;
    rl_vi_search_opts so = {.ef = k > 64 ? k : 64, .allow = allow, .n_allow = n_allow};
    if (!r) r = rl_vindex_search(d->vi, NULL, q, k, &so, vh, &n, err);
    int64_t *ids = rl_xmalloc((size_t)(n ? n : 1) * sizeof *ids);
    double *scores = rl_xmalloc((size_t)(n ? n : 1) * sizeof *scores);
    for (int i = 0; i < n; i++) ids[i] = (int64_t)vh[i].id, scores[i] = 1.0 - vh[i].dist; /* cosine similarity */
    if (!r) r = hits_from_ids(s, ids, scores, (size_t)n, hits, n_hits, err);
    free(q), free(vh), free(ids), free(scores), free(allow);
    return r;
}

rl_status rl_search_dense(rl_store *s, rl_dense *d, const char *query, int k, rl_hit **hits, size_t *n_hits, rl_error *err) {
    return search_dense(s, d, query, k, NULL, hits, n_hits, err);
}

static rl_status search_hybrid(rl_store *s, rl_dense *d, const rl_hybrid_opts *o, const char *query, int k, const char *prefix, rl_hit **hits,
                               size_t *n_hits, rl_error *err) {
    rl_hybrid_opts def = {60, 1.0, 1.0};
    if (!o || o->rrf_k <= 0) o = &def;
    *hits = NULL;
    *n_hits = 0;
    if (k <= 0) return rl_fail(err, RL_EINVAL, "k must be positive, got %d", k);
    int depth = k * 4 > 50 ? k * 4 : 50;
    rl_hit *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    rl_status r = store_search_bm25(s, query, depth, prefix, &a, &na, err);
    if (!r) r = search_dense(s, d, query, depth, prefix, &b, &nb, err);
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

rl_status rl_search_hybrid(rl_store *s, rl_dense *d, const rl_hybrid_opts *o, const char *query, int k, rl_hit **hits, size_t *n_hits,
                           rl_error *err) {
    return search_hybrid(s, d, o, query, k, NULL, hits, n_hits, err);
}

rl_status rl_search(rl_store *s, rl_dense *d, const rl_search_opts *o, const char *query, rl_hit **hits, size_t *n_hits, rl_error *err) {
    *hits = NULL;
    *n_hits = 0;
    const char *mode = o->mode ? o->mode : "bm25";
    if (strcmp(mode, "bm25") == 0) return store_search_bm25(s, query, o->k, o->path_prefix, hits, n_hits, err);
    if (strcmp(mode, "dense") != 0 && strcmp(mode, "hybrid") != 0)
        return rl_fail(err, RL_EINVAL, "search mode must be bm25, dense or hybrid, got '%s'", mode);
    if (!d) return rl_fail(err, RL_EINVAL, "%s search needs an embedding model (retrieval.embedding_model)", mode);
    if (mode[0] == 'd') return search_dense(s, d, query, o->k, o->path_prefix, hits, n_hits, err);
    return search_hybrid(s, d, &o->hybrid, query, o->k, o->path_prefix, hits, n_hits, err);
}
