"""Landlock for a room's child: the kernel, not the server, decides which files it may open.

A filesystem server checks a path, then opens it by name: between the two the agent can swap a
directory for a symlink (renameat2 RENAME_EXCHANGE), and the open follows it. Landlock rules
hold on the object the kernel reaches after resolving every link, at the moment of the open, so
whatever the server resolved, a file outside the room's allowed folders stays shut (EACCES).
The rules are applied in the child just before it executes its program (`restrict`, used as a
preexec function), so they bind the server and everything it starts, and cannot be lifted.

What a child may touch: its program's folders read-only (and executable), /dev, and the
workspace when the room holds it (read-only or read-write). /tmp only in a room without the
workspace (a server with path arguments has no business outside the workspace). Stat calls are
outside Landlock's reach (a `get_file_info` learns sizes and times, never contents).

Where the kernel has ABI 6, the child is also scoped: it cannot signal a process outside its own
domain (the room's supervisor, which would stay down for the session) nor connect to an abstract
unix socket made outside it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Sequence
from dataclasses import dataclass

_SYS_CREATE_RULESET = 444
_SYS_ADD_RULE = 445
_SYS_RESTRICT_SELF = 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

EXECUTE = 1 << 0
WRITE_FILE = 1 << 1
READ_FILE = 1 << 2
READ_DIR = 1 << 3
REMOVE_DIR = 1 << 4
REMOVE_FILE = 1 << 5
MAKE_CHAR = 1 << 6
MAKE_DIR = 1 << 7
MAKE_REG = 1 << 8
MAKE_SOCK = 1 << 9
MAKE_FIFO = 1 << 10
MAKE_BLOCK = 1 << 11
MAKE_SYM = 1 << 12
REFER = 1 << 13  # ABI 2
TRUNCATE = 1 << 14  # ABI 3
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6

READ = EXECUTE | READ_FILE | READ_DIR
WRITE = (
    WRITE_FILE
    | REMOVE_DIR
    | REMOVE_FILE
    | MAKE_DIR
    | MAKE_REG
    | MAKE_SOCK
    | MAKE_FIFO
    | MAKE_SYM
    | REFER
    | TRUNCATE
)
EVERYTHING = READ | WRITE | MAKE_CHAR | MAKE_BLOCK

SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc", "/opt", "/proc", "/sys")


class LandlockUnavailable(OSError):
    """This kernel (or the engine's seccomp profile) offers no Landlock."""


class _Attr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64)]


class _ScopedAttr(ctypes.Structure):  # ABI 6: no network rights handled (rooms have no network)
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


@dataclass(frozen=True, slots=True)
class Rules:
    """Folders and what may be done beneath each; everything else is refused."""

    grants: tuple[tuple[str, int], ...]


def room_rules(workspace: str | None, writable: bool) -> Rules:
    """A room's child: its program's folders, /dev, and the workspace (or /tmp without one)."""
    grants: list[tuple[str, int]] = [(path, READ) for path in SYSTEM]
    grants.append(("/dev", READ | WRITE_FILE))
    if workspace is None:
        grants.append(("/tmp", EVERYTHING & ~(MAKE_CHAR | MAKE_BLOCK)))  # noqa: S108 (the room's tmpfs)
    else:
        grants.append((workspace, READ | (WRITE if writable else 0)))
    return Rules(tuple(grants))


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def abi() -> int:
    """Landlock's ABI version here; LandlockUnavailable when there is none."""
    libc = _libc()
    version = libc.syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), _CREATE_RULESET_VERSION)
    if version < 0:
        raise LandlockUnavailable(ctypes.get_errno(), "Landlock is not available")
    return int(version)


def _handled(version: int) -> int:
    handled = EVERYTHING
    if version < 2:
        handled &= ~REFER
    if version < 3:
        handled &= ~TRUNCATE
    return handled


def restrict(rules: Rules, missing_ok: Sequence[str] = SYSTEM) -> None:
    """Apply `rules` to this process and its future children (irreversibly)."""
    libc = _libc()
    version = abi()
    handled = _handled(version)
    attr: ctypes.Structure = (
        _ScopedAttr(handled, 0, SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL)
        if version >= 6
        else _Attr(handled)
    )
    ruleset = libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.sizeof(attr), 0)
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
    try:
        for path, access in rules.grants:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except FileNotFoundError:
                if path in missing_ok:
                    continue
                raise
            try:
                # A file (not a folder) takes only file rights.
                if not os.path.isdir(f"/proc/self/fd/{fd}"):
                    access &= EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE
                beneath = _PathBeneath(access & handled, fd)
                if (
                    libc.syscall(
                        _SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(beneath), 0
                    )
                    < 0
                ):
                    raise OSError(ctypes.get_errno(), f"landlock_add_rule {path}")
            finally:
                os.close(fd)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
        if libc.syscall(_SYS_RESTRICT_SELF, ruleset, 0) < 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self")
    finally:
        os.close(ruleset)
