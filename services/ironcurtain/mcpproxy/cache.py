"""Tool listings saved ahead of time, so the proxy can answer `tools/list` and check arguments
without starting every backend at start-up (a backend then starts on its first call).

A listing is stored under a key: the SHA-256 of the backend's resolved settings (command, args,
env, egress; never the per-run egress address) and the installed server's identity (its resolved
executable's content, plus the npm package version or Python distribution version it belongs
to). Change any of them and the key changes: the backend is started at once, as without a cache.
Only child-process backends are cached; a remote (url) server can change its tools any time.
The mcp-proxy image builds the cache (`ironcurtain mcp-proxy cache-tools`); a backend that lists
different tools when it does start is caught by the backend itself (see backend.py: drift).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import listing
from .config import BackendSpec

if TYPE_CHECKING:
    import mcp_types as types

logger = logging.getLogger(__name__)

FORMAT = 1
_PACKAGE_LEVELS = 6  # how far up from an npm bin's real path a package.json may be


def dump(tools: Iterable[types.Tool]) -> list[dict[str, Any]]:
    """The SDK's tool models as plain JSON (the stored form), sorted by name."""
    return ordered(t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools)


def ordered(tools: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tools in the stored form sorted by name: as stored, and as compared (drift)."""
    return sorted(tools, key=lambda d: str(d["name"]))


def console_scripts() -> dict[str, list[str]]:
    """Script name -> the Python distributions (name==version) that install it."""
    found: dict[str, list[str]] = {}
    for dist in metadata.distributions():
        for entry in dist.entry_points:
            if entry.group == "console_scripts":
                found.setdefault(entry.name, []).append(
                    f"pypi {dist.metadata['Name']}=={dist.version}"
                )
    return found


def identity(spec: BackendSpec, scripts: Mapping[str, Sequence[str]]) -> str:
    """What is installed for this command, as text; "" when the command cannot be found.

    `scripts` is `console_scripts()` (passed in: reading it costs tens of milliseconds)."""
    if spec.command is None:
        return ""
    path = shutil.which(spec.command, path=spec.env.get("PATH", os.environ.get("PATH")))
    if path is None:
        return ""
    real = Path(path).resolve()
    try:
        content = real.read_bytes()
    except OSError:
        return ""
    parts = [str(real), hashlib.sha256(content).hexdigest()]
    parts += _npm_package(real)
    if content.startswith(b"#!") and b"python" in content.split(b"\n", 1)[0]:
        parts += sorted(scripts.get(Path(path).name, ()))
    return "\n".join(parts)


def _npm_package(real: Path) -> list[str]:
    for folder in list(real.parents)[:_PACKAGE_LEVELS]:
        manifest = folder / "package.json"
        if manifest.is_file():
            try:
                doc = json.loads(manifest.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return ["package.json unreadable"]
            return [f"npm {doc.get('name')}@{doc.get('version')}"]
    return []


def key(spec: BackendSpec, installed: str) -> str:
    doc = {
        "format": FORMAT,
        "name": spec.name,
        "command": spec.command,
        "args": list(spec.args),
        "env": sorted(spec.env.items()),
        "egress": spec.egress,
        "installed": installed,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


class ToolCache:
    """A folder of `<key>.json` listings (read-only in the image)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._scripts: dict[str, list[str]] | None = None

    def _path(self, spec: BackendSpec) -> Path | None:
        if spec.command is None:
            return None
        if self._scripts is None:
            self._scripts = console_scripts()
        installed = identity(spec, self._scripts)
        if not installed:
            return None
        return self.folder / f"{key(spec, installed)}.json"

    def get(self, spec: BackendSpec) -> list[dict[str, Any]] | None:
        """The saved listing for exactly this backend and installed server, or None.

        Plain JSON, each tool checked strictly (listing.py); a malformed one is refused whole:
        the backend then starts at once and its live listing is used, as without a cache."""
        path = self._path(spec)
        if path is None or not path.is_file():
            return None
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("format") != FORMAT or doc.get("name") != spec.name:
                return None
            return listing.check_all(doc["tools"])
        except listing.ListingError as exc:
            logger.warning("saved listing %s of %s refused: %s", path.name, spec.name, exc)
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # unreadable or malformed: start the backend, as without a cache

    def put(self, spec: BackendSpec, tools: Sequence[dict[str, Any]]) -> Path | None:
        """Save tools in the stored form (each checked: a listing `get` would refuse is not
        written)."""
        path = self._path(spec)
        if path is None:
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        checked = listing.check_all(list(tools))
        doc = {"format": FORMAT, "name": spec.name, "tools": ordered(checked)}
        path.write_text(json.dumps(doc, indent=1, sort_keys=True), encoding="utf-8")
        path.chmod(0o644)
        return path
