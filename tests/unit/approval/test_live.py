"""The pending list's pages, filters and bulk deny; live updates over SSE; what the pages show
(bidi made visible, diffs, moves, hosts, the audit table). Flask's test client over the
in-memory channel and a fake subscription (the real Redis side: tests/container/approval)."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from ironcurtain.approval.events import Event, Hub, parse, patterns, stream
from ironcurtain.escalation.types import Verdict

from .conftest import MemoryChannel, bearer, csrf_of, escalation_request, log_in


@pytest.fixture
def alice(client: FlaskClient, tokens: dict[str, str]) -> FlaskClient:
    assert log_in(client, "alice", tokens["alice"]).status_code == 302
    return client


def fill(channel: MemoryChannel, n: int, **extra: Any) -> list[str]:
    return [channel.create(escalation_request(**extra), 60 + i).id for i in range(n)]


# -- pages -----------------------------------------------------------------------------------


def test_the_api_pages_through_every_pending_escalation_once(
    client: FlaskClient, channel: MemoryChannel, tokens: dict[str, str]
) -> None:
    ids = fill(channel, 23)
    seen: list[str] = []
    query: dict[str, str] = {"limit": "5", "order": "soonest"}
    for _ in range(10):
        page = client.get("/api/v1/escalations", query_string=query, headers=bearer(tokens["bob"]))
        assert page.status_code == 200
        assert page.json["total"] == 23
        assert len(page.json["escalations"]) <= 5
        seen += [e["id"] for e in page.json["escalations"]]
        if not page.json["next"]:
            break
        query = {"limit": "5", "order": "soonest", "cursor": page.json["next"]}
    assert seen == ids  # oldest deadline first: the order they were created with longer timeouts


def test_the_default_order_is_latest_deadline_first(
    client: FlaskClient, channel: MemoryChannel, tokens: dict[str, str]
) -> None:
    ids = fill(channel, 3)
    page = client.get("/api/v1/escalations", headers=bearer(tokens["bob"])).json
    assert [e["id"] for e in page["escalations"]] == ids[::-1]


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"limit": "100000"}, "limit"),
        ({"cursor": "garbage"}, "cursor"),
        ({"order": "DROP"}, "order"),
        ({"page": "3"}, "page"),
        ({"session": "*"}, "session"),
    ],
)
def test_bad_parameters_are_a_400_naming_them(
    client: FlaskClient, tokens: dict[str, str], alice: FlaskClient, query: dict[str, str],
    parameter: str,
) -> None:  # fmt: skip
    api = client.get("/api/v1/escalations", query_string=query, headers=bearer(tokens["bob"]))
    assert api.status_code == 400
    assert api.json["parameter"] == parameter
    assert api.json["error"].startswith(parameter)
    page = alice.get("/", query_string=query)
    assert page.status_code == 400
    assert parameter.encode() in page.data


def test_the_page_has_a_next_link_and_shows_the_real_total(
    alice: FlaskClient, channel: MemoryChannel
) -> None:
    fill(channel, 60)
    page = alice.get("/").data.decode()
    assert page.count("<tr data-id=") == 50
    assert "(60)" in page
    assert 'id="next-page"' in page
    link = page.split('id="next-page"')[0].rsplit('href="', 1)[1].split('"')[0]
    second = alice.get(link.replace("&amp;", "&")).data.decode()
    assert second.count("<tr data-id=") == 10
    assert 'id="next-page"' not in second
    assert 'id="first-page"' in second


def test_filters_by_session_and_worktree(
    alice: FlaskClient, channel: MemoryChannel, tokens: dict[str, str]
) -> None:
    channel.register("s1", worktree="wt-a", agent="claude-code", task="")
    channel.register("s2", worktree="wt-b", agent="claude-code", task="")
    fill(channel, 2, session_id="s1", worktree="wt-a")
    fill(channel, 3, session_id="s2", worktree="wt-b")
    get = lambda **q: alice.get("/api/v1/escalations", query_string=q).json  # noqa: E731
    assert {e["session_id"] for e in get(session="s2")["escalations"]} == {"s2"}
    assert get(session="s2")["total"] == 3
    assert {e["worktree"] for e in get(worktree="wt-a")["escalations"]} == {"wt-a"}
    assert b"wt-b" not in alice.get("/", query_string={"worktree": "wt-a"}).data


def test_bulk_deny_decides_the_checked_ones_as_the_member(
    alice: FlaskClient, channel: MemoryChannel
) -> None:
    ids = fill(channel, 3)
    csrf = csrf_of(alice.get("/").data)
    response = alice.post(
        "/escalations/deny",
        data={"id": ids[:2], "reason": "not now", "csrf_token": csrf},
    )
    assert response.status_code == 302
    assert [channel.decision(i).by for i in ids[:2]] == ["alice", "alice"]  # type: ignore[union-attr]
    assert channel.decision(ids[0]).verdict is Verdict.DENIED  # type: ignore[union-attr]
    assert channel.decision(ids[2]) is None
    assert b"Denied 2." in alice.get("/").data


def test_the_live_refetch_racing_a_deny_does_not_wipe_its_message(
    alice: FlaskClient, channel: MemoryChannel
) -> None:
    """The deny changes the pending set, so the old page's script refetches the listing with the
    cookie it had before the deny. Were that response to set the cookie again, it could land
    after the deny's and drop the flash the next page shows (seen in CI)."""
    ids = fill(channel, 2)
    csrf = csrf_of(alice.get("/").data)
    before = alice.get_cookie(alice.application.config["SESSION_COOKIE_NAME"])
    assert before is not None
    alice.post("/escalations/deny", data={"id": ids, "reason": "", "csrf_token": csrf})
    stale = alice.application.test_client()
    stale.set_cookie(before.key, before.value)
    for path in ("/api/v1/escalations", "/api/v1/whoami", "/"):
        assert "Set-Cookie" not in stale.get(path).headers, path
    assert b"Denied 2." in alice.get("/").data


@pytest.mark.parametrize(
    ("csrf", "headers"),
    [(None, {}), ("forged", {}), ("right", {"Sec-Fetch-Site": "cross-site"})],
)
def test_a_forged_bulk_deny_decides_nothing(
    alice: FlaskClient, channel: MemoryChannel, csrf: str | None, headers: dict[str, str]
) -> None:
    ids = fill(channel, 2)
    right = csrf_of(alice.get("/").data)
    data: dict[str, Any] = {"id": ids}
    if csrf is not None:
        data["csrf_token"] = right if csrf == "right" else csrf
    assert alice.post("/escalations/deny", data=data, headers=headers).status_code == 403
    assert all(channel.decision(i) is None for i in ids)


def test_bidi_and_zero_width_characters_are_made_visible(
    alice: FlaskClient, channel: MemoryChannel
) -> None:
    e = channel.create(
        escalation_request(
            rule="rule\u202egnp.exe",
            arguments={"path": "/work/a\u200b.py", "content": "x\u2066y"},
            paths=("/work/a\u200b.py",),
        )
    )
    for page in (alice.get("/").data, alice.get(f"/escalations/{e.id}").data):
        text = page.decode()
        assert "\u202e" not in text
        assert "\u200b" not in text
        assert "\u2066" not in text
        assert "\\u202e" in text
        assert "\\u200b" in text
    listing = alice.get("/api/v1/escalations").json["escalations"][0]
    assert listing["shown"]["rule"] == "rule\\u202egnp.exe"
    assert listing["rule"] == "rule\u202egnp.exe"  # the API keeps the raw value for the CLI


def test_times_carry_their_zone_and_the_auto_reviewer_is_shown(
    alice: FlaskClient, channel: MemoryChannel
) -> None:
    e = channel.create(escalation_request())
    channel.reviewed.add("s1")
    row = alice.get("/api/v1/escalations").json["escalations"][0]
    assert row["auto_review"] is True
    assert row["shown"]["deadline"][-6:-3] in ("+00", "-00") or ":" in row["shown"]["deadline"][-3:]
    page = alice.get(f"/escalations/{e.id}").data
    assert b'id="auto-review">on' in page


# -- the detail page ---------------------------------------------------------------------------


def test_an_edit_shows_its_own_diff_honestly(alice: FlaskClient, channel: MemoryChannel) -> None:
    e = channel.create(
        escalation_request(
            tool="edit_file",
            arguments={
                "path": "/work/a.py",
                "edits": [{"oldText": "a = 1\n", "newText": "a = 2\n"}],
            },
        )
    )
    page = alice.get(f"/escalations/{e.id}").data.decode()
    assert '<span class="del">-a = 1</span>' in page
    assert '<span class="add">+a = 2</span>' in page
    assert "cannot read the file" in page


def test_a_move_shows_before_and_after_and_a_fetch_its_host(
    alice: FlaskClient, channel: MemoryChannel
) -> None:
    move = channel.create(
        escalation_request(tool="move_file", arguments={"source": "/w/a", "destination": "/w/b"})
    )
    page = alice.get(f"/escalations/{move.id}").data.decode()
    assert "<th>Before</th><td><code>/w/a</code>" in page
    assert "<th>After</th><td><code>/w/b</code>" in page
    fetch = channel.create(
        escalation_request(
            server="fetch", tool="fetch", arguments={"url": "https://ok.example@evil.example/x"},
            paths=(),
        )
    )  # fmt: skip
    page = alice.get(f"/escalations/{fetch.id}").data.decode()
    assert '<strong class="host">evil.example</strong>' in page


def test_recent_audit_lines_are_a_table_not_a_dump(
    alice: FlaskClient, channel: MemoryChannel
) -> None:
    e = channel.create(
        escalation_request(
            recent_audit=(
                '{"time": 1764748800, "event": "decision", "tool": "read_file", '
                '"effect": "allow", "rule": "reads", "reason": "ok", "call": "c1"}',
                "not json \u202e",
            )
        )
    )
    page = alice.get(f"/escalations/{e.id}").data.decode()
    assert '<table id="audit">' in page
    assert "<td>decision</td><td>read_file</td><td>allow</td><td>reads</td>" in page
    assert "not json \\u202e" in page


# -- live updates ------------------------------------------------------------------------------


def test_keyspace_notifications_become_events_and_nothing_else_does() -> None:
    assert patterns(0) == (
        "__keyspace@0__:ironcurtain:esc:s:*:pending",
        "__keyspace@0__:ironcurtain:esc:s:*:decision:*",
        "__keyspace@0__:ironcurtain:esc:s:*:review:*",
    )
    assert parse(b"__keyspace@0__:ironcurtain:esc:s:s1:pending", 0) == Event("pending", "s1")
    assert parse(b"__keyspace@0__:ironcurtain:esc:s:s1:review:s1.0123456789abcdef", 0) == Event(
        "decided", "s1", "s1.0123456789abcdef"
    )
    assert parse(b"__keyspace@0__:ironcurtain:esc:s:s1:decision:s1.0123456789abcdef", 0) == Event(
        "decided", "s1", "s1.0123456789abcdef"
    )
    for forged in (
        b"__keyspace@0__:ironcurtain:esc:s:s1:decision:s2.0123456789abcdef",  # another session
        b"__keyspace@0__:ironcurtain:esc:s:s1:record:s1.0123456789abcdef",
        b"__keyspace@0__:ironcurtain:esc:s:s1:review:",
        b"__keyspace@0__:ironcurtain:esc:s:s1:reviewer:s1.0123456789abcdef",
        b"__keyspace@1__:ironcurtain:esc:s:s1:pending",
        b"ironcurtain:esc:s:s1:notices",
        b"__keyspace@0__:ironcurtain:esc:s:s*:pending",
    ):
        assert parse(forged, 0) is None


def chunks(response: Any) -> Any:
    for chunk in response.response:
        yield chunk.decode() if isinstance(chunk, bytes) else chunk


def test_a_new_escalation_reaches_an_open_stream(
    app: Flask, alice: FlaskClient, messages: queue.SimpleQueue[dict[str, Any]]
) -> None:
    app.config["SSE_HEARTBEAT_S"] = 0.05
    response = alice.get("/api/v1/events", buffered=False)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    body = chunks(response)
    assert next(body).startswith("retry:")
    started = time.monotonic()
    messages.put({"type": "pmessage", "channel": b"__keyspace@0__:ironcurtain:esc:s:s1:pending"})
    for text in body:
        if "event: pending" in text:
            break
    assert time.monotonic() - started < 1.0
    assert '"session": "s1"' in text
    response.close()


def test_the_stream_needs_a_login_and_ends_with_it(
    app: Flask, client: FlaskClient, tokens: dict[str, str], members: Any
) -> None:
    assert client.get("/api/v1/events").status_code == 401
    assert log_in(client, "alice", tokens["alice"]).status_code == 302
    app.config["SSE_HEARTBEAT_S"] = 0.02
    response = client.get("/api/v1/events", buffered=False)
    body = chunks(response)
    next(body)
    members.remove("alice")
    list(body)  # ends at the next heartbeat: the member is gone (else this would not return)
    response.close()


def test_the_stream_refuses_parameters_and_is_bounded(
    app: Flask, alice: FlaskClient, hub: Hub
) -> None:
    assert alice.get("/api/v1/events?x=1").status_code == 400
    app.config["SSE_LIFETIME_S"] = 30
    open_streams = [alice.get("/api/v1/events", buffered=False) for _ in range(2)]
    full = alice.get("/api/v1/events")
    assert full.status_code == 503
    assert full.headers["Retry-After"]
    for response in reversed(open_streams):
        response.close()
    again = alice.get("/api/v1/events", buffered=False)  # a slot is free again
    assert again.status_code == 200
    again.close()


def test_a_stream_ends_at_its_lifetime_and_beats_meanwhile() -> None:
    hub = Hub(lambda: None, slots=1)
    listener: queue.SimpleQueue[Event] = queue.SimpleQueue()
    now = [0.0]

    def clock() -> float:
        now[0] += 0.4
        return now[0]

    text = list(
        stream(hub, listener, allowed=lambda: True, heartbeat_s=0.01, lifetime_s=2, clock=clock)
    )
    assert text[0].startswith("retry:")
    assert ": ping\n\n" in text
    threading.Event().wait(0)  # nothing left running: the generator returned
