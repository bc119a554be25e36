"""OpenRLHF (tested with 0.11.2): multi-turn RL on thinkfl's environment.

OpenRLHF loads this file by path (`--train.agent_func_path .../thinkfl_rl/openrlhf_agent.py`)
and instantiates `AgentExecutor()`, which builds one `AgentInstance()` per rollout, both without
arguments, so the configuration comes from the environment:

- THINKFL_ENV_URL (default http://127.0.0.1:5002): the `thinkfl serve env` server;
- THINKFL_REWARD: 1, 2, 3 or mrr (the stage's reward; default 3);
- THINKFL_RUN: the run whose stage-2 diversity cache grades the episodes;
- THINKFL_CHAT_FORMAT: qwen2.5 or llama3.2, the template the observations are written in.

Each rollout: `reset` starts the episode of the row's label (from `thinkfl export rl-dataset`);
every `step` sends the model's text and answers the observation in the chat template, `done` on
the final `print_results` or `d_max`, and on the last step the grader's reward, so the summed
reward of an episode is its graded score. Malformed text is the server's business: it answers an
error observation and the episode goes on.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

# Loaded by path, not as part of the package: make the package importable beside it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from openrlhf.utils.agent import AgentInstanceBase, MultiTurnAgentExecutor  # noqa: E402

from thinkfl_rl.client import EnvClient, EnvError  # noqa: E402
from thinkfl_rl.templates import render_observation  # noqa: E402

log = logging.getLogger("thinkfl_rl.openrlhf")

try:  # OpenRLHF calls `.item()` on the reward; a tensor where torch is there, numpy otherwise.
    import torch

    def _scalar(x: float):
        return torch.tensor(float(x))

except ImportError:  # pragma: no cover - exercised in the CPU contract tests
    import numpy as np

    def _scalar(x: float):
        return np.float64(x)


FACTORS = ("recall", "route", "hallucination", "format", "diversity")


class AgentInstance(AgentInstanceBase):
    """One episode of the environment."""

    def __init__(self, *args, **kwargs):
        self.client = EnvClient()
        self.episode_id: str | None = None
        self.done = False

    async def reset(self, states: dict, **kwargs):
        created = await asyncio.to_thread(self.client.create, states["label"])
        self.episode_id = created["episode_id"]
        self.done = False
        # The prompt OpenRLHF rendered from the exported messages is the episode's opening.
        return {"observation": states["observation"]}

    async def step(self, states: dict, **kwargs):
        if self.episode_id is None or self.done:
            raise RuntimeError("step before reset, or after the episode ended")
        try:
            r = await asyncio.to_thread(self.client.step, self.episode_id, states["action_text"])
        except EnvError as e:
            if e.status != 404:
                raise
            # Expired (the TTL ran out while the engine was busy): end it with no reward.
            log.warning("episode %s expired: %s", self.episode_id, e.message)
            self.done = True
            return {
                "rewards": _scalar(0.0),
                "scores": _scalar(0.0),
                "environment_feedback": "",
                "done": True,
                "sampling_params": states.get("sampling_params"),
                "extra_logs": {},
            }
        self.done = bool(r["done"])
        logs = {}
        if self.done:
            f = r.get("factors") or {}
            logs = {k: _scalar(f[k]) for k in FACTORS if f.get(k) is not None}
            await asyncio.to_thread(self.client.delete, self.episode_id)
        return {
            "rewards": _scalar(r["reward"]),
            "scores": _scalar(r["reward"]),
            "environment_feedback": render_observation(r["observation"], done=self.done),
            "done": self.done,
            "sampling_params": states.get("sampling_params"),
            "extra_logs": logs,
        }


class AgentExecutor(MultiTurnAgentExecutor):
    """What OpenRLHF instantiates: the multi-turn executor over `AgentInstance`."""

    def __init__(self):
        super().__init__(AgentInstance)
