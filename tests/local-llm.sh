#!/usr/bin/env bash
# The shared local model server (../shared/tools/local-llm-server), built
# portably. Its default build compiles llama.cpp for the build machine's CPU
# (-march=native); on machines whose CPU reports AMX and AVX-512 that the
# virtual machine does not really enable, that build dies with a general
# protection fault on the first completion. This one targets AVX2 and keeps
# its own cache, so it never reuses a native build.
#
#   tests/local-llm.sh start   # prints the base URL once the server answers
#   tests/local-llm.sh stop
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export LLM_CACHE=${LLM_CACHE:-$HOME/.cache/local-llm-portable}
export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
export FORCE_CMAKE=1
# A wheel cached from a native build must not be reused.
export PIP_NO_CACHE_DIR=1
exec "$here/../../shared/tools/local-llm-server" "$@"
