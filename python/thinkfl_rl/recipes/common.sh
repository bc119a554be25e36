#!/usr/bin/env bash
# Shared settings of the recipes: the paper's setting (ThinkFL, arXiv 2504.18776): SFT priming on
# the scripted expert's right episodes, then three GRPO stages with the multi-factor rewards
#   stage 1: R + F        (format and correctness, hot sampling)
#   stage 2: R + 0.8 V    (exploration: the diversity cache of the run)
#   stage 3: R + 0.2 P - 0.2 H  (faithful reasoning)
# Models: Qwen/Qwen2.5-0.5B-Instruct, Qwen/Qwen2.5-3B-Instruct, meta-llama/Llama-3.2-3B-Instruct.
#
# Environment the recipes read (all optional):
#   MODEL      a Hugging Face model id or path (default Qwen/Qwen2.5-0.5B-Instruct)
#   CORPUS     a corpus manifest (default corpus/corpus.json; `thinkfl corpus build --out corpus`)
#   OUT        where checkpoints and exports go (default runs/$(engine)-$(model name))
#   THINKFL    the thinkfl binary (default target/release/thinkfl)
#   GPUS       GPUs on this node (default: nvidia-smi's count)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
MODEL=${MODEL:-Qwen/Qwen2.5-0.5B-Instruct}
CORPUS=${CORPUS:-$ROOT/corpus/corpus.json}
THINKFL=${THINKFL:-$ROOT/target/release/thinkfl}
GPUS=${GPUS:-$(nvidia-smi -L 2>/dev/null | wc -l)}
MODEL_NAME=$(basename "$MODEL")
export PYTHONPATH="$ROOT/python${PYTHONPATH:+:$PYTHONPATH}"
case "$MODEL" in
  *[Ll]lama*) export THINKFL_CHAT_FORMAT=llama3.2 ;;
  *) export THINKFL_CHAT_FORMAT=qwen2.5 ;;
esac
# Stage table: name reward lr temperature (as configs/stages.toml runs them on one machine).
STAGES=("stage1 1 1e-6 1.2" "stage2 2 5e-7 1.0" "stage3 3 3e-7 0.8")
ENV_PORT=${ENV_PORT:-5002}
export THINKFL_ENV_URL=http://127.0.0.1:$ENV_PORT

# The training and held-out questions and the SFT episodes, once per output directory.
export_data() {
  local out=$1
  [ -f "$out/data/.complete" ] && return
  "$THINKFL" export rl-dataset --corpus "$CORPUS" --out "$out/data" --sft
  touch "$out/data/.complete"
}

# `thinkfl serve env` over the corpus's data sets, on loopback; stopped when the recipe exits.
start_env() {
  local reward=$1 log=$2
  "$THINKFL" serve env --corpus "$CORPUS" --addr "127.0.0.1:$ENV_PORT" --reward "$reward" \
    --threads 8 >"$log" 2>&1 &
  ENV_PID=$!
  trap 'kill $ENV_PID 2>/dev/null || true' EXIT
  for _ in $(seq 600); do
    grep -q "thinkfl env server on" "$log" && return
    kill -0 $ENV_PID 2>/dev/null || { cat "$log"; exit 1; }
    sleep 1
  done
  echo "the env server did not start; see $log" >&2
  exit 1
}

stop_env() {
  kill "$ENV_PID" 2>/dev/null || true
  wait "$ENV_PID" 2>/dev/null || true
}
