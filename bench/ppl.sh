#!/bin/sh
# ppl.sh BUILD [LLAMA_PERPLEXITY]: perplexity of stories260K on tests/fixtures/infer/story.txt for
# each GGUF weight type (docs/benchmarks.md). For each type the model is written with
# `raftlm quantize`, then scored two ways by ppl-bench: the GGUF file's weights (dequantized,
# float32 arithmetic: the cost of the stored weights alone) and raftlm's quantized decoding
# (rl_qmodel from the float32 model: weights and activations quantized, as `raftlm serve
# --quant` runs). With a llama-perplexity binary, llama.cpp scores the same GGUF files.
set -e
B=${1:-build}
LP=${2:-}
M=${STORIES:-../shared/models/stories260K}
TXT=tests/fixtures/infer/story.txt
CTX=128
if [ ! -f "$M/stories260K.bin" ]; then echo "ppl.sh: skipped: $M/stories260K.bin is absent"; exit 0; fi
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
printf '| type | file KiB | raftlm: GGUF weights | raftlm: quantized decode | llama.cpp |\n|---|---:|---:|---:|---:|\n'
for t in f32 f16 q8_0 q6_k q4_k q4_0; do
    "$B/raftlm" quantize "$M/stories260K.bin" "$D/s.$t.gguf" --type $t --tokenizer "$M/tok512.bin" 2>/dev/null
    w=$("$B/ppl-bench" "$D/s.$t.gguf" f32 "$M/tok512.bin" $TXT $CTX | sed 's/.*PPL //')
    case $t in f32|f16) q=$w ;; *) q=$("$B/ppl-bench" "$M/stories260K.bin" $t "$M/tok512.bin" $TXT $CTX | sed 's/.*PPL //') ;; esac
    l=-
    if [ -n "$LP" ]; then
        l=$("$LP" -m "$D/s.$t.gguf" -f $TXT -c $CTX -b $CTX -t 1 2>&1 | sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p')
    fi
    printf '| %s | %d | %s | %s | %s |\n' $t $(($(stat -c %s "$D/s.$t.gguf") / 1024)) "$w" "$q" "$l"
done
