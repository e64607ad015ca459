"""Pure path checks, run on paths the resolver has already made absolute and real.

The resolver (I/O) follows symlinks and `..`; these functions decide containment and protection.
Protection compares case-folded forms so that `.ENV` or `/State/` cannot slip past on a
case-insensitive filesystem; containment (which grants) compares exact forms.
"""

from __future__ import annotations

import fnmatch
import unicodedata

_CONTROL = {chr(c) for c in range(0x20)} | {"\x7f"}


def character_problem(raw: str) -> str | None:
    """Why a raw path argument is refused before any resolution, or None if it is acceptable."""
    if not raw:
        return "the path is empty"
    if any(ch in _CONTROL for ch in raw):
        return "the path contains a control character"
    if unicodedata.normalize("NFKC", raw) != raw:
        # Fullwidth dots and slashes, ligatures, compatibility forms: they look like something
        # else, and tools disagree on whether they are; refuse instead of guessing.
        return "the path contains look-alike (non-normalised) unicode characters"
    return None


def within(path: str, base: str) -> bool:
    """True if `path` is `base` or lies under it (both absolute, normalised)."""
    if base == "/":
        return path.startswith("/")
    return path == base or path.startswith(base + "/")


def fold(path: str) -> str:
    return unicodedata.normalize("NFKC", path).casefold().rstrip("/") or "/"


def protected_by(folded: str, protected: tuple[str, ...], names: tuple[str, ...]) -> str | None:
    """The protected path or name pattern that `folded` (see fold()) touches, or None.

    `protected` and `names` must already be folded.
    """
    for base in protected:
        if within(folded, base):
            return base
    for part in folded.split("/"):
        for pattern in names:
            if part and fnmatch.fnmatchcase(part, pattern):
                return pattern
    return None


def protected_under(workspace: str, protected: tuple[str, ...]) -> tuple[str, ...]:
    """Protected paths that lie inside the workspace (a session must refuse such a workspace)."""
    folded = fold(workspace)
    return tuple(p for p in protected if within(fold(p), folded))
