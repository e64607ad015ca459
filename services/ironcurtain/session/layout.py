"""A session's folder under the state directory: what is kept after it ends, and what is not.

<state>/sessions/<project>/
    agent/     orientation files, mounted read-only into the agent      (removed at teardown)
    agent.env  the agent's environment (fake keys only)                 (removed at teardown)
    identity/  passwd and group naming the agent (the workspace owner), mounted read-only
               over the agent image's                                   (removed at teardown)
    mitm/      the MITM proxy's settings (fake keys, budgets)           (removed at teardown)
    secrets/   0700: files handed to containers as compose secrets     (removed at teardown)
    rooms/     0700, the MCP uid's: rooms/NAME/ (0700) holds server NAME's unix socket (and
               its egress leg), mounted into mcp-room-NAME and mcp-proxy only, never into
               the agent                                                (removed at teardown)
    room-servers/  NAME.json: each room's server, mounted into that room alone (removed)
    wake/      0700, the MCP uid's: mcp-proxy (rw) creates NAME here to ask for server NAME's
               room, which `ironcurtain run` starts then (on its first call) (removed)
    audit/     the doors' audit logs                                    (kept)
    anchor/    0700, the host user's, mounted into no container: each log's key (a copy;
               the writing proxy gets its own as a secret) and the host's checkpoints of
               its head, so `ironcurtain audit verify` can tell a rewrite    (kept)
    summary.json                                                         (kept)
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .naming import SessionName


@dataclass(frozen=True, slots=True)
class SessionLayout:
    root: Path

    @classmethod
    def for_session(cls, state: Path, name: SessionName) -> SessionLayout:
        return cls(state / "sessions" / name.project)

    @property
    def agent(self) -> Path:
        return self.root / "agent"

    @property
    def agent_env(self) -> Path:
        return self.root / "agent.env"

    @property
    def identity(self) -> Path:
        return self.root / "identity"

    @property
    def mitm(self) -> Path:
        return self.root / "mitm"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def rooms(self) -> Path:
        return self.root / "rooms"

    @property
    def room_servers(self) -> Path:
        return self.root / "room-servers"

    @property
    def wake(self) -> Path:
        return self.root / "wake"

    @property
    def audit(self) -> Path:
        return self.root / "audit"

    @property
    def anchor(self) -> Path:
        return self.root / "anchor"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        # Explicit modes: containers (other uids) enter these, whatever the process umask is.
        self.root.chmod(0o755)
        for folder in (self.agent, self.identity, self.audit, self.mitm):
            folder.mkdir(exist_ok=True)
            folder.chmod(0o755)
        for private in (self.secrets, self.anchor):
            private.mkdir(mode=0o700, exist_ok=True)
            private.chmod(0o700)

    def write_secret(self, name: str, value: str, reader_uid: int | None = None) -> Path:
        """A secret file for one container user, created private (0600).

        Compose bind-mounts secret files with their host owner and mode. As root we hand the
        file (0400) to the container's uid; otherwise it is 0444 inside the 0700 secrets folder,
        which nobody but us can enter on the host.
        """
        return _write_private(self.secrets / name, value, reader_uid)

    def write_room_server(self, name: str, text: str, reader_uid: int | None = None) -> Path:
        """Room NAME's server settings (room-servers/NAME.json), for that room's uid alone."""
        return _write_private(self.room_servers / f"{name}.json", text, reader_uid)

    def remove_ephemeral(self) -> None:
        """Teardown: secrets, settings, orientation and sockets go; the audit logs and summary
        stay."""
        for folder in (
            self.secrets,
            self.agent,
            self.identity,
            self.mitm,
            self.rooms,
            self.room_servers,
            self.wake,
        ):
            shutil.rmtree(folder, ignore_errors=True)
        self.agent_env.unlink(missing_ok=True)


def _write_private(path: Path, value: str, reader_uid: int | None) -> Path:
    # The mode at creation, never via the umask (the whole process's, shared by threads).
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    if path.stat().st_mode & 0o077:
        raise PermissionError(f"{path} is readable by others after writing it")
    if reader_uid is not None:
        if os.geteuid() == 0:
            os.chown(path, reader_uid, -1)
            path.chmod(0o400)
        else:
            path.chmod(0o444)
    return path
