/* util.c - helpers shared by the tests: temporary folders, files, running commands. */
#include "test.h"

#include <limits.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/core.h"

/* The runner gives each test its own TMPDIR and removes it when the test ends, however it ends. */
char *t_tmpdir(void) {
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char *tmpl = rl_xasprintf("%s/raftlm-test-XXXXXX", base);
    RL_ASSERT(mkdtemp(tmpl) != NULL);
    return tmpl;
}

void t_write(const char *dir, const char *rel, const char *data, size_t len) {
    char *path = rl_path_join(dir, rel);
    char *folder = rl_path_dirname(path);
    rl_error err;
    RL_ASSERT(rl_mkdir_p(folder, &err) == RL_OK);
    FILE *f = fopen(path, "wb");
    RL_ASSERT(f != NULL);
    RL_ASSERT(fwrite(data, 1, len, f) == len);
    fclose(f);
    free(folder);
    free(path);
}

void t_write_str(const char *dir, const char *rel, const char *text) { t_write(dir, rel, text, strlen(text)); }

int t_run(const char *cmdline, char **out, int merge_stderr) {
    char *cmd = merge_stderr ? rl_xasprintf("(%s) 2>&1", cmdline) : rl_xstrdup(cmdline);
    FILE *p = popen(cmd, "r");
    RL_ASSERT(p != NULL);
    rl_buf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, p)) > 0) rl_buf_append(&b, chunk, n);
    int status = pclose(p);
    free(cmd);
    if (out) *out = rl_buf_take(&b);
    else rl_buf_free(&b);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

const char *t_bin(void) {
    static char bin[PATH_MAX];
    const char *b = getenv("RAFTLM_BIN");
    if (b) return b;
    if (!bin[0]) snprintf(bin, sizeof bin, "%s/build/raftlm", t_root());
    return bin;
}

const char *t_root(void) {
    static char root[PATH_MAX];
    if (!root[0] && !getcwd(root, sizeof root)) strcpy(root, ".");
    return root;
}

const char *t_shared(void) {
    static char path[PATH_MAX];
    const char *env = getenv("RAFTLM_SHARED");
    if (env) snprintf(path, sizeof path, "%s", env);
    else snprintf(path, sizeof path, "%s/../shared", t_root());
    return rl_path_is_dir(path) ? path : NULL;
}

char *t_fmt(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) s = NULL;
    va_end(ap);
    RL_ASSERT(s != NULL);
    return s;
}

int t_serve_start(const char *const *args, int *port) {
    const char *argv[64] = {t_bin(), "-q", "serve"};
    int n = 3;
    while (*args && n < 60) argv[n++] = *args++;
    argv[n++] = "--port", argv[n++] = "0", argv[n] = NULL;
    int pfd[2];
    if (pipe(pfd) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        execv(t_bin(), (char *const *)argv);
        _exit(127);
    }
    close(pfd[1]);
    FILE *fp = fdopen(pfd[0], "r");
    char line[256] = {0};
    *port = 0;
    if (fp && fgets(line, sizeof line, fp)) sscanf(line, "listening on http://127.0.0.1:%d", port);
    if (fp) fclose(fp); // the server writes nothing more to stdout
    if (*port <= 0) {
        fprintf(stderr, "    serve did not start: %s\n", line);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    // it listens before the model is loaded: wait for /health to say 200
    for (int i = 0; i < 200; i++) {
        char *h = NULL;
        int ok = t_run(t_fmt("curl -s -o /dev/null -w '%%{http_code}' http://127.0.0.1:%d/health", *port), &h, 0) == 0 && h &&
                 strcmp(h, "200") == 0;
        free(h);
        if (ok) break;
        usleep(50000);
    }
    return (int)pid;
}

int t_serve_stop(int pid) {
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}
