"""verl (tested with 0.9.1): the environment's tools as one `BaseTool` subclass.

verl builds the tools once from `verl_tools.yaml` (one entry per tool, each this class with its
schema) and, for every call, creates an instance, executes and releases it; the episode lives on
the rollout's `agent_data` instead, started on its first call from the row's
`extra_info.tools_kwargs[tool].create_kwargs` (`dataset`, `case`, `query_span`, written by
`thinkfl export rl-dataset`). The call is written back as the text the episode parses; the
observation is the tool's response. When the episode is done (the final `print_results`, or
`d_max`), the grader's reward is kept on `agent_data` for `ThinkflToolAgentLoop`
(`thinkfl_rl.verl_agent`) to end the rollout with.

Configuration: the YAML's `config.env_url`, `config.reward`, `config.run`, else THINKFL_ENV_URL,
THINKFL_REWARD, THINKFL_RUN.
"""

from __future__ import annotations

import asyncio
from typing import Any, Optional
from uuid import uuid4

from verl.tools.base_tool import BaseTool
from verl.tools.schemas import OpenAIFunctionToolSchema, ToolResponse
from verl.utils.rollout_trace import rollout_trace_op

from .client import EnvClient, EnvError, observation_text, tool_call_text

STATE = "_thinkfl"  # the attribute of agent_data holding the episode


def episode_state(agent_data: Any) -> dict:
    """The rollout's episode record: `id`, `done`, `reward`, `factors`."""
    st = getattr(agent_data, STATE, None)
    if st is None:
        st = {"id": None, "done": False, "reward": None, "factors": None}
        setattr(agent_data, STATE, st)
    return st


class ThinkflTool(BaseTool):
    """One diagnostic tool (or `print_results`) of the thinkfl episode."""

    def __init__(self, config: dict, tool_schema: OpenAIFunctionToolSchema):
        super().__init__(config, tool_schema)
        self.client = EnvClient(
            url=config.get("env_url"), reward=config.get("reward"), run=config.get("run")
        )

    async def create(self, instance_id: Optional[str] = None, **kwargs) -> tuple[str, ToolResponse]:
        return instance_id or str(uuid4()), ToolResponse()

    def _label(self, agent_data: Any) -> dict:
        kw = (getattr(agent_data, "tools_kwargs", None) or {}).get(self.name, {})
        label = kw.get("create_kwargs") or {}
        if "case" not in label:
            raise ValueError(
                f"tools_kwargs[{self.name!r}].create_kwargs has no case: export the data set with "
                "`thinkfl export rl-dataset`"
            )
        return label

    @rollout_trace_op
    async def execute(self, instance_id: str, parameters: dict[str, Any], **kwargs) -> tuple[ToolResponse, float, dict]:
        agent_data = kwargs.get("agent_data")
        if agent_data is None:
            raise ValueError("ThinkflTool runs inside a tool agent loop (agent_data is required)")
        st = episode_state(agent_data)
        if st["done"]:
            return ToolResponse(text="The episode is over: the final answer was recorded."), 0.0, {}
        if st["id"] is None:
            created = await asyncio.to_thread(self.client.create, self._label(agent_data))
            st["id"] = created["episode_id"]
        try:
            r = await asyncio.to_thread(self.client.step, st["id"], tool_call_text(self.name, parameters))
        except EnvError as e:
            return ToolResponse(text=f"Error: {e.message}"), 0.0, {"valid": False}
        if r["done"]:
            st.update(done=True, reward=float(r["reward"]), factors=r.get("factors"))
        return ToolResponse(text=observation_text(r["observation"])), 0.0, {"valid": bool(r["valid"])}

    async def calc_reward(self, instance_id: str, **kwargs) -> float:
        agent_data = kwargs.get("agent_data")
        st = episode_state(agent_data) if agent_data is not None else {}
        return float(st.get("reward") or 0.0)


async def finish_episode(agent_data: Any, client: EnvClient | None = None) -> float | None:
    """The rollout's reward: the grade the last step carried, or, for an episode the model left
    unfinished (no more calls, turn or length limit), its grade as it stands. `None` when the
    rollout never called a tool (no episode: the `compute_score` fallback scores it)."""
    st = episode_state(agent_data)
    if st["id"] is None:
        return None
    client = client or EnvClient()
    if not st["done"]:
        g = await asyncio.to_thread(client.grade, st["id"])
        st.update(done=True, reward=float(g["reward"]), factors=g["factors"])
    await asyncio.to_thread(client.delete, st["id"])
    return st["reward"]
