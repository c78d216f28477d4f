#!/usr/bin/env bash
# Builds {{name}}.wasm with componentize-js, installed from npm on first use
# into a shared directory ($COMPONENTIZE_JS_DIR, else a cache directory).
#
# `-d http -d fetch-event` leaves out the JS engine's fetch() and its
# incoming-request handler: they import wasi:http, which the host refuses.
set -euo pipefail
cd "$(dirname "$0")"
version=0.23.0
tools=${COMPONENTIZE_JS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/orchestrator-host/tools/componentize-js-$version}
bin=$tools/node_modules/.bin/componentize-js
if [[ ! -x $bin ]]; then
  mkdir -p "$tools"
  npm install --prefix "$tools" --no-audit --no-fund --loglevel=error "@bytecodealliance/componentize-js@$version"
fi
"$bin" app.js --wit wit --world-name stage -d http -d fetch-event -o {{name}}.wasm.tmp
mv {{name}}.wasm.tmp {{name}}.wasm
