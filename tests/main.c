/* main.c - the test runner: runs every registered test in a forked child with a time limit,
 * prints one line per test and ends with "N passed, N failed, N skipped".
 * Arguments are substrings: only tests whose name or file contains one of them run. */
#include "test.h"

#include "core/core.h"

#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_TESTS 1024
#define EXIT_SKIP 77

static struct {
    const char *name, *file;
    rl_test_fn fn;
} tests[MAX_TESTS];
static int n_tests;
int rl_test_failures;

void rl_test_register(const char *name, const char *file, rl_test_fn fn) {
    if (n_tests >= MAX_TESTS) {
        fprintf(stderr, "too many tests\n");
        abort();
    }
    tests[n_tests].name = name;
    tests[n_tests].file = file;
    tests[n_tests].fn = fn;
    n_tests++;
}

void rl_test_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "    %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    rl_test_failures++;
}

void rl_test_skip(const char *why) {
    fprintf(stderr, "    skipped: %s\n", why);
    fflush(stderr);
    _exit(EXIT_SKIP);
}

/* A folder per test (t_tmpdir), the test's TMPDIR: the child may end in _exit, an abort or the
 * time limit, so the parent removes it (RL_TEST_KEEP=1 keeps it for a look). */
static void remove_scratch(char *dir) {
    if (getenv("RL_TEST_KEEP")) fprintf(stderr, "    kept %s\n", dir);
    else rl_remove_tree(dir, NULL);
    free(dir);
}

static int selected(int i, int argc, char **argv) {
    if (argc <= 1) return 1;
    for (int a = 1; a < argc; a++)
        if (strstr(tests[i].name, argv[a]) || strstr(tests[i].file, argv[a])) return 1;
    return 0;
}

int main(int argc, char **argv) {
    int passed = 0, failed = 0, skipped = 0;
    int limit = getenv("RL_TEST_TIMEOUT") ? atoi(getenv("RL_TEST_TIMEOUT")) : 600;
    for (int i = 0; i < n_tests; i++) {
        if (!selected(i, argc, argv)) continue;
        fflush(stdout);
        fflush(stderr);
        char *scratch = t_tmpdir();
        pid_t pid = fork();
        if (pid == 0) {
            setpgid(0, 0);
            setenv("TMPDIR", scratch, 1);
            alarm((unsigned)limit);
            tests[i].fn();
            fflush(stdout);
            _exit(rl_test_failures ? 1 : 0);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        kill(-pid, SIGKILL); /* anything the test left running */
        remove_scratch(scratch);
        const char *verdict;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) verdict = "PASS", passed++;
        else if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_SKIP) verdict = "SKIP", skipped++;
        else verdict = "FAIL", failed++;
        if (WIFSIGNALED(status))
            fprintf(stderr, "    killed by signal %d%s\n", WTERMSIG(status), WTERMSIG(status) == SIGALRM ? " (time limit)" : "");
        printf("%s %s (%s)\n", verdict, tests[i].name, tests[i].file);
        fflush(stdout);
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
