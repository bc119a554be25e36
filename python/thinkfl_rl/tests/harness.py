"""What the contract tests share: the binary, a simulated data set, a running `thinkfl serve env`,
the scripted expert's replies, and the engines' own modules loaded by path from the wheels that
scripts/rl-python.sh unpacked (no GPU, no engine installed)."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PKG = ROOT / "python" / "thinkfl_rl"


def thinkfl_bin() -> str:
    if os.environ.get("THINKFL_BIN"):
        return os.environ["THINKFL_BIN"]
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    if not target.is_absolute():
        target = ROOT / target
    return str(target / "release" / "thinkfl")


def run_cli(*args: str, timeout: float = 300) -> str:
    p = subprocess.run([thinkfl_bin(), *args], capture_output=True, text=True, timeout=timeout, check=False)
    if p.returncode != 0:
        raise AssertionError(f"thinkfl {' '.join(args)} failed ({p.returncode}):\n{p.stderr}")
    return p.stdout


class Server:
    """`thinkfl serve env` on a free loopback port, stopped by `close`."""

    def __init__(self, *args: str, log: Path):
        self.log = log
        self.proc = subprocess.Popen(
            [thinkfl_bin(), "serve", "env", "--addr", "127.0.0.1:0", *args],
            stdout=subprocess.DEVNULL,
            stderr=open(log, "w"),
        )
        deadline = time.monotonic() + 120
        rx = re.compile(r"thinkfl env server on (http://\S+)")
        while time.monotonic() < deadline:
            m = rx.search(log.read_text(errors="replace"))
            if m:
                self.url = m.group(1)
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"serve env exited:\n{log.read_text()}")
            time.sleep(0.05)
        self.close()
        raise AssertionError(f"serve env did not start:\n{log.read_text()}")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@functools.lru_cache(maxsize=None)
def expert_texts(data: Path, case: int) -> list[str]:
    """The scripted expert's replies on a case, as `thinkfl localize --json` records them."""
    t = json.loads(run_cli("localize", "--data", str(data), "--case", str(case), "--model", "expert", "--json"))
    return tuple(m["content"] for m in t["messages"] if m["role"] == "assistant")


def reference_reward(data: Path, tmp: Path, rows: list[dict], reward: str) -> list[float]:
    """`thinkfl grade`: each row's replies replayed through the in-process actor and graded."""
    f = tmp / f"replay-{reward}.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = run_cli("grade", "--data", str(data), "--reward", reward, str(f))
    return [json.loads(line)["reward"] for line in out.splitlines() if line.strip()]


def engines_dir() -> Path:
    d = Path(os.environ.get("THINKFL_RL_ENGINES") or Path(sys.prefix) / "engines")
    if not d.is_dir():
        raise AssertionError(f"{d}: no unpacked engines; run the tests through scripts/test")
    return d


def _package(name: str, path: Path | None = None) -> types.ModuleType:
    """An empty package in sys.modules, so that an engine's module loads without the package's
    `__init__` (which imports torch, ray and the rest)."""
    if name in sys.modules:
        return sys.modules[name]
    m = types.ModuleType(name)
    m.__path__ = [str(path)] if path else []
    sys.modules[name] = m
    return m


def load_file(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    m = importlib.util.module_from_spec(spec)
    sys.modules[name] = m
    spec.loader.exec_module(m)
    return m


def load_openrlhf() -> types.ModuleType:
    """OpenRLHF's real `openrlhf/utils/agent.py` (and its logger)."""
    root = engines_dir() / "openrlhf" / "openrlhf"
    _package("openrlhf", root)
    _package("openrlhf.utils", root / "utils")
    load_file("openrlhf.utils.logging_utils", root / "utils" / "logging_utils.py")
    return load_file("openrlhf.utils.agent", root / "utils" / "agent.py")


def load_verl() -> None:
    """verl's real `tools/schemas.py`, `tools/base_tool.py` and `utils/rollout_trace.py`; only
    `utils/ray_utils.get_event_loop` (which imports ray) is stood in for."""
    root = engines_dir() / "verl" / "verl"
    _package("verl", root)
    _package("verl.utils", root / "utils")
    _package("verl.tools", root / "tools")
    import asyncio

    ray_utils = types.ModuleType("verl.utils.ray_utils")
    ray_utils.get_event_loop = asyncio.get_event_loop
    sys.modules["verl.utils.ray_utils"] = ray_utils
    load_file("verl.utils.rollout_trace", root / "utils" / "rollout_trace.py")
    load_file("verl.tools.schemas", root / "tools" / "schemas.py")
    load_file("verl.tools.base_tool", root / "tools" / "base_tool.py")


def parse_call(text: str) -> tuple[str, dict]:
    """The one `<tool_call>` of an expert reply, as an engine's parser returns it."""
    m = re.search(r"<tool_call>(.*?)</tool_call>", text, re.S)
    assert m, text
    call = json.loads(m.group(1))
    args = call["arguments"]
    if isinstance(args, str):
        args = json.loads(args)
    return call["name"], args
