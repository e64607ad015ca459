"""compose.shared.yaml really started: secrets made 0600, every service healthy, the approval port
on the host's loopback only, and a container that joins the shared network (as a session's MCP
proxy will) escalates, a human approves with the CLI, and the waiting call resumes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from ironcurtain.escalation import users
from ironcurtain.escalation.channel import connect

from ..conftest import REPO_ROOT, RUN_ID, TEST_LABELS
from ..redisserver import free_port
from .reach import assert_sessions_reach_redis_only, service

ESCALATE = """
import asyncio, threading
from ironcurtain.escalation.channel import Channel, connect
from ironcurtain.escalation.escalator import RedisEscalator
from ironcurtain.escalation.types import EscalationRequest
URL, SECRET, CA = "rediss://redis:6379/0", "/run/secrets/redis_password", "/run/secrets/redis_ca"
notices, subscribed = [], threading.Event()
def listen():
    lines = Channel(connect(URL, SECRET, ca_file=CA)).follow("compose-session")
    next(lines)  # subscribed (the first read returns None or a line)
    subscribed.set()
    for line in lines:
        if line:
            notices.append(line)
            return
threading.Thread(target=listen, daemon=True).start()
subscribed.wait(10)
escalator = RedisEscalator.connect(URL, SECRET, ca_file=CA)
request = EscalationRequest(
    session_id="compose-session", worktree="wt", agent="claude-code", server="filesystem",
    tool="write_file", arguments={"path": "/work/a"}, rule="r", reason="needs a human",
)
outcome = asyncio.run(escalator.escalate(request, 60))
print(outcome.verdict.value, outcome.decided_by)
print("notice:", notices)
"""


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ironcurtain.cli", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture(scope="module")
def stack(
    image: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    image("redis")
    image("python")
    directory = tmp_path_factory.mktemp("shared")
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT / "services"),
        "IRONCURTAIN_SHARED_DIR": str(directory / "secrets"),
        "IRONCURTAIN_SHARED_PROJECT": f"ic-test-{RUN_ID[:12]}",
        "IRONCURTAIN_SHARED_NETWORK": f"ic-test-shared-{RUN_ID[:12]}",
        "IRONCURTAIN_APPROVAL_PORT": str(free_port()),
        "IRONCURTAIN_TEST_RUN": RUN_ID,
    }
    up = cli(env, "shared", "up")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield env
    finally:
        down = cli(env, "shared", "down")
        assert down.returncode == 0, down.stdout + down.stderr


def test_the_secret_files_are_private(stack: dict[str, str]) -> None:
    directory = Path(stack["IRONCURTAIN_SHARED_DIR"])
    assert directory.stat().st_mode & 0o777 == 0o700
    for name in ("redis_admin", "redis_approval", "redis_worker", "redis_acl", "approval_token"):
        assert (directory / name).stat().st_mode & 0o777 == 0o600
    assert (directory / "tls").stat().st_mode & 0o777 == 0o700
    for name in ("ca-key.pem", "redis-key.pem"):
        assert (directory / "tls" / name).stat().st_mode & 0o777 == 0o600


def test_the_admin_credential_is_in_no_container_and_the_worker_is_not_root(
    stack: dict[str, str], docker_client: docker.DockerClient
) -> None:
    directory = Path(stack["IRONCURTAIN_SHARED_DIR"])
    admin_password = (directory / "redis_admin").read_text().split()[1]
    project = stack["IRONCURTAIN_SHARED_PROJECT"]
    containers = docker_client.containers.list(
        filters={"label": f"com.docker.compose.project={project}"}
    )
    for container in containers:
        sources = [m["Source"] for m in container.attrs["Mounts"]]
        assert str(directory / "redis_admin") not in sources, container.name
        assert admin_password not in repr(container.attrs["Config"]), container.name
        service = container.labels["com.docker.compose.service"]
        tls = directory / "tls"
        assert str(tls / "ca-key.pem") not in sources, container.name  # the CA key: nowhere
        if service == "worker":
            # its credential, the public CA and the webhook folder (read-only): no LLM key
            expected = (directory / "redis_worker", tls / "ca.pem", directory / "notify")
            assert sorted(sources) == sorted(str(p) for p in expected)
            uid = container.exec_run(["id", "-u"]).output.decode().strip()
            assert uid != "0"
        if service == "redis":  # the server key is Redis's alone
            assert sorted(sources) == sorted(
                str(p) for p in (directory / "redis_acl", tls / "redis.pem", tls / "redis-key.pem",
                                 tls / "ca.pem")
            )  # fmt: skip
        else:
            assert str(tls / "redis-key.pem") not in sources, container.name


def session_credential(stack: dict[str, str], docker_client: docker.DockerClient) -> Path:
    """A session user made with the admin credential, as `ironcurtain run` does."""
    network = docker_client.networks.get(stack["IRONCURTAIN_SHARED_NETWORK"])
    [address] = [
        c["IPv4Address"].split("/")[0]
        for c in network.attrs["Containers"].values()
        if c["Name"].endswith("redis-1")
    ]
    directory = Path(stack["IRONCURTAIN_SHARED_DIR"])
    admin = connect(
        "rediss://redis:6379/0",
        directory / "redis_admin",
        ca_file=directory / "tls" / "ca.pem",
        address=address,
    )
    try:
        credential = users.create_session_user(
            admin, "compose-session", project="ic-test-compose", machine="test"
        )
    finally:
        admin.close()
    path = directory.parent / "session-credential"
    path.write_text(credential.line())
    path.chmod(0o644)  # read by the container's user
    return path


def session_volumes(stack: dict[str, str], secret: Path) -> dict[str, dict[str, str]]:
    """What `ironcurtain run` mounts into the MCP proxy: its credential and the team CA."""
    ca = Path(stack["IRONCURTAIN_SHARED_DIR"]) / "tls" / "ca.pem"
    return {
        str(secret): {"bind": "/run/secrets/redis_password", "mode": "ro"},
        str(ca): {"bind": "/run/secrets/redis_ca", "mode": "ro"},
    }


def test_every_service_is_healthy_and_the_approval_port_is_on_loopback_only(
    stack: dict[str, str], docker_client: docker.DockerClient
) -> None:
    project = stack["IRONCURTAIN_SHARED_PROJECT"]
    containers = docker_client.containers.list(
        filters={"label": f"com.docker.compose.project={project}"}
    )
    services = {c.labels["com.docker.compose.service"]: c for c in containers}
    assert set(services) == {"redis", "approval", "worker"}
    for container in services.values():
        assert container.attrs["State"]["Health"]["Status"] == "healthy", container.name
    bindings = services["approval"].attrs["HostConfig"]["PortBindings"]
    assert [b["HostIp"] for b in bindings["8000/tcp"]] == ["127.0.0.1"]
    assert not services["redis"].attrs["HostConfig"]["PortBindings"]
    with urllib.request.urlopen(
        f"http://127.0.0.1:{stack['IRONCURTAIN_APPROVAL_PORT']}/healthz", timeout=5
    ) as response:
        assert json.loads(response.read()) == {"status": "ok"}


def pending_ids(env: dict[str, str], deadline_s: float = 30) -> list[str]:
    """Ask the CLI until something is pending (bounded)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        listed = cli(env, "escalations", *approval_args(env))
        assert listed.returncode == 0, listed.stderr
        lines = listed.stdout.splitlines()
        ids = [line.split()[0] for line in lines if line != "no pending escalations"]
        if ids:
            return ids
        threading.Event().wait(0.2)
    raise TimeoutError("nothing became pending")


def approval_args(env: dict[str, str]) -> list[str]:
    return [
        "--url",
        f"http://127.0.0.1:{env['IRONCURTAIN_APPROVAL_PORT']}",
        "--token-file",
        str(Path(env["IRONCURTAIN_SHARED_DIR"]) / "approval_token"),
    ]


def test_a_session_on_the_shared_network_escalates_and_the_cli_approves(
    stack: dict[str, str], docker_client: docker.DockerClient, image: Callable[[str], str]
) -> None:
    secret = session_credential(stack, docker_client)
    session = docker_client.containers.run(
        image("python"),
        ["python3", "-c", ESCALATE],
        detach=True,
        network=stack["IRONCURTAIN_SHARED_NETWORK"],
        user="10001",
        volumes=session_volumes(stack, secret),
        labels=TEST_LABELS,
    )
    try:
        [escalation_id] = pending_ids(stack)
        approved = cli(
            stack, "approve", escalation_id, "--yes", "--reason", "ok", *approval_args(stack)
        )
        assert approved.returncode == 0, approved.stderr
        again = cli(stack, "deny", escalation_id, *approval_args(stack))
        assert again.returncode == 1
        assert "already decided" in again.stderr
        assert session.wait(timeout=30)["StatusCode"] == 0
        logs = session.logs().decode()
        assert logs.split()[0] == "approved"
        assert f"escalation {escalation_id}: filesystem__write_file needs approval" in logs
    finally:
        session.remove(force=True)


def test_the_login_page_is_served_from_the_image(stack: dict[str, str]) -> None:
    base = f"http://127.0.0.1:{stack['IRONCURTAIN_APPROVAL_PORT']}"
    with urllib.request.urlopen(f"{base}/login", timeout=5) as response:  # noqa: S310
        page = response.read()
        assert response.headers["X-Frame-Options"] == "DENY"
    assert b'name="csrf_token"' in page
    with urllib.request.urlopen(f"{base}/static/live.js", timeout=5) as response:  # noqa: S310
        assert b"textContent" in response.read()


def test_a_container_on_the_sessions_network_reaches_redis_but_never_the_approval_service(
    stack: dict[str, str], docker_client: docker.DockerClient, image: Callable[[str], str]
) -> None:
    approval = service(docker_client, stack["IRONCURTAIN_SHARED_PROJECT"], "approval")
    network = stack["IRONCURTAIN_SHARED_NETWORK"]
    assert_sessions_reach_redis_only(docker_client, image("python"), network, approval, 8000)


def test_a_new_member_decides_with_their_own_token_and_removal_revokes_it(
    stack: dict[str, str],
    docker_client: docker.DockerClient,
    image: Callable[[str], str],
    tmp_path: Path,
) -> None:
    added = cli(stack, "shared", "member", "add", "bob")
    assert added.returncode == 0, added.stderr
    token = added.stdout.splitlines()[1].strip()
    assert (
        token not in (Path(stack["IRONCURTAIN_SHARED_DIR"]) / "people" / "members.json").read_text()
    )
    url = f"http://127.0.0.1:{stack['IRONCURTAIN_APPROVAL_PORT']}"
    token_file = tmp_path / "state" / "member_token"
    login = subprocess.run(
        [
            sys.executable,
            "-m",
            "ironcurtain.cli",
            "shared",
            "login",
            "--url",
            url,
            "--token-file",
            str(token_file),
        ],
        cwd=REPO_ROOT,
        env=stack,
        input=token + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert login.returncode == 0, login.stderr
    assert "'bob'" in login.stdout
    assert token_file.stat().st_mode & 0o777 == 0o600
    listed = cli(stack, "shared", "member", "list")
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["admin", "bob"]

    secret = session_credential(stack, docker_client)
    session = docker_client.containers.run(
        image("python"),
        ["python3", "-c", ESCALATE],
        detach=True,
        network=stack["IRONCURTAIN_SHARED_NETWORK"],
        user="10001",
        volumes=session_volumes(stack, secret),
        labels=TEST_LABELS,
    )
    try:
        [escalation_id] = pending_ids(stack)
        removed_first = cli(stack, "shared", "member", "remove", "carol")
        assert removed_first.returncode == 1  # no such member: said, nothing changed
        approved = cli(
            stack, "approve", escalation_id, "--yes", "--url", url, "--token-file", str(token_file)
        )
        assert approved.returncode == 0, approved.stderr
        assert session.wait(timeout=30)["StatusCode"] == 0
        assert session.logs().decode().split()[:2] == ["approved", "bob"]
    finally:
        session.remove(force=True)
    assert cli(stack, "shared", "member", "remove", "bob").returncode == 0
    refused = cli(stack, "escalations", "--url", url, "--token-file", str(token_file))
    assert refused.returncode == 1
    assert "bearer token" in refused.stderr
