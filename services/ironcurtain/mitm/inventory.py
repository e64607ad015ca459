"""What the agent fetched from package registries: an SBOM-like JSON file, rewritten per file.

One entry per distinct file served (name, version, file, sha256, size, registry, package URL),
written next to the audit log so the session summary can list it. The file is replaced
atomically (temp file + rename), so a reader never sees half of it.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

FORMAT = "ironcurtain-packages/1"


@dataclass(frozen=True, slots=True)
class Item:
    registry: str  # our name for the registry, e.g. "pip"
    kind: str  # pypi | npm | apt
    name: str
    version: str
    file: str
    sha256: str
    size: int
    url: str  # as the agent fetched it (https://host/path)
    published: str = ""  # from the registry's metadata, when it says

    @property
    def purl(self) -> str:
        """Package URL (purl) type/name@version, the identifier SBOM tools use."""
        kind = {"apt": "deb"}.get(self.kind, self.kind)
        name = self.name
        if kind == "npm" and name.startswith("@"):
            name = "%40" + quote(name[1:], safe="/")
        return f"pkg:{kind}/{name}@{quote(self.version, safe='')}"


def document(session: str, items: list[Item]) -> dict[str, object]:
    return {
        "format": FORMAT,
        "session": session,
        "packages": [{**asdict(item), "purl": item.purl} for item in items],
    }


class Inventory:
    """Keeps the served files in memory and rewrites `path` after each new one."""

    def __init__(self, path: Path | None, session: str) -> None:
        self.path = path
        self._session = session
        self._items: list[Item] = []
        self._seen: set[tuple[str, str, str]] = set()

    @property
    def items(self) -> tuple[Item, ...]:
        return tuple(self._items)

    def add(self, item: Item) -> None:
        key = (item.registry, item.file, item.sha256)
        if key in self._seen:
            return
        self._seen.add(key)
        self._items.append(item)
        if self.path is not None:
            self._write(self.path)

    def _write(self, path: Path) -> None:
        data = json.dumps(document(self._session, self._items), indent=1).encode()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".packages-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o640)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
