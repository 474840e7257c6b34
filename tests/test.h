/* test.h - the tiny test framework used by every tests/test_*.c file.
 *
 *   TEST(name) { CHECK(x == 1); CHECK_EQ_INT(a, b); if (!have) SKIP("why"); }
 *
 * Tests register themselves at load time; tests/main.c runs each one in a child process (a
 * crash or a timeout fails that test only) and ends with "N passed, N failed, N skipped". */
#ifndef RL_TEST_H
#define RL_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*rl_test_fn)(void);
void rl_test_register(const char *name, const char *file, rl_test_fn fn);
void rl_test_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
_Noreturn void rl_test_skip(const char *why);
extern int rl_test_failures; /* in the child: checks failed so far */

#define TEST(name)                                                                            \
    static void test_##name(void);                                                            \
    __attribute__((constructor)) static void register_##name(void) {                         \
        rl_test_register(#name, __FILE__, test_##name);                                       \
    }                                                                                         \
    static void test_##name(void)

#define CHECK(cond)                                                                           \
    do {                                                                                      \
        if (!(cond)) rl_test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);                    \
    } while (0)
#define CHECK_MSG(cond, ...)                                                                  \
    do {                                                                                      \
        if (!(cond)) rl_test_fail(__FILE__, __LINE__, __VA_ARGS__);                           \
    } while (0)
#define CHECK_EQ_INT(a, b)                                                                    \
    do {                                                                                      \
        long long a_ = (long long)(a), b_ = (long long)(b);                                   \
        if (a_ != b_) rl_test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_); \
    } while (0)
#define CHECK_EQ_STR(a, b)                                                                    \
    do {                                                                                      \
        const char *a_ = (a), *b_ = (b);                                                      \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                                \
            rl_test_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)", \
                         b_ ? b_ : "(null)");                                                 \
    } while (0)
#define CHECK_CONTAINS(hay, needle)                                                           \
    do {                                                                                      \
        const char *h_ = (hay), *n_ = (needle);                                               \
        if (!h_ || !strstr(h_, n_))                                                           \
            rl_test_fail(__FILE__, __LINE__, "%s should contain \"%s\", got: %s", #hay, n_, h_ ? h_ : "(null)"); \
    } while (0)
#define CHECK_OK(expr)                                                                        \
    do {                                                                                      \
        int s_ = (int)(expr);                                                                 \
        if (s_ != 0) rl_test_fail(__FILE__, __LINE__, "%s failed (status %d)", #expr, s_);    \
    } while (0)
#define SKIP(why) rl_test_skip(why)

/* ---- helpers (tests/util.c) ---- */

/* A fresh empty folder under $TMPDIR, removed when the test process ends. Caller frees. */
char *t_tmpdir(void);
/* Writes a file (creating its folders). */
void t_write(const char *dir, const char *rel, const char *data, size_t len);
void t_write_str(const char *dir, const char *rel, const char *text);
/* Runs a shell command line; returns its exit status; *out (if not NULL) receives stdout
 * (and stderr when merge_stderr). Caller frees *out. */
int t_run(const char *cmdline, char **out, int merge_stderr);
/* Path of the raftlm binary under test ($RAFTLM_BIN, else build/raftlm). */
const char *t_bin(void);
/* Path of ../shared (or $RAFTLM_SHARED); NULL when absent (the caller SKIPs). */
const char *t_shared(void);
/* Path of the repository root (the folder make ran in). */
const char *t_root(void);
char *t_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Starts `raftlm -q serve ARGS... --port 0` (args NULL-terminated), reads the port it prints and
 * waits until /health answers 200. Returns the pid (-1 when it did not start); *port is set. */
int t_serve_start(const char *const *args, int *port);
/* SIGTERM, then waits; returns 1 when the server exited cleanly (status 0). */
int t_serve_stop(int pid);

#endif
