"""`thinkfl serve mcp` through the official MCP Python SDK (a client nobody here wrote): stdio and
streamable HTTP, the tools on the real AIOps 2022 sample and on a simulated set, resources, the
prompt, tool errors, progress and cancellation of `localize`.

Every answer is checked against something independent of the MCP path: the trace walk against
the sample's known tree, tool texts and schemas against the CLI (`thinkfl tools`), the expert's
answer against `thinkfl localize --json`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from .harness import (
    SAMPLE,
    cli_expert_answer,
    http_session,
    mcp_http_server,
    run_cli,
    stdio_session,
    text_of,
)

TOOLS = [
    "search_traces",
    "search_fluctuating_metrics",
    "search_logs",
    "search_anomalous_components",
    "list_incidents",
    "inspect",
    "localize",
]
ENTRY = "d1b3f238e544e3f0"  # the sample's anomalous entry span (frontend-2, 13.4 s)
FAULT_S = 1647747326  # the sample's fault start


@pytest.fixture(scope="session")
def simulated(tmp_path_factory) -> Path:
    """A small simulated Online Boutique set (seeded: the same bytes every run)."""
    out = tmp_path_factory.mktemp("sim") / "ob-s7"
    run_cli(
        "simulate", "--preset", "online-boutique", "--duration", "30m", "--faults", "4",
        "--seed", "7", "--out", str(out),
    )
    return out


async def walk_slowest(session, start: str) -> list[list[str]]:
    """Descends from `start` always into the slowest child, as an expert would: the rows taken."""
    at, walk = start, []
    for _ in range(12):
        r = await session.call_tool("search_traces", {"parent_span_id": at})
        assert not r.is_error, text_of(r)
        text = text_of(r)
        if text.startswith("no child spans"):
            break
        row = text.splitlines()[2].split(",")
        walk.append(row)
        at = row[0]
    return walk


async def assert_tool_error(session, name: str, args: dict, *needles: str) -> str:
    r = await session.call_tool(name, args)
    text = text_of(r)
    assert r.is_error, f"{name} {args} should be a tool error, got: {text}"
    for n in needles:
        assert n in text, f"{name} {args}: {n!r} not in {text!r}"
    return text


def test_stdio_on_the_real_sample(tmp_path):
    async def main():
        with open(tmp_path / "server.log", "w") as err:
            async with stdio_session(SAMPLE, err) as s:
                assert s.server_info.name == "thinkfl"
                listed = (await s.list_tools()).tools
                assert [t.name for t in listed] == TOOLS
                # The input schemas are the tool server's, generated from the same types.
                openai = {
                    f["function"]["name"]: f["function"]["parameters"]
                    for f in json.loads(run_cli("tools", "list"))
                }
                for t in listed:
                    if t.name in openai:
                        assert t.input_schema == openai[t.name], t.name
                    assert t.input_schema["type"] == "object", t.name
                assert set(listed[-1].input_schema["properties"]) == {
                    "case", "trace_id", "span_id", "model", "d_max"
                }

                # The walk down the real trace: frontend-2 -> recommendationservice-1's 13.33 s
                # ListProducts call -> productcatalogservice-1's 30 us span.
                walk = await walk_slowest(s, ENTRY)
                assert [w[0] for w in walk] == [
                    "a21065d052ec52ab", "af4c664b25ed29e3", "125b4bbe94d27a47", "025a8665c0c59c04"
                ]
                assert walk[2][1:4] == [
                    "recommendationservice-1", "/hipstershop.ProductCatalogService/ListProducts", "13330"
                ]
                assert walk[3][1] == "productcatalogservice-1"
                assert walk[3][3] == "0.03"
                # Byte for byte what the CLI's enriched call prints.
                r = await s.call_tool("search_traces", {"parent_span_id": ENTRY})
                cli = run_cli(
                    "tools", "call", "search_traces", "--args",
                    json.dumps({"parent_span_id": ENTRY}), "--data", str(SAMPLE), "--mode", "enriched",
                )
                assert text_of(r).rstrip("\n") == cli.rstrip("\n")

                # The other tools answer on the sample (it has logs, no metrics).
                r = await s.call_tool("search_logs", {"service_name": "recommendationservice", "timestamp": FAULT_S})
                assert not r.is_error and "recommendationservice" in text_of(r), text_of(r)
                r = await s.call_tool("search_anomalous_components", {"timestamp": FAULT_S})
                assert not r.is_error and "recommendationservice" in text_of(r), text_of(r)
                r = await s.call_tool(
                    "search_fluctuating_metrics", {"service_name": "recommendationservice-1", "timestamp": FAULT_S}
                )
                assert not r.is_error, text_of(r)

                r = await s.call_tool("inspect", {})
                assert "spans     26 in 1 traces" in text_of(r), text_of(r)
                r = await s.call_tool("list_incidents", {})
                inc = json.loads(text_of(r))
                assert inc["fault_cases"] == 1
                case = inc["cases"][0]
                assert case["traces"][0]["entry_span_id"] == ENTRY
                assert case["traces"][0]["pod"] == "frontend-2"
                assert "truth" not in case
                r = await s.call_tool("list_incidents", {"include_truth": True})
                assert json.loads(text_of(r))["cases"][0]["truth"]["cmdb_id"] == "recommendationservice"

                # The expert through MCP answers what the CLI's expert answers, and it is right.
                r = await s.call_tool("localize", {"case": 0, "model": "expert"})
                assert not r.is_error, text_of(r)
                ans = r.structured_content
                cli = cli_expert_answer(SAMPLE, 0)
                assert ans["root_causes"] == cli["prediction"]
                assert ans["evidence_path"] == cli["path"]
                assert ans["query"]["span_id"] == ENTRY
                assert ans["root_causes"][0]["service"] == "recommendationservice", ans
                assert "productcatalogservice-1" in ans["evidence_path"]
                assert "ranked root causes:" in text_of(r)

                # Bad calls are tool errors with the reason, never a dropped connection.
                await assert_tool_error(s, "search_traces", {}, "invalid arguments for search_traces", "parent_span_id")
                await assert_tool_error(s, "search_traces", {"parent_span_id": "ffffffffffffffff"}, "no span with span_id")
                await assert_tool_error(s, "search_traces", {"parent_span_id": ENTRY, "depth": 2}, "unknown field")
                await assert_tool_error(
                    s, "search_logs", {"service_name": "nosuchservice", "timestamp": FAULT_S},
                    "no service, pod or node named",
                )
                await assert_tool_error(
                    s, "search_fluctuating_metrics", {"service_name": "frontend", "timestamp": "yesterday"},
                    "search_fluctuating_metrics",
                )
                await assert_tool_error(s, "localize", {}, "exactly one of")
                await assert_tool_error(s, "localize", {"case": 7}, "no fault case 7", "(0 to 0)")
                await assert_tool_error(s, "localize", {"span_id": "nope"}, 'no span "nope"')
                await assert_tool_error(s, "localize", {"case": 0, "model": "gpt"}, "invalid arguments for localize")
                await assert_tool_error(s, "localize", {"case": 0, "d_max": 0}, "d_max")
                await assert_tool_error(s, "list_incidents", {"case": 3}, "no fault case 3")
                with pytest.raises(MCPError, match="unknown tool"):
                    await s.call_tool("search_everything", {})
                # ... and the session still answers.
                r = await s.call_tool("search_traces", {"parent_span_id": "125b4bbe94d27a47"})
                assert not r.is_error and "productcatalogservice-1" in text_of(r)

                # Resources and the prompt.
                uris = [str(x.uri) for x in (await s.list_resources()).resources]
                assert uris == ["thinkfl://dataset", "thinkfl://incidents/0"]
                templates = (await s.list_resource_templates()).resource_templates
                assert [t.uri_template for t in templates] == ["thinkfl://incidents/{case}"]
                summary = (await s.read_resource("thinkfl://dataset")).contents[0].text
                assert summary == run_cli("inspect", str(SAMPLE)).replace(str(SAMPLE), "aiops2022-sample")
                report = json.loads((await s.read_resource("thinkfl://incidents/0")).contents[0].text)
                assert report["truth"]["cmdb_id"] == "recommendationservice"
                assert report["window_s"][0] == FAULT_S
                with pytest.raises(MCPError, match="no fault case 5"):
                    await s.read_resource("thinkfl://incidents/5")
                prompts = (await s.list_prompts()).prompts
                assert [p.name for p in prompts] == ["investigate_incident"]
                p = await s.get_prompt("investigate_incident", {"case": "0"})
                body = p.messages[0].content.text
                assert ENTRY in body and "search_anomalous_components" in body and str(FAULT_S) in body
                with pytest.raises(MCPError, match="no fault case 2"):
                    await s.get_prompt("investigate_incident", {"case": "2"})

    anyio.run(main)


def test_http_on_a_simulated_set(simulated, tmp_path):
    async def main(url):
        async with http_session(url) as s:
            assert [t.name for t in (await s.list_tools()).tools] == TOOLS
            inc = json.loads(text_of(await s.call_tool("list_incidents", {"max_traces": 2})))
            assert inc["fault_cases"] == 4 == len(inc["cases"])
            with_traces = [c for c in inc["cases"] if c["traces"]]
            assert with_traces, inc
            checked = 0
            for c in with_traces:
                r = await s.call_tool("localize", {"case": c["case"], "model": "expert"})
                assert not r.is_error, text_of(r)
                ans = r.structured_content
                cli = cli_expert_answer(simulated, c["case"])
                assert ans["root_causes"] == cli["prediction"], c["case"]
                assert ans["root_causes"][0]["pod"], ans
                assert ans["query"]["span_id"] == c["traces"][0]["entry_span_id"]
                # The walk from the same entry span reaches pods the expert touched.
                walk = await walk_slowest(s, ans["query"]["span_id"])
                assert walk and walk[0][1] in ans["evidence_path"]
                checked += 1
            assert checked == len(with_traces)
            first = with_traces[0]["traces"][0]
            r = await s.call_tool("search_anomalous_components", {"timestamp": first["start_ms"]})
            assert not r.is_error, text_of(r)
            await assert_tool_error(s, "search_anomalous_components", {"timestamp": "noon"}, "timestamp")
            await assert_tool_error(s, "search_traces", {"parent_span_id": 12}, "invalid arguments")
            await assert_tool_error(s, "localize", {"trace_id": "0" * 32}, "no trace")
            uris = [str(x.uri) for x in (await s.list_resources()).resources]
            assert uris == ["thinkfl://dataset"] + [f"thinkfl://incidents/{i}" for i in range(4)]

    with mcp_http_server(simulated, tmp_path / "server.log") as url:
        assert url.startswith("http://127.0.0.1:")
        anyio.run(main, url)


def test_localize_with_the_default_model_reports_progress(tmp_path):
    """The trained local model through MCP: progress per model turn, then the answer that
    `thinkfl localize` (greedy, the same seed) prints for the same case."""
    progress: list[tuple[float, str | None]] = []

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        progress.append((p, message))

    async def main():
        with open(tmp_path / "server.log", "w") as err:
            async with stdio_session(SAMPLE, err) as s:
                r = await s.call_tool("localize", {"case": 0}, progress_callback=on_progress)
                assert not r.is_error, text_of(r)
                return r.structured_content

    ans = anyio.run(main)
    cli = json.loads(run_cli("localize", "--data", str(SAMPLE), "--case", "0", "--json"))
    assert ans["model"] != "scripted-expert"
    assert ans["answered"] and ans["root_causes"], ans
    assert ans["root_causes"] == cli["prediction"]
    assert ans["evidence_path"] == cli["path"]
    assert len(progress) == ans["model_turns"] >= 2, progress
    assert [p for p, _ in progress] == list(range(1, len(progress) + 1))
    assert progress[0][1] == "model turn 1: reading the question"
    assert progress[1][1].startswith("model turn 2, after: ")


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_cancel_a_running_localize(tmp_path, transport):
    """A client cancels `localize` with the local model after its first turn: the episode stops
    (the server says so once it has), and the session goes on answering."""
    log = tmp_path / "server.log"
    started = anyio.Event()

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        if p >= 2:  # the model loaded and an episode is under way
            started.set()

    async def session_and_cancel(s):
        async with anyio.create_task_group() as tg:
            async def call():
                await s.call_tool("localize", {"case": 0}, progress_callback=on_progress)
                raise AssertionError("localize finished before it was cancelled")

            tg.start_soon(call)
            with anyio.fail_after(300):
                await started.wait()
            t0 = time.monotonic()
            tg.cancel_scope.cancel()
        # The server logs the stop once the episode has ended (at the end of its turn).
        with anyio.fail_after(120):
            while "localize cancelled by the client; the episode stopped" not in log.read_text():
                await anyio.sleep(0.1)
        stopped_s = time.monotonic() - t0
        r = await s.call_tool("search_traces", {"parent_span_id": "125b4bbe94d27a47"})
        assert not r.is_error
        # The expert runs at once: no episode holds the server.
        r = await s.call_tool("localize", {"case": 0, "model": "expert"})
        assert not r.is_error
        return stopped_s

    async def over_stdio():
        with open(log, "w") as err:
            async with stdio_session(SAMPLE, err) as s:
                return await session_and_cancel(s)

    async def over_http(url):
        async with http_session(url) as s:
            return await session_and_cancel(s)

    if transport == "stdio":
        stopped_s = anyio.run(over_stdio)
    else:
        with mcp_http_server(SAMPLE, log) as url:
            stopped_s = anyio.run(over_http, url)
    line = [l for l in log.read_text().splitlines() if "episode stopped" in l][0]
    turns = int(line.split("after ")[1].split(" model turns")[0])
    assert 2 <= turns < 10, line
    print(f"\n{transport}: cancelled localize stopped {stopped_s:.1f} s after the cancel: {line}")
