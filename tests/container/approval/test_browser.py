"""Real gunicorn, real Redis, real headless Chromium: a human logs in, sees an escalation arrive
without reloading, approves it, and the waiting escalate() call resumes with APPROVED. Forged
cross-site posts, missing CSRF tokens, wrong tokens and hostile arguments each fail safely. People:
logout and `member remove` end a session (a copied cookie too), `next` stays on our origin, the
cookie is host-only and named for the port."""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from ironcurtain.escalation import redis_keys
from ironcurtain.escalation.channel import Channel, connect
from ironcurtain.escalation.escalator import RedisEscalator
from ironcurtain.escalation.types import EscalationRequest, Verdict
from ironcurtain.people.members import MembersFile

from ..redisserver import RedisServer, free_port

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HOSTILE = "<script>alert('pwned')</script><img src=x onerror=alert(2)>"


def request(**extra: Any) -> EscalationRequest:
    fields: dict[str, Any] = {
        "session_id": "browser-session",
        "worktree": "wt-main",
        "agent": "claude-code",
        "server": "filesystem",
        "tool": "write_file",
        "arguments": {"path": "/work/src/a.py", "content": HOSTILE},
        "rule": "writes-need-a-human",
        "reason": "writes need a human",
        "task": "fix the failing test",
        "paths": ("/work/src/a.py",),
        **extra,
    }
    return EscalationRequest(**fields)


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            threading.Event().wait(0.1)  # a bounded back-off between health probes
    raise TimeoutError(f"gunicorn at {url} not healthy within {timeout_s}s")


LISTED = ("browser-session", "page-session", "late-session")  # the sessions escalating here


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> MembersFile:
    return MembersFile(tmp_path_factory.mktemp("people") / "members.json")


@pytest.fixture(scope="module")
def service(
    team_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory, members: MembersFile
) -> Iterator[tuple[str, str]]:
    """gunicorn with our config (two workers: sessions must hold across them); yields (base url,
    alice's token)."""
    state = tmp_path_factory.mktemp("state")
    token = members.add("alice")
    port = free_port()
    env = {
        **os.environ,
        "IRONCURTAIN_APPROVAL_BIND": f"127.0.0.1:{port}",
        "IRONCURTAIN_APPROVAL_PORT": str(port),
        "IRONCURTAIN_APPROVAL_WORKERS": "2",
        "IRONCURTAIN_REDIS_URL": team_redis.url,
        "IRONCURTAIN_REDIS_CREDENTIAL_FILE": str(team_redis.approval_file),
        "IRONCURTAIN_REDIS_CA_FILE": str(team_redis.ca_file),
        "IRONCURTAIN_APPROVAL_MEMBERS_FILE": str(members.path),
        "IRONCURTAIN_APPROVAL_SESSION_DIR": str(state / "web-sessions"),
    }
    gunicorn = Path(sys.executable).with_name("gunicorn")
    log = (state / "gunicorn.log").open("wb")
    process = subprocess.Popen(
        [str(gunicorn), "-c", "python:ironcurtain.approval.gunicorn_conf"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        yield url, token
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()
        if sys.exc_info()[0] is not None:
            print((state / "gunicorn.log").read_text())


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.fail(f"no Chromium at {CHROMIUM}; `make test` installs it (scripts/browser.sh)")
    with sync_playwright() as playwright:
        found = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        yield found
        found.close()


@pytest.fixture
def channel(team_redis: RedisServer) -> Iterator[Channel]:
    admin = connect(team_redis.url, team_redis.admin_file, ca_file=team_redis.ca_file)
    admin.flushdb()
    admin.zadd(redis_keys.OPEN, dict.fromkeys(LISTED, 0))  # as `ironcurtain run` makes them
    admin.close()
    client = connect(team_redis.url, team_redis.approval_file, ca_file=team_redis.ca_file)
    yield Channel(client)
    client.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    found = context.new_page()
    found.set_default_timeout(10_000)
    dialogs: list[str] = []
    found.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    found.dialogs = dialogs  # type: ignore[attr-defined]
    yield found
    context.close()
    assert dialogs == [], f"a script ran in the page: {dialogs}"


def log_in(page: Page, url: str, token: str, name: str = "alice") -> None:
    page.goto(f"{url}/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_contain_text("Pending escalations")


def escalate_in_thread(escalator: RedisEscalator, timeout_s: float = 60) -> Any:
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(asyncio.run, escalator.escalate(request(), timeout_s))
    pool.shutdown(wait=False)
    return future


def test_a_human_sees_it_arrive_live_clicks_approve_and_the_call_resumes(
    service: tuple[str, str], team_redis: RedisServer, page: Page, channel: Channel
) -> None:
    url, token = service
    log_in(page, url, token)
    expect(page.locator("#pending-rows")).to_contain_text("Nothing is waiting.")
    loaded = page.evaluate("performance.timeOrigin")

    escalator = RedisEscalator.connect(
        team_redis.url, team_redis.session_file("browser-session"), ca_file=team_redis.ca_file
    )
    try:
        waiting = escalate_in_thread(escalator)
        row = page.locator("#pending-rows tr[data-id]")
        expect(row).to_have_count(1)  # appeared without a reload:
        assert page.evaluate("performance.timeOrigin") == loaded
        expect(row).to_contain_text("filesystem__write_file")
        row.locator("a").click()

        expect(page.locator("#arguments")).to_contain_text("<script>alert('pwned')</script>")
        page.fill("input[name=reason]", "reviewed in the browser")
        page.click("#approve")
        expect(page.locator(".flash")).to_contain_text("Recorded: approved by alice")

        outcome = waiting.result(timeout=10)
        assert outcome.verdict is Verdict.APPROVED
        assert outcome.decided_by == "alice"
        assert "reviewed in the browser" in outcome.message
        page.goto(url)
        expect(page.locator("#pending-rows")).to_contain_text("Nothing is waiting.")
    finally:
        escalator.close()


def test_a_wrong_token_does_not_log_the_browser_in(service: tuple[str, str], page: Page) -> None:
    url, _ = service
    page.goto(f"{url}/login")
    page.fill("input[name=name]", "alice")
    page.fill("input[name=token]", "w" * 43)
    page.click("button[type=submit]")
    expect(page.locator(".flash")).to_contain_text("do not match a member")
    page.goto(url)
    assert page.url.startswith(f"{url}/login")


def test_a_post_without_the_csrf_token_is_refused(
    service: tuple[str, str], page: Page, channel: Channel
) -> None:
    url, token = service
    log_in(page, url, token)
    escalation = channel.create(request(), 60)
    status = page.evaluate(
        """async (path) => {
            const body = new URLSearchParams({action: "approve"});
            const response = await fetch(path, {method: "POST", body, redirect: "manual"});
            return response.status;
        }""",
        f"/escalations/{escalation.id}/decide",
    )
    assert status == 403
    assert channel.decision(escalation.id) is None


def test_a_forged_cross_site_post_decides_nothing(
    service: tuple[str, str], page: Page, channel: Channel
) -> None:
    url, token = service
    log_in(page, url, token)
    escalation = channel.create(request(), 60)
    target = f"{url}/escalations/{escalation.id}/decide"
    evil = (
        f'<form id="f" method="post" action="{target}">'
        '<input name="action" value="approve"><input name="csrf_token" value="guess"></form>'
        '<script>document.getElementById("f").submit()</script>'
    ).encode()

    class Evil(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(evil)

        def log_message(self, *args: object) -> None:
            pass

    attacker = http.server.HTTPServer(("127.0.0.1", 0), Evil)
    serving = threading.Thread(target=attacker.serve_forever, daemon=True)
    serving.start()
    try:
        # "localhost" is another site than "127.0.0.1": a real cross-site origin.
        with page.expect_navigation(url=lambda u: u.startswith(url)) as landed:
            page.goto(f"http://localhost:{attacker.server_port}/")
        response = landed.value
        assert response is not None
        assert response.status in (302, 403) or page.url.startswith(f"{url}/login")
    finally:
        attacker.shutdown()
        attacker.server_close()
    assert channel.decision(escalation.id) is None
    # Control: the same human, on the real page, can decide it.
    page.goto(f"{url}/escalations/{escalation.id}")
    page.click("#deny")
    expect(page.locator(".flash")).to_contain_text("Recorded: denied by alice")


def test_hostile_arguments_render_as_text_and_never_run(
    service: tuple[str, str], page: Page, channel: Channel
) -> None:
    url, token = service
    log_in(page, url, token)
    escalation = channel.create(request(rule=HOSTILE, reason=HOSTILE, task=HOSTILE), 60)
    expect(page.locator("#pending-rows")).to_contain_text(HOSTILE)  # the live script's rows
    page.goto(f"{url}/escalations/{escalation.id}")
    expect(page.locator("#arguments")).to_contain_text(HOSTILE)
    assert page.locator("main script, main img").count() == 0
    assert page.dialogs == []  # type: ignore[attr-defined]


def test_a_forged_record_is_shown_invalid_in_the_browser_and_offers_no_decision(
    service: tuple[str, str], team_redis: RedisServer, page: Page, channel: Channel
) -> None:
    url, token = service
    genuine = channel.create(request(), 60)
    forger = connect(
        team_redis.url, team_redis.session_file("forger-session"), ca_file=team_redis.ca_file
    )
    forged = "forger-session.0123456789abcdef"
    try:
        forger.set(
            redis_keys.record(forged), "{}"
        )  # the record that once broke the page for everyone
        forger.zadd(redis_keys.pending("forger-session"), {forged: time.time()})
    finally:
        forger.close()
    log_in(page, url, token)
    expect(page.locator(f'#pending-rows tr[data-id="{forged}"]')).to_contain_text(
        "(invalid record)"
    )
    expect(page.locator(f'#pending-rows tr[data-id="{genuine.id}"]')).to_contain_text(
        "filesystem__write_file"
    )
    page.goto(f"{url}/escalations/{forged}")
    expect(page.locator("#invalid")).to_contain_text("cannot be approved")
    expect(page.locator("#approve")).to_have_count(0)


# -- people ---------------------------------------------------------------------------------


def decide_with_cookies_of(page: Page, escalation_id: str) -> str:
    """A form post from `page`'s context, with the CSRF token its cookie holds (read from a page
    fetched while it was still logged in, as a thief of the cookie would have it)."""
    return page.evaluate(
        """async ([path, csrf]) => {
            const body = new URLSearchParams({action: "approve", csrf_token: csrf});
            const response = await fetch(path, {method: "POST", body});
            return new URL(response.url).pathname;
        }""",
        [
            f"/escalations/{escalation_id}/decide",
            page.locator("input[name=csrf_token]").first.get_attribute("value"),
        ],
    )


def test_after_logout_a_copied_cookie_decides_nothing(
    service: tuple[str, str], browser: Browser, page: Page, channel: Channel
) -> None:
    url, token = service
    log_in(page, url, token)
    escalation = channel.create(request(), 60)
    thief = browser.new_context()
    try:
        thief.add_cookies(page.context.cookies())
        stolen = thief.new_page()
        stolen.goto(f"{url}/escalations/{escalation.id}")
        expect(stolen.locator("#approve")).to_be_visible()  # control: the copy works before
        page.click("header button[type=submit]")  # log out
        expect(page.locator("h1")).to_contain_text("Log in")
        assert decide_with_cookies_of(stolen, escalation.id) == "/login"
        stolen.goto(f"{url}/escalations/{escalation.id}")
        assert stolen.url.startswith(f"{url}/login")
    finally:
        thief.close()
    assert channel.decision(escalation.id) is None


def test_removing_a_member_logs_their_browser_out_at_once(
    service: tuple[str, str], page: Page, channel: Channel, members: MembersFile
) -> None:
    url, _ = service
    carol = members.add("carol")
    log_in(page, url, carol, name="carol")
    escalation = channel.create(request(), 60)
    page.goto(f"{url}/escalations/{escalation.id}")
    members.remove("carol")
    page.click("#approve")
    assert page.url.startswith(f"{url}/login")
    assert channel.decision(escalation.id) is None
    for _ in range(4):  # whichever of the two workers answers
        page.goto(url)
        assert page.url.startswith(f"{url}/login")


@pytest.mark.parametrize(
    "target", ["//example.com", "/%09/example.com", "/%5Cexample.com", "https://example.com"]
)
def test_login_never_leaves_our_origin_whatever_next_says(
    service: tuple[str, str], page: Page, target: str
) -> None:
    url, token = service
    page.goto(f"{url}/login?next={urllib.parse.quote(target, safe='')}")
    page.fill("input[name=name]", "alice")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_contain_text("Pending escalations")
    assert page.url == f"{url}/"


def test_login_returns_to_the_page_that_asked_for_it(service: tuple[str, str], page: Page) -> None:
    url, token = service
    page.goto(f"{url}/history")
    assert page.url.startswith(f"{url}/login")
    page.fill("input[name=name]", "alice")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    assert page.url == f"{url}/history"


def test_the_cookie_is_host_only_strict_httponly_and_named_for_the_port(
    service: tuple[str, str], page: Page
) -> None:
    url, token = service
    log_in(page, url, token)
    port = urllib.parse.urlsplit(url).port
    (cookie,) = page.context.cookies()
    assert cookie["name"] == f"ironcurtain_approval_{port}"
    assert (cookie["domain"], cookie["path"]) == ("127.0.0.1", "/")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"


def test_an_app_on_another_host_name_never_receives_the_cookie(
    service: tuple[str, str], page: Page
) -> None:
    url, token = service
    log_in(page, url, token)
    seen: dict[str, list[str]] = {}  # host name -> the Cookie headers it was sent

    class Echo(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            host = self.headers.get("Host", "").rsplit(":", 1)[0]
            seen.setdefault(host, []).append(self.headers.get("Cookie", ""))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"other app")

        def log_message(self, *args: object) -> None:
            pass

    other = http.server.HTTPServer(("127.0.0.1", 0), Echo)
    serving = threading.Thread(target=other.serve_forever, daemon=True)
    serving.start()
    try:
        page.goto(f"http://localhost:{other.server_port}/")
        page.goto(f"http://127.0.0.1:{other.server_port}/")  # the same host name, another port
    finally:
        other.shutdown()
        other.server_close()
    assert seen["localhost"]
    assert all(c == "" for c in seen["localhost"])  # host-only: another name never gets it
    # Browsers do not isolate ports (RFC 6265 8.5): the same host name on another port is sent
    # the cookie. docs/approval.md says what that means and how to give the UI its own host.
    assert any("ironcurtain_approval_" in c for c in seen["127.0.0.1"]), seen


# -- the pending list for daily use ----------------------------------------------------------


def fill(team_redis: RedisServer, n: int, session: str = "page-session") -> list[str]:
    """n pending escalations of one session, written as its proxy writes them (one pipeline)."""
    client = connect(team_redis.url, team_redis.session_file(session), ca_file=team_redis.ca_file)
    channel = Channel(client)
    try:
        return [
            channel.create(request(session_id=session, paths=(f"/work/f{i}.py",)), 600 + i).id
            for i in range(n)
        ]
    finally:
        client.close()


def test_pagination_reaches_every_pending_escalation_in_deadline_order(
    service: tuple[str, str], team_redis: RedisServer, page: Page, channel: Channel
) -> None:
    ids = fill(team_redis, 120)
    url, token = service
    log_in(page, url, token)
    expect(page.locator("#count")).to_have_text("(120)")
    page.select_option("select[name=order]", "soonest")
    page.click("#filters button[type=submit]")
    seen: list[str] = []
    for _ in range(5):
        rows = page.locator("#pending-rows tr[data-id]")
        expect(rows.first).to_be_visible()
        seen += [rows.nth(i).get_attribute("data-id") or "" for i in range(rows.count())]
        if page.locator("#next-page").count() == 0:
            break
        page.click("#next-page")
    assert seen == ids  # each once, the oldest deadline first


def test_a_new_escalation_is_pushed_to_an_open_page_within_a_second(
    service: tuple[str, str], team_redis: RedisServer, page: Page, channel: Channel
) -> None:
    fill(team_redis, 30)
    url, token = service
    log_in(page, url, token)
    expect(page.locator("#live-status")).to_have_text("Updates live.")
    loaded = page.evaluate("performance.timeOrigin")
    (new,) = fill(team_redis, 1, session="late-session")
    expect(page.locator(f'#pending-rows tr[data-id="{new}"]')).to_have_count(1, timeout=2000)
    assert page.evaluate("performance.timeOrigin") == loaded  # pushed, not reloaded
    expect(page.locator("#count")).to_have_text("(31)")


def test_the_detail_page_shows_a_colleagues_decision_as_it_is_made(
    service: tuple[str, str], team_redis: RedisServer, page: Page, channel: Channel
) -> None:
    (escalation_id,) = fill(team_redis, 1)
    url, token = service
    log_in(page, url, token)
    page.goto(f"{url}/escalations/{escalation_id}")
    expect(page.locator("#approve")).to_be_visible()
    expect(page.locator("#live-detail")).to_have_attribute("data-live", "open")
    channel.decide(escalation_id, Verdict.DENIED, by="bob", reason="not today")
    expect(page.locator("#decision")).to_contain_text("denied by bob", timeout=3000)
    expect(page.locator("#approve")).to_have_count(0)


def test_bulk_deny_from_the_page_denies_the_checked_ones(
    service: tuple[str, str], team_redis: RedisServer, page: Page, channel: Channel
) -> None:
    ids = fill(team_redis, 3)
    url, token = service
    log_in(page, url, token)
    for escalation_id in ids[:2]:
        page.check(f'#pending-rows tr[data-id="{escalation_id}"] input[name=id]')
    page.fill("#bulk input[name=reason]", "not now")
    page.click("#bulk-deny")
    expect(page.locator(".flash")).to_contain_text("Denied 2.")
    decisions = [channel.decision(i) for i in ids]
    assert [d.by if d else None for d in decisions] == ["alice", "alice", None]


def test_bidi_and_zero_width_text_is_shown_as_escapes_in_the_browser(
    service: tuple[str, str], team_redis: RedisServer, page: Page, channel: Channel
) -> None:
    url, token = service
    log_in(page, url, token)
    escalation = channel.create(
        request(
            rule="ok\u202egpj.exe",
            paths=("/work/a\u200bb.py",),
            arguments={"url": "https://good.example@evil.example/\u2066"},
        ),
        60,
    )
    row = page.locator(f'#pending-rows tr[data-id="{escalation.id}"]')  # built by the script
    expect(row).to_contain_text("ok\\u202egpj.exe")
    expect(row).to_contain_text("/work/a\\u200bb.py")
    expect(row.locator(".host")).to_have_text("evil.example")
    assert "\u202e" not in row.inner_text()
    assert "\u200b" not in row.inner_text()
    page.goto(f"{url}/escalations/{escalation.id}")
    text = page.locator("main").inner_text()
    assert "\u202e" not in text
    assert "\u200b" not in text
    assert "\u2066" not in text
    assert "\\u2066" in text


def test_an_approval_click_on_a_request_rewritten_since_the_page_loaded_decides_nothing(
    service: tuple[str, str], team_redis: RedisServer, page: Page, channel: Channel
) -> None:
    url, token = service
    log_in(page, url, token)
    escalation = channel.create(request(tool="move_file"), 60)
    page.goto(f"{url}/escalations/{escalation.id}")
    expect(page.locator("#approve")).to_be_visible()
    admin = connect(team_redis.url, team_redis.admin_file, ca_file=team_redis.ca_file)
    try:  # what the session does with its own record while the human reads the page
        stored = json.loads(admin.get(redis_keys.record(escalation.id)))
        admin.set(redis_keys.record(escalation.id), json.dumps({**stored, "tool": "read_file"}))
    finally:
        admin.close()
    page.click("#approve")
    expect(page.locator(".flash")).to_contain_text("changed since it was shown")
    assert channel.decision(escalation.id) is None
    expect(page.locator("dd code").first).to_contain_text("read_file")  # shown as it is now
    page.click("#approve")  # control: approving what is shown now is recorded
    expect(page.locator(".flash")).to_contain_text("Recorded: approved by alice")
    decision = channel.decision(escalation.id)
    assert decision is not None
    assert decision.request_digest != escalation.digest()


def test_a_claimed_worktree_is_marked_as_the_sessions_claim_in_the_browser(
    service: tuple[str, str], team_redis: RedisServer, page: Page, channel: Channel
) -> None:
    """page-session's proxy labels its escalation with another worktree (hidden characters in
    it): the live row and the detail page show its registered worktree and mark the claim;
    control: late-session's honest labels are shown plainly."""
    url, token = service
    admin = connect(team_redis.url, team_redis.admin_file, ca_file=team_redis.ca_file)
    session = connect(
        team_redis.url, team_redis.session_file("page-session"), ca_file=team_redis.ca_file
    )
    try:
        for name, worktree in (("page-session", "wt-a"), ("late-session", "wt-b")):
            Channel(admin).register(name, worktree=worktree, agent="claude-code", task="t")
        log_in(page, url, token)
        forged = Channel(session).create(
            request(session_id="page-session", worktree="wt-b\u200b"), 60
        )
        honest = channel.create(request(session_id="late-session", worktree="wt-b"), 60)
    finally:
        session.close()
        admin.close()
    row = page.locator(f'#pending-rows tr[data-id="{forged.id}"]')  # built by the script
    expect(row.locator(".registered")).to_have_text("wt-a")
    expect(row.locator(".claim")).to_have_text('(the session claims "wt-b\\u200b")')
    plain = page.locator(f'#pending-rows tr[data-id="{honest.id}"]')
    expect(plain.locator(".registered")).to_have_text("wt-b")
    expect(plain.locator(".claim")).to_have_count(0)
    assert "\u200b" not in row.inner_text()
    page.goto(f"{url}/escalations/{forged.id}")
    claim = page.locator("#session .claim").first
    expect(claim).to_have_text('(the session claims "wt-b\\u200b")')
    expect(claim).to_be_visible()
    expect(page.locator("#session .registered").first).to_have_text("wt-a")
