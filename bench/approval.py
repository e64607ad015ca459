"""Escalation latency: from the approve API call to the waiting escalate() resuming; with 10,000
pending, the first page, a new escalation's arrival on an open page (SSE), and the approval
service's memory; against bare Redis round trips (PING, a BLPOP wake-up, a keyspace
notification to a plain subscriber) measured in the same run.

Real parts: our Redis image (a container on loopback), the approval service under gunicorn with
our config, the RedisEscalator the MCP proxy uses. Bounded: 200 escalations, one at a time.
Targets (issue #15): decision-to-resume p50 <= 5 ms; with 10,000 pending, first page <= 200 ms
and a new escalation on an open page <= 100 ms after it is created.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import http.cookiejar
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker

from ironcurtain.escalation import acl, redis_keys, users
from ironcurtain.escalation.channel import Channel, connect
from ironcurtain.escalation.escalator import RedisEscalator
from ironcurtain.escalation.types import EscalationRequest, Verdict
from ironcurtain.images.build import BuildSettings, ImageBuilder
from ironcurtain.images.catalog import image_ref
from ironcurtain.people.members import MembersFile
from ironcurtain.shared.pki import TeamTLS

REPO_ROOT = Path(__file__).resolve().parents[1]
ESCALATIONS = 200
OPEN_FOR_PAGE = 10_000
PAGE_LOADS = 20
ARRIVALS = 50
LABELS = {"org.ironcurtain.bench": "approval"}
GUNICORN_PID = [0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def until(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        threading.Event().wait(0.1)
    raise TimeoutError(f"{what} not ready within {timeout_s}s")


@contextmanager
def redis_container(directory: Path) -> Iterator[tuple[str, Path]]:
    """Our Redis image as the team stack starts it (ACL file, a user per service); yields its
    URL and the folder holding the credential files (redis_<user>)."""
    settings = BuildSettings.from_environ(REPO_ROOT)
    client = docker.from_env()
    ImageBuilder(client, settings, say=lambda _: None).build()
    credentials = [acl.Credential.new(user) for user in acl.SERVICES]
    for credential in credentials:
        (directory / f"redis_{credential.user}").write_text(credential.line())
    password = directory / "redis_acl"
    password.write_text(acl.acl_file(credentials))
    password.chmod(0o644)
    tls = TeamTLS(directory / "tls")  # TLS only, as the team stack runs it
    tls.ensure(["127.0.0.1"], say=lambda _: None)
    tls.server_key.chmod(0o644)
    port = free_port()
    container = client.containers.run(
        image_ref("redis", settings.image_tag),
        detach=True,
        ports={"6379/tcp": ("127.0.0.1", port)},
        volumes={
            str(password): {"bind": "/run/secrets/redis_acl", "mode": "ro"},
            str(tls.server_cert): {"bind": "/run/secrets/redis_tls_cert", "mode": "ro"},
            str(tls.server_key): {"bind": "/run/secrets/redis_tls_key", "mode": "ro"},
            str(tls.ca): {"bind": "/run/secrets/redis_ca", "mode": "ro"},
        },
        labels=LABELS,
    )
    try:

        def healthy() -> bool:
            container.reload()
            return container.attrs["State"].get("Health", {}).get("Status") == "healthy"

        until(healthy, 30, "redis")
        yield f"rediss://127.0.0.1:{port}/0", directory
    finally:
        container.remove(force=True)
        client.close()


@contextmanager
def gunicorn(redis_url: str, password: Path, directory: Path) -> Iterator[tuple[str, str]]:
    members = MembersFile(directory / "people" / "members.json")
    token = members.add("bench")
    port = free_port()
    env = {
        **os.environ,
        "IRONCURTAIN_APPROVAL_BIND": f"127.0.0.1:{port}",
        "IRONCURTAIN_REDIS_URL": redis_url,
        "IRONCURTAIN_REDIS_CREDENTIAL_FILE": str(password / f"redis_{acl.APPROVAL}"),
        "IRONCURTAIN_REDIS_CA_FILE": str(password / "tls" / "ca.pem"),
        "IRONCURTAIN_APPROVAL_MEMBERS_FILE": str(members.path),
        "IRONCURTAIN_APPROVAL_SESSION_DIR": str(directory / "web-sessions"),
    }
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "-c",
            "python:ironcurtain.approval.gunicorn_conf",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:  # noqa: S310
                return response.status == 200
        except OSError:
            return False

    try:
        until(healthy, 30, "gunicorn")
        GUNICORN_PID[0] = process.pid
        yield url, token
    finally:
        process.terminate()
        process.wait(timeout=15)


def request(n: int) -> EscalationRequest:
    return EscalationRequest(
        session_id=f"bench-{n % 7}",
        worktree="bench",
        agent="claude-code",
        server="filesystem",
        tool="write_file",
        arguments={"path": f"/work/src/f{n}.py", "content": "x" * 200},
        rule="writes-need-a-human",
        reason="writes need a human",
        task="benchmark",
        paths=(f"/work/src/f{n}.py",),
    )


def shown_digest(url: str, token: str, escalation_id: str) -> str:
    """The digest of the escalation as a human is shown it (what an approval must name)."""
    call = urllib.request.Request(  # noqa: S310 - loopback http
        f"{url}/api/v1/escalations/{escalation_id}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(call, timeout=10) as response:  # noqa: S310
        return str(json.loads(response.read())["escalation"]["digest"])


def approve(url: str, token: str, escalation_id: str, digest: str) -> None:
    call = urllib.request.Request(  # noqa: S310 - loopback http
        f"{url}/api/v1/escalations/{escalation_id}/approve",
        data=json.dumps({"by": "bench", "digest": digest}).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(call, timeout=10) as response:  # noqa: S310
        response.read()


def decision_to_resume(url: str, token: str, redis_url: str, password: Path) -> list[float]:
    """As in a session: the proxy's escalator with its own session users (made by admin)."""
    observer = connect(
        redis_url, password / f"redis_{acl.ADMIN}", ca_file=password / "tls" / "ca.pem"
    )
    for n in range(7):
        credential = users.create_session_user(
            observer, f"bench-{n}", project=f"bench-{n}", machine="bench"
        )
        (password / f"session-{n}").write_text(credential.line())
    ca = password / "tls" / "ca.pem"
    escalators = [
        RedisEscalator.connect(redis_url, password / f"session-{n}", ca_file=ca) for n in range(7)
    ]

    async def timed(n: int) -> tuple[Verdict, float]:
        outcome = await escalators[n % 7].escalate(request(n), 30)
        return outcome.verdict, time.perf_counter()

    latencies = []
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        for n in range(ESCALATIONS):
            waiting = pool.submit(asyncio.run, timed(n))
            popped = observer.blpop([redis_keys.INBOX], timeout=4)
            assert popped is not None, "the escalation did not reach the inbox"
            escalation_id = popped[1].decode()
            digest = shown_digest(url, token, escalation_id)  # the human looks first
            started = time.perf_counter()
            approve(url, token, escalation_id, digest)
            verdict, resumed = waiting.result(timeout=30)
            assert verdict is Verdict.APPROVED
            latencies.append((resumed - started) * 1000)
    finally:
        pool.shutdown()
        for escalator in escalators:
            escalator.close()
        observer.close()
    return latencies


def redis_round_trips(redis_url: str, password: Path) -> tuple[list[float], list[float]]:
    """PING, and a bare wake-up (RPUSH in one client, BLPOP returning in another)."""
    client = connect(
        redis_url, password / f"redis_{acl.ADMIN}", ca_file=password / "tls" / "ca.pem"
    )
    waker = connect(redis_url, password / f"redis_{acl.ADMIN}", ca_file=password / "tls" / "ca.pem")
    pings, wakes = [], []
    try:
        for _ in range(ESCALATIONS):
            started = time.perf_counter()
            client.ping()
            pings.append((time.perf_counter() - started) * 1000)
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        for n in range(ESCALATIONS):
            key = f"bench:wake:{n}"
            waiting = pool.submit(lambda k=key: (client.blpop([k], timeout=4), time.perf_counter()))
            # Let the BLPOP reach Redis first (its client shows as blocked), then wake it.
            until(lambda: int(waker.info("clients")["blocked_clients"]) > 0, 5, "blpop")
            started = time.perf_counter()
            waker.rpush(key, "1")
            _, woke = waiting.result(timeout=5)
            wakes.append((woke - started) * 1000)
        pool.shutdown()
    finally:
        client.close()
        waker.close()
    return pings, wakes


def fill(channel: Channel, count: int) -> None:
    """`count` pending escalations over 7 sessions, written as the proxies write them, the
    sessions registered as `ironcurtain run` registers them (which lists them: redis_keys.OPEN)."""
    for n in range(7):
        channel.register(f"bench-{n}", worktree="bench", agent="claude-code", task="benchmark")
    for n in range(count):
        channel.create(request(n), 600 + n % 300)


def session_lookups(channel: Channel, rounds: int = 50) -> tuple[list[float], list[float], int]:
    """What finding the sessions with pending escalations costs a listing: the index it reads
    (with the pending counts) against the key-space SCAN it replaced, in the same run."""
    indexed, scanned = [], []
    for _ in range(rounds):
        began = time.perf_counter()
        channel.pending_counts()
        indexed.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        list(channel.redis.scan_iter(match=f"{redis_keys.PREFIX}:s:*:pending", count=10_000))
        scanned.append((time.perf_counter() - began) * 1000)
    return indexed, scanned, int(channel.redis.dbsize())


def logged_in(url: str, token: str) -> urllib.request.OpenerDirector:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(f"{url}/login", timeout=10) as response:
        csrf = re.search(rb'name="csrf_token" value="([^"]+)"', response.read())
    assert csrf is not None
    body = urllib.parse.urlencode({"token": token, "name": "bench", "csrf_token": csrf.group(1)})
    with opener.open(f"{url}/login", data=body.encode(), timeout=10) as response:
        response.read()
    return opener


def timed_get(opener: urllib.request.OpenerDirector, target: str) -> tuple[float, bytes]:
    started = time.perf_counter()
    with opener.open(target, timeout=10) as response:
        body = response.read()
    return (time.perf_counter() - started) * 1000, body


def first_pages(url: str, token: str) -> dict[str, list[float] | int]:
    """The pending page and the API's first page, latest and soonest deadline first."""
    opener = logged_in(url, token)
    figures: dict[str, list[float] | int] = {"page": [], "api": [], "soonest": []}
    for _ in range(PAGE_LOADS):
        took, page = timed_get(opener, f"{url}/")
        figures["page"].append(took)  # type: ignore[union-attr]
        took, api = timed_get(opener, f"{url}/api/v1/escalations")
        figures["api"].append(took)  # type: ignore[union-attr]
        took, _ = timed_get(opener, f"{url}/api/v1/escalations?order=soonest")
        figures["soonest"].append(took)  # type: ignore[union-attr]
    listing = json.loads(api)
    assert listing["total"] >= OPEN_FOR_PAGE, listing["total"]
    assert page.count(b"<tr data-id=") == 50, "the page is not one bounded page"
    figures["page_bytes"] = len(page)
    figures["api_bytes"] = len(api)
    return figures


def reachable(url: str, token: str) -> int:
    """Follow `next` from the first page to the last: how many distinct escalations."""
    seen: set[str] = set()
    query = {"limit": "200", "order": "soonest"}
    while True:
        call = urllib.request.Request(  # noqa: S310 - loopback http
            f"{url}/api/v1/escalations?{urllib.parse.urlencode(query)}",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(call, timeout=10) as response:  # noqa: S310
            page = json.loads(response.read())
        seen.update(e["id"] for e in page["escalations"])
        if not page["next"]:
            return len(seen)
        query["cursor"] = page["next"]


def arrivals(url: str, token: str, channel: Channel) -> tuple[list[float], list[float]]:
    """A new escalation on an open page: from create() to its SSE event, and to the page's
    refetch holding it (what the page's script does on the event)."""
    host, port = urllib.parse.urlsplit(url).netloc.split(":")
    stream = http.client.HTTPConnection(host, int(port), timeout=10)
    stream.request("GET", "/api/v1/events", headers={"Authorization": f"Bearer {token}"})
    response = stream.getresponse()
    assert response.status == 200, response.status
    events, pages = [], []
    fetcher = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        response.readline()  # retry: ...
        for n in range(ARRIVALS):
            started = time.perf_counter()
            created = channel.create(request(OPEN_FOR_PAGE + n), 900)  # the latest deadline
            while not response.readline().startswith(b"event: pending"):
                pass
            events.append((time.perf_counter() - started) * 1000)
            fetcher.request(
                "GET", "/api/v1/escalations", headers={"Authorization": f"Bearer {token}"}
            )
            listing = json.loads(fetcher.getresponse().read())
            pages.append((time.perf_counter() - started) * 1000)
            assert listing["escalations"][0]["id"] == created.id, "not on the first page"
    finally:
        stream.close()
        fetcher.close()
    return events, pages


def keyspace_baseline(redis_url: str, password: Path) -> list[float]:
    """A keyspace notification to a plain subscriber: the floor under the SSE arrival."""
    client = connect(
        redis_url, password / f"redis_{acl.ADMIN}", ca_file=password / "tls" / "ca.pem"
    )
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe("__keyspace@0__:bench:ks:*")
    until(lambda: pubsub.get_message(timeout=0.1) is None, 5, "psubscribe")
    found = []
    try:
        for n in range(ARRIVALS):
            started = time.perf_counter()
            client.zadd(f"bench:ks:{n}", {"x": 1})
            while pubsub.get_message(timeout=2) is None:
                pass
            found.append((time.perf_counter() - started) * 1000)
    finally:
        pubsub.close()
        client.close()
    return found


def memory_kib(pid: int) -> int:
    """Resident memory of gunicorn's master and its workers (from /proc)."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":", 1) for line in status.read_text().splitlines() if ":" in line
            )
        except OSError:
            continue
        if int(fields.get("Pid", "0")) == pid or int(fields.get("PPid", "0")) == pid:
            total += int(fields.get("VmRSS", "0 kB").split()[0])
    return total


def with_many_pending(url: str, token: str, redis_url: str, password: Path) -> dict[str, Any]:
    channel = Channel(
        connect(redis_url, password / f"redis_{acl.ADMIN}", ca_file=password / "tls" / "ca.pem")
    )
    try:
        channel.redis.flushdb()
        idle = memory_kib(GUNICORN_PID[0])
        fill(channel, OPEN_FOR_PAGE)
        lookups = session_lookups(channel)
        pages = first_pages(url, token)
        count = reachable(url, token)
        events, arrived = arrivals(url, token, channel)
        loaded = memory_kib(GUNICORN_PID[0])
    finally:
        channel.redis.close()
    return {"pages": pages, "reachable": count, "events": events, "arrived": arrived,
            "idle_kib": idle, "loaded_kib": loaded, "lookups": lookups}  # fmt: skip


def run() -> dict[str, float | int | str]:
    with tempfile.TemporaryDirectory(prefix="ironcurtain-bench-") as tmp:
        directory = Path(tmp)
        with redis_container(directory) as (redis_url, password):  # noqa: SIM117 - needs its URL
            with gunicorn(redis_url, password, directory) as (url, token):
                pings, wakes = redis_round_trips(redis_url, password)
                notified = keyspace_baseline(redis_url, password)
                resume = decision_to_resume(url, token, redis_url, password)
                many = with_many_pending(url, token, redis_url, password)
    p50 = statistics.median
    resume_p50 = p50(resume)
    pages = many["pages"]
    page_p50, arrived_p50 = p50(pages["page"]), p50(many["arrived"])
    meets = resume_p50 <= 5 and page_p50 <= 200 and arrived_p50 <= 100
    meets = meets and many["reachable"] == OPEN_FOR_PAGE
    return {
        "escalations": ESCALATIONS,
        "decision_to_resume_p50_ms": round(resume_p50, 3),
        "decision_to_resume_p99_ms": round(percentile(resume, 99), 3),
        "redis_ping_p50_ms": round(p50(pings), 3),
        "redis_ping_p99_ms": round(percentile(pings, 99), 3),
        "redis_wake_p50_ms": round(p50(wakes), 3),
        "redis_wake_p99_ms": round(percentile(wakes, 99), 3),
        "redis_keyspace_notify_p50_ms": round(p50(notified), 3),
        "redis_keyspace_notify_p99_ms": round(percentile(notified, 99), 3),
        "decision_to_resume_over_ping_p50_ratio": round(resume_p50 / p50(pings), 1),
        "open_escalations": OPEN_FOR_PAGE,
        "reachable_by_next_count": many["reachable"],
        "first_page_html_p50_ms": round(page_p50, 3),
        "first_page_html_max_ms": round(max(pages["page"]), 3),
        "first_page_api_p50_ms": round(p50(pages["api"]), 3),
        "first_page_api_soonest_p50_ms": round(p50(pages["soonest"]), 3),
        "sessions_lookup_index_p50_ms": round(p50(many["lookups"][0]), 3),
        "sessions_lookup_scan_p50_ms": round(p50(many["lookups"][1]), 3),
        "keys_in_redis": many["lookups"][2],
        "first_page_html_bytes": pages["page_bytes"],
        "first_page_api_bytes": pages["api_bytes"],
        "arrival_sse_event_p50_ms": round(p50(many["events"]), 3),
        "arrival_sse_event_p99_ms": round(percentile(many["events"], 99), 3),
        "arrival_on_open_page_p50_ms": round(arrived_p50, 3),
        "arrival_on_open_page_p99_ms": round(percentile(many["arrived"], 99), 3),
        "arrival_event_over_keyspace_notify_p50_ratio": round(
            p50(many["events"]) / p50(notified), 1
        ),
        "approval_service_rss_idle_kib": many["idle_kib"],
        "approval_service_rss_10000_pending_kib": many["loaded_kib"],
        "target_decision_to_resume_p50_ms": 5,
        "target_first_page_ms": 200,
        "target_arrival_on_open_page_ms": 100,
        "meets_targets": "yes" if meets else "no",
    }
