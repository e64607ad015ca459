"""Content hash of what goes into an image build; an unchanged hash means no rebuild."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# Bump when the way we assemble contexts changes, so every image rebuilds once.
_SCHEME = b"ironcurtain-image-digest-v1"


@dataclass(frozen=True, slots=True)
class ContextFile:
    path: str  # posix, relative to the context root
    executable: bool
    data: bytes


def content_hash(
    files: Iterable[ContextFile],
    build_args: Mapping[str, str],
    parent_hashes: Mapping[str, str],
) -> str:
    """sha256 over every file (path, exec bit, bytes), the build args and the parents' hashes."""
    h = hashlib.sha256(_SCHEME)

    def put(*parts: bytes) -> None:
        for part in parts:
            h.update(len(part).to_bytes(8, "big"))
            h.update(part)

    for f in sorted(files, key=lambda f: f.path):
        put(b"file", f.path.encode(), b"x" if f.executable else b"-", f.data)
    for key in sorted(build_args):
        put(b"arg", key.encode(), build_args[key].encode())
    for key in sorted(parent_hashes):
        put(b"parent", key.encode(), parent_hashes[key].encode())
    return h.hexdigest()
