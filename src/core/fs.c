/* fs.c - file helpers: whole-file reads, atomic writes (temp + fsync + rename + fsync of the
 * folder), read-only mmap, and path utilities. */
#include "core.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

rl_status rl_file_read(const char *path, size_t max_bytes, char **out, size_t *len, rl_error *err) {
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return rl_fail(err, errno == ENOENT ? RL_ENOTFOUND : RL_EIO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return rl_fail(err, RL_EIO, "cannot stat %s: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return rl_fail(err, RL_EINVAL, "%s is a folder, not a file", path);
    }
    if (max_bytes > 0 && (uint64_t)st.st_size > max_bytes) {
        close(fd);
        return rl_fail(err, RL_EINVAL, "%s is too large (%lld bytes, limit %zu)", path, (long long)st.st_size, max_bytes);
    }
    /* Read until EOF rather than trusting st_size: the file may change or be a pipe. */
    size_t cap = st.st_size > 0 ? (size_t)st.st_size + 1 : 4096, n = 0;
    char *data = malloc(cap);
    if (!data) {
        close(fd);
        return rl_fail(err, RL_ENOMEM, "out of memory reading %s", path);
    }
    for (;;) {
        if (n + 1 >= cap) {
            if (max_bytes > 0 && n >= max_bytes) {
                free(data);
                close(fd);
                return rl_fail(err, RL_EINVAL, "%s is too large (limit %zu bytes)", path, max_bytes);
            }
            char *bigger = realloc(data, cap * 2);
            if (!bigger) {
                free(data);
                close(fd);
                return rl_fail(err, RL_ENOMEM, "out of memory reading %s", path);
            }
            data = bigger;
            cap *= 2;
        }
        ssize_t r = read(fd, data + n, cap - 1 - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            free(data);
            close(fd);
            return rl_fail(err, RL_EIO, "cannot read %s: %s", path, strerror(e));
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    data[n] = 0;
    *out = data;
    *len = n;
    return RL_OK;
}

static void fsync_dir_of(const char *path) {
    char *dir = rl_path_dirname(path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}

rl_status rl_atomic_open(rl_atomic_file *f, const char *path, rl_error *err) {
    memset(f, 0, sizeof *f);
    f->path = rl_xstrdup(path);
    f->tmp_path = rl_xasprintf("%s.tmp.%ld", path, (long)getpid());
    f->fp = fopen(f->tmp_path, "wb");
    if (!f->fp) {
        rl_status s = rl_fail(err, RL_EIO, "cannot create %s: %s", f->tmp_path, strerror(errno));
        free(f->path);
        free(f->tmp_path);
        memset(f, 0, sizeof *f);
        return s;
    }
    return RL_OK;
}

void rl_atomic_abort(rl_atomic_file *f) {
    if (f->fp) fclose(f->fp);
    if (f->tmp_path) unlink(f->tmp_path);
    free(f->path);
    free(f->tmp_path);
    memset(f, 0, sizeof *f);
}

rl_status rl_atomic_commit(rl_atomic_file *f, rl_error *err) {
    rl_status s = RL_OK;
    if (fflush(f->fp) != 0 || ferror(f->fp)) s = rl_fail(err, RL_EIO, "cannot write %s: %s", f->tmp_path, strerror(errno));
    else if (fsync(fileno(f->fp)) != 0) s = rl_fail(err, RL_EIO, "cannot fsync %s: %s", f->tmp_path, strerror(errno));
    if (fclose(f->fp) != 0 && s == RL_OK) s = rl_fail(err, RL_EIO, "cannot close %s: %s", f->tmp_path, strerror(errno));
    f->fp = NULL;
    if (s == RL_OK && rename(f->tmp_path, f->path) != 0)
        s = rl_fail(err, RL_EIO, "cannot rename %s to %s: %s", f->tmp_path, f->path, strerror(errno));
    if (s == RL_OK) fsync_dir_of(f->path);
    else unlink(f->tmp_path);
    free(f->path);
    free(f->tmp_path);
    memset(f, 0, sizeof *f);
    return s;
}

rl_status rl_file_write_atomic(const char *path, const void *data, size_t len, rl_error *err) {
    rl_atomic_file f;
    rl_status s = rl_atomic_open(&f, path, err);
    if (s) return s;
    if (len && fwrite(data, 1, len, f.fp) != len) {
        s = rl_fail(err, RL_EIO, "cannot write %s: %s", f.tmp_path, strerror(errno));
        rl_atomic_abort(&f);
        return s;
    }
    return rl_atomic_commit(&f, err);
}

rl_status rl_mmap_open(rl_mmap *m, const char *path, rl_error *err) {
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return rl_fail(err, errno == ENOENT ? RL_ENOTFOUND : RL_EIO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return rl_fail(err, RL_EIO, "%s is not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return RL_OK;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) return rl_fail(err, RL_EIO, "cannot map %s: %s", path, strerror(e));
    m->data = p;
    m->size = (size_t)st.st_size;
    return RL_OK;
}

void rl_mmap_close(rl_mmap *m) {
    if (m->data) munmap((void *)m->data, m->size);
    memset(m, 0, sizeof *m);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

rl_status rl_remove_tree(const char *path, rl_error *err) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? RL_OK : rl_fail(err, RL_EIO, "%s: %s", path, strerror(errno));
    if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) return rl_fail(err, RL_EIO, "cannot remove %s: %s", path, strerror(errno));
    return RL_OK;
}

rl_status rl_mkdir_p(const char *path, rl_error *err) {
    char *p = rl_xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            rl_status st = rl_fail(err, RL_EIO, "cannot create folder %s: %s", p, strerror(errno));
            free(p);
            return st;
        }
        *s = '/';
    }
    if (mkdir(p, 0777) != 0 && errno != EEXIST) {
        rl_status st = rl_fail(err, RL_EIO, "cannot create folder %s: %s", p, strerror(errno));
        free(p);
        return st;
    }
    free(p);
    if (!rl_path_is_dir(path)) return rl_fail(err, RL_EIO, "%s exists and is not a folder", path);
    return RL_OK;
}

int rl_path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int rl_path_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *rl_path_join(const char *a, const char *b) {
    if (b[0] == '/' || a[0] == 0) return rl_xstrdup(b);
    size_t la = strlen(a);
    while (la > 1 && a[la - 1] == '/') la--;
    if (strcmp(b, ".") == 0 || b[0] == 0) return rl_xstrndup(a, la);
    return rl_xasprintf("%.*s/%s", (int)la, a, b);
}

char *rl_path_dirname(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return rl_xstrdup(".");
    if (slash == path) return rl_xstrdup("/");
    return rl_xstrndup(path, (size_t)(slash - path));
}

const char *rl_path_basename(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

void rl_path_ext(const char *path, char *out, size_t cap) {
    const char *base = rl_path_basename(path);
    const char *dot = strrchr(base, '.');
    out[0] = 0;
    if (!dot || dot == base || cap == 0) return;
    size_t i = 0;
    for (dot++; *dot && i + 1 < cap; dot++) out[i++] = (char)tolower((unsigned char)*dot);
    out[i] = 0;
}
