/* core.h - the public door of src/core: status codes and error messages, logging, progress
 * bars, a small thread pool, file helpers (atomic writes, whole-file reads, mmap), hashing,
 * a growable byte buffer and path helpers.
 *
 * Conventions used across raftlm:
 *   - Functions that can fail return rl_status and take an `rl_error *err` (may be NULL) that
 *     receives a human-readable message. There is no global error state.
 *   - Broken invariants use RL_ASSERT (always on, prints file:line, aborts).
 *   - Library code never calls exit().
 */
#ifndef RL_CORE_H
#define RL_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- status and errors ---------------------------------------------------------------- */

typedef enum rl_status {
    RL_OK = 0,
    RL_EINVAL,       /* bad argument or request */
    RL_EIO,          /* the OS said no: open, read, write, rename ... */
    RL_ENOMEM,       /* allocation failed */
    RL_EFORMAT,      /* a file or message is malformed */
    RL_ENOTFOUND,    /* a file, key or record does not exist */
    RL_EUNSUPPORTED, /* valid input we do not handle (yet) */
    RL_ECONFIG,      /* configuration error (message names file:line: key) */
    RL_EDB,          /* the database said no */
    RL_EINTERRUPTED, /* stopped by a signal or a limit */
    RL_EINTERNAL,    /* a bug */
} rl_status;

typedef struct rl_error {
    rl_status status;
    char msg[1024];
} rl_error;

/* Sets err (if not NULL) to status and a printf-style message; returns status so that callers
 * can write `return rl_fail(err, RL_EIO, "cannot open %s: %s", path, strerror(errno));`. */
rl_status rl_fail(rl_error *err, rl_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepends "prefix: " to an existing message (adds context on the way up). */
void rl_error_prefix(rl_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rl_error_clear(rl_error *err);
const char *rl_status_name(rl_status status);

#define RL_ASSERT(cond)                                                                      \
    do {                                                                                     \
        if (!(cond)) rl_assert_fail(#cond, __FILE__, __LINE__);                              \
    } while (0)
_Noreturn void rl_assert_fail(const char *cond, const char *file, int line);

/* Allocation that asserts on failure: for small bookkeeping only. Large buffers whose size
 * comes from input use plain malloc and report RL_ENOMEM. */
void *rl_xmalloc(size_t n);
void *rl_xcalloc(size_t count, size_t size);
void *rl_xrealloc(void *p, size_t n);
char *rl_xstrdup(const char *s);
char *rl_xstrndup(const char *s, size_t n);
char *rl_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Large arrays that are streamed again and again (weights, gradients, optimizer state,
 * activations, packed panels): from 4 MB up they are 2 MB aligned and asked to live on
 * transparent huge pages (MADV_HUGEPAGE; Debian's THP mode is "madvise"), since on 4 KB pages
 * strided reads cost a TLB miss every few rows. A hint: where the kernel says no, only speed
 * changes. NULL when out of memory; release with free(). rl_big_calloc zeroes. */
void *rl_big_alloc(size_t bytes);
void *rl_big_calloc(size_t count, size_t size);

/* ---- logging ---------------------------------------------------------------------------- */

typedef enum rl_log_level { RL_LOG_DEBUG, RL_LOG_INFO, RL_LOG_WARN, RL_LOG_ERROR, RL_LOG_QUIET } rl_log_level;

/* The log level is process-wide (it is a user preference, not state of any computation). */
void rl_log_set_level(rl_log_level level);
rl_log_level rl_log_get_level(void);
/* Parses "debug", "info", "warn", "error", "quiet"; returns -1 when unknown. */
int rl_log_level_parse(const char *name);
void rl_log(rl_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define rl_debug(...) rl_log(RL_LOG_DEBUG, __VA_ARGS__)
#define rl_info(...) rl_log(RL_LOG_INFO, __VA_ARGS__)
#define rl_warn(...) rl_log(RL_LOG_WARN, __VA_ARGS__)
#define rl_errorf(...) rl_log(RL_LOG_ERROR, __VA_ARGS__)

/* ---- progress bar ----------------------------------------------------------------------- */

/* Draws "label [#####     ] 120/500 24% 35.2 it/s ETA 0:11" on stderr, at most ~10 times a
 * second; draws nothing when stderr is not a terminal or the log level is above INFO.
 * total may be 0 when unknown (then no bar or ETA). */
typedef struct rl_progress {
    const char *label;
    const char *unit; /* "files", "MB", ... */
    double total, done;
    double t_start, t_last_draw;
    int enabled, drawn;
} rl_progress;

void rl_progress_start(rl_progress *p, const char *label, const char *unit, double total);
void rl_progress_add(rl_progress *p, double n);
void rl_progress_set_total(rl_progress *p, double total);
void rl_progress_finish(rl_progress *p); /* clears the line */

double rl_now(void); /* monotonic seconds */

/* ---- thread pool ------------------------------------------------------------------------ */

typedef struct rl_pool rl_pool;
/* n_threads <= 0 means one per online CPU. */
rl_pool *rl_pool_create(int n_threads);
void rl_pool_free(rl_pool *pool);
int rl_pool_size(const rl_pool *pool);
/* Runs fn(ctx, i, thread_index) for i in [0, n), spread over the pool's threads (the caller's
 * thread takes part); returns when all are done. Not reentrant from inside fn. */
void rl_pool_for(rl_pool *pool, size_t n, void (*fn)(void *ctx, size_t i, int thread), void *ctx);
int rl_cpu_count(void);

/* ---- growable buffer -------------------------------------------------------------------- */

typedef struct rl_buf {
    char *data; /* always NUL-terminated when len > 0 or after any append */
    size_t len, cap;
} rl_buf;

void rl_buf_append(rl_buf *b, const void *data, size_t n);
void rl_buf_puts(rl_buf *b, const char *s);
void rl_buf_putc(rl_buf *b, char c);
void rl_buf_printf(rl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rl_buf_reserve(rl_buf *b, size_t extra);
void rl_buf_clear(rl_buf *b);
void rl_buf_free(rl_buf *b);
/* Hands the data to the caller (who frees it) and resets the buffer. */
char *rl_buf_take(rl_buf *b);

/* ---- files ------------------------------------------------------------------------------ */

/* Reads a whole file; *out is NUL-terminated (not counted in *len); caller frees it.
 * max_bytes > 0 refuses larger files with RL_EINVAL. */
rl_status rl_file_read(const char *path, size_t max_bytes, char **out, size_t *len, rl_error *err);
/* Writes data to path atomically: a temporary file in the same folder, fsync, rename, fsync of
 * the folder. Readers see the old or the new file, never a mix. */
rl_status rl_file_write_atomic(const char *path, const void *data, size_t len, rl_error *err);

/* Streaming atomic write: open, write any number of times, then commit or abort. */
typedef struct rl_atomic_file {
    FILE *fp;
    char *path, *tmp_path;
} rl_atomic_file;
rl_status rl_atomic_open(rl_atomic_file *f, const char *path, rl_error *err);
rl_status rl_atomic_commit(rl_atomic_file *f, rl_error *err); /* fsync + rename */
void rl_atomic_abort(rl_atomic_file *f);                       /* removes the temporary */

/* Read-only memory map of a whole file (an empty file gives data NULL, size 0). */
typedef struct rl_mmap {
    const uint8_t *data;
    size_t size;
} rl_mmap;
rl_status rl_mmap_open(rl_mmap *m, const char *path, rl_error *err);
void rl_mmap_close(rl_mmap *m);

rl_status rl_mkdir_p(const char *path, rl_error *err);
/* Removes path and, when it is a folder, everything in it (symbolic links are removed, not followed);
 * an absent path is fine. */
rl_status rl_remove_tree(const char *path, rl_error *err);
int rl_path_exists(const char *path);
int rl_path_is_dir(const char *path);
/* Joins a and b with one '/'; if b is absolute returns a copy of b. Caller frees. */
char *rl_path_join(const char *a, const char *b);
/* Folder part of a path ("." when there is none). Caller frees. */
char *rl_path_dirname(const char *path);
/* Pointer to the file-name part inside path. */
const char *rl_path_basename(const char *path);
/* Lower-cased extension without the dot ("" when none) written to out (cap bytes). */
void rl_path_ext(const char *path, char *out, size_t cap);

/* ---- hashing and text --------------------------------------------------------------------- */

void rl_sha256(const void *data, size_t len, uint8_t out[32]);
/* Hex of a sha256 (65 bytes incl. NUL). */
void rl_sha256_hex(const void *data, size_t len, char out[65]);
uint64_t rl_hash64(const void *data, size_t len); /* FNV-1a, for hash tables */

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if s does not start one (n bytes left). */
int rl_utf8_seq_len(const unsigned char *s, size_t n);
/* Whether all n bytes are valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
int rl_utf8_valid(const char *s, size_t n);
/* Decodes one code point at s (returns its length, or 0 if invalid). */
int rl_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

/* Collapses whitespace runs to one space and trims; caller frees. */
char *rl_text_normalize_ws(const char *s, size_t n);
/* Whitespace-normalised containment: runs of spaces and newlines count as one space, so a
 * quote re-wrapped by a model still matches its source. */
int rl_text_contains_normalized(const char *hay, const char *needle);

/* The next number in s from *i on (advancing *i), in a canonical form for comparing figures:
 * thousands separators removed and trailing decimal zeros dropped ("1,500.00" -> "1500").
 * Returns 0 when there is none. */
int rl_text_next_number(const char *s, size_t *i, char *out, size_t cap);

/* Edit distance, for "did you mean" hints. */
int rl_levenshtein(const char *a, const char *b);

#endif
