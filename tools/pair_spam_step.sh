#!/usr/bin/env bash
# Paired rounds of the demo's training-step timing: qaware (FP32 and QAT W8A8,
# `qaware_bert_qat_spam --time-steps`) then PyTorch 1.13 FP32
# (tools/bench_spam_torch.py), same model, batch and thread count, alternated
# so that both sides see the same machine load. Prints each round's lines and
# the per-round ratios PyTorch / ours.
#
#   tools/pair_spam_step.sh [ROUNDS] [TASK] [THREADS]      default 3 cls 2
# Needs build/examples/qaware_bert_qat_spam, the corpus (scripts/fetch_corpus.sh)
# and PyTorch (scripts/setup.sh --yardsticks).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
task=${2:-cls}
threads=${3:-2}
exe=build/examples/qaware_bert_qat_spam
for r in $(seq 1 "$rounds"); do
  ours=$("$exe" --time-steps 20 --tasks "$task" --threads "$threads" | tail -n1)
  torch=$(/usr/bin/python3 tools/bench_spam_torch.py --task "$task" --threads "$threads" --steps 20 | tail -n1)
  echo "round $r: $ours"
  echo "round $r: $torch"
  fp32=$(sed -E 's/.*FP32 ([0-9.]+) ms.*/\1/' <<<"$ours")
  qat=$(sed -E 's/.*QAT W8A8 ([0-9.]+) ms.*/\1/' <<<"$ours")
  pt=$(sed -E 's/.*median ([0-9.]+) ms.*/\1/' <<<"$torch")
  awk -v r="$r" -v f="$fp32" -v q="$qat" -v p="$pt" \
    'BEGIN { printf "round %d: PyTorch FP32 / ours: FP32 %.2fx, QAT W8A8 %.2fx\n", r, p / f, p / q }'
done
