#!/bin/sh
# `raftlm eval` with 1, 2 and 4 workers (eval.parallel), interleaved, best of N rounds: the 213
# COVID-19 FAQ questions of ../shared/data/covid-faq (each answer a document), stories260K as
# the model, closed_book + rag + oracle at k = 3. Also checks that the answers file is the same
# whatever the number of workers. On a shared machine, wall time favours the side with more
# threads (it gets a larger share of the cores), so CPU seconds are printed too. usage: bench/eval_parallel.sh [build/raftlm] [questions] [rounds]
set -eu
bin=$(realpath "${1:-build/raftlm}")
nq=${2:-40}
rounds=${3:-3}
shared=${RAFTLM_SHARED:-../shared}
[ -d "$shared/data/covid-faq" ] || { echo "eval_parallel: $shared/data/covid-faq not found" >&2; exit 1; }
shared=$(realpath "$shared")
work=${TMPDIR:-/tmp}/raftlm-bench-eval
rm -rf "$work" && mkdir -p "$work/docs"
# the FAQ answers as documents, the questions as the question set (the CSV has quoted fields)
python3 - "$work" "$shared/data/covid-faq/faq_covidbert.csv" <<'PY'
import csv, json, sys
d = sys.argv[1]
with open(d + '/q.jsonl', 'w') as q:
    for i, r in enumerate(csv.DictReader(open(sys.argv[2]))):
        open(d + '/docs/faq-%d.txt' % i, 'w').write(r['answer'])
        q.write(json.dumps({'question': r['question'], 'answer': r['answer'][:80], 'oracle_doc': 'faq-%d.txt' % i}) + '\n')
PY
m=$shared/models/stories260K
printf 'corpus: {paths: [docs]}\nbase_model: %s/stories260K.bin\ntokenizer: %s/tok512.bin\n' "$m" "$m" > "$work/raftlm.yaml"
# "1t": one worker with one BLAS thread (threads: 1), to tell the gain of the workers from that
# of single-threaded matrix-vector products on a small model
sed 's/^corpus/threads: 1\ncorpus/' "$work/raftlm.yaml" > "$work/raftlm-1t.yaml"
"$bin" -q ingest -c "$work/raftlm.yaml"
for r in $(seq "$rounds"); do
    for p in 1 1t 2 4; do
        cfg=$work/raftlm.yaml
        [ "$p" = 1t ] && cfg=$work/raftlm-1t.yaml
        /usr/bin/time -f "%e %U %S" -o "$work/t" "$bin" -q eval -c "$cfg" --questions "$work/q.jsonl" --max-questions "$nq" \
            --modes closed_book,rag,oracle -k 3 --max-new-tokens 32 --parallel "${p%t}" --no-report > /dev/null
        echo "$p $(cat "$work/t")" >> "$work/times"
        cp "$work/out/eval_answers.jsonl" "$work/answers-$p.jsonl"
    done
done
cmp -s "$work/answers-1t.jsonl" "$work/answers-2.jsonl" && cmp -s "$work/answers-1t.jsonl" "$work/answers-4.jsonl" && same=yes || same=NO
cmp -s "$work/answers-1.jsonl" "$work/answers-1t.jsonl" && same1=yes || same1=no
awk -v nq="$nq" -v rounds="$rounds" -v n="$(nproc)" -v load="$(cut -d' ' -f1 /proc/loadavg)" -v same="$same" -v same1="$same1" '
    { if (!($1 in best) || $2 < best[$1]) best[$1] = $2; if (!($1 in cpu) || $3 + $4 < cpu[$1]) cpu[$1] = $3 + $4 }
    END {
        printf "eval: %d questions x 3 tasks, stories260K, %d cores (load average %s), best of %d interleaved rounds\n", nq, n, load, rounds;
        split("1 1t 2 4", order, " ");
        for (i = 1; i <= 4; i++) {
            p = order[i];
            printf "  --parallel %-2s %s %7.2f s wall  %5.2fx   %7.2f s CPU\n", p + 0, p == "1t" ? "(1 BLAS thread)" : "               ", best[p],
                   best["1"] / best[p], cpu[p];
        }
        printf "  answers identical for 1 (1 BLAS thread), 2, 4 workers: %s; 1 worker with 2 BLAS threads the same: %s\n", same, same1;
    }' "$work/times"
rm -rf "$work"
