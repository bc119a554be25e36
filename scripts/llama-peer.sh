#!/usr/bin/env bash
# Builds llama.cpp's `llama-server`, `llama-tokenize` and `llama-bench` from the llama.cpp sources
# vendored in the llama-cpp-python source distribution on PyPI (the only way to get llama.cpp
# here), once, into a cache. They are the independent peers of the tests and benchmarks: an
# OpenAI-compatible server for the client and the actor, a reference tokenizer, and a speed peer.
# Prints the directory holding the binaries. About 10 minutes on 2 cores the first time.
# AMX is switched off: the CPUs here advertise it, but the kernel does not grant the tile state
# to processes, and llama.cpp's AMX kernels then die with SIGILL.
set -euo pipefail
version=0.3.36
cache=${THINKFL_PEERS:-${HOME}/.cache/thinkfl/peers}
out="$cache/llama-cpp-python-$version"
if [ -x "$out/bin/llama-server" ] && [ -x "$out/bin/llama-tokenize" ] && [ -x "$out/bin/llama-bench" ]; then
  echo "$out/bin"
  exit 0
fi
mkdir -p "$cache"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
{
  python3 -m pip install -q cmake ninja scikit-build-core
  # --no-build-isolation: pip only reads the sdist's metadata; nothing is built by pip.
  python3 -m pip download -q --no-deps --no-binary=:all: --no-build-isolation \
    "llama-cpp-python==$version" -d "$work"
  tar -xzf "$work/llama_cpp_python-$version.tar.gz" -C "$work"
  src="$work/llama_cpp_python-$version/vendor/llama.cpp"
  cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF \
    -DCMAKE_C_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" \
    -DCMAKE_CXX_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON
  cmake --build "$work/build" -j"$(nproc)" --target llama-server llama-tokenize llama-bench
  mkdir -p "$out/bin"
  cp "$work/build/bin/llama-server" "$work/build/bin/llama-tokenize" "$work/build/bin/llama-bench" "$out/bin/"
} >&2
echo "$out/bin"
