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

# base and DSF are evaluated here; the RAFT model by the run's eval stage (out/eval.json).
# (With eval.models in the config, one eval stage does all three.)
echo
echo "== raftlm eval -c $cfg --model $out/pretrain --name base"
"$bin" eval -c "$cfg" --model "$out/pretrain" --name base --json > "$out/eval_base.json"
echo "== raftlm eval -c $cfg --model $out/dsf --name dsf"
"$bin" eval -c "$cfg" --model "$out/dsf" --name dsf --json > "$out/eval_dsf.json"

# the table, from the JSON that `raftlm eval --json` prints (JSON_INDENT(2): one key per line)
table() { # file name
    awk -v name="$2" '
        /"(closed_book|rag|oracle)": \{/ { gsub(/[":{ ]/, ""); mode = $0; next }
        mode && /"em":/ { gsub(/[",]/, ""); em = $2 }
        mode && /"f1":/ { gsub(/[",]/, ""); f1 = $2 }
        mode && /"numeric_match":/ { gsub(/[",]/, ""); nm = $2 }
        mode && /"citation_validity":/ { gsub(/[",]/, ""); cv = $2 }
        mode && /}/ { printf "| %-5s | %-11s | %5.3f | %5.3f | %5.3f | %5.3f |\n", name, mode, em, f1, nm, cv; mode = "" }
    ' "$1"
}
echo
echo "== held-out test questions (documents never trained on): $(grep -c . $out/datasets/eval_test.jsonl)"
awk '/"recall@1":/ { gsub(/[",]/, ""); r1 = $2 } /"recall@3":/ { gsub(/[",]/, ""); r3 = $2 }
     END { printf "retrieval (BM25): the oracle document in the top 1 for %.3f of them, in the top 3 for %.3f\n", r1, r3 }' "$out/eval.json"
echo "| model | mode        |  EM   |  F1   | numeric match | citations |"
echo "|-------|-------------|-------|-------|-------|-------|"
table "$out/eval_base.json" base
table "$out/eval_dsf.json" dsf
table "$out/eval.json" raft
echo
echo "== outputs ($(( $(date +%s) - t0 )) s)"
echo "  RAFT model:          $out/export/model.gguf (with its tokenizer), $out/export/hf/, $out/train/"
echo "  base model:          $out/pretrain/ (pretrained from scratch, tokenizer.json)"
echo "  DSF model:           $out/dsf/"
echo "  datasets:            $out/datasets/ (raft_*.jsonl, eval_*.jsonl, dsf_train.jsonl, pretrain_train.jsonl)"
echo
echo "== serve it (OpenAI-compatible, retrieval from the handbook):"
echo "  $bin serve -c $cfg"
echo "  curl -s http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' \\"
echo "       -d '{\"messages\": [{\"role\": \"user\", \"content\": \"What is the payment term of Isar Getraenke AG?\"}]}'"
