#!/usr/bin/env bash
# Builds and runs qaware's demo. Until the spam-corpus demo exists (a later
# issue) this is the QAT training example examples/02_qat_teacher_student.cpp
# (an INT8 QAT student and an FP32 student of a BERT block learn to match a
# frozen FP32 teacher block).
set -euo pipefail
cd "$(dirname "$0")/.."

target=qaware_example_qat_teacher_student
jobs=${QAWARE_JOBS:-$(nproc)}

./scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release

# The target's directory, from CMake's list of targets (any generator).
target_dir=$(grep -E "/${target}\.dir$" build/CMakeFiles/TargetDirectories.txt 2>/dev/null | head -n1 || true)
if [ -z "$target_dir" ]; then
  echo "demo: this checkout has no CMake target '${target}' (examples/CMakeLists.txt does not define it yet)." >&2
  echo "demo: nothing to run; ./scripts/test.sh builds and runs the tests." >&2
  exit 1
fi
cmake --build build --target "$target" -j"$jobs"
exe="$(dirname "$(dirname "$target_dir")")/${target}"
echo "demo: running ${exe}"
"$exe" "$@"
