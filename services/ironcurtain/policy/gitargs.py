"""Git arguments that can carry a path, read as git reads them (pure).

A revision is not only a commit: `HEAD:.env`, `:.env` (the index), `:0:.env` (a stage) and
`main..HEAD:secret.key` name files, and `git show` prints them. A branch name that names no
branch is taken by `git checkout` as a pathspec. A pathspec may be magic (`:(glob)*`) or a
wildcard that matches protected files. So each is parsed here into the paths it can reach, which
the engine checks as read (or write) paths; what cannot be parsed is refused (allowlist).
"""

from __future__ import annotations

import re

# A revision's characters: names, ancestry (^ ~), reflog (@{...}), ranges (..), paths after `:`.
_REVISION = re.compile(r"[A-Za-z0-9._/@{}^~:+=,-]{1,256}")
_BRANCH = re.compile(r"[A-Za-z0-9._/+=,-]{1,200}")
_STAGE = re.compile(r"[0-3]:")
_PATHSPEC_MAGIC = frozenset("*?[\\")


class GitArgumentError(ValueError):
    """The argument is not of a form the policy can read; the message says why."""


def revision_paths(raw: str) -> tuple[str, ...]:
    """The paths a revision (or range of them) names: `rev:path`, `:path`, `:N:path`."""
    if not _REVISION.fullmatch(raw):
        raise GitArgumentError(
            "a revision may hold only letters, digits and . _ / @ { } ^ ~ : + = , - (at most 256)"
        )
    if raw.startswith("-"):
        raise GitArgumentError("a revision may not start with '-' (git would read an option)")
    rev, colon, path = raw.partition(":")
    for part in re.split(r"\.\.\.?", rev):  # a range's ends: none may be an option
        if part.startswith("-"):
            raise GitArgumentError("a revision may not start with '-' (git would read an option)")
    if not colon:
        return ()
    if not rev and _STAGE.match(path):
        path = path[2:]  # `:N:path`, a stage of the index
    if ":" in path:
        raise GitArgumentError("a revision may name one path (one `rev:path`)")
    if path.startswith("/"):
        # `:/text` searches commit messages; refused rather than told from a path.
        raise GitArgumentError("a revision's `:/` message search is not allowed")
    # Everything after the colon is the path (its `..` are folders, not a range).
    return (path.removeprefix("./") or ".",)


def branch_problem(raw: str) -> str | None:
    """Why a branch name is refused, or None (checkout reads a non-branch as a pathspec, so
    the name is also checked as a path by the caller)."""
    if not _BRANCH.fullmatch(raw):
        return "a branch name may hold only letters, digits and . _ / + = , - (at most 200)"
    if raw.startswith("-"):
        return "a branch name may not start with '-' (git would read an option)"
    if ".." in raw or raw.endswith((".lock", "/", ".")) or "//" in raw:
        return "not a valid branch name (git check-ref-format)"
    return None


def pathspec_problem(raw: str) -> str | None:
    """Why a pathspec is refused: magic and wildcards match more than the policy checked."""
    if raw.startswith(":"):
        return "pathspec magic (a leading ':') is not allowed; name the files"
    if _PATHSPEC_MAGIC.intersection(raw):
        return "wildcards (* ? [ \\) are not allowed in a pathspec; name the files"
    if raw.startswith("-"):
        return "a pathspec may not start with '-' (git would read an option)"
    return None
