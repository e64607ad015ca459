"""Which parts a session needs, and which of them exist in this checkout yet.

Until every part exists, `ironcurtain run` refuses to start instead of pretending.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Part:
    name: str
    module: str | None = None  # an importable module that implements it
    path: str | None = None  # or a repo-relative file that must exist


SESSION_PARTS = (
    Part("MITM proxy (issue: MITM proxy)", module="ironcurtain.mitm"),
    Part("MCP policy proxy (issue: policy engine and MCP proxy)", module="ironcurtain.mcpproxy"),
    Part("escalation channel and approval service", module="ironcurtain.approval"),
    Part("session compose file", path="compose.yaml"),
    Part("team-shared compose file", path="compose.shared.yaml"),
    Part("session orchestration (ironcurtain run)", module="ironcurtain.session.run"),
)


def _exists(part: Part, repo_root: Path) -> bool:
    if part.module is not None:
        try:
            return importlib.util.find_spec(part.module) is not None
        except ModuleNotFoundError:
            return False
    return part.path is not None and (repo_root / part.path).is_file()


def missing_parts(repo_root: Path, parts: tuple[Part, ...] = SESSION_PARTS) -> list[Part]:
    return [part for part in parts if not _exists(part, repo_root)]
