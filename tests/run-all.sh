#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints (host and plugins),
# unit tests, and integration tests that run real components in the real host
# against a real local model.
#
#   tests/run-all.sh
#
# Env: LOCAL_LLM_URL to use an already running OpenAI-compatible server
# instead of starting the project's own (tests/local-llm.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

# Headless Chromium for the dashboard test (tests/dashboard.rs), from Debian.
command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

rustup target add wasm32-wasip2 >/dev/null 2>&1 || rustup target list --installed | grep -q wasm32-wasip2
# componentize-py (PyPI) and componentize-js (npm), for the plugin templates' test.
tests/setup-plugin-tools.sh

if [[ -z ${LOCAL_LLM_URL:-} ]]; then
  LOCAL_LLM_URL=$(tests/local-llm.sh start | tail -n1)
  export LOCAL_LLM_URL
fi
echo "local model: $LOCAL_LLM_URL"

cargo fmt --all --check
cargo build --release --target wasm32-wasip2 -p hello -p faulty -p noop -p netgrab \
  -p triage -p discovery -p planning -p execution -p verification -p ship \
  -p lsl-baseline -p lsl-harden -p lsl-evaluate
# The host with its test-only features (bench scenarios, crash points): the
# tests drive `host bench` and HOST_FAILPOINT, a shipped build has neither.
features=(--features host/bench,host/failpoints)
cargo clippy --all-targets "${features[@]}" -- -D warnings
cargo clippy --target wasm32-wasip2 -p plugin-sdk -p plugin-helpers -p hello -p faulty -p noop -p netgrab \
  -p triage -p discovery -p planning -p execution -p verification -p ship \
  -p lsl-core -p lsl-baseline -p lsl-harden -p lsl-evaluate -- -D warnings
cargo test --no-fail-fast "${features[@]}" -p host -p host-vocab -p host-manifest -p host-store \
  -p host-runtime -p host-capabilities -p host-workspace -p plugin-sdk -p plugin-helpers -p triage -p ship -p lsl-core
