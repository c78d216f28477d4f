#!/usr/bin/env bash
# Runs the AI-coding example end to end on a fresh copy of its project, with
# a real local model (no API key needed):
#
#   examples/run-ai-coding.sh [host run flags...]     e.g. --set triage.risk=HIGH
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
if [[ -z ${LOCAL_LLM_URL:-} ]]; then
  tests/local-llm.sh start >/dev/null
fi
work=target/ai-coding-workspace
rm -rf "$work" && mkdir -p "$work" && cp -r examples/ai-coding/project/. "$work/"
cargo build -p host
status=0
target/debug/host run examples/ai-coding/pipeline.toml --workspace "$work" "$@" || status=$?
echo "the changed project is in $work (exit $status)"
exit $status
