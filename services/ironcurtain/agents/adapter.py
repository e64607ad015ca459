"""The small typed interface every agent adapter implements.

An adapter is pure: it says which image and providers an agent needs, which commands run it,
which environment and files it gets (built from *fake* keys only), and how to read its output.
The session orchestration does all the I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

# Inside the agent container: where the session's read-only orientation files are mounted, and
# the HOME (a tmpfs) the image's entrypoint copies them into.
SESSION_MOUNT = "/run/ironcurtain/session"
AGENT_HOME = "/home/agent"
WORKSPACE = "/workspace"


@dataclass(frozen=True, slots=True)
class Endpoints:
    """The doors, as the agent reaches them: everything goes through the sidecar."""

    mcp_url: str  # e.g. http://sidecar:8080/mcp
    https_proxy: str  # e.g. http://sidecar:3128
    ca_cert: str  # path, inside the agent container, of the MITM proxy's CA certificate
    docker_host: str | None = None  # e.g. tcp://sidecar:2375, when the session allows it


@dataclass(frozen=True, slots=True)
class OrientationFile:
    """A file the agent finds at start: `path` is relative to the agent's HOME."""

    path: str
    content: str


class AgentAdapter(Protocol):
    # Read-only (properties), so frozen dataclasses satisfy the protocol.
    @property
    def name(self) -> str:
        """e.g. "claude-code"."""
        ...

    @property
    def image(self) -> str:
        """images/<image>/Dockerfile."""
        ...

    @property
    def providers(self) -> tuple[str, ...]:
        """MITM provider names the agent needs (their fake keys)."""
        ...

    def environment(self, endpoints: Endpoints, fake_keys: Mapping[str, str]) -> dict[str, str]:
        """The agent's environment: proxies, CA, fake keys — never a real secret."""
        ...

    def oneshot_command(self, task: str) -> list[str]:
        """argv that runs `task` to completion, printing machine-readable progress."""
        ...

    def interactive_command(self) -> list[str]:
        """argv for an interactive session on a terminal."""
        ...

    def orientation_files(self, endpoints: Endpoints) -> list[OrientationFile]:
        """Config and a short guide: where the tools are, that some calls may wait for a human."""
        ...

    def render(self, line: str) -> str | None:
        """One line of one-shot output made readable for a person (None: nothing to show)."""
        ...

    def final_answer(self, lines: Iterable[str]) -> str | None:
        """The agent's final answer, from its whole one-shot output."""
        ...


GUIDE = """\
# Working inside IronCurtain

You are running inside IronCurtain, a sandbox that mediates everything you do outside your
workspace ({workspace}).

- Your tools for the outside world are on the MCP server named `ironcurtain`. Every call is checked
  against a policy before it runs. A refused call returns an error that names the rule and the
  reason: read it and change course; do not retry the same call in a loop.
- Some calls need a human's approval. They wait until a person decides (this can take minutes) and
  then either run or come back refused. If approval times out you may ask again once, or find
  another way.
- There is no other network access: package installs and web requests that do not go through
  these doors fail by design.
"""


def guide(workspace: str = WORKSPACE) -> str:
    return GUIDE.format(workspace=workspace)


def json_event(line: str) -> dict[str, Any] | None:
    """One line of an agent's JSON-lines output as an object; None when it is not one."""
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def proxy_environment(endpoints: Endpoints) -> dict[str, str]:
    """What every agent needs to reach its LLM through the MITM proxy (and nothing else)."""
    # The MCP door is plain HTTP on the sidecar. Clients that send *every* request through
    # HTTPS_PROXY (Claude Code does) would ask the MITM for it, which refuses plain-HTTP
    # proxying (Claude Code then reports the server as "needs-auth"). The sidecar is the agent's
    # only neighbour anyway: going to it directly reaches nothing new.
    direct = urlsplit(endpoints.mcp_url).hostname or ""
    env = {
        "HOME": AGENT_HOME,
        "HTTPS_PROXY": endpoints.https_proxy,
        "https_proxy": endpoints.https_proxy,
        "NO_PROXY": direct,
        "no_proxy": direct,
        # Package tools trust the MITM CA (mounted at run time, never baked into the image) and
        # use the same proxy; the registries themselves come from registries.agent_environment.
        "PIP_CERT": endpoints.ca_cert,
        "NPM_CONFIG_CAFILE": endpoints.ca_cert,
        "IRONCURTAIN_CA_CERT": endpoints.ca_cert,  # agent-init writes apt's config from it
    }
    if endpoints.docker_host:
        env["DOCKER_HOST"] = endpoints.docker_host
    return env
