/* eval.c - evaluation metrics and the retrieval and answering modes (see eval.h). */
#include "eval/eval.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* ---- questions ------------------------------------------------------------------------------ */

static char *json_str_dup(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    if (json_is_string(v)) return rl_xstrdup(json_string_value(v));
    if (json_is_integer(v)) return rl_xasprintf("%lld", (long long)json_integer_value(v));
    if (json_is_real(v)) return rl_xasprintf("%g", json_real_value(v));
    return NULL;
}

rl_status rl_eval_set_load(rl_eval_set *set, const char *path, rl_error *err) {
    memset(set, 0, sizeof *set);
    char *text;
    size_t len;
    rl_status s = rl_file_read(path, 1u << 30, &text, &len, err);
    if (s) return s;
    size_t cap = 0, line_no = 0;
    char *p = text;
    while (p < text + len) {
        char *nl = memchr(p, '\n', (size_t)(text + len - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(text + len - p);
        line_no++;
        size_t k = 0;
        while (k < n && isspace((unsigned char)p[k])) k++;
        if (k < n) {
            json_error_t je;
            json_t *o = json_loadb(p, n, 0, &je);
            const char *why = !o ? je.text : !json_is_object(o) ? "not a JSON object" : NULL;
            char *q = o ? json_str_dup(o, "question") : NULL, *a = o ? json_str_dup(o, "answer") : NULL;
            if (!why && !q) why = "no \"question\" string";
            if (!why && !a) why = "no \"answer\"";
            if (why) {
                free(q), free(a);
                json_decref(o);
                rl_eval_set_free(set);
                free(text);
                return rl_fail(err, RL_EFORMAT, "%s:%zu: %s", path, line_no, why);
            }
            if (set->n == cap) cap = cap ? 2 * cap : 64, set->q = rl_xrealloc(set->q, cap * sizeof *set->q);
            rl_eval_question *e = &set->q[set->n++];
            e->question = q;
            e->answer = a;
            e->oracle_doc = json_str_dup(o, "oracle_doc");
            e->id = json_str_dup(o, "id");
            if (!e->id) e->id = rl_xasprintf("line-%zu", line_no);
            json_decref(o);
        }
        p += n + 1;
    }
    free(text);
    if (set->n == 0) return rl_fail(err, RL_EFORMAT, "%s: no questions", path);
    return RL_OK;
}

void rl_eval_set_free(rl_eval_set *set) {
    for (size_t i = 0; i < set->n; i++) free(set->q[i].id), free(set->q[i].question), free(set->q[i].answer), free(set->q[i].oracle_doc);
    free(set->q);
    memset(set, 0, sizeof *set);
}

/* ---- text metrics --------------------------------------------------------------------------- */

char *rl_eval_normalize(const char *s) {
    rl_buf words = {0};
    const char *p = s;
    while (*p) {
        while (*p && !isalnum((unsigned char)*p) && (unsigned char)*p < 0x80) p++;
        if (!*p) break;
        /* a number keeps its inner separators ("1,250.00" stays one token, as "1250.00") */
        rl_buf tok = {0};
        while (*p && (isalnum((unsigned char)*p) || (unsigned char)*p >= 0x80 ||
                      ((*p == ',' || *p == '.') && p > s && isdigit((unsigned char)p[-1]) && isdigit((unsigned char)p[1])))) {
            if (*p != ',') rl_buf_putc(&tok, (char)tolower((unsigned char)*p));
            p++;
        }
        if (tok.data && strcmp(tok.data, "a") && strcmp(tok.data, "an") && strcmp(tok.data, "the")) {
            if (words.len) rl_buf_putc(&words, ' ');
            rl_buf_puts(&words, tok.data);
        }
        rl_buf_free(&tok);
    }
    return rl_buf_take(&words);
}

int rl_eval_exact_match(const char *prediction, const char *gold) {
    char *a = rl_eval_normalize(prediction), *b = rl_eval_normalize(gold);
    int eq = strcmp(a, b) == 0;
    free(a);
    free(b);
    return eq;
}

static int split_words(char *s, char **out, int max) {
    int n = 0;
    for (char *t = strtok(s, " "); t && n < max; t = strtok(NULL, " ")) out[n++] = t;
    return n;
}

double rl_eval_f1(const char *prediction, const char *gold) {
    char *a = rl_eval_normalize(prediction), *b = rl_eval_normalize(gold);
    char *pa[512], *pb[512];
    int na = split_words(a, pa, 512), nb = split_words(b, pb, 512);
    double f1 = 0;
    if (na == 0 || nb == 0) f1 = na == nb;
    else {
        int used[512] = {0}, common = 0;
        for (int i = 0; i < na; i++)
            for (int k = 0; k < nb; k++)
                if (!used[k] && strcmp(pa[i], pb[k]) == 0) {
                    used[k] = 1;
                    common++;
                    break;
                }
        if (common) {
            double prec = (double)common / na, rec = (double)common / nb;
            f1 = 2 * prec * rec / (prec + rec);
        }
    }
    free(a);
    free(b);
    return f1;
}

int rl_eval_numeric_match(const char *prediction, const char *gold) {
    size_t i = 0;
    char num[64];
    int any = 0;
    while (rl_text_next_number(gold, &i, num, sizeof num)) {
        any = 1;
        size_t j = 0;
        char got[64];
        int found = 0;
        while (!found && rl_text_next_number(prediction, &j, got, sizeof got)) found = strcmp(got, num) == 0;
        if (!found) return 0;
    }
    return any ? 1 : rl_eval_exact_match(prediction, gold);
}

char *rl_eval_final_answer(const char *generated) {
    const char *tag = NULL;
    for (const char *p = strstr(generated, "<ANSWER>:"); p; p = strstr(p + 1, "<ANSWER>:")) tag = p;
    const char *a = tag ? tag + 9 : generated;
    while (isspace((unsigned char)*a)) a++;
    size_t n = strlen(a);
    if (tag) { /* the answer is one line */
        const char *nl = strchr(a, '\n');
        if (nl) n = (size_t)(nl - a);
    }
    while (n && isspace((unsigned char)a[n - 1])) n--;
    return rl_xstrndup(a, n);
}

int rl_eval_citations_valid(const char *generated, const char *const *docs, int n_docs) {
    int quotes = 0;
    const char *p = generated;
    for (;;) {
        const char *b = strstr(p, "##begin_quote##");
        if (!b) break;
        const char *q = b + 15, *e = strstr(q, "##end_quote##");
        if (!e) return 0;
        char *quote = rl_xstrndup(q, (size_t)(e - q));
        int found = 0;
        for (int d = 0; d < n_docs && !found; d++) found = rl_text_contains_normalized(docs[d], quote);
        free(quote);
        if (!found) return 0;
        quotes++;
        p = e + 13;
    }
    return quotes > 0;
}

int rl_eval_is_refusal(const char *a) {
    static const char *const phrases[] = {"do not say", "does not say", "don't say", "not contain", "no information", "cannot answer",
                                          "can't answer", "not mentioned", "not stated", "unknown", "do not mention", NULL};
    char *low = rl_xstrdup(a);
    for (char *p = low; *p; p++) *p = (char)tolower((unsigned char)*p);
    int r = 0;
    for (int i = 0; phrases[i] && !r; i++) r = strstr(low, phrases[i]) != NULL;
    free(low);
    return r;
}

int rl_eval_doc_matches(const char *retrieved, const char *oracle) {
    if (!retrieved || !oracle) return 0;
    if (strcmp(retrieved, oracle) == 0) return 1;
    /* "file.jsonl#key" documents match on the whole name; plain names match file names */
    if (!strchr(oracle, '/')) return strcmp(rl_path_basename(retrieved), oracle) == 0;
    /* a longer path given relative to a parent folder: the retrieved path is its suffix */
    size_t lr = strlen(retrieved), lo = strlen(oracle);
    return lo > lr && oracle[lo - lr - 1] == '/' && strcmp(oracle + lo - lr, retrieved) == 0;
}

void rl_eval_rank_metrics(int rank, rl_rank_metrics *m) {
    memset(m, 0, sizeof *m);
    for (int k = 1; k <= 10; k++) m->recall_at[k] = rank >= 1 && rank <= k;
    m->mrr = rank >= 1 && rank <= 10 ? 1.0 / rank : 0;
    m->ndcg10 = rank >= 1 && rank <= 10 ? 1.0 / log2(rank + 1.0) : 0; /* one relevant document: IDCG = 1 */
}

/* ---- retrieval -------------------------------------------------------------------------------- */

/* Rank (1-based, distinct documents in order) of the oracle document among the hits. */
static int oracle_rank(const rl_hit *hits, size_t n, const char *oracle) {
    const char *seen[RL_EVAL_MAX_K];
    int n_seen = 0;
    for (size_t i = 0; i < n && n_seen < RL_EVAL_MAX_K; i++) {
        int dup = 0;
        for (int k = 0; k < n_seen; k++) dup |= strcmp(seen[k], hits[i].doc) == 0;
        if (dup) continue;
        seen[n_seen++] = hits[i].doc;
        if (rl_eval_doc_matches(hits[i].doc, oracle)) return n_seen;
    }
    return 0;
}

rl_status rl_eval_retrieval_run(rl_store *store, const rl_eval_set *set, rl_dense *dense, int hybrid, const rl_hybrid_opts *ho,
                                rl_eval_retrieval *out, rl_error *err) {
    memset(out, 0, sizeof *out);
    rl_progress bar;
    rl_progress_start(&bar, "eval retrieval", "questions", (double)set->n);
    for (size_t i = 0; i < set->n; i++) {
        rl_progress_add(&bar, 1);
        if (!set->q[i].oracle_doc) continue;
        rl_hit *hits;
        size_t n;
        /* chunks enough for RL_EVAL_MAX_K distinct documents in most corpora */
        const size_t depth = 4 * RL_EVAL_MAX_K;
        rl_status s = !dense   ? rl_search_bm25(store, set->q[i].question, depth, &hits, &n, err)
                      : hybrid ? rl_search_hybrid(store, dense, ho, set->q[i].question, depth, &hits, &n, err)
                               : rl_search_dense(store, dense, set->q[i].question, depth, &hits, &n, err);
        if (s) {
            rl_progress_finish(&bar);
            return s;
        }
        rl_rank_metrics m;
        int rank = oracle_rank(hits, n, set->q[i].oracle_doc);
        rl_eval_rank_metrics(rank, &m);
        rl_hits_free(hits, n);
        for (int k = 1; k <= RL_EVAL_MAX_K; k++) out->recall[k] += rank >= 1 && rank <= k;
        out->mrr += m.mrr;
        out->ndcg10 += m.ndcg10;
        out->n++;
    }
    rl_progress_finish(&bar);
    if (out->n) {
        for (int k = 1; k <= RL_EVAL_MAX_K; k++) out->recall[k] /= out->n;
        out->mrr /= out->n;
        out->ndcg10 /= out->n;
    }
    return RL_OK;
}

/* ---- answering -------------------------------------------------------------------------------- */

const char *rl_eval_mode_name(rl_eval_mode m) {
    return m == RL_EVAL_CLOSED_BOOK ? "closed_book" : m == RL_EVAL_RAG ? "rag" : "oracle";
}

char **rl_eval_quotes(const char *generated, int *n) {
    char **out = NULL;
    *n = 0;
    for (const char *p = generated;;) {
        const char *b = strstr(p, "##begin_quote##");
        if (!b) break;
        const char *q = b + 15, *e = strstr(q, "##end_quote##");
        size_t len = e ? (size_t)(e - q) : strlen(q); /* an unclosed quote runs to the end */
        out = rl_xrealloc(out, (size_t)(*n + 1) * sizeof *out);
        out[(*n)++] = rl_xstrndup(q, len);
        if (!e) break;
        p = e + 13;
    }
    return out;
}

/* The documents shown for a question: retrieved top-k (rag), or the oracle document's chunk
 * that holds the answer among the best other chunks (oracle), shuffled by a hash of the
 * question so every model sees the same order. Each entry is "doc\0text" packed as two
 * strings: docs[i] the text, paths[i] the document's path. */
static int documents_for(rl_store *store, const rl_eval_question *q, rl_eval_mode mode, int k, char ***docs_out, char ***paths_out,
                         rl_error *err) {
    *docs_out = *paths_out = NULL;
    if (mode == RL_EVAL_CLOSED_BOOK) return 0;
    rl_hit *hits;
    size_t n;
    int want = k > 0 ? k : 5;
    if (rl_search_bm25(store, q->question, mode == RL_EVAL_RAG ? (size_t)want : 200, &hits, &n, err)) return -1;
    char **docs = rl_xcalloc((size_t)want + 1, sizeof *docs), **paths = rl_xcalloc((size_t)want + 1, sizeof *paths);
    int nd = 0;
    if (mode == RL_EVAL_RAG) {
        for (size_t i = 0; i < n && nd < want; i++) docs[nd] = rl_xstrdup(hits[i].text), paths[nd++] = rl_xstrdup(hits[i].doc);
    } else {
        int oracle = -1;
        for (size_t i = 0; i < n && oracle < 0; i++)
            if (q->oracle_doc && rl_eval_doc_matches(hits[i].doc, q->oracle_doc) && rl_text_contains_normalized(hits[i].text, q->answer))
                oracle = (int)i;
        for (size_t i = 0; i < n && oracle < 0; i++)
            if (q->oracle_doc && rl_eval_doc_matches(hits[i].doc, q->oracle_doc)) oracle = (int)i;
        if (oracle >= 0) docs[nd] = rl_xstrdup(hits[oracle].text), paths[nd++] = rl_xstrdup(hits[oracle].doc);
        for (size_t i = 0; i < n && nd < want; i++)
            if ((int)i != oracle && !(q->oracle_doc && rl_eval_doc_matches(hits[i].doc, q->oracle_doc)) &&
                !rl_text_contains_normalized(hits[i].text, q->answer))
                docs[nd] = rl_xstrdup(hits[i].text), paths[nd++] = rl_xstrdup(hits[i].doc);
        uint64_t h = rl_hash64(q->question, strlen(q->question));
        for (int i = nd - 1; i > 0; i--) {
            h = h * 6364136223846793005ull + 1442695040888963407ull;
            int j = (int)((h >> 33) % (uint64_t)(i + 1));
            char *t = docs[i];
            docs[i] = docs[j], docs[j] = t;
            t = paths[i];
            paths[i] = paths[j], paths[j] = t;
        }
    }
    rl_hits_free(hits, n);
    *docs_out = docs;
    *paths_out = paths;
    return nd;
}

static void free_docs(char **docs, char **paths, int nd) {
    for (int k = 0; k < nd; k++) free(docs[k]), free(paths[k]);
    free(docs);
    free(paths);
}

/* A JSON string of text that may not be valid UTF-8 (a model can stop inside a character, a
 * document can hold stray bytes): invalid bytes become U+FFFD. */
static json_t *json_text(const char *s) {
    if (!s) return json_null();
    size_t n = strlen(s);
    if (rl_utf8_valid(s, n)) return json_string(s);
    rl_buf b = {0};
    for (size_t i = 0; i < n;) {
        int l = rl_utf8_seq_len((const unsigned char *)s + i, n - i);
        if (l > 0) rl_buf_append(&b, s + i, (size_t)l), i += (size_t)l;
        else rl_buf_puts(&b, "\xEF\xBF\xBD"), i++;
    }
    json_t *j = json_string(b.data ? b.data : "");
    rl_buf_free(&b);
    return j;
}

/* One question's record for the report and eval_answers.jsonl. */
static void write_record(rl_buf *out, const char *model, const rl_eval_question *q, const rl_eval_task *t, const char *gen, const char *final,
                         char **docs, char **paths, int nd, int em, double f1, int num, int cite, int refusal) {
    json_t *j = json_object();
    json_object_set_new(j, "model", model ? json_text(model) : json_null());
    json_object_set_new(j, "mode", json_string(rl_eval_mode_name(t->mode)));
    json_object_set_new(j, "k", json_integer(t->mode == RL_EVAL_CLOSED_BOOK ? 0 : t->k));
    json_object_set_new(j, "id", json_text(q->id));
    json_object_set_new(j, "question", json_text(q->question));
    json_object_set_new(j, "gold", json_text(q->answer));
    json_object_set_new(j, "oracle_doc", q->oracle_doc ? json_text(q->oracle_doc) : json_null());
    json_object_set_new(j, "generated", json_text(gen));
    json_object_set_new(j, "final_answer", json_text(final));
    int nq;
    char **quotes = rl_eval_quotes(gen, &nq);
    json_t *qa = json_array();
    for (int i = 0; i < nq; i++) json_array_append_new(qa, json_text(quotes[i])), free(quotes[i]);
    free(quotes);
    json_object_set_new(j, "quotes", qa);
    json_t *da = json_array();
    for (int i = 0; i < nd; i++) {
        json_t *d = json_object();
        json_object_set_new(d, "doc", json_text(paths[i]));
        json_object_set_new(d, "text", json_text(docs[i]));
        json_array_append_new(da, d);
    }
    json_object_set_new(j, "documents", da);
    json_object_set_new(j, "em", json_integer(em));
    json_object_set_new(j, "f1", json_real(f1));
    json_object_set_new(j, "numeric_match", json_integer(num));
    json_object_set_new(j, "citation_valid", json_integer(cite));
    json_object_set_new(j, "refusal", json_integer(refusal));
    char *line = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (line) rl_buf_puts(out, line), rl_buf_putc(out, '\n');
    free(line);
    json_decref(j);
}

/* One question x task: what the model is shown (prepared before generation: the store is
 * used from one thread only) and what it answered. */
typedef struct job {
    char **docs, **paths, *prompt;
    int nd;
    char *gen; /* NULL until generated */
    int n_tok;
    double seconds;
} job;

typedef struct run_ctx {
    const rl_eval_answer_opts *o;
    job *jobs;
    size_t n_questions;
    atomic_size_t next;
    atomic_int failed;
    pthread_mutex_t mu; /* the progress bar and the first error */
    rl_error err;
} run_ctx;

typedef struct worker_arg {
    run_ctx *rc;
    void *gen_ctx;
} worker_arg;

/* Takes questions one at a time and runs all their tasks with one generator context. */
static void *answer_worker(void *arg) {
    worker_arg *w = arg;
    run_ctx *rc = w->rc;
    const rl_eval_answer_opts *o = rc->o;
    for (;;) {
        size_t i = atomic_fetch_add(&rc->next, 1);
        if (i >= rc->n_questions || atomic_load(&rc->failed)) break;
        for (int t = 0; t < o->n_tasks; t++) {
            job *j = &rc->jobs[i * (size_t)o->n_tasks + (size_t)t];
            rl_error e = {0};
            double t0 = rl_now();
            j->gen = o->generate(w->gen_ctx, j->prompt, &j->n_tok, &e);
            j->seconds = rl_now() - t0;
            pthread_mutex_lock(&rc->mu);
            if (!j->gen && !atomic_exchange(&rc->failed, 1)) {
                rc->err = e;
                if (!rc->err.status) rl_fail(&rc->err, RL_EINTERNAL, "generation failed");
            }
            if (o->bar) rl_progress_add(o->bar, 1);
            pthread_mutex_unlock(&rc->mu);
            if (!j->gen) return NULL;
        }
    }
    return NULL;
}

rl_status rl_eval_answers_run(rl_store *store, const rl_eval_set *set, const rl_eval_answer_opts *o, rl_eval_answers *out, rl_error *err) {
    memset(out, 0, (size_t)o->n_tasks * sizeof *out);
    size_t nq = set->n, nt = (size_t)o->n_tasks;
    job *jobs = rl_xcalloc(nq * nt + 1, sizeof *jobs);
    rl_status s = RL_OK;
    /* what each question x task shows the model */
    for (size_t i = 0; i < nq && !s; i++)
        for (size_t t = 0; t < nt && !s; t++) {
            const rl_eval_question *q = &set->q[i];
            job *j = &jobs[i * nt + t];
            j->nd = documents_for(store, q, o->tasks[t].mode, o->tasks[t].k, &j->docs, &j->paths, err);
            if (j->nd < 0) {
                j->nd = 0;
                s = err && err->status ? err->status : RL_EDB;
                break;
            }
            j->prompt = o->tasks[t].mode != RL_EVAL_CLOSED_BOOK ? rl_raft_prompt((const char *const *)j->docs, j->nd, q->question)
                                                                 : rl_xstrdup(q->question);
        }
    /* generation: n_workers threads, each with its own generator context */
    if (!s) {
        run_ctx rc = {.o = o, .jobs = jobs, .n_questions = nq};
        pthread_mutex_init(&rc.mu, NULL);
        int nw = o->n_workers < 1 ? 1 : o->n_workers;
        if ((size_t)nw > nq) nw = nq ? (int)nq : 1;
        pthread_t th[RL_EVAL_MAX_WORKERS];
        worker_arg wa[RL_EVAL_MAX_WORKERS];
        int started = 0;
        for (int w = 1; w < nw && w < RL_EVAL_MAX_WORKERS; w++) {
            wa[w] = (worker_arg){&rc, o->ctxs[w]};
            if (pthread_create(&th[w], NULL, answer_worker, &wa[w]) != 0) break;
            started = w;
        }
        wa[0] = (worker_arg){&rc, o->ctxs[0]};
        answer_worker(&wa[0]); /* the caller's thread works too */
        for (int w = 1; w <= started; w++) pthread_join(th[w], NULL);
        pthread_mutex_destroy(&rc.mu);
        if (atomic_load(&rc.failed)) {
            if (err) *err = rc.err;
            s = rc.err.status ? rc.err.status : RL_EINTERNAL;
        }
    }
    /* scoring and the records, in question order whatever the threads did */
    for (size_t i = 0; i < nq && !s; i++)
        for (size_t t = 0; t < nt; t++) {
            const rl_eval_question *q = &set->q[i];
            job *j = &jobs[i * nt + t];
            rl_eval_answers *a = &out[t];
            char *final = rl_eval_final_answer(j->gen);
            int em = rl_eval_exact_match(final, q->answer), num = rl_eval_numeric_match(final, q->answer);
            double f1 = rl_eval_f1(final, q->answer);
            int cite = j->nd > 0 && rl_eval_citations_valid(j->gen, (const char *const *)j->docs, j->nd);
            int refusal = rl_eval_is_refusal(final);
            a->em += em, a->f1 += f1, a->numeric_match += num, a->citation_validity += cite, a->refusal_rate += refusal;
            a->tokens += j->n_tok;
            a->seconds += j->seconds;
            a->n++;
            if (o->records) write_record(o->records, o->model, q, &o->tasks[t], j->gen, final, j->docs, j->paths, j->nd, em, f1, num, cite, refusal);
            free(final);
        }
    for (size_t k = 0; k < nq * nt; k++) {
        free(jobs[k].prompt);
        free(jobs[k].gen);
        free_docs(jobs[k].docs, jobs[k].paths, jobs[k].nd);
    }
    free(jobs);
    for (int t = 0; t < o->n_tasks; t++) {
        rl_eval_answers *a = &out[t];
        if (a->n) a->em /= a->n, a->f1 /= a->n, a->numeric_match /= a->n, a->citation_validity /= a->n, a->refusal_rate /= a->n;
    }
    return s;
}
