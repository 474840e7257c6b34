#!/bin/sh
# make demo: the main job on the example project (examples/acme). For now: ingest the
# handbook, search it, and synthesize RAFT training data from it; the later stages (train,
# eval, serve) join as they are built.
set -eu
bin=${1:-build/raftlm}
cfg=examples/acme/raftlm.yaml
echo "== raftlm ingest -c $cfg"
"$bin" ingest -c "$cfg"
for q in "What is the daily meal allowance for domestic travel?" \
         "How long does the standard hardware warranty last?" \
         "AR-700X payload"; do
    echo
    echo "== raftlm search -c $cfg -k 3 \"$q\""
    "$bin" search -c "$cfg" -k 3 "$q"
done
echo
echo "== raftlm synth -c $cfg"
"$bin" synth -c "$cfg"
echo
echo "== two of the RAFT examples (examples/acme/out/datasets/raft_train.jsonl)"
head -n 2 examples/acme/out/datasets/raft_train.jsonl | cut -c 1-400
