"""Policy engine and MCP proxy figures, each against a baseline measured in the same run.

- decision time over a generated, realistic 200-rule policy (per-tool tables), with the real
  filesystem resolver on a temporary tree and with the lexical one;
- added latency of one tool call through the proxy (a real `ironcurtain mcp-proxy serve`
  process, Streamable HTTP) versus the same backend called directly (stdio) by the same client;
- calls/s through the proxy with 16 concurrent clients: a lean HTTP load generator in its own
  process (bench/_load.py; the SDK's client spends ~3 ms of CPU per call, so 16 of them on these
  two cores would measure the client), and, for comparison, 16 SDK clients in this process;
- the proxy's own CPU time per call (from /proc, robust to the machine's load), the disk's
  fdatasync latency (the floor of the audit-first guarantee) and the gate alone in-process.
Bounded: a few hundred calls of each kind.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import yaml
from mcp import Client, StdioServerParameters

from ironcurtain.policy import Call, Engine, FsResolver, LexicalResolver, parse_policy

REPO = Path(__file__).resolve().parents[1]
NPM_PREFIX = REPO / ".cache" / "npm"
SEQUENTIAL = 300
CONCURRENT_CLIENTS = 16
CALLS_PER_CLIENT = 25  # SDK clients
LEAN_CALLS_PER_CLIENT = 60  # the lean load generator


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def generated_policy(workspace: str, rules: int = 200) -> str:
    """20 servers x 10 tools; 200 rules spread over them, the realistic catch-alls last."""
    roles = ["read-path", "write-path", "delete-path", "url", "none"]
    servers = {}
    for s in range(20):
        tools = {}
        for t in range(10):
            tools[f"tool{t}"] = {"path": roles[t % 3], "url": "url", "n": "none"}
        servers[f"srv{s}"] = {"root": workspace, "tools": tools}
    body: list[dict] = []
    for i in range(rules - 4):
        s, t = i % 20, (i // 20) % 10
        effect = ["deny", "escalate", "allow"][i % 3]
        when = {"paths_within": f"zone{i % 10}"} if i % 2 else {"domains_in": f"sites{i % 10}"}
        body.append(
            {"name": f"r{i}", "effect": effect, "reason": "generated", "server": f"srv{s}",
             "tools": [f"tool{t}"], "when": when}
        )  # fmt: skip
    body += [
        {"name": "ws-delete", "effect": "escalate", "reason": "r",
         "when": {"roles": ["delete-path"], "paths_within": "workspace"}},
        {"name": "ws-read", "effect": "allow", "reason": "r",
         "when": {"roles": ["read-path"], "paths_within": "workspace"}},
        {"name": "ws-write", "effect": "allow", "reason": "r",
         "when": {"roles": ["write-path"], "paths_within": "workspace"}},
        {"name": "outside", "effect": "deny", "reason": "r",
         "when": {"paths_outside": "workspace"}},
    ]  # fmt: skip
    lists = {"workspace": [workspace]}
    lists |= {f"zone{i}": [f"{workspace}/zone{i}"] for i in range(10)}
    lists |= {f"sites{i}": [f"site{i}.example.org", f"docs{i}.example.com"] for i in range(10)}
    doc = {
        "version": 1,
        "protected": {
            "paths": ["/policy", "/audit", "/state"],
            "names": [".env", ".env.*", "*.pem"],
        },
        "lists": lists,
        "servers": servers,
        "rules": body,
    }
    return yaml.safe_dump(doc, sort_keys=False)


def decisions(resolver_name: str, workspace: Path) -> float:
    policy = parse_policy(generated_policy(str(workspace)), "bench.yaml", {})
    resolver = FsResolver() if resolver_name == "fs" else LexicalResolver()
    clock = iter(range(10**9)).__next__  # a fresh second per call: the breaker never trips
    engine = Engine(policy, resolver, lambda: float(clock()) * 1000)
    calls = [
        Call(f"srv{i % 20}", f"tool{i % 10}", {"path": f"{workspace}/zone{i % 10}/f{i}.py", "n": i})
        for i in range(2000)
    ]
    for i in range(2000):  # the files exist, as for most reads
        (workspace / f"zone{i % 10}" / f"f{i}.py").touch()
    for call in calls[:200]:
        engine.decide(call)
    times = []
    for call in calls:
        start = time.perf_counter_ns()
        engine.decide(call)
        times.append((time.perf_counter_ns() - start) / 1000)
    return statistics.median(times)


def filesystem_server() -> str:
    found = NPM_PREFIX / "node_modules" / ".bin" / "mcp-server-filesystem"
    if not found.exists():
        NPM_PREFIX.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--prefix", str(NPM_PREFIX), "--no-audit", "--no-fund",
             "@modelcontextprotocol/server-filesystem@2026.8.31"],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    return str(found)


def start_proxy(root: Path, fs: str) -> tuple[subprocess.Popen[str], str]:
    policy = root / "policy"
    policy.mkdir()
    shutil.copy(REPO / "policy" / "policy.yaml", policy / "policy.yaml")
    bin_dir = Path(sys.executable).parent
    servers = {
        "mcpServers": {
            "filesystem": {"command": fs, "args": ["${workspace}"]},
            "git": {"command": str(bin_dir / "mcp-server-git"), "args": []},
        }
    }
    (policy / "servers.yaml").write_text(yaml.safe_dump(servers))
    process = subprocess.Popen(
        [sys.executable, "-m", "ironcurtain.cli", "mcp-proxy", "serve", "--policy", str(policy),
         "--workspace", str(root / "ws"), "--audit", str(root / "audit" / "a.jsonl"),
         "--state-dir", str(root / "state"), "--port", "0",
         "--sandbox", "inline"],  # servers as the proxy's children (no rooms), as before
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in process.stdout], daemon=True).start()
    line = lines.get(timeout=60)
    return process, line.split()[-1]


async def timed_calls(client: Client, name: str, paths: list[str]) -> list[float]:
    # A different file each call: the circuit breaker (20 identical calls a minute) stays out.
    times = []
    for path in paths:
        start = time.perf_counter()
        result = await client.call_tool(name, {"path": path})
        times.append((time.perf_counter() - start) * 1000)
        assert not result.is_error, result
    return times


def cpu_ms(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def fsync_p50(directory: Path, count: int = 200) -> float:
    """What one durable append costs on this disk right now: the audit line's floor."""
    times = []
    fd = os.open(directory / "fsync-probe", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(count):
            start = time.perf_counter()
            os.write(fd, b"x" * 400 + b"\n")
            os.fdatasync(fd)
            times.append((time.perf_counter() - start) * 1000)
    finally:
        os.close(fd)
    return _pct(times, 0.5)


async def latency(url: str, fs: str, ws: Path, proxy_pid: int) -> dict[str, float]:
    paths = [str(ws / f"f{i % 400}.txt") for i in range(SEQUENTIAL + 20)]
    direct_params = StdioServerParameters(command=fs, args=[str(ws)])
    async with Client(direct_params, cache=None) as direct, Client(url, cache=None) as proxied:
        await timed_calls(direct, "read_text_file", paths[:20])  # warm up both
        await timed_calls(proxied, "filesystem__read_text_file", paths[:20])
        d, p = [], []
        cpu = 0.0
        for i in range(20, SEQUENTIAL + 20, 50):  # interleaved: both see the same machine load
            d += await timed_calls(direct, "read_text_file", paths[i : i + 50])
            before = cpu_ms(proxy_pid)
            p += await timed_calls(proxied, "filesystem__read_text_file", paths[i : i + 50])
            cpu += cpu_ms(proxy_pid) - before
    return {
        "proxy_cpu_ms_per_call": round(cpu / len(p), 3),
        "direct_p50_ms": round(_pct(d, 0.5), 3),
        "direct_p99_ms": round(_pct(d, 0.99), 3),
        "proxy_p50_ms": round(_pct(p, 0.5), 3),
        "proxy_p99_ms": round(_pct(p, 0.99), 3),
        "added_p50_ms": round(_pct(p, 0.5) - _pct(d, 0.5), 3),
        "added_p99_ms": round(_pct(p, 0.99) - _pct(d, 0.99), 3),
    }


async def gate_only(root: Path, ws: Path) -> dict[str, float]:
    """The proxy's own work without HTTP: Gate.call (decide, schema, fsynced audit, forward)
    versus the same backend's client called directly, in one process."""
    from ironcurtain.mcpproxy.service import ProxySettings, running_gate

    settings = ProxySettings(
        policy_dir=root / "policy",
        workspace=ws,
        audit_file=root / "audit" / "gate.jsonl",
        state_dir=root / "state",
    )
    paths = [str(ws / f"f{i % 400}.txt") for i in range(SEQUENTIAL)]
    async with running_gate(settings) as gate:
        backend = gate.backends["filesystem"]
        g, d = [], []
        for i, path in enumerate(paths):
            start = time.perf_counter()
            if i % 2:
                await gate.call("filesystem__read_text_file", {"path": path})
                g.append((time.perf_counter() - start) * 1000)
            else:
                await backend.call("read_text_file", {"path": path}, 30)
                d.append((time.perf_counter() - start) * 1000)

        async def concurrent(call: Callable[[str], Awaitable[object]]) -> float:
            async def one(i: int) -> None:
                for n in range(CALLS_PER_CLIENT):
                    await call(paths[(i * CALLS_PER_CLIENT + n) % len(paths)])

            start = time.perf_counter()
            with anyio.fail_after(300):
                async with anyio.create_task_group() as tg:
                    for i in range(CONCURRENT_CLIENTS):
                        tg.start_soon(one, i)
            return CONCURRENT_CLIENTS * CALLS_PER_CLIENT / (time.perf_counter() - start)

        backend_rate = await concurrent(
            lambda path: backend.call("read_text_file", {"path": path}, 30)
        )
        gate_rate = await concurrent(
            lambda path: gate.call("filesystem__read_text_file", {"path": path})
        )
    return {
        "gate_added_p50_ms": round(_pct(g, 0.5) - _pct(d, 0.5), 3),
        "backend_calls_per_s_16_concurrent": round(backend_rate, 1),
        "gate_calls_per_s_16_concurrent": round(gate_rate, 1),
    }


RESOURCE_POLICY = """\
version: 1
protected: {paths: ["${state_dir}"], names: [".env"]}
lists: {workspace: ["${workspace}"]}
servers:
  ref:
    root: ${workspace}
    tools: {}
rules:
  - name: workspace-read
    effect: allow
    reason: the workspace is readable
    when: {roles: [read-path], paths_within: workspace}
"""


async def resource_reads(root: Path, ws: Path) -> dict[str, float]:
    """A resource read's added p50: Gate.read_resource (route, decide the file: URI as a read
    path, fsynced audit, forward) versus the same backend asked directly, in one process, on
    the reference backend (ironcurtain.fakemcp) serving the workspace's files by file: URI."""
    from ironcurtain.mcpproxy.service import ProxySettings, running_gate

    folder = root / "resource-policy"
    folder.mkdir()
    (folder / "policy.yaml").write_text(RESOURCE_POLICY)
    backend = {"command": sys.executable, "args": ["-m", "ironcurtain.fakemcp", "--files", str(ws)]}
    (folder / "servers.yaml").write_text(yaml.safe_dump({"mcpServers": {"ref": backend}}))
    settings = ProxySettings(
        policy_dir=folder,
        workspace=ws,
        audit_file=root / "audit" / "resources.jsonl",
        state_dir=root / "state",
    )
    uris = [f"file://{ws}/f{i % 400}.txt" for i in range(SEQUENTIAL)]
    async with running_gate(settings) as gate:
        ref = gate.backends["ref"]
        await gate.read_resource(uris[1])  # the listing, kept until the backend restarts
        g, d = [], []
        for i, uri in enumerate(uris):
            start = time.perf_counter()
            if i % 2:
                await gate.read_resource(uri)
                g.append((time.perf_counter() - start) * 1000)
            else:
                await ref.request("resources/read", {"uri": uri}, 30)
                d.append((time.perf_counter() - start) * 1000)
    return {
        "resource_read_direct_p50_ms": round(_pct(d, 0.5), 3),
        "resource_read_added_p50_ms": round(_pct(g, 0.5) - _pct(d, 0.5), 3),
    }


async def notification_relay(count: int = 2000) -> dict[str, float]:
    """A relayed progress notification's cost in the proxy, from the backend's line as read to
    the SSE event as written: the strict parse, the routing by our token (streams.Router), the
    wait in the call's stream and the rebuilt event (notices.py), in one process. What the pipe
    and the client's socket add is the kernel's, as for any answer."""
    from ironcurtain import strictjson
    from ironcurtain.mcpproxy import notices
    from ironcurtain.mcpproxy.streams import Listener, Router

    router = Router()
    listener = Listener("client-token")
    times = []
    with router.forwarding(listener) as meta:
        assert meta is not None
        for n in range(count):
            params = {"progressToken": meta["progressToken"], "progress": n, "total": count}
            line = json.dumps({"jsonrpc": "2.0", "method": notices.PROGRESS, "params": params})
            start = time.perf_counter()
            router.deliver(strictjson.loads(line.encode(), max_depth=None))
            event = await listener.next()
            assert event is not None
            assert notices.sse(event) is not None
            times.append((time.perf_counter() - start) * 1e6)
    return {"notification_relay_p50_us": round(_pct(times, 0.5), 2)}


def lean_throughput(url: str, ws: Path) -> dict[str, float]:
    """16 kept-alive connections from a separate, lean client process (bench/_load.py)."""
    paths = [str(ws / f"f{i}.txt") for i in range(400)]
    done = subprocess.run(
        [sys.executable, "-m", "bench._load", url, str(CONCURRENT_CLIENTS),
         str(LEAN_CALLS_PER_CLIENT), "filesystem__read_text_file", *paths],
        capture_output=True, text=True, timeout=300, check=True, cwd=REPO,
    )  # fmt: skip
    figures = json.loads(done.stdout)
    assert figures["errors"] == 0, figures
    return {
        "proxy_calls_per_s_16_clients": figures["calls_per_s"],
        "load_client_cpu_ms_per_call": figures["cpu_ms_per_call"],
    }


async def throughput(url: str, ws: Path) -> float:
    async def one(i: int) -> None:
        # Distinct arguments per client: the circuit breaker is not what is measured here.
        async with Client(url, cache=None) as client:
            for n in range(CALLS_PER_CLIENT):
                path = str(ws / f"f{(i * CALLS_PER_CLIENT + n) % 400}.txt")
                result = await client.call_tool("filesystem__read_text_file", {"path": path})
                assert not result.is_error, result

    start = time.perf_counter()
    with anyio.fail_after(300):
        async with anyio.create_task_group() as tg:
            for i in range(CONCURRENT_CLIENTS):
                tg.start_soon(one, i)
    return CONCURRENT_CLIENTS * CALLS_PER_CLIENT / (time.perf_counter() - start)


def run() -> dict[str, float | int | str]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp).resolve()
        ws = root / "ws"
        for d in ("ws", "audit", "state", *(f"ws/zone{i}" for i in range(10))):
            (root / d).mkdir()
        (ws / "hello.txt").write_text("hello\n")
        for i in range(400):
            (ws / f"f{i}.txt").write_text(f"file {i}\n")
        figures: dict[str, float | int | str] = {
            "load_average_1m_at_start": round(os.getloadavg()[0], 2),
            "decision_p50_us": round(decisions("fs", ws), 2),
            "decision_lexical_p50_us": round(decisions("lexical", ws), 2),
            "policy_rules": 200,
        }
        fs = filesystem_server()
        figures["fsync_p50_ms"] = round(fsync_p50(root / "audit"), 3)
        process, url = start_proxy(root, fs)
        try:
            figures |= anyio.run(latency, url, fs, ws, process.pid)
            figures |= lean_throughput(url, ws)
            sdk_rate = anyio.run(throughput, url, ws)
            figures["proxy_calls_per_s_16_sdk_clients"] = round(sdk_rate, 1)
        finally:
            process.terminate()
            process.wait(timeout=30)
            process.stdout.close()
        figures |= anyio.run(gate_only, root, ws)
        figures |= anyio.run(resource_reads, root, ws)
        figures |= anyio.run(notification_relay)
        figures["load_average_1m"] = round(os.getloadavg()[0], 2)
        figures["concurrent_clients"] = CONCURRENT_CLIENTS
        figures["cores"] = os.cpu_count() or 0
    return figures
