#!/usr/bin/env python3
"""PyTorch peer of thinkfl's LoRA training step (issue 8): the same step on the same model,
timed the same way, so that `examples/train_step_bench.rs` of thinkfl-bench can be read beside it.

The step: SmolLM2-135M in f32 on CPU with LoRA r=8, alpha=16 on q,k,v,o,gate,up,down; a forward
over a [B, T] batch of token ids, cross-entropy (mean over trained tokens) on a mask of the last
15% of each sequence, backward into the adapters, gradient clipping to norm 1 and AdamW
(lr 2e-4, betas 0.9/0.999, eps 1e-8, no weight decay), the settings that train_step_bench.rs
pins. Tokens/s is B*T over the wall time of the whole step (forward, backward, optimizer), as
thinkfl's UpdateStats counts it, averaged over the timed steps after the warm-up ones. With
B > 1 torch runs the batch as one [B, T] tensor, where thinkfl runs its sequences one after
the other and sums their gradients (same loss and gradient, different speed and memory).

Ids and mask are those of the Rust bench: id_i = (i * 7919) % 40000 + 100, position j is trained
when j >= T*85/100 (integer division). Because the adapters start as the identity (B = 0), the
first step's loss is the base model's and must match the Rust bench's (it did to the 4 decimals
printed): a check that both load the same weights. Later losses differ a little, since the
random A matrices differ.

`--logits full` projects every position onto the vocabulary (a plain `model(ids).logits`);
`--logits targets` projects only the rows that predict a trained token, as thinkfl's
`token_logprobs` does. The default runs both.

Weights: the GGUF that thinkfl uses (`thinkfl model path smollm2-135m`, fetched by
`thinkfl model fetch smollm2-135m`), loaded by transformers' GGUF reader (the `gguf` package
dequantizes Q4_1 to f32 and undoes llama.cpp's q/k row permutation) into LlamaForCausalLM.
LoRA comes from PEFT when it is installed (`--lora peft`), else from the small module below
(`--lora own`; same forward: x W^T + (alpha/r) x A^T B^T).

Install (only PyPI is reachable here, and PyPI's Linux x86_64 torch wheel is the CUDA build:
its libraries link against the nvidia-* wheels, so they have to be installed too even though
only the CPU is used; about 5.5 GB in the venv):

    python3 -m venv /tmp/torchenv
    /tmp/torchenv/bin/pip install torch transformers gguf peft
    /tmp/torchenv/bin/python scripts/torch-train-step.py            # B=1, T=512 and 1024
    /tmp/torchenv/bin/python scripts/torch-train-step.py --batch 2 --seq 256 --logits targets

Each (T, logits) configuration runs in its own process so that the peak RSS printed is that
configuration's alone.

Threads: torch's OpenMP workers spin-wait at each barrier; on this 2-core machine shared with
other jobs a descheduled worker then stalls the rest (an AdamW step of 2.4M parameters took
1-3 s instead of 0.03 s). `--threads 1`, or OMP_WAIT_POLICY=PASSIVE in the environment, shows
how much of a figure is that.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

DEFAULT_MODEL = os.path.expanduser("~/.cache/thinkfl/models/SmolLM2-135M-Instruct.Q4_1.gguf")
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=DEFAULT_MODEL, help="GGUF file (default: thinkfl's cache)")
    p.add_argument("--batch", type=int, default=1, help="sequences per step (B)")
    p.add_argument("--seq", default="512,1024", help="sequence lengths T, comma-separated")
    p.add_argument("--logits", default="full,targets", help="full, targets or both (comma-separated)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--steps", type=int, default=3, help="timed steps")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--lora", choices=["peft", "own"], default=None, help="default: peft if installed")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--seed", type=int, default=0, help="torch seed (the adapters' A init)")
    p.add_argument("--attn", default="sdpa", help="transformers attn_implementation (sdpa, eager)")
    p.add_argument("--json", action="store_true", help="one JSON object per configuration")
    return p.parse_args()


def peak_rss_mib():
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def ids_and_targets(t):
    ids = [(i * 7919) % 40000 + 100 for i in range(t)]
    start = t * 85 // 100
    targets = [j for j in range(max(start, 1), t)]
    return ids, targets


def load_model(path, attn):
    import torch
    from transformers import AutoModelForCausalLM

    d, f = os.path.split(os.path.abspath(path))
    model = AutoModelForCausalLM.from_pretrained(
        d, gguf_file=f, dtype=torch.float32, attn_implementation=attn
    )
    for prm in model.parameters():
        prm.requires_grad_(False)
    return model


def add_own_lora(model, r, alpha):
    import math

    import torch
    from torch import nn

    class LoraLinear(nn.Module):
        def __init__(self, base):
            super().__init__()
            self.base = base
            self.scale = alpha / r
            self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
            self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
            # PEFT's init: A Kaiming-uniform, B zero (the update starts at zero).
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

        def forward(self, x):
            return self.base(x) + (x @ self.lora_A.t() @ self.lora_B.t()) * self.scale

    for layer in model.model.layers:
        for parent in (layer.self_attn, layer.mlp):
            for name in TARGETS:
                if hasattr(parent, name):
                    setattr(parent, name, LoraLinear(getattr(parent, name)))
    return model


def add_peft_lora(model, r, alpha):
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=TARGETS, bias="none")
    return get_peft_model(model, cfg)


def run_one(args, t, logits_mode):
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t_load = time.perf_counter()
    model = load_model(args.model, args.attn)
    lora = args.lora
    if lora is None:
        try:
            import peft  # noqa: F401

            lora = "peft"
        except ImportError:
            lora = "own"
    model = add_peft_lora(model, 8, 16) if lora == "peft" else add_own_lora(model, 8, 16)
    load_s = time.perf_counter() - t_load
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in params)
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)

    ids, targets = ids_and_targets(t)
    b = args.batch
    x = torch.tensor([ids] * b, dtype=torch.long)
    rows = torch.tensor([j - 1 for j in targets], dtype=torch.long)
    tgt = x[:, targets]  # [B, n]
    n_trained = b * len(targets)

    def step():
        t0 = time.perf_counter()
        if logits_mode == "full":
            logits = model(input_ids=x, use_cache=False).logits  # [B, T, V]
            logits = logits[:, rows]
        else:
            logits = model(input_ids=x, use_cache=False, logits_to_keep=rows).logits  # [B, n, V]
        logp = torch.log_softmax(logits, dim=-1)
        loss = -logp.gather(-1, tgt.unsqueeze(-1)).sum() / n_trained
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        return loss.item(), t1 - t0, t2 - t1, t3 - t2

    losses = []
    for _ in range(args.warmup):
        loss, *_ = step()
        losses.append(loss)
    times = []
    for _ in range(args.steps):
        loss, f, bw, o = step()
        losses.append(loss)
        times.append((f, bw, o))
    n = max(len(times), 1)
    fwd = sum(s[0] for s in times) / n
    bwd = sum(s[1] for s in times) / n
    optim = sum(s[2] for s in times) / n
    total = fwd + bwd + optim
    return {
        "impl": "torch",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "lora": lora,
        "attn": args.attn,
        "logits": logits_mode,
        "batch": b,
        "seq": t,
        "trained_tokens": n_trained,
        "trainable_params": n_trainable,
        "steps": len(times),
        "losses": losses,
        "forward_s": fwd,
        "backward_s": bwd,
        "optimizer_s": optim,
        "step_s": total,
        "tokens_per_s": b * t / total if total > 0 else 0.0,
        "forward_tokens_per_s": b * t / fwd if fwd > 0 else 0.0,
        "load_s": load_s,
        "peak_rss_mib": peak_rss_mib(),
    }


def show(r):
    return (
        f"torch {r['torch']} ({r['threads']} threads, lora={r['lora']}, "
        f"{r['trainable_params']} trainable, attn={r['attn']}) "
        f"B={r['batch']} T={r['seq']} logits={r['logits']}: "
        f"{r['tokens_per_s']:.1f} tokens/s fwd+bwd+AdamW "
        f"(step {r['step_s']:.2f}s = fwd {r['forward_s']:.2f} + bwd {r['backward_s']:.2f} "
        f"+ opt {r['optimizer_s']:.3f}; fwd alone {r['forward_tokens_per_s']:.1f} tokens/s; "
        f"mean of {r['steps']}), losses {' '.join(f'{x:.4f}' for x in r['losses'])}, "
        f"peak RSS {r['peak_rss_mib']:.0f} MiB"
    )


def main():
    args = parse_args()
    if not os.path.isfile(args.model):
        sys.exit(f"no model at {args.model}: run `thinkfl model fetch smollm2-135m` or pass --model")
    try:
        seqs = [int(s) for s in args.seq.split(",") if s]
    except ValueError:
        sys.exit(f"--seq: not a list of integers: {args.seq}")
    modes = [m for m in args.logits.split(",") if m]
    if any(m not in ("full", "targets") for m in modes) or not modes:
        sys.exit(f"--logits: expected full and/or targets, got {args.logits}")
    if any(s < 2 for s in seqs) or args.batch < 1 or args.steps < 1:
        sys.exit("need T >= 2, --batch >= 1, --steps >= 1")
    try:
        import torch  # noqa: F401
    except ImportError:
        sys.exit("torch is not installed in this Python (see the header of this script)")

    configs = [(t, m) for t in seqs for m in modes]
    if len(configs) == 1:
        r = run_one(args, *configs[0])
        print(json.dumps(r) if args.json else show(r), flush=True)
        return
    # One process per configuration: peak RSS is then that configuration's.
    for t, m in configs:
        cmd = [sys.executable, os.path.abspath(__file__), "--seq", str(t), "--logits", m]
        for k in ("model", "batch", "warmup", "steps", "threads", "lr", "seed", "attn", "lora"):
            v = getattr(args, k)
            if v is not None:
                cmd += [f"--{k}", str(v)]
        if args.json:
            cmd.append("--json")
        rc = subprocess.call(cmd)
        if rc != 0:
            sys.exit(rc)


if __name__ == "__main__":
    main()
