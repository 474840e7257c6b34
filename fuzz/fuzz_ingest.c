/* fuzz_ingest.c - libFuzzer target for the document readers and the chunker: the first byte picks
 * the file type (md, txt, rst, html, jsonl, pdf) and the chunk size, the rest is the file. A file
 * must read or be an error; every document read must be valid UTF-8, and its chunks must keep the
 * chunker's promises (docs/ingest.md): ranges inside the text and in order, no chunk over the size
 * unless it is a single word, and every non-space byte in some chunk. Seeds: files of
 * examples/acme/docs and tests' fixtures with the type byte in front:
 *   make fuzz && build-fuzz/fuzz_ingest -max_total_time=60 CORPUS_DIR SEED_DIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "retrieve/retrieve.h"

static int is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

static void check_chunks(const rl_doc *d, const rl_chunk *c, size_t n, int size) {
    unsigned char *covered = calloc(d->len + 1, 1);
    size_t prev_start = 0;
    for (size_t i = 0; i < n; i++) {
        if (c[i].start > c[i].end || c[i].end > d->len || c[i].start < prev_start) abort();
        prev_start = c[i].start;
        int one_word = 1;
        for (size_t p = c[i].start; p < c[i].end; p++) {
            covered[p] = 1;
            if (is_space(d->text[p])) one_word = 0;
        }
        if (c[i].n_tokens > size && !one_word) {
            fprintf(stderr, "chunk %zu has %d tokens > %d\n", i, c[i].n_tokens, size);
            abort();
        }
    }
    for (size_t p = 0; p < d->len; p++)
        if (!covered[p] && !is_space(d->text[p])) {
            fprintf(stderr, "byte %zu (0x%02x) is in no chunk\n", p, (unsigned char)d->text[p]);
            abort();
        }
    free(covered);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const char *names[] = {"f.md", "f.txt", "f.rst", "f.html", "f.jsonl", "f.pdf"};
    rl_doc_list list = {0};
    rl_error err;
    if (rl_read_document(names[data[0] % 6], (const char *)data + 1, size - 1, &list, &err) == RL_OK) {
        int chunk_size = 8 + (data[0] >> 3) * 4; /* 8..132 tokens */
        rl_chunk_opts o = {.size = chunk_size, .overlap = (data[0] & 1) ? chunk_size / 4 : 0};
        for (size_t i = 0; i < list.n; i++) {
            const rl_doc *d = &list.docs[i];
            if (!rl_utf8_valid(d->text, d->len)) abort();
            rl_chunk *c = NULL;
            size_t n = 0;
            if (rl_chunk_document(d, &o, &c, &n, &err) == RL_OK) {
                check_chunks(d, c, n, chunk_size);
                rl_chunks_free(c, n);
            }
        }
        rl_doc_list_free(&list);
    }
    return 0;
}
