#!/bin/sh
# decode_ab.sh ROUNDS THREADS TYPE NAME=DECODE_BENCH... : decoding (tg128) tokens/s of several
# decode-bench builds (an old and a new one: an A/B of a change) and of llama.cpp's llama-bench
# (LLAMA_BENCH, default /tmp/llama.cpp/build/bin/llama-bench; not part of this repository) on
# GGUF_DIR/smol-qwen3-TYPE.gguf (GGUF_DIR default /tmp/gg), ROUNDS rounds, the order of the
# sides rotating from round to round; prints each side's best, its ratio to llama.cpp's, and
# every run. Example: bench/decode_ab.sh 4 1 f32 old=/tmp/old/decode-bench new=build/decode-bench
set -e
R=$1; TH=$2; TY=$3; shift 3
F=${GGUF_DIR:-/tmp/gg}/smol-qwen3-$TY.gguf
LB=${LLAMA_BENCH:-/tmp/llama.cpp/build/bin/llama-bench}
run() {
    case $1 in
    llama) "$LB" -m "$F" -p 0 -n 128 -t "$TH" -r 1 -o csv 2>/dev/null | tail -1 | awk -F, '{gsub(/"/, ""); print "llama.cpp", $(NF-1)}' ;;
    *) DECODE_BENCH_REPS=1 "${1#*=}" "$F" "$TY" "$TH" | awk -F'|' -v n="${1%%=*}" '/^\| (f|q)/ {print n, $6+0}' ;;
    esac
}
echo "load before: $(uptime)"
set -- "$@" llama
N=$#
for r in $(seq "$R"); do
    k=$(((r - 1) % N)) j=0
    for a in "$@"; do j=$((j + 1)); [ $j -gt $k ] && run "$a"; done
    j=0
    for a in "$@"; do j=$((j + 1)); [ $j -le $k ] && run "$a"; done
done | awk '{ if ($2 > b[$1]) b[$1] = $2; all[$1] = all[$1] " " $2 }
    END { for (k in b) printf "%-12s best %7.1f tokens/s, %.2f x llama.cpp; runs:%s\n", k, b[k], b[k] / b["llama.cpp"], all[k] }' | sort
echo "load after: $(uptime)"
