/* test_tokenizer.c - src/tokenizer against reference ids: llama2.c's encode() for tok512.bin,
 * @huggingface/tokenizers for the tokenizer.json files (fixtures made by
 * scripts/tokenizer-fixtures.sh), plus decoding, streaming and hostile files. */
#include "test.h"

#include <jansson.h>
#include <unistd.h>

#include "tokenizer/tokenizer.h"

static char *fixture(const char *name) { return t_fmt("%s/tests/fixtures/tokenizer/%s", t_root(), name); }

static rl_tokenizer *load_tok512(void) {
    const char *shared = t_shared();
    if (!shared) SKIP("../shared is absent (needs models/stories260K/tok512.bin)");
    char *path = t_fmt("%s/models/stories260K/tok512.bin", shared);
    rl_tokenizer *tok = NULL;
    rl_error err = {0};
    rl_status st = rl_tok_load(&tok, path, &err);
    CHECK_MSG(st == RL_OK, "load %s: %s", path, err.msg);
    free(path);
    if (!tok) exit(1);
    return tok;
}

static int ids_equal(const int32_t *a, size_t na, json_t *ref) {
    if (!json_is_array(ref) || json_array_size(ref) != na) return 0;
    for (size_t i = 0; i < na; i++)
        if (json_integer_value(json_array_get(ref, i)) != a[i]) return 0;
    return 1;
}

static void print_ids(const char *label, const int32_t *a, size_t n) {
    fprintf(stderr, "      %s: [", label);
    for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, i ? ",%d" : "%d", a[i]);
    fprintf(stderr, "%s]\n", n > 40 ? ",..." : "");
}

TEST(tok_llama2c_hand_checked) {
    rl_tokenizer *tok = load_tok512();
    CHECK_EQ_INT(rl_tok_vocab_size(tok), 512);
    CHECK_EQ_INT(rl_tok_bos(tok), 1);
    CHECK_EQ_INT(rl_tok_eos(tok), 2);
    CHECK_EQ_INT(rl_tok_kind_of(tok), RL_TOK_LLAMA2C);
    int32_t *ids;
    size_t n;
    rl_error err;
    /* " He" "ll" "o" " w" "or" "ld": the dummy-prefix space merges into " He" */
    CHECK_OK(rl_tok_encode(tok, "Hello world", 11, 1, &ids, &n, &err));
    int32_t want[] = {1, 346, 306, 414, 263, 304, 341, 2};
    CHECK_EQ_INT(n, 8);
    for (size_t i = 0; i < n && i < 8; i++) CHECK_EQ_INT(ids[i], want[i]);
    size_t pl;
    const char *p = rl_tok_piece(tok, 346, &pl);
    CHECK(p && pl == 3 && memcmp(p, " He", 3) == 0);
    char *text;
    size_t tl;
    CHECK_OK(rl_tok_decode(tok, ids, n, 1, &text, &tl, &err));
    CHECK_EQ_STR(text, "Hello world");
    free(text);
    free(ids);
    /* a character missing from the 512-piece vocabulary falls back to bytes: id = byte + 3 */
    CHECK_OK(rl_tok_encode(tok, "\xE4\xBD\xA0", 3, 0, &ids, &n, &err));
    CHECK(n >= 3);
    CHECK_EQ_INT(ids[n - 3], 0xE4 + 3);
    CHECK_EQ_INT(ids[n - 1], 0xA0 + 3);
    CHECK_OK(rl_tok_decode(tok, ids, n, 1, &text, &tl, &err));
    CHECK_EQ_STR(text, "\xE4\xBD\xA0");
    free(text);
    free(ids);
    rl_tok_free(tok);
}

TEST(tok_llama2c_matches_reference_encoder) {
    rl_tokenizer *tok = load_tok512();
    char *path = fixture("llama2c_tok512.jsonl");
    FILE *f = fopen(path, "r");
    CHECK_MSG(f != NULL, "missing %s (scripts/llama2c-reference.sh makes it)", path);
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    int n_lines = 0, bad = 0;
    while (getline(&line, &cap, f) > 0) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        CHECK(o != NULL);
        if (!o) break;
        json_t *js = json_object_get(o, "text");
        const char *s = json_string_value(js);
        size_t sl = json_string_length(js);
        int32_t *ids;
        size_t n;
        rl_error err;
        for (int bos = 0; bos < 2; bos++) {
            CHECK_OK(rl_tok_encode(tok, s, sl, bos, &ids, &n, &err));
            /* llama2.c's run.c encodes with bos=1, eos=0; ours adds EOS too with add_special */
            size_t cmp = bos ? n - 1 : n;
            if (!ids_equal(ids, cmp, json_object_get(o, bos ? "bos" : "ids"))) {
                if (bad++ < 5) {
                    fprintf(stderr, "    mismatch for %s (bos=%d)\n", line, bos);
                    print_ids("ours", ids, n);
                }
            }
            if (bos) CHECK_EQ_INT(ids[n - 1], 2);
            free(ids);
        }
        /* round trip: the vocabulary has byte fallback, so decoding gives the text back */
        CHECK_OK(rl_tok_encode(tok, s, sl, 1, &ids, &n, &err));
        char *text;
        size_t tl;
        CHECK_OK(rl_tok_decode(tok, ids, n, 1, &text, &tl, &err));
        CHECK_MSG(tl == sl && memcmp(text, s, sl) == 0, "round trip of %s gave \"%s\"", line, text);
        free(text);
        free(ids);
        json_decref(o);
        n_lines++;
    }
    free(line);
    fclose(f);
    CHECK_MSG(n_lines >= 300, "only %d reference strings", n_lines);
    CHECK_MSG(bad == 0, "%d of %d strings differ from llama2.c", bad, n_lines);
    rl_tok_free(tok);
    free(path);
}
