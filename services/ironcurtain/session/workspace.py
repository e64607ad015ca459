"""The workspace a session works on: refused when it holds protected paths or the agent cannot
write it. The checks read the filesystem; the decisions are the policy engine's."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Mapping
from pathlib import Path

from ..policy import Engine, load_policy
from ..policy.resolver import FsResolver
from .hardening import AGENT_UID

SERVICE_UID = 10001  # our python images' user


class WorkspaceError(ValueError):
    """The workspace cannot be used; the message says why and how to fix it."""


def check(workspace: Path, policy_file: Path, variables: Mapping[str, str]) -> Path:
    """The workspace as an absolute real path, after the policy's protected-path check.

    `variables` are the policy's (workspace, state_dir, ca_dir, ...) as host paths, so a
    workspace that contains IronCurtain's own state (its keys, CA, secrets, audit) is refused.
    """
    if not workspace.is_dir():
        raise WorkspaceError(f"workspace {workspace} is not a directory")
    real = workspace.resolve()
    policy = load_policy(policy_file, {**variables, "workspace": str(real)})
    inside = Engine(policy, FsResolver(), time.monotonic).protected_in(str(real))
    if inside:
        raise WorkspaceError(
            f"workspace {real} contains protected paths ({', '.join(inside)}): "
            "choose a folder that holds only the project (WORKSPACE=path)"
        )
    writable_by(real, AGENT_UID)
    return real


def writable_by(path: Path, uid: int) -> None:
    info = path.stat()
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid == uid and mode & 0o300 == 0o300:
        return
    if info.st_gid == uid and mode & 0o030 == 0o030:
        return
    if mode & 0o003 == 0o003:
        return
    raise WorkspaceError(
        f"workspace {path} is not writable by the agent (uid {uid}); give it the folder with "
        f"`sudo chown -R {uid}:{uid} {path}` (or `chmod -R o+rwX {path}` on a throw-away copy)"
    )


def proxy_uid(workspace: Path) -> int:
    """The MCP proxy runs as the workspace's owner (its files stay the user's); never as root."""
    owner = workspace.stat().st_uid
    return owner if owner != 0 else SERVICE_UID


def is_root() -> bool:
    return os.geteuid() == 0
