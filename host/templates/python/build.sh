#!/usr/bin/env bash
# Builds {{name}}.wasm with componentize-py, installed from PyPI on first use
# into a shared virtualenv ($COMPONENTIZE_PY_VENV, else a cache directory).
set -euo pipefail
cd "$(dirname "$0")"
version=0.25.1
venv=${COMPONENTIZE_PY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/orchestrator-host/tools/componentize-py-$version}
if [[ ! -x $venv/bin/componentize-py ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "componentize-py==$version"
fi
"$venv/bin/componentize-py" -d wit -w stage componentize app -o {{name}}.wasm.tmp
mv {{name}}.wasm.tmp {{name}}.wasm
