"""Two machines on this one engine: A runs the team server (`shared up --host`), B joins it.

Each has its own state folder; B is given only what an operator hands over (the team CA, a public
file, and a member token) and its session containers run on a network of B's own, reaching A only
at A's published TLS ports, by A's address (the engine's bridge gateway stands for A's LAN
address: both the host and containers reach it). Neither side reads the other's files.
Attacks: B's session credential against another session's records; clients without the team CA,
dialling another name, or in plaintext; join with a wrong CA or token. Control: a session on B
escalates to A's Redis and a member's decision through A's approval API resumes it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
import redis

from ironcurtain.escalation import redis_keys, tls, users
from ironcurtain.escalation.acl import Credential
from ironcurtain.escalation.channel import Channel, connect
from ironcurtain.escalation.types import EscalationRequest, Verdict
from ironcurtain.registrar.client import Registrar, RegistrarError, Team
from ironcurtain.shared.pki import TeamTLS

from ..conftest import REPO_ROOT, RUN_ID, TEST_LABELS
from ..probes import bridge_host
from ..redisserver import free_port
from ..waiting import wait_healthy
from .reach import assert_sessions_reach_redis_only, service
from .test_compose import pending_ids

ESCALATE = """
import asyncio, sys
from ironcurtain.escalation.escalator import RedisEscalator
from ironcurtain.escalation.types import EscalationRequest
url = sys.argv[1]
escalator = RedisEscalator.connect(
    url, "/run/secrets/redis_password", ca_file="/run/secrets/redis_ca"
)
request = EscalationRequest(
    session_id=sys.argv[2], worktree="wt-b", agent="scripted", server="filesystem",
    tool="write_file", arguments={"path": "/workspace/b"}, rule="r", reason="needs a human",
)
outcome = asyncio.run(escalator.escalate(request, 60))
print(outcome.verdict.value, outcome.decided_by)
"""


def cli(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ironcurtain.cli", *args],
        cwd=REPO_ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@dataclass(frozen=True)
class Machines:
    a: dict[str, str]  # the team server's environment
    b: dict[str, str]  # the joined machine's
    host: str  # A's address as other machines dial it
    bob: str  # the member token B joined with
    b_network: str  # B's own network for its session containers

    @property
    def a_shared(self) -> Path:
        return Path(self.a["IRONCURTAIN_SHARED_DIR"])

    @property
    def b_state(self) -> Path:
        return Path(self.b["IRONCURTAIN_STATE_DIR"])

    @property
    def redis_url(self) -> str:
        return f"rediss://{self.host}:{self.a['IRONCURTAIN_TEAM_REDIS_PORT']}/0"

    def approval(self) -> dict[str, str]:
        """What `pending_ids` (test_compose) needs to ask A's approval API."""
        return {**self.a, "IRONCURTAIN_SHARED_DIR": str(self.a_shared)}


def _base_env(state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IRONCURTAIN_")}
    env.update(PYTHONPATH=str(REPO_ROOT / "services"), IRONCURTAIN_STATE_DIR=str(state))
    for key in ("IRONCURTAIN_IMAGE_TAG",):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


@pytest.fixture(scope="module")
def machines(
    image: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
    docker_client: docker.DockerClient,
) -> Iterator[Machines]:
    image("redis")
    image("python")
    root = tmp_path_factory.mktemp("two-machines")
    host = bridge_host(docker_client)
    a = {
        **_base_env(root / "a"),
        "IRONCURTAIN_SHARED_DIR": str(root / "a" / "shared"),
        "IRONCURTAIN_SHARED_PROJECT": f"ic-test-team-{RUN_ID[:12]}",
        "IRONCURTAIN_SHARED_NETWORK": f"ic-test-team-{RUN_ID[:12]}",
        "IRONCURTAIN_APPROVAL_PORT": str(free_port()),
        "IRONCURTAIN_TEAM_REDIS_PORT": str(free_port()),
        "IRONCURTAIN_TEAM_REGISTRAR_PORT": str(free_port()),
        "IRONCURTAIN_TEAM_APPROVAL_PORT": str(free_port()),
        "IRONCURTAIN_TEST_RUN": RUN_ID,
    }
    b = _base_env(root / "b")
    network = docker_client.networks.create(
        f"ic-test-machine-b-{RUN_ID[:12]}", driver="bridge", labels=TEST_LABELS
    )
    up = cli(a, "shared", "up", "--host", host)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        added = cli(a, "shared", "member", "add", "bob")
        assert added.returncode == 0, added.stderr
        bob = added.stdout.splitlines()[1].strip()
        invite = cli(a, "shared", "invite")
        assert invite.returncode == 0, invite.stderr
        join_line = invite.stdout.splitlines()[-1].split()
        url, fingerprint = join_line[3], join_line[-1]
        handed = root / "handed-over"  # what crosses from A to B: the public CA file
        handed.mkdir()
        (handed / "ca.pem").write_bytes((root / "a" / "shared" / "tls" / "ca.pem").read_bytes())
        joined = cli(
            b, "shared", "join", url, "--ca", str(handed / "ca.pem"),
            "--fingerprint", fingerprint, stdin=bob + "\n",
        )  # fmt: skip
        assert joined.returncode == 0, joined.stdout + joined.stderr
        assert "'bob'" in joined.stdout
        yield Machines(a, b, host, bob, network.name)
    finally:
        down = cli(a, "shared", "down")
        network.remove()
        assert down.returncode == 0, down.stdout + down.stderr


def b_session_user(machines: Machines, session_id: str) -> tuple[Credential, str]:
    """What `ironcurtain run` on B does (Session._team_session_user): B's files only."""
    registrar, redis_url = Team(machines.b_state / "team").load()
    credential = registrar.create_user(
        session_id, project=f"ic-wt-b-{session_id}", machine="machine-b", worktree="wt-b",
        agent="scripted", task="t", live=[],
    )  # fmt: skip
    return credential, redis_url


def test_the_joined_machine_holds_only_the_team_ca_and_its_member_token(
    machines: Machines,
) -> None:
    files = sorted(
        str(p.relative_to(machines.b_state)) for p in machines.b_state.rglob("*") if p.is_file()
    )
    assert files == ["team/ca.pem", "team/member_token", "team/team.json"]
    team = machines.b_state / "team"
    assert team.stat().st_mode & 0o777 == 0o700
    assert (team / "member_token").stat().st_mode & 0o777 == 0o600
    assert (team / "ca.pem").read_bytes() == (machines.a_shared / "tls" / "ca.pem").read_bytes()
    for path in team.iterdir():
        assert b"PRIVATE KEY" not in path.read_bytes()
    admin_password = (machines.a_shared / "redis_admin").read_text().split()[1]
    assert all(admin_password not in p.read_text() for p in team.iterdir())
    settings = json.loads((team / "team.json").read_text())
    assert settings["redis_url"] == machines.redis_url


def test_only_the_registrar_holds_the_admin_credential_and_no_container_the_ca_key(
    machines: Machines, docker_client: docker.DockerClient
) -> None:
    project = machines.a["IRONCURTAIN_SHARED_PROJECT"]
    containers = docker_client.containers.list(
        filters={"label": f"com.docker.compose.project={project}"}
    )
    services = {c.labels["com.docker.compose.service"]: c for c in containers}
    assert set(services) == {"redis", "approval", "approval-team", "worker", "registrar"}
    admin = str(machines.a_shared / "redis_admin")
    for name, container in services.items():
        sources = [m["Source"] for m in container.attrs["Mounts"]]
        assert str(machines.a_shared / "tls" / "ca-key.pem") not in sources, name
        assert (admin in sources) == (name == "registrar"), name
        approval_key = str(machines.a_shared / "tls" / "approval-key.pem")
        assert (approval_key in sources) == (name == "approval-team"), name
    approval_ports = services["approval"].attrs["HostConfig"]["PortBindings"]["8000/tcp"]
    assert [b["HostIp"] for b in approval_ports] == ["127.0.0.1"]  # people: loopback only


def start_b_session(
    machines: Machines, docker_client: docker.DockerClient, image: Callable[[str], str],
    tmp_path: Path, credential: Credential, redis_url: str, session_id: str,
) -> Any:  # fmt: skip
    """A container on B's own network holding the session's credential, escalating once."""
    secret = tmp_path / f"redis_password-{session_id}"
    secret.write_text(credential.line())
    secret.chmod(0o644)  # read by the container's user
    return docker_client.containers.run(
        image("python"),
        ["python3", "-c", ESCALATE, redis_url, session_id],
        detach=True,
        network=machines.b_network,  # B's own network: A's team networks are not here
        user="10001",
        volumes={
            str(secret): {"bind": "/run/secrets/redis_password", "mode": "ro"},
            str(machines.b_state / "team" / "ca.pem"): {
                "bind": "/run/secrets/redis_ca",
                "mode": "ro",
            },
        },
        labels=TEST_LABELS,
    )


def approve_as_bob(machines: Machines, tmp_path: Path, session_id: str) -> None:
    env = machines.approval()
    [escalation_id] = pending_ids(env)
    assert escalation_id.startswith(f"{session_id}.")
    bob_file = tmp_path / "bob_token"
    bob_file.write_text(machines.bob + "\n")
    bob_file.chmod(0o600)
    url = f"http://127.0.0.1:{machines.a['IRONCURTAIN_APPROVAL_PORT']}"
    approved = cli(
        env, "approve", escalation_id, "--yes", "--url", url, "--token-file", str(bob_file)
    )
    assert approved.returncode == 0, approved.stderr


def test_control_a_joined_machines_session_escalates_and_a_members_decision_resumes_it(
    machines: Machines, docker_client: docker.DockerClient, image: Callable[[str], str],
    tmp_path: Path,
) -> None:  # fmt: skip
    credential, redis_url = b_session_user(machines, "joined-1")
    session = start_b_session(
        machines, docker_client, image, tmp_path, credential, redis_url, "joined-1"
    )
    try:
        approve_as_bob(machines, tmp_path, "joined-1")
        assert session.wait(timeout=60)["StatusCode"] == 0, session.logs().decode()
        assert session.logs().decode().split()[:2] == ["approved", "bob"]
    finally:
        session.remove(force=True)
        registrar, _ = Team(machines.b_state / "team").load()
        registrar.remove_user("joined-1")


def _https(machines: Machines, ca: Path, path: str, token: str = "") -> tuple[int, str]:
    """GET A's approval page for the team as a browser on another machine: (status, cookie)."""
    port = int(machines.a["IRONCURTAIN_TEAM_APPROVAL_PORT"])
    conn = http.client.HTTPSConnection(machines.host, port, timeout=10, context=tls.context(ca))
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        conn.request("GET", path, headers=headers)
        answer = conn.getresponse()
        answer.read()
        return answer.status, answer.getheader("Set-Cookie") or ""
    finally:
        conn.close()


def test_people_on_other_machines_reach_the_team_approval_page_over_https_at_the_team_host(
    machines: Machines, tmp_path: Path
) -> None:
    """Control: from another machine, with the team CA, the page answers and a member's token
    lists what is pending; the cookie is `__Host-` and Secure. Attacks: plain HTTP gets no
    answer, a client trusting another CA never sends anything."""
    ca = machines.b_state / "team" / "ca.pem"  # what a person on another machine has
    status, cookie = _https(machines, ca, "/login")
    assert status == 200
    port = machines.a["IRONCURTAIN_TEAM_APPROVAL_PORT"]
    if cookie:  # set on the login page only when it opens a session
        assert cookie.startswith(f"__Host-ironcurtain_approval_{port}=")
        assert "Secure" in cookie
    assert _https(machines, ca, "/api/v1/escalations", token=machines.bob)[0] == 200
    assert _https(machines, ca, "/api/v1/escalations", token="x" * 43)[0] == 401
    plain = http.client.HTTPConnection(machines.host, int(port), timeout=5)
    plain.request("GET", "/login")
    with pytest.raises((http.client.HTTPException, OSError)):
        plain.getresponse()
    plain.close()
    other = TeamTLS(tmp_path / "other")
    other.ensure([machines.host], say=lambda _: None)
    with pytest.raises(ssl.SSLCertVerificationError):
        _https(machines, other.ca, "/login")


def test_the_team_approval_page_is_on_no_network_a_session_joins(
    machines: Machines, docker_client: docker.DockerClient, image: Callable[[str], str]
) -> None:
    page = service(docker_client, machines.a["IRONCURTAIN_SHARED_PROJECT"], "approval-team")
    published = f"{machines.host}:{machines.a['IRONCURTAIN_TEAM_APPROVAL_PORT']}"
    network = machines.a["IRONCURTAIN_SHARED_NETWORK"]  # where sessions' proxies are
    assert_sessions_reach_redis_only(
        docker_client, image("python"), network, page, 8443, extra=[published]
    )


def _request(session: str) -> EscalationRequest:
    return EscalationRequest(
        session_id=session, worktree="wt-a", agent="a", server="filesystem", tool="move_file",
        arguments={"source": "/workspace/a"}, rule="r", reason="why", paths=("/workspace/a",),
    )  # fmt: skip


def test_a_joined_machines_session_credential_cannot_read_or_alter_another_sessions_records(
    machines: Machines,
) -> None:
    ca = machines.b_state / "team" / "ca.pem"
    admin = connect(machines.redis_url, machines.a_shared / "redis_admin", ca_file=ca)
    local = users.create_session_user(admin, "on-a-1", project="ic-wt-a", machine="team")
    victim = Channel(connect(machines.redis_url, credential=local, ca_file=ca))
    pending = victim.create(_request("on-a-1"), 60)
    credential, redis_url = b_session_user(machines, "joined-2")
    attacker = Channel(connect(redis_url, credential=credential, ca_file=ca))
    try:
        for attack in (
            lambda: attacker.redis.get(redis_keys.record(pending.id)),
            lambda: attacker.redis.set(redis_keys.record(pending.id), "{}"),
            lambda: attacker.redis.set(redis_keys.decision(pending.id), "{}"),
            lambda: attacker.redis.rpush(redis_keys.wake(pending.id), "1"),
            lambda: attacker.decide(pending.id, Verdict.APPROVED, by="bob"),
            lambda: attacker.redis.publish(redis_keys.notices("on-a-1"), "forged"),
            lambda: attacker.redis.execute_command("ACL", "SETUSER", "x", "on", "+@all"),
            lambda: attacker.redis.execute_command("KEYS", "*"),
        ):
            with pytest.raises(redis.exceptions.NoPermissionError):
                attack()
        assert victim.redis.get(redis_keys.record(pending.id)) is not None  # untouched
        assert Channel(admin).decision(pending.id) is None
        # Nor can B's member get a second password for the team server's own session.
        registrar, _ = Team(machines.b_state / "team").load()
        with pytest.raises(RegistrarError) as refused:
            registrar.create_user("on-a-1", project="ic-x", machine="machine-b")
        assert refused.value.status == 409
    finally:
        users.remove_session_user(admin, "on-a-1")
        Team(machines.b_state / "team").load()[0].remove_user("joined-2")
        for client in (admin, victim.redis, attacker.redis):
            client.close()


def test_at_the_team_port_no_ca_another_name_or_plaintext_is_refused(
    machines: Machines, tmp_path: Path
) -> None:
    admin_file = machines.a_shared / "redis_admin"
    other = TeamTLS(tmp_path / "other")
    other.ensure([machines.host], say=lambda _: None)
    port = machines.a["IRONCURTAIN_TEAM_REDIS_PORT"]
    for url, ca, address in (
        (machines.redis_url, other.ca, None),  # another team's CA
        (f"rediss://team.example:{port}/0", machines.b_state / "team" / "ca.pem", machines.host),
    ):
        client = connect(url, admin_file, ca_file=ca, address=address)
        with pytest.raises(redis.exceptions.ConnectionError, match="certificate verify failed"):
            client.ping()
        client.close()
    plain = redis.Redis(host=machines.host, port=int(port), socket_timeout=5)
    with pytest.raises(redis.exceptions.ConnectionError):
        plain.ping()
    plain.close()
    # The registrar speaks TLS only: plain HTTP gets no answer at all.
    plain_http = http.client.HTTPConnection(
        machines.host, int(machines.a["IRONCURTAIN_TEAM_REGISTRAR_PORT"]), timeout=5
    )
    plain_http.request("GET", "/v1/team", headers={"Authorization": "Bearer not-a-real-one"})
    with pytest.raises((http.client.HTTPException, OSError)):
        plain_http.getresponse()
    plain_http.close()
    # The registrar too: a client trusting another CA never sends the token.
    registrar, _ = Team(machines.b_state / "team").load()
    wrong = Registrar(registrar.url, other.ca, registrar.token)
    with pytest.raises(RegistrarError, match="certificate verify failed"):
        wrong.team()


def test_join_refuses_a_ca_that_is_not_the_teams_or_a_token_that_is_no_members(
    machines: Machines, tmp_path: Path
) -> None:
    registrar, _ = Team(machines.b_state / "team").load()
    other = TeamTLS(tmp_path / "other")
    other.ensure([machines.host], say=lambda _: None)
    env = _base_env(tmp_path / "c")
    wrong_ca = cli(env, "shared", "join", registrar.url, "--ca", str(other.ca), stdin=machines.bob)
    assert wrong_ca.returncode == 1
    assert "certificate verify failed" in wrong_ca.stderr
    real_ca = str(machines.b_state / "team" / "ca.pem")
    mismatch = cli(
        env, "shared", "join", registrar.url, "--ca", real_ca, "--fingerprint", "sha256:00",
        stdin=machines.bob,
    )  # fmt: skip
    assert mismatch.returncode == 1
    assert "not sha256:00" in mismatch.stderr
    no_member = cli(env, "shared", "join", registrar.url, "--ca", real_ca, stdin="x" * 43)
    assert no_member.returncode == 1
    assert "no member" in no_member.stderr
    assert not (tmp_path / "c" / "team" / "team.json").exists()  # nothing joined


def test_after_the_team_redis_restarts_a_joined_session_gets_its_user_back_and_escalates(
    machines: Machines, docker_client: docker.DockerClient, image: Callable[[str], str],
    tmp_path: Path,
) -> None:  # fmt: skip
    """Redis keeps no session users across a restart. B's `ironcurtain run` then asks A's
    registrar to put its user back (Session._restore_session_user); the session escalates again
    and a member's decision resumes it. Control: right after the restart the credential is
    refused, and an escalation then fails closed at once, never hangs. Last in the module: it
    restarts the team's Redis."""
    credential, redis_url = b_session_user(machines, "joined-r")
    ca = machines.b_state / "team" / "ca.pem"
    project = machines.a["IRONCURTAIN_SHARED_PROJECT"]
    [redis_container] = docker_client.containers.list(
        filters={
            "label": [f"com.docker.compose.project={project}", "com.docker.compose.service=redis"]
        }
    )
    registrar, _ = Team(machines.b_state / "team").load()
    try:
        redis_container.restart(timeout=5)
        wait_healthy(redis_container, timeout=60)
        client = connect(redis_url, credential=credential, ca_file=ca)
        with pytest.raises(redis.exceptions.AuthenticationError):
            client.ping()  # forgotten
        before = start_b_session(
            machines, docker_client, image, tmp_path, credential, redis_url, "joined-r"
        )
        try:
            assert before.wait(timeout=30)["StatusCode"] == 0, before.logs().decode()
            assert before.logs(stderr=False).decode().split() == ["unavailable", "None"]
        finally:
            before.remove(force=True)
        # Another member's or a made-up password is refused; B's own puts back the same user.
        with pytest.raises(RegistrarError) as refused:
            registrar.restore_user(
                "joined-r", Credential(credential.user, "0" * 96),
                project="ic-wt-b-joined-r", machine="machine-b",
            )  # fmt: skip
        assert refused.value.status == 403
        assert registrar.restore_user(
            "joined-r", credential, project="ic-wt-b-joined-r", machine="machine-b",
            worktree="wt-b", agent="scripted", task="t",
        )  # fmt: skip
        assert client.ping()  # the very password the session's proxy holds
        client.close()
        session = start_b_session(
            machines, docker_client, image, tmp_path, credential, redis_url, "joined-r"
        )
        try:
            approve_as_bob(machines, tmp_path, "joined-r")
            assert session.wait(timeout=60)["StatusCode"] == 0, session.logs().decode()
            assert session.logs().decode().split()[:2] == ["approved", "bob"]
        finally:
            session.remove(force=True)
    finally:
        with contextlib.suppress(RegistrarError):  # gone already if the restore never came
            registrar.remove_user("joined-r")
