"""The one part of policy evaluation that reads the filesystem: turning a path argument into
the real path it would reach. Passed into the engine, so the engine itself stays pure."""

from __future__ import annotations

import os
import posixpath
import stat
import unicodedata
from typing import Protocol

MAX_LISTED = 10_000  # entries under a directory a pathspec names, checked one by one


class Resolver(Protocol):
    def resolve(self, root: str, raw: str) -> str:
        """The absolute path `raw` reaches, relative paths taken from `root`."""
        ...

    def identity_problem(self, real: str) -> str | None:
        """Why the object at `real` may stand for another than its name says, or None."""
        ...

    def names_under(self, real: str) -> tuple[str, ...] | None:
        """Every path under the directory `real` (none for a file); None: too many to check."""
        ...


class FsResolver:
    """Follows every symlink (and `..` after it) as the kernel would, component by component.

    Components that do not exist yet (a file about to be written) are appended lexically,
    which is what the kernel will do once they are created.
    """

    def resolve(self, root: str, raw: str) -> str:
        joined = raw if raw.startswith("/") else posixpath.join(root, raw)
        real = _kernel_real(joined)
        if real is not None:
            return real
        # Not there yet (a file about to be written): resolve its directory, keep the name.
        parent, _, name = joined.rstrip("/").rpartition("/")
        if name not in ("", ".", "..") and (real_parent := _kernel_real(parent or "/")):
            return real_parent.rstrip("/") + "/" + name
        return os.path.realpath(joined)

    def identity_problem(self, real: str) -> str | None:
        try:
            info = os.lstat(real)
        except FileNotFoundError:
            return _equivalent_entry(real)
        except OSError:
            return None
        if stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
            # Another name for the same file, maybe a protected one (`ln .env notes.txt`): the
            # policy cannot tell which name it stands for, so it stands for none.
            return f"{real} is a hard link (another name for the same file)"
        return None

    def names_under(self, real: str) -> tuple[str, ...] | None:
        if not os.path.isdir(real) or os.path.islink(real):
            return ()
        found: list[str] = []
        for top, dirs, files in os.walk(real):
            found += (f"{top}/{n}" for n in (*dirs, *files))
            if len(found) > MAX_LISTED:
                return None
        return tuple(found)


def _nfc(name: str) -> str:
    return unicodedata.normalize("NFKC", name).casefold()


def _equivalent_entry(real: str) -> str | None:
    """A name that is not there, while its folder holds one that normalises the same (NFC, NFKC,
    case): a backend that falls back to the look-alike would open another object than the one
    checked. The first missing component is the one compared (what follows it cannot exist)."""
    parent, _, name = real.rpartition("/")
    while parent and not os.path.lexists(parent):
        parent, _, name = parent.rpartition("/")
    wanted = _nfc(name)
    try:
        entries = os.listdir(parent or "/")
    except OSError:
        return None
    for entry in entries:
        if entry != name and _nfc(entry) == wanted:
            # The entry's own name is not said: the folder may be outside the workspace, and
            # the refusal must not list it.
            return f"{real} does not exist, but its folder holds the same name normalised"
    return None


def _kernel_real(path: str) -> str | None:
    """Where an existing path leads, resolved by the kernel exactly as the backend's open()."""
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
    finally:
        os.close(fd)


class LexicalResolver:
    """No filesystem: collapse `.` and `..` only. For tests and the benchmark."""

    def resolve(self, root: str, raw: str) -> str:
        joined = raw if raw.startswith("/") else posixpath.join(root, raw)
        return posixpath.normpath("/" + joined.lstrip("/"))

    def identity_problem(self, real: str) -> str | None:
        return None

    def names_under(self, real: str) -> tuple[str, ...] | None:
        return ()
