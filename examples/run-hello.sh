#!/usr/bin/env bash
# From a fresh clone to a finished pipeline: installs the wasm target, starts
# the local model server, builds the host and the plugin, and runs
# examples/hello/pipeline.toml end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2
# The project's own local model (tests/local-llm.sh: everything from PyPI).
tests/local-llm.sh start
cargo run -p host -- run examples/hello/pipeline.toml "$@"
