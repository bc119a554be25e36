"""verl's `custom_reward_function` fallback (tested with verl 0.9.1): scores a whole response
with the environment's single-turn reward (`POST /get_reward`), for rollouts without the agent
loop (plain generation) or a rollout that never called a tool. Imports nothing of verl.

    custom_reward_function.path=python/thinkfl_rl/verl_reward.py custom_reward_function.name=compute_score
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from thinkfl_rl.client import EnvClient  # noqa: E402


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> dict:
    """`{"score": reward, factors...}` for one response; `ground_truth` is the row's label."""
    r = EnvClient().get_reward([solution_str], [""], [ground_truth])
    out = {"score": float(r["rewards"][0])}
    for k, v in (r.get("extra_logs") or {}).items():
        out[k] = float(v[0])
    return out
