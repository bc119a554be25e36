"""TRL (tested with 1.16.0): an environment for `GRPOTrainer(environment_factory=ThinkflEnv)`.

TRL builds one instance per rollout, calls `reset(**row)` with the dataset row (from
`thinkfl export rl-dataset`, `trl/train.jsonl`: `prompt`, `dataset`, `case`, `query_span`),
exposes every public method as a tool (the schema from its type hints and docstring), and scores
the rollout with `get_reward()`. Each tool method writes the call as the episode's text and
answers the environment's observation; the reward is the grader's (THINKFL_REWARD: 1, 2, 3 or
mrr). Configuration as in `thinkfl_rl.client.EnvClient` (THINKFL_ENV_URL, THINKFL_RUN).
"""

from __future__ import annotations

from typing import Any

from .client import EnvClient, EnvError, observation_text, tool_call_text


class ThinkflEnv:
    """One failure-localization episode: find the root cause of an anomalous trace with tools
    over the traces, metrics and logs of a microservice system, then print ranked root causes."""

    def __init__(self, client: EnvClient | None = None):
        self._client = client or EnvClient()
        self._episode: str | None = None
        self._done = False
        self._graded: dict | None = None

    def reset(self, dataset: str | None = None, case: int = 0, query_span: str | None = None, **row: Any) -> None:
        """Starts the episode of a row; the row's `prompt` already holds the question."""
        if self._episode is not None:
            self._client.delete(self._episode)
        created = self._client.create({"dataset": dataset, "case": case, "query_span": query_span})
        self._episode = created["episode_id"]
        self._done = False
        self._graded = None
        return None

    def _call(self, name: str, arguments: dict[str, Any]) -> str:
        if self._episode is None:
            raise RuntimeError("reset() first")
        if self._done:
            return "The episode is over: the final answer was recorded."
        try:
            r = self._client.step(self._episode, tool_call_text(name, arguments))
        except EnvError as e:
            return f"Error: {e.message}"
        self._done = bool(r["done"])
        if self._done:
            self._graded = {"reward": r["reward"], "factors": r.get("factors")}
        return observation_text(r["observation"])

    def search_anomalous_components(self, timestamp: int) -> str:
        """Ranks every pod by how far its metrics, latency, errors and logs depart from normal
        before the given time: the global view of the incident.

        Args:
            timestamp: The question's time, in seconds since the epoch.
        """
        return self._call("search_anomalous_components", {"timestamp": timestamp})

    def search_traces(self, parent_span_id: str) -> str:
        """Lists the direct child spans of a span: timestamp, pod, span id, operation, duration,
        type and status code.

        Args:
            parent_span_id: The span whose children to list.
        """
        return self._call("search_traces", {"parent_span_id": parent_span_id})

    def search_fluctuating_metrics(self, service_name: str, timestamp: int) -> str:
        """Metrics of a component (and of the nodes hosting it) that deviate by more than three
        standard deviations around the given time.

        Args:
            service_name: A node, service or pod name.
            timestamp: Seconds since the epoch.
        """
        return self._call("search_fluctuating_metrics", {"service_name": service_name, "timestamp": timestamp})

    def search_logs(self, service_name: str, timestamp: int) -> str:
        """Error and warning log templates of a component around the given time, with counts.

        Args:
            service_name: A node, service or pod name.
            timestamp: Seconds since the epoch.
        """
        return self._call("search_logs", {"service_name": service_name, "timestamp": timestamp})

    def print_results(self, root_causes: list[dict]) -> str:
        """Records the ranked root causes, most likely first; the third answer ends the episode.

        Args:
            root_causes: Items with `node`, `service`, `pod` and `reason` keys.
        """
        return self._call("print_results", {"root_causes": root_causes})

    def get_reward(self) -> float:
        """The grader's reward of the episode (an unfinished one is graded as it stands)."""
        if self._episode is None:
            return 0.0
        if self._graded is None:
            g = self._client.grade(self._episode)
            self._graded = {"reward": g["reward"], "factors": g["factors"]}
            self._done = True
        self._client.delete(self._episode)
        return float(self._graded["reward"])
