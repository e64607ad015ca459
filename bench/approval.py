"""Escalation latency: from the approve API call to the waiting escalate() resuming, and the pending
page with 500 open escalations; against a bare Redis round trip measured in the same run.

Real parts: our Redis image (a container on loopback), the approval service under gunicorn with
our config, the RedisEscalator the MCP proxy uses. Bounded: 200 escalations, one at a time.
Targets: decision-to-resume p50 <= 5 ms (issue #15); pending page (500 open) <= 200 ms.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
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

from ironcurtain.approval.members import MembersFile
from ironcurtain.escalation import acl, keys, users
from ironcurtain.escalation.channel import Channel, connect
from ironcurtain.escalation.escalator import RedisEscalator
from ironcurtain.escalation.types import EscalationRequest, Verdict
from ironcurtain.images.build import BuildSettings, ImageBuilder
from ironcurtain.images.catalog import image_ref
from ironcurtain.shared.pki import TeamTLS

REPO_ROOT = Path(__file__).resolve().parents[1]
ESCALATIONS = 200
OPEN_FOR_PAGE = 500
PAGE_LOADS = 20
LABELS = {"org.ironcurtain.bench": "approval"}


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


def approve(url: str, token: str, escalation_id: str) -> None:
    call = urllib.request.Request(  # noqa: S310 - loopback http
        f"{url}/api/v1/escalations/{escalation_id}/approve",
        data=json.dumps({"by": "bench"}).encode(),
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
            popped = observer.blpop([keys.INBOX], timeout=4)
            assert popped is not None, "the escalation did not reach the inbox"
            escalation_id = popped[1].decode()
            started = time.perf_counter()
            approve(url, token, escalation_id)
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


def pending_page(url: str, token: str, redis_url: str, password: Path) -> list[float]:
    channel = Channel(
        connect(redis_url, password / f"redis_{acl.ADMIN}", ca_file=password / "tls" / "ca.pem")
    )
    channel.redis.flushdb()
    for n in range(OPEN_FOR_PAGE):
        channel.create(request(n), 600)
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(f"{url}/login", timeout=10) as response:
        csrf = re.search(rb'name="csrf_token" value="([^"]+)"', response.read())
    assert csrf is not None
    body = urllib.parse.urlencode({"token": token, "name": "bench", "csrf_token": csrf.group(1)})
    with opener.open(f"{url}/login", data=body.encode(), timeout=10) as response:
        response.read()
    times = []
    for _ in range(PAGE_LOADS):
        started = time.perf_counter()
        with opener.open(f"{url}/", timeout=10) as response:
            page = response.read()
        times.append((time.perf_counter() - started) * 1000)
    assert page.count(b"<tr data-id=") == OPEN_FOR_PAGE, "the page did not list them all"
    channel.redis.close()
    return times


def run() -> dict[str, float | int | str]:
    with tempfile.TemporaryDirectory(prefix="ironcurtain-bench-") as tmp:
        directory = Path(tmp)
        with redis_container(directory) as (redis_url, password):  # noqa: SIM117 - needs its URL
            with gunicorn(redis_url, password, directory) as (url, token):
                pings, wakes = redis_round_trips(redis_url, password)
                resume = decision_to_resume(url, token, redis_url, password)
                page = pending_page(url, token, redis_url, password)
    resume_p50 = statistics.median(resume)
    page_p50 = statistics.median(page)
    return {
        "escalations": ESCALATIONS,
        "decision_to_resume_p50_ms": round(resume_p50, 3),
        "decision_to_resume_p99_ms": round(percentile(resume, 99), 3),
        "redis_ping_p50_ms": round(statistics.median(pings), 3),
        "redis_ping_p99_ms": round(percentile(pings, 99), 3),
        "redis_wake_p50_ms": round(statistics.median(wakes), 3),
        "redis_wake_p99_ms": round(percentile(wakes, 99), 3),
        "decision_to_resume_over_ping_p50_ratio": round(resume_p50 / statistics.median(pings), 1),
        "open_escalations_on_page": OPEN_FOR_PAGE,
        "pending_page_p50_ms": round(page_p50, 3),
        "pending_page_max_ms": round(max(page), 3),
        "target_decision_to_resume_p50_ms": 5,
        "target_pending_page_ms": 200,
        "meets_targets": "yes" if resume_p50 <= 5 and page_p50 <= 200 else "no",
    }
