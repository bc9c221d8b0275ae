#!/usr/bin/env bash
# Capture `llama-server --help` from the llama.cpp tree vendored by llama-cpp-python 0.3.36
# (llama.cpp commit 0c1e57098bba43ac29e6e3b677cdceebdd22334f) as a test fixture.
#
# Needs the rig from benchmarks/llamacpp/build.sh (it unpacks the sdist into $RIG/src).
# Builds only the `llama-server` target, CPU only, in its own build dir ($RIG/build-server),
# so the rig's $RIG/build (whose libllama LLAMA_CPP_LIB_PATH points at) is never touched.
# Only the embedded web UI is left out (LLAMA_BUILD_UI=OFF, LLAMA_USE_PREBUILT_UI=OFF: no npm,
# no download from a Hugging Face bucket); it does not change the command-line options.
# ~20-40 min on 2 cores from scratch (ggml + libllama + common + mtmd + server).
set -euo pipefail

RIG=${RIG:-/work/rigs/llamacpp}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=${OUT:-$REPO/tests/fixtures/runtime_help/llama-server.txt}
VENDOR=$RIG/src/llama_cpp_python-0.3.36/vendor/llama.cpp
BUILD=$RIG/build-server
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2}

[ -d "$VENDOR" ] || { echo "missing $VENDOR: run benchmarks/llamacpp/build.sh first" >&2; exit 1; }

cmake -S "$VENDOR" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=ON \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_COMMON=ON -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF
cmake --build "$BUILD" --target llama-server -j "$CMAKE_BUILD_PARALLEL_LEVEL"

# --help prints to stdout and exits 0; keep stderr (device/backend chatter) out of the fixture.
# Strip trailing blanks so the fixture is diff-stable.
"$BUILD/bin/llama-server" --help 2>/dev/null | sed -e 's/[[:space:]]*$//' > "$OUT"
echo "wrote $OUT ($(wc -l < "$OUT") lines)"
"$BUILD/bin/llama-server" --version 2>&1 | sed -n '1,5p' >&2 || true
