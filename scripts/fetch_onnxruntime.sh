#!/usr/bin/env bash
# Installs onnxruntime's Node.js binding (npm package onnxruntime-node, whose
# CPU library is bundled) into a git-ignored cache for the ONNX tests and the
# demo, and prints the folder that holds its node_modules (what the tests
# take as QAWARE_ONNXRUNTIME_DIR). Nothing is fetched when the cache already
# holds it.
#
# The package's install script downloads CUDA binaries from GitHub, which is
# unreachable here and not needed: ONNXRUNTIME_NODE_INSTALL=skip keeps the
# bundled CPU library only.
#
#   scripts/fetch_onnxruntime.sh [CACHE_DIR]    default: .cache/onnxruntime
set -euo pipefail
cd "$(dirname "$0")/.."

version=1.30.0
cache=${1:-.cache/onnxruntime}
pkg="$cache/node_modules/onnxruntime-node"

if [ -f "$pkg/package.json" ] && grep -q "\"version\": \"$version\"" "$pkg/package.json"; then
  echo "$cache"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "fetch_onnxruntime: node and npm are needed (scripts/setup.sh installs them)" >&2
  exit 1
fi
mkdir -p "$cache"
[ -f "$cache/package.json" ] || echo '{ "name": "qaware-onnxruntime-cache", "private": true }' > "$cache/package.json"
echo "fetch_onnxruntime: npm install onnxruntime-node@${version} into $cache" >&2
(cd "$cache" && ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund --loglevel=error \
  "onnxruntime-node@${version}" >&2)
# The binding must load: a package without its CPU library is no use.
if ! (cd "$cache" && node -e "require('onnxruntime-node')" >&2); then
  echo "fetch_onnxruntime: onnxruntime-node installed but does not load" >&2
  exit 1
fi
echo "$cache"
