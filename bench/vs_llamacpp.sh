#!/bin/sh
# vs_llamacpp.sh LLAMA_BENCH GGUF_DIR [ROUNDS] [THREADS...]: decoding (tg128) and prompt (pp128)
# tokens/s of raftlm (build/decode-bench) and llama.cpp (an existing llama-bench binary, given
# by path; llama.cpp is not part of this repository) on the same GGUF files, one run of each
# side after the other (which side goes first alternates from round to round: on this machine
# the second of two back-to-back runs tends to be faster), ROUNDS times (default 5); prints the
# best of each side, the ratio, and for decoding the weight bytes streamed per second (the
# matrices raftlm holds, read once per token; both sides hold the same types).
# GGUF_DIR holds smol-qwen3-TYPE.gguf files written by
#   build/decode-bench --write GGUF_DIR/smol-qwen3-TYPE.gguf TYPE QWEN3_TOKENIZER_DIR
# for TYPE in f32 q8_0 q4_0 q4_k q6_k (those present are measured; TYPES="q8_0 q4_0" picks some).
set -e
LB=$1
DIR=$2
ROUNDS=${3:-5}
shift 2; [ $# -gt 0 ] && shift
THREADS=${*:-"1 2"}
DB=${DECODE_BENCH:-build/decode-bench}
T=$(mktemp)
trap 'rm -f "$T"' EXIT
echo "load before: $(uptime)"
raft() {
    DECODE_BENCH_REPS=1 "$DB" "$f" $ty $th | awk -v ty=$ty -v th=$th -F'|' '/^\| (f32|q)/ {print ty, th, "raftlm", $5+0, $6+0, $3+0}' >> "$T"
}
llama() {
    "$LB" -m "$f" -p 128 -n 128 -t $th -r 1 -o csv 2>/dev/null | awk -v ty=$ty -v th=$th -F, '
        NR == 1 { for (i = 1; i <= NF; i++) { gsub(/"/, "", $i); col[$i] = i } next }
        { gsub(/"/, ""); p = $col["n_prompt"]; ts = $col["avg_ts"]; if (p > 0) pp = ts; else tg = ts }
        END { print ty, th, "llama.cpp", pp, tg, 0 }' >> "$T"
}
for r in $(seq "$ROUNDS"); do
    for th in $THREADS; do
        for ty in ${TYPES:-f32 q8_0 q4_0 q4_k q6_k}; do
            f=$DIR/smol-qwen3-$ty.gguf
            [ -f "$f" ] || continue
            if [ $((r % 2)) -eq 1 ]; then raft; llama; else llama; raft; fi
        done
    done
done
echo "load after: $(uptime)"
echo
echo "| weights | threads | raftlm pp128 | llama.cpp pp128 | ratio | raftlm tg128 | llama.cpp tg128 | ratio | GB/s raftlm, llama.cpp |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
awk '{ k = $1 " " $2; if ($4 > pp[k, $3]) pp[k, $3] = $4; if ($5 > tg[k, $3]) tg[k, $3] = $5; if ($6 > 0) mb[$1] = $6;
       if (!(k in seen)) { seen[k] = 1; order[n++] = k } }
     END { for (i = 0; i < n; i++) { k = order[i]; split(k, a, " ");
           printf "| %s | %s | %.1f | %.1f | %.2f | %.1f | %.1f | %.2f | %.1f, %.1f |\n", a[1], a[2], pp[k, "raftlm"], pp[k, "llama.cpp"],
                  pp[k, "raftlm"] / pp[k, "llama.cpp"], tg[k, "raftlm"], tg[k, "llama.cpp"], tg[k, "raftlm"] / tg[k, "llama.cpp"],
                  mb[a[1]] * tg[k, "raftlm"] / 1000, mb[a[1]] * tg[k, "llama.cpp"] / 1000 } }' "$T"
