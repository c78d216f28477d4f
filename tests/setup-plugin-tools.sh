#!/usr/bin/env bash
# Installs the toolchains the plugin templates build with, from the package
# registries, where the tests look for them (idempotent):
#   target/componentize-py-venv  componentize-py (PyPI), for Python plugins
#   target/componentize-js       @bytecodealliance/componentize-js (npm), for JS plugins
# Needs python3 with venv, and Node.js 20+ with npm.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v npm >/dev/null; then
  # CI runs as root on Debian: Node.js from apt when the machine has none.
  apt-get update -qq && apt-get install -y -qq nodejs npm
fi
py_version=0.25.1
js_version=0.23.0
venv=target/componentize-py-venv
if [[ ! -x $venv/bin/componentize-py ]] || ! "$venv/bin/componentize-py" --version | grep -q "$py_version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "componentize-py==$py_version"
fi
js=target/componentize-js
if [[ ! -x $js/node_modules/.bin/componentize-js ]] || ! grep -q "\"version\": \"$js_version\"" "$js/node_modules/@bytecodealliance/componentize-js/package.json"; then
  mkdir -p "$js"
  npm install --prefix "$js" --no-audit --no-fund --loglevel=error "@bytecodealliance/componentize-js@$js_version"
fi
echo "plugin tools: componentize-py $py_version, componentize-js $js_version"
