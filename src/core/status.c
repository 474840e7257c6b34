/* status.c - error messages, assertions and checked allocation. */
#include "core.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

rl_status rl_fail(rl_error *err, rl_status status, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

void rl_error_prefix(rl_error *err, const char *fmt, ...) {
    if (!err) return;
    char out[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, sizeof out, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    size_t used = (size_t)n < sizeof out - 1 ? (size_t)n : sizeof out - 1;
    size_t room = sizeof out - 1 - used;
    size_t old_len = strlen(err->msg) + 2; /* ": " + message */
    if (old_len > room) old_len = room;
    if (old_len >= 2) {
        memcpy(out + used, ": ", 2);
        memcpy(out + used + 2, err->msg, old_len - 2);
        used += old_len;
    }
    out[used] = 0;
    memcpy(err->msg, out, used + 1);
}

void rl_error_clear(rl_error *err) {
    if (!err) return;
    err->status = RL_OK;
    err->msg[0] = 0;
}

const char *rl_status_name(rl_status status) {
    switch (status) {
    case RL_OK: return "ok";
    case RL_EINVAL: return "invalid argument";
    case RL_EIO: return "I/O error";
    case RL_ENOMEM: return "out of memory";
    case RL_EFORMAT: return "malformed input";
    case RL_ENOTFOUND: return "not found";
    case RL_EUNSUPPORTED: return "unsupported";
    case RL_ECONFIG: return "configuration error";
    case RL_EDB: return "database error";
    case RL_EINTERRUPTED: return "interrupted";
    case RL_EINTERNAL: return "internal error";
    }
    return "unknown status";
}

void rl_assert_fail(const char *cond, const char *file, int line) {
    fprintf(stderr, "raftlm: assertion failed at %s:%d: %s\n", file, line, cond);
    abort();
}

void *rl_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    RL_ASSERT(p != NULL);
    return p;
}

void *rl_xcalloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    RL_ASSERT(p != NULL);
    return p;
}

void *rl_xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    RL_ASSERT(q != NULL);
    return q;
}

void *rl_big_alloc(size_t bytes) {
    const size_t huge = (size_t)2 << 20;
    if (bytes < 2 * huge) return malloc(bytes ? bytes : 1);
    size_t whole = (bytes + huge - 1) / huge * huge; // whole huge pages
    void *p = NULL;
    if (posix_memalign(&p, huge, whole) != 0) return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, whole, MADV_HUGEPAGE);
#endif
    return p;
}

void *rl_big_calloc(size_t count, size_t size) {
    if (size && count > SIZE_MAX / size) return NULL;
    void *p = rl_big_alloc(count * size);
    if (p) memset(p, 0, count * size);
    return p;
}

char *rl_xstrdup(const char *s) { return rl_xstrndup(s, strlen(s)); }

char *rl_xstrndup(const char *s, size_t n) {
    char *p = rl_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *rl_xasprintf(const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    RL_ASSERT(n >= 0);
    char *p = rl_xmalloc((size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return p;
}
