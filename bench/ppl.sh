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
printf '| type | file KiB | raftlm: GGUF weights | raftlm: quantized decode | llama.cpp, chunks 1..k | raftlm quantized decode, chunks 1..k |\n|---|---:|---:|---:|---:|---:|\n'
for t in f32 f16 q8_0 q6_k q4_k q4_0; do
    "$B/raftlm" quantize "$M/stories260K.bin" "$D/s.$t.gguf" --type $t --tokenizer "$M/tok512.bin" 2>/dev/null
    w=$("$B/ppl-bench" "$D/s.$t.gguf" f32 "$M/tok512.bin" $TXT $CTX 2>/dev/null | sed 's/.*PPL //')
    case $t in f32|f16) qt=f32; qm="$D/s.$t.gguf" ;; *) qt=$t; qm="$M/stories260K.bin" ;; esac
    "$B/ppl-bench" "$qm" $qt "$M/tok512.bin" $TXT $CTX > "$D/q.out" 2> "$D/q.err"
    q=$(sed 's/.*PPL //' "$D/q.out")
    l=- lk=-
    if [ -n "$LP" ]; then
        # llama-perplexity prints a running value per chunk; its last lines are sometimes lost at
        # exit, so compare at the last chunk it printed
        last=$("$LP" -m "$D/s.$t.gguf" -f $TXT -c $CTX -b $CTX -t 1 2>&1 | grep -ao '\[[0-9]*\][0-9.]*' | tail -1)
        k=$(echo "$last" | sed 's/\[\([0-9]*\)\].*/\1/')
        l="$(echo "$last" | sed 's/.*\]//') (k=$k)"
        lk=$(grep -ao "\[$k\][0-9.]*" "$D/q.err" | sed 's/.*\]//')
    fi
    printf '| %s | %d | %s | %s | %s | %s |\n' $t $(($(stat -c %s "$D/s.$t.gguf") / 1024)) "$w" "$q" "$l" "$lk"
done
