/* data.c - training datasets: JSONL files of Axolotl's formats turned into token ids with
 * labels (-100 where the loss is masked), and batches (padded or packed) built from them.
 *
 * Formats (one JSON object per line; a malformed line is an error naming file:line):
 *   completion      {"text": ...}                         BOS text EOS, every token trained
 *   input_output    {"segments": [{"label": bool, "text": ...}, ...]}   no special tokens added;
 *                   segments with label false are masked
 *   prompt_completion {"prompt": ..., "completion": ...}  BOS prompt completion EOS
 *   alpaca          {"instruction", "input"?, "output"}   the Alpaca prompt, then output EOS
 *   chat_template   {"messages": [{"role", "content"}]}   rendered with the tokenizer's chat
 *                   template, loss on the assistant turns only
 *   raft            {"instruction", "cot_answer", ...}    the RAFT schema: the instruction (documents
 *                   and question) as the user turn, the cited chain of thought as the answer
 *   tokenized       {"input_ids": [...], "labels": [...]} as given (labels default to input_ids)
 * Prompts are masked unless train_on_inputs. Labels are Hugging Face style (unshifted):
 * labels[t] is what position t-1 predicts. Examples longer than sequence_len are dropped (as
 * Axolotl does) and counted.
 *
 * Simplification: chat turns are tokenized segment by segment (template text between turns,
 * then each assistant answer), which equals tokenizing the whole rendering for byte-level BPE
 * vocabularies whose template puts special tokens at the seams.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "train/train.h"

static const char *ALPACA_IN =
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n### Instruction:\n%s\n\n### Input:\n%s\n\n### Response:\n";
static const char *ALPACA_NOIN =
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n%s\n\n### Response:\n";

typedef struct {
    int32_t *ids, *labels;
    int n, cap;
} seq;

static void seq_push(seq *s, int32_t id, int train) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        s->ids = rl_xrealloc(s->ids, (size_t)s->cap * sizeof *s->ids);
        s->labels = rl_xrealloc(s->labels, (size_t)s->cap * sizeof *s->labels);
    }
    s->ids[s->n] = id;
    s->labels[s->n] = train ? id : -100;
    s->n++;
}

static rl_status seq_text(seq *s, const rl_tokenizer *tok, const char *text, int train, rl_error *err) {
    int32_t *ids;
    size_t n;
    rl_status st = rl_tok_encode(tok, text, strlen(text), 0, &ids, &n, err);
    if (st) return st;
    for (size_t i = 0; i < n; i++) seq_push(s, ids[i], train);
    free(ids);
    return RL_OK;
}

int rl_ds_type_parse(const char *name) {
    static const char *const names[] = {"completion", "input_output", "prompt_completion", "alpaca",
                                        "chat_template", "raft", "tokenized"};
    for (int i = 0; i < 7; i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

static const char *jstr(json_t *o, const char *key) { return json_string_value(json_object_get(o, key)); }

/* One JSON object -> one sequence. Returns RL_EFORMAT with a message (without file:line). */
static rl_status example_from_json(seq *s, json_t *o, rl_ds_type type, const rl_tokenizer *tok, int train_inputs,
                                   rl_error *err) {
    int bos = tok ? rl_tok_bos(tok) : -1, eos = tok ? rl_tok_eos(tok) : -1;
    rl_status st = RL_OK;
    if (!json_is_object(o)) return rl_fail(err, RL_EFORMAT, "not a JSON object");
    if (type != RL_DS_TOKENIZED && !tok) return rl_fail(err, RL_EINVAL, "this dataset type needs a tokenizer");
    switch (type) {
    case RL_DS_COMPLETION: {
        const char *text = jstr(o, "text");
        if (!text) return rl_fail(err, RL_EFORMAT, "no \"text\" string");
        if (bos >= 0) seq_push(s, bos, 1);
        if ((st = seq_text(s, tok, text, 1, err))) return st;
        if (eos >= 0) seq_push(s, eos, 1);
        return RL_OK;
    }
    case RL_DS_INPUT_OUTPUT: {
        json_t *segs = json_object_get(o, "segments");
        if (!json_is_array(segs)) return rl_fail(err, RL_EFORMAT, "no \"segments\" list");
        size_t i;
        json_t *sg;
        json_array_foreach(segs, i, sg) {
            const char *text = jstr(sg, "text");
            json_t *label = json_object_get(sg, "label");
            if (!text || (label && !json_is_boolean(label)))
                return rl_fail(err, RL_EFORMAT, "segment %zu needs \"text\" (string) and \"label\" (bool)", i);
            if ((st = seq_text(s, tok, text, !label || json_is_true(label) || train_inputs, err))) return st;
        }
        return RL_OK;
    }
    case RL_DS_PROMPT_COMPLETION:
    case RL_DS_ALPACA:
    case RL_DS_RAFT: {
        const char *prompt, *answer;
        char *owned = NULL;
        if (type == RL_DS_PROMPT_COMPLETION) {
            prompt = jstr(o, "prompt"), answer = jstr(o, "completion");
            if (!prompt || !answer) return rl_fail(err, RL_EFORMAT, "needs \"prompt\" and \"completion\" strings");
        } else if (type == RL_DS_ALPACA) {
            const char *ins = jstr(o, "instruction"), *in = jstr(o, "input");
            answer = jstr(o, "output");
            if (!ins || !answer) return rl_fail(err, RL_EFORMAT, "needs \"instruction\" and \"output\" strings");
            prompt = owned = in && *in ? rl_xasprintf(ALPACA_IN, ins, in) : rl_xasprintf(ALPACA_NOIN, ins);
        } else {
            prompt = jstr(o, "instruction"), answer = jstr(o, "cot_answer");
            if (!prompt || !answer) return rl_fail(err, RL_EFORMAT, "needs \"instruction\" and \"cot_answer\" strings");
            if (rl_tok_chat_family(tok) != RL_CHAT_UNKNOWN) { // the model's own chat layout
                rl_chat_msg msgs[1] = {{"user", prompt}};
                char *pre = NULL;
                if ((st = rl_tok_chat_render(tok, msgs, 1, 1, &pre, err))) return st;
                st = seq_text(s, tok, pre, train_inputs, err);
                free(pre);
                if (!st) st = seq_text(s, tok, answer, 1, err);
                if (!st && eos >= 0) seq_push(s, eos, 1);
                return st;
            }
            prompt = owned = rl_xasprintf("%s\n", prompt);
        }
        if (bos >= 0) seq_push(s, bos, train_inputs);
        st = seq_text(s, tok, prompt, train_inputs, err);
        if (!st) st = seq_text(s, tok, answer, 1, err);
        if (!st && eos >= 0) seq_push(s, eos, 1);
        free(owned);
        return st;
    }
    case RL_DS_CHAT: {
        json_t *msgs = json_object_get(o, "messages");
        if (!json_is_array(msgs) || json_array_size(msgs) == 0) return rl_fail(err, RL_EFORMAT, "no \"messages\" list");
        size_t n = json_array_size(msgs);
        rl_chat_msg *m = rl_xcalloc(n, sizeof *m);
        for (size_t i = 0; i < n; i++) {
            json_t *x = json_array_get(msgs, i);
            m[i].role = jstr(x, "role");
            m[i].content = jstr(x, "content");
            if (!m[i].role || !m[i].content) {
                free(m);
                return rl_fail(err, RL_EFORMAT, "message %zu needs \"role\" and \"content\" strings", i);
            }
        }
        // render growing prefixes: the text up to an assistant turn's start is masked, the turn trained
        size_t done = 0; // characters of the final rendering already tokenized
        char *prev = NULL;
        for (size_t i = 0; i < n && !st; i++) {
            if (strcmp(m[i].role, "assistant") != 0) continue;
            char *head = NULL, *full = NULL;
            st = rl_tok_chat_render(tok, m, i, 1, &head, err);
            if (!st) st = rl_tok_chat_render(tok, m, i + 1, 0, &full, err);
            if (!st) {
                size_t hl = strlen(head), fl = strlen(full);
                if (hl < done || fl < hl || strncmp(head, full, hl) != 0)
                    st = rl_fail(err, RL_EUNSUPPORTED, "the chat template does not render turns as a growing prefix");
                else {
                    st = seq_text(s, tok, head + done, train_inputs, err);
                    if (!st) st = seq_text(s, tok, full + hl, 1, err);
                    done = fl;
                }
            }
            free(head);
            free(prev);
            prev = full;
        }
        if (!st) { // anything after the last assistant turn (rare) is masked
            char *all = NULL;
            st = rl_tok_chat_render(tok, m, n, 0, &all, err);
            if (!st && strlen(all) > done) st = seq_text(s, tok, all + done, train_inputs, err);
            free(all);
        }
        free(prev);
        free(m);
        return st;
    }
    case RL_DS_TOKENIZED: {
        json_t *ids = json_object_get(o, "input_ids"), *labels = json_object_get(o, "labels");
        if (!json_is_array(ids)) return rl_fail(err, RL_EFORMAT, "no \"input_ids\" list");
        if (labels && !json_is_array(labels)) return rl_fail(err, RL_EFORMAT, "\"labels\" is not a list");
        if (labels && json_array_size(labels) != json_array_size(ids))
            return rl_fail(err, RL_EFORMAT, "\"labels\" has %zu entries, \"input_ids\" %zu", json_array_size(labels),
                           json_array_size(ids));
        for (size_t i = 0; i < json_array_size(ids); i++) {
            json_t *x = json_array_get(ids, i), *y = labels ? json_array_get(labels, i) : x;
            if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > INT32_MAX || !json_is_integer(y))
                return rl_fail(err, RL_EFORMAT, "input_ids[%zu] / labels[%zu] must be non-negative integers (or -100)", i, i);
            json_int_t lv = json_integer_value(y);
            if (lv != -100 && lv != json_integer_value(x))
                return rl_fail(err, RL_EFORMAT, "labels[%zu] is %lld: labels must equal input_ids or be -100", i, (long long)lv);
            seq_push(s, (int32_t)json_integer_value(x), lv != -100);
        }
        return RL_OK;
    }
    }
    return rl_fail(err, RL_EINVAL, "unknown dataset type");
}

rl_status rl_dataset_load(rl_dataset *ds, const char *path, rl_ds_type type, const rl_tokenizer *tok,
                          int train_on_inputs, int max_len, int vocab_size, rl_error *err) {
    char *text = NULL;
    size_t len = 0;
    rl_status st = rl_file_read(path, 0, &text, &len, err);
    if (st) return st;
    size_t line = 0;
    char *p = text, *end = text + len;
    while (p < end && !st) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
        line++;
        size_t k = 0;
        while (k < ll && (p[k] == ' ' || p[k] == '\t' || p[k] == '\r')) k++;
        if (k < ll) {
            json_error_t jerr;
            json_t *o = json_loadb(p, ll, 0, &jerr);
            seq s = {0};
            if (!o) st = rl_fail(err, RL_EFORMAT, "%s:%zu: invalid JSON: %s", path, line, jerr.text);
            else if ((st = example_from_json(&s, o, type, tok, train_on_inputs, err))) rl_error_prefix(err, "%s:%zu", path, line);
            for (int i = 0; !st && i < s.n; i++)
                if (vocab_size > 0 && s.ids[i] >= vocab_size)
                    st = rl_fail(err, RL_EFORMAT, "%s:%zu: token id %d is outside the model's vocabulary (%d)", path, line,
                                 s.ids[i], vocab_size);
            json_decref(o);
            if (!st) {
                int trained = 0;
                for (int i = 1; i < s.n; i++) trained += s.labels[i] >= 0;
                if (s.n < 2 || trained == 0) ds->n_empty++;
                else if (max_len > 0 && s.n > max_len) ds->n_dropped++;
                else {
                    if (ds->n == ds->cap) {
                        ds->cap = ds->cap ? 2 * ds->cap : 64;
                        ds->ex = rl_xrealloc(ds->ex, ds->cap * sizeof *ds->ex);
                    }
                    ds->ex[ds->n++] = (rl_example){s.ids, s.labels, s.n};
                    s.ids = s.labels = NULL;
                }
            }
            free(s.ids);
            free(s.labels);
        }
        p += ll + 1;
    }
    free(text);
    if (!st && (ds->n_dropped || ds->n_empty))
        rl_info("%s: %zu examples; %zu longer than %d tokens dropped, %zu with nothing to learn skipped", path, ds->n,
                ds->n_dropped, max_len, ds->n_empty);
    return st;
}

void rl_dataset_free(rl_dataset *ds) {
    for (size_t i = 0; i < ds->n; i++) {
        free(ds->ex[i].ids);
        free(ds->ex[i].labels);
    }
    free(ds->ex);
    memset(ds, 0, sizeof *ds);
}

void rl_dataset_split(rl_dataset *all, rl_dataset *val, double val_size, uint64_t seed) {
    memset(val, 0, sizeof *val);
    size_t nv = val_size >= 1.0 ? (size_t)val_size : (size_t)(val_size * (double)all->n + 0.5);
    if (val_size > 0 && val_size < 1.0 && nv == 0 && all->n > 1) nv = 1;
    if (nv >= all->n) nv = all->n > 0 ? all->n - 1 : 0;
    if (!nv) return;
    // a seeded shuffle, then the last nv examples are the validation split
    uint64_t s = seed ^ 0x5eedull;
    for (size_t i = all->n - 1; i > 0; i--) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        size_t j = (size_t)((s >> 33) % (i + 1));
        rl_example t = all->ex[i];
        all->ex[i] = all->ex[j];
        all->ex[j] = t;
    }
    val->ex = rl_xmalloc(nv * sizeof *val->ex);
    memcpy(val->ex, all->ex + all->n - nv, nv * sizeof *val->ex);
    val->n = val->cap = nv;
    all->n -= nv;
}

/* ---- batches ------------------------------------------------------------------------------ */

void rl_batch_free(rl_batch *b) {
    free(b->tokens);
    memset(b, 0, sizeof *b);
}

/* Builds the rows of a batch from an ordered list of examples: packed (several examples per
 * row of T tokens, positions restarting and attention kept within each) or one per row. */
size_t rl_batch_build(rl_batch *b, const rl_dataset *ds, const size_t *order, size_t n_order, size_t start, int B,
                      int T, int packed) {
    if (!packed) { // one example per row: rows as long as the longest of them
        int longest = 1;
        for (size_t k = start; k < n_order && k < start + (size_t)B; k++)
            if (ds->ex[order[k]].n > longest) longest = ds->ex[order[k]].n;
        T = longest < T ? longest : T;
    }
    size_t need = (size_t)B * T;
    if (b->cap < need) {
        free(b->tokens);
        b->tokens = rl_xmalloc(4 * need * sizeof(int));
        b->cap = need;
    }
    b->targets = b->tokens + need;
    b->pos = b->tokens + 2 * need;
    b->seg = b->tokens + 3 * need;
    b->B = B;
    b->T = T;
    b->n_valid = 0;
    size_t i = start;
    for (int r = 0; r < B; r++) {
        int *tok = b->tokens + (size_t)r * T, *tgt = b->targets + (size_t)r * T, *pos = b->pos + (size_t)r * T,
            *seg = b->seg + (size_t)r * T;
        int used = 0, sid = 0;
        while (i < n_order) {
            const rl_example *e = &ds->ex[order[i]];
            if (e->n > T) { // cannot happen when loading dropped long examples; skip defensively
                i++;
                continue;
            }
            if (used + e->n > T) break;
            for (int t = 0; t < e->n; t++) {
                tok[used + t] = e->ids[t];
                tgt[used + t] = t + 1 < e->n ? e->labels[t + 1] : -100;
                pos[used + t] = t;
                seg[used + t] = sid;
            }
            used += e->n;
            sid++;
            i++;
            if (!packed) break;
        }
        for (int t = used; t < T; t++) tok[t] = 0, tgt[t] = -100, pos[t] = t, seg[t] = sid; // padding
    }
    for (size_t k = 0; k < need; k++) b->n_valid += b->targets[k] >= 0;
    return i;
}
