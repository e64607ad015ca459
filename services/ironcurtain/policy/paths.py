"""Pure path checks, run on paths the resolver has already made absolute and real.

The resolver (I/O) follows symlinks and `..`; these functions decide containment and protection.
Protection compares case-folded forms so that `.ENV` or `/State/` cannot slip past on a
case-insensitive filesystem; containment (which grants) compares exact forms.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def character_problem(raw: str) -> str | None:
    """Why a raw path argument is refused before any resolution, or None if it is acceptable."""
    if not raw:
        return "the path is empty"
    if _CONTROL.search(raw):
        return "the path contains a control character"
    if not raw.isascii() and unicodedata.normalize("NFKC", raw) != raw:
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
    """The form protection compares: NFKC, case-folded, no trailing slash."""
    folded = path.lower() if path.isascii() else unicodedata.normalize("NFKC", path).casefold()
    return folded.rstrip("/") or "/"


def _glob(pattern: str) -> str:
    """A file-name glob as a regex over one path component (`*` and `?` never cross `/`)."""
    return "".join(
        "[^/]*" if ch == "*" else "[^/]" if ch == "?" else re.escape(ch) for ch in pattern
    )


@dataclass(frozen=True, slots=True)
class Protection:
    """Protected directories and names, compiled once; `hit()` is one regex search."""

    bases: tuple[str, ...]  # folded absolute paths
    names: tuple[str, ...]  # folded globs
    _regex: re.Pattern[str]

    @classmethod
    def compile(cls, bases: tuple[str, ...], names: tuple[str, ...]) -> Protection:
        alternatives = (
            ["(?P<base>" + "|".join(re.escape(b.rstrip("/")) for b in bases) + ")(?=/|$)"]
            if bases
            else []
        )
        if names:
            alternatives.append(
                "(?:^|.*/)(?P<name>" + "|".join(_glob(n) for n in names) + ")(?=/|$)"
            )
        regex = re.compile("^(?:" + "|".join(alternatives) + ")" if alternatives else "(?!)")
        return cls(bases, names, regex)

    def hit(self, folded: str) -> str | None:
        """The protected path or name that `folded` (see fold()) touches, or None."""
        match = self._regex.match(folded)
        if match is None:
            return None
        return next(value for value in match.groupdict().values() if value is not None)


def protected_under(workspace: str, protected: tuple[str, ...]) -> tuple[str, ...]:
    """Protected paths that lie inside the workspace (a session must refuse such a workspace)."""
    folded = fold(workspace)
    return tuple(p for p in protected if within(fold(p), folded))
