/* assemble.c - accepted questions -> RAFT examples, and their export formats.
 *
 * Deterministic for a given store and options, whatever order the teacher finished in:
 * items are ordered by document, chunk and question; every random choice (oracle or not,
 * distractor fill, shuffling) comes from a generator seeded by the run seed and the item's
 * own content. So a resumed run produces exactly the files an uninterrupted one would.
 *
 * Splits are by document: all questions about one document land in the same split, so no test
 * question's oracle chunk is ever seen in training. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "synth/synth_internal.h"

typedef struct item {
    size_t chunk; /* index into chunks */
    int ordinal;
    char *question, *cot, *final_answer;
    uint32_t sig[RL_MINHASH_K];
} item;

static double uniform(uint64_t *s) { return (double)(rl_splitmix(s) >> 11) / 9007199254740992.0; }

/* ---- lookups ------------------------------------------------------------------------------ */

typedef struct key_index {
    const char *key;
    int64_t id;
    size_t idx;
} key_index;

static int by_key(const void *a, const void *b) { return strcmp(((const key_index *)a)->key, ((const key_index *)b)->key); }
static int by_id(const void *a, const void *b) {
    int64_t x = ((const key_index *)a)->id, y = ((const key_index *)b)->id;
    return x < y ? -1 : x > y;
}

/* ---- splits ------------------------------------------------------------------------------- */

typedef struct doc_split {
    const char *path;
    uint64_t h;
    int split;
} doc_split;

static int by_hash(const void *a, const void *b) {
    const doc_split *x = a, *y = b;
    if (x->h != y->h) return x->h < y->h ? -1 : 1;
    return strcmp(x->path, y->path);
}
static int by_path(const void *a, const void *b) { return strcmp(((const doc_split *)a)->path, ((const doc_split *)b)->path); }

/* Shuffles documents by a seeded hash of their path, then the first test_fraction of them are
 * the test split, the next val_fraction validation, the rest training. */
static doc_split *assign_splits(const syn_chunks *chunks, const rl_synth_opts *o, size_t *n_out) {
    doc_split *d = NULL;
    size_t n = 0;
    for (size_t i = 0; i < chunks->n; i++) {
        if (n && strcmp(d[n - 1].path, chunks->c[i].doc_path) == 0) continue; /* chunks are sorted by path */
        d = rl_xrealloc(d, (n + 1) * sizeof *d);
        char *k = rl_xasprintf("%llu:%s", (unsigned long long)o->seed, chunks->c[i].doc_path);
        d[n].path = chunks->c[i].doc_path;
        d[n].h = rl_hash64(k, strlen(k));
        d[n].split = 0;
        free(k);
        n++;
    }
    qsort(d, n, sizeof *d, by_hash);
    size_t n_test = (size_t)(o->test_fraction * (double)n + 0.5), n_val = (size_t)(o->val_fraction * (double)n + 0.5);
    if (o->test_fraction > 0 && n_test == 0 && n >= 3) n_test = 1;
    if (o->val_fraction > 0 && n_val == 0 && n >= 3) n_val = 1;
    if (n_test + n_val >= n) n_test = n_val = 0; /* too few documents to hold any out */
    for (size_t i = 0; i < n; i++) d[i].split = i < n_test ? 2 : i < n_test + n_val ? 1 : 0;
    qsort(d, n, sizeof *d, by_path);
    *n_out = n;
    return d;
}

/* ---- distractors -------------------------------------------------------------------------- */

static int usable_distractor(const syn_chunks *chunks, size_t cand, size_t oracle, const char *answer, const size_t *chosen, int n) {
    if (cand == oracle || strcmp(chunks->c[cand].sha, chunks->c[oracle].sha) == 0) return 0;
    if (strcmp(chunks->c[cand].text, chunks->c[oracle].text) == 0) return 0;
    for (int i = 0; i < n; i++)
        if (chosen[i] == cand || strcmp(chunks->c[chosen[i]].text, chunks->c[cand].text) == 0) return 0;
    /* a chunk that states the answer is not a distractor */
    return !(answer && answer[0] && rl_text_contains_normalized(chunks->c[cand].text, answer));
}

static int pick_distractors(rl_store *store, const syn_chunks *chunks, const key_index *by_chunk_id, const rl_synth_opts *o,
                            size_t oracle, const item *it, uint64_t *rng, size_t *out, int want) {
    int n = 0;
    if (!o->random_distractors) {
        int k = want * 4 + 8, nh;
        int64_t *ids = rl_xmalloc((size_t)k * sizeof *ids);
        if (rl_search_bm25_ids(store, it->question, k, ids, &nh, NULL) == RL_OK) {
            for (int h = 0; h < nh && n < want; h++) {
                key_index key = {.id = ids[h]};
                key_index *f = bsearch(&key, by_chunk_id, chunks->n, sizeof key, by_id);
                if (f && usable_distractor(chunks, f->idx, oracle, it->final_answer, out, n)) out[n++] = f->idx;
            }
        }
        free(ids);
    }
    /* random fill (and random mode) */
    for (int tries = 0; n < want && tries < want * 50; tries++) {
        size_t c = (size_t)(rl_splitmix(rng) % chunks->n);
        if (usable_distractor(chunks, c, oracle, it->final_answer, out, n)) out[n++] = c;
    }
    return n;
}

/* ---- examples ----------------------------------------------------------------------------- */

static char *title_of(const syn_chunk *c) {
    return c->heading[0] ? rl_xasprintf("%s: %s", c->doc_path, c->heading) : rl_xstrdup(c->doc_path);
}

static void add_example(syn_examples *x, syn_example e) {
    x->e = rl_xrealloc(x->e, (x->n + 1) * sizeof *x->e);
    x->e[x->n++] = e;
}

static syn_example make_example(const syn_chunks *chunks, const item *it, size_t *dist, int nd, int with_oracle, int refusal,
                                const char *cot, uint64_t *rng, int split, const char *id) {
    syn_example e = {0};
    const syn_chunk *oc = &chunks->c[it->chunk];
    e.id = rl_xstrdup(id);
    e.split = split;
    e.question = rl_xstrdup(it->question);
    e.cot_answer = rl_xstrdup(cot);
    e.final_answer = rl_xstrdup(refusal ? SYN_REFUSAL : it->final_answer);
    e.oracle_text = rl_xstrdup(oc->text);
    e.oracle_doc = rl_xstrdup(oc->doc_path);
    e.oracle_chunk_id = oc->id;
    e.oracle_in_context = with_oracle;
    e.refusal = refusal;
    size_t *order = rl_xmalloc((size_t)(nd + 1) * sizeof *order);
    int n = 0;
    for (int i = 0; i < nd; i++) order[n++] = dist[i];
    if (with_oracle) order[n++] = it->chunk;
    for (int i = n - 1; i > 0; i--) { /* Fisher-Yates */
        int j = (int)(rl_splitmix(rng) % (uint64_t)(i + 1));
        size_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    e.n_docs = n;
    e.docs = rl_xcalloc((size_t)(n ? n : 1), sizeof *e.docs);
    e.titles = rl_xcalloc((size_t)(n ? n : 1), sizeof *e.titles);
    for (int i = 0; i < n; i++) {
        e.docs[i] = rl_xstrdup(chunks->c[order[i]].text);
        e.titles[i] = title_of(&chunks->c[order[i]]);
    }
    free(order);
    return e;
}

/* ---- counterfactual copies ---------------------------------------------------------------- */

static void example_free(syn_example *e) {
    free(e->id), free(e->question), free(e->cot_answer), free(e->final_answer), free(e->oracle_text), free(e->oracle_doc);
    for (int d = 0; d < e->n_docs; d++) free(e->docs[d]), free(e->titles[d]);
    free(e->docs), free(e->titles);
}

/* Counterfactual copies of an example whose answer is a figure its oracle states: the figure
 * is replaced, in the documents, the quote and the answer, by a random one of the same shape.
 * Memory cannot answer them (the student may have read the real figure in pretraining), only
 * reading can: they teach the student to take its facts from the documents. */
static int add_counterfactuals(syn_examples *out, size_t at, int copies, uint64_t *rng) {
    int added = 0;
    for (int c = 0; c < copies; c++) {
        const syn_example *orig = &out->e[at]; /* add_example moves the array */
        const char *fig = orig->final_answer;
        if (!orig->oracle_in_context || orig->refusal || !strpbrk(fig, "0123456789") || strstr(orig->question, fig)) break;
        char *to = rl_figure_random(fig, rng);
        int in_oracle = 0, in_cot = 0, ignored = 0;
        syn_example e = {0};
        e.id = rl_xasprintf("%s-cf%d", orig->id, c + 1);
        e.split = orig->split;
        e.question = rl_xstrdup(orig->question);
        e.final_answer = to;
        e.oracle_text = rl_figure_replace(orig->oracle_text, fig, to, &in_oracle);
        e.cot_answer = rl_figure_replace(orig->cot_answer, fig, to, &in_cot);
        e.oracle_doc = rl_xstrdup(orig->oracle_doc);
        e.oracle_chunk_id = orig->oracle_chunk_id;
        e.oracle_in_context = 1;
        e.counterfactual = 1;
        e.n_docs = orig->n_docs;
        e.docs = rl_xcalloc((size_t)(e.n_docs ? e.n_docs : 1), sizeof *e.docs);
        e.titles = rl_xcalloc((size_t)(e.n_docs ? e.n_docs : 1), sizeof *e.titles);
        for (int d = 0; d < e.n_docs; d++) {
            e.docs[d] = rl_figure_replace(orig->docs[d], fig, to, &ignored);
            e.titles[d] = rl_xstrdup(orig->titles[d]);
        }
        if (!in_oracle || !in_cot || strcmp(e.final_answer, fig) == 0) { /* not quoted as a whole figure: no copy */
            example_free(&e);
            break;
        }
        add_example(out, e);
        added++;
    }
    return added;
}

/* Training examples that hold their oracle, a fraction of them chosen at random, keep it alone:
 * copying the answer out of the one document is the easier half of the task, and a student
 * trained from scratch learns it sooner when some examples ask only that, before it must also
 * find the right document among look-alikes (docs/benchmarks.md, the demo). Its own random
 * stream, so that a fraction of 0 leaves every other choice as it was. */
static int64_t show_oracle_alone(syn_examples *x, double fraction, uint64_t seed) {
    uint64_t rng = seed ^ 0x6f7261636c65ULL;
    int64_t n = 0;
    for (size_t i = 0; i < x->n; i++) {
        syn_example *e = &x->e[i];
        /* refusals never hold their oracle; the draw comes before any other test, so the choice of
         * one example does not depend on the documents of another */
        if (e->split != 0 || !e->oracle_in_context || uniform(&rng) >= fraction || e->n_docs < 2) continue;
        int keep = -1;
        for (int d = 0; d < e->n_docs && keep < 0; d++)
            if (strcmp(e->docs[d], e->oracle_text) == 0) keep = d;
        if (keep < 0) continue;
        for (int d = 0; d < e->n_docs; d++)
            if (d != keep) free(e->docs[d]), free(e->titles[d]);
        e->docs[0] = e->docs[keep];
        e->titles[0] = e->titles[keep];
        e->n_docs = 1;
        n++;
    }
    return n;
}

static int by_position(const void *a, const void *b) {
    const item *x = a, *y = b;
    if (x->chunk != y->chunk) return x->chunk < y->chunk ? -1 : 1;
    return x->ordinal - y->ordinal;
}

rl_status syn_assemble(rl_store *store, const rl_synth_opts *o, const syn_chunks *chunks, syn_examples *out, rl_error *err) {
    memset(out, 0, sizeof *out);
    sqlite3 *db = rl_store_db(store);
    char *fp = syn_fingerprint(o);
    key_index *by_sha = rl_xmalloc((chunks->n + 1) * sizeof *by_sha), *by_cid = rl_xmalloc((chunks->n + 1) * sizeof *by_cid);
    for (size_t i = 0; i < chunks->n; i++) {
        by_sha[i] = (key_index){chunks->c[i].sha, chunks->c[i].id, i};
        by_cid[i] = by_sha[i];
    }
    /* stable: the first chunk with a given content wins */
    for (size_t i = 0; i < chunks->n; i++) by_sha[i].id = (int64_t)i;
    qsort(by_sha, chunks->n, sizeof *by_sha, by_key);
    qsort(by_cid, chunks->n, sizeof *by_cid, by_id);

    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT chunk_sha, ordinal, question, cot_answer, final_answer FROM synth_items WHERE fp = ? AND status = 'accepted'",
                           -1, &st, NULL) != SQLITE_OK) {
        free(fp), free(by_sha), free(by_cid);
        return rl_fail(err, RL_EDB, "reading items: %s", sqlite3_errmsg(db));
    }
    sqlite3_bind_text(st, 1, fp, -1, SQLITE_STATIC);
    item *items = NULL;
    size_t n = 0, cap = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        key_index key = {.key = (const char *)sqlite3_column_text(st, 0)};
        key_index *f = bsearch(&key, by_sha, chunks->n, sizeof key, by_key);
        if (!f) continue; /* its chunk is gone from the corpus */
        /* among equal keys bsearch may land anywhere: walk to the first chunk with this content */
        while (f > by_sha && strcmp(f[-1].key, key.key) == 0) f--;
        size_t first = f->idx;
        for (key_index *g = f; g < by_sha + chunks->n && strcmp(g->key, key.key) == 0; g++)
            if (g->idx < first) first = g->idx;
        if (n == cap) cap = cap ? 2 * cap : 256, items = rl_xrealloc(items, cap * sizeof *items);
        item *it = &items[n++];
        it->chunk = first;
        it->ordinal = sqlite3_column_int(st, 1);
        it->question = rl_xstrdup((const char *)sqlite3_column_text(st, 2));
        it->cot = rl_xstrdup((const char *)sqlite3_column_text(st, 3));
        it->final_answer = rl_xstrdup((const char *)sqlite3_column_text(st, 4));
    }
    sqlite3_finalize(st);
    if (n) qsort(items, n, sizeof *items, by_position);

    size_t n_docs;
    doc_split *splits = assign_splits(chunks, o, &n_docs);
    int want = o->num_distractors;
    if ((size_t)want > chunks->n - 1) {
        want = (int)chunks->n - 1;
        out->distractors_clamped = 1;
        rl_warn("only %zu chunks: %d distractors per example instead of %d", chunks->n, want, o->num_distractors);
    }
    size_t *dist = rl_xmalloc((size_t)(want + 1) * sizeof *dist);
    for (size_t i = 0; i < n; i++) {
        item *it = &items[i];
        rl_minhash(it->question, it->sig);
        int dup = 0;
        for (size_t k = 0; k < i && !dup; k++)
            dup = items[k].question && rl_minhash_similarity(items[k].sig, it->sig) >= o->dedup_threshold;
        if (dup) {
            out->duplicates++;
            free(it->question);
            it->question = NULL; /* marks it dropped */
            continue;
        }
        const syn_chunk *oc = &chunks->c[it->chunk];
        doc_split key = {.path = oc->doc_path};
        doc_split *ds = bsearch(&key, splits, n_docs, sizeof key, by_path);
        int split = ds ? ds->split : 0;
        char seed_text[128];
        snprintf(seed_text, sizeof seed_text, "%llu:%s:%d", (unsigned long long)o->seed, oc->sha, it->ordinal);
        uint64_t rng = rl_hash64(seed_text, strlen(seed_text));
        char hex[65];
        rl_sha256_hex(seed_text, strlen(seed_text), hex);
        char id[40];
        snprintf(id, sizeof id, "raft-%.16s", hex);
        int with_oracle = uniform(&rng) < o->p;
        int nd = pick_distractors(store, chunks, by_cid, o, it->chunk, it, &rng, dist, want);
        int refuse = !with_oracle && o->refuse_without_oracle;
        const char *cot = refuse ? "##Reason: None of the documents contains the answer to this question.\n<ANSWER>: " SYN_REFUSAL : it->cot;
        add_example(out, make_example(chunks, it, dist, nd, with_oracle, refuse, cot, &rng, split, id));
        if (refuse) out->refusals++;
        if (split == 0 && o->counterfactual_copies > 0)
            out->counterfactuals += add_counterfactuals(out, out->n - 1, o->counterfactual_copies, &rng);
        if (o->refusal_fraction > 0 && uniform(&rng) < o->refusal_fraction) {
            char rid[48];
            snprintf(rid, sizeof rid, "%s-refusal", id);
            add_example(out, make_example(chunks, it, dist, nd, 0, 1,
                                          "##Reason: None of the documents contains the answer to this question.\n<ANSWER>: " SYN_REFUSAL,
                                          &rng, split, rid));
            out->refusals++;
        }
    }
    free(dist);
    if (o->oracle_alone_fraction > 0) out->oracle_alone = show_oracle_alone(out, o->oracle_alone_fraction, o->seed);
    for (size_t i = 0; i < n; i++) free(items[i].question), free(items[i].cot), free(items[i].final_answer);
    free(items);
    free(splits);
    free(by_sha);
    free(by_cid);
    free(fp);
    return RL_OK;
}

void syn_examples_free(syn_examples *x) {
    for (size_t i = 0; i < x->n; i++) example_free(&x->e[i]);
    free(x->e);
    memset(x, 0, sizeof *x);
}

/* ---- formats ------------------------------------------------------------------------------ */

static const char *split_name(int s) { return s == 0 ? "train" : s == 1 ? "validation" : "test"; }

char *syn_example_json(const syn_example *e, rl_export_format fmt) {
    char *instruction = rl_raft_prompt((const char *const *)e->docs, e->n_docs, e->question);
    json_t *j = json_object();
    switch (fmt) {
    case RL_EXPORT_RAFT: {
        json_t *titles = json_array(), *sents = json_array();
        for (int i = 0; i < e->n_docs; i++) {
            json_array_append_new(titles, json_string(e->titles[i]));
            json_array_append_new(sents, json_string(e->docs[i]));
        }
        json_t *ctx = json_object(), *tw = json_array(), *sw = json_array();
        json_array_append_new(tw, titles);
        json_array_append_new(sw, sents);
        json_object_set_new(ctx, "title", tw);
        json_object_set_new(ctx, "sentences", sw);
        json_object_set_new(j, "id", json_string(e->id));
        json_object_set_new(j, "type", json_string(e->refusal ? "refusal" : e->counterfactual ? "counterfactual" : "general"));
        json_object_set_new(j, "question", json_string(e->question));
        json_object_set_new(j, "context", ctx);
        json_object_set_new(j, "oracle_context", json_string(e->oracle_text));
        json_object_set_new(j, "cot_answer", json_string(e->cot_answer));
        json_object_set_new(j, "instruction", json_string(instruction));
        json_object_set_new(j, "final_answer", json_string(e->final_answer));
        json_object_set_new(j, "oracle_doc", json_string(e->oracle_doc));
        json_object_set_new(j, "oracle_chunk_id", json_integer(e->oracle_chunk_id));
        json_object_set_new(j, "oracle_in_context", json_boolean(e->oracle_in_context));
        json_object_set_new(j, "split", json_string(split_name(e->split)));
        break;
    }
    case RL_EXPORT_CHAT: {
        json_t *msgs = json_array();
        json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "system", "content", SYN_SYSTEM_PROMPT));
        json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "user", "content", instruction));
        json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "assistant", "content", e->cot_answer));
        json_object_set_new(j, "messages", msgs);
        break;
    }
    case RL_EXPORT_COMPLETION:
        json_object_set_new(j, "prompt", json_string(instruction));
        json_object_set_new(j, "completion", json_string(e->cot_answer));
        break;
    case RL_EXPORT_ALPACA:
        json_object_set_new(j, "instruction", json_string(SYN_SYSTEM_PROMPT));
        json_object_set_new(j, "input", json_string(instruction));
        json_object_set_new(j, "output", json_string(e->cot_answer));
        break;
    case RL_EXPORT_EVAL:
        json_object_set_new(j, "id", json_string(e->id));
        json_object_set_new(j, "question", json_string(e->question));
        json_object_set_new(j, "answer", json_string(e->final_answer));
        json_object_set_new(j, "oracle_doc", json_string(e->oracle_doc));
        json_object_set_new(j, "oracle_chunk_id", json_integer(e->oracle_chunk_id));
        break;
    }
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII * 0);
    json_decref(j);
    free(instruction);
    return s ? s : rl_xstrdup("{}");
}

rl_status rl_export_format_parse(const char *name, rl_export_format *out, rl_error *err) {
    static const char *names[] = {"raft", "chat", "completion", "alpaca", "eval"};
    for (int i = 0; i < 5; i++)
        if (strcmp(name, names[i]) == 0) return *out = (rl_export_format)i, RL_OK;
    return rl_fail(err, RL_EINVAL, "unknown export format '%s' (raft, chat, completion, alpaca, eval)", name);
}

rl_status rl_synth_export(rl_store *store, const rl_synth_opts *o, rl_export_format fmt, int split, const char *path, int64_t *n_written,
                          rl_error *err) {
    *n_written = 0;
    sqlite3 *db = rl_store_db(store);
    rl_status r = syn_ensure_tables(db, err);
    if (r) return r;
    syn_chunks chunks;
    if ((r = syn_load_chunks(db, &chunks, err))) return r;
    syn_examples x = {0};
    r = chunks.n ? syn_assemble(store, o, &chunks, &x, err) : RL_OK;
    rl_buf b = {0};
    for (size_t i = 0; i < x.n && !r; i++) {
        if (split >= 0 && x.e[i].split != split) continue;
        if (fmt == RL_EXPORT_EVAL && x.e[i].refusal) continue;
        char *line = syn_example_json(&x.e[i], fmt);
        rl_buf_puts(&b, line);
        rl_buf_putc(&b, '\n');
        free(line);
        (*n_written)++;
    }
    if (!r) r = rl_file_write_atomic(path, b.data ? b.data : "", b.len, err);
    rl_buf_free(&b);
    syn_examples_free(&x);
    syn_chunks_free(&chunks);
    return r;
}
