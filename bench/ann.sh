#!/bin/sh
# Side-by-side ANN benchmark: raftlm's HNSW (float32 and int8) against hnswlib and FAISS's
# IndexHNSWFlat (Debian's python3-hnswlib, python3-faiss; and hnswlib's headers from
# libhnswlib-dev compiled with -march=native, bench/ann_hnswlib.cpp), same vectors, same M /
# ef_construction / ef, same build threads, single-thread search, recall@10 against exact
# ground truth. Prints a Markdown report (bench/ann_report.py) and keeps the JSON results.
#
#   bench/ann.sh [build/raftlm] [N] [NQ] [ROUNDS]
#   env: ANN_DATA (folder for the generated sets, default $TMPDIR/raftlm-ann), ANN_THREADS (2),
#        ANN_SETS ("embed hard"), ANN_EF (10,20,40,80,160,320), ANN_REPEAT (3),
#        ANN_ENGINES ("raftlm raftlm_int8 hnswlib_native hnswlib faiss"), ANN_OUT (results folder)
#
# Each round runs the engines one after the other on each set; the report keeps each engine's
# best round. The machine is shared, so the report also gives queries per CPU-second of the
# searching thread, which other processes disturb less than wall time does.
set -eu
bin=${1:-build/raftlm}
n=${2:-100000}
nq=${3:-1000}
rounds=${4:-1}
data=${ANN_DATA:-${TMPDIR:-/tmp}/raftlm-ann}
threads=${ANN_THREADS:-2}
sets=${ANN_SETS:-embed hard}
efs=${ANN_EF:-10,20,40,80,160,320}
repeat=${ANN_REPEAT:-3}
engines=${ANN_ENGINES:-raftlm raftlm_int8 hnswlib_native hnswlib faiss}
want() { case " $engines " in *" $1 "*) return 0 ;; esac; return 1; }
py=/usr/bin/python3
here=$(dirname "$0")
$py -c 'import numpy, hnswlib, faiss' 2>/dev/null || {
    echo "bench/ann.sh needs python3-numpy python3-hnswlib python3-faiss (apt-get install them)" >&2
    exit 1
}
out=${ANN_OUT:-$data/results}
mkdir -p "$out"
# hnswlib's headers (libhnswlib-dev) built for this CPU: the strongest hnswlib
native=""
if [ -f /usr/include/hnswlib/hnswlib.h ] && command -v g++ >/dev/null; then
    g++ -O3 -march=native -std=c++17 -pthread "$here/ann_hnswlib.cpp" -o "$data/ann_hnswlib" && native="$data/ann_hnswlib"
else
    echo "no libhnswlib-dev or g++: skipping hnswlib built with -march=native" >&2
fi
for set in $sets; do
    d=$data/$set-$n
    [ -f "$d/gt.ivecs" ] || $py "$here/ann_gen.py" "$d" "$set" "$n" "$nq" >&2
done
round=1
while [ "$round" -le "$rounds" ]; do
    for set in $sets; do
        d=$data/$set-$n
        metric=$(cat "$d/meta")
        common="--M 16 --ef-construction 200 --ef $efs --threads $threads --repeat $repeat"
        if want raftlm; then
            echo "round $round: $set: raftlm" >&2
            "$bin" -q bench ann --base "$d/base.fvecs" --query "$d/query.fvecs" --gt "$d/gt.ivecs" --metric "$metric" \
                $common --save "$data/index.tmp" --json > "$out/$set-raftlm-$round.json"
        fi
        if want raftlm_int8; then
            echo "round $round: $set: raftlm --int8" >&2
            "$bin" -q bench ann --base "$d/base.fvecs" --query "$d/query.fvecs" --gt "$d/gt.ivecs" --metric "$metric" \
                $common --int8 --save "$data/index.tmp" --json > "$out/$set-raftlm_int8-$round.json"
        fi
        if [ -n "$native" ] && want hnswlib_native; then
            echo "round $round: $set: hnswlib -march=native" >&2
            "$native" "$d" 16 200 "$efs" "$threads" 10 "$repeat" > "$out/$set-hnswlib_native-$round.json"
        fi
        for peer in hnswlib faiss; do
            want $peer || continue
            echo "round $round: $set: $peer" >&2
            $py "$here/ann_peers.py" "$peer" "$d" $common > "$out/$set-$peer-$round.json"
        done
    done
    round=$((round + 1))
done
rm -f "$data/index.tmp"
$py "$here/ann_report.py" "$out" $sets
