"""The approval service with Flask's test client over our real Redis: pages, API, auth, CSRF,
headers and escaping. Every refusal has a control that succeeds with the right credentials."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from ironcurtain.approval.app import create_app
from ironcurtain.escalation import redis_keys
from ironcurtain.escalation.channel import Channel, connect
from ironcurtain.escalation.types import EscalationRequest, Verdict

from ..approvalconfig import approval_config, csrf_of
from ..approvalconfig import log_in as log_in_as
from ..redisserver import RedisServer, free_port

TOKEN = "t" * 43  # alice's
BOB = "b" * 43
HOSTILE = "<script>alert('pwned')</script>"


def request(session: str = "s1", **extra: Any) -> EscalationRequest:
    fields: dict[str, Any] = {
        "session_id": session,
        "worktree": "wt-main",
        "agent": "claude-code",
        "server": "filesystem",
        "tool": "write_file",
        "arguments": {"path": "/work/src/a.py", "content": HOSTILE},
        "rule": "writes-need-a-human",
        "reason": "writes need a human",
        "task": f"task {HOSTILE}",
        "paths": ("/work/src/a.py",),
        "recent_audit": ('{"event":"call","tool":"read_file"}',),
        **extra,
    }
    return EscalationRequest(**fields)


LISTED = ("s1", "s2", "s3", "late-session")  # the sessions these tests escalate for


@pytest.fixture
def channel(team_redis: RedisServer) -> Iterator[Channel]:
    admin = connect(team_redis.url, team_redis.admin_file, ca_file=team_redis.ca_file)
    admin.flushdb()
    admin.zadd(redis_keys.OPEN, dict.fromkeys(LISTED, 0))  # as `ironcurtain run` makes them
    admin.close()
    client = connect(
        team_redis.url, team_redis.approval_file, ca_file=team_redis.ca_file
    )  # the service's own user
    yield Channel(client)
    client.close()


def config(channel: Channel, tmp_path: Path) -> dict[str, Any]:
    return approval_config(channel, tmp_path, {"alice": TOKEN, "bob": BOB})


@pytest.fixture
def app(channel: Channel, tmp_path: Path) -> Flask:
    return create_app({**config(channel, tmp_path), "TESTING": True})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def log_in(client: FlaskClient, token: str = TOKEN, name: str = "alice") -> Any:
    return log_in_as(client, token, name)


def test_a_decision_through_the_api_names_the_tokens_member_on_real_redis(
    client: FlaskClient, channel: Channel
) -> None:
    escalation = channel.create(request(), 30)
    response = client.post(
        f"/api/v1/escalations/{escalation.id}/deny",
        headers=bearer(BOB),
        json={"reason": "no", "by": "someone-else"},
    )
    assert response.status_code == 200
    decision = channel.decision(escalation.id)
    assert decision is not None
    assert (decision.by, decision.verdict) == ("bob", Verdict.DENIED)
    assert [h.decision.by for h in channel.history()] == ["bob"]


@pytest.fixture
def browser(client: FlaskClient) -> FlaskClient:
    assert log_in(client).status_code == 302
    return client


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- authentication ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/history", "/sessions", "/escalations/x"])
def test_pages_need_a_login(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/escalations"),
        ("GET", "/api/v1/history"),
        ("GET", "/api/v1/sessions"),
        ("POST", "/api/v1/escalations/x/approve"),
        ("DELETE", "/api/v1/sessions/s1/remembered/x"),
    ],
)
@pytest.mark.parametrize("headers", [{}, bearer("w" * 40), {"Authorization": TOKEN}])
def test_the_api_refuses_a_missing_or_wrong_token(
    client: FlaskClient, method: str, path: str, headers: dict[str, str]
) -> None:
    response = client.open(path, method=method, headers=headers, json={})
    assert response.status_code == 401
    assert response.is_json


def test_the_api_answers_the_right_token(client: FlaskClient, channel: Channel) -> None:
    channel.create(request(), 30)
    response = client.get("/api/v1/escalations", headers=bearer())
    assert response.status_code == 200
    assert len(response.json["escalations"]) == 1


def test_a_wrong_token_does_not_log_in(client: FlaskClient) -> None:
    response = log_in(client, token="w" * 40)
    assert response.status_code == 403
    assert b"do not match a member" in response.data
    assert client.get("/").status_code == 302


def test_logging_in_sets_an_httponly_samesite_strict_cookie(client: FlaskClient) -> None:
    response = log_in(client)
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert client.get("/").status_code == 200


def test_login_does_not_redirect_off_site(client: FlaskClient) -> None:
    csrf = csrf_of(client.get("/login").data)
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        response = client.post(
            "/login",
            query_string={"next": target},
            data={"name": "alice", "token": TOKEN, "csrf_token": csrf},
        )
        assert response.headers["Location"] == "/"
        csrf = csrf_of(client.get("/login").data)


def test_a_browser_session_cannot_change_state_through_the_api(
    browser: FlaskClient, channel: Channel
) -> None:
    escalation = channel.create(request(), 30)
    response = browser.post(f"/api/v1/escalations/{escalation.id}/approve", json={})
    assert response.status_code == 401
    assert channel.decision(escalation.id) is None
    assert browser.get("/api/v1/escalations").status_code == 200  # reading is fine


# -- CSRF ------------------------------------------------------------------------------------


def digest_of(page: bytes) -> str:
    found = re.search(rb'name="digest" value="([0-9a-f]{64})"', page)
    assert found, "no digest in the page's form"
    return found.group(1).decode()


def decide_form(browser: FlaskClient, escalation_id: str, **fields: str) -> Any:
    return browser.post(f"/escalations/{escalation_id}/decide", data=fields)


def test_a_form_decision_with_the_csrf_token_is_recorded(
    browser: FlaskClient, channel: Channel
) -> None:
    escalation = channel.create(request(), 30)
    page = browser.get(f"/escalations/{escalation.id}").data
    response = decide_form(
        browser, escalation.id, action="deny", reason="no", csrf_token=csrf_of(page),
        digest=digest_of(page),
    )  # fmt: skip
    assert response.status_code == 302
    decision = channel.decision(escalation.id)
    assert decision is not None
    assert (decision.verdict, decision.by, decision.reason) == (Verdict.DENIED, "alice", "no")
    assert b"Recorded: denied by alice" in browser.get(response.headers["Location"]).data


@pytest.mark.parametrize(
    ("fields", "headers"),
    [
        ({}, {}),  # no CSRF token
        ({"csrf_token": "forged"}, {}),  # a wrong one
        ("right", {"Origin": "https://evil.example"}),  # cross-site, even with the token
        ("right", {"Origin": "null"}),
        ("right", {"Sec-Fetch-Site": "cross-site"}),
        ("right", {"Sec-Fetch-Site": "same-site"}),
    ],
)
def test_a_forged_or_cross_site_form_post_is_refused(
    browser: FlaskClient, channel: Channel, fields: Any, headers: dict[str, str]
) -> None:
    escalation = channel.create(request(), 30)
    csrf = csrf_of(browser.get(f"/escalations/{escalation.id}").data)
    data = {"action": "approve", **({"csrf_token": csrf} if fields == "right" else fields)}
    response = browser.post(f"/escalations/{escalation.id}/decide", data=data, headers=headers)
    assert response.status_code == 403
    assert channel.decision(escalation.id) is None


def test_a_login_post_without_csrf_is_refused(client: FlaskClient) -> None:
    client.get("/login")
    assert client.post("/login", data={"token": TOKEN}).status_code == 403


def test_logout_needs_csrf_too(browser: FlaskClient) -> None:
    assert browser.post("/logout").status_code == 403
    assert browser.get("/").status_code == 200
    csrf = csrf_of(browser.get("/").data)
    assert browser.post("/logout", data={"csrf_token": csrf}).status_code == 302
    assert browser.get("/").status_code == 302


# -- deciding ------------------------------------------------------------------------------


def test_a_second_decision_is_refused_and_shown_as_such(
    browser: FlaskClient, client: FlaskClient, channel: Channel
) -> None:
    escalation = channel.create(request(), 30)
    first = client.post(
        f"/api/v1/escalations/{escalation.id}/approve",
        headers=bearer(),
        json={"reason": "fine", "by": "bob", "digest": escalation.digest()},  # `by` ignored
    )
    assert first.status_code == 200
    assert first.json["outcome"] == "decided"
    second = client.post(f"/api/v1/escalations/{escalation.id}/deny", headers=bearer(), json={})
    assert second.status_code == 409
    assert second.json["outcome"] == "already"
    assert second.json["decision"]["verdict"] == "approved"
    page = browser.get(f"/escalations/{escalation.id}").data
    assert b"approved</strong> by alice" in page
    assert b'id="decide"' not in page


def test_approve_and_remember_through_the_api_keeps_the_offered_scope(
    client: FlaskClient, channel: Channel
) -> None:
    channel.register("s1", worktree="wt", agent="scripted", task="")  # as `ironcurtain run` does
    escalation = channel.create(request(), 30)
    details = client.get(f"/api/v1/escalations/{escalation.id}", headers=bearer()).json
    prefix = next(c for c in details["choices"] if c["kind"] == "prefix")
    response = client.post(
        f"/api/v1/escalations/{escalation.id}/approve",
        headers=bearer(),
        json={"remember": prefix["id"], "digest": details["escalation"]["digest"]},
    )
    assert response.status_code == 200
    assert [s.value for s in channel.remembered("s1")] == ["/work/src"]
    sessions = client.get("/api/v1/sessions", headers=bearer()).json["sessions"]
    assert sessions[0]["remembered"][0]["id"] == prefix["id"]
    revoked = client.delete(f"/api/v1/sessions/s1/remembered/{prefix['id']}", headers=bearer())
    assert revoked.status_code == 200
    assert channel.remembered("s1") == []


@pytest.mark.parametrize(
    ("action", "remember"), [("approve", "not-an-offered-scope"), ("deny", "anything")]
)
def test_a_scope_that_was_not_offered_or_on_a_denial_is_refused(
    client: FlaskClient, channel: Channel, action: str, remember: str
) -> None:
    escalation = channel.create(request(), 30)
    response = client.post(
        f"/api/v1/escalations/{escalation.id}/{action}",
        headers=bearer(),
        json={"remember": remember, "digest": escalation.digest()},
    )
    assert response.status_code == 400
    assert channel.decision(escalation.id) is None


def test_remembered_approvals_are_shown_and_revocable_in_the_ui(
    browser: FlaskClient, channel: Channel
) -> None:
    escalation = channel.create(request(), 30)
    page = browser.get(f"/escalations/{escalation.id}").data
    scope_id = re.findall(rb'name="remember" value="([0-9a-f]+)"', page)[0].decode()
    decide_form(
        browser, escalation.id, action="approve", remember=scope_id, csrf_token=csrf_of(page),
        digest=digest_of(page),
    )  # fmt: skip
    sessions = browser.get("/sessions").data
    assert b"paths under /work/src/" in sessions
    response = browser.post(
        "/sessions/s1/revoke", data={"scope": scope_id, "csrf_token": csrf_of(sessions)}
    )
    assert response.status_code == 302
    assert channel.remembered("s1") == []


# -- pages and escaping --------------------------------------------------------------------


def test_pending_is_newest_first_across_sessions(browser: FlaskClient, channel: Channel) -> None:
    older = channel.create(request(session="s1"), 30)
    newer = channel.create(request(session="s2"), 30)
    page = browser.get("/").data.decode()
    assert page.index(newer.id) < page.index(older.id)
    api = browser.get("/api/v1/escalations").json["escalations"]
    assert [e["id"] for e in api] == [newer.id, older.id]


@pytest.mark.parametrize(
    "where", ["arguments", "task", "rule", "reason", "worktree", "paths", "recent_audit"]
)
def test_hostile_text_renders_inert_on_every_page(
    browser: FlaskClient, channel: Channel, where: str
) -> None:
    value: Any = {
        "arguments": {HOSTILE: HOSTILE},
        "paths": (HOSTILE,),
        "recent_audit": (HOSTILE,),
    }.get(where, HOSTILE)
    escalation = channel.create(request(**{where: value}), 30)
    pages = [browser.get("/"), browser.get(f"/escalations/{escalation.id}")]
    channel.decide(escalation.id, Verdict.DENIED, by="alice", reason=HOSTILE)
    pages += [browser.get("/history"), browser.get("/sessions")]
    for response in pages:
        assert response.status_code == 200
        assert b"<script>alert" not in response.data
    assert b"&lt;script&gt;alert(" in pages[1].data


def test_the_escalation_page_shows_the_full_context(browser: FlaskClient, channel: Channel) -> None:
    escalation = channel.create(request(), 30)
    page = browser.get(f"/escalations/{escalation.id}").data
    for text in (b"filesystem__write_file", b"writes-need-a-human", b"task &lt;script&gt;"):
        assert text in page
    assert b"<td>call</td><td>read_file</td>" in page  # the recent audit line, as a table row
    assert b"/work/src/a.py" in page


def test_history_filters_by_verdict_and_session(browser: FlaskClient, channel: Channel) -> None:
    for session, verdict in (("s1", Verdict.APPROVED), ("s2", Verdict.DENIED)):
        escalation = channel.create(request(session=session), 30)
        channel.decide(escalation.id, verdict, by="alice", reason=f"why-{session}")
    page = browser.get("/history", query_string={"verdict": "denied"}).data
    assert b"why-s2" in page
    assert b"why-s1" not in page
    page = browser.get("/history", query_string={"session": "s1"}).data
    assert b"why-s1" in page
    assert b"why-s2" not in page


# -- headers -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/login", "/", "/escalations/nope", "/api/v1/escalations"])
def test_every_answer_carries_the_strict_security_headers(browser: FlaskClient, path: str) -> None:
    response = browser.get(path)
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_no_page_carries_an_inline_script(browser: FlaskClient, channel: Channel) -> None:
    escalation = channel.create(request(), 30)
    for path in ("/login", "/", f"/escalations/{escalation.id}", "/history", "/sessions"):
        scripts = re.findall(rb"<script[^>]*>", browser.get(path).data)
        assert all(b"src=" in tag for tag in scripts), path


# -- Redis down ----------------------------------------------------------------------------


def test_with_redis_down_the_service_says_so_and_decides_nothing(tmp_path: Path) -> None:
    down = Channel(redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1))
    client = create_app(config(down, tmp_path)).test_client()
    response = client.post(
        "/api/v1/escalations/s1.0123456789abcdef/approve",
        headers=bearer(),
        json={"digest": "0" * 64},
    )
    assert response.status_code == 503
    assert "unreachable" in response.json["error"]
    assert client.get("/healthz").status_code == 503
