"""MITM proxy benchmark: direct vs through our proxy vs through mitmproxy, in one run.

Everything runs on loopback: the fake vendor (`python -m ironcurtain.fakellm`), our proxy
(`ironcurtain mitm serve`) and mitmproxy (mitmdump with an equivalent allowlist / key-swap addon,
installed into a throwaway venv at bench/.venv-mitmproxy; skipped with a message if that fails),
each its own process. Measured:
- added p50/p99 latency of small POSTs on one kept-alive connection (rounds interleaved so the
  three paths share the machine's noise), and each proxy's CPU ms per request meanwhile (user +
  system time from /proc: on a loaded machine it moves far less than latency does);
- requests/s with 32 concurrent clients;
- per-SSE-event added latency (the vendor stamps each event with its monotonic send time);
- RSS of the proxy at 500 concurrent streams, and how many of them failed;
- the disk: p50 of a 300-byte append + fdatasync in the audit's folder, before and after (our
  proxy's allowed line is synced before it is forwarded; mitmproxy writes nothing);
- budget overshoot: 20 requests released at once (every head seen, then every body sent) against
  a second proxy with a 100-token budget, in reservations (one request's output bound + input
  estimate); the baseline is the same 20 requests through the unbudgeted proxy (what they spend
  when nothing holds them, as the old check-then-settle budget let all of them pass).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h11

from ironcurtain.fakellm import certs
from ironcurtain.mitm import ca, providers
from ironcurtain.mitm.fake_keys import new_fake_key

HERE = Path(__file__).parent
MITM_VENV = HERE / ".venv-mitmproxy"
MITM_VERSION = "11.0.2"
HOST = "api.anthropic.com"
REAL_KEY = "sk-ant-api03-bench-real-key"
BODY = b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}'
LATENCY_ROUNDS, LATENCY_PER_ROUND, WARMUP = 8, 250, 200
THROUGHPUT_SECONDS, THROUGHPUT_CLIENTS = 3.0, 32
SSE_EVENTS, SSE_GAP_MS, SSE_ROUNDS = 150, 5, 3
STREAMS, STREAM_EVENTS, STREAM_GAP_MS = 500, 30, 100
BUDGET_TOKENS, BUDGET_CONCURRENT = 100, 20
BUDGET_BODY = b'{"model":"m","max_tokens":34,"messages":[{"role":"user","content":"hi"}]}'


@dataclass(frozen=True)
class Path_:
    name: str
    ctx: ssl.SSLContext
    proxy_port: int | None  # None = straight to the vendor
    vendor_port: int
    pid: int | None  # the proxy process, for RSS


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, process: subprocess.Popen, deadline_s: float = 60) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)  # polling a port that has no readiness event of its own
    raise RuntimeError(f"nothing listens on {port} after {deadline_s} s")


def _rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    kb = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
    return kb / 1024


# ---- a small blocking client (h11 frames everything) -------------------------------------------


def _connect(path: Path_) -> ssl.SSLSocket:
    if path.proxy_port is None:
        sock = socket.create_connection(("127.0.0.1", path.vendor_port), 10)
    else:
        sock = socket.create_connection(("127.0.0.1", path.proxy_port), 10)
        conn = h11.Connection(h11.CLIENT)
        target = f"{HOST}:443".encode()
        sock.sendall(
            conn.send(h11.Request(method=b"CONNECT", target=target, headers=[(b"host", target)]))
        )
        sock.sendall(conn.send(h11.EndOfMessage()))
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(4096))
            elif isinstance(event, h11.Response):
                if event.status_code != 200:
                    raise RuntimeError(f"CONNECT refused: {event.status_code}")
                break
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return path.ctx.wrap_socket(sock, server_hostname=HOST)


def _request(fake: str, body: bytes = BODY) -> h11.Request:
    return h11.Request(
        method=b"POST",
        target=b"/v1/messages",
        headers=[
            (b"host", HOST.encode()),
            (b"x-api-key", fake.encode()),
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
        ],
    )


def _exchange(
    sock: ssl.SSLSocket, conn: h11.Connection, fake: str, body: bytes = BODY
) -> list[tuple[float, bytes]]:
    """Send one request; return (arrival time, data) for each body chunk."""
    sock.sendall(
        conn.send(_request(fake, body)) + conn.send(h11.Data(body)) + conn.send(h11.EndOfMessage())
    )
    chunks: list[tuple[float, bytes]] = []
    status = 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = sock.recv(65536)
            now = time.perf_counter()
            conn.receive_data(data)
            while True:  # drain events with this arrival time
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    break
                if isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    chunks.append((now, event.data))
                elif isinstance(event, h11.EndOfMessage):
                    if status != 200:
                        raise RuntimeError(
                            f"status {status}: {b''.join(c for _, c in chunks)[:200]!r}"
                        )
                    conn.start_next_cycle()
                    return chunks
        else:
            raise RuntimeError(f"unexpected {event!r}")


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used: a figure the machine's load changes
    far less than latency (the wait for a core is not in it)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fdatasync_ms(folder: Path, count: int = 200) -> float:
    """p50 of appending a 300-byte line and fdatasyncing it, in the audit's folder: what the
    disk alone adds to every allowed request (its line is on disk before it is forwarded)."""
    path = folder / "sync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    times = []
    try:
        for _ in range(count):
            start = time.perf_counter()
            os.write(fd, b"x" * 299 + b"\n")
            os.fdatasync(fd)
            times.append((time.perf_counter() - start) * 1000)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(times)


def latency(paths: list[Path_], fake: str) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Per-request latencies (ms) per path, and each proxy's CPU ms per request meanwhile."""
    socks = {p.name: (_connect(p), h11.Connection(h11.CLIENT)) for p in paths}
    for name, (sock, conn) in socks.items():
        try:
            for _ in range(WARMUP):
                _exchange(sock, conn, fake)
        except (OSError, RuntimeError) as exc:
            raise RuntimeError(f"{name}: warm-up failed: {exc!r}") from exc
    samples: dict[str, list[float]] = {p.name: [] for p in paths}
    cpu: dict[str, float] = {p.name: 0.0 for p in paths if p.pid}
    for _ in range(LATENCY_ROUNDS):
        for p in paths:
            sock, conn = socks[p.name]
            before = _cpu_s(p.pid) if p.pid else 0.0
            for _ in range(LATENCY_PER_ROUND):
                start = time.perf_counter()
                _exchange(sock, conn, fake)
                samples[p.name].append((time.perf_counter() - start) * 1000)
            if p.pid:
                cpu[p.name] += _cpu_s(p.pid) - before
    for sock, _ in socks.values():
        sock.close()
    count = LATENCY_ROUNDS * LATENCY_PER_ROUND
    return samples, {name: seconds * 1000 / count for name, seconds in cpu.items()}


def sse(path: Path_, fake: str) -> list[float]:
    """Per-event delay from the vendor's send stamp to our receipt, in ms."""
    sock = _connect(path)
    conn = h11.Connection(h11.CLIENT)
    body = json.dumps(
        {
            "model": f"ticks-{SSE_EVENTS}-{SSE_GAP_MS}",
            "stream": True,
            "max_tokens": 5,
            "messages": [],
        }
    ).encode()
    delays = []
    for arrived, data in _exchange(sock, conn, fake, body):
        for stamp in re.findall(rb'"t": ([0-9.]+)', data):
            delays.append((arrived - float(stamp)) * 1000)
    sock.close()
    return delays[10:]  # the first events include connection warm-up


# ---- concurrent clients (asyncio) ---------------------------------------------------------------


async def _aconnect(path: Path_) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if path.proxy_port is None:
        return await asyncio.open_connection(
            "127.0.0.1", path.vendor_port, ssl=path.ctx, server_hostname=HOST
        )
    reader, writer = await asyncio.open_connection("127.0.0.1", path.proxy_port)
    conn = h11.Connection(h11.CLIENT)
    target = f"{HOST}:443".encode()
    writer.write(
        conn.send(h11.Request(method=b"CONNECT", target=target, headers=[(b"host", target)]))
        + conn.send(h11.EndOfMessage())
    )
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(4096))
        elif isinstance(event, h11.Response):
            if event.status_code != 200:
                raise RuntimeError(f"CONNECT refused: {event.status_code}")
            break
    await writer.start_tls(path.ctx, server_hostname=HOST)
    return reader, writer


async def _aexchange(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    conn: h11.Connection,
    fake: str,
    body: bytes = BODY,
) -> int:
    writer.write(
        conn.send(_request(fake, body)) + conn.send(h11.Data(body)) + conn.send(h11.EndOfMessage())
    )
    status = 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("closed mid-response")
            conn.receive_data(data)
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.EndOfMessage):
            conn.start_next_cycle()
            return status


async def throughput(path: Path_, fake: str) -> float:
    stop = time.perf_counter() + THROUGHPUT_SECONDS
    done = 0

    async def client() -> None:
        nonlocal done
        reader, writer = await _aconnect(path)
        conn = h11.Connection(h11.CLIENT)
        while time.perf_counter() < stop:
            if await _aexchange(reader, writer, conn, fake) == 200:
                done += 1
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(THROUGHPUT_CLIENTS)))
    return done / (time.perf_counter() - start)


async def streams(path: Path_, fake: str) -> tuple[int, float]:
    """STREAMS concurrent SSE streams; returns (failures, peak RSS of the proxy in MB)."""
    body = json.dumps(
        {
            "model": f"ticks-{STREAM_EVENTS}-{STREAM_GAP_MS}",
            "stream": True,
            "max_tokens": 5,
            "messages": [],
        }
    ).encode()
    peak = 0.0
    failures = 0
    gate = asyncio.Semaphore(50)  # pace the handshakes; the streams themselves all overlap

    async def one() -> None:
        nonlocal failures
        try:
            async with gate:
                reader, writer = await asyncio.wait_for(_aconnect(path), 30)
            status = await asyncio.wait_for(
                _aexchange(reader, writer, h11.Connection(h11.CLIENT), fake, body), 60
            )
            if status != 200:
                failures += 1
            writer.close()
        except (OSError, ssl.SSLError, TimeoutError, RuntimeError, h11.ProtocolError):
            failures += 1

    tasks = [asyncio.ensure_future(one()) for _ in range(STREAMS)]
    while not all(t.done() for t in tasks):
        if path.pid:
            peak = max(peak, _rss_mb(path.pid))
        await asyncio.sleep(0.1)  # sampling RSS while the streams run
    await asyncio.gather(*tasks)
    return failures, peak


async def _held_back(path: Path_, fake: str) -> tuple[asyncio.StreamWriter, h11.Connection, Any]:
    """A request whose head the proxy has seen (it answered 100 Continue); its body not sent."""
    reader, writer = await _aconnect(path)
    conn = h11.Connection(h11.CLIENT)
    head = _request(fake, BUDGET_BODY)
    head = h11.Request(
        method=head.method,
        target=head.target,
        headers=[*head.headers, (b"expect", b"100-continue")],
    )
    writer.write(conn.send(head))
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(4096))
        elif isinstance(event, h11.InformationalResponse):
            return writer, conn, reader
        else:
            raise RuntimeError(f"expected 100 Continue, got {event!r}")


async def released_at_once(path: Path_, fake: str) -> list[int]:
    """BUDGET_CONCURRENT requests: every head seen first, then every body sent in one go."""
    held = await asyncio.gather(*(_held_back(path, fake) for _ in range(BUDGET_CONCURRENT)))
    for writer, conn, _ in held:
        writer.write(conn.send(h11.Data(BUDGET_BODY)) + conn.send(h11.EndOfMessage()))

    async def status(writer: asyncio.StreamWriter, conn: h11.Connection, reader: Any) -> int:
        code = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                if not data:
                    return code
                conn.receive_data(data)
            elif isinstance(event, h11.Response):
                code = event.status_code
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                writer.close()
                return code

    return list(await asyncio.gather(*(status(*h) for h in held)))


def _spent(audit: Path, wait_for: int, deadline_s: float = 30) -> int:
    """Tokens charged on the audit's response lines, once `wait_for` of them are written."""
    end = time.monotonic() + deadline_s
    while True:
        lines = [json.loads(x) for x in audit.read_text().splitlines()]
        done = [x for x in lines if x.get("event") == "response"]
        if len(done) >= wait_for or time.monotonic() > end:
            return sum(x.get("input_tokens", 0) + x.get("output_tokens", 0) for x in done)
        time.sleep(0.02)  # the audit file has no readiness event of its own


# ---- processes ----------------------------------------------------------------------------------


def _mitmproxy_installed() -> Path | None:
    mitmdump = MITM_VENV / "bin" / "mitmdump"
    if mitmdump.exists():
        return mitmdump
    print(f"bench: installing mitmproxy {MITM_VERSION} into {MITM_VENV} (once)", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(MITM_VENV)], check=True, timeout=120)
        subprocess.run(
            [str(MITM_VENV / "bin" / "pip"), "install", "-q", f"mitmproxy=={MITM_VERSION}"],
            check=True,
            timeout=600,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"bench: mitmproxy column skipped: could not install it ({exc})", flush=True)
        shutil.rmtree(MITM_VENV, ignore_errors=True)
        return None
    return mitmdump if mitmdump.exists() else None


@contextlib.contextmanager
def _process(
    argv: list[str], env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[subprocess.Popen]:
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log:
            out.close()


def run() -> dict[str, float | int | str]:
    with tempfile.TemporaryDirectory(prefix="bench-mitm-") as tmp:
        return _run(Path(tmp))


def _run(tmp: Path) -> dict[str, float | int | str]:
    hosts = sorted(h for p in providers.builtin().values() for h in p.hosts)
    ca.init(tmp / "ca", hosts)
    vendor_files = certs.write(tmp / "vendor", [HOST])
    fake = new_fake_key("sk-ant-api03-")
    (tmp / "real").write_text(REAL_KEY)
    vendor_port, proxy_port = _free_port(), _free_port()
    config = {
        "session": "bench",
        "listen": {"host": "127.0.0.1", "port": proxy_port},
        "ca_dir": str(tmp / "ca"),
        "audit": str(tmp / "audit.jsonl"),
        "keys": {"anthropic": {"fake": fake, "real_file": str(tmp / "real")}},
        "budget": {"tokens": None, "seconds": None, "cost_usd": None},
        "upstream": {
            HOST: {"address": f"127.0.0.1:{vendor_port}", "ca_file": str(vendor_files.ca)}
        },
    }
    (tmp / "mitm.json").write_text(json.dumps(config))
    budget_port = _free_port()
    budgeted = {
        **config,
        "listen": {"host": "127.0.0.1", "port": budget_port},
        "audit": str(tmp / "audit-budget.jsonl"),
        "budget": {"tokens": BUDGET_TOKENS, "seconds": None, "cost_usd": None},
    }
    budget_cfg = tmp / "mitm-budget.json"
    budget_cfg.write_text(json.dumps(budgeted))
    figures: dict[str, float | int | str] = {}
    py = sys.executable
    vendor_argv = [
        py,
        "-m",
        "ironcurtain.fakellm",
        "--port",
        str(vendor_port),
        "--cert",
        str(vendor_files.cert),
        "--key",
        str(vendor_files.key),
    ]
    with contextlib.ExitStack() as stack:
        vendor = stack.enter_context(_process(vendor_argv))
        _wait_port(vendor_port, vendor)
        ours = stack.enter_context(
            _process(
                [py, "-m", "ironcurtain.cli", "mitm", "serve", "--config", str(tmp / "mitm.json")],
                log=tmp / "ours.log",
            )
        )
        _wait_port(proxy_port, ours)
        direct_ctx = ssl.create_default_context(cafile=str(vendor_files.ca))
        ours_ctx = ssl.create_default_context(cafile=str(tmp / "ca" / ca.CERT_FILE))
        paths = [
            Path_("direct", direct_ctx, None, vendor_port, None),
            Path_("ours", ours_ctx, proxy_port, vendor_port, ours.pid),
        ]
        mitmdump = _mitmproxy_installed()
        if mitmdump is not None:
            mport = _free_port()
            env = {
                **os.environ,
                "BENCH_FAKE_KEY": fake,
                "BENCH_REAL_KEY": REAL_KEY,
                "BENCH_VENDOR_PORT": str(vendor_port),
            }
            confdir = tmp / "mitmproxy"
            argv = [
                str(mitmdump),
                "-q",
                "--listen-host",
                "127.0.0.1",
                "--listen-port",
                str(mport),
                "--set",
                f"confdir={confdir}",
                "--set",
                "connection_strategy=lazy",
                "--set",
                f"ssl_verify_upstream_trusted_ca={vendor_files.ca}",
                "-s",
                str(HERE / "_mitmproxy_addon.py"),
            ]
            mproc = stack.enter_context(_process(argv, env=env, log=tmp / "mitmproxy.log"))
            _wait_port(mport, mproc)
            mctx = ssl.create_default_context(cafile=str(confdir / "mitmproxy-ca-cert.pem"))
            paths.append(Path_("mitmproxy", mctx, mport, vendor_port, mproc.pid))
            figures["mitmproxy_version"] = MITM_VERSION
        else:
            figures["mitmproxy_skipped"] = "mitmproxy could not be installed; column left out"

        figures["load_1min_at_start"] = round(os.getloadavg()[0], 2)
        figures["disk_append_fdatasync_p50_ms"] = round(fdatasync_ms(tmp), 3)
        samples, cpu_ms = latency(paths, fake)
        for name, ms in cpu_ms.items():
            figures[f"{name}_cpu_ms_per_request"] = round(ms, 3)
        if "mitmproxy" in cpu_ms:
            figures["cpu_ratio_mitmproxy_over_ours"] = round(
                cpu_ms["mitmproxy"] / max(cpu_ms["ours"], 1e-3), 2
            )
        for p in paths:
            figures[f"{p.name}_p50_ms"] = round(statistics.median(samples[p.name]), 3)
            figures[f"{p.name}_p99_ms"] = round(_percentile(samples[p.name], 0.99), 3)
        for p in paths[1:]:
            figures[f"{p.name}_added_p50_ms"] = round(
                figures[f"{p.name}_p50_ms"] - figures["direct_p50_ms"], 3
            )
            figures[f"{p.name}_added_p99_ms"] = round(
                figures[f"{p.name}_p99_ms"] - figures["direct_p99_ms"], 3
            )
        if "mitmproxy_added_p50_ms" in figures:
            figures["added_p50_ratio_mitmproxy_over_ours"] = round(
                figures["mitmproxy_added_p50_ms"] / max(figures["ours_added_p50_ms"], 1e-3), 2
            )

        for p in paths:
            figures[f"{p.name}_rps_32_clients"] = round(asyncio.run(throughput(p, fake)), 1)

        # Rounds interleave the paths so they share the machine's noise alike.
        delays: dict[str, list[float]] = {p.name: [] for p in paths}
        for _ in range(SSE_ROUNDS):
            for p in paths:
                delays[p.name] += sse(p, fake)
        direct_sse = delays["direct"]
        for p in paths[1:]:
            mine = delays[p.name]
            figures[f"{p.name}_sse_event_added_p50_ms"] = round(
                statistics.median(mine) - statistics.median(direct_sse), 3
            )
            figures[f"{p.name}_sse_event_added_p99_ms"] = round(
                _percentile(mine, 0.99) - _percentile(direct_sse, 0.99), 3
            )
        figures["direct_sse_event_p50_ms"] = round(statistics.median(direct_sse), 3)
        figures["direct_sse_event_p99_ms"] = round(_percentile(direct_sse, 0.99), 3)

        # Budget overshoot: the baseline (nothing holds them) first, through the same proxy code.
        audit = tmp / "audit.jsonl"
        before = len([x for x in audit.read_text().splitlines() if '"response"' in x])
        spent_before = _spent(audit, before)
        baseline = asyncio.run(released_at_once(paths[1], fake))
        baseline_spent = _spent(audit, before + baseline.count(200)) - spent_before
        capped = stack.enter_context(
            _process(
                [py, "-m", "ironcurtain.cli", "mitm", "serve", "--config", str(budget_cfg)],
                log=tmp / "budget.log",
            )
        )
        _wait_port(budget_port, capped)
        capped_path = Path_("budget", ours_ctx, budget_port, vendor_port, capped.pid)
        statuses = asyncio.run(released_at_once(capped_path, fake))
        spent = _spent(tmp / "audit-budget.jsonl", statuses.count(200))
        reservation = -(-len(BUDGET_BODY) // 4) + 34  # docs/mitm.md: ceil(bytes / 4) + max_tokens
        figures["budget_limit_tokens"] = BUDGET_TOKENS
        figures["budget_reservation_tokens"] = reservation
        figures[f"budget_{BUDGET_CONCURRENT}_concurrent_passed"] = statuses.count(200)
        figures[f"budget_{BUDGET_CONCURRENT}_concurrent_spent_tokens"] = spent
        figures["budget_overshoot_reservations"] = round(
            max(0, spent - BUDGET_TOKENS) / reservation, 3
        )
        figures["budget_spent_over_limit_ratio"] = round(spent / BUDGET_TOKENS, 3)
        figures[f"baseline_unheld_{BUDGET_CONCURRENT}_concurrent_passed"] = baseline.count(200)
        figures[f"baseline_unheld_{BUDGET_CONCURRENT}_concurrent_spent_tokens"] = baseline_spent
        figures["baseline_unheld_overshoot_reservations"] = round(
            max(0, baseline_spent - BUDGET_TOKENS) / reservation, 3
        )
        figures["baseline_unheld_spent_over_limit_ratio"] = round(baseline_spent / BUDGET_TOKENS, 3)

        for p in paths[1:]:
            failures, peak = asyncio.run(streams(p, fake))
            figures[f"{p.name}_streams_{STREAMS}_failed"] = failures
            figures[f"{p.name}_streams_{STREAMS}_peak_rss_mb"] = round(peak, 1)
        figures["ours_audit_bytes_per_refusal"] = _audit_bytes_per_refusal(
            proxy_port, tmp / "audit.jsonl"
        )
        figures["disk_append_fdatasync_p50_ms_at_end"] = round(fdatasync_ms(tmp), 3)
        figures["load_1min_at_end"] = round(os.getloadavg()[0], 2)
    return figures


def _audit_bytes_per_refusal(port: int, audit: Path, count: int = 100) -> float:
    """Audit bytes written per refused CONNECT with a 16 KB host (issue #16: target <= 2 KB)."""
    host = b"a" * 16_000 + b".test:443"
    before = audit.stat().st_size
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (host, host))
            while sock.recv(65536):
                pass  # the proxy answers (or, past its rate limit, closes) and closes
    return round((audit.stat().st_size - before) / count, 1)


if __name__ == "__main__":
    for key, value in sorted(run().items()):
        print(f"{key:45} {value}")
