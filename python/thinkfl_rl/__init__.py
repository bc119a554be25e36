"""Thin shims that train a model on thinkfl's RL environment with the engines users already run.

`thinkfl serve env` serves the episodes (tools over a telemetry store, the Recursion-of-Thought
protocol, the multi-factor grader) over loopback HTTP; one module per engine adapts its contract:

- `thinkfl_rl.openrlhf_agent`: OpenRLHF's `--train.agent_func_path` file (an `AgentExecutor` on
  `MultiTurnAgentExecutor`);
- `thinkfl_rl.trl_env`: an environment class for TRL's `GRPOTrainer(environment_factory=...)`;
- `thinkfl_rl.verl_agent`: a verl `BaseTool`, a tool agent loop that ends on `print_results` and
  takes its reward from the grader, and a `compute_score` fallback.

Each was tested against the engine versions in `ENGINES` (see README.md in this directory).
"""

ENGINES = {"openrlhf": "0.11.2", "trl": "1.16.0", "verl": "0.9.1"}

from .client import EnvClient, EnvError, tool_call_text  # noqa: E402

__all__ = ["ENGINES", "EnvClient", "EnvError", "tool_call_text"]
