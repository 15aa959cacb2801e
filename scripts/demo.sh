#!/usr/bin/env bash
# Builds and runs qaware's main demo, examples/04_bert_qat_spam.cpp: QAT of a
# byte-level BERT encoder on the SpamAssassin corpus, FP32 vs PTQ vs QAT vs
# the exported INT8 model, for spam classification and masked-byte language
# modelling. Installs what it needs (scripts/setup.sh --demo), fetches the
# corpus when it is missing (scripts/fetch_corpus.sh) and onnxruntime's
# Node.js binding for the ONNX row (scripts/fetch_onnxruntime.sh; without it
# the demo runs and skips that row), builds in Release in
# build/ and runs the program; arguments go to the program (--help lists
# them, --preset full is the long run). Results land in out/spam-demo/.
set -euo pipefail
cd "$(dirname "$0")/.."

target=qaware_bert_qat_spam
jobs=${QAWARE_JOBS:-$(nproc)}

./scripts/setup.sh --demo
data_args=()
if ! printf '%s\n' "$@" | grep -qx -- '--data-dir'; then
  data_args=(--data-dir "$(./scripts/fetch_corpus.sh)")
fi
./scripts/fetch_onnxruntime.sh >/dev/null || echo "demo: onnxruntime could not be installed; the ONNX row is skipped" >&2
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build --target "$target" -j"$jobs"
echo "demo: running build/examples/${target}"
exec "build/examples/${target}" "${data_args[@]}" "$@"
