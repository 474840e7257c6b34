#!/bin/sh
# make demo: the main job on the example project. Until the later stages exist this ingests the
# Acme handbook and runs a few searches; it grows into the whole RAFT pipeline.
set -eu
bin=${1:-build/raftlm}
cfg=examples/acme/raftlm.yaml
echo "== raftlm ingest -c $cfg"
"$bin" ingest -c "$cfg"
for q in "What is the daily meal allowance for domestic travel?" \
         "How fast does Gold support respond to a critical incident?" \
         "How much does the AR-700X cost?"; do
    echo
    echo "== raftlm search -c $cfg -k 3 \"$q\""
    "$bin" search -c "$cfg" -k 3 "$q"
done
