#!/usr/bin/env bash
# Latency of one search_traces call through the official MCP Python SDK (stdio, streamable HTTP)
# beside the same call to the HTTP tool server: p50/p90/p99/mean, printed. Arguments go to
# python -m thinkfl_mcp_test.bench (--data DIR --span ID --calls N --warmup N).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p thinkfl >&2
py=$(bash scripts/mcp-python.sh)
bin="${CARGO_TARGET_DIR:-target}/release/thinkfl"
case "$bin" in /*) ;; *) bin="$PWD/$bin" ;; esac
cd python
THINKFL_BIN="$bin" exec "$py" -m thinkfl_mcp_test.bench "$@"
