#!/usr/bin/env bash
# From a fresh clone to a finished pipeline: installs the wasm target, starts
# the local model server, builds the host and the plugin, and runs
# examples/hello/pipeline.toml end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2
if [[ -x ../shared/tools/local-llm-server ]]; then
  tests/local-llm.sh start
else
  echo "note: no local model server found; the 'ask' stage needs an OpenAI-compatible server at the base_url in examples/hello/pipeline.toml" >&2
fi
cargo run -p host -- run examples/hello/pipeline.toml "$@"
