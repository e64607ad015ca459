"""The MCP policy proxy: every tool call decided by the policy engine, audited, then routed.

The package face imports nothing: the CLI imports this package for every command, and the
proxy's dependencies (mcp, uvicorn) take seconds to import on a busy machine. Import what you
need from its modules (`gate.Gate`, `service.serve`, `service.ProxySettings`, ...).
"""
