"""`ironcurtain run`'s own budget watcher, against the team-shared stack it starts: from the moment
the session's user exists (before any container), a writer holding the session's credential (as
its MCP proxy does) that goes over the budget has the user removed and its connections dropped,
the session says why and fails with that reason, and teardown frees everything it held.
Control: a session that stays in budget is not stopped."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import docker
import pytest
import redis

from ironcurtain.escalation import acl, redis_keys
from ironcurtain.escalation.channel import Channel, connect
from ironcurtain.escalation.types import EscalationRequest
from ironcurtain.session import plan
from ironcurtain.session.run import (
    LOCAL_REDIS_URL,
    Options,
    Session,
    SessionFailed,
    _redis_address,
)
from ironcurtain.shared.files import SharedFiles

from .conftest import FAKELLM_COMPOSE, Env


def scripted(env: Env, workspace: Path, said: list[str], **environ: str) -> Session:
    return Session(
        Options(
            task="(budget)",
            agent="scripted",
            workspace=workspace,
            session_id=secrets.token_hex(4),
            compose_files=(FAKELLM_COMPOSE,),
            upstreams=(
                plan.Upstream("api.anthropic.com", "fakellm:8443", env.vendor / "fake-ca.pem"),
            ),
            build_images=False,
        ),
        say=said.append,
        environ={**env.environ, **environ},
    )


def as_the_proxy(session: Session, client: docker.DockerClient) -> redis.Redis:
    """A client with the credential `run` wrote for the MCP proxy (secrets/redis_password)."""
    assert session.plan is not None
    secrets_dir = session.layout.secrets
    return connect(
        LOCAL_REDIS_URL,
        secrets_dir / "redis_password",
        ca_file=secrets_dir / "redis_ca",
        address=_redis_address(client, session.plan.shared_network),
    )


def admin_of(env: Env, session: Session, client: docker.DockerClient) -> redis.Redis:
    assert session.plan is not None
    files = SharedFiles(env.shared_dir)
    return connect(
        LOCAL_REDIS_URL, files.redis_admin, ca_file=files.tls.ca,
        address=_redis_address(client, session.plan.shared_network),
    )  # fmt: skip


def flood(proxy: redis.Redis, space: str) -> int:
    """Records written one by one until Redis refuses one (the user removed): how many went."""
    for n in range(10_000):
        try:
            proxy.set(f"{space}record:flood-{n}", "x")
        except redis.RedisError:
            return n
    return 10_000


def test_a_session_over_its_redis_budget_is_stopped_by_run_saying_why(
    session_env: Env, workspace: Path, docker_client: docker.DockerClient
) -> None:
    said: list[str] = []
    session = scripted(session_env, workspace, said, IRONCURTAIN_REDIS_BUDGET_KEYS="50")
    try:
        session.prepare()  # the user made and watched; no container started yet
        assert "run: the session's Redis budget: 50 keys, 16 MiB" in " ".join(said)
        proxy = as_the_proxy(session, docker_client)
        space = redis_keys.space(session.name.session_id)
        try:
            went = flood(proxy, space)
        finally:
            proxy.close()
        assert 50 < went < 10_000  # refused soon after its 50th key
        assert session._budget.wait_for(lambda w: w.ended is not None, 10)
        with pytest.raises(SessionFailed, match="exceeded its Redis budget"):
            session.run_agent()
    finally:
        session.teardown()
    [stopped] = [line for line in said if "exceeded its Redis budget" in line]
    assert re.fullmatch(
        r"run: the session exceeded its Redis budget \(5\d keys, more than its 50\): stopped",
        stopped,
    )
    admin = admin_of(session_env, session, docker_client)
    try:
        user = acl.session_user(session.name.session_id)
        assert admin.execute_command("ACL", "GETUSER", user) is None
        left = [k for k in admin.scan_iter(match=f"{space}*") if not k.endswith(b":info")]
        assert left == []  # teardown freed what it held
    finally:
        admin.close()


def test_control_a_session_in_budget_is_not_stopped(
    session_env: Env, workspace: Path, docker_client: docker.DockerClient
) -> None:
    said: list[str] = []
    session = scripted(session_env, workspace, said)
    try:
        session.prepare()
        proxy = as_the_proxy(session, docker_client)
        try:
            channel = Channel(proxy)
            sid = session.name.session_id
            for _ in range(5):
                channel.create(
                    EscalationRequest(
                        session_id=sid, worktree="wt", agent="scripted", server="filesystem",
                        tool="move_file", arguments={"source": "/workspace/a"}, rule="r",
                        reason="moves need a human", paths=("/workspace/a",),
                        arguments_digest="d" * 64,
                    ),
                    30,
                )  # fmt: skip
        finally:
            proxy.close()
        assert session._budget.wait_for(lambda w: w.footprint.keys >= 7, 10)  # 5, pending, marker
        assert session._ended is None
        assert session._budget.ended is None
    finally:
        session.teardown()
    assert not [line for line in said if "stopped" in line]
