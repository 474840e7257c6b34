/* test_gguf.c - GGUF: ggml block formats against independently computed values, writing and
 * reading models (stories260K and the Qwen2 fixture) with the same outputs, damaged files. */
#include "test.h"

#include <jansson.h>
#include <math.h>

#include "cli/cli.h"

#include "model/gguf.h"
#include "model/model.h"
#include "model/safetensors.h"

TEST(gguf_block_formats_dequantize) {
    rl_st_file f;
    rl_error err = {0};
    CHECK_OK(rl_st_open(&f, t_fmt("%s/tests/fixtures/engine/ggml_blocks.safetensors", t_root()), &err));
    struct { const char *name; int type; } types[] = {
        {"q8_0", RL_GGML_Q8_0}, {"q4_0", RL_GGML_Q4_0}, {"q4_k", RL_GGML_Q4_K}, {"q6_k", RL_GGML_Q6_K}};
    for (int i = 0; i < 4; i++) {
        const rl_st_tensor *b = rl_st_find(&f, t_fmt("%s.bytes", types[i].name)), *v = rl_st_find(&f, t_fmt("%s.values", types[i].name));
        RL_ASSERT(b && v && b->dtype == RL_ST_I32);
        uint8_t *bytes = rl_xmalloc(b->numel);
        for (size_t k = 0; k < b->numel; k++) {
            int32_t x;
            memcpy(&x, b->data + 4 * k, 4);
            bytes[k] = (uint8_t)x;
        }
        float *want = rl_xmalloc(v->numel * 4), *got = rl_xmalloc(v->numel * 4);
        CHECK_OK(rl_st_tensor_to_f32(v, want, &err));
        int ok;
        size_t rb = rl_ggml_row_bytes(types[i].type, (int64_t)v->numel, &ok);
        CHECK(ok && rb == b->numel);
        rl_ggml_dequant(types[i].type, bytes, got, v->numel);
        double worst = 0, mx = 0;
        for (size_t k = 0; k < v->numel; k++) {
            worst = fmax(worst, fabs((double)got[k] - want[k]));
            mx = fmax(mx, fabs(want[k]));
        }
        fprintf(stderr, "    %s: %zu values, max rel diff %.1e (tol 1e-6)\n", types[i].name, v->numel, worst / mx);
        CHECK(worst <= 1e-6 * mx);
        free(bytes), free(want), free(got);
    }
    rl_st_close(&f);
    // Q8_0 quantization round trip stays within half a step of each block's scale
    float x[64], y[64];
    uint8_t q[68];
    for (int i = 0; i < 64; i++) x[i] = sinf(i * 0.7f) * (i < 32 ? 1.0f : 0.01f);
    rl_ggml_quant_q8_0(q, x, 64);
    rl_ggml_dequant(RL_GGML_Q8_0, q, y, 64);
    for (int i = 0; i < 64; i++) CHECK(fabsf(x[i] - y[i]) <= (i < 32 ? 1.0f : 0.01f) / 127.0f * 0.51f + 1e-6f);
}

static char *stories(const char *file) {
    const char *sh = t_shared();
    char *p = sh ? t_fmt("%s/models/stories260K/%s", sh, file) : NULL;
    return p && rl_path_exists(p) ? p : NULL;
}

static double mean_nll(const char *model, const char *tokens) {
    char *out = NULL;
    if (!tokens || !*tokens) tokens = "1,403,407,261,378,432,383,286,261,376,298,315,421,395";
    int rc = t_run(t_fmt("%s score --model %s --tokens %s --json 2>/dev/null", t_bin(), model, tokens), &out, 0);
    const char *p = rc == 0 && out ? strstr(out, "\"mean_nll\":") : NULL;
    double v = p ? strtod(p + 11, NULL) : NAN;
    free(out);
    return v;
}

TEST(gguf_stories260k_roundtrip_same_text_and_nll) {
    char *bin = stories("stories260K.bin"), *tok = stories("tok512.bin"), *ref = stories("reference_greedy_200.txt");
    if (!bin || !tok || !ref) SKIP("../shared/models/stories260K is not here");
    char *dir = t_tmpdir(), *want = NULL;
    size_t wl;
    rl_error err;
    CHECK_OK(rl_file_read(ref, 0, &want, &wl, &err));
    double base = mean_nll(bin, "");
    const char *types[] = {"f32", "f16", "q8_0"};
    for (int i = 0; i < 3; i++) {
        char *g = t_fmt("%s/s.%s.gguf", dir, types[i]), *out = NULL;
        CHECK_EQ_INT(t_run(t_fmt("%s convert %s %s --to gguf --type %s --tokenizer %s 2>/dev/null", t_bin(), bin, g, types[i], tok), NULL, 0), 0);
        double nll = mean_nll(g, "");
        fprintf(stderr, "    GGUF %s: mean NLL %.6f (llama2.c file %.6f)\n", types[i], nll, base);
        if (i == 0) CHECK(nll == base); // F32: the same numbers
        else CHECK(fabs(nll - base) < (i == 1 ? 1e-3 : 1e-2)); // nats: F16 and Q8_0 round the weights
        if (i < 2) { // F32 and F16 give llama2.c's greedy text; the GGUF's own vocabulary decodes it
            CHECK_EQ_INT(t_run(t_fmt("%s generate --model %s --tokenizer %s --temp 0 -n 200 2>/dev/null", t_bin(), g, g), &out, 0), 0);
            CHECK_EQ_STR(out, want);
            free(out);
        }
    }
    // the HF folder made from the GGUF scores like the original (permutations undone and redone)
    CHECK_EQ_INT(t_run(t_fmt("%s convert %s/s.f32.gguf %s/hf --to hf 2>/dev/null", t_bin(), dir, dir), NULL, 0), 0);
    CHECK(mean_nll(t_fmt("%s/hf", dir), "") == base);
    free(want);
}

TEST(gguf_qwen2_bias_roundtrip) {
    char *fx = t_fmt("%s/tests/fixtures/engine/qwen2_bias", t_root()), *dir = t_tmpdir();
    CHECK_EQ_INT(t_run(t_fmt("%s convert %s %s/q.gguf --to gguf 2>/dev/null", t_bin(), fx, dir), NULL, 0), 0);
    const char *toks = "1,5,9,33,17,42,8,60,3,11";
    double a = mean_nll(fx, toks), b = mean_nll(t_fmt("%s/q.gguf", dir), toks);
    fprintf(stderr, "    qwen2 HF %.7f, GGUF %.7f\n", a, b);
    CHECK(a == b && !isnan(a));
    rl_gguf g;
    rl_error err;
    CHECK_OK(rl_gguf_open(&g, t_fmt("%s/q.gguf", dir), &err));
    char arch[16];
    CHECK(rl_gguf_get_str(&g, "general.architecture", arch, sizeof arch));
    CHECK_EQ_STR(arch, "qwen2");
    CHECK(rl_gguf_find_tensor(&g, "blk.1.attn_q.bias") != NULL);
    CHECK(rl_gguf_find_tensor(&g, "output.weight") == NULL); // tied
    rl_gguf_close(&g);
}

TEST(gguf_damaged_files) {
    char *fx = t_fmt("%s/tests/fixtures/engine/gqa_tied", t_root()), *dir = t_tmpdir();
    char *good = t_fmt("%s/m.gguf", dir);
    CHECK_EQ_INT(t_run(t_fmt("%s convert %s %s --to gguf --type q8_0 2>/dev/null", t_bin(), fx, good), NULL, 0), 0);
    char *data = NULL;
    size_t len;
    rl_error err;
    CHECK_OK(rl_file_read(good, 0, &data, &len, &err));
    rl_model m;
    CHECK_OK(rl_model_load(&m, good, &err));
    rl_model_free(&m);
    // every truncation is an error, never a crash
    int errors = 0, cuts = 0;
    for (size_t cut = 0; cut < len; cut += len / 97 + 1, cuts++) {
        t_write(dir, "cut.gguf", data, cut);
        rl_status s = rl_model_load(&m, t_fmt("%s/cut.gguf", dir), &err);
        if (s == RL_OK) rl_model_free(&m);
        else errors++;
    }
    CHECK_EQ_INT(errors, cuts);
    // lying counts and types
    char *bad = rl_xmalloc(len);
    struct { size_t at; uint8_t val; } lies[] = {{8, 0xff}, {15, 0x7f}, {16, 0xff}, {23, 0x40}, {4, 9}};
    for (size_t i = 0; i < sizeof lies / sizeof lies[0]; i++) {
        memcpy(bad, data, len);
        bad[lies[i].at] = (char)lies[i].val;
        t_write(dir, "lie.gguf", bad, len);
        rl_status s = rl_model_load(&m, t_fmt("%s/lie.gguf", dir), &err);
        CHECK_MSG(s != RL_OK, "lie %zu accepted", i);
        if (s == RL_OK) rl_model_free(&m);
    }
    // a size too large for an int (3.5e9 as u32; converting it was undefined behaviour, found by
    // fuzz/fuzz_model_file.c) is a clear error
    const char *key = "llama.embedding_length";
    char *at = memmem(data, len, key, strlen(key));
    CHECK(at != NULL);
    if (at) {
        memcpy(bad, data, len);
        size_t off = (size_t)(at - data) + strlen(key);
        uint32_t type, huge = 3500000000u;
        memcpy(&type, bad + off, 4);
        CHECK_EQ_INT((int)type, 4); // GGUF u32
        memcpy(bad + off + 4, &huge, 4);
        t_write(dir, "huge.gguf", bad, len);
        CHECK(rl_model_load(&m, t_fmt("%s/huge.gguf", dir), &err) == RL_EFORMAT);
        CHECK_CONTAINS(err.msg, "sizes must be positive");
    }
    // random byte flips anywhere: error or a model, never a crash
    uint64_t rng = 1;
    for (int i = 0; i < 200; i++) {
        memcpy(bad, data, len);
        for (int k = 0; k < 4; k++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            bad[(rng >> 33) % (len < 4096 ? len : 4096)] ^= (char)(rng >> 20);
        }
        t_write(dir, "flip.gguf", bad, len);
        if (rl_model_load(&m, t_fmt("%s/flip.gguf", dir), &err) == RL_OK) rl_model_free(&m);
    }
    free(bad);
    free(data);
}

/* A model written with a byte-level BPE tokenizer.json as its GGUF vocabulary ("gpt2" model,
 * merges, llama.cpp's pre-tokenizer name): the tokenizer read back from the GGUF file (llama.cpp's
 * rules, src/tokenizer/tok_gguf.c) gives the ids of the tokenizer.json on the whole corpus. */
TEST(gguf_writes_a_gpt2_vocabulary_from_tokenizer_json) {
    char *dir = t_tmpdir(), *out;
    CHECK_EQ_INT(t_run(t_fmt("xz -dc %s/tests/fixtures/tokenizer/qwen3/tokenizer.json.xz > %s/tokenizer.json && cp "
                             "%s/tests/fixtures/tokenizer/qwen3/tokenizer_config.json %s/",
                             t_root(), dir, t_root(), dir),
                       &out, 1),
                 0);
    free(out);
    rl_error err = {0};
    rl_tokenizer *tj, *tg;
    CHECK_OK(rl_tok_load(&tj, t_fmt("%s/tokenizer.json", dir), &err));
    rl_model_config c = {.arch = "qwen2", .dim = 32, .hidden_dim = 64, .n_layers = 1, .n_heads = 2, .n_kv_heads = 1,
                         .head_dim = 16, .vocab_size = rl_tok_vocab_size(tj), .max_seq_len = 64, .norm_eps = 1e-6f,
                         .tie_embeddings = 1, .qkv_bias = 1, .bos_id = -1, .eos_id = -1};
    c.rope.theta = 10000.0f;
    rl_model m;
    CHECK_OK(rl_model_init(&m, &c, &err));
    cli_vocab vb;
    CHECK_OK(cli_vocab_load(&vb, dir, c.vocab_size, &err));
    CHECK_EQ_STR(vb.v.model, "gpt2");
    CHECK_EQ_STR(vb.v.pre, "qwen2");
    CHECK(vb.v.n_merges > 150000);
    CHECK_EQ_INT(vb.v.eos, rl_tok_eos(tj));
    CHECK_OK(rl_model_save_gguf(&m, t_fmt("%s/m.gguf", dir), RL_GGML_F16, &vb.v, &err));
    cli_vocab_free(&vb);
    CHECK_OK(rl_tok_load(&tg, t_fmt("%s/m.gguf", dir), &err));
    CHECK_EQ_INT(rl_tok_vocab_size(tg), c.vocab_size);
    CHECK_EQ_INT(rl_tok_eos(tg), rl_tok_eos(tj));
    FILE *f = fopen(t_fmt("%s/tests/fixtures/tokenizer/corpus.jsonl", t_root()), "r");
    RL_ASSERT(f);
    char *line = NULL;
    size_t cap = 0;
    int checked = 0, bad = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *s = json_loads(line, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        const char *text = json_string_value(s);
        size_t len = json_string_length(s);
        int ascii = text != NULL; // a GGUF has no normalizer: compare strings NFC leaves alone (ASCII)
        for (size_t i = 0; ascii && i < len; i++) ascii = (unsigned char)text[i] < 128 && text[i];
        if (ascii) {
            int32_t *a, *b;
            size_t na, nb;
            for (int special = 0; special < 2; special++) { // with specials: add_bos/add_eos written as the tokenizer does
                CHECK_OK(rl_tok_encode(tj, text, len, special, &a, &na, &err));
                CHECK_OK(rl_tok_encode(tg, text, len, special, &b, &nb, &err));
                if (na != nb || memcmp(a, b, na * sizeof *a)) bad++;
                free(a), free(b);
            }
            checked++;
        }
        json_decref(s);
    }
    free(line);
    fclose(f);
    printf("    qwen3 vocabulary through GGUF: %d of %d ASCII corpus strings encode differently\n", bad, checked);
    CHECK(checked > 200);
    CHECK_EQ_INT(bad, 0);
    rl_tok_free(tj);
    rl_tok_free(tg);
    rl_model_free(&m);
}

/* llama.cpp is not part of this repository: with RAFTLM_LLAMA_SIMPLE pointing at a built
 * llama-simple (examples/simple), it loads the stories260K GGUF raftlm writes (each type) and
 * its greedy text is raftlm's. Skips visibly otherwise. */
TEST(gguf_llamacpp_generates_raftlm_greedy_text) {
    const char *ls = getenv("RAFTLM_LLAMA_SIMPLE");
    char *bin = stories("stories260K.bin"), *tok = stories("tok512.bin");
    if (!ls || !*ls) SKIP("set RAFTLM_LLAMA_SIMPLE to a llama-simple binary to run llama.cpp on our GGUF files");
    if (!bin || !tok) SKIP("stories260K is absent (../shared/models/stories260K)");
    char *dir = t_tmpdir(), *ours = NULL, *theirs = NULL;
    const char *types[] = {"f32", "f16", "q8_0", "q4_0"};
    for (int i = 0; i < 4; i++) {
        char *g = t_fmt("%s/s.%s.gguf", dir, types[i]);
        CHECK_EQ_INT(t_run(t_fmt("%s quantize %s %s --type %s --tokenizer %s 2>/dev/null", t_bin(), bin, g, types[i], tok), NULL, 0), 0);
        CHECK_EQ_INT(t_run(t_fmt("%s generate --model %s --tokenizer %s --prompt 'Once upon a time' -n 80 --temp 0 2>/dev/null", t_bin(), g, g), &ours, 0), 0);
        CHECK_EQ_INT(t_run(t_fmt("%s -m %s -n 80 'Once upon a time' 2>/dev/null", ls, g), &theirs, 0), 0);
        // llama-simple prints the prompt's pieces first; compare what follows "Once upon a time"
        const char *a = ours ? ours : "", *b = theirs ? strstr(theirs, "Once upon a time") : NULL;
        b = b ? b + 16 : "";
        size_t n = strlen(a) < strlen(b) ? strlen(a) : strlen(b);
        while (n && (a[n - 1] == '\n' || b[n - 1] == '\n')) n--;
        printf("    %s: raftlm and llama.cpp agree on %zu characters: %.50s...\n", types[i], n, a);
        CHECK_MSG(n > 100 && strncmp(a, b, n) == 0, "%s:\n  raftlm:    %.200s\n  llama.cpp: %.200s", types[i], a, b);
        free(ours), free(theirs);
        ours = theirs = NULL;
    }
}
