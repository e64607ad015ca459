"""The escape suite through a compose-built session (the real compose.yaml, `Session` steps):
the agent, assumed hostile, tries every way out; each blocked probe has a control that succeeds.

The whole suite runs once per runtime: runc, and runsc (gVisor) where the engine has it
registered (skipped, saying so, where it has not). `IRONCURTAIN_TEST_RUNTIMES=runc` (or `runsc`)
runs one of them only.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.models.containers
import pytest
import yaml

from ironcurtain.session import plan, rooms, runtime
from ironcurtain.session.hardening import violations
from ironcurtain.session.run import Session

from ..conftest import TEST_LABELS
from ..probes import host_ipv4_of, host_server, link_local_of, probe, resolve
from .conftest import AGENT_UID, REAL_KEY, RUNTIMES, Env, under_runtime

Container = docker.models.containers.Container
CA = plan.CA_IN_AGENT
SOCKETS = "/run/ironcurtain/rooms"  # the rooms' folders in the MCP proxy (compose.yaml)
COMPOSE = yaml.safe_load((Path(__file__).resolve().parents[3] / "compose.yaml").read_text())


@dataclass(frozen=True)
class Running:
    session: Session
    containers: dict[str, Container]
    env: Env

    def agent_sh(self, script: str) -> str:
        """A shell script in the agent container (as the agent user), its output."""
        result = self.containers["agent"].exec_run(["sh", "-c", script])
        return result.output.decode(errors="replace")

    def ip(self, service: str, network: str) -> str:
        networks = self.containers[service].attrs["NetworkSettings"]["Networks"]
        return networks[network]["IPAddress"]

    def secrets(self) -> list[str]:
        shared = self.env.shared_dir
        return [
            REAL_KEY,
            *(
                (shared / name).read_text().split()[1]
                for name in ("redis_admin", "redis_approval", "redis_worker")
            ),
            (shared / "approval_token").read_text().strip(),
        ]


def _start(env: Env, workspace: Path) -> Session:
    return env.session(workspace, "(probes)")


def _containers(client: docker.DockerClient, session: Session) -> dict[str, Container]:
    label = f"com.docker.compose.project={session.name.project}"
    return {
        c.labels["com.docker.compose.service"]: c
        for c in client.containers.list(filters={"label": label})
    }


@pytest.fixture(scope="module")
def other(
    session_env: Env, docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Container]]:
    """Another session running beside the probed one (its containers)."""
    workspace = tmp_path_factory.mktemp("other-ws")
    os.chown(workspace, AGENT_UID, AGENT_UID)  # the agent runs as the owner
    session = _start(session_env, workspace)
    try:
        session.prepare()
        session.up()
        yield _containers(docker_client, session)
    finally:
        session.teardown()


@pytest.fixture(scope="module", params=RUNTIMES)
def running(
    request: pytest.FixtureRequest,
    session_env: Env,
    docker_client: docker.DockerClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Running]:
    """The probed session, its agent under the runtime of this round (IRONCURTAIN_RUNTIME set
    to it, so a runsc round never quietly falls back to runc)."""
    env = under_runtime(session_env, request.param, docker_client)
    workspace = tmp_path_factory.mktemp("escape-ws")
    os.chown(workspace, AGENT_UID, AGENT_UID)  # the agent runs as the owner
    session = _start(env, workspace)
    try:
        session.prepare()
        session.up()
        session.check_isolation()  # the run's own start-up check passes on this session
        containers = _containers(docker_client, session)
        yield Running(session, containers, env)
    finally:
        session.teardown()


# -- runtime -------------------------------------------------------------------------------


def test_the_agent_runs_under_the_chosen_runtime_and_the_rest_under_runc(
    running: Running,
) -> None:
    """Under runsc the agent's system calls go to gVisor's kernel, not the host's; the proxies
    (our code) and the rooms (Landlock, which gVisor lacks) stay on runc. Control: the runc
    round finds runc everywhere, read the same way."""
    wanted = running.env.environ["IRONCURTAIN_RUNTIME"]
    assert running.session.runtimes is not None
    assert running.session.runtimes.agent == wanted
    for service, container in running.containers.items():
        container.reload()
        expected = wanted if service == "agent" else runtime.RUNC
        assert container.attrs["HostConfig"]["Runtime"] == expected, service
    # What the agent itself sees: gVisor answers uname with its own fixed kernel version.
    kernel = running.agent_sh("cat /proc/version")
    host = Path("/proc/version").read_text()
    assert (kernel.strip() != host.strip()) == (wanted == runtime.RUNSC), kernel


def test_every_room_runs_under_runc_where_landlock_confines_its_child(
    running: Running, woken: dict[str, Container]
) -> None:
    for name, room in woken.items():
        room.reload()
        assert room.attrs["HostConfig"]["Runtime"] == runtime.RUNC, name
        assert "Landlock ABI" in room.logs().decode(errors="replace"), name


# -- network -------------------------------------------------------------------------------


def test_the_doors_answer_through_the_sidecar(running: Running) -> None:
    agent = running.containers["agent"]
    assert probe(agent, "sidecar", plan.DOCKER_PORT, "/_ping").opened
    assert probe(agent, "sidecar", plan.MCP_PORT, "/mcp").opened


@pytest.mark.parametrize("service", ["mcp-proxy", "mitm-proxy", "fakellm"])
def test_the_agent_cannot_reach_a_door_or_the_vendor_directly(
    running: Running, service: str
) -> None:
    agent = running.containers["agent"]
    assert not probe(agent, service, 8080).opened  # the name does not even resolve
    network = f"{running.session.name.project}_" + ("egress" if service == "fakellm" else "control")
    address = running.ip(service, network)
    port = {"mcp-proxy": 8080, "mitm-proxy": 3128, "fakellm": 8443}[service]
    assert not probe(agent, address, port).opened
    # control: the same address and port answer from a python container on that network
    neighbour = running.containers["mcp-proxy" if service == "mitm-proxy" else "mitm-proxy"]
    check = neighbour.exec_run(
        ["python3", "-c", f"import socket; socket.create_connection(('{address}', {port}), 3)"]
    )
    assert check.exit_code == 0, check.output


def test_the_isolation_probe_imports_nothing_the_agent_left_in_the_workspace(
    running: Running,
) -> None:
    # The probe runs with the workspace as its working directory: a stdlib-named module there
    # would be imported by the check that decides whether the session is isolated, and could
    # fake its answer.
    workspace = running.session.options.workspace
    planted = workspace / "json.py"
    planted.write_text("open('/tmp/planted-module-ran', 'w').close()\n")
    try:
        running.session.check_isolation()  # passes, and our json was never imported
        assert "absent" in running.agent_sh("test -e /tmp/planted-module-ran || echo absent")
        # control: an interpreter that is not isolated does import it from there
        running.agent_sh("cd /workspace && python3 -c 'import json' 2>/dev/null; true")
        assert "present" in running.agent_sh("test -e /tmp/planted-module-ran && echo present")
    finally:
        planted.unlink()
        running.agent_sh("rm -f /tmp/planted-module-ran")


@pytest.mark.parametrize("port", [plan.SOCKET_PROXY_PORT, 8404])
def test_the_socket_proxy_in_the_sidecars_namespace_answers_only_on_its_loopback(
    running: Running, port: int
) -> None:
    # HAProxy (Docker API, health page) shares the sidecar's network namespace: the agent
    # reaches the sidecar's address, but only socat's forwarded port there, never HAProxy's own.
    agent = running.containers["agent"]
    assert not probe(agent, "socket-proxy", port).opened  # no name, no address of its own
    assert not probe(agent, "sidecar", port).opened
    sidecar = running.ip("sidecar", f"{running.session.name.project}_agent")
    assert not probe(agent, sidecar, port).opened
    assert not running.containers["socket-proxy"].attrs["NetworkSettings"]["Networks"]
    # control: on that namespace's loopback it answers
    check = running.containers["socket-proxy"].exec_run(
        ["python3", "-c", f"import socket; socket.create_connection(('127.0.0.1', {port}), 3)"]
    )
    assert check.exit_code == 0, check.output


def test_no_session_container_reaches_the_approval_service(
    running: Running, docker_client: docker.DockerClient
) -> None:
    """The approval service is on the team's own network, never on the one sessions join."""
    project = running.env.environ["IRONCURTAIN_SHARED_PROJECT"]
    approval = docker_client.containers.get(f"{project}-approval-1")
    networks = approval.attrs["NetworkSettings"]["Networks"]
    assert running.env.environ["IRONCURTAIN_SHARED_NETWORK"] not in networks
    addresses = [n["IPAddress"] for n in networks.values() if n["IPAddress"]]
    for name in ("agent", "mcp-proxy"):
        for target in ("approval", *addresses):
            assert not probe(running.containers[name], target, 8000).opened, (name, target)


@pytest.mark.parametrize(("target", "port"), [("redis", 6379)])
def test_the_agent_cannot_reach_the_shared_redis_or_approval_service(
    running: Running, docker_client: docker.DockerClient, target: str, port: int
) -> None:
    network = running.env.environ["IRONCURTAIN_SHARED_NETWORK"]
    project = running.env.environ["IRONCURTAIN_SHARED_PROJECT"]
    container = docker_client.containers.get(f"{project}-{target}-1")
    address = container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
    agent = running.containers["agent"]
    assert not probe(agent, address, port).opened
    assert not probe(agent, target, port).opened
    # control: the MCP proxy (on the shared network) reaches it
    check = running.containers["mcp-proxy"].exec_run(
        ["python3", "-c", f"import socket; socket.create_connection(('{address}', {port}), 3)"]
    )
    assert check.exit_code == 0, check.output


def test_the_agent_cannot_reach_a_host_service_via_any_gateway(running: Running) -> None:
    gateways = running.session._gateways()
    assert gateways
    with host_server("host-service") as port:
        agent = running.containers["agent"]
        for gateway in gateways:
            assert not probe(agent, gateway, port).opened, gateway
        # control: the MITM (on the egress bridge) reaches the host service via its gateway
        egress = running.containers["mitm-proxy"].attrs["NetworkSettings"]["Networks"][
            f"{running.session.name.project}_egress"
        ]["Gateway"]
        assert probe(running.containers["mitm-proxy"], egress, port).opened


# -- MITM ----------------------------------------------------------------------------------

CURL = (
    "curl -s -o /dev/null -w '%{{http_connect}} %{{http_code}}' --max-time 10 --proxy {proxy}"
    " --cacert " + CA
    + " -H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' {key} {data} {url};"
    " echo"
)  # fmt: skip


def curl(
    running: Running,
    url: str = "https://api.anthropic.com/v1/messages",
    key: str = '"$IRONCURTAIN_ANTHROPIC_FAKE_KEY"',
    proxy: str = "http://sidecar:3128",
    post: bool = True,
) -> str:
    script = CURL.format(
        proxy=proxy,
        key=f"-H x-api-key:{key}" if key else "",
        data='-d \'{"model":"m","max_tokens":5,"messages":[]}\'' if post else "",
        url=url,
    )
    return running.agent_sh(script).strip()


def test_control_the_fake_key_reaches_the_vendor_through_the_mitm(running: Running) -> None:
    assert curl(running) == "200 200"


@pytest.mark.parametrize(
    ("case", "kwargs", "status"),
    [
        ("host off the allowlist", {"url": "https://example.com/"}, "403 000"),
        ("IP literal", {"url": "https://127.0.0.1/v1/messages"}, "403 000"),
        ("forbidden path", {"url": "https://api.anthropic.com/v1/files"}, "200 403"),
        ("no key", {"key": ""}, "200 401"),
        ("wrong key", {"key": "sk-ant-api03-not-ours"}, "200 401"),
        ("the real key", {"key": REAL_KEY}, "200 401"),
    ],
)
def test_the_mitm_refuses(running: Running, case: str, kwargs: dict[str, str], status: str) -> None:
    assert curl(running, **kwargs) == status, case


RELAY = r"""
import socket, sys, threading
listener = socket.socket(); listener.bind(("127.0.0.1", 9000)); listener.listen(4)
def pump(a, b):
    while data := a.recv(65536): b.sendall(data)
    b.close()
while True:
    client, _ = listener.accept()
    upstream = socket.create_connection(("sidecar", 3128))
    threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
    threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
"""


def test_a_relay_in_the_agent_reaches_only_what_the_mitm_allows(running: Running) -> None:
    running.containers["agent"].exec_run(["python3", "-c", RELAY], detach=True)
    relay = "http://127.0.0.1:9000"
    script = "for i in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:9000 && break; done"
    running.agent_sh(script)  # until the relay accepts (bounded)
    assert curl(running, proxy=relay) == "200 200"  # control
    assert curl(running, proxy=relay, url="https://example.com/") == "403 000"


# -- Docker socket proxy --------------------------------------------------------------------


def docker_get(running: Running, path: str, method: str = "GET") -> str:
    script = (
        f"curl -sS --max-time 10 -X {method} -w '\\n%{{http_code}}' "
        f"http://sidecar:{plan.DOCKER_PORT}{path}"
    )
    return running.agent_sh(script)


def test_control_the_docker_door_answers_ping_and_version(running: Running) -> None:
    assert docker_get(running, "/_ping").endswith("200")
    assert docker_get(running, "/version").endswith("200")


@pytest.mark.parametrize("service", ["mitm-proxy", "mcp-proxy", "socket-proxy", "sidecar"])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/containers/{id}/archive?path=/run/secrets"),
        ("GET", "/containers/{id}/export"),
        ("POST", "/containers/{id}/exec"),
        ("GET", "/containers/{id}/json"),
        ("GET", "/containers/{id}/logs?stdout=1"),
    ],
)
def test_the_docker_door_refuses_reads_and_writes_of_session_containers(
    running: Running, service: str, method: str, path: str
) -> None:
    answer = docker_get(running, path.format(id=running.containers[service].id), method)
    assert answer.endswith("403"), answer
    for secret in running.secrets():
        assert secret not in answer


def test_no_secret_is_in_any_session_containers_inspect_output(running: Running) -> None:
    for name, container in running.containers.items():
        container.reload()
        text = json.dumps(container.attrs)
        for secret in running.secrets():
            assert secret not in text, name


# -- the agent container ---------------------------------------------------------------------


def test_the_agent_mounts_only_the_workspace_and_its_orientation(running: Running) -> None:
    mounts = {m["Destination"]: m for m in running.containers["agent"].attrs["Mounts"]}
    assert set(mounts) == {"/workspace", "/run/ironcurtain/session", "/etc/passwd", "/etc/group"}
    for read_only in ("/run/ironcurtain/session", "/etc/passwd", "/etc/group"):
        assert mounts[read_only]["RW"] is False, read_only
    listing = running.agent_sh("ls -a /run/ironcurtain/session; ls /run/secrets 2>&1; env")
    assert "ca-key.pem" not in listing
    for secret in running.secrets():
        assert secret not in listing


def test_the_session_folder_keeps_secrets_private(running: Running) -> None:
    secrets_dir = running.session.layout.secrets
    assert secrets_dir.stat().st_mode & 0o777 == 0o700
    for path in secrets_dir.rglob("*"):
        if path.is_file() and path.name != "ca.pem":  # the CA certificate is public
            assert path.stat().st_mode & 0o077 == 0, path


@pytest.mark.parametrize(
    ("service", "network", "port"),
    [
        ("sidecar", "agent", plan.MCP_PORT),
        ("sidecar", "control", plan.MCP_PORT),
        ("mcp-proxy", "control", plan.MCP_PORT),
        ("mitm-proxy", "egress", plan.MITM_PORT),
    ],
)
def test_the_agent_cannot_reach_another_sessions_containers(
    running: Running, other: dict[str, Container], service: str, network: str, port: int
) -> None:
    project = other["agent"].labels["com.docker.compose.project"]
    networks = other[service].attrs["NetworkSettings"]["Networks"]
    address = networks[f"{project}_{network}"]["IPAddress"]
    assert not probe(running.containers["agent"], address, port).opened
    # control: a container of the other session on that network reaches it
    neighbour = other["agent" if network == "agent" else "mitm-proxy"]
    check = neighbour.exec_run(
        ["python3", "-c", f"import socket; socket.create_connection(('{address}', {port}), 3)"]
    )
    assert check.exit_code == 0, check.output


# -- the agent container as compose.yaml confines it (each weakening: tests/unit/session/
# test_hardening.py; the controls: the same image run without compose's settings) -----------

IPV6_ON = {"net.ipv6.conf.all.disable_ipv6": "0", "net.ipv6.conf.default.disable_ipv6": "0"}


def _agent_run(running: Running, *argv: str) -> tuple[int, str]:
    result = running.containers["agent"].exec_run(list(argv))
    return result.exit_code, result.output.decode(errors="replace")


def _status(container: Container) -> dict[str, str]:
    result = container.exec_run(["cat", "/proc/self/status"])
    assert result.exit_code == 0, result.output
    text = result.output.decode()
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


@pytest.fixture(scope="module")
def unconfined(running: Running, docker_client: docker.DockerClient) -> Iterator[Container]:
    """The control: the agent's own image on the agent's own network, with none of compose's
    settings but IPv6 switched on (runc, the engine's defaults otherwise)."""
    agent = running.containers["agent"]
    control = docker_client.containers.run(
        agent.attrs["Config"]["Image"],
        ["sleep", "infinity"],
        entrypoint=[],
        detach=True,
        labels=TEST_LABELS,
        network=f"{running.session.name.project}_agent",
        sysctls=IPV6_ON,
    )
    try:
        yield control
    finally:
        control.remove(force=True, v=True)


def test_control_the_agent_can_write_its_workspace_tmp_and_home(running: Running) -> None:
    for path in ("/workspace/probe", "/tmp/probe", "/home/agent/probe"):
        assert _agent_run(running, "touch", path)[0] == 0, path


def test_the_agent_runs_as_the_workspaces_owner_never_root(running: Running) -> None:
    uids = _status(running.containers["agent"])["Uid"].split()
    assert set(uids) == {str(AGENT_UID)}  # the workspace's owner (chowned above), real to saved


def _under_runsc(running: Running) -> bool:
    return running.env.environ["IRONCURTAIN_RUNTIME"] == runtime.RUNSC


def test_the_agent_has_no_capabilities(running: Running, unconfined: Container) -> None:
    status = _status(running.containers["agent"])
    # gVisor's /proc/self/status has no CapAmb line; every set it shows must be empty.
    wanted = ("CapEff", "CapPrm", "CapInh", "CapBnd") + (
        () if _under_runsc(running) else ("CapAmb",)
    )
    for field in wanted:
        assert int(status[field], 16) == 0, field
    assert int(_status(unconfined)["CapBnd"], 16) != 0  # control: the engine's default set


# prctl(PR_GET_NO_NEW_PRIVS): asked of the kernel the agent has (gVisor's status lacks the line).
NO_NEW_PRIVS = "import ctypes; print(ctypes.CDLL(None, use_errno=True).prctl(39, 0, 0, 0, 0))"


def test_the_agent_cannot_gain_privileges(running: Running, unconfined: Container) -> None:
    assert _agent_run(running, "python3", "-c", NO_NEW_PRIVS) == (0, "1\n")
    control = unconfined.exec_run(["python3", "-c", NO_NEW_PRIVS])
    assert (control.exit_code, control.output) == (0, b"0\n")  # control


def _root_mount_options(container: Container) -> list[str]:
    mounts = container.exec_run(["cat", "/proc/self/mounts"]).output.decode()
    (options,) = [line.split()[3] for line in mounts.splitlines() if line.split()[1:2] == ["/"]]
    return options.split(",")


def test_the_agent_cannot_write_its_root_filesystem(
    running: Running, unconfined: Container
) -> None:
    for path in ("/usr/local/bin/implant", "/etc/implant", "/opt/implant"):
        code, output = _agent_run(running, "touch", path)
        assert code != 0, path
        # runc checks the mount first (EROFS); gVisor the permission (EACCES): either refuses.
        assert "Read-only file system" in output or _under_runsc(running), output
    assert "ro" in _root_mount_options(running.containers["agent"])
    assert "rw" in _root_mount_options(unconfined)  # control
    assert unconfined.exec_run(["touch", "/home/agent/x"]).exit_code == 0  # control


def test_the_agent_cannot_become_root(running: Running) -> None:
    code, output = _agent_run(running, "python3", "-c", "import os; os.setuid(0)")
    assert code != 0
    assert "PermissionError" in output
    assert _agent_run(running, "su", "-c", "id", "root")[0] != 0


@pytest.mark.parametrize("tool", ["sudo", "ssh", "sshd", "ssh-agent", "docker", "doas"])
def test_the_agent_has_no_escalation_or_remote_tool(running: Running, tool: str) -> None:
    assert _agent_run(running, "sh", "-c", f"command -v {tool}")[0] != 0
    assert _agent_run(running, "sh", "-c", "command -v python3")[0] == 0  # control


def test_the_agent_has_no_ssh_keys_agent_or_docker_socket(running: Running) -> None:
    code, env = _agent_run(running, "env")
    assert code == 0
    assert "SSH_AUTH_SOCK" not in env
    assert "DOCKER_HOST=unix:" not in env  # the Docker door is tcp://sidecar, never a socket
    for path in ("/home/agent/.ssh", "/root/.ssh", *DOCKER_SOCKETS):
        assert _agent_run(running, "test", "-e", path)[0] != 0, path
    assert _agent_run(running, "test", "-e", "/workspace")[0] == 0  # control


DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock", "/docker.sock")


def test_the_agent_container_passes_the_hardening_check(
    running: Running, unconfined: Container
) -> None:
    agent = running.containers["agent"]
    agent.reload()
    assert running.session.plan is not None
    assert violations(agent.attrs, running.session.plan.owner.user) == []
    unconfined.reload()
    assert violations(unconfined.attrs)  # control: the unhardened one is named short


def _cgroup_value(running: Running, v1: str, v2: str) -> str:
    for path in (v1, v2):
        code, value = _agent_run(running, "cat", path)
        if code == 0:
            return value.strip()
    raise AssertionError(f"neither {v1} nor {v2} is readable")


def test_the_agent_has_compose_yamls_pids_and_memory_limits(running: Running) -> None:
    service = COMPOSE["services"]["agent"]
    if not _under_runsc(running):  # gVisor shows the agent no cgroup files: the engine's view only
        pids = _cgroup_value(running, "/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max")
        memory = _cgroup_value(
            running, "/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max"
        )
        assert int(pids) == service["pids_limit"]
        assert int(memory) == service["mem_limit"]
    host = running.containers["agent"].attrs["HostConfig"]
    assert (host["PidsLimit"], host["Memory"]) == (service["pids_limit"], service["mem_limit"])
    assert host["NanoCpus"] == int(service["cpus"] * 1e9)


def test_the_agent_has_ipv6_disabled(running: Running, unconfined: Container) -> None:
    read = "cat /proc/sys/net/ipv6/conf/all/disable_ipv6"
    if not _under_runsc(running):  # gVisor has no such sysctl file: no address is what counts
        assert running.agent_sh(read).strip() == "1"
    code, addresses = _agent_run(running, "cat", "/proc/net/if_inet6")
    assert code != 0 or addresses.strip() == ""
    assert unconfined.exec_run(["sh", "-c", read]).output.decode().strip() == "0"  # control


def _bridge(docker_client: docker.DockerClient, running: Running, role: str) -> str:
    return "br-" + docker_client.networks.get(f"{running.session.name.project}_{role}").id[:12]


def test_the_agent_cannot_reach_the_host_over_ipv6_link_local(
    running: Running, unconfined: Container, docker_client: docker.DockerClient
) -> None:
    """The host bridge keeps an IPv6 link-local address even with inhibit_ipv4; a container with
    IPv6 on reaches a host service through it (the control). compose.yaml's sysctl closes it."""
    address = link_local_of(_bridge(docker_client, running, "agent"))
    assert address is not None, "the agent bridge has no IPv6 link-local address"
    target = f"{address}%eth0"
    with host_server("host-v6") as port:
        deadline = time.monotonic() + 10  # the control's own link-local address may be tentative
        while not (control := probe(unconfined, target, port)).opened:
            assert time.monotonic() < deadline, f"IPv6 on never reached the host: {control}"
            time.sleep(0.2)  # polling until duplicate address detection finishes, with a deadline
        assert control.detail == "host-v6"
        outcome = probe(running.containers["agent"], target, port)
        assert not outcome.opened, outcome


def test_the_agent_networks_gateway_address_is_on_no_host_interface(
    running: Running, docker_client: docker.DockerClient
) -> None:
    """With inhibit_ipv4 the address the agent routes to is assigned to no host interface
    (control: the control network's bridge holds its gateway)."""
    control = running.containers["mitm-proxy"].attrs["NetworkSettings"]["Networks"][
        f"{running.session.name.project}_control"
    ]["Gateway"]
    assert control in host_ipv4_of(_bridge(docker_client, running, "control"))
    assert host_ipv4_of(_bridge(docker_client, running, "agent")) == []


def test_the_agent_cannot_reach_a_host_service_via_docker0(running: Running) -> None:
    docker0 = host_ipv4_of("docker0")
    if not docker0:
        pytest.skip("this engine has no docker0 bridge")
    with host_server("host-docker0") as port:
        assert not probe(running.containers["agent"], docker0[0], port).opened
        # control: the MITM, on a normal bridge, reaches the host service there
        assert probe(running.containers["mitm-proxy"], docker0[0], port).opened


def test_the_agent_resolves_only_through_dockers_embedded_resolver(running: Running) -> None:
    code, resolv = _agent_run(running, "cat", "/etc/resolv.conf")
    assert code == 0
    servers = [line.split()[1] for line in resolv.splitlines() if line.startswith("nameserver")]
    assert servers == ["127.0.0.11"]


@pytest.mark.parametrize(
    "name",
    ["host.docker.internal", "gateway.docker.internal", "outside-name.example"],
)
def test_the_agent_cannot_resolve_outside_names_or_host_aliases(
    running: Running, name: str
) -> None:
    agent = running.containers["agent"]
    assert resolve(agent, "sidecar") is not None  # control: the embedded resolver answers
    assert resolve(agent, name) is None


def test_the_sidecar_does_not_route_between_its_networks(
    running: Running, docker_client: docker.DockerClient
) -> None:
    read = ["cat", "/proc/sys/net/ipv4/ip_forward"]
    sidecar = running.containers["sidecar"]
    assert sidecar.exec_run(read).output.decode().strip() == "0"
    # control: without compose's setting a container's namespace forwards (from the host)
    default = docker_client.containers.run(
        sidecar.attrs["Config"]["Image"], read, entrypoint=[], remove=True, labels=TEST_LABELS
    )
    assert default.decode().strip() == "1"


# -- programs the agent writes for the MCP servers to run ------------------------------------

# Run by git as a clean filter the agent configured in the workspace repository: where does it
# run, what does it hold, what can it reach? Reported into the file named by its argument. The
# targets are addresses, not names (with no network there is no resolver to ask), written by the
# test; the same script run in the MCP proxy is the control that they answer.
PROBE_SCRIPT = """\
import json, os, socket, sys
report = {"hostname": socket.gethostname()}
def listing(folder):  # what is there, or why it cannot be seen (Landlock in a room)
    try:
        return sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    except OSError as exc:
        return type(exc).__name__
report["secrets"] = listing("/run/secrets")
report["audit"] = listing("/audit")
report["interfaces"] = sorted(name for _, name in socket.if_nameindex())
with open("/proc/net/route") as routes:
    report["routes"] = routes.read().splitlines()[1:]
report["reach"] = {}
with open("/workspace/.probe-targets.json") as targets:
    for label, host, port in json.load(targets):
        try:
            socket.create_connection((host, port), 2).close()
            report["reach"][label] = "open"
        except OSError as exc:
            report["reach"][label] = type(exc).__name__
with open(sys.argv[1], "w") as out:
    json.dump(report, out)
sys.stdout.buffer.write(sys.stdin.buffer.read())  # a clean filter: the content passes through
"""

MCP_CALL = """\
import sys, anyio
from mcp import Client

async def main():
    with anyio.fail_after(90):
        async with Client("http://sidecar:8080/mcp") as client:
            result = await client.call_tool(sys.argv[1], {"repo_path": "/workspace/repo"})
            print("ERROR" if result.is_error else "OK", *(c.text for c in result.content))

anyio.run(main)
"""


def _targets(running: Running, client: docker.DockerClient) -> list[tuple[str, str, int]]:
    """Every door, the vendor, Redis and the approval service, at each address the MCP proxy
    shares a network with (so that the proxy can show they answer), and the proxy's MCP port on
    loopback."""
    ports = {
        "mcp-proxy": plan.MCP_PORT,
        "mitm-proxy": plan.MITM_PORT,
        "sidecar": plan.MCP_PORT,
        "fakellm": 8443,
    }
    containers: dict[str, Container] = {s: running.containers[s] for s in ports}
    # The socket proxy has no address of its own: it answers at the sidecar's (socat's) port.
    containers["socket-proxy"], ports["socket-proxy"] = (
        running.containers["sidecar"],
        plan.DOCKER_PORT,
    )
    shared = running.env.environ["IRONCURTAIN_SHARED_PROJECT"]
    for service, port in (("redis", 6379), ("approval", 8000)):
        containers[service] = client.containers.get(f"{shared}-{service}-1")
        ports[service] = port
    proxy_networks = set(running.containers["mcp-proxy"].attrs["NetworkSettings"]["Networks"])
    targets = [("loopback:mcp", "127.0.0.1", plan.MCP_PORT)]
    for service, container in containers.items():
        for network, settings in container.attrs["NetworkSettings"]["Networks"].items():
            if network in proxy_networks:
                label = f"{service}@{network.rsplit('_', 1)[-1]}"
                targets.append((label, settings["IPAddress"], ports[service]))
    return targets


def test_a_git_filter_the_agent_writes_runs_only_in_the_empty_sandbox(
    running: Running, docker_client: docker.DockerClient
) -> None:
    """The filter runs in the sandbox, which holds no secret and has no network: it reaches
    nothing, not even the proxy whose call made git run it; its only interface is loopback."""
    workspace = running.session.options.workspace
    repo = workspace / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=a", "-c", "user.email=a@example.invalid"]
    subprocess.run([*git[:3], "init", "-q"], check=True)
    (repo / "notes.txt").write_text("first\n")
    subprocess.run([*git, "add", "notes.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "first"], check=True)
    targets = _targets(running, docker_client)
    (workspace / ".probe-targets.json").write_text(json.dumps(targets))
    # What a hostile agent writes: a filter driver in the repository's own config.
    (workspace / ".probe.py").write_text(PROBE_SCRIPT)
    with (repo / ".git" / "config").open("a") as config:
        config.write(
            '[filter "probe"]\n\tclean = python3 /workspace/.probe.py /workspace/probe.json\n'
        )
    (repo / ".gitattributes").write_text("*.txt filter=probe\n")
    (repo / "notes.txt").write_text("second\n")
    subprocess.run(["chown", "-R", f"{AGENT_UID}:{AGENT_UID}", str(repo)], check=True)

    call = running.containers["agent"].exec_run(
        ["python3", "-c", MCP_CALL, "git__git_diff_unstaged"]
    )
    output = call.output.decode()
    # control: the call was allowed and git's answer came back through the proxy
    assert output.startswith("OK"), output
    assert "-first" in output, output
    assert "+second" in output, output

    report = json.loads((workspace / "probe.json").read_text())  # the filter did run
    sandbox, proxy = _sandbox(running), running.containers["mcp-proxy"]
    assert report["hostname"] == sandbox.attrs["Config"]["Hostname"]
    assert report["hostname"] != proxy.attrs["Config"]["Hostname"]
    assert report["secrets"] == []
    # The image's empty mount point at most; under Landlock not even that can be listed.
    assert report["audit"] in ([], "PermissionError")
    assert set(report["reach"]) == {label for label, _, _ in targets}
    assert not [label for label, outcome in report["reach"].items() if outcome == "open"], report
    assert report["interfaces"] == ["lo"]
    assert report["routes"] == []

    # control: the same probe in the MCP proxy reaches every target, and sees its networks
    control = proxy.exec_run(["python3", "/workspace/.probe.py", "/workspace/control.json"])
    assert control.exit_code == 0, control.output
    seen = json.loads((workspace / "control.json").read_text())
    assert all(outcome == "open" for outcome in seen["reach"].values()), seen["reach"]
    assert len(seen["reach"]) >= 9  # each door, the vendor, Redis and approval, and loopback
    assert len(seen["interfaces"]) > 1
    assert seen["routes"]


def _room(running: Running, name: str) -> Container:
    """Server `name`'s room, once its first call has started it (rooms start on demand)."""
    label = f"com.docker.compose.project={running.session.name.project}"
    found = [
        c
        for c in running.session.client.containers.list(filters={"label": label})
        if c.labels["com.docker.compose.service"] == rooms.service(name)
    ]
    assert len(found) == 1, found
    return found[0]


def _sandbox(running: Running) -> Container:
    return _room(running, "git")


ROOMS = ("filesystem", "git", "fetch")

# One call from inside the agent: tool name, then its arguments as JSON.
CALL = """\
import json, sys, anyio
from mcp import Client

async def main():
    with anyio.fail_after(90):
        async with Client("http://sidecar:8080/mcp") as client:
            result = await client.call_tool(sys.argv[1], json.loads(sys.argv[2]))
            print("ERROR" if result.is_error else "OK", *(c.text for c in result.content))

anyio.run(main)
"""


def _call(running: Running, tool: str, arguments: dict[str, object]) -> str:
    done = running.containers["agent"].exec_run(
        ["python3", "-c", CALL, tool, json.dumps(arguments)]
    )
    return done.output.decode(errors="replace")


@pytest.fixture(scope="module")
def woken(running: Running) -> dict[str, Container]:
    """Every room, each started by its server's first call (git on a folder that is no
    repository, fetch of a trusted host the room cannot resolve: error answers, through it)."""
    assert not [s for s in running.containers if s.startswith(rooms.PREFIX)]  # none before
    calls = {
        "filesystem": ("filesystem__list_directory", {"path": "/workspace"}),
        "git": ("git__git_status", {"repo_path": "/workspace"}),
        "fetch": ("fetch__fetch", {"url": "https://docs.python.org/3/"}),
    }
    for name, (tool, arguments) in calls.items():
        output = _call(running, tool, arguments)
        assert output.startswith(("OK", "ERROR")), (name, output)
    return {name: _room(running, name) for name in ROOMS}


def test_each_room_starts_on_its_servers_first_call_and_not_before(
    running: Running, woken: dict[str, Container]
) -> None:
    # Sessions that never call a server never start its container.
    assert not [s for s in running.containers if s.startswith(rooms.PREFIX)]  # none after start-up
    for name, room in woken.items():  # control: the calls started them
        assert room.status == "running", name
        assert running.session.timings.get(f"room-{name}", 0) > 0, name


def test_every_room_is_on_no_network(
    woken: dict[str, Container], running: Running, docker_client: docker.DockerClient
) -> None:
    networks = docker_client.networks.list(greedy=True)
    for name, room in woken.items():
        room.reload()
        assert room.attrs["HostConfig"]["NetworkMode"] == "none", name
        attached = room.attrs["NetworkSettings"]["Networks"]
        assert set(attached) <= {"none"}, name
        assert not any(settings.get("IPAddress") for settings in attached.values()), name
        holding = [n.name for n in networks if room.id in (n.attrs.get("Containers") or {})]
        assert set(holding) <= {"none"}, (name, holding)
    # control: the same inspection finds the proxy on its session networks
    proxy = running.containers["mcp-proxy"].id
    project = running.session.name.project
    on = {n.name for n in networks if proxy in (n.attrs.get("Containers") or {})}
    assert {f"{project}_control", f"{project}_egress"} <= on


def test_no_room_mounts_what_it_must_not(running: Running, woken: dict[str, Container]) -> None:
    """The filesystem and git rooms: the workspace, their folder and their server's settings;
    fetch: no workspace. None: the policy, the audit, a secret, the wake folder, the engine."""
    layout = running.session.layout
    workspace = str(running.session.options.workspace.resolve())
    for name, room in woken.items():
        room.reload()
        sources = {m["Source"]: m["RW"] for m in room.attrs["Mounts"]}
        expected = {
            str(layout.rooms / name): True,
            str(layout.room_servers / f"{name}.json"): False,
        }
        if name != "fetch":
            expected[workspace] = True
        assert sources == expected, name
    # control: the same inspection finds the policy, the audit and the wake folder in the proxy
    proxy = {m["Source"] for m in running.containers["mcp-proxy"].attrs["Mounts"]}
    assert str(layout.audit / "mcp") in proxy
    assert str(layout.wake) in proxy


PROCESSES = """\
import json, os
found = []
for pid in os.listdir("/proc"):
    if pid.isdigit() and int(pid) != os.getpid():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                found.append(f.read().replace(b"\\0", b" ").decode().strip())
        except OSError:
            pass
print(json.dumps([c for c in found if c]))
"""


def test_no_third_party_process_runs_in_the_proxys_container(
    running: Running, woken: dict[str, Container]
) -> None:
    """After calls to every server, the proxy's container runs our proxy and nothing else;
    each server's process is in its room (control: the same listing finds it there)."""

    def processes(container: Container) -> list[str]:
        done = container.exec_run(["python3", "-c", PROCESSES])
        assert done.exit_code == 0, done.output
        return json.loads(done.output)

    proxy = running.containers["mcp-proxy"]
    listed = processes(proxy)
    assert listed, listed
    # The engine's health check (compose's `test`, exactly) may be running at that moment.
    test = proxy.attrs["Config"].get("Healthcheck", {}).get("Test") or []
    health = " ".join(test[1:]) if test[:1] == ["CMD"] else None
    for command in listed:
        assert "ironcurtain mcp-proxy serve" in command or command == health, listed
    servers = {
        "filesystem": "mcp-server-filesystem",
        "git": "mcp-server-git",
        "fetch": "mcp-server-fetch",
    }
    for name, program in servers.items():
        inside = processes(woken[name])
        assert any(program in c for c in inside), (name, inside)
        assert all(program not in c for c in listed), name


RACE = r"""
import ctypes, json, sys, threading, anyio
from mcp import Client

libc = ctypes.CDLL(None, use_errno=True)
stop = threading.Event()
swaps = [0]
method = ["exchange"]

def swapper():  # renameat2(RENAME_EXCHANGE) between a folder and a symlink out, bounded
    d, swap, aside = b"/workspace/race/d", b"/workspace/race/swap", b"/workspace/race/aside"
    exchange = True
    while not stop.is_set() and swaps[0] < 2_000_000:
        if exchange:
            if libc.syscall(316, -100, d, -100, swap, 2) == 0:
                swaps[0] += 1
            elif ctypes.get_errno() in (22, 38):  # gVisor has no RENAME_EXCHANGE: plain renames
                exchange = False
                method[0] = "rename"
            continue
        # d -> aside, the symlink -> d (d now leads out), back again: each rename atomic.
        if libc.rename(d, aside) == 0:
            libc.rename(swap, d)
            libc.rename(d, swap)
            libc.rename(aside, d)
            swaps[0] += 1

async def main():
    answers = []
    with anyio.fail_after(240):
        async with Client("http://sidecar:8080/mcp") as client:
            for i in range(150):  # 300 calls, spelled apart ("./" repeated)
                path = "/workspace/race/" + "./" * i + "d/"
                read = await client.call_tool("filesystem__read_text_file", {"path": path + "f"})
                answers += [c.text for c in read.content]
                wrote = await client.call_tool(
                    "filesystem__write_file", {"path": path + f"w{i}", "content": "RACED"}
                )
                answers += [c.text for c in wrote.content]
    return answers

thread = threading.Thread(target=swapper, daemon=True)
thread.start()
try:
    answers = anyio.run(main)
finally:
    stop.set()
    thread.join(10)
print(json.dumps({"swaps": swaps[0], "method": method[0], "answers": answers}))
"""


def test_a_symlink_swap_race_from_the_agent_reaches_no_canary_in_any_container(
    running: Running, woken: dict[str, Container]
) -> None:
    """Finding 1 of issue #14: the agent swaps a workspace folder with a symlink to /tmp/ic-canary
    while reading and writing under it. A canary waits there in the proxy's container and in
    every room: none is read, none gets a file. Control: the plain reads succeed."""
    holders = {"mcp-proxy": running.containers["mcp-proxy"], **woken}
    for name, container in holders.items():
        made = container.exec_run(
            ["sh", "-c", f"mkdir -p /tmp/ic-canary && echo CANARY-{name} > /tmp/ic-canary/f"]
        )
        assert made.exit_code == 0, (name, made.output)
    setup = running.agent_sh(
        "mkdir -p /workspace/race/d && echo inside > /workspace/race/d/f && "
        "ln -sfn /tmp/ic-canary /workspace/race/swap && echo ready"
    )
    assert "ready" in setup, setup
    done = running.containers["agent"].exec_run(["python3", "-c", RACE])
    assert done.exit_code == 0, done.output
    report = json.loads(done.output.decode().strip().splitlines()[-1])
    assert report["swaps"] > 0, report["method"]
    leaked = [a for a in report["answers"] if "CANARY" in a]
    assert not leaked, leaked[:3]
    assert any(a.strip() == "inside" for a in report["answers"])  # control
    for name, container in holders.items():
        listing = container.exec_run(["ls", "/tmp/ic-canary"]).output.decode().split()
        assert listing == ["f"], (name, listing)


def test_each_room_folder_is_for_the_proxy_and_its_room_only(
    running: Running, woken: dict[str, Container]
) -> None:
    """rooms/NAME/: the MCP uid's (the workspace owner's, whom the agent also runs as), 0700,
    mounted into the proxy and room NAME only: another uid is refused even where it is mounted,
    and the agent, with the same uid, never has it mounted."""
    assert running.session.plan is not None
    for name in ROOMS:
        folder = running.session.layout.rooms / name
        info = folder.stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (running.session.plan.owner.uid, 0o700)
        assert stat.S_ISSOCK((folder / f"{name}.sock").stat().st_mode)
        mounted = {
            service: [m["RW"] for m in c.attrs["Mounts"] if Path(m["Source"]) == folder]
            for service, c in {**running.containers, **woken}.items()
        }
        assert {s: rw for s, rw in mounted.items() if rw} == {name: [True]}, name
    assert stat.S_ISSOCK((running.session.layout.rooms / "fetch" / "_egress.sock").stat().st_mode)
    assert "absent" in running.agent_sh(f"ls {SOCKETS} 2>/dev/null || echo absent")
    connect = f"import socket; socket.socket(socket.AF_UNIX).connect('{SOCKETS}/git/git.sock')"
    proxy = running.containers["mcp-proxy"]
    stranger = "4242:4242"  # neither the owner nor any service's uid
    refused = proxy.exec_run(["python3", "-c", connect], user=stranger)
    assert b"PermissionError" in refused.output, refused.output
    assert refused.exit_code != 0
    # control: the proxy's own user connects
    allowed = proxy.exec_run(["python3", "-c", connect])
    assert allowed.exit_code == 0, allowed.output
