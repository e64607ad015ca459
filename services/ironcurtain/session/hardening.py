"""The agent container's confinement: the settings compose.yaml's agent service must have (the one
that runs; tests/unit/session/test_compose_file.py holds the file to these), the sidecar settings
siblings.py writes, and a checker that reads an inspected container back and names every way it
falls short. Pure, no Docker here.

What it guarantees (docs/isolation.md): a non-root user, no capabilities, no-new-privileges, a
read-only root filesystem with tmpfs scratch (/tmp, $HOME), the workspace as the only writable
bind mount, IPv6 off, pids/memory/CPU limits, no Docker socket and no SSH agent socket.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .networks import AGENT

# The images' own user; a session runs the agent as the workspace's owner instead (identity.py).
AGENT_UID = 10100
IPV6_OFF = {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"}
NO_NEW_PRIVILEGES = "no-new-privileges:true"
# Host paths that must never be mounted into the agent (Docker API, SSH keys and agent sockets).
_FORBIDDEN_SOURCES = ("docker.sock", "containerd.sock", "/.ssh", "ssh-agent", "/ssh-", "agent.sock")
_FORBIDDEN_ENV = ("SSH_AUTH_SOCK", "SSH_AGENT_PID")


class HardeningError(ValueError):
    """The requested agent settings would weaken the confinement."""


@dataclass(frozen=True, slots=True)
class Limits:
    pids: int = 512
    memory_bytes: int = 4 * 1024**3
    cpus: float = 2.0
    tmp_bytes: int = 1024**3
    home_bytes: int = 256 * 1024**2

    def __post_init__(self) -> None:
        if self.pids <= 0 or self.memory_bytes <= 0 or self.cpus <= 0:
            raise HardeningError("pids, memory and CPU limits must be positive")


@dataclass(frozen=True, slots=True)
class AgentHardening:
    workspace: str  # host path, bind-mounted read-write at /workspace
    limits: Limits = field(default_factory=Limits)
    uid: int = AGENT_UID
    gid: int | None = None  # default: the uid
    home: str = "/home/agent"
    workspace_target: str = "/workspace"

    def __post_init__(self) -> None:
        if self.uid == 0 or self.gid == 0:
            raise HardeningError("the agent never runs as root (uid 0) or in root's group")
        if not self.workspace.startswith("/"):
            raise HardeningError(f"workspace {self.workspace!r}: an absolute host path")
        if any(mark in self.workspace for mark in _FORBIDDEN_SOURCES):
            raise HardeningError(f"workspace {self.workspace!r} looks like a socket or SSH path")

    @property
    def group(self) -> int:
        return self.uid if self.gid is None else self.gid

    @property
    def user(self) -> str:
        return f"{self.uid}:{self.group}"

    def _tmpfs(self) -> dict[str, str]:
        owner = f"uid={self.uid},gid={self.group}"
        return {
            "/tmp": f"rw,nosuid,nodev,size={self.limits.tmp_bytes},mode=1777",  # noqa: S108 (tmpfs)
            self.home: f"rw,nosuid,nodev,size={self.limits.home_bytes},{owner}",
        }

    def compose_service(self) -> dict[str, object]:
        """The agent service's hardening keys, as compose.yaml must have them (the file adds
        image, command, environment, the orientation mounts)."""
        return {
            "user": self.user,
            "read_only": True,
            "cap_drop": ["ALL"],
            "security_opt": [NO_NEW_PRIVILEGES],
            "privileged": False,
            "tmpfs": [f"{path}:{options}" for path, options in self._tmpfs().items()],
            "volumes": [
                {
                    "type": "bind",
                    "source": self.workspace,
                    "target": self.workspace_target,
                    "read_only": False,
                }
            ],
            "working_dir": self.workspace_target,
            "sysctls": dict(IPV6_OFF),
            "pids_limit": self.limits.pids,
            "mem_limit": self.limits.memory_bytes,
            "memswap_limit": self.limits.memory_bytes,
            "cpus": self.limits.cpus,
            "networks": [AGENT.role],
        }


def violations(attrs: Mapping[str, object], user: str | None = None) -> list[str]:
    """Every way an inspected container (`docker inspect` output) falls short of the hardening;
    `user` (`uid:gid`), when given, is whom it must run as.

    Used before an agent is started with a task: any violation aborts the session.
    """
    host = _mapping(attrs.get("HostConfig"))
    config = _mapping(attrs.get("Config"))
    found: list[str] = []
    actual = str(config.get("User") or "")
    uid, _, gid = actual.partition(":")
    if uid in ("", "0", "root"):
        found.append(f"runs as root (User={actual!r})")
    elif gid in ("", "0", "root"):  # no group: Docker takes root's when the image has no entry
        found.append(f"runs in root's group (User={actual!r})")
    elif user is not None and actual != user:
        found.append(f"runs as {actual}, not as the workspace's owner {user}")
    if host.get("Privileged"):
        found.append("privileged")
    if "ALL" not in [str(c).upper() for c in _list(host.get("CapDrop"))]:
        found.append("capabilities not all dropped (CapDrop lacks ALL)")
    if _list(host.get("CapAdd")):
        found.append(f"capabilities added: {_list(host.get('CapAdd'))}")
    if not any(str(o).startswith("no-new-privileges") for o in _list(host.get("SecurityOpt"))):
        found.append("no-new-privileges not set")
    if any("unconfined" in str(o) for o in _list(host.get("SecurityOpt"))):
        found.append("a security profile is unconfined")
    if not host.get("ReadonlyRootfs"):
        found.append("root filesystem is writable")
    sysctls = _mapping(host.get("Sysctls"))
    if str(sysctls.get("net.ipv6.conf.all.disable_ipv6")) != "1":
        found.append("IPv6 not disabled")
    pids = host.get("PidsLimit")
    if not isinstance(pids, int) or pids <= 0:
        found.append("no pids limit")
    if not host.get("Memory"):
        found.append("no memory limit")
    if not host.get("NanoCpus") and not host.get("CpuQuota"):
        found.append("no CPU limit")
    for mode in ("NetworkMode", "PidMode", "IpcMode", "UTSMode", "UsernsMode"):
        if str(host.get(mode) or "") == "host":
            found.append(f"{mode}=host")
    if _list(host.get("Devices")):
        found.append("host devices mapped")
    for mount in _list(attrs.get("Mounts")):
        source = str(_mapping(mount).get("Source") or "")
        target = str(_mapping(mount).get("Destination") or "")
        if any(mark in source or mark in target for mark in _FORBIDDEN_SOURCES):
            found.append(f"forbidden mount {source} -> {target}")
    for entry in _list(config.get("Env")):
        if str(entry).split("=", 1)[0] in _FORBIDDEN_ENV:
            found.append(f"SSH agent variable in env: {str(entry).split('=', 1)[0]}")
        if str(entry).startswith("DOCKER_HOST=unix:"):
            found.append("DOCKER_HOST points at a local socket")
    return found


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[object]:
    return list(value) if isinstance(value, list | tuple) else []


# The sidecar sits on both the agent and the control network. A new network namespace inherits
# the host's IPv4 forwarding (on, for Docker): switch it off so the sidecar never routes between
# its networks, whatever routes a future engine hands the agent. IPv6 is off there too.
SIDECAR_SYSCTLS = {"net.ipv4.ip_forward": "0", "net.ipv4.conf.all.forwarding": "0", **IPV6_OFF}


def sidecar_compose_service() -> dict[str, object]:
    """The sidecar's hardening keys (compose.yaml's sidecar and every sibling sidecar)."""
    return {
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": [NO_NEW_PRIVILEGES],
        "privileged": False,
        "sysctls": dict(SIDECAR_SYSCTLS),
        "pids_limit": 512,
    }


def socket_group_problem(socket_path: str, gid: int) -> str | None:
    """Why the socket proxy must not get the Docker socket's group (it joins that group to
    read the socket), or None: a socket of root's group would make it a member of root's."""
    if gid == 0:
        return (
            f"the Docker socket {socket_path} belongs to group root (gid 0), which the socket "
            "proxy would have to join; give the socket a group of its own (e.g. `docker`: "
            f"`sudo groupadd -f docker && sudo chgrp docker {socket_path}`)"
        )
    return None
