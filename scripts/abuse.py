#!/usr/bin/env python3
"""Abuse run against a thinkfl HTTP server (issue 18): starts `thinkfl serve tools|env|mcp`
on a loopback port as a child process, then for --seconds keeps --connections connections
busy with a mix of valid requests (whose answers must equal, byte for byte, the answers the
idle server gave before the run), malformed requests (must get a 4xx or a close, never a 5xx),
oversized bodies (must get 413 without the server reading them), slowloris clients (headers
one line a second: the server must close them near its header-read timeout) and slow bodies.
Samples the server's RSS every second. Prints req/s, p50/p99 latency of the valid requests,
wrong answers, errors, RSS (start, peak, end) and slow-client close times; exits 1 when a
valid request was answered wrongly, a 5xx came back, the server died or panicked, or a slow
client was held past its bound.

    scripts/abuse.py --bin target/release/thinkfl --server tools \\
        --data ../shared/fixtures/aiops2022-sample --seconds 60 --connections 1000

The client is Python (asyncio, one process): on a small machine it, not the server, bounds
the request rate, so the rates printed are what this client got, not the server's limit.
"""

import argparse
import asyncio
import csv
import json
import os
import random
import re
import subprocess
import sys
import time

HEADER_READ_TIMEOUT_S = 10  # ServeLimits::DEFAULT_HEADER_READ_TIMEOUT
REQUEST_TIMEOUT_S = {"tools": 30, "env": 60, "mcp": 30}  # serve defaults


def req(method, path, body=None, headers=()):
    h = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    h.extend(headers)
    if body is not None:
        if isinstance(body, str):
            body = body.encode()
        h.append("Content-Type: application/json")
        h.append(f"Content-Length: {len(body)}")
    raw = ("\r\n".join(h) + "\r\n\r\n").encode()
    return raw + (body or b"")


async def read_response(r):
    """(status, headers dict, body) of one response; raises on EOF."""
    line = await r.readline()
    if not line:
        raise ConnectionError("closed before a response")
    status = int(line.split()[1])
    headers = {}
    while True:
        line = await r.readline()
        if not line:
            raise ConnectionError("closed in headers")
        line = line.strip()
        if not line:
            break
        k, _, v = line.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    body = b""
    if "chunked" in headers.get("transfer-encoding", ""):
        while True:
            n = int((await r.readline()).strip(), 16)
            chunk = await r.readexactly(n + 2)
            if n == 0:
                break
            body += chunk[:n]
    elif "content-length" in headers:
        body = await r.readexactly(int(headers["content-length"]))
    elif headers.get("content-type", "").startswith("text/event-stream"):
        # MCP answers a request with one SSE event and closes the stream.
        body = await r.read()
    return status, headers, body


class Stats:
    def __init__(self):
        self.valid = 0
        self.correct = 0
        self.wrong = 0
        self.errors = 0
        self.malformed = 0
        self.malformed_5xx = 0
        self.oversized = 0
        self.oversized_ok = 0
        self.oversized_reset = 0
        self.slow_closed = []  # seconds a slow client was held before the server closed it
        self.slow_held_past_bound = 0
        self.latencies = []
        self.examples = []

    def note(self, msg):
        if len(self.examples) < 8:
            self.examples.append(msg)


def normalise(body, server):
    # Episode ids and MCP session ids differ per request; everything else must match.
    if server == "env":
        body = re.sub(rb'"episode_id":"[^"]*"', b'"episode_id":"*"', body)
    return body


async def valid_worker(addr, probes, malformed, refs, stats, stop, server, k):
    """Keep-alive client: valid probes, every fifth request a malformed one."""
    reader = writer = None
    i = k
    while time.monotonic() < stop:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(*addr)
            i += 1
            if i % 5 == 0:
                raw = malformed[i // 5 % len(malformed)]
                writer.write(raw)
                await writer.drain()
                stats.malformed += 1
                try:
                    status, h, body = await asyncio.wait_for(read_response(reader), 30)
                    if status >= 500:
                        stats.malformed_5xx += 1
                        stats.note(f"malformed {raw[:60]!r}: {status} {body[:120]!r}")
                except (ConnectionError, asyncio.IncompleteReadError, OSError):
                    pass  # a close is an answer to garbage
                # After bytes that may not frame as one request (a bad length, a broken
                # chunk), a client cannot count on the connection: the next valid request
                # goes on a fresh one.
                writer.close()
                writer = None
                continue
            name, raw = probes[i % len(probes)]
            steps = episode_flow(raw) if name == "episode" else [(name, raw)]
            episode = None
            for n, raw in steps:
                if episode is not None:
                    raw = raw.replace(b"{EPISODE}", episode)
                t0 = time.monotonic()
                writer.write(raw)
                await writer.drain()
                stats.valid += 1
                status, h, body = await asyncio.wait_for(read_response(reader), 30)
                stats.latencies.append(time.monotonic() - t0)
                m = re.search(rb'"episode_id":"([^"]*)"', body)
                if m and episode is None:
                    episode = m.group(1)
                if (status, normalise(body, server)) == refs[n]:
                    stats.correct += 1
                else:
                    stats.wrong += 1
                    stats.note(f"{n}: {status} {body[:200]!r} (idle: {refs[n][0]})")
                if h.get("connection") == "close":
                    writer.close()
                    writer = None
                    break
        except (ConnectionError, asyncio.IncompleteReadError, OSError, asyncio.TimeoutError) as e:
            stats.errors += 1
            stats.note(f"valid connection error: {e!r}")
            if writer is not None:
                writer.close()
            writer = None
            await asyncio.sleep(0.05)
    if writer is not None:
        writer.close()


def episode_flow(step_text):
    """An RL client's episode: create, one step, delete (episodes do not pile up)."""
    return [
        ("create", req("POST", "/v1/episodes", '{"case": 0}')),
        ("step", req("POST", "/v1/episodes/{EPISODE}/step", step_text)),
        ("delete", req("DELETE", "/v1/episodes/{EPISODE}")),
    ]


async def oversized_worker(addr, path, limit, stats, stop):
    """Announces a body 64 times the limit, sends the limit and 1 MiB of it, expects 413."""
    while time.monotonic() < stop:
        try:
            reader, writer = await asyncio.open_connection(*addr)
            n = limit * 64
            writer.write(req("POST", path, headers=[
                "Content-Type: application/json", f"Content-Length: {n}"]))
            try:
                # More than the limit, so that the server must refuse it whether it goes by
                # the announced length or by the bytes it reads.
                writer.write(b"[" * (limit + (1 << 20)))
                await writer.drain()
            except OSError:
                pass  # the server may answer and close before taking the body
            stats.oversized += 1
            try:
                status, _, body = await asyncio.wait_for(read_response(reader), 30)
                if status == 413:
                    stats.oversized_ok += 1
                else:
                    stats.note(f"oversized: {status} {body[:120]!r}")
            except (ConnectionResetError, BrokenPipeError):
                # The server answered and closed while the body was still coming: TCP then
                # resets the connection, which can drop the answer on the client's side.
                stats.oversized_reset += 1
            except (ConnectionError, asyncio.IncompleteReadError, OSError,
                    asyncio.TimeoutError) as e:
                stats.note(f"oversized: no answer ({e!r})")
            writer.close()
        except OSError as e:
            stats.errors += 1
            stats.note(f"oversized connect: {e!r}")
        await asyncio.sleep(0.2)


async def slow_worker(addr, stats, stop, bound, body):
    """Slowloris (a header line a second) or, with `body`, a slow body (a byte a second)."""
    while time.monotonic() < stop:
        try:
            reader, writer = await asyncio.open_connection(*addr)
        except OSError as e:
            stats.errors += 1
            stats.note(f"slow connect: {e!r}")
            await asyncio.sleep(1)
            continue
        t0 = time.monotonic()
        if body:
            writer.write(b"POST /v1/tools/call HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
        else:
            writer.write(b"GET /healthz HTTP/1.1\r\n")
        closed = False
        k = 0
        while time.monotonic() < stop and time.monotonic() - t0 < 3 * bound:
            try:
                writer.write(b"{" if body else f"X-Slow-{k}: 1\r\n".encode())
                await writer.drain()
                k += 1
                # A close shows as EOF (or an answer, e.g. 408) on the read side.
                data = await asyncio.wait_for(reader.read(4096), 1.0)
                if data and len(stats.examples) < 8 and not any(
                        e.startswith("slow client answered") for e in stats.examples):
                    stats.note(f"slow client answered: {data[:100]!r}")
                closed = True
                break
            except asyncio.TimeoutError:
                continue
            except OSError:
                closed = True
                break
        held = time.monotonic() - t0
        if closed:
            stats.slow_closed.append(held)
        elif held >= 3 * bound:
            stats.slow_held_past_bound += 1
            stats.note(f"{'slow body' if body else 'slowloris'} held {held:.0f} s")
        writer.close()


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


async def sample_rss(pid, out, stop):
    while time.monotonic() < stop:
        v = rss_kib(pid)
        if v is not None:
            out.append((time.monotonic(), v))
        await asyncio.sleep(1)


def span_ids(data):
    ids = []
    path = os.path.join(data, "trace", "all")
    for name in sorted(os.listdir(path)):
        with open(os.path.join(path, name), newline="") as f:
            for row in csv.DictReader(f):
                ids.append(row["span_id"])
                if row.get("parent_span"):
                    ids.append(row["parent_span"])
    return sorted(set(ids))


def probes_for(server, data):
    """(name, raw) valid requests, (raw) malformed ones, and the oversized body's route."""
    valid, malformed = [], []
    ids = span_ids(data)
    if server == "tools":
        for sid in ids:
            valid.append((f"trace {sid}", req("GET", f"/search_traces?parent_span_id={sid}")))
            valid.append((f"call {sid}", req("POST", "/v1/tools/call", json.dumps(
                {"name": "search_traces", "arguments": {"parent_span_id": sid}}))))
        valid.append(("tools", req("GET", "/v1/tools")))
        valid.append(("healthz", req("GET", "/healthz")))
        malformed += [
            req("GET", "/search_traces"),
            req("GET", "/search_traces?parent_span_id=zzzz"),
            req("POST", "/v1/tools/call", '{"name": '),
            req("POST", "/v1/tools/call", '{"name": "nope", "arguments": {}}'),
            req("GET", "/search_fluctuating_metrics?service_name=frontend&timestamp=noon"),
        ]
        over = "/v1/tools/call"
    elif server == "env":
        valid.append(("healthz", req("GET", "/healthz")))
        valid.append(("datasets", req("GET", "/v1/datasets")))
        valid.append(("tools", req("GET", "/v1/tools")))
        call = ('<tool_call>{"name": "search_traces", "arguments": {"parent_span_id": "%s"}}'
                '</tool_call>' % ids[0])
        valid.append(("episode", json.dumps({"text": call}).encode()))
        malformed += [
            req("POST", "/v1/episodes", '{"case": "x"}'),
            req("POST", "/v1/episodes", '{"case": 99999}'),
            req("POST", "/v1/episodes/nope/step", '{"text": "hi"}'),
            req("POST", "/v1/episodes", "{"),
            req("GET", "/v1/episodes/nope"),
        ]
        over = "/v1/episodes"
    else:
        init = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-03-26", "capabilities": {},
            "clientInfo": {"name": "abuse", "version": "0"}}})
        accept = ["Accept: application/json, text/event-stream"]
        valid.append(("initialize", req("POST", "/mcp", init, accept)))
        malformed += [
            req("POST", "/mcp", "{", accept),
            req("POST", "/mcp", '{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}', accept),
            req("GET", "/mcp"),
            req("POST", "/mcp", init, ["Accept: application/json, text/event-stream",
                                       "Host: evil.example"]),
        ]
        over = "/mcp"
    malformed += [
        b"\x16\x03\x01 not http\r\n\r\n",
        b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 200_000 + b"\r\n\r\n",
        b"BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ]
    return valid, malformed, over


async def reference(addr, probes, server):
    """The idle server's answers, one request at a time."""
    refs = {}
    reader, writer = await asyncio.open_connection(*addr)
    flat = []
    for name, raw in probes:
        flat += episode_flow(raw) if name == "episode" else [(name, raw)]
    episode = None
    for name, raw in flat:
        if episode is not None:
            raw = raw.replace(b"{EPISODE}", episode)
        writer.write(raw)
        await writer.drain()
        status, h, body = await asyncio.wait_for(read_response(reader), 30)
        m = re.search(rb'"episode_id":"([^"]*)"', body)
        if m and name == "create":
            episode = m.group(1)
        refs[name] = (status, normalise(body, server))
        if h.get("connection") == "close" or "text/event-stream" in h.get("content-type", ""):
            writer.close()
            reader, writer = await asyncio.open_connection(*addr)
    writer.close()
    return refs


def start(args):
    log = open(args.server_log, "wb")
    if args.server == "tools":
        cmd = [args.bin, "serve", "tools", "--data", args.data, "--addr", "127.0.0.1:0"]
        pat = rb"on http://([0-9.]+):(\d+)"
    elif args.server == "env":
        cmd = [args.bin, "serve", "env", "--data", args.data, "--addr", "127.0.0.1:0"]
        pat = rb"on http://([0-9.]+):(\d+)"
    else:
        cmd = [args.bin, "serve", "mcp", "--data", args.data, "--http", "127.0.0.1:0"]
        pat = rb"on http://([0-9.]+):(\d+)/mcp"
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    seen = b""
    while time.monotonic() < deadline:
        line = p.stderr.readline()
        if not line:
            break
        log.write(line)
        seen += line
        m = re.search(pat, line)
        if m:
            # Keep draining stderr so the server never blocks on a full pipe.
            def drain():
                for l in p.stderr:
                    log.write(l)
                log.flush()
            import threading
            threading.Thread(target=drain, daemon=True).start()
            return p, (m.group(1).decode(), int(m.group(2)))
    p.kill()
    sys.exit(f"server did not start: {' '.join(cmd)}\n{seen.decode(errors='replace')}")


async def main(args):
    proc, addr = start(args)
    valid, malformed, over = probes_for(args.server, args.data)
    refs = await reference(addr, valid, args.server)
    limit = {"tools": 64 * 1024, "env": 4 * 1024 * 1024, "mcp": 64 * 1024}[args.server]
    stats = Stats()
    rss = []
    t0 = time.monotonic()
    stop = t0 + args.seconds
    slow_bound = HEADER_READ_TIMEOUT_S
    body_bound = REQUEST_TIMEOUT_S[args.server]
    n_slow = args.slow
    n_over = args.oversized
    n_valid = max(1, args.connections - 2 * n_slow - n_over)
    tasks = [asyncio.create_task(sample_rss(proc.pid, rss, stop))]
    for k in range(n_valid):
        tasks.append(asyncio.create_task(valid_worker(
            addr, valid, malformed, refs, stats, stop, args.server, k)))
    for _ in range(n_over):
        tasks.append(asyncio.create_task(oversized_worker(addr, over, limit, stats, stop)))
    for _ in range(n_slow):
        tasks.append(asyncio.create_task(slow_worker(addr, stats, stop, slow_bound, False)))
    if args.server == "tools":
        for _ in range(n_slow):
            tasks.append(asyncio.create_task(slow_worker(addr, stats, stop, body_bound, True)))
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - t0
    alive = proc.poll() is None
    proc.kill()
    proc.wait()
    with open(args.server_log, "rb") as f:
        log = f.read()
    panics = log.count(b"panicked")
    lat = sorted(stats.latencies)
    q = lambda x: lat[min(len(lat) - 1, int(x * (len(lat) - 1)))] * 1e3 if lat else 0.0
    first_min = [v for t, v in rss if t - t0 <= 60] or [0]
    rss_v = [v for _, v in rss] or [0]
    closed = sorted(stats.slow_closed)
    print(f"server {args.server} ({args.data}), {args.seconds} s, {args.connections} connections "
          f"({n_valid} keep-alive valid+malformed, {n_over} oversized, {n_slow} slowloris"
          f"{f', {n_slow} slow-body' if args.server == 'tools' else ''}); "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"valid: {stats.valid} sent, {stats.correct} correct, {stats.wrong} wrong, "
          f"{stats.valid / elapsed:.0f} req/s, p50 {q(0.5):.1f} ms, p99 {q(0.99):.1f} ms")
    print(f"malformed: {stats.malformed} sent, {stats.malformed_5xx} answered 5xx; "
          f"oversized: {stats.oversized} sent, {stats.oversized_ok} answered 413, "
          f"{stats.oversized_reset} reset after the server closed; "
          f"connection errors: {stats.errors}")
    if closed:
        print(f"slow clients closed by the server: {len(closed)}, after {closed[0]:.1f} to "
              f"{closed[-1]:.1f} s (header-read bound {slow_bound} s, request bound "
              f"{body_bound} s); held past 3x the bound: {stats.slow_held_past_bound}")
    else:
        print(f"slow clients closed by the server: 0; held past 3x the bound: "
              f"{stats.slow_held_past_bound}")
    print(f"server RSS: start {rss_v[0] / 1024:.1f} MiB, peak in the first minute "
          f"{max(first_min) / 1024:.1f} MiB, peak {max(rss_v) / 1024:.1f} MiB, end "
          f"{rss_v[-1] / 1024:.1f} MiB; alive at the end: {alive}; panics in its log: {panics}")
    marks = [rss_v[min(len(rss_v) - 1, len(rss_v) * k // 10)] / 1024 for k in range(11)]
    print("server RSS at each tenth of the run (MiB): " + " ".join(f"{m:.0f}" for m in marks))
    for e in stats.examples:
        print("  example:", e)
    bad = (stats.wrong or stats.malformed_5xx or not alive or panics
           or stats.slow_held_past_bound or stats.correct == 0
           or stats.oversized_ok + stats.oversized_reset < stats.oversized)
    return 1 if bad else 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default="target/release/thinkfl")
    ap.add_argument("--server", choices=["tools", "env", "mcp"], default="tools")
    ap.add_argument("--data", default="../shared/fixtures/aiops2022-sample")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--slow", type=int, default=20, help="slowloris clients (and slow bodies)")
    ap.add_argument("--oversized", type=int, default=10)
    ap.add_argument("--server-log", default="/tmp/thinkfl-abuse-server.log")
    a = ap.parse_args()
    random.seed(18)
    sys.exit(asyncio.run(main(a)))
