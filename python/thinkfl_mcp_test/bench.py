"""Latency of one `search_traces` call through the official MCP Python SDK (stdio and streamable
HTTP) beside the same call through the HTTP tool server (`thinkfl serve tools`, the paper's GET
endpoint, enriched rows), from the same Python process with a kept-alive connection each.

    python -m thinkfl_mcp_test.bench [--data DIR] [--span ID] [--calls N] [--warmup N]

Prints p50, p90, p99 and the mean per path, in ms. Calls are made one after another (latency, not
throughput); every answer is checked to be the same text.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import anyio
import httpx2

from .harness import SAMPLE, http_session, mcp_http_server, stdio_session, text_of, tool_http_server


def percentile(xs: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))
    return s[k]


async def time_calls(call, calls: int, warmup: int) -> tuple[list[float], str]:
    text = ""
    for _ in range(warmup):
        text = await call()
    out = []
    for _ in range(calls):
        t0 = time.perf_counter()
        got = await call()
        out.append((time.perf_counter() - t0) * 1e3)
        if got != text:
            raise AssertionError("the same call answered differently")
    return out, text


async def bench(data: Path, span: str, calls: int, warmup: int, logs: Path) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}
    texts: dict[str, str] = {}
    args = {"parent_span_id": span}

    async def mcp(session):
        r = await session.call_tool("search_traces", args)
        if r.is_error:
            raise AssertionError(text_of(r))
        return text_of(r)

    with open(logs / "stdio.log", "w") as err:
        async with stdio_session(data, err) as s:
            results["MCP stdio (Python SDK)"], texts["stdio"] = await time_calls(lambda: mcp(s), calls, warmup)
    with mcp_http_server(data, logs / "mcp-http.log") as url:
        async with http_session(url) as s:
            results["MCP streamable HTTP (Python SDK)"], texts["http"] = await time_calls(
                lambda: mcp(s), calls, warmup
            )
    with tool_http_server(data, logs / "tools.log") as base:
        async with httpx2.AsyncClient(base_url=base) as client:

            async def get():
                r = await client.get("/search_traces", params={**args, "mode": "enriched"})
                r.raise_for_status()
                return r.text

            results["tool server HTTP GET (httpx2)"], texts["tools"] = await time_calls(get, calls, warmup)
    if not (texts["stdio"] == texts["http"] == texts["tools"]):
        raise AssertionError("the three paths answered different texts")
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=SAMPLE)
    ap.add_argument("--span", default="d1b3f238e544e3f0", help="parent_span_id of the call")
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=50)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as logs:
        results = anyio.run(bench, a.data, a.span, a.calls, a.warmup, Path(logs))
    print(f"search_traces(parent_span_id={a.span}) on {a.data.name}, {a.calls} calls after {a.warmup} warm-up, one at a time")
    print(f"{'path':<36} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for name, xs in results.items():
        print(
            f"{name:<36} {percentile(xs, 50):>8.3f} {percentile(xs, 90):>8.3f} "
            f"{percentile(xs, 99):>8.3f} {statistics.fmean(xs):>8.3f}"
        )


if __name__ == "__main__":
    main()
