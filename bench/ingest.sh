#!/bin/sh
# Ingest benchmark: a generated 50 MB corpus (Markdown, text, HTML), ingested from scratch,
# then re-ingested with nothing changed. Prints MB/s and chunks/s; docs/benchmarks.md keeps
# the numbers. usage: bench/ingest.sh [build/raftlm] [MB]
set -eu
bin=${1:-build/raftlm}
mb=${2:-50}
work=${TMPDIR:-/tmp}/raftlm-bench-ingest
rm -rf "$work" && mkdir -p "$work"
cc -O2 -o "$work/gen_corpus" bench/gen_corpus.c
"$work/gen_corpus" "$work/corpus" "$mb" > /dev/null
bytes=$(du -sb "$work/corpus" | cut -f1)
files=$(find "$work/corpus" -type f | wc -l)
# wall and CPU seconds: the CPU time is what to compare on a shared, busy machine
/usr/bin/time -f "%e %U %S" -o "$work/t1" "$bin" -q ingest --store "$work/store" "$work/corpus"
/usr/bin/time -f "%e %U %S" -o "$work/t2" "$bin" -q ingest --store "$work/store" "$work/corpus"
read s1 u1 k1 < "$work/t1"
read s2 u2 k2 < "$work/t2"
chunks=$(sqlite3 "$work/store/store.db" "select count(*) from chunks")
dbsize=$(du -sb "$work/store" | cut -f1)
awk -v b="$bytes" -v f="$files" -v c="$chunks" -v s="$s1" -v cpu="$(echo "$u1 + $k1" | bc)" -v r="$s2" -v d="$dbsize" \
    -v n="$(nproc)" -v load="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
    printf "ingest: %.1f MB in %d files -> %d chunks of <=256 tokens, %d threads (load average %s)\n", b / 1e6, f, c, n, load;
    printf "  first ingest    %6.2f s wall  %6.1f MB/s   %8.0f chunks/s\n", s, b / 1e6 / s, c / s;
    printf "                  %6.2f s CPU   %6.1f MB per CPU-second\n", cpu, b / 1e6 / cpu;
    printf "  re-ingest (no change) %6.3f s\n", r;
    printf "  store size      %6.1f MB (%.2fx the corpus: text + chunks + FTS index)\n", d / 1e6, d / b;
}'
rm -rf "$work"
