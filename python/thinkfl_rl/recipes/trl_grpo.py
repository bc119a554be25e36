"""The paper's recipe on TRL 1.16: SFT priming (`SFTTrainer` on the expert's episodes), then the
three GRPO stages with `GRPOTrainer(environment_factory=ThinkflEnv)`, LoRA adapters, vLLM
colocated. Start `thinkfl serve env --corpus CORPUS --reward N` per stage (the recipe does), or
point THINKFL_ENV_URL at one.

    pip install trl[vllm]==1.16.0 peft
    python python/thinkfl_rl/recipes/trl_grpo.py --model Qwen/Qwen2.5-0.5B-Instruct --data runs/trl/data
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

STAGES = [("stage1", "1", 1e-6, 1.2), ("stage2", "2", 5e-7, 1.0), ("stage3", "3", 3e-7, 0.8)]


def serve_env(thinkfl: str, corpus: str, reward: str, port: int) -> subprocess.Popen:
    log = open(f"env-{reward}.log", "w")
    p = subprocess.Popen(
        [thinkfl, "serve", "env", "--corpus", corpus, "--reward", reward, "--addr", f"127.0.0.1:{port}"],
        stderr=log,
    )
    for _ in range(600):
        if "thinkfl env server on" in Path(log.name).read_text():
            return p
        time.sleep(1)
    raise RuntimeError("the env server did not start")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="Qwen/Qwen2.5-0.5B-Instruct")
    ap.add_argument("--data", required=True, help="the output of `thinkfl export rl-dataset --sft`")
    ap.add_argument("--corpus", default="corpus/corpus.json")
    ap.add_argument("--thinkfl", default="target/release/thinkfl")
    ap.add_argument("--out", default="runs/trl")
    ap.add_argument("--max-steps", type=int, default=200, help="GRPO steps per stage")
    ap.add_argument("--sft-steps", type=int, default=-1)
    ap.add_argument("--port", type=int, default=5002)
    a = ap.parse_args()

    from datasets import load_dataset
    from peft import LoraConfig
    from trl import GRPOConfig, GRPOTrainer, SFTConfig, SFTTrainer

    from thinkfl_rl.trl_env import ThinkflEnv

    os.environ["THINKFL_ENV_URL"] = f"http://127.0.0.1:{a.port}"
    lora = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")
    sft = load_dataset("json", data_files=f"{a.data}/sft/train.jsonl", split="train")
    SFTTrainer(
        model=a.model,
        train_dataset=sft.select_columns(["messages"]),
        peft_config=lora,
        args=SFTConfig(output_dir=f"{a.out}/sft", num_train_epochs=2, max_steps=a.sft_steps,
                       learning_rate=1e-4, assistant_only_loss=True, bf16=True),
    ).save_model(f"{a.out}/sft")
    init = f"{a.out}/sft"
    train = load_dataset("json", data_files=f"{a.data}/trl/train.jsonl", split="train")
    for name, reward, lr, temp in STAGES:
        os.environ["THINKFL_REWARD"] = reward
        os.environ["THINKFL_RUN"] = f"trl-{Path(a.model).name}-{name}"
        env = serve_env(a.thinkfl, a.corpus, reward, a.port)
        try:
            cfg = GRPOConfig(
                # LoRA takes a larger rate than the full fine-tunes of the shell recipes.
                output_dir=f"{a.out}/{name}", learning_rate=lr * 100, temperature=temp,
                num_generations=8, per_device_train_batch_size=8, max_steps=a.max_steps,
                max_completion_length=4096, beta=0.001, epsilon=0.2, epsilon_high=0.28,
                use_vllm=True, vllm_mode="colocate", bf16=True, logging_steps=1,
                max_tool_calling_iterations=16,
            )
            trainer = GRPOTrainer(model=init, train_dataset=train, args=cfg,
                                  environment_factory=ThinkflEnv, peft_config=lora)
            trainer.train()
            trainer.save_model(f"{a.out}/{name}")
        finally:
            env.terminate()
        init = f"{a.out}/{name}"
    print(f"trained: {init}")


if __name__ == "__main__":
    main()
