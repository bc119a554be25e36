"""A small synchronous client of `thinkfl serve env` (standard library only, so every engine's
environment can import it). Async shims call it through `asyncio.to_thread`."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

DEFAULT_URL = "http://127.0.0.1:5002"


class EnvError(RuntimeError):
    """The server answered an error (`status` is its HTTP status, `message` its JSON error)."""

    def __init__(self, status: int, message: str):
        super().__init__(f"thinkfl env server: {status}: {message}")
        self.status = status
        self.message = message


def tool_call_text(name: str, arguments: dict[str, Any]) -> str:
    """A parsed tool call written back as the text the episode parses (Hermes/Qwen format)."""
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


class EnvClient:
    """Episodes of one server. Configuration comes from arguments or, since engines build their
    environments without arguments, from THINKFL_ENV_URL, THINKFL_REWARD and THINKFL_RUN."""

    def __init__(
        self,
        url: str | None = None,
        reward: str | int | None = None,
        run: str | None = None,
        timeout: float | None = None,
    ):
        self.url = (url or os.environ.get("THINKFL_ENV_URL") or DEFAULT_URL).rstrip("/")
        self.reward = str(reward if reward is not None else os.environ.get("THINKFL_REWARD", "3"))
        self.run = run or os.environ.get("THINKFL_RUN", "default")
        self.timeout = timeout or float(os.environ.get("THINKFL_ENV_TIMEOUT", "120"))

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                raw = r.read()
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                msg = json.loads(raw)["error"]
            except Exception:  # noqa: BLE001 - any non-JSON error body
                msg = raw.decode(errors="replace")
            raise EnvError(e.code, msg) from None
        return json.loads(raw) if raw else None

    def create(self, label: dict | str, reward: str | int | None = None) -> dict:
        """Starts the episode of a label (`{"dataset", "case", "query_span"}`, or its JSON text)."""
        if isinstance(label, str):
            label = json.loads(label)
        body = {
            "dataset": label.get("dataset"),
            "case": label["case"],
            "query_span": label.get("query_span"),
            "reward": str(reward if reward is not None else self.reward),
            "run": self.run,
        }
        return self._request("POST", "/v1/episodes", body)

    def step(self, episode_id: str, text: str) -> dict:
        """Feeds the model's reply; answers `{observation, done, reward, factors, valid, ...}`."""
        return self._request("POST", f"/v1/episodes/{episode_id}/step", {"text": text})

    def grade(self, episode_id: str, reward: str | int | None = None) -> dict:
        """The episode's reward (a running episode ends here)."""
        body = {} if reward is None else {"reward": str(reward)}
        return self._request("POST", f"/v1/episodes/{episode_id}/grade", body)

    def get(self, episode_id: str) -> dict:
        return self._request("GET", f"/v1/episodes/{episode_id}")

    def delete(self, episode_id: str) -> None:
        try:
            self._request("DELETE", f"/v1/episodes/{episode_id}")
        except EnvError as e:
            if e.status != 404:
                raise

    def tools(self) -> list[dict]:
        """OpenAI schemas of the episode's tools."""
        return self._request("GET", "/v1/tools")["tools"]

    def get_reward(self, query: list[str], prompts: list[str], labels: list[Any], reward=None) -> dict:
        """OpenRLHF's remote reward contract."""
        body = {"query": query, "prompts": prompts, "labels": labels}
        if reward is not None:
            body["reward"] = str(reward)
        return self._request("POST", "/get_reward", body)


def observation_text(observation: list[dict]) -> str:
    """The observation messages as one text (engines that take a single tool response)."""
    return "\n\n".join(m["content"] for m in observation if m.get("content"))
