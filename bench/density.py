"""Many idle sessions on one engine (issue 22): start scripted sessions one after another until
TARGET are idle at once (or the first failure), then tear them all down and check nothing is left.

start_*_s: each start (prepare + compose up + doors answering + isolation check), the first one
(an engine with no session) being the baseline of the later ones (`start_last_ratio`).
memory_*: resident memory (cgroup v1 `memory.stat` rss) of the session containers, agents apart,
with TARGET sessions idle; host_memavailable_drop_mb: the host's MemAvailable before and after.
engine_cpu_*: CPU of dockerd, containerd and the shims (their reaped children, iptables and
re-execs, included) from /proc, over the starts and over IDLE_WINDOW_S with every session idle.
The machine is shared: the load average is recorded beside the figures.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker

from ironcurtain.session import leases
from ironcurtain.session.run import Options, Session

from .session import _cli, bench_state

TARGET = int(os.environ.get("IRONCURTAIN_BENCH_DENSITY", "40"))
IDLE_WINDOW_S = 30.0  # one healthcheck period (compose.yaml: every 30 s)
ENGINE = ("dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2", "docker-proxy")
CGROUP = Path("/sys/fs/cgroup/memory/docker")
TICK = os.sysconf("SC_CLK_TCK")


def _engine_cpu_s() -> float:
    """User + system CPU of the engine's processes and their reaped children, in seconds."""
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if name not in ENGINE and not name.startswith("containerd-shim"):
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    return total / TICK


def _rss_mb(container_id: str) -> float:
    try:
        text = (CGROUP / container_id / "memory.stat").read_text()
    except OSError:
        return 0.0
    stats = dict(line.split() for line in text.splitlines())
    return int(stats.get("total_rss", stats.get("rss", "0"))) / 2**20


def _mem_available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _memory(client: docker.DockerClient, sessions: list[Session]) -> dict[str, float]:
    projects = {s.name.project for s in sessions}
    agents = others = 0.0
    by_service: dict[str, float] = {}
    for container in client.containers.list(filters={"label": "com.docker.compose.project"}):
        if container.labels.get("com.docker.compose.project") not in projects:
            continue
        service = container.labels.get("com.docker.compose.service", "?")
        rss = _rss_mb(container.id)
        if service == "agent":
            agents += rss
        else:
            others += rss
            by_service[service] = by_service.get(service, 0.0) + rss
    count = max(len(sessions), 1)
    return {
        "memory_agents_mb": round(agents, 1),
        "memory_beyond_agents_mb": round(others, 1),
        "memory_beyond_agents_per_session_mb": round(others / count, 1),
        **{
            f"memory_{service.replace('-', '_')}_per_session_mb": round(rss / count, 1)
            for service, rss in sorted(by_service.items())
        },
    }


def _leftovers(client: docker.DockerClient, sessions: list[Session]) -> tuple[int, int]:
    containers = networks = 0
    for session in sessions:
        label = f"com.docker.compose.project={session.name.project}"
        containers += len(client.containers.list(all=True, filters={"label": label}))
        networks += len(client.networks.list(filters={"label": label}))
    return containers, networks


def run() -> dict[str, float | int | str]:
    client = docker.from_env()
    with tempfile.TemporaryDirectory(prefix="ironcurtain-bench-density-") as tmp:
        environ, workspace = bench_state(Path(tmp), "ic-bench-density-shared", 18480)
        sessions: list[Session] = []
        starts: list[float] = []
        failure = ""
        load_before = os.getloadavg()[0]
        available_before = _mem_available_mb()
        try:
            cpu_began = _engine_cpu_s()
            began = time.monotonic()
            while len(starts) < TARGET:
                options = Options(
                    task="(bench)", agent="scripted", workspace=workspace, build_images=False
                )
                session = Session(options, say=lambda _: None, environ=environ)
                sessions.append(session)
                t0 = time.perf_counter()
                try:
                    session.prepare()
                    session.up()
                    session.check_isolation()
                except Exception as exc:  # the first failure ends the climb; it is the figure
                    failure = f"session {len(starts) + 1}: {type(exc).__name__}: {exc}"[:2000]
                    traceback.print_exc()
                    break
                starts.append(time.perf_counter() - t0)
            start_wall = time.monotonic() - began
            start_cpu = _engine_cpu_s() - cpu_began
            load_at_target = os.getloadavg()[0]
            memory = _memory(client, sessions)
            available_at_target = _mem_available_mb()
            idle_began = _engine_cpu_s()
            time.sleep(IDLE_WINDOW_S)  # a measurement window, not a wait for anything
            idle_cpu = _engine_cpu_s() - idle_began
        finally:
            t0 = time.perf_counter()
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(Session.teardown, sessions))
            teardown = time.perf_counter() - t0
            left_containers, left_networks = _leftovers(client, sessions)
            held = leases.Leases(leases.lease_dir(environ), leases.pool_from(environ), lambda _: [])
            left_leases = len(held.live_projects() & {s.name.project for s in sessions})
            _cli(environ, "shared", "down")
    return {
        "target_sessions": TARGET,
        "sessions_idle_at_once": len(starts),
        "failure": failure,
        "start_first_s": round(starts[0], 2) if starts else 0.0,
        "start_median_s": round(statistics.median(starts), 2) if starts else 0.0,
        "start_last_s": round(starts[-1], 2) if starts else 0.0,
        "start_max_s": round(max(starts), 2) if starts else 0.0,
        "start_last_ratio": round(starts[-1] / starts[0], 2) if starts else 0.0,
        "start_each_s": ",".join(f"{s:.2f}" for s in starts),
        "starts_wall_s": round(start_wall, 1),
        "engine_cpu_starts_s": round(start_cpu, 1),
        "engine_cpu_per_start_s": round(start_cpu / max(len(starts), 1), 2),
        "engine_cpu_idle_per_s": round(idle_cpu / IDLE_WINDOW_S, 3),
        **memory,
        "host_memavailable_drop_mb": round(available_before - available_at_target, 0),
        "teardown_all_s": round(teardown, 1),
        "leftover_containers": left_containers,
        "leftover_networks": left_networks,
        "leftover_leases": left_leases,
        "load_avg_1m_before": round(load_before, 2),
        "load_avg_1m_at_target": round(load_at_target, 2),
        "cpus": os.cpu_count() or 0,
    }
