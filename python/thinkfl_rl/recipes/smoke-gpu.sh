#!/usr/bin/env bash
# A short GPU smoke run of every engine that is installed: a small simulated data set, its export,
# `thinkfl serve env`, and a few steps of each engine with a tiny model (Qwen2.5-0.5B-Instruct,
# LoRA where the engine has it). Prints one line per engine: ran / skipped (not installed) /
# failed (with its log). Needs a GPU, the engines, the model in the Hugging Face cache (or
# network), and a built thinkfl (target/release/thinkfl or THINKFL=...). Takes ~10 minutes.
#   bash python/thinkfl_rl/recipes/smoke-gpu.sh
source "$(dirname "$0")/common.sh"
MODEL=${SMOKE_MODEL:-Qwen/Qwen2.5-0.5B-Instruct}
export THINKFL_CHAT_FORMAT=qwen2.5
OUT=${OUT:-$(mktemp -d /tmp/thinkfl-smoke.XXXXXX)}
PKG=$ROOT/python/thinkfl_rl
nvidia-smi -L || { echo "no GPU: nothing to smoke-test" >&2; exit 1; }
"$THINKFL" simulate --preset online-boutique --duration 1h --faults 8 --seed 3 --out "$OUT/sim"
"$THINKFL" export rl-dataset --data "$OUT/sim" --held-out-fraction 0.25 --out "$OUT/data" --sft
"$THINKFL" serve env --data "$OUT/sim" --addr "127.0.0.1:$ENV_PORT" --reward 1 >"$OUT/env.log" 2>&1 &
ENV_PID=$!
trap 'kill $ENV_PID 2>/dev/null || true' EXIT
until grep -q "thinkfl env server on" "$OUT/env.log"; do sleep 0.5; done
export THINKFL_REWARD=1 THINKFL_RUN=smoke
declare -A result

if python3 -c "import openrlhf, vllm" 2>/dev/null; then
  ray start --head --num-gpus 1 >/dev/null 2>&1 || true
  if timeout 1200 python3 -m openrlhf.cli.train_ppo_ray \
      --actor.model_name_or_path "$MODEL" --actor.num_nodes 1 --actor.num_gpus_per_node 1 \
      --ref.num_nodes 1 --ref.num_gpus_per_node 1 --vllm.num_engines 1 \
      --vllm.gpu_memory_utilization 0.3 --train.colocate_all --vllm.enable_sleep \
      --train.agent_func_path "$PKG/openrlhf_agent.py" \
      --data.prompt_dataset "$OUT/data/openrlhf/train.jsonl" --data.input_key prompt \
      --data.label_key label --data.apply_chat_template --data.max_samples 4 \
      --algo.advantage.estimator group_norm --rollout.n_samples_per_prompt 2 \
      --rollout.batch_size 4 --rollout.micro_batch_size 2 --rollout.max_new_tokens 256 \
      --data.max_len 6144 --train.batch_size 8 --train.micro_batch_size 1 \
      --train.num_episodes 1 --ds.zero_stage 0 --ds.param_dtype bf16 \
      --ds.lora.rank 8 --ds.lora.alpha 16 --ckpt.output_dir "$OUT/openrlhf" >"$OUT/openrlhf.log" 2>&1; then
    result[openrlhf]=ran
  else result[openrlhf]="failed ($OUT/openrlhf.log)"; fi
else result[openrlhf]="skipped (not installed)"; fi

if python3 -c "import trl, peft, vllm" 2>/dev/null; then
  if timeout 1200 python3 - "$MODEL" "$OUT" >"$OUT/trl.log" 2>&1 <<'PY'
import sys
from datasets import load_dataset
from peft import LoraConfig
from trl import GRPOConfig, GRPOTrainer
from thinkfl_rl.trl_env import ThinkflEnv
model, out = sys.argv[1], sys.argv[2]
train = load_dataset("json", data_files=f"{out}/data/trl/train.jsonl", split="train")
cfg = GRPOConfig(output_dir=f"{out}/trl", max_steps=2, num_generations=2, per_device_train_batch_size=2,
                 max_completion_length=1024, use_vllm=True, vllm_mode="colocate",
                 vllm_gpu_memory_utilization=0.3, bf16=True, logging_steps=1, max_tool_calling_iterations=8)
GRPOTrainer(model=model, train_dataset=train, args=cfg, environment_factory=ThinkflEnv,
            peft_config=LoraConfig(r=8, target_modules="all-linear", task_type="CAUSAL_LM")).train()
PY
  then result[trl]=ran; else result[trl]="failed ($OUT/trl.log)"; fi
else result[trl]="skipped (not installed)"; fi

if python3 -c "import verl, vllm" 2>/dev/null; then
  if timeout 1200 python3 -m verl.trainer.main_ppo algorithm.adv_estimator=grpo \
      data.train_files="$OUT/data/verl/train.parquet" data.val_files="$OUT/data/verl/test.parquet" \
      data.return_raw_chat=true data.train_batch_size=4 data.max_prompt_length=4096 \
      data.max_response_length=2048 actor_rollout_ref.model.path="$MODEL" \
      actor_rollout_ref.actor.ppo_mini_batch_size=4 actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=1 \
      actor_rollout_ref.rollout.name=vllm actor_rollout_ref.rollout.mode=async actor_rollout_ref.rollout.n=2 \
      actor_rollout_ref.rollout.gpu_memory_utilization=0.3 \
      actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=1 \
      actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=1 \
      actor_rollout_ref.rollout.multi_turn.enable=true actor_rollout_ref.rollout.multi_turn.format=hermes \
      actor_rollout_ref.rollout.multi_turn.tool_config_path="$PKG/verl_tools.yaml" \
      actor_rollout_ref.rollout.agent.agent_loop_config_path="$PKG/verl_agent_loop.yaml" \
      custom_reward_function.path="$PKG/verl_reward.py" custom_reward_function.name=compute_score \
      trainer.n_gpus_per_node=1 trainer.nnodes=1 trainer.total_training_steps=2 trainer.logger=console \
      trainer.val_before_train=false trainer.default_local_dir="$OUT/verl" >"$OUT/verl.log" 2>&1; then
    result[verl]=ran
  else result[verl]="failed ($OUT/verl.log)"; fi
else result[verl]="skipped (not installed)"; fi

for e in openrlhf trl verl; do echo "$e: ${result[$e]}"; done
