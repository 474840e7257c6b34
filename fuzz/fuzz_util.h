/* fuzz_util.h - what the libFuzzer targets share: writing an input to the file a loader reads. */
#ifndef RL_FUZZ_UTIL_H
#define RL_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>

/* Writes size bytes of data to path; 0 on success. */
static inline int fuzz_write_file(const char *path, const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = size == 0 || fwrite(data, 1, size, f) == size;
    return fclose(f) == 0 && ok ? 0 : -1;
}

#endif
