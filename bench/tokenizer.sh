#!/bin/sh
# bench/tokenizer.sh BUILD - encode MB/s of each tokenizer kind on one 10 MB text; and, when Node
# and the npm packages of scripts/tokenizer-fixtures.sh are present, @huggingface/tokenizers on
# the same text and files. MB (env) changes the text size.
set -eu
build=${1:-build}
mb=${MB:-10}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fx=tests/fixtures/tokenizer
for t in qwen3 mistral; do mkdir -p "$work/$t"; xz -dc $fx/$t/tokenizer.json.xz > "$work/$t/tokenizer.json"; cp $fx/$t/tokenizer_config.json "$work/$t/"; done
for v in phi-3 gpt-2 bert-bge; do xz -dc $fx/llamacpp/ggml-vocab-$v.gguf.xz > "$work/$v.gguf"; done
set -- qwen3="$work/qwen3" mistral="$work/mistral" wordpiece=$fx/wordpiece \
    gguf-phi3="$work/phi-3.gguf" gguf-gpt2="$work/gpt-2.gguf" gguf-bert="$work/bert-bge.gguf"
if [ -f $fx/cache/llama3/tokenizer.json.xz ]; then
    mkdir -p "$work/llama3"; xz -dc $fx/cache/llama3/tokenizer.json.xz > "$work/llama3/tokenizer.json"; cp $fx/cache/llama3/tokenizer_config.json "$work/llama3/"
    set -- "$@" llama3="$work/llama3"
fi
[ -f ../shared/models/stories260K/tok512.bin ] && set -- "$@" tok512=../shared/models/stories260K/tok512.bin
echo "== raftlm ($mb MB text, one encode call, $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
"$build/tokenizer-bench" --mb "$mb" --write-text "$work/text.txt" "$@"
node_dir=${TOKENIZER_NODE_DIR:-/tmp/raftlm-tokenizer-fixtures}
if command -v node >/dev/null && [ -d "$node_dir/node_modules/@huggingface/tokenizers" ]; then
    echo "== @huggingface/tokenizers $(node -p "require('$node_dir/node_modules/@huggingface/tokenizers/package.json').version") (node $(node --version))"
    js=""
    for a in "$@"; do case $a in tok512=*|gguf-*) ;; *) js="$js $a";; esac; done
    # shellcheck disable=SC2086
    node bench/tokenizer_bench.mjs "$node_dir" "$work/text.txt" $js
else
    echo "(@huggingface/tokenizers not installed in $node_dir: run scripts/tokenizer-fixtures.sh to compare)"
fi
