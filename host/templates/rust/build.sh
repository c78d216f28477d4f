#!/usr/bin/env bash
# Builds {{name}}.wasm: the component `host` loads.
set -euo pipefail
cd "$(dirname "$0")"
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
cargo build --release --target wasm32-wasip2
cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/{{crate}}.wasm" {{name}}.wasm.tmp
mv {{name}}.wasm.tmp {{name}}.wasm
