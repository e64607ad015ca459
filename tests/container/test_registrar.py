"""The registrar against our real (TLS) Redis: what a member's token lets another machine do.

Attacks: no token or a token that is no member's; asking again for a session that has a user (to
get a second password for its keys), also a session made on the team server itself; removing
another member's session user; ids that could widen a key pattern; bodies of the wrong shape;
putting back a session user (after a Redis restart) with a password the registrar did not give
that member for that session, or over another member's claim;
more users than the cap. Controls: a member gets a user for a new session, its credential works
as the session's and only as the session's, and removing it ends it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from ironcurtain.escalation import acl, redis_keys, users
from ironcurtain.escalation.acl import Credential
from ironcurtain.escalation.channel import Channel, connect
from ironcurtain.escalation.escalator import RedisEscalator
from ironcurtain.escalation.types import EscalationRequest, Verdict
from ironcurtain.people.members import MembersFile
from ironcurtain.registrar import app as registrar

from .redisserver import RedisServer, redis_server

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
def api(admin: redis.Redis, tmp_path: Path, team_redis: RedisServer) -> FlaskClient:
    members = MembersFile(tmp_path / "members.json")
    members.add_with_token("alice", ALICE)
    members.add_with_token("bob", BOB)
    return registrar_client(admin, members.path, team_redis)


def registrar_client(admin: redis.Redis, members: Path, team_redis: RedisServer) -> FlaskClient:
    app = registrar.create_app(
        {
            "ADMIN": admin,
            "ADMIN_PASSWORD": team_redis.credentials[acl.ADMIN].password,
            "MEMBERS_FILE": members,
            "TEAM_REDIS_URL": "rediss://team:6379/0",
        }
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
        own.redis.get(redis_keys.record(other.id))
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


def restore(api: FlaskClient, session: str, password: str, token: str = ALICE) -> Any:
    body = {**BODY, "password": password}
    return api.put(f"/v1/sessions/{session}/user", json=body, headers=as_(token))


def forget(admin: redis.Redis, *sessions: str) -> None:
    """What a Redis restart does to session users (a real one: the test below)."""
    for session in sessions:
        admin.execute_command("ACL", "DELUSER", acl.session_user(session))
        admin.hdel(redis_keys.ACL_USERS, acl.session_user(session))


class TestRedisRestart:
    """Redis keeps no session users across a restart: a joined machine's `ironcurtain run` asks
    the registrar to put its user back, proving it with the password the registrar gave it."""

    @pytest.fixture
    def own_server(self, image: Any, tmp_path: Path) -> Iterator[RedisServer]:
        with redis_server(image("redis"), tmp_path) as found:
            yield found

    def test_control_after_a_real_restart_the_member_puts_back_the_same_user_and_escalates(
        self, own_server: RedisServer, tmp_path: Path
    ) -> None:
        members = MembersFile(tmp_path / "members.json")
        members.add_with_token("alice", ALICE)
        admin = own_server.client()
        api = registrar_client(admin, members.path, own_server)
        made = make(api, "s1")
        assert made.status_code == 201
        credential = Credential(made.json["user"], made.json["password"])
        assert pings(own_server, credential)
        own_server.kill()
        own_server.revive()
        # Control: the restart did forget the session's user (what this test is about).
        with pytest.raises(redis.exceptions.AuthenticationError):
            pings(own_server, credential)
        admin.close()
        admin = own_server.client()
        api = registrar_client(admin, members.path, own_server)
        answer = restore(api, "s1", credential.password)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        assert answer.json == {"user": credential.user, "restored": True}
        assert pings(own_server, credential)  # the same password: the proxy's file works again
        own = channel_of(own_server, credential)
        assert own.create(request("s1"), 60).session_id == "s1"  # its escalations go through
        own.redis.close()
        assert users.owner(admin, "s1") == "alice"  # registered again: no sweep removes it
        assert restore(api, "s1", credential.password).json["restored"] is False  # idempotent
        admin.close()

    def test_without_a_restore_the_session_fails_closed_quickly_saying_redis_is_unreachable(
        self, own_server: RedisServer, tmp_path: Path
    ) -> None:
        session_file = own_server.session_file("s1")
        escalator = RedisEscalator.connect(own_server.url, session_file, ca_file=own_server.ca_file)
        try:
            own_server.kill()
            own_server.revive()
            began = time.monotonic()
            outcome = asyncio.run(escalator.escalate(request("s1"), 60))
            assert outcome.verdict is Verdict.UNAVAILABLE
            assert "(Redis) is unreachable" in outcome.message
            assert time.monotonic() - began < 5  # denied, never a hang
        finally:
            escalator.close()


def test_a_restore_needs_the_password_the_registrar_gave_that_member_for_that_session(
    api: FlaskClient, admin: redis.Redis, team_redis: RedisServer
) -> None:
    alices = make(api, "s1").json["password"]
    bobs = make(api, "s2", BOB).json["password"]
    others = make(api, "s3").json["password"]
    local = users.create_session_user(admin, "local1", project="ic-x", machine="team")
    forget(admin, "s1", "s2", "s3", "local1")
    tries = [
        ("s1", alices, BOB),  # another member holding the password (a leaked proxy file)
        ("s2", bobs, ALICE),  # bob's session's real password, presented by alice
        ("s2", alices, ALICE),  # alice's password for another session
        ("s1", others, ALICE),
        ("s1", alices[:-1] + ("0" if alices[-1] != "0" else "1"), ALICE),  # one digit changed
        ("s1", "0" * 96, ALICE),
        ("s1", alices[:32], ALICE),
        ("s1", Credential.new("x").password, ALICE),  # a password of the usual shape
        ("local1", local.password, ALICE),  # the team server's own session (admin made it)
        ("local1", local.password, BOB),
    ]
    for session, password, token in tries:
        answer = restore(api, session, password, token)
        assert answer.status_code == 403, (session, token, answer.get_data(as_text=True))
    assert users.session_users(admin) == []
    for body in ({"password": 7}, {}, {"password": alices}):  # no project/machine, wrong type
        answer = api.put("/v1/sessions/s1/user", json=body, headers=as_(ALICE))
        assert answer.status_code in (400, 403)
    assert restore(api, "s1", alices, "c" * 43).status_code == 401
    assert users.session_users(admin) == []
    assert restore(api, "s1", alices).status_code == 200  # control: its own member, its own
    assert restore(api, "s2", bobs, BOB).status_code == 200
    assert pings(team_redis, Credential(acl.session_user("s1"), alices))


def test_a_restore_never_takes_a_session_another_member_holds_or_changes_a_live_user(
    api: FlaskClient, admin: redis.Redis, team_redis: RedisServer
) -> None:
    alices = make(api, "s1").json["password"]
    # The registry says bob holds s1 (as if he claimed it first after a restart).
    forget(admin, "s1")
    bobs = '{"project": "p", "machine": "m", "member": "bob"}'
    admin.hset(redis_keys.ACL_USERS, acl.session_user("s1"), bobs)
    assert restore(api, "s1", alices).status_code == 404
    assert users.session_users(admin) == []
    admin.hdel(redis_keys.ACL_USERS, acl.session_user("s1"))
    assert restore(api, "s1", alices).json["restored"] is True
    assert restore(api, "s1", alices).json["restored"] is False  # there: nothing changes
    assert pings(team_redis, Credential(acl.session_user("s1"), alices))


def test_an_ended_sessions_id_is_never_given_out_again_and_its_scopes_are_gone(
    api: FlaskClient, team_redis: RedisServer, admin: redis.Redis
) -> None:
    """alice's session C remembered a scope and ended; bob asking for C's id would have got a
    user that inherits the scope (his calls approved with no human) and reads C's decisions."""
    from ironcurtain.escalation.remember import Scope

    made = make(api, "c1")
    assert made.status_code == 201
    own = channel_of(team_redis, Credential(made.json["user"], made.json["password"]))
    pending = own.create(request("c1"), 60)
    own.redis.close()
    scope = Scope.from_dict({"kind": "prefix", "value": "/workspace/src/", "server": "filesystem",
                             "tool": "move_file", "label": "moves under src/"})  # fmt: skip
    admin.hset(redis_keys.remembered("c1"), scope.id, scope.to_json())  # as the approval does
    assert api.delete("/v1/sessions/c1/user", headers=as_(ALICE)).status_code == 204
    assert admin.exists(redis_keys.remembered("c1")) == 0  # teardown forgets its scopes
    for token in (BOB, ALICE):  # nobody gets the id again, its member included
        again = make(api, "c1", token)
        assert again.status_code == 409
        assert "password" not in again.get_data(as_text=True)
    Channel(admin).decide(pending.id, Verdict.DENIED, by="alice")  # nothing pending any more
    assert make(api, "c1", BOB).status_code == 409  # its registration is still known
    assert make(api, "c2", BOB).status_code == 201  # control: a new id is made


def test_removing_a_member_ends_every_session_user_their_machines_were_given(
    api: FlaskClient, admin: redis.Redis, team_redis: RedisServer, tmp_path: Path
) -> None:
    """`shared member remove` revokes the token, then ends the member's session users: their
    proxies' credentials stop working at once. Control: another member's session keeps its."""

    def made(session: str, token: str = ALICE) -> Credential:
        answer = make(api, session, token)
        assert answer.status_code == 201, answer.get_data(as_text=True)
        return Credential(answer.json["user"], answer.json["password"])

    alices = [made("x"), made("y")]
    bobs = made("z", BOB)
    admin.hset(redis_keys.ACL_USERS, "not-a-session-user", '{"member": "alice"}')  # left alone
    MembersFile(tmp_path / "members.json").remove("alice")
    assert sorted(users.remove_member_sessions(admin, "alice")) == ["x", "y"]
    for credential in alices:
        with pytest.raises(redis.exceptions.AuthenticationError):
            pings(team_redis, credential)
    assert pings(team_redis, bobs)
    assert users.session_users(admin) == [acl.session_user("z")]
    assert users.owned_by(admin, "alice") == {"not-a-session-user": '{"member": "alice"}'}
    assert make(api, "w").status_code == 401  # and the token gets no new one


@pytest.mark.parametrize("step", ["create", "restore"])
def test_a_member_removed_while_the_registrar_makes_their_user_is_left_without_it(
    api: FlaskClient, admin: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    step: str,
) -> None:  # fmt: skip
    """The race `member remove` could lose: the token checked, then revoked and the member's
    users swept, then the user made. The registrar checks the token again after making it."""
    password = make(api, "s1").json["password"] if step == "restore" else ""
    if step == "restore":
        forget(admin, "s1")
    real = users.create_session_user if step == "create" else users.restore_session_user

    def removed_meanwhile(*args: Any, **kwargs: Any) -> Any:
        MembersFile(tmp_path / "members.json").remove("alice")
        assert users.remove_member_sessions(admin, "alice") == []  # the sweep ran too early
        return real(*args, **kwargs)

    name = "create_session_user" if step == "create" else "restore_session_user"
    monkeypatch.setattr(users, name, removed_meanwhile)
    answer = make(api, "s1") if step == "create" else restore(api, "s1", password)
    assert answer.status_code == 401
    assert users.session_users(admin) == []
