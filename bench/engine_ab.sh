#!/bin/sh
# engine_ab.sh - two raftlm binaries on the same training-step benchmark, interleaved ROUNDS
# times (so that both see the same machine load); prints each run's best step and peak RSS.
#   bench/engine_ab.sh OLD_BIN NEW_BIN ROUNDS [raftlm bench options...]
# e.g. bench/engine_ab.sh /tmp/base/build/raftlm build/raftlm 3 --mode lora --seq 1024 --threads 2
set -e
A=$1; B=$2; ROUNDS=$3; shift 3
for r in $(seq 1 "$ROUNDS"); do
    echo "== round $r, $(uptime)"
    for bin in "$A" "$B"; do
        printf '%-28s ' "$bin"; "$bin" bench "$@" | grep -E "^step|RSS" | tr '\n' ' '; echo
    done
done
echo "== end, $(uptime)"
