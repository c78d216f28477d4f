#!/usr/bin/env bash
# Builds what the benchmarks need (an optimised host, the no-op stage, the
# Python example plugin for the large-component figure) and runs `host bench`.
#
#   benches/run.sh                 # every scenario
#   benches/run.sh commit resume   # some of them; any `host bench` flag works
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
cargo build --profile fast -p host
cargo build --release --target wasm32-wasip2 -p noop -p faulty
large=()
if plugins/wordcount-py/build.sh >/dev/null 2>&1; then
  large=(--large target/wasm32-wasip2/release/wordcount-py.wasm)
fi
exec target/fast/host bench "${large[@]}" "$@"
