#!/usr/bin/env bash
# The paper's recipe on OpenRLHF 0.11.2 (Ray + vLLM + DeepSpeed; dotted flags): SFT priming,
# then the three GRPO stages (group_norm advantages, 8 samples per prompt) as multi-turn agent
# rollouts whose environment and reward are `thinkfl serve env`.
#   pip install openrlhf[vllm]==0.11.2 && ray start --head
#   MODEL=Qwen/Qwen2.5-3B-Instruct bash python/thinkfl_rl/recipes/openrlhf.sh
source "$(dirname "$0")/common.sh"
OUT=${OUT:-$ROOT/runs/openrlhf-$MODEL_NAME}
mkdir -p "$OUT"
export_data "$OUT"

# Stage 0: SFT on the expert's right episodes (multi-turn chat; loss on the assistant turns).
deepspeed --module openrlhf.cli.train_sft \
  --model.model_name_or_path "$MODEL" --data.dataset "$OUT/data/sft/train.jsonl" \
  --data.multiturn --data.input_key messages --data.apply_chat_template --data.max_len 8192 \
  --train.batch_size 64 --train.micro_batch_size 2 --train.max_epochs 2 --adam.lr 1e-5 \
  --ds.zero_stage 2 --ds.param_dtype bf16 --model.gradient_checkpointing_enable \
  --ckpt.output_dir "$OUT/sft"

INIT=$OUT/sft
for s in "${STAGES[@]}"; do
  read -r name reward lr temp <<<"$s"
  export THINKFL_REWARD=$reward THINKFL_RUN="openrlhf-$MODEL_NAME-$name"
  start_env "$reward" "$OUT/env-$name.log"
  python3 -m openrlhf.cli.train_ppo_ray \
    --actor.model_name_or_path "$INIT" --actor.num_nodes 1 --actor.num_gpus_per_node "$GPUS" \
    --ref.num_nodes 1 --ref.num_gpus_per_node "$GPUS" \
    --vllm.num_engines "$GPUS" --vllm.tensor_parallel_size 1 --vllm.gpu_memory_utilization 0.5 \
    --vllm.enable_prefix_caching --train.colocate_all \
    --train.agent_func_path "$ROOT/python/thinkfl_rl/openrlhf_agent.py" \
    --data.prompt_dataset "$OUT/data/openrlhf/train.jsonl" --data.input_key prompt \
    --data.label_key label --data.apply_chat_template \
    --eval.dataset "$OUT/data/openrlhf/test.jsonl" --eval.steps 20 \
    --algo.advantage.estimator group_norm --rollout.n_samples_per_prompt 8 \
    --algo.kl.init_coef 0.001 --algo.kl.estimator k3 --actor.eps_clip_low_high 0.2 0.28 \
    --algo.dynamic_filtering_enable --algo.dynamic_filtering_range 0.0 3.0 \
    --rollout.batch_size 32 --rollout.micro_batch_size 8 --rollout.temperature "$temp" \
    --rollout.max_new_tokens 512 --data.max_len 8192 \
    --train.batch_size 256 --train.micro_batch_size 4 --train.max_epochs 1 --train.num_episodes 1 \
    --actor.adam.lr "$lr" --ds.zero_stage 3 --ds.param_dtype bf16 \
    --actor.gradient_checkpointing_enable --ckpt.save_hf --ckpt.output_dir "$OUT/$name"
  stop_env
  INIT=$OUT/$name
done
echo "trained: $INIT (evaluate: see python/thinkfl_rl/recipes/README.md)"
