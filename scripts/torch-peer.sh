#!/usr/bin/env bash
# Installs the PyTorch peer of `thinkfl bench train` (torch, transformers, gguf, peft from PyPI)
# into a venv in the peers cache, once, and prints its python. PyPI's Linux x86_64 torch wheel is
# the CUDA build, so this pulls the nvidia-* wheels too (about 5.5 GB) although only the CPU is
# used. `thinkfl bench train` finds the venv there, or any Python named by THINKFL_TORCH_PYTHON.
set -euo pipefail
cache=${THINKFL_PEERS:-${HOME}/.cache/thinkfl/peers}
venv="$cache/torch"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import torch, transformers, gguf, peft" 2>/dev/null; then
  echo "$venv/bin/python"
  exit 0
fi
mkdir -p "$cache"
{
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch transformers gguf peft
} >&2
echo "$venv/bin/python"
