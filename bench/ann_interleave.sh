#!/bin/sh
# Interleaved search comparison: the indexes are built once (raftlm f32, raftlm int8, hnswlib
# 0.6.2 compiled with -march=native), saved, and then searched in alternation, ROUNDS times,
# each run loading its index into memory; the summary keeps each engine's best run per ef, so
# that all engines see the same spread of machine load. Needs libhnswlib-dev and g++.
#   bench/ann_interleave.sh [build/raftlm] DATA_DIR [ROUNDS] [EFS] [THREADS]
# DATA_DIR as made by bench/ann_gen.py (base.fvecs, query.fvecs, gt.ivecs, meta).
set -eu
bin=${1:-build/raftlm}
d=$2
rounds=${3:-5}
efs=${4:-10,20,40,80,160}
threads=${5:-2}
here=$(dirname "$0")
work=${TMPDIR:-/tmp}/raftlm-ann-interleave-$(basename "$d")
mkdir -p "$work"
metric=$(cat "$d/meta")
g++ -O3 -march=native -std=c++17 -pthread "$here/ann_hnswlib.cpp" -o "$work/ann_hnswlib"
cc -O2 -Isrc "$here/ann_search.c" "$(dirname "$bin")/libraftlm.a" $(cat "$(dirname "$bin")/.pkg-libs") -lm -pthread \
    -o "$work/ann_search"
echo "building (M 16, ef_construction 200, $threads threads)" >&2
"$bin" -q bench ann --base "$d/base.fvecs" --query "$d/query.fvecs" --gt "$d/gt.ivecs" --metric "$metric" --M 16 \
    --ef-construction 200 --ef 10 --threads "$threads" --save "$work/f32.idx" --json > "$work/build-raftlm.json"
"$bin" -q bench ann --base "$d/base.fvecs" --query "$d/query.fvecs" --gt "$d/gt.ivecs" --metric "$metric" --M 16 \
    --ef-construction 200 --ef 10 --threads "$threads" --int8 --save "$work/int8.idx" --json > "$work/build-raftlm_int8.json"
"$work/ann_hnswlib" "$d" 16 200 10 "$threads" 10 1 "save:$work/hnswlib.idx" > "$work/build-hnswlib_native.json"
: > "$work/runs.jsonl"
r=1
while [ "$r" -le "$rounds" ]; do
    echo "round $r of $rounds" >&2
    "$work/ann_search" "$work/f32.idx" "$d/query.fvecs" "$d/gt.ivecs" "$efs" 10 | sed 's/^/raftlm /' >> "$work/runs.jsonl"
    "$work/ann_search" "$work/int8.idx" "$d/query.fvecs" "$d/gt.ivecs" "$efs" 10 | sed 's/^/raftlm_int8 /' >> "$work/runs.jsonl"
    "$work/ann_hnswlib" "$d" 16 200 "$efs" 1 10 1 "load:$work/hnswlib.idx" | grep '"ef"' | sed 's/,$//; s/^ */hnswlib_native /' >> "$work/runs.jsonl"
    r=$((r + 1))
done
/usr/bin/python3 "$here/ann_interleave_report.py" "$work" "$d" "$rounds"
