#!/bin/sh
# make demo: the whole RAFT pipeline on the example project (examples/acme), on the CPU, from
# nothing: ingest the handbook, synthesize RAFT data with the extractive teacher, pretrain a small
# student from scratch on the handbook, fine-tune it two ways (DSF: question -> answer; RAFT:
# documents + question -> cited answer), evaluate base, DSF and RAFT closed-book and with
# retrieval on the held-out test documents, and export the RAFT model (GGUF with its tokenizer,
# HF folder; a PEFT adapter when the config says adapter: lora) and the datasets. Stages whose
# inputs did not change are skipped on a rerun.
set -eu
bin=${1:-build/raftlm}
cfg=examples/acme/raftlm.yaml
out=examples/acme/out
t0=$(date +%s)

echo "== raftlm run -c $cfg"
"$bin" run -c "$cfg"

# the run's eval stage evaluated base, DSF and RAFT (eval.models in the config) into out/eval.json;
# the table, from that JSON (`raftlm eval --json`, JSON_INDENT(2): one key per line):
# modes -> mode -> model -> metrics
table() { # file
    awk '
        /^ *\{ *$/ { path[++depth] = ""; next }
        /": \{/ { key = $1; gsub(/[":]/, "", key); path[++depth] = key; next }
        /^ *\},?$/ {
            if (depth == 4 && path[2] == "modes" && path[3] != "retrieval")
                printf "| %-5s | %-11s | %5.3f | %5.3f | %13.3f | %9.3f |\n", path[4], path[3], em, f1, nm, cv
            depth--; next
        }
        /"em":/ { gsub(/[",]/, ""); em = $2 }
        /"f1":/ { gsub(/[",]/, ""); f1 = $2 }
        /"numeric_match":/ { gsub(/[",]/, ""); nm = $2 }
        /"citation_validity":/ { gsub(/[",]/, ""); cv = $2 }
    ' "$1" | sort
}
echo
echo "== held-out test questions (documents never trained on): $(grep -c . $out/datasets/eval_test.jsonl)"
awk '/"recall@1":/ && !r1 { gsub(/[",]/, ""); r1 = $2 } /"recall@3":/ && !r3 { gsub(/[",]/, ""); r3 = $2 }
     END { printf "retrieval (BM25): the oracle document in the top 1 for %.3f of them, in the top 3 for %.3f\n", r1, r3 }' "$out/eval.json"
echo "| model | mode        |  EM   |  F1   | numeric match | citations |"
echo "|-------|-------------|-------|-------|---------------|-----------|"
table "$out/eval.json"
echo
echo "== outputs ($(( $(date +%s) - t0 )) s)"
echo "  RAFT model:          $out/export/model.gguf (with its tokenizer), $out/export/hf/, $out/train/"
echo "  base model:          $out/pretrain/ (pretrained from scratch, tokenizer.json)"
echo "  DSF model:           $out/dsf/"
echo "  report:              $out/report.html (and report.json)"
echo "  datasets:            $out/datasets/ (raft_*.jsonl, eval_*.jsonl, dsf_train.jsonl, pretrain_train.jsonl)"
echo
echo "== serve it (OpenAI-compatible, retrieval from the handbook):"
echo "  $bin serve -c $cfg"
echo "  curl -s http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' \\"
echo "       -d '{\"messages\": [{\"role\": \"user\", \"content\": \"What is the payment term of Isar Getraenke AG?\"}]}'"
