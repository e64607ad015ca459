"""The one part of policy evaluation that reads the filesystem: turning a path argument into
the real path it would reach. Passed into the engine, so the engine itself stays pure."""

from __future__ import annotations

import os
import posixpath
from typing import Protocol


class Resolver(Protocol):
    def resolve(self, root: str, raw: str) -> str:
        """The absolute path `raw` reaches, relative paths taken from `root`."""
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
