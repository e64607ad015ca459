"""The MCP policy proxy: every tool call decided by the policy engine, audited, then routed."""

from .gate import Gate, SessionInfo, Timeouts
from .service import ProxySettings, StartupError, running_gate, serve

__all__ = [
    "Gate",
    "ProxySettings",
    "SessionInfo",
    "StartupError",
    "Timeouts",
    "running_gate",
    "serve",
]
