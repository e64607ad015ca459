"""The workspace a session works on: refused when it holds protected paths or its owner (whom the
agent runs as) is root or cannot write it. The checks read the filesystem; the decisions are the
policy engine's."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

from ..policy import Engine, load_policy
from ..policy.resolver import FsResolver
from .identity import Identity, IdentityError, of_workspace


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
    owner(real)
    return real


def owner(workspace: Path) -> Identity:
    """Whom the agent and the MCP proxy run as: the workspace's owner (never root).

    Without root, the session's files (audit, sockets) are ours and cannot be given away: the
    workspace must then be ours too, or its owner's containers could not write them.
    """
    try:
        found = of_workspace(workspace)
    except IdentityError as exc:
        raise WorkspaceError(str(exc)) from None
    if not is_root() and found.uid != os.geteuid():
        raise WorkspaceError(
            f"workspace {workspace} belongs to uid {found.uid}, not to you (uid {os.geteuid()}): "
            "run the session as the workspace's owner"
        )
    return found


def is_root() -> bool:
    return os.geteuid() == 0
