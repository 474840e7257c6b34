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
/usr/bin/python3 - "$work" "$d" "$rounds" <<'PY'
import json, sys, collections
work, d, rounds = sys.argv[1], sys.argv[2], sys.argv[3]
best = collections.defaultdict(dict)
for line in open(f"{work}/runs.jsonl"):
    eng, js = line.split(" ", 1)
    r = json.loads(js)
    b = best[eng].setdefault(r["ef"], {"recall": r["recall"], "qps": 0, "qps_cpu": 0})
    b["qps"] = max(b["qps"], r["qps"]); b["qps_cpu"] = max(b["qps_cpu"], r["qps_cpu"])
builds = {e: json.load(open(f"{work}/build-{e}.json")) for e in ("raftlm", "raftlm_int8", "hnswlib_native")}
names = {"raftlm": "raftlm (f32)", "raftlm_int8": "raftlm (int8+rescore)", "hnswlib_native": "hnswlib 0.6.2 -march=native"}
efs = sorted(best["raftlm"])
print(f"\n{d}: best of {rounds} interleaved rounds; cells: recall@10 / queries per CPU-second (wall)\n")
print("| engine | build s | memory MB | " + " | ".join(f"ef {e}" for e in efs) + " |")
print("|---|---|---|" + "---|" * len(efs))
for e in ("raftlm", "raftlm_int8", "hnswlib_native"):
    b = builds[e]
    cells = " | ".join(f"{best[e][x]['recall']:.4f} / {best[e][x]['qps_cpu']:.0f} ({best[e][x]['qps']:.0f})" for x in efs)
    print(f"| {names[e]} | {b['build_s']:.1f} | {b['rss_delta_bytes'] / 1e6:.0f} | {cells} |")
print("\n| ratio to hnswlib (CPU) | " + " | ".join(f"ef {e}" for e in efs) + " |")
print("|---|" + "---|" * len(efs))
for e in ("raftlm", "raftlm_int8"):
    print(f"| {names[e]} | " + " | ".join(f"{best[e][x]['qps_cpu'] / best['hnswlib_native'][x]['qps_cpu']:.2f}x" for x in efs) + " |")
PY
