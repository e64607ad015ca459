"""Who the agent is: the workspace owner's uid and gid, never root, named in files of our own.

The agent (and the MCP proxy with its file-writing rooms) runs as the owner of the workspace, so
what it writes is the user's and the user edits it without sudo. Its image does not know that uid:
the session mounts a passwd and a group file of three entries (root, the agent, nobody) read-only
over the image's, so tools that ask who they are (git, npm, ssh-less shells) get an answer and
HOME is the session's tmpfs. Pure, except `of_workspace`, which reads one stat.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..agents.adapter import AGENT_HOME

AGENT_NAME = "agent"
NOBODY = 65534


class IdentityError(ValueError):
    """The workspace's owner cannot be the agent; the message says what to do instead."""


@dataclass(frozen=True, slots=True)
class Identity:
    uid: int
    gid: int

    def __post_init__(self) -> None:
        if self.uid == 0 or self.gid == 0:
            raise IdentityError("the agent never runs as root (uid 0) or in root's group (gid 0)")
        if not (0 < self.uid < NOBODY and 0 < self.gid < NOBODY):
            raise IdentityError(f"uid {self.uid} / gid {self.gid}: outside 1..{NOBODY - 1}")

    @property
    def user(self) -> str:
        """As compose and the docker SDK take it: `uid:gid`."""
        return f"{self.uid}:{self.gid}"

    def passwd(self) -> str:
        return (
            "root:x:0:0:root:/root:/usr/sbin/nologin\n"
            f"{AGENT_NAME}:x:{self.uid}:{self.gid}:IronCurtain agent:{AGENT_HOME}:/bin/bash\n"
            f"nobody:x:{NOBODY}:{NOBODY}:nobody:/nonexistent:/usr/sbin/nologin\n"
        )

    def group(self) -> str:
        return f"root:x:0:\n{AGENT_NAME}:x:{self.gid}:\nnogroup:x:{NOBODY}:\n"


def of_workspace(workspace: Path) -> Identity:
    """The owner of `workspace`, refused (with the way out) when it is root or cannot write it."""
    info = workspace.stat()
    if info.st_uid == 0 or info.st_gid == 0:
        raise IdentityError(
            f"workspace {workspace} belongs to root (uid {info.st_uid}, gid {info.st_gid}); the "
            "agent runs as the workspace's owner and never as root: use a folder of your own "
            f"user, or give it to one with `sudo chown -R USER:GROUP {workspace}`"
        )
    if info.st_mode & 0o300 != 0o300:
        raise IdentityError(
            f"workspace {workspace} is not writable by its owner (uid {info.st_uid}), whom the "
            f"agent runs as: `chmod u+rwx {workspace}`"
        )
    return Identity(info.st_uid, info.st_gid)
