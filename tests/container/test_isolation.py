"""The escape suite for the agent container: networks built exactly as compose builds them, the
agent hardened by `ironcurtain.session.hardening`, and probes that try to get out.

Topology (all created here, labelled, removed afterwards):
  agent net (internal, no host gateway): agent, sidecar, v6-control
  control net (internal): sidecar, upstream (a door stand-in), socket-proxy
  internet (normal bridge): canary              shared (normal bridge): redis
  other session's agent net: other-session      leaky (internal, gateway kept): for a control
  prober: on internet, shared, leaky and the other session's net - it runs every control probe.
Every blocked probe has a control showing the same target *is* reachable from where it should be.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.models.containers
import docker.models.networks
import pytest

from ironcurtain.escalation import acl
from ironcurtain.session.hardening import (
    AGENT_UID,
    AgentHardening,
    Limits,
    sidecar_run_kwargs,
    socket_proxy_run_kwargs,
    violations,
)
from ironcurtain.session.networks import AGENT, CONTROL, EGRESS
from ironcurtain.shared.pki import TeamTLS

from .conftest import RUN_ID, TEST_LABELS
from .probes import (
    DNS_SERVER,
    host_ipv4_of,
    host_server,
    link_local_of,
    probe,
    resolve,
    server_command,
    server_healthcheck,
)
from .waiting import wait_healthy, wait_logged

SHORT = RUN_ID[:8]
SOCKET = "/var/run/docker.sock"
HOST_MARKER = f"host-{secrets.token_hex(4)}"
RESOLVED_TO = "192.0.2.55"  # TEST-NET-1: what the stand-in resolver answers; never connected to
IPV6_ON = {"net.ipv6.conf.all.disable_ipv6": "0", "net.ipv6.conf.default.disable_ipv6": "0"}

Container = docker.models.containers.Container
Network = docker.models.networks.Network


@dataclass
class World:
    client: docker.DockerClient
    nets: dict[str, Network]
    boxes: dict[str, Container]
    host_port: int

    def name(self, box: str) -> str:
        return self.boxes[box].name

    def ip(self, box: str, net: str) -> str:
        self.boxes[box].reload()
        return self.boxes[box].attrs["NetworkSettings"]["Networks"][self.nets[net].name][
            "IPAddress"
        ]

    def gateway(self, net: str) -> str:
        if net == "docker0":
            return host_ipv4_of("docker0")[0]
        return self.client.networks.get(self.nets[net].id).attrs["IPAM"]["Config"][0]["Gateway"]

    def bridge(self, net: str) -> str:
        return "br-" + self.nets[net].id[:12]


def ip_of(container: Container, network: Network) -> str:
    container.reload()
    return container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]


class Builder:
    """Creates networks and containers for the world, remembering them for clean-up."""

    def __init__(self, client: docker.DockerClient, image: Callable[[str], str]) -> None:
        self.client = client
        self.image = image
        self.nets: dict[str, Network] = {}
        self.boxes: dict[str, Container] = {}

    def net(self, key: str, **kwargs: object) -> Network:
        self.nets[key] = self.client.networks.create(
            f"ic-{SHORT}-{key}", labels=TEST_LABELS, **kwargs
        )
        return self.nets[key]

    def box(self, key: str, image: str, nets: list[str], **kwargs: object) -> Container:
        container = self.client.containers.create(
            self.image(image),
            name=f"ic-{SHORT}-{key}",
            network=self.nets[nets[0]].name,
            labels=TEST_LABELS,
            **kwargs,
        )
        self.boxes[key] = container
        for extra in nets[1:]:
            self.nets[extra].connect(container)
        container.start()
        return container

    def server(self, key: str, nets: list[str], marker: str) -> Container:
        return self.box(
            key,
            "python",
            nets,
            command=server_command(8080, marker),
            healthcheck=server_healthcheck(8080),
        )

    def clean(self) -> None:
        for container in self.boxes.values():
            container.remove(force=True, v=True)
        for network in self.nets.values():
            network.remove()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("agent-workspace")
    os.chown(path, AGENT_UID, AGENT_UID)
    return path


@pytest.fixture(scope="module")
def world(
    docker_client: docker.DockerClient, image: Callable[[str], str], workspace: Path
) -> Iterator[World]:
    build = Builder(docker_client, image)
    password = workspace.parent / "redis_acl"
    password.write_text(acl.acl_file([acl.Credential.new(u) for u in acl.SERVICES]))
    tls = TeamTLS(workspace.parent / "tls")  # Redis serves TLS only (docs/approval.md)
    tls.ensure(["redis"], say=lambda _: None)
    tls.server_key.chmod(0o644)  # test files: read by the container's entrypoint
    tls.directory.chmod(0o755)
    try:
        with host_server(HOST_MARKER) as host_port:
            build.net("agent", **AGENT.create_kwargs())
            build.net("control", **CONTROL.create_kwargs())
            build.net("internet", **EGRESS.create_kwargs())
            build.net("shared", **EGRESS.create_kwargs())
            build.net("other", **AGENT.create_kwargs())
            build.net("leaky", driver="bridge", internal=True)  # internal, gateway kept
            build.server("upstream", ["control"], "upstream")
            build.server("canary", ["internet"], "canary")
            build.server("other-session", ["other"], "other-session")
            build.box(
                "redis",
                "redis",
                ["shared"],
                volumes={
                    str(password): {"bind": "/run/secrets/redis_acl", "mode": "ro"},
                    str(tls.server_cert): {"bind": "/run/secrets/redis_tls_cert", "mode": "ro"},
                    str(tls.server_key): {"bind": "/run/secrets/redis_tls_key", "mode": "ro"},
                    str(tls.ca): {"bind": "/run/secrets/redis_ca", "mode": "ro"},
                },
            )
            build.box(
                "socket-proxy",
                "socket-proxy",
                ["control"],
                **socket_proxy_run_kwargs(SOCKET, os.stat(SOCKET).st_gid),
            )
            forwards = (
                f"8080:{build.boxes['upstream'].name}:8080,"
                f"2375:{build.boxes['socket-proxy'].name}:2375"
            )
            build.box(
                "sidecar",
                "sidecar",
                ["control", "agent"],
                environment={"FORWARDS": forwards},
                **sidecar_run_kwargs(),
            )
            hardening = AgentHardening(
                workspace=str(workspace), limits=Limits(memory_bytes=512 * 1024**2, cpus=1.0)
            )
            # The outside resolver stand-in, given to the agent and the prober as their DNS server:
            # the embedded resolver forwards unknown names to it, if it forwards at all.
            build.box(
                "resolver",
                "python",
                ["internet"],
                command=["python3", "-c", DNS_SERVER, RESOLVED_TO],
                sysctls={"net.ipv4.ip_unprivileged_port_start": "0"},
            )
            wait_logged(build.boxes["resolver"], "ready")
            dns = [ip_of(build.boxes["resolver"], build.nets["internet"])]
            build.box("agent", "agent-scripted", ["agent"], dns=dns, **hardening.run_kwargs())
            # Controls: the same image without the hardening (and IPv6 switched on), and a prober.
            build.box("v6-control", "agent-scripted", ["agent"], sysctls=IPV6_ON)
            build.box("prober", "agent-scripted", ["internet", "shared", "leaky", "other"], dns=dns)
            for key in ("upstream", "canary", "other-session", "redis", "socket-proxy", "sidecar"):
                wait_healthy(build.boxes[key])
            yield World(docker_client, build.nets, build.boxes, host_port)
    finally:
        build.clean()


def agent(world: World) -> Container:
    return world.boxes["agent"]


def run(container: Container, *argv: str) -> tuple[int, str]:
    result = container.exec_run(list(argv))
    return result.exit_code, result.output.decode(errors="replace")


# ---- controls: the agent reaches the doors through the sidecar --------------------------------


def test_control_the_agent_reaches_a_door_through_the_sidecar(world: World) -> None:
    outcome = probe(agent(world), world.name("sidecar"), 8080)
    assert outcome.opened, outcome
    assert outcome.detail == "upstream"


def test_control_the_agent_reaches_the_socket_proxy_through_the_sidecar(world: World) -> None:
    outcome = probe(agent(world), world.name("sidecar"), 2375, "/_ping")
    assert outcome.opened, outcome
    assert outcome.detail == "OK"


def test_control_the_agent_can_write_its_workspace_and_tmp(world: World) -> None:
    for path in ("/workspace/probe", "/tmp/probe", "/home/agent/probe"):
        assert run(agent(world), "touch", path)[0] == 0, path


# ---- network: nothing but the sidecar --------------------------------------------------------


def test_the_agent_cannot_reach_a_door_directly(world: World) -> None:
    assert not probe(agent(world), world.name("upstream"), 8080).opened
    assert not probe(agent(world), world.ip("upstream", "control"), 8080).opened


def test_the_agent_cannot_reach_the_canary_on_the_internet_network(world: World) -> None:
    canary = world.ip("canary", "internet")
    control = probe(world.boxes["prober"], canary, 8080)
    assert control.opened, control
    assert control.detail == "canary"
    outcome = probe(agent(world), canary, 8080)
    assert not outcome.opened, outcome


def test_the_agent_cannot_resolve_or_reach_the_canary_by_name(world: World) -> None:
    assert probe(world.boxes["prober"], world.name("canary"), 8080).opened  # control
    outcome = probe(agent(world), world.name("canary"), 8080)
    assert not outcome.opened
    assert "gaierror" in outcome.detail


@pytest.mark.parametrize("net", ["agent", "control", "internet", "shared", "leaky", "docker0"])
def test_the_agent_cannot_reach_a_host_service_via_a_gateway(world: World, net: str) -> None:
    outcome = probe(agent(world), world.gateway(net), world.host_port)
    assert not outcome.opened, f"host reachable via the {net} gateway: {outcome}"


@pytest.mark.parametrize("net", ["internet", "leaky"])
def test_control_the_host_service_is_reachable_via_a_gateway_from_elsewhere(
    world: World, net: str
) -> None:
    """The host server really listens on every address; on an internal network that keeps its
    gateway (no inhibit_ipv4), even a container there reaches it: the option matters."""
    outcome = probe(world.boxes["prober"], world.gateway(net), world.host_port)
    assert outcome.opened, outcome
    assert outcome.detail == HOST_MARKER


def test_the_agent_networks_gateway_address_is_not_on_the_host(world: World) -> None:
    """With inhibit_ipv4 the address the agent routes to is assigned to no host interface."""
    assert world.gateway("control") in host_ipv4_of(world.bridge("control"))  # control
    assert host_ipv4_of(world.bridge("agent")) == []


def test_the_agent_has_ipv6_disabled(world: World) -> None:
    assert run(agent(world), "cat", "/proc/sys/net/ipv6/conf/all/disable_ipv6")[1].strip() == "1"
    code, addresses = run(agent(world), "cat", "/proc/net/if_inet6")
    assert code != 0 or addresses.strip() == ""


def test_the_agent_cannot_reach_the_host_over_ipv6_link_local(world: World) -> None:
    """The host bridge keeps an IPv6 link-local address even with inhibit_ipv4; a container with
    IPv6 on reaches a host service through it (the control). The hardening's sysctl closes it."""
    address = link_local_of(world.bridge("agent"))
    assert address is not None, "the agent bridge has no IPv6 link-local address"
    target = f"{address}%eth0"
    deadline = time.monotonic() + 10  # the control's own link-local address may be tentative
    while not (control := probe(world.boxes["v6-control"], target, world.host_port)).opened:
        assert time.monotonic() < deadline, (
            f"control with IPv6 on never reached the host: {control}"
        )
        time.sleep(0.2)  # polling until duplicate address detection finishes, with a deadline
    assert control.detail == HOST_MARKER
    outcome = probe(agent(world), target, world.host_port)
    assert not outcome.opened, outcome


def test_the_agent_cannot_reach_redis_on_another_network(world: World) -> None:
    redis_ip = world.ip("redis", "shared")
    assert probe(world.boxes["prober"], redis_ip, 6379).opened  # control
    assert not probe(agent(world), redis_ip, 6379).opened
    assert not probe(agent(world), world.name("redis"), 6379).opened


def test_the_agent_cannot_reach_another_sessions_containers(world: World) -> None:
    other = world.ip("other-session", "other")
    control = probe(world.boxes["prober"], other, 8080)
    assert control.opened, control
    assert not probe(agent(world), other, 8080).opened
    assert not probe(agent(world), world.name("other-session"), 8080).opened


def test_the_agent_resolves_only_through_dockers_embedded_resolver(world: World) -> None:
    code, resolv = run(agent(world), "cat", "/etc/resolv.conf")
    assert code == 0
    servers = [line.split()[1] for line in resolv.splitlines() if line.startswith("nameserver")]
    assert servers == ["127.0.0.11"]


def test_the_agent_cannot_resolve_external_names(world: World) -> None:
    """An outside name goes nowhere: not answered, and not even forwarded to the resolver the
    agent's container is configured with (the control shows that resolver answers)."""
    control_name = f"control-{secrets.token_hex(4)}.example"
    assert resolve(world.boxes["prober"], control_name) == RESOLVED_TO
    agent_name = f"agent-{secrets.token_hex(4)}.example"
    assert resolve(agent(world), agent_name) is None
    asked = world.boxes["resolver"].logs().decode()
    assert f"query {control_name} 1" in asked
    assert agent_name not in asked


@pytest.mark.parametrize("name", ["host.docker.internal", "gateway.docker.internal"])
def test_the_agent_cannot_resolve_host_aliases(world: World, name: str) -> None:
    outcome = probe(agent(world), name, world.host_port)
    assert not outcome.opened
    assert "gaierror" in outcome.detail


# ---- the container itself ----------------------------------------------------------------------


def _status(container: Container) -> dict[str, str]:
    code, text = run(container, "cat", "/proc/self/status")
    assert code == 0
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def test_the_agent_runs_as_a_non_root_user(world: World) -> None:
    uids = _status(agent(world))["Uid"].split()
    assert uids[0] != "0"
    assert set(uids) == {str(AGENT_UID)}


def test_the_agent_has_no_capabilities(world: World) -> None:
    status = _status(agent(world))
    for field in ("CapEff", "CapPrm", "CapAmb", "CapInh"):
        assert int(status[field], 16) == 0, field
    assert int(_status(world.boxes["v6-control"])["CapBnd"], 16) != 0  # control: defaults differ


def test_the_agent_cannot_gain_privileges(world: World) -> None:
    assert _status(agent(world))["NoNewPrivs"].strip() == "1"
    assert _status(world.boxes["v6-control"])["NoNewPrivs"].strip() == "0"  # control


def test_the_agent_cannot_write_its_root_filesystem(world: World) -> None:
    for path in ("/usr/local/bin/implant", "/etc/implant", "/opt/venv/implant"):
        code, output = run(agent(world), "touch", path)
        assert code != 0
        assert "Read-only file system" in output
    assert run(world.boxes["v6-control"], "touch", "/home/agent/x")[0] == 0  # control


def test_the_agent_image_has_no_setuid_or_setgid_binaries(
    docker_client: docker.DockerClient, image: Callable[[str], str]
) -> None:
    def setuid_files(ref: str) -> str:
        find = ["find", "/", "-xdev", "-type", "f", "-perm", "/6000"]
        output = docker_client.containers.run(
            ref, find, user="0", remove=True, labels=TEST_LABELS, network_mode="none"
        )
        return output.decode().strip()

    assert setuid_files(image("python"))  # control: the search finds su, mount, ... there
    assert setuid_files(image("agent-scripted")) == ""


def test_the_agent_cannot_become_root(world: World) -> None:
    code, output = run(agent(world), "python3", "-c", "import os; os.setuid(0)")
    assert code != 0
    assert "PermissionError" in output
    code, output = run(agent(world), "su", "-c", "id", "root")
    assert code != 0


@pytest.mark.parametrize("tool", ["sudo", "ssh", "sshd", "ssh-agent", "docker", "doas"])
def test_the_agent_has_no_escalation_or_remote_tool(world: World, tool: str) -> None:
    code, _ = run(agent(world), "sh", "-c", f"command -v {tool}")
    assert code != 0
    assert run(agent(world), "sh", "-c", "command -v python3")[0] == 0  # control


def test_the_agent_has_no_ssh_keys_or_agent(world: World) -> None:
    code, env = run(agent(world), "env")
    assert code == 0
    assert "SSH_AUTH_SOCK" not in env
    assert run(agent(world), "test", "-e", "/home/agent/.ssh")[0] != 0
    assert run(agent(world), "test", "-e", "/root/.ssh")[0] != 0


@pytest.mark.parametrize("path", ["/var/run/docker.sock", "/run/docker.sock", "/docker.sock"])
def test_the_agent_has_no_docker_socket(world: World, path: str) -> None:
    assert run(agent(world), "test", "-e", path)[0] != 0


def test_the_agent_container_passes_the_hardening_check(world: World) -> None:
    agent(world).reload()
    assert violations(agent(world).attrs) == []
    world.boxes["v6-control"].reload()
    assert violations(world.boxes["v6-control"].attrs)  # control: an unhardened one fails


def _cgroup_value(container: Container, v1: str, v2: str) -> str:
    for path in (v1, v2):
        code, value = run(container, "cat", path)
        if code == 0:
            return value.strip()
    raise AssertionError(f"neither {v1} nor {v2} is readable")


def test_the_agent_has_pids_and_memory_limits(world: World) -> None:
    pids = _cgroup_value(agent(world), "/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max")
    memory = _cgroup_value(
        agent(world),
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        "/sys/fs/cgroup/memory.max",
    )
    assert pids == "512"
    assert int(memory) == 512 * 1024**2


def test_the_sidecar_does_not_route_between_its_networks(
    world: World, docker_client: docker.DockerClient, image: Callable[[str], str]
) -> None:
    read = ["cat", "/proc/sys/net/ipv4/ip_forward"]
    assert run(world.boxes["sidecar"], *read)[1].strip() == "0"
    # control: without the setting a container's namespace forwards (inherited from the host)
    default = docker_client.containers.run(
        image("sidecar"), read, entrypoint=[], remove=True, labels=TEST_LABELS
    )
    assert default.decode().strip() == "1"


def test_docker_calls_through_the_sidecar_are_still_filtered(world: World) -> None:
    sidecar = world.name("sidecar")
    assert probe(agent(world), sidecar, 2375, "/v1.41/version").opened  # control
    for path in ("/v1.41/containers/json", "/v1.41/info", f"/v1.41/containers/{sidecar}/json"):
        outcome = probe(agent(world), sidecar, 2375, path)
        assert outcome.opened
        assert outcome.detail.startswith("refused by the IronCurtain socket proxy"), outcome
