/* retrieve.h - the public door of src/retrieve: document readers, the chunker, the SQLite store
 * (documents, chunks, FTS5 keyword index), incremental ingest and BM25 search.
 *
 * Ownership: every struct a function fills is freed by the matching *_free function. */
#ifndef RL_RETRIEVE_H
#define RL_RETRIEVE_H

#include <stdint.h>

#include "core/core.h"

/* ---- documents ------------------------------------------------------------------------- */

typedef struct rl_heading {
    size_t start; /* byte offset of the heading line in the document text */
    int level;    /* 1 = top */
    char *title;
} rl_heading;

/* One logical document: a file, or one record of a .jsonl file. text is valid UTF-8 (other
 * encodings are converted), with \n line ends. */
typedef struct rl_doc {
    char *key;   /* "" for a whole file; the record id (or "line N") inside a .jsonl file */
    char *title; /* first heading, <title>, the jsonl title, or NULL */
    char *text;
    size_t len;
    rl_heading *headings; /* in text order */
    size_t n_headings;
} rl_doc;

typedef struct rl_doc_list {
    rl_doc *docs;
    size_t n;
    char *warning; /* non-fatal notes (e.g. "converted from Windows-1252", "3 bad lines") or NULL */
} rl_doc_list;

/* Whether raftlm can read this file type (by extension: txt md markdown rst html htm pdf jsonl). */
int rl_reader_supports(const char *path);
/* Extracts documents from a file's bytes. Binary, empty and unparseable files are RL_EFORMAT
 * with the reason in err (the caller reports and skips them). */
rl_status rl_read_document(const char *path, const char *data, size_t len, rl_doc_list *out, rl_error *err);
void rl_doc_list_free(rl_doc_list *list);

/* ---- chunking -------------------------------------------------------------------------- */

/* Counts the tokens of s[0..n). NULL means the built-in estimate (rl_estimate_tokens). */
typedef size_t (*rl_token_count_fn)(void *ctx, const char *s, size_t n);

typedef struct rl_chunk_opts {
    int size;    /* upper limit in tokens */
    int overlap; /* tokens repeated from the previous chunk of the same section (< size) */
    rl_token_count_fn count;
    void *count_ctx;
} rl_chunk_opts;

typedef struct rl_chunk {
    size_t start, end; /* byte range in the document text; text = doc->text[start..end) */
    int n_tokens;
    char *heading; /* "Title > Section > Subsection" or "" */
} rl_chunk;

/* The word-based estimate used when no tokenizer is configured (docs/chunking.md): per
 * whitespace-separated word, each run of letters counts one token per 6 letters (rounded up),
 * each group of up to 3 digits one token, every other symbol one token. */
size_t rl_estimate_tokens(void *unused, const char *s, size_t n);

/* Cuts a document into chunks: sections (headings) start new chunks, paragraphs and then
 * sentences are preferred break points, no chunk exceeds opts->size tokens, no word is cut
 * (except a single word longer than a whole chunk), consecutive chunks within a section
 * overlap by up to opts->overlap tokens, and every non-space byte is in some chunk. */
rl_status rl_chunk_document(const rl_doc *doc, const rl_chunk_opts *opts, rl_chunk **out, size_t *n_out, rl_error *err);
void rl_chunks_free(rl_chunk *chunks, size_t n);

/* ---- the store ------------------------------------------------------------------------- */

typedef struct rl_store rl_store;

typedef struct rl_store_opts {
    int stemming; /* 1/0: porter stemming on/off in the FTS index (a change rebuilds it);
                     -1: keep the store's setting (porter for a new store) */
} rl_store_opts;

/* Opens (creating and migrating as needed) the SQLite store at db_path. */
rl_status rl_store_open(rl_store **out, const char *db_path, const rl_store_opts *opts, rl_error *err);
void rl_store_close(rl_store *store);
/* The underlying sqlite3 handle, for modules that add their own tables (synth, eval). */
void *rl_store_db(rl_store *store);

typedef struct rl_store_stats {
    int64_t files, documents, chunks;
    int64_t text_bytes;
} rl_store_stats;
rl_status rl_store_stats_get(rl_store *store, rl_store_stats *st, rl_error *err);

/* ---- ingest ---------------------------------------------------------------------------- */

typedef struct rl_ingest_opts {
    const char *const *paths; /* files or folders */
    int n_paths;
    const char *const *include; /* globs on the path relative to its root; none = everything */
    int n_include;
    const char *const *exclude;
    int n_exclude;
    size_t max_file_bytes;
    rl_chunk_opts chunk;
    /* what identifies the chunking (size, overlap, tokenizer): when it differs from the one the
     * store was built with, every file is chunked again */
    const char *chunking_fingerprint;
    int threads; /* 0 = all cores */
} rl_ingest_opts;

typedef struct rl_ingest_report {
    int64_t seen, added, updated, unchanged, removed, skipped, ignored;
    int64_t chunks_written, bytes_read;
    double seconds;
    /* "path: reason" for each skipped file */
    char **skipped_reasons;
    int n_skipped_reasons;
} rl_ingest_report;

/* Walks the paths and brings the store up to date: new files are added, changed files (by
 * sha256) replace their chunks, deleted files under the given roots are removed. Each file is
 * one transaction, so a killed run leaves a consistent store and a rerun finishes the job. */
rl_status rl_ingest(rl_store *store, const rl_ingest_opts *opts, rl_ingest_report *report, rl_error *err);
void rl_ingest_report_free(rl_ingest_report *report);

/* ---- search ---------------------------------------------------------------------------- */

typedef struct rl_hit {
    int64_t chunk_id, doc_id;
    double score; /* BM25, higher is better */
    char *doc;    /* path relative to its corpus root (+ "#key" for jsonl records) */
    char *heading;
    char *text;
    size_t *marks; /* 2 * n_marks offsets into text */
    size_t n_marks;
} rl_hit;

/* Turns any user text into a safe FTS5 query: the words (letters and digits) of the text,
 * each quoted, joined with OR; common English stop words are dropped unless nothing else is
 * left. Returns NULL when the text has no words at all. Caller frees. */
char *rl_fts_query(const char *text);

/* BM25 top-k over chunk text and headings. Zero hits is not an error. Each hit's marks are
 * [start, end) byte ranges of the words in text that matched the query (for highlighting). */
rl_status rl_search_bm25(rl_store *store, const char *query, int k, rl_hit **hits, size_t *n_hits, rl_error *err);
void rl_hits_free(rl_hit *hits, size_t n);
/* The same ranking, chunk ids only (up to k into ids, *n of them), without the joins and the
 * highlighting: a third faster, for callers that search once per question (synth's hard
 * distractors). */
rl_status rl_search_bm25_ids(rl_store *store, const char *query, int k, int64_t *ids, int *n, rl_error *err);

/* ---- embeddings, dense and hybrid search ----------------------------------------------- */

/* An embedder: a BERT-family sentence encoder (HF folder with model_type bert, or a GGUF with
 * architecture bert), pooled and normalised as its sentence-transformers modules say; or any
 * decoder model the engine loads, mean-pooling its final (normalised) hidden states over the
 * text's tokens and L2-normalising the result. One embedder is used by one thread at a time. */
typedef struct rl_embedder rl_embedder;
rl_status rl_embedder_open(rl_embedder **out, const char *model_path, const char *tokenizer_path, int threads, rl_error *err);
void rl_embedder_free(rl_embedder *e);
/* Text put before every query / every passage (e5: "query: ", "passage: "; bge: an
 * instruction before queries). NULL or "" for none. Part of the fingerprint. */
void rl_embedder_set_prefixes(rl_embedder *e, const char *query_prefix, const char *passage_prefix);
int rl_embedder_dim(const rl_embedder *e);
/* Tokens per text the encoder sees at most (longer texts are cut). */
int rl_embedder_max_tokens(const rl_embedder *e);
/* Identifies the model (a hash of its shape, pooling and weights) and the prefixes: vectors of
 * another one are re-made. */
const char *rl_embedder_fingerprint(const rl_embedder *e);
typedef enum rl_embed_kind { RL_EMBED_QUERY = 0, RL_EMBED_PASSAGE = 1, RL_EMBED_RAW = 2 } rl_embed_kind;
/* out (n, dim): the embeddings of n texts with the kind's prefix (RAW: none), in padded batches
 * for encoders. n_tokens (may be NULL) receives each text's token count as the model saw it. */
rl_status rl_embed_texts(rl_embedder *e, rl_embed_kind kind, const char *const *texts, size_t n, float *out, int *n_tokens,
                         rl_error *err);
/* One text, no prefix. out: dim floats (unit length unless the encoder has no Normalize). */
rl_status rl_embed_text(rl_embedder *e, const char *text, float *out, rl_error *err);
/* The embedding of the model's own token ids as given (encoders: no [CLS]/[SEP] added; decoders:
 * BOS put first, as for texts), cut to the max tokens. */
rl_status rl_embed_tokens(rl_embedder *e, const int32_t *ids, size_t n, float *out, rl_error *err);

/* Embeds every chunk that has no vector from this embedder (committed in batches, so a killed
 * run keeps what it did), and rebuilds the HNSW index file at index_path (atomically) when
 * anything changed. */
rl_status rl_store_embed(rl_store *s, rl_embedder *e, const char *index_path, int64_t *n_embedded, rl_error *err);

/* Dense search state: the embedder and the loaded index. */
typedef struct rl_dense rl_dense;
rl_status rl_dense_open(rl_dense **out, rl_embedder *e, const char *index_path, rl_error *err);
void rl_dense_close(rl_dense *d);
rl_status rl_search_dense(rl_store *s, rl_dense *d, const char *query, int k, rl_hit **hits, size_t *n_hits, rl_error *err);
/* Reciprocal rank fusion of BM25 and dense: score = sum over both lists of w / (rrf_k + rank). */
typedef struct rl_hybrid_opts {
    int rrf_k;                        /* 60 */
    double bm25_weight, dense_weight; /* 1, 1 */
} rl_hybrid_opts;
rl_status rl_search_hybrid(rl_store *s, rl_dense *d, const rl_hybrid_opts *o, const char *query, int k, rl_hit **hits, size_t *n_hits,
                           rl_error *err);

/* One entry for every mode with the options search can take. */
typedef struct rl_search_opts {
    const char *mode;        /* "bm25", "dense" or "hybrid" (NULL: bm25) */
    int k;
    const char *path_prefix; /* NULL or "": every document; else only documents whose path (as in
                                rl_hit.doc) starts with it, through the index's filtered search */
    rl_hybrid_opts hybrid;   /* rrf_k 0: the defaults */
} rl_search_opts;
/* d may be NULL for bm25. */
rl_status rl_search(rl_store *s, rl_dense *d, const rl_search_opts *o, const char *query, rl_hit **hits, size_t *n_hits, rl_error *err);

/* ---- the RAFT layout ------------------------------------------------------------------- */

/* The prompt layout shared by training, evaluation and serving, so that what the model sees at
 * answer time is what it was fine-tuned on: each document as "<DOCUMENT>text</DOCUMENT>\n",
 * then the question. Caller frees. */
char *rl_raft_prompt(const char *const *docs, int n_docs, const char *question);

#endif
