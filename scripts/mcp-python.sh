#!/usr/bin/env bash
# Makes (once) a virtual environment with the official MCP Python SDK and pytest, pinned by
# python/thinkfl_mcp_test/requirements.txt, in a cache keyed by that file's hash, and prints the
# path of its python. The integration test of `thinkfl serve mcp` and its benchmark run on it.
set -euo pipefail
cd "$(dirname "$0")/.."
req=python/thinkfl_mcp_test/requirements.txt
key=$(sha256sum "$req" | cut -c1-16)
cache=${THINKFL_PEERS:-${HOME}/.cache/thinkfl/peers}
venv="$cache/mcp-python-$key"
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
  rm -rf "$venv"
  mkdir -p "$cache"
  {
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
  } >&2
  touch "$venv/.complete"
fi
echo "$venv/bin/python"
