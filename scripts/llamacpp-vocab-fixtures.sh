#!/bin/sh
# Copies llama.cpp's own tokenizer test data into tests/fixtures/tokenizer/llamacpp/: vocab-only
# GGUF files (xz-compressed) with the .inp strings and the .out ids llama.cpp's
# tests/test-tokenizer-0 expects (add_special = false, parse_special = false).
#   scripts/llamacpp-vocab-fixtures.sh PATH/TO/llama.cpp   (a checkout or a bare git directory)
# Chosen for their licences: phi-3 (MIT; same ids as llama-spm), gpt-2 (MIT), bert-bge (MIT).
set -eu
src=${1:?usage: $0 path/to/llama.cpp}
dst=$(cd "$(dirname "$0")/.." && pwd)/tests/fixtures/tokenizer/llamacpp
mkdir -p "$dst"
get() { # repo path -> stdout
    if [ -f "$src/$1" ]; then cat "$src/$1"; else git --git-dir="$src" show "HEAD:$1" 2>/dev/null || git -C "$src" show "HEAD:$1"; fi
}
for v in phi-3 gpt-2 bert-bge; do
    get "models/ggml-vocab-$v.gguf" | xz -9 > "$dst/ggml-vocab-$v.gguf.xz"
    get "models/ggml-vocab-$v.gguf.inp" > "$dst/ggml-vocab-$v.gguf.inp"
    get "models/ggml-vocab-$v.gguf.out" > "$dst/ggml-vocab-$v.gguf.out"
done
get LICENSE > "$dst/LICENSE.llama.cpp"
( cd "$src" 2>/dev/null && git log -1 --format='llama.cpp commit %H' 2>/dev/null ) > "$dst/SOURCE" ||
    git --git-dir="$src" log -1 --format='llama.cpp commit %H' > "$dst/SOURCE"
ls -la "$dst"
