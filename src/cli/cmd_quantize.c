/* cmd_quantize.c - `raftlm quantize IN OUT [--type q8_0|q4_0|q4_k|q6_k|f16|f32] [--tokenizer T] [--lora DIR]`:
 * a model (any format raftlm loads, optionally with an adapter merged) written as a GGUF file
 * with quantized matrices, which llama.cpp and `raftlm serve` load. The same as
 * `raftlm convert IN OUT --to gguf --type TYPE`, with q8_0 as the default type.
 * (`raftlm serve --quant q8_0` quantizes in memory at load instead.) */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

int cmd_quantize(int argc, char **argv) {
    int has_type = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            printf("usage: raftlm quantize IN OUT [--type q8_0|q4_0|q4_k|q6_k|f16|f32] [--tokenizer tokenizer.bin|tokenizer.json|DIR] [--lora DIR]\n");
            return 0;
        }
        if (strcmp(argv[i], "--to") == 0 || strncmp(argv[i], "--to=", 5) == 0)
            return cli_usage("quantize", "IN OUT [--type q8_0|q4_0|q4_k|q6_k|f16|f32] [--tokenizer tokenizer.bin|tokenizer.json|DIR] [--lora DIR]");
        has_type |= strcmp(argv[i], "--type") == 0 || strncmp(argv[i], "--type=", 7) == 0;
    }
    char **v = rl_xcalloc((size_t)argc + 6, sizeof *v);
    int n = 0;
    v[n++] = "convert";
    for (int i = 1; i < argc; i++) v[n++] = argv[i];
    v[n++] = "--to";
    v[n++] = "gguf";
    if (!has_type) v[n++] = "--type", v[n++] = "q8_0";
    v[n] = NULL;
    int rc = cmd_convert(n, v);
    free(v);
    return rc;
}
