/* text.c - hashing (SHA-256 via OpenSSL's libcrypto, FNV-1a), UTF-8 checks, edit distance. */
#include "core.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

void rl_sha256(const void *data, size_t len, uint8_t out[32]) {
    unsigned int n = 32;
    int ok = EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
    RL_ASSERT(ok == 1 && n == 32);
}

void rl_sha256_hex(const void *data, size_t len, char out[65]) {
    uint8_t h[32];
    rl_sha256(data, len, h);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[h[i] >> 4];
        out[2 * i + 1] = hex[h[i] & 15];
    }
    out[64] = 0;
}

uint64_t rl_hash64(const void *data, size_t len) {
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

int rl_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) len = 2, v = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, v = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, v = c & 0x07, min = 0x10000;
    else return 0;
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

int rl_utf8_seq_len(const unsigned char *s, size_t n) {
    uint32_t cp;
    return rl_utf8_decode(s, n, &cp);
}

int rl_utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        int l = rl_utf8_seq_len(p + i, n - i);
        if (l == 0) return 0;
        i += (size_t)l;
    }
    return 1;
}

int rl_levenshtein(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    int *row = rl_xmalloc((lb + 1) * sizeof *row);
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    int d = row[lb];
    free(row);
    return d;
}

/* ---- whitespace-normalised text ---------------------------------------------------------- */

/* Collapses whitespace runs to one space and trims; caller frees. */
char *rl_text_normalize_ws(const char *s, size_t n) {
    rl_buf b = {0};
    int space = 0;
    for (size_t i = 0; i < n; i++) {
        if (isspace((unsigned char)s[i])) {
            space = b.len > 0;
            continue;
        }
        if (space) rl_buf_putc(&b, ' ');
        space = 0;
        rl_buf_putc(&b, s[i]);
    }
    return rl_buf_take(&b);
}

int rl_text_contains_normalized(const char *hay, const char *needle) {
    char *h = rl_text_normalize_ws(hay, strlen(hay)), *n = rl_text_normalize_ws(needle, strlen(needle));
    int found = n[0] && strstr(h, n) != NULL;
    free(h);
    free(n);
    return found;
}


int rl_text_next_number(const char *s, size_t *i, char *out, size_t cap) {
    while (s[*i] && !isdigit((unsigned char)s[*i])) (*i)++;
    if (!s[*i]) return 0;
    size_t n = 0;
    while (s[*i] && (isdigit((unsigned char)s[*i]) || ((s[*i] == ',' || s[*i] == '.') && isdigit((unsigned char)s[*i + 1])))) {
        if (s[*i] != ',' && n + 1 < cap) out[n++] = s[*i];
        (*i)++;
    }
    out[n] = 0;
    char *dot = strchr(out, '.');
    if (dot) { /* "1500.00" and "1500" are one number */
        char *e = out + strlen(out);
        while (e > dot + 1 && e[-1] == '0') *--e = 0;
        if (e == dot + 1) *dot = 0;
    }
    return 1;
}
