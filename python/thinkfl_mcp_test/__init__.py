"""thinkfl's MCP server driven by the official MCP Python SDK: the integration test
(test_mcp.py, run by scripts/test) and the latency benchmark (python -m thinkfl_mcp_test.bench)."""
