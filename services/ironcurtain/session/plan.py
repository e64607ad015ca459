"""What one session is made of, as data: the compose variables, the MITM settings, the doors as the
agent sees them. Pure; `run.py` does the I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_network
from pathlib import Path

from ..agents.adapter import SESSION_MOUNT, Endpoints
from .forwards import Forward, render
from .identity import Identity
from .layout import SessionLayout
from .naming import SessionName
from .networks import SESSION_NETWORKS

# Every provider a session's compose file declares a secret for (unused ones get an empty file).
SECRET_PROVIDERS = ("anthropic", "openai", "google")
MITM_PORT = 3128
MCP_PORT = 8080
DOCKER_PORT = 2375
# The socket proxy shares the sidecar's network namespace and listens on its loopback: socat
# holds DOCKER_PORT on every address there, so HAProxy takes the next port.
SOCKET_PROXY_PORT = 2376
CA_IN_AGENT = f"{SESSION_MOUNT}/ca.pem"
MITM_CA_DIR = "/run/ironcurtain/ca"  # in the MITM container
MITM_CONFIG_DIR = "/etc/ironcurtain/mitm"
FORWARDS = (
    Forward(MCP_PORT, "mcp-proxy", MCP_PORT),
    Forward(MITM_PORT, "mitm-proxy", MITM_PORT),
    Forward(DOCKER_PORT, "localhost", SOCKET_PROXY_PORT),
)
ENDPOINTS = Endpoints(
    mcp_url=f"http://sidecar:{MCP_PORT}/mcp",
    https_proxy=f"http://sidecar:{MITM_PORT}",
    ca_cert=CA_IN_AGENT,
    docker_host=f"tcp://sidecar:{DOCKER_PORT}",
)


def secret_name(provider: str) -> str:
    return f"{provider}_api_key"


@dataclass(frozen=True, slots=True)
class Upstream:
    """Send a provider host's traffic elsewhere (tests, air-gapped mirrors); TLS still verified."""

    host: str
    address: str  # host:port, reachable from the MITM's egress network
    ca_file: Path | None = None  # on the host; copied into the session


@dataclass(frozen=True, slots=True)
class Plan:
    name: SessionName
    layout: SessionLayout
    agent: str  # adapter name
    agent_image: str  # image reference
    image_tag: str
    workspace: Path
    policy_dir: Path
    task: str
    owner: Identity  # the workspace's owner: the agent, the MCP proxy and its rooms run as it
    mitm_user: str  # uid:gid of the MITM proxy (who can read the files we hand it)
    docker_socket: str
    docker_socket_gid: int
    shared_network: str
    redis_url: str = "rediss://redis:6379/0"  # the team Redis as the MCP proxy dials it
    test_run: str = ""
    escalation_timeout_s: float = 300.0
    forwards: tuple[Forward, ...] = FORWARDS
    upstreams: tuple[Upstream, ...] = ()
    budget: Mapping[str, object] = field(default_factory=dict)
    # the user's model prices (config/prices.py), ahead of the built-in table in the MITM
    prices: Mapping[str, Sequence[Mapping[str, object]]] = field(default_factory=dict)
    visible_containers: tuple[str, ...] = ()  # served by the socket proxy (sibling services)
    subnets: Mapping[str, str] = field(default_factory=dict)  # network role -> leased CIDR
    # OCI runtimes (session/runtime.py): the agent under runsc where the engine has it.
    agent_runtime: str = "runc"
    room_runtime: str = "runc"

    def compose_env(self) -> dict[str, str]:
        """The variables compose.yaml interpolates (every `${X:?}` in it)."""
        return {
            "IRONCURTAIN_SESSION_ID": self.name.session_id,
            "IRONCURTAIN_SESSION_DIR": str(self.layout.root),
            "IRONCURTAIN_WORKSPACE": str(self.workspace),
            "IRONCURTAIN_POLICY_DIR": str(self.policy_dir),
            "IRONCURTAIN_IMAGE_TAG": self.image_tag,
            "IRONCURTAIN_AGENT_IMAGE": self.agent_image,
            "IRONCURTAIN_AGENT": self.agent,
            "IRONCURTAIN_WORKTREE": self.name.worktree,
            "IRONCURTAIN_TASK": self.task,
            "IRONCURTAIN_FORWARDS": render(self.forwards),
            "IRONCURTAIN_AGENT_UID": str(self.owner.uid),
            "IRONCURTAIN_AGENT_GID": str(self.owner.gid),
            "IRONCURTAIN_MITM_USER": self.mitm_user,
            "IRONCURTAIN_DOCKER_SOCKET": self.docker_socket,
            "IRONCURTAIN_SOCKET_PROXY_PORT": str(SOCKET_PROXY_PORT),
            "IRONCURTAIN_DOCKER_SOCKET_GID": str(self.docker_socket_gid),
            "IRONCURTAIN_SHARED_NETWORK": self.shared_network,
            "IRONCURTAIN_REDIS_URL": self.redis_url,
            "IRONCURTAIN_ESCALATION_TIMEOUT": f"{self.escalation_timeout_s:g}",
            "IRONCURTAIN_TEST_RUN": self.test_run,
            "IRONCURTAIN_AGENT_RUNTIME": self.agent_runtime,
            "IRONCURTAIN_ROOM_RUNTIME": self.room_runtime,
            "IRONCURTAIN_VISIBLE_CONTAINERS": ",".join(self.visible_containers),
            "IRONCURTAIN_DOCKER_CONTAINERS": "1" if self.visible_containers else "0",
            **{n.subnet_variable: self.subnets.get(n.role, "") for n in SESSION_NETWORKS},
            **{n.gateway_variable: self.gateway(n.role) for n in SESSION_NETWORKS},
        }

    def gateway(self, role: str) -> str:
        """The gateway of a session network: its subnet's first address (IPAM's own default)."""
        subnet = self.subnets.get(role)
        return str(ip_network(subnet).network_address + 1) if subnet else ""

    def mitm_settings(
        self,
        fake_keys: Mapping[str, str],
        oauth: Mapping[str, Mapping[str, str]] | None = None,
    ) -> dict[str, object]:
        """The MITM proxy's settings document (docs/mitm.md), paths as the container sees them.

        `oauth`: providers on a subscription login, whose entry names the host's token socket
        instead of a real key file (session/subscription.py)."""
        oauth = oauth or {}
        keys: dict[str, object] = {
            provider: dict(oauth[provider])
            if provider in oauth
            else {"fake": fake, "real_file": f"/run/secrets/{secret_name(provider)}"}
            for provider, fake in sorted(fake_keys.items())
        }
        doc: dict[str, object] = {
            "session": self.name.session_id,
            "listen": {"host": "0.0.0.0", "port": MITM_PORT},  # noqa: S104 - container port
            "ca_dir": MITM_CA_DIR,
            "audit": "/var/log/ironcurtain/mitm.jsonl",
            "audit_key": "/run/secrets/audit_key_mitm",
            "keys": keys,
        }
        if self.budget:
            doc["budget"] = dict(self.budget)
        if self.prices:
            doc["prices"] = {name: [dict(e) for e in rows] for name, rows in self.prices.items()}
        if self.upstreams:
            doc["upstream"] = {
                u.host: {
                    "address": u.address,
                    **({"ca_file": f"{MITM_CONFIG_DIR}/{_ca_name(u)}"} if u.ca_file else {}),
                }
                for u in self.upstreams
            }
        return doc


def _ca_name(upstream: Upstream) -> str:
    return f"upstream-{upstream.host}.pem"


def upstream_ca_files(upstreams: Sequence[Upstream]) -> dict[str, Path]:
    """Name in the MITM config folder -> host file, for the upstream CAs to copy in."""
    return {_ca_name(u): u.ca_file for u in upstreams if u.ca_file is not None}


def parse_upstream(text: str) -> Upstream:
    """`HOST=ADDRESS:PORT` (the --upstream option)."""
    host, sep, address = text.partition("=")
    if not sep or not host or ":" not in address:
        raise ValueError(f"--upstream {text!r}: expected HOST=ADDRESS:PORT")
    return Upstream(host.strip(), address.strip())


def agent_env_file(environment: Mapping[str, str]) -> str:
    """The agent's environment as a compose env_file (fake keys only; values on one line)."""
    lines = []
    for key, value in sorted(environment.items()):
        if "\n" in value or "\r" in value:
            raise ValueError(f"agent environment {key}: a value spans lines")
        lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"
