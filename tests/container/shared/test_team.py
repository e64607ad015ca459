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

import http.client
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
import redis

from ironcurtain.escalation import keys, users
from ironcurtain.escalation.acl import Credential
from ironcurtain.escalation.channel import Channel, connect
from ironcurtain.escalation.types import EscalationRequest, Verdict
from ironcurtain.registrar.client import Registrar, RegistrarError, Team
from ironcurtain.shared.pki import TeamTLS

from ..conftest import REPO_ROOT, RUN_ID, TEST_LABELS
from ..redisserver import free_port
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
    host = docker_client.networks.get("bridge").attrs["IPAM"]["Config"][0]["Gateway"]
    a = {
        **_base_env(root / "a"),
        "IRONCURTAIN_SHARED_DIR": str(root / "a" / "shared"),
        "IRONCURTAIN_SHARED_PROJECT": f"ic-test-team-{RUN_ID[:12]}",
        "IRONCURTAIN_SHARED_NETWORK": f"ic-test-team-{RUN_ID[:12]}",
        "IRONCURTAIN_APPROVAL_PORT": str(free_port()),
        "IRONCURTAIN_TEAM_REDIS_PORT": str(free_port()),
        "IRONCURTAIN_TEAM_REGISTRAR_PORT": str(free_port()),
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
    assert set(services) == {"redis", "approval", "worker", "registrar"}
    admin = str(machines.a_shared / "redis_admin")
    for name, container in services.items():
        sources = [m["Source"] for m in container.attrs["Mounts"]]
        assert str(machines.a_shared / "tls" / "ca-key.pem") not in sources, name
        assert (admin in sources) == (name == "registrar"), name
    approval_ports = services["approval"].attrs["HostConfig"]["PortBindings"]["8000/tcp"]
    assert [b["HostIp"] for b in approval_ports] == ["127.0.0.1"]  # people: loopback only


def test_control_a_joined_machines_session_escalates_and_a_members_decision_resumes_it(
    machines: Machines, docker_client: docker.DockerClient, image: Callable[[str], str],
    tmp_path: Path,
) -> None:  # fmt: skip
    credential, redis_url = b_session_user(machines, "joined-1")
    secret = tmp_path / "redis_password"
    secret.write_text(credential.line())
    secret.chmod(0o644)  # read by the container's user
    session = docker_client.containers.run(
        image("python"),
        ["python3", "-c", ESCALATE, redis_url, "joined-1"],
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
    try:
        env = machines.approval()
        [escalation_id] = pending_ids(env)
        assert escalation_id.startswith("joined-1.")
        bob_file = tmp_path / "bob_token"
        bob_file.write_text(machines.bob + "\n")
        bob_file.chmod(0o600)
        url = f"http://127.0.0.1:{machines.a['IRONCURTAIN_APPROVAL_PORT']}"
        approved = cli(
            env, "approve", escalation_id, "--yes", "--url", url, "--token-file", str(bob_file)
        )
        assert approved.returncode == 0, approved.stderr
        assert session.wait(timeout=60)["StatusCode"] == 0, session.logs().decode()
        assert session.logs().decode().split()[:2] == ["approved", "bob"]
    finally:
        session.remove(force=True)
        registrar, _ = Team(machines.b_state / "team").load()
        registrar.remove_user("joined-1")


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
            lambda: attacker.redis.get(keys.record(pending.id)),
            lambda: attacker.redis.set(keys.record(pending.id), "{}"),
            lambda: attacker.redis.set(keys.decision(pending.id), "{}"),
            lambda: attacker.redis.rpush(keys.wake(pending.id), "1"),
            lambda: attacker.decide(pending.id, Verdict.APPROVED, by="bob"),
            lambda: attacker.redis.publish(keys.notices("on-a-1"), "forged"),
            lambda: attacker.redis.execute_command("ACL", "SETUSER", "x", "on", "+@all"),
            lambda: attacker.redis.execute_command("KEYS", "*"),
        ):
            with pytest.raises(redis.exceptions.NoPermissionError):
                attack()
        assert victim.redis.get(keys.record(pending.id)) is not None  # untouched
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
