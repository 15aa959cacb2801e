#!/usr/bin/env bash
# Checks that the Debian packages qaware needs are installed. Run as root it
# installs the missing ones (apt-get update + apt-get install -y); otherwise it
# prints the exact command to run and exits non-zero. Safe to run repeatedly.
#
# Required: cmake, g++, make, libeigen3-dev, libgtest-dev, libbenchmark-dev,
# and clang with its OpenMP runtime (clang, libomp-dev: the consumer tests
# build qaware's API with clang as well as GCC) and its sanitizer and
# libFuzzer runtimes (libclang-rt-14-dev: the fuzzing phase of test.sh);
# ONNX's generated classes and protobuf (libonnx-dev, libprotobuf-dev: the
# ONNX exporter) and npm with Node.js (the ONNX tests run onnxruntime's
# Node.js binding, which scripts/fetch_onnxruntime.sh installs from npm).
# Optional: libdnnl-dev (oneDNN, a yardstick for the INT8 GEMM benchmarks).
# PyTorch is not needed: the test fixtures are committed (tests/data/).
#
#   scripts/setup.sh --yardsticks   also requires what the PyTorch side of the
#                                   benchmarks and the fixture generators in
#                                   tools/ need: python3-torch and OpenBLAS
#                                   (libopenblas0-pthread; without it Debian's
#                                   torch uses the reference BLAS, ~20x slower).
#   scripts/setup.sh --demo         also requires what the main demo needs:
#                                   gnuplot-nox (its loss-curve picture).
set -euo pipefail

required=(cmake g++ make libeigen3-dev libgtest-dev libbenchmark-dev clang libomp-dev libclang-rt-14-dev
          libonnx-dev libprotobuf-dev)
# npm (with Node.js) from Debian unless one is already on PATH.
command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1 || required+=(npm)
optional=(libdnnl-dev)
for arg in "$@"; do
  case "$arg" in
    --yardsticks) required+=(python3-torch libopenblas0-pthread) ;;
    --demo) required+=(gnuplot-nox) ;;
    *) echo "setup: unknown argument '$arg' (known: --yardsticks, --demo)" >&2; exit 2 ;;
  esac
done

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "setup: not a Debian-based system (no dpkg-query); make sure these are installed:" >&2
  echo "  ${required[*]} (optional: ${optional[*]})" >&2
  exit 0
fi

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing=()
for p in "${required[@]}"; do installed "$p" || missing+=("$p"); done
missing_optional=()
for p in "${optional[@]}"; do installed "$p" || missing_optional+=("$p"); done

if [ ${#missing[@]} -eq 0 ] && [ ${#missing_optional[@]} -eq 0 ]; then
  echo "setup: all packages present (${required[*]} ${optional[*]})"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    apt-get install -y "${missing[@]}"
  fi
  if [ ${#missing_optional[@]} -gt 0 ]; then
    echo "setup: installing optional ${missing_optional[*]}"
    apt-get install -y "${missing_optional[@]}" ||
      echo "setup: optional ${missing_optional[*]} not installed; benchmarks run without oneDNN" >&2
  fi
  exit 0
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: required packages present; optional ${missing_optional[*]} is missing (benchmarks run without oneDNN). To add it:"
  echo "  sudo apt-get update && sudo apt-get install -y ${missing_optional[*]}"
  exit 0
fi
echo "setup: missing packages: ${missing[*]}" >&2
echo "Install them as root, then run this script again:" >&2
all=("${missing[@]}" "${missing_optional[@]}")
echo "  sudo apt-get update && sudo apt-get install -y ${all[*]}" >&2
exit 1
