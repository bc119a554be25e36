#!/usr/bin/env bash
# The paper's recipe on verl 0.9.1: SFT priming (verl's SFT trainer on the expert's episodes),
# then the three GRPO stages with the tool agent loop `thinkfl_agent` (ends the rollout on the
# final print_results, reward from the grader) over `thinkfl serve env`.
#   pip install verl[vllm]==0.9.1
#   MODEL=meta-llama/Llama-3.2-3B-Instruct bash python/thinkfl_rl/recipes/verl.sh
source "$(dirname "$0")/common.sh"
OUT=${OUT:-$ROOT/runs/verl-$MODEL_NAME}
mkdir -p "$OUT"
export_data "$OUT"
PKG=$ROOT/python/thinkfl_rl

# verl's SFT reads parquet: the expert's episodes, converted once.
python3 -c "import pandas as pd; pd.read_json('$OUT/data/sft/train.jsonl', lines=True).to_parquet('$OUT/data/sft/train.parquet')"
torchrun --standalone --nnodes=1 --nproc_per_node="$GPUS" -m verl.trainer.fsdp_sft_trainer \
  data.train_files="$OUT/data/sft/train.parquet" data.val_files="$OUT/data/sft/train.parquet" \
  data.multiturn.enable=true data.multiturn.messages_key=messages data.max_length=8192 \
  data.micro_batch_size_per_gpu=2 model.partial_pretrain="$MODEL" optim.lr=1e-5 \
  trainer.total_epochs=2 trainer.default_local_dir="$OUT/sft" trainer.logger=console \
  trainer.project_name=thinkfl trainer.experiment_name="sft-$MODEL_NAME"
INIT=$(ls -d "$OUT"/sft/global_step_* | sort -V | tail -1)/huggingface
[ -d "$INIT" ] || INIT=$(ls -d "$OUT"/sft/global_step_* | sort -V | tail -1)

for s in "${STAGES[@]}"; do
  read -r name reward lr temp <<<"$s"
  export THINKFL_REWARD=$reward THINKFL_RUN="verl-$MODEL_NAME-$name"
  start_env "$reward" "$OUT/env-$name.log"
  python3 -m verl.trainer.main_ppo \
    algorithm.adv_estimator=grpo algorithm.use_kl_in_reward=false \
    data.train_files="$OUT/data/verl/train.parquet" data.val_files="$OUT/data/verl/test.parquet" \
    data.return_raw_chat=true data.train_batch_size=32 data.max_prompt_length=4096 \
    data.max_response_length=4096 \
    actor_rollout_ref.model.path="$INIT" actor_rollout_ref.actor.optim.lr="$lr" \
    actor_rollout_ref.actor.use_kl_loss=true actor_rollout_ref.actor.kl_loss_coef=0.001 \
    actor_rollout_ref.actor.kl_loss_type=low_var_kl actor_rollout_ref.actor.clip_ratio_low=0.2 \
    actor_rollout_ref.actor.clip_ratio_high=0.28 actor_rollout_ref.actor.ppo_mini_batch_size=32 \
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2 \
    actor_rollout_ref.rollout.name=vllm actor_rollout_ref.rollout.mode=async \
    actor_rollout_ref.rollout.n=8 actor_rollout_ref.rollout.temperature="$temp" \
    actor_rollout_ref.rollout.gpu_memory_utilization=0.5 \
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=2 \
    actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=2 \
    actor_rollout_ref.rollout.multi_turn.enable=true actor_rollout_ref.rollout.multi_turn.format=hermes \
    actor_rollout_ref.rollout.multi_turn.max_assistant_turns=16 \
    actor_rollout_ref.rollout.multi_turn.tool_config_path="$PKG/verl_tools.yaml" \
    actor_rollout_ref.rollout.agent.agent_loop_config_path="$PKG/verl_agent_loop.yaml" \
    custom_reward_function.path="$PKG/verl_reward.py" custom_reward_function.name=compute_score \
    trainer.n_gpus_per_node="$GPUS" trainer.nnodes=1 trainer.total_epochs=1 \
    trainer.save_freq=20 trainer.test_freq=20 trainer.logger=console \
    trainer.default_local_dir="$OUT/$name" trainer.project_name=thinkfl \
    trainer.experiment_name="$name-$MODEL_NAME"
  stop_env
  INIT=$(ls -d "$OUT/$name"/global_step_*/actor/huggingface 2>/dev/null | sort -V | tail -1)
done
echo "trained: $INIT (evaluate: see python/thinkfl_rl/recipes/README.md)"
