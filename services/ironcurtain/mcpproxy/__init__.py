"""The MCP policy proxy: every tool call decided by the policy engine, audited, then routed.

The names below load on first use: the CLI imports this package for every command, and the
proxy's dependencies (mcp, uvicorn) take seconds to import on a busy machine.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "Gate": "gate",
    "SessionInfo": "gate",
    "Timeouts": "gate",
    "ProxySettings": "service",
    "StartupError": "service",
    "running_gate": "service",
    "serve": "service",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
