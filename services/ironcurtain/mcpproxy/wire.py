"""The MCP protocol's constants the proxy needs, held here rather than imported from mcp_types:
importing any part of that package loads its ~500 pydantic models (a third of a second of CPU),
which the proxy's start and its backend-free answers do without. A unit test pins every value
to mcp_types' own, so an SDK upgrade that changes one fails there.
"""

from __future__ import annotations

HANDSHAKE_PROTOCOL_VERSIONS: tuple[str, ...] = (
    "2024-11-05",
    "2025-03-26",
    "2025-06-18",
    "2025-11-25",
)
MODERN_PROTOCOL_VERSIONS: tuple[str, ...] = ("2026-07-28",)
KNOWN_PROTOCOL_VERSIONS = (*HANDSHAKE_PROTOCOL_VERSIONS, *MODERN_PROTOCOL_VERSIONS)
LATEST_HANDSHAKE_VERSION = HANDSHAKE_PROTOCOL_VERSIONS[-1]

CONNECTION_CLOSED = -32000  # a session ended with requests still waiting
HEADER_MISMATCH = -32020  # 2026-07-28: routing headers disagree with the body
