/* embeddings.c - POST /v1/embeddings in OpenAI's shape, with the embedder retrieval uses (so a
 * client's vectors are comparable with the index's, prefixes included: an input is embedded as a
 * passage unless "raftlm": {"kind": "query"} says otherwise).
 *
 * Request: input (a string, an array of strings, an array of token ids, or an array of such
 * arrays: the model's own ids, used as given), model (any string: this server has one
 * embedder), encoding_format "float" (default) or "base64" (little-endian float32, what the
 * official clients ask for by default), dimensions (only the model's own), user (ignored).
 * Limits: 2048 inputs, each non-empty; longer texts are cut to the model's max tokens (OpenAI
 * refuses them instead; cutting is what sentence-transformers does). */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve_internal.h"

#define MAX_INPUTS 2048

static enum MHD_Result bad(rl_server *s, struct MHD_Connection *c, srv_req_info *ri, const char *code, const char *msg) {
    return srv_error(s, c, ri, 400, "invalid_request_error", code, msg);
}

/* 1: a non-empty array of integers */
static int is_token_array(json_t *a) {
    if (!json_is_array(a) || json_array_size(a) == 0) return 0;
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) if (!json_is_integer(v)) return 0;
    return 1;
}

enum MHD_Result api_embeddings(rl_server *s, struct MHD_Connection *c, json_t *root, srv_req_info *ri) {
    rl_embedder *e = s->o.embedder;
    if (!e)
        return srv_error(s, c, ri, 404, "invalid_request_error", "no_embedding_model",
                         "this server has no embedding model (set retrieval.embedding_model or --embedding-model)");
    json_t *model = json_object_get(root, "model");
    if (!json_is_string(model)) return bad(s, c, ri, "invalid_type", "'model' must be a string");
    json_t *fmt = json_object_get(root, "encoding_format");
    int b64 = 0;
    if (fmt && !json_is_null(fmt)) {
        const char *f = json_string_value(fmt);
        if (!f || (strcmp(f, "float") != 0 && strcmp(f, "base64") != 0))
            return bad(s, c, ri, "invalid_value", "'encoding_format' must be \"float\" or \"base64\"");
        b64 = strcmp(f, "base64") == 0;
    }
    int dim = rl_embedder_dim(e);
    json_t *dims = json_object_get(root, "dimensions");
    if (dims && !json_is_null(dims) && !(json_is_integer(dims) && json_integer_value(dims) == dim)) {
        char msg[160];
        snprintf(msg, sizeof msg, "'dimensions' is not supported: this model's embeddings have %d dimensions (omit it, or send %d)", dim, dim);
        return bad(s, c, ri, "unsupported_value", msg);
    }
    rl_embed_kind kind = RL_EMBED_PASSAGE;
    json_t *kj = json_object_get(json_object_get(root, "raftlm"), "kind");
    if (kj) {
        const char *k = json_string_value(kj);
        if (!k || (strcmp(k, "query") != 0 && strcmp(k, "passage") != 0))
            return bad(s, c, ri, "invalid_value", "'raftlm.kind' must be \"query\" or \"passage\"");
        kind = k[0] == 'q' ? RL_EMBED_QUERY : RL_EMBED_PASSAGE;
    }
    /* the inputs: texts, or token arrays */
    json_t *in = json_object_get(root, "input");
    json_t *one = NULL;
    if (json_is_string(in) || is_token_array(in)) one = json_array(), json_array_append(one, in), in = one;
    const char *shape_msg = "'input' must be a non-empty string, an array of strings, or an array of token id arrays";
    if (!json_is_array(in) || json_array_size(in) == 0 || json_array_size(in) > MAX_INPUTS) {
        json_decref(one);
        return bad(s, c, ri, "invalid_type", json_is_array(in) && json_array_size(in) > MAX_INPUTS ? "at most 2048 inputs per request" : shape_msg);
    }
    size_t n = json_array_size(in), i;
    json_t *v;
    int texts = json_is_string(json_array_get(in, 0));
    json_array_foreach(in, i, v) {
        int ok = texts ? json_is_string(v) && json_string_length(v) > 0 && strlen(json_string_value(v)) == json_string_length(v)
                       : is_token_array(v);
        if (!ok) {
            json_decref(one);
            return bad(s, c, ri, "invalid_type", shape_msg);
        }
    }
    float *vec = rl_xmalloc(n * (size_t)dim * sizeof *vec);
    int *ntok = rl_xcalloc(n, sizeof *ntok);
    rl_error err = {0};
    rl_status st = RL_OK;
    pthread_mutex_lock(&s->embed_mu);
    if (texts) {
        const char **t = rl_xmalloc(n * sizeof *t);
        json_array_foreach(in, i, v) t[i] = json_string_value(v);
        st = rl_embed_texts(e, kind, t, n, vec, ntok, &err);
        free(t);
    } else {
        for (i = 0; i < n && !st; i++) {
            json_t *a = json_array_get(in, i);
            size_t m = json_array_size(a);
            int32_t *ids = rl_xmalloc(m * sizeof *ids);
            for (size_t j = 0; j < m && !st; j++) {
                json_int_t x = json_integer_value(json_array_get(a, j));
                if (x < 0 || x > INT32_MAX) st = rl_fail(&err, RL_EINVAL, "token id %lld is out of range", (long long)x);
                ids[j] = (int32_t)x;
            }
            if (!st) st = rl_embed_tokens(e, ids, m, vec + i * (size_t)dim, &err);
            int mt = rl_embedder_max_tokens(e);
            ntok[i] = (int)m < mt ? (int)m : mt;
            free(ids);
        }
    }
    pthread_mutex_unlock(&s->embed_mu);
    json_decref(one);
    if (st) {
        free(vec), free(ntok);
        char msg[1100];
        snprintf(msg, sizeof msg, "cannot embed the input: %s", err.msg);
        return st == RL_EINVAL ? bad(s, c, ri, "invalid_value", msg) : srv_error(s, c, ri, 500, "server_error", "embedding_failed", msg);
    }
    json_t *data = json_array();
    long long total = 0;
    size_t b64_cap = 4 * ((size_t)dim * 4 + 2) / 3 + 4;
    unsigned char *b64buf = b64 ? rl_xmalloc(b64_cap) : NULL;
    for (i = 0; i < n; i++) {
        const float *x = vec + i * (size_t)dim;
        json_t *emb;
        if (b64) { /* floats in memory order: this machine is little-endian, as the format wants */
            EVP_EncodeBlock(b64buf, (const unsigned char *)x, dim * 4);
            emb = json_string((const char *)b64buf);
        } else {
            emb = json_array();
            for (int d = 0; d < dim; d++) json_array_append_new(emb, json_real(x[d]));
        }
        json_array_append_new(data, json_pack("{s:s,s:I,s:o}", "object", "embedding", "index", (json_int_t)i, "embedding", emb));
        total += ntok[i];
    }
    free(b64buf), free(vec), free(ntok);
    return srv_json(c, ri, 200,
                    json_pack("{s:s,s:o,s:s,s:{s:I,s:I}}", "object", "list", "data", data, "model", s->o.embedding_name, "usage",
                              "prompt_tokens", (json_int_t)total, "total_tokens", (json_int_t)total));
}
