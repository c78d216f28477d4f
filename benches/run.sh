#!/usr/bin/env bash
# Builds what the benchmarks need (an optimised host, the no-op stage, the
# Python example plugin for the large-component figure, and a plugin from each
# `host plugin new` template for the polyglot figures) and runs `host bench`.
#
#   benches/run.sh                 # every scenario
#   benches/run.sh commit resume   # some of them; any `host bench` flag works
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
cargo build --profile fast -p host --features bench
cargo build --release --target wasm32-wasip2 -p noop -p faulty
large=()
if plugins/wordcount-py/build.sh >/dev/null 2>&1; then
  large=(--large target/wasm32-wasip2/release/wordcount-py.wasm)
fi
# One plugin per template language, built by its own build script (the
# toolchains from tests/setup-plugin-tools.sh); a language that cannot be
# built is left out of the polyglot scenario.
export COMPONENTIZE_PY_VENV=$PWD/target/componentize-py-venv
export COMPONENTIZE_JS_DIR=$PWD/target/componentize-js
plugins=()
for lang in rust python js; do
  dir=target/bench-plugins/bench-$lang
  if [[ ! -f $dir/bench-$lang.wasm ]]; then
    rm -rf "$dir"
    target/fast/host plugin new "bench-$lang" --lang "$lang" --dir "$dir" >/dev/null
    (cd "$dir" && CARGO_TARGET_DIR=$PWD/../rust-target ./build.sh >/dev/null 2>&1) || continue
  fi
  plugins+=(--plugin "$lang=$dir/bench-$lang.wasm")
done
exec target/fast/host bench "${large[@]}" "${plugins[@]}" "$@"
