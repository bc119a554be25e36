"""Starting `thinkfl serve mcp` (stdio or HTTP) and `thinkfl serve tools`, and connecting the
official MCP Python SDK's client to it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import IO, AsyncIterator, Iterator

from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT.parent / "shared" / "fixtures" / "aiops2022-sample"


def thinkfl_bin() -> str:
    """The binary under test: THINKFL_BIN, else the release build of this checkout."""
    if os.environ.get("THINKFL_BIN"):
        return os.environ["THINKFL_BIN"]
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    if not target.is_absolute():
        target = ROOT / target
    return str(target / "release" / "thinkfl")


def run_cli(*args: str, timeout: float = 600) -> str:
    """Runs the binary, returns its stdout; fails with its stderr."""
    p = subprocess.run(
        [thinkfl_bin(), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if p.returncode != 0:
        raise AssertionError(f"thinkfl {' '.join(args)} failed ({p.returncode}):\n{p.stderr}")
    return p.stdout


@contextlib.asynccontextmanager
async def stdio_session(data: Path, errlog: IO[str], *extra: str) -> AsyncIterator[ClientSession]:
    """A session with `thinkfl serve mcp --data DATA` launched over stdio, initialized."""
    params = StdioServerParameters(
        command=thinkfl_bin(), args=["serve", "mcp", "--data", str(data), *extra]
    )
    async with stdio_client(params, errlog=errlog) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


def wait_for_line(log: Path, pattern: str, proc: subprocess.Popen, timeout: float = 120) -> re.Match:
    """Waits until `log` has a line matching `pattern` (the server's start line)."""
    deadline = time.monotonic() + timeout
    rx = re.compile(pattern)
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        for line in text.splitlines():
            m = rx.search(line)
            if m:
                return m
        if proc.poll() is not None:
            raise AssertionError(f"the server exited ({proc.returncode}):\n{text}")
        time.sleep(0.05)
    raise AssertionError(f"no line matching {pattern!r} within {timeout} s:\n{text}")


@contextlib.contextmanager
def server_process(args: list[str], log: Path, pattern: str) -> Iterator[str]:
    """Starts `thinkfl ARGS` with its stderr in `log`, yields the URL its start line names, and
    stops it (by its own pid) at the end."""
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [thinkfl_bin(), *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
        )
    try:
        yield wait_for_line(log, pattern, proc).group(1)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def mcp_http_server(data: Path, log: Path, *extra: str):
    """`thinkfl serve mcp --http 127.0.0.1:0`; yields http://127.0.0.1:PORT/mcp."""
    return server_process(
        ["serve", "mcp", "--data", str(data), "--http", "127.0.0.1:0", *extra],
        log,
        r"thinkfl MCP server on (http://\S+/mcp)",
    )


def tool_http_server(data: Path, log: Path):
    """`thinkfl serve tools` on a free port; yields http://127.0.0.1:PORT."""
    return server_process(
        ["serve", "tools", "--data", str(data), "--addr", "127.0.0.1:0"],
        log,
        r"thinkfl tool server on (http://\S+) ",
    )


@contextlib.asynccontextmanager
async def http_session(url: str) -> AsyncIterator[ClientSession]:
    async with streamable_http_client(url) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


def text_of(result) -> str:
    """The text content of a tool result."""
    return "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")


def cli_expert_answer(data: Path, case: int) -> dict:
    """The scripted expert's trajectory on a case, from `thinkfl localize --json` (the CLI path)."""
    return json.loads(run_cli("localize", "--data", str(data), "--case", str(case), "--model", "expert", "--json"))
