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
now() { date +%s.%N; }
t0=$(now)
"$bin" -q ingest --store "$work/store" "$work/corpus"
t1=$(now)
"$bin" -q ingest --store "$work/store" "$work/corpus"
t2=$(now)
chunks=$(sqlite3 "$work/store/store.db" "select count(*) from chunks")
dbsize=$(du -sb "$work/store" | cut -f1)
awk -v b="$bytes" -v f="$files" -v c="$chunks" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v d="$dbsize" -v n="$(nproc)" 'BEGIN {
    s = t1 - t0; r = t2 - t1;
    printf "ingest: %.1f MB in %d files -> %d chunks of <=256 tokens, %d threads\n", b / 1e6, f, c, n;
    printf "  first ingest    %6.2f s   %6.1f MB/s   %8.0f chunks/s\n", s, b / 1e6 / s, c / s;
    printf "  re-ingest (no change) %6.3f s\n", r;
    printf "  store size      %6.1f MB (%.2fx the corpus: text + chunks + FTS index)\n", d / 1e6, d / b;
}'
rm -rf "$work"
