#!/bin/sh
# bert.sh - sentence-encoder throughput: `raftlm bench embed` and PyTorch (bench/bert_torch.py) on
# the same random-weight MiniLM-shaped folder, alternating, ROUNDS rounds; best of REPEAT each.
# usage: bench/bert.sh [RAFTLM_BIN] [ROUNDS]   env: BERT_SHAPE (minilm), BERT_B (32), BERT_T (128),
#        BERT_N (2), BERT_THREADS (2), BERT_REPEAT (3), BERT_DIR (/tmp/raftlm-bert-SHAPE)
set -e
bin=${1:-build/raftlm}
rounds=${2:-2}
shape=${BERT_SHAPE:-minilm}
B=${BERT_B:-32}; T=${BERT_T:-128}; N=${BERT_N:-2}; th=${BERT_THREADS:-2}; rep=${BERT_REPEAT:-3}
dir=${BERT_DIR:-${TMPDIR:-/tmp}/raftlm-bert-$shape}
py=/usr/bin/python3
here=$(dirname "$0")
[ -f "$dir/model.safetensors" ] || $py "$here/bert_torch.py" write "$dir" "$shape"
uptime
r=1
while [ "$r" -le "$rounds" ]; do
    "$bin" -q bench embed --model "$dir" --batch "$B" --seq "$T" --batches "$N" --threads "$th" --repeat "$rep"
    $py "$here/bert_torch.py" time "$dir" "$B" "$T" "$N" "$th" "$rep"
    r=$((r + 1))
done
uptime
