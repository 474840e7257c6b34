/* rag.c - prompts for answers from the knowledge base, shared by the server and `raftlm ask`
 * (see serve.h). The layout must stay the one train/data.c builds for "raft" datasets, so that
 * the model sees at answer time what it was fine-tuned on. */
#include <stdlib.h>
#include <string.h>

#include "serve/serve.h"

rl_status rl_prompt_tokenize(const rl_tokenizer *tok, int bos, const char *text, int add_bos, int32_t **ids, size_t *n,
                             rl_error *err) {
    int32_t *v = NULL;
    size_t k = 0;
    *ids = NULL;
    *n = 0;
    rl_status st = rl_tok_encode(tok, text, strlen(text), 0, &v, &k, err);
    if (st) return st;
    if (rl_tok_bos(tok) >= 0) bos = rl_tok_bos(tok);
    if (add_bos && bos >= 0) {
        v = rl_xrealloc(v, (k + 1) * sizeof *v);
        memmove(v + 1, v, k * sizeof *v);
        v[0] = bos;
        k++;
    }
    *ids = v;
    *n = k;
    return RL_OK;
}

rl_status rl_chat_prompt(const rl_tokenizer *tok, int bos, const rl_chat_msg *msgs, size_t n, int32_t **ids,
                         size_t *n_ids, rl_error *err) {
    char *text = NULL;
    int add_bos = 0;
    if (rl_tok_chat_family(tok) != RL_CHAT_UNKNOWN) {
        rl_status st = rl_tok_chat_render(tok, msgs, n, 1, &text, err);
        if (st) return st;
    } else {
        rl_buf b = {0};
        for (size_t i = 0; i < n; i++) {
            if (i) rl_buf_puts(&b, "\n\n");
            rl_buf_puts(&b, msgs[i].content ? msgs[i].content : "");
        }
        text = b.data ? rl_buf_take(&b) : rl_xstrdup("");
        add_bos = 1;
    }
    rl_status st = rl_prompt_tokenize(tok, bos, text, add_bos, ids, n_ids, err);
    free(text);
    return st;
}

rl_status rl_rag_prompt(const rl_tokenizer *tok, int bos, rl_store *store, const char *question, int k, int32_t **ids,
                        size_t *n_ids, rl_hit **hits, size_t *n_hits, rl_error *err) {
    *hits = NULL;
    *n_hits = 0;
    *ids = NULL;
    *n_ids = 0;
    rl_status st = store ? rl_search_bm25(store, question, k, hits, n_hits, err) : RL_OK;
    if (!st) st = rl_rag_prompt_hits(tok, bos, *hits, *n_hits, question, ids, n_ids, err);
    if (st) {
        rl_hits_free(*hits, *n_hits);
        *hits = NULL;
        *n_hits = 0;
    }
    return st;
}

rl_status rl_rag_prompt_hits(const rl_tokenizer *tok, int bos, const rl_hit *hits, size_t n_hits, const char *question, int32_t **ids,
                             size_t *n_ids, rl_error *err) {
    *ids = NULL;
    *n_ids = 0;
    rl_status st = RL_OK;
    const char **docs = rl_xcalloc(n_hits + 1, sizeof *docs);
    for (size_t i = 0; i < n_hits; i++) docs[i] = hits[i].text ? hits[i].text : "";
    char *ins = rl_raft_prompt(docs, (int)n_hits, question), *text = NULL;
    free(docs);
    int add_bos = 0;
    if (rl_tok_chat_family(tok) != RL_CHAT_UNKNOWN) {
        rl_chat_msg one = {"user", ins};
        st = rl_tok_chat_render(tok, &one, 1, 1, &text, err);
    } else {
        text = rl_xasprintf("%s\n", ins);
        add_bos = 1;
    }
    free(ins);
    if (!st) st = rl_prompt_tokenize(tok, bos, text, add_bos, ids, n_ids, err);
    free(text);
    return st;
}
