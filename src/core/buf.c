/* buf.c - a growable byte buffer, always NUL-terminated after an append. */
#include "core.h"

#include <stdlib.h>
#include <string.h>

void rl_buf_reserve(rl_buf *b, size_t extra) {
    size_t need = b->len + extra + 1;
    RL_ASSERT(need > b->len);
    if (need <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap = cap * 2 > cap ? cap * 2 : need;
    b->data = rl_xrealloc(b->data, cap);
    b->cap = cap;
}

void rl_buf_append(rl_buf *b, const void *data, size_t n) {
    rl_buf_reserve(b, n);
    if (n) memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = 0;
}

void rl_buf_puts(rl_buf *b, const char *s) { rl_buf_append(b, s, strlen(s)); }
void rl_buf_putc(rl_buf *b, char c) { rl_buf_append(b, &c, 1); }

void rl_buf_printf(rl_buf *b, const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    RL_ASSERT(n >= 0);
    rl_buf_reserve(b, (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    b->len += (size_t)n;
}

void rl_buf_clear(rl_buf *b) {
    b->len = 0;
    if (b->data) b->data[0] = 0;
}

void rl_buf_free(rl_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *rl_buf_take(rl_buf *b) {
    char *p = b->data ? b->data : rl_xstrdup("");
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
