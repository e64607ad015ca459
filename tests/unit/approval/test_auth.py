"""People: each member logs in with their own token; every decision names the member of the
credential (never a `by` in the body); logout and `member remove` end web sessions at once, in
every worker; failed logins are throttled; `next` only goes to our own paths; the cookie is ours."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from ironcurtain.approval.app import create_app
from ironcurtain.approval.auth import safe_next
from ironcurtain.escalation.types import Verdict
from ironcurtain.people.members import MembersFile

from .conftest import MemoryChannel, bearer, csrf_of, digest_of, escalation_request, log_in

COOKIE = "ironcurtain_approval_8470"


def cookie_of(client: FlaskClient) -> str:
    found = client.get_cookie(COOKIE)
    assert found is not None
    return found.value


def client_at(app: Flask, address: str) -> FlaskClient:
    found = app.test_client()
    found.environ_base["REMOTE_ADDR"] = address
    return found


def decide_in_form(client: FlaskClient, escalation_id: str, **extra: str) -> int:
    page = client.get(f"/escalations/{escalation_id}").data
    data = {"action": "approve", "csrf_token": csrf_of(page), "digest": digest_of(page), **extra}
    return client.post(f"/escalations/{escalation_id}/decide", data=data).status_code


def test_a_member_logs_in_decides_and_the_decision_names_them(
    client: FlaskClient, channel: MemoryChannel, tokens: dict[str, str]
) -> None:
    assert log_in(client, "alice", tokens["alice"]).status_code == 302
    escalation = channel.create(escalation_request())
    assert decide_in_form(client, escalation.id) == 302
    assert channel.decisions[escalation.id].by == "alice"


def test_a_by_field_in_the_form_is_ignored(
    client: FlaskClient, channel: MemoryChannel, tokens: dict[str, str]
) -> None:
    log_in(client, "alice", tokens["alice"])
    escalation = channel.create(escalation_request())
    assert decide_in_form(client, escalation.id, by="someone-else", user="someone-else") == 302
    assert channel.decisions[escalation.id].by == "alice"


@pytest.mark.parametrize("member", ["alice", "bob"])
def test_an_api_decision_names_the_member_of_the_token_not_the_body(
    client: FlaskClient, channel: MemoryChannel, tokens: dict[str, str], member: str
) -> None:
    escalation = channel.create(escalation_request())
    response = client.post(
        f"/api/v1/escalations/{escalation.id}/deny",
        json={"reason": "no", "by": "someone-else"},
        headers=bearer(tokens[member]),
    )
    assert response.status_code == 200
    assert channel.decisions[escalation.id].by == member
    assert response.json["decision"]["by"] == member  # type: ignore[index]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer " + "w" * 43},
        {"Authorization": "Bearer "},
        {"Authorization": "x"},
    ],
)
def test_the_api_refuses_a_token_that_is_no_members(
    client: FlaskClient, channel: MemoryChannel, tokens: dict[str, str], headers: dict[str, str]
) -> None:
    escalation = channel.create(escalation_request())
    response = client.post(f"/api/v1/escalations/{escalation.id}/approve", json={}, headers=headers)
    assert response.status_code == 401
    assert escalation.id not in channel.decisions


def test_whoami_names_the_member_of_the_token(client: FlaskClient, tokens: dict[str, str]) -> None:
    assert client.get("/api/v1/whoami", headers=bearer(tokens["bob"])).json == {"member": "bob"}


def test_a_removed_members_token_no_longer_decides_through_the_api(
    client: FlaskClient, channel: MemoryChannel, members: MembersFile, tokens: dict[str, str]
) -> None:
    members.remove("bob")
    escalation = channel.create(escalation_request())
    path = f"/api/v1/escalations/{escalation.id}/approve"
    shown = {"digest": escalation.digest()}
    assert client.post(path, json=shown, headers=bearer(tokens["bob"])).status_code == 401
    assert client.post(path, json=shown, headers=bearer(tokens["alice"])).status_code == 200


@pytest.mark.parametrize(
    ("name", "token_of"),
    [("alice", "bob"), ("bob", "alice"), ("carol", "alice"), ("alice", None), ("", "alice")],
)
def test_a_name_with_another_members_token_does_not_log_in(
    client: FlaskClient, tokens: dict[str, str], name: str, token_of: str | None
) -> None:
    token = tokens[token_of] if token_of else "w" * 43
    assert log_in(client, name, token).status_code == 403
    assert client.get("/").status_code == 302


def test_logout_ends_the_session_for_a_copied_cookie_too(
    app: Flask, client: FlaskClient, channel: MemoryChannel, tokens: dict[str, str]
) -> None:
    log_in(client, "alice", tokens["alice"])
    csrf = csrf_of(client.get("/").data)  # the cookie now holds the CSRF token as well
    stolen = app.test_client()
    stolen.set_cookie(COOKIE, cookie_of(client))
    assert stolen.get("/").status_code == 200  # control: the copy works while the session is open
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 302
    assert stolen.get("/").status_code == 302
    escalation = channel.create(escalation_request())
    response = stolen.post(
        f"/escalations/{escalation.id}/decide", data={"action": "approve", "csrf_token": csrf}
    )
    assert response.status_code == 302  # to the login page
    assert escalation.id not in channel.decisions
    assert stolen.get("/api/v1/escalations").status_code == 401


def test_removing_a_member_ends_their_sessions_in_every_worker_at_once(
    app: Flask, channel: MemoryChannel, members: MembersFile, tokens: dict[str, str], tmp_path: Path
) -> None:
    # A second app over the same files stands in for a second gunicorn worker.
    other_worker = create_app({**app.config, "CHANNEL": channel})
    alice, bob = app.test_client(), app.test_client()
    log_in(alice, "alice", tokens["alice"])
    log_in(bob, "bob", tokens["bob"])
    in_other = other_worker.test_client()
    in_other.set_cookie(COOKIE, cookie_of(alice))
    assert in_other.get("/").status_code == 200  # the session is shared between workers

    members.remove("alice")
    assert alice.get("/").status_code == 302
    assert in_other.get("/").status_code == 302
    assert bob.get("/").status_code == 200  # control: only alice's sessions ended


def test_re_adding_a_member_does_not_revive_old_sessions(
    client: FlaskClient, members: MembersFile, tokens: dict[str, str]
) -> None:
    log_in(client, "alice", tokens["alice"])
    members.remove("alice")
    fresh = members.add("alice")
    assert client.get("/").status_code == 302
    assert log_in(client, "alice", fresh).status_code == 302  # control: the new token works
    assert client.get("/").status_code == 200


def test_a_made_up_session_id_in_a_signed_cookie_is_not_a_login(
    app: Flask, client: FlaskClient, tokens: dict[str, str]
) -> None:
    with client.session_transaction() as session:
        session["sid"] = "A" * 43
        session["user"] = "alice"  # what the old cookie held: ignored now
    assert client.get("/").status_code == 302


def test_failed_logins_are_throttled_per_name_and_address(
    app: Flask, tokens: dict[str, str]
) -> None:
    attacker = client_at(app, "10.0.0.7")
    for _ in range(5):
        assert log_in(attacker, "alice", "w" * 43).status_code == 403
    # From that address even the right token is refused while the pair is throttled.
    assert log_in(attacker, "alice", tokens["alice"]).status_code == 429
    assert log_in(attacker, "bob", tokens["bob"]).status_code == 302  # another name: its own


def test_wrong_tokens_for_a_name_from_anywhere_do_not_lock_that_member_out(
    app: Flask, tokens: dict[str, str]
) -> None:
    # F11 of the attacker review: 5 wrong tokens for "alice" used to lock alice out everywhere.
    for n in range(10):
        attacker = client_at(app, f"10.0.1.{n}")
        for _ in range(5):
            assert log_in(attacker, "alice", "w" * 43).status_code == 403
        assert log_in(attacker, "alice", "w" * 43).status_code == 429
    alice = client_at(app, "10.0.0.9")
    assert log_in(alice, "alice", tokens["alice"]).status_code == 302  # her own address: in


def test_failed_logins_are_throttled_per_address(app: Flask, tokens: dict[str, str]) -> None:
    attacker = client_at(app, "10.0.0.7")
    for i in range(20):  # a name each: no pair reaches its limit, the address does
        assert log_in(attacker, f"guess{i}", "w" * 43).status_code == 403
    assert log_in(attacker, "bob", tokens["bob"]).status_code == 429
    elsewhere = client_at(app, "10.0.0.8")
    assert log_in(elsewhere, "bob", tokens["bob"]).status_code == 302  # control


def test_a_few_failures_of_other_names_do_not_block_an_address(
    app: Flask, tokens: dict[str, str]
) -> None:
    shared = client_at(app, "10.0.0.7")  # colleagues behind one address
    for i in range(19):
        assert log_in(shared, f"typo{i % 4}", "w" * 43).status_code == 403
    assert log_in(shared, "bob", tokens["bob"]).status_code == 302


def test_the_throttle_memory_is_bounded(app: Flask, tokens: dict[str, str]) -> None:
    for name in ("ironcurtain.throttle", "ironcurtain.address_throttle"):
        throttle = app.extensions[name]
        for i in range(20_000):
            throttle.failed(f"10.0.{i // 256}.{i % 256} n{i}")
        assert len(throttle) <= throttle.max_keys
    fresh = client_at(app, "10.9.9.9")
    assert log_in(fresh, "alice", tokens["alice"]).status_code == 302  # control


NEXT_TABLE = [
    ("/", "/"),
    ("/history", "/history"),
    ("/escalations/e0001", "/escalations/e0001"),
    ("/sessions/", "/sessions/"),
    ("//example.com", None),
    ("///example.com", None),
    ("/%09/example.com", None),
    ("/\t/example.com", None),
    ("/\\example.com", None),
    ("\\\\example.com", None),
    ("/\\/example.com", None),
    ("https://example.com", None),
    ("https:example.com", None),
    ("http:/example.com", None),
    ("javascript:alert(1)", None),
    ("example.com", None),
    ("", None),
    ("/a\r\nLocation: //evil", None),
    ("/a\x00b", None),
    ("/\u2028/example.com", None),
    ("/%2F%2Fexample.com", None),
    ("/@example.com", None),
    ("/x?next=//example.com", None),
    ("/ /example.com", None),
]


@pytest.mark.parametrize(("target", "allowed"), NEXT_TABLE)
def test_next_is_only_ever_a_same_origin_path(target: str, allowed: str | None) -> None:
    assert safe_next(target) == allowed


@pytest.mark.parametrize(("target", "allowed"), NEXT_TABLE)
def test_login_redirects_only_to_our_own_paths(
    app: Flask, tokens: dict[str, str], target: str, allowed: str | None
) -> None:
    response = log_in(app.test_client(), "alice", tokens["alice"], next_path=target)
    assert response.status_code == 302
    assert response.headers["Location"] == (allowed or "/")


def test_the_cookie_is_httponly_strict_path_root_and_named_for_the_port(
    client: FlaskClient, tokens: dict[str, str]
) -> None:
    response = log_in(client, "alice", tokens["alice"])
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/"):
        assert attribute in cookie
    assert "Domain=" not in cookie  # host-only: never sent to other host names


def test_over_tls_the_cookie_is_secure_and_host_prefixed(
    channel: MemoryChannel, members: MembersFile, tmp_path: Path, tokens: dict[str, str]
) -> None:
    """The team server's page for other machines (HTTPS): a `__Host-` cookie, Secure, so no
    plain-HTTP page of that host can set it or be sent it."""
    app = create_app(
        {
            "CHANNEL": channel,
            "MEMBERS_FILE": members.path,
            "SESSION_DIR": tmp_path / "tls",
            "PUBLIC_PORT": 8471,
            "TLS": True,
            "TESTING": True,
        }
    )
    client = app.test_client()
    response = log_in(client, "alice", tokens["alice"])
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-ironcurtain_approval_8471=")
    for attribute in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/"):
        assert attribute in cookie
    assert "Domain=" not in cookie


def test_two_services_on_two_ports_use_two_cookies(
    channel: MemoryChannel, members: MembersFile, tmp_path: Path
) -> None:
    names = {
        create_app(
            {
                "CHANNEL": channel,
                "MEMBERS_FILE": members.path,
                "SESSION_DIR": tmp_path / f"s{port}",
                "PUBLIC_PORT": port,
            }
        ).config["SESSION_COOKIE_NAME"]
        for port in (8470, 8471)
    }
    assert names == {"ironcurtain_approval_8470", "ironcurtain_approval_8471"}


def test_session_files_are_named_by_digest_not_by_the_cookie(
    client: FlaskClient, tokens: dict[str, str], tmp_path: Path
) -> None:
    log_in(client, "alice", tokens["alice"])
    with client.session_transaction() as session:
        sid = session["sid"]
    names = [p.name for p in (tmp_path / "sessions").iterdir()]
    assert sid not in " ".join(names)
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in (tmp_path / "sessions").iterdir())


def test_a_decision_by_an_api_member_is_refused_for_a_second_member(
    client: FlaskClient, channel: MemoryChannel, tokens: dict[str, str]
) -> None:
    escalation = channel.create(escalation_request())
    path = f"/api/v1/escalations/{escalation.id}/approve"
    shown = {"digest": escalation.digest()}
    assert client.post(path, json=shown, headers=bearer(tokens["alice"])).status_code == 200
    second = client.post(path, json={"by": "alice", **shown}, headers=bearer(tokens["bob"]))
    assert second.status_code == 409
    assert channel.decisions[escalation.id].verdict is Verdict.APPROVED
    assert channel.decisions[escalation.id].by == "alice"
