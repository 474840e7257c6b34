#!/bin/sh
# engine_compare.sh - one training step of the SmolLM2-135M shape, raftlm (float32 and bf16)
# against PyTorch (bench/engine_torch.py), run in turn ROUNDS times so that every side sees the
# same machine load; each line is one run (the best step of a run is in its output).
#   bench/engine_compare.sh build/raftlm [lora|full] [ROUNDS] [T] [extra raftlm binary to compare]
set -e
BIN=${1:-build/raftlm}; MODE=${2:-lora}; ROUNDS=${3:-2}; T=${4:-512}; OTHER=$5
PY=/usr/bin/python3
for r in $(seq 1 "$ROUNDS"); do
    echo "== round $r, $(uptime)"
    echo "-- pytorch float32"; $PY bench/engine_torch.py --mode "$MODE" --seq "$T" --steps 2 --threads 2 | grep -E "step|RSS"
    echo "-- raftlm float32"; $BIN bench --mode "$MODE" --seq "$T" --steps 2 --threads 2 | grep -E "step|MFU|RSS"
    echo "-- raftlm bf16"; $BIN bench --mode "$MODE" --seq "$T" --steps 2 --threads 2 --bf16 | grep -E "step|RSS"
    echo "-- pytorch bf16 autocast"; $PY bench/engine_torch.py --mode "$MODE" --seq "$T" --steps 2 --threads 2 --bf16 | grep -E "step|RSS"
    if [ -n "$OTHER" ]; then echo "-- $OTHER float32"; $OTHER bench --mode "$MODE" --seq "$T" --steps 2 --threads 2 | grep -E "step|RSS"; fi
done
echo "== end, $(uptime)"
