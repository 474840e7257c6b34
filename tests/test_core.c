/* test_core.c - status messages, buffers, files, hashing, UTF-8, the thread pool. */
#include "test.h"

#include <stdatomic.h>
#include <unistd.h>

#include "core/core.h"

TEST(core_error_messages) {
    rl_error err = {0};
    rl_status s = rl_fail(&err, RL_EIO, "cannot open %s", "x.txt");
    CHECK_EQ_INT(s, RL_EIO);
    CHECK_EQ_STR(err.msg, "cannot open x.txt");
    rl_error_prefix(&err, "ingest");
    CHECK_EQ_STR(err.msg, "ingest: cannot open x.txt");
    CHECK(rl_fail(NULL, RL_EINVAL, "no buffer") == RL_EINVAL);
}

TEST(core_buf) {
    rl_buf b = {0};
    for (int i = 0; i < 1000; i++) rl_buf_printf(&b, "%d,", i);
    CHECK(b.len > 1000);
    CHECK(strncmp(b.data, "0,1,2,", 6) == 0);
    char *s = rl_buf_take(&b);
    CHECK(b.data == NULL);
    free(s);
}

TEST(core_atomic_write_and_read) {
    char *dir = t_tmpdir();
    char *path = rl_path_join(dir, "a/b/file.txt");
    char *folder = rl_path_dirname(path);
    rl_error err;
    CHECK_OK(rl_mkdir_p(folder, &err));
    CHECK_OK(rl_file_write_atomic(path, "hello", 5, &err));
    CHECK_OK(rl_file_write_atomic(path, "world!", 6, &err));
    char *data;
    size_t len;
    CHECK_OK(rl_file_read(path, 0, &data, &len, &err));
    CHECK_EQ_INT(len, 6);
    CHECK_EQ_STR(data, "world!");
    free(data);
    CHECK_EQ_INT(rl_file_read(path, 3, &data, &len, &err), RL_EINVAL);
    char *missing = rl_path_join(dir, "nope");
    CHECK_EQ_INT(rl_file_read(missing, 0, &data, &len, &err), RL_ENOTFOUND);
    CHECK_CONTAINS(err.msg, "nope");
    /* no temporary files left behind */
    char *out;
    t_run(t_fmt("ls -a '%s'", folder), &out, 0);
    CHECK(strstr(out, ".tmp") == NULL);
    free(out);
}

TEST(core_sha256_known_answer) {
    char hex[65];
    rl_sha256_hex("abc", 3, hex);
    CHECK_EQ_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(core_utf8) {
    CHECK(rl_utf8_valid("héllo €", strlen("héllo €")));
    CHECK(!rl_utf8_valid("\xff", 1));
    CHECK(!rl_utf8_valid("\xc0\x80", 2));         /* overlong */
    CHECK(!rl_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    CHECK(!rl_utf8_valid("\xe2\x82", 2));         /* truncated */
    CHECK(rl_utf8_valid("\xf0\x9f\x98\x80", 4)); /* emoji */
}

TEST(core_levenshtein) {
    CHECK_EQ_INT(rl_levenshtein("lora_r", "lora_rr"), 1);
    CHECK_EQ_INT(rl_levenshtein("kitten", "sitting"), 3);
    CHECK_EQ_INT(rl_levenshtein("", "abc"), 3);
}

typedef struct {
    atomic_long sum;
    atomic_int seen[1000];
} pool_ctx;

static void pool_item(void *ctx, size_t i, int thread) {
    pool_ctx *c = ctx;
    atomic_fetch_add(&c->sum, (long)i);
    atomic_fetch_add(&c->seen[i], 1);
}

TEST(core_pool_runs_every_item_once) {
    rl_pool *pool = rl_pool_create(4);
    for (int round = 0; round < 20; round++) {
        static pool_ctx c;
        memset(&c, 0, sizeof c);
        rl_pool_for(pool, 1000, pool_item, &c);
        CHECK_EQ_INT(c.sum, 999 * 1000 / 2);
        for (int i = 0; i < 1000; i++) CHECK_EQ_INT(c.seen[i], 1);
    }
    rl_pool_free(pool);
}

TEST(core_paths) {
    char ext[16];
    rl_path_ext("a/b/Readme.MD", ext, sizeof ext);
    CHECK_EQ_STR(ext, "md");
    rl_path_ext("a.b/noext", ext, sizeof ext);
    CHECK_EQ_STR(ext, "");
    char *j = rl_path_join("a/", "b");
    CHECK_EQ_STR(j, "a/b");
    free(j);
    j = rl_path_join("a", "/abs");
    CHECK_EQ_STR(j, "/abs");
    free(j);
    CHECK_EQ_STR(rl_path_basename("x/y/z.txt"), "z.txt");
}
