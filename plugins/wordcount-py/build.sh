#!/usr/bin/env bash
# Builds the Python plugin into wordcount.wasm with componentize-py, installed
# into a private virtualenv on first use (from PyPI).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${COMPONENTIZE_PY_VENV:-$here/../../target/componentize-py-venv}
if [[ ! -x $venv/bin/componentize-py ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'componentize-py==0.25.1'
fi
out=${1:-$here/../../target/wasm32-wasip2/release/wordcount-py.wasm}
mkdir -p "$(dirname "$out")"
cd "$here"
"$venv/bin/componentize-py" -d ../../wit -w stage componentize app -o "$out.tmp"
mv "$out.tmp" "$out"
