"""The registrar against our real (TLS) Redis: what a member's token lets another machine do.

Attacks: no token or a token that is no member's; asking again for a session that has a user (to
get a second password for its keys), also a session made on the team server itself; removing
another member's session user; ids that could widen a key pattern; bodies of the wrong shape;
more users than the cap. Controls: a member gets a user for a new session, its credential works
as the session's and only as the session's, and removing it ends it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from ironcurtain.escalation import acl, keys, users
from ironcurtain.escalation.acl import Credential
from ironcurtain.escalation.channel import Channel, connect
from ironcurtain.escalation.types import EscalationRequest
from ironcurtain.people.members import MembersFile
from ironcurtain.registrar import app as registrar

from .redisserver import RedisServer

ALICE, BOB = "a" * 43, "b" * 43
BODY = {"project": "ic-wt-s1", "machine": "machine-b", "worktree": "wt", "agent": "scripted"}


@pytest.fixture
def admin(team_redis: RedisServer) -> Iterator[redis.Redis]:
    found = connect(team_redis.url, team_redis.admin_file, ca_file=team_redis.ca_file)
    found.flushdb()
    for user in users.session_users(found):
        found.execute_command("ACL", "DELUSER", user)
    yield found
    found.close()


@pytest.fixture
def api(admin: redis.Redis, tmp_path: Path) -> FlaskClient:
    members = MembersFile(tmp_path / "members.json")
    members.add_with_token("alice", ALICE)
    members.add_with_token("bob", BOB)
    app = registrar.create_app(
        {"ADMIN": admin, "MEMBERS_FILE": members.path, "TEAM_REDIS_URL": "rediss://team:6379/0"}
    )
    return app.test_client()


def as_(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make(api: FlaskClient, session: str, token: str = ALICE, **extra: Any) -> Any:
    return api.post(f"/v1/sessions/{session}/user", json={**BODY, **extra}, headers=as_(token))


def request(session: str) -> EscalationRequest:
    return EscalationRequest(
        session_id=session, worktree="wt", agent="a", server="filesystem", tool="move_file",
        arguments={"source": "/workspace/a"}, rule="r", reason="why", paths=("/workspace/a",),
    )  # fmt: skip


def channel_of(team_redis: RedisServer, credential: Credential) -> Channel:
    return Channel(connect(team_redis.url, credential=credential, ca_file=team_redis.ca_file))


def pings(team_redis: RedisServer, credential: Credential) -> bool:
    """The credential logs in (its own client, closed after)."""
    client = connect(team_redis.url, credential=credential, ca_file=team_redis.ca_file)
    try:
        return bool(client.ping())
    finally:
        client.close()


def test_control_a_member_gets_a_user_for_a_new_session_that_works_as_that_session_only(
    api: FlaskClient, team_redis: RedisServer, admin: redis.Redis
) -> None:
    team = api.get("/v1/team", headers=as_(ALICE))
    assert team.json == {"member": "alice", "redis_url": "rediss://team:6379/0"}
    made = make(api, "s1")
    assert made.status_code == 201
    credential = Credential(made.json["user"], made.json["password"])
    assert credential.user == acl.session_user("s1")
    own = channel_of(team_redis, credential)
    escalation = own.create(request("s1"), 60)  # its own round trip's first step
    assert escalation.session_id == "s1"
    with pytest.raises(redis.exceptions.NoPermissionError):
        own.redis.execute_command("ACL", "LIST")
    other = Channel(admin).create(request("other"), 60)
    with pytest.raises(redis.exceptions.NoPermissionError):
        own.redis.get(keys.record(other.id))
    own.redis.close()
    assert api.delete("/v1/sessions/s1/user", headers=as_(ALICE)).status_code == 204
    with pytest.raises(redis.exceptions.AuthenticationError):
        pings(team_redis, credential)


def test_no_token_or_a_token_that_is_no_members_gets_nothing(api: FlaskClient) -> None:
    for headers in ({}, as_("c" * 43), {"Authorization": f"Basic {ALICE}"}, as_("")):
        assert api.get("/v1/team", headers=headers).status_code == 401
        answer = api.post("/v1/sessions/s1/user", json=BODY, headers=headers)
        assert answer.status_code == 401
        assert "password" not in answer.get_data(as_text=True)


def test_a_session_that_has_a_user_is_never_given_a_second_password(
    api: FlaskClient, team_redis: RedisServer, admin: redis.Redis
) -> None:
    first = make(api, "s1")
    assert first.status_code == 201
    for token in (ALICE, BOB):  # neither its member nor another gets its keys again
        again = make(api, "s1", token)
        assert again.status_code == 409
        assert "password" not in again.get_data(as_text=True)
    # A session the team server's own `ironcurtain run` made (no registry member) is safe too.
    local = users.create_session_user(admin, "local1", project="ic-x", machine="team")
    assert make(api, "local1", BOB).status_code == 409
    assert pings(team_redis, local)  # its password still works
    original = Credential(first.json["user"], first.json["password"])
    assert pings(team_redis, original)


def test_a_member_cannot_remove_another_members_or_the_servers_own_session_user(
    api: FlaskClient, team_redis: RedisServer, admin: redis.Redis
) -> None:
    made = make(api, "s1")
    local = users.create_session_user(admin, "local1", project="ic-x", machine="team")
    assert api.delete("/v1/sessions/s1/user", headers=as_(BOB)).status_code == 404
    assert api.delete("/v1/sessions/local1/user", headers=as_(BOB)).status_code == 404
    assert api.delete("/v1/sessions/none/user", headers=as_(BOB)).status_code == 404
    alive = Credential(made.json["user"], made.json["password"])
    assert pings(team_redis, alive)
    assert pings(team_redis, local)


@pytest.mark.parametrize("session", ["a*", "a?", "a[b]", "x:y", "a.b", "-" * 65])
def test_a_session_id_that_could_widen_a_key_pattern_is_refused(
    api: FlaskClient, admin: redis.Redis, session: str
) -> None:
    assert make(api, session).status_code in (400, 404)
    assert users.session_users(admin) == []


@pytest.mark.parametrize(
    "body",
    [
        {"project": "ic-x"},
        {**BODY, "project": "IC X"},
        {**BODY, "machine": "m b"},
        {**BODY, "task": 7},
        {**BODY, "live": "ic-x"},
        {**BODY, "task": "x" * 5000},
    ],
)
def test_a_body_of_the_wrong_shape_is_refused(
    api: FlaskClient, admin: redis.Redis, body: dict[str, Any]
) -> None:
    answer = api.post("/v1/sessions/s1/user", json=body, headers=as_(ALICE))
    assert answer.status_code == 400
    assert users.session_users(admin) == []


def test_a_member_holds_at_most_the_cap_and_their_gone_sessions_are_swept(
    api: FlaskClient, admin: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registrar, "MAX_USERS", 2)
    assert make(api, "s1", project="ic-wt-1", live=[]).status_code == 201
    assert make(api, "s2", project="ic-wt-2", live=["ic-wt-1"]).status_code == 201
    assert make(api, "s3", project="ic-wt-3", live=["ic-wt-1", "ic-wt-2"]).status_code == 429
    assert make(api, "s4", BOB, project="ic-wt-4").status_code == 201  # bob's own cap
    # s2's project is gone on machine-b: swept before s3 is made; s1 lives; bob's untouched.
    assert make(api, "s3", project="ic-wt-3", live=["ic-wt-1"]).status_code == 201
    assert sorted(users.session_users(admin)) == [acl.session_user(s) for s in ("s1", "s3", "s4")]


def test_an_id_a_member_claimed_is_refused_to_the_servers_own_run_too(
    api: FlaskClient, admin: redis.Redis
) -> None:
    """`ironcurtain run` on the team server makes its users exclusively as well: a session id a
    member claimed first is refused, never re-made under a connection the member still holds."""
    assert make(api, "s1").status_code == 201
    with pytest.raises(users.UserExists):
        users.create_session_user(admin, "s1", project="ic-x", machine="team", exclusive=True)
    assert users.owner(admin, "s1") == "alice"
