#!/usr/bin/env bash
# Build the llama.cpp measuring rig outside the repo (default /work/rigs/llamacpp).
#
# Why this recipe: llama-cpp-python 0.3.36's sdist vendors llama.cpp (commit 0c1e570).
# Instead of compiling llama.cpp twice (once inside pip, once for llama-quantize) we build
# the vendored tree once with cmake (shared libllama + llama-quantize), install the Python
# package with -DLLAMA_BUILD=OFF (bindings only) and point it at our libllama via
# LLAMA_CPP_LIB_PATH. Only PyPI is contacted. ~25-40 min on 2 cores.
set -euo pipefail

RIG=${RIG:-/work/rigs/llamacpp}
HERE=$(cd "$(dirname "$0")" && pwd)
VER=0.3.36
SRC=$RIG/src/llama_cpp_python-$VER
VENDOR=$SRC/vendor/llama.cpp
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2}

mkdir -p "$RIG/src"
[ -x "$RIG/venv/bin/python" ] || python3 -m venv "$RIG/venv"
"$RIG/venv/bin/pip" install -q -U pip

# 1. sdist (vendored llama.cpp incl. tools/, conversion/, gguf-py)
if [ ! -d "$SRC" ]; then
    "$RIG/venv/bin/pip" download --no-binary :all: --no-deps "llama-cpp-python==$VER" -d "$RIG/src"
    tar -C "$RIG/src" -xzf "$RIG/src/llama_cpp_python-$VER.tar.gz"
fi

# 2. llama.cpp, CPU only: shared libs + llama-quantize
cmake -S "$VENDOR" -B "$RIG/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=ON \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_COMMON=ON -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF
cmake --build "$RIG/build" --target llama llama-quantize -j "$CMAKE_BUILD_PARALLEL_LEVEL"

# 3. Python bindings without their own llama.cpp build, plus gguf writer
CMAKE_ARGS="-DLLAMA_BUILD=OFF -DLLAVA_BUILD=OFF" \
    "$RIG/venv/bin/pip" install "$RIG/src/llama_cpp_python-$VER.tar.gz" gguf==0.19.0 numpy

# 4. exact-bytes shim over llama.cpp's memory-breakdown API (our code: qf_breakdown.cpp)
g++ -O2 -std=c++17 -shared -fPIC "$HERE/qf_breakdown.cpp" -o "$RIG/build/libqf_breakdown.so" \
    -I"$VENDOR/include" -I"$VENDOR/src" -I"$VENDOR/ggml/include" \
    -L"$RIG/build/bin" -lllama -lggml-base -Wl,-rpath,"$RIG/build/bin"

LLAMA_CPP_LIB_PATH="$RIG/build/bin" "$RIG/venv/bin/python" -c \
    "import llama_cpp, gguf; print('llama_cpp', llama_cpp.__version__, 'gguf ok')"
echo "export LLAMA_CPP_LIB_PATH=$RIG/build/bin"
