/* verify.c - checks a teacher's answer against its oracle chunk, and MinHash signatures for
 * near-duplicate questions.
 *
 * A chain-of-thought answer is accepted when it has at least one quote, every quote appears
 * verbatim in the chunk (whitespace-normalised: the teacher may re-wrap lines), it ends with a
 * final answer after "<ANSWER>:", and every figure of that final answer appears in the chunk
 * (a teacher that "computes" or invents a number is rejected). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "synth/synth.h"

#define BEGIN_QUOTE "##begin_quote##"
#define END_QUOTE "##end_quote##"
#define ANSWER_TAG "<ANSWER>:"

static int chunk_has_number(const char *chunk, const char *num) {
    size_t i = 0;
    char buf[64];
    while (rl_text_next_number(chunk, &i, buf, sizeof buf))
        if (strcmp(buf, num) == 0) return 1;
    return 0;
}

void rl_verify_answer(const char *cot, const char *chunk, rl_verdict *v) {
    memset(v, 0, sizeof *v);
    const char *tag = NULL;
    for (const char *p = strstr(cot, ANSWER_TAG); p; p = strstr(p + 1, ANSWER_TAG)) tag = p;
    if (tag) {
        const char *a = tag + strlen(ANSWER_TAG);
        v->final_answer = rl_text_normalize_ws(a, strlen(a));
    }
    if (!v->final_answer || !v->final_answer[0]) {
        v->reason = "no_final_answer";
        snprintf(v->detail, sizeof v->detail, "no text after %s", ANSWER_TAG);
        return;
    }
    int quotes = 0;
    const char *p = cot;
    for (;;) {
        const char *b = strstr(p, BEGIN_QUOTE);
        if (!b) break;
        const char *q = b + strlen(BEGIN_QUOTE);
        const char *e = strstr(q, END_QUOTE);
        const char *nb = strstr(q, BEGIN_QUOTE);
        if (!e || (nb && nb < e)) {
            v->reason = "unbalanced_quote";
            snprintf(v->detail, sizeof v->detail, "%s without %s", BEGIN_QUOTE, END_QUOTE);
            return;
        }
        char *quote = rl_xstrndup(q, (size_t)(e - q));
        char *nq = rl_text_normalize_ws(quote, strlen(quote));
        int ok = nq[0] && rl_text_contains_normalized(chunk, nq);
        if (!ok) {
            v->reason = nq[0] ? "quote_not_in_chunk" : "empty_quote";
            snprintf(v->detail, sizeof v->detail, "%.200s", nq);
        }
        free(quote);
        free(nq);
        if (!ok) return;
        quotes++;
        p = e + strlen(END_QUOTE);
    }
    if (!quotes) {
        v->reason = "no_quote";
        snprintf(v->detail, sizeof v->detail, "the answer quotes nothing between %s and %s", BEGIN_QUOTE, END_QUOTE);
        return;
    }
    size_t i = 0;
    char num[64];
    while (rl_text_next_number(v->final_answer, &i, num, sizeof num))
        if (!chunk_has_number(chunk, num)) {
            v->reason = "answer_figure_not_in_chunk";
            snprintf(v->detail, sizeof v->detail, "%s is not in the document", num);
            return;
        }
    v->ok = 1;
    v->reason = "accepted";
}

/* ---- MinHash -------------------------------------------------------------------------------- */

static uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

void rl_minhash(const char *text, uint32_t sig[RL_MINHASH_K]) {
    for (int k = 0; k < RL_MINHASH_K; k++) sig[k] = UINT32_MAX;
    /* lower-cased words */
    uint64_t words[256];
    int n = 0;
    for (const char *p = text; *p && n < 256;) {
        while (*p && !isalnum((unsigned char)*p) && (unsigned char)*p < 0x80) p++;
        if (!*p) break;
        char w[64];
        size_t l = 0;
        while (*p && (isalnum((unsigned char)*p) || (unsigned char)*p >= 0x80)) {
            if (l + 1 < sizeof w) w[l++] = (char)tolower((unsigned char)*p);
            p++;
        }
        words[n++] = rl_hash64(w, l);
    }
    int shingle = n >= 3 ? 3 : 1;
    for (int i = 0; i + shingle <= n; i++) {
        uint64_t h = 0;
        for (int k = 0; k < shingle; k++) h = mix64(h ^ words[i + k]);
        for (int k = 0; k < RL_MINHASH_K; k++) {
            uint32_t v = (uint32_t)(mix64(h + 0x9e3779b97f4a7c15ull * (uint64_t)(k + 1)) >> 32);
            if (v < sig[k]) sig[k] = v;
        }
    }
}

double rl_minhash_similarity(const uint32_t *a, const uint32_t *b) {
    int same = 0;
    for (int k = 0; k < RL_MINHASH_K; k++) same += a[k] == b[k] && a[k] != UINT32_MAX;
    return same / (double)RL_MINHASH_K;
}
