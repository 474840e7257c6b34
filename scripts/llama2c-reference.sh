#!/bin/sh
# Generates tests/fixtures/tokenizer/llama2c_tok512.jsonl: the ids llama2.c's own encode() gives
# for every corpus string with tok512.bin (stories260K), with BOS (as run.c calls it) and without.
# Usage: scripts/llama2c-reference.sh PATH/TO/llama2.c/run.c [PATH/TO/tok512.bin]
# llama2.c's encode stops at the first NUL byte, so strings containing one are left out.
set -eu
runc=${1:?usage: $0 path/to/llama2.c/run.c [tok512.bin]}
tok=${2:-../shared/models/stories260K/tok512.bin}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/harness.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
void build_tokenizer(void *t, char *path, int vocab_size);
void encode(void *t, char *text, signed char bos, signed char eos, int *tokens, int *n_tokens);
int main(int argc, char **argv) {
    static char tok[4096];
    build_tokenizer(tok, argv[1], 512);
    static char line[1 << 20], text[1 << 19];
    int *ids = malloc(sizeof(int) * (1 << 20));
    while (fgets(line, sizeof line, stdin)) {
        size_t n = strcspn(line, "\n"), k = 0;
        for (size_t i = 0; i + 1 < n; i += 2) { unsigned v; sscanf(line + i, "%2x", &v); text[k++] = (char)v; }
        text[k] = 0;
        for (int bos = 1; bos >= 0; bos--) {
            int nt = 0;
            encode(tok, text, (signed char)bos, 0, ids, &nt);
            printf("[");
            for (int i = 0; i < nt; i++) printf(i ? ",%d" : "%d", ids[i]);
            printf(bos ? "] " : "]\n");
        }
    }
    return 0;
}
C
cc -O1 -w -Dmain=llama2c_main -c "$runc" -o "$work/run.o"
cc -O1 -w "$work/harness.c" "$work/run.o" -lm -o "$work/harness"
python3 - "$here/tests/fixtures/tokenizer/corpus.jsonl" "$work/harness" "$tok" > "$here/tests/fixtures/tokenizer/llama2c_tok512.jsonl" <<'PY'
import json, subprocess, sys
corpus, harness, tok = sys.argv[1:4]
strings = [json.loads(l) for l in open(corpus, encoding="utf-8")]
keep = [s for s in strings if "\0" not in s]
inp = "".join(s.encode("utf-8").hex() + "\n" for s in keep)
res = subprocess.run([harness, tok], input=inp.encode(), capture_output=True, check=True).stdout.decode().splitlines()
assert len(res) == len(keep)
for s, r in zip(keep, res):
    with_bos, without = r.split(" ")
    print(json.dumps({"text": s, "bos": json.loads(with_bos), "ids": json.loads(without)}, ensure_ascii=False))
PY
echo "wrote tests/fixtures/tokenizer/llama2c_tok512.jsonl ($(wc -l < "$here/tests/fixtures/tokenizer/llama2c_tok512.jsonl") strings)" >&2
