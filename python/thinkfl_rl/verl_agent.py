"""verl (tested with 0.9.1): a tool agent loop that ends the rollout when thinkfl's episode is
done (the final `print_results` or `d_max`) and sets `reward_score` from the grader.

Register it with `actor_rollout_ref.rollout.agent.agent_loop_config_path` pointing at
`verl_agent_loop.yaml` (name `thinkfl_agent`, the `agent_name` every exported row carries).
"""

from __future__ import annotations

from typing import Any

from verl.experimental.agent_loop.agent_loop import AgentLoopOutput
from verl.experimental.agent_loop.tool_agent_loop import AgentState, ToolAgentLoop

from .client import EnvClient
from .verl_tool import episode_state, finish_episode


class ThinkflToolAgentLoop(ToolAgentLoop):
    """`ToolAgentLoop` with the episode's end and reward. verl builds one per rollout, so the
    rollout's `agent_data` can be kept on the instance."""

    async def _handle_processing_tools_state(self, agent_data) -> AgentState:
        self._thinkfl_agent_data = agent_data
        state = await super()._handle_processing_tools_state(agent_data)
        if episode_state(agent_data)["done"]:
            return AgentState.TERMINATED
        return state

    async def run(self, sampling_params: dict[str, Any], **kwargs) -> AgentLoopOutput:
        output = await super().run(sampling_params, **kwargs)
        agent_data = getattr(self, "_thinkfl_agent_data", None)
        if agent_data is not None:
            reward = await finish_episode(agent_data, EnvClient())
            if reward is not None:
                output.reward_score = reward
                f = episode_state(agent_data).get("factors") or {}
                output.extra_fields["thinkfl_factors"] = {
                    k: f.get(k) for k in ("recall", "route", "hallucination", "format") if k in f
                }
        return output
