"""The MCP proxy's start inside its image: CPU until it announces "serving", then the first
initialize + tools/list (answered from the image's saved listings) and the first tools/call (a
backend starts for it), each as wall time and the proxy process's own CPU.

`make bench-proxystart` runs the probe below RUNS times in ironcurtain/mcp-proxy:<tag>, one fresh
container each (`docker run --rm`), and reports medians. The probe reads the proxy's CPU from
/proc/PID/stat (utime + stime: its own, not its children's) the moment its announce line
arrives. The baseline of the same run is the bare interpreter's start in the same image
(`python_start_cpu_ms`). Redis is left out: the proxy makes its Redis client (and loads redis
and rq) on the first escalation, so a session's start does not pay for it either.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

RUNS = 5

PROBE = r"""
import http.client, json, os, subprocess, sys, time

TICK = os.sysconf("SC_CLK_TCK")


def cpu_ms(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / TICK


def post(conn, message, headers):
    base = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    conn.request("POST", "/mcp", json.dumps(message), {**base, **headers})
    reply = conn.getresponse()
    return reply, json.loads(reply.read())


began = time.perf_counter()
proxy = subprocess.Popen(
    ["ironcurtain", "mcp-proxy", "serve", "--policy", "/etc/ironcurtain/policy",
     "--workspace", "/workspace", "--audit", "/audit/mcp.jsonl", "--state-dir", "/tmp/state",
     "--host", "127.0.0.1", "--port", "8080", "--sandbox", "inline",
     "--tools-cache", "/opt/ironcurtain/tools"],
    stdout=subprocess.PIPE, text=True,
)
line = proxy.stdout.readline()
out = {"serving_cpu_ms": cpu_ms(proxy.pid), "serving_wall_ms": (time.perf_counter() - began) * 1e3}
assert "serving on" in line, line
conn = http.client.HTTPConnection("127.0.0.1", 8080, timeout=60)
before, t0 = cpu_ms(proxy.pid), time.perf_counter()
hello = {"protocolVersion": "2025-06-18", "capabilities": {},
         "clientInfo": {"name": "probe", "version": "1"}}
reply, _ = post(conn, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello}, {})
session = {"mcp-session-id": reply.getheader("mcp-session-id"),
           "mcp-protocol-version": "2025-06-18"}
_, listed = post(conn, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, session)
out["first_list_wall_ms"] = (time.perf_counter() - t0) * 1e3
out["first_list_cpu_ms"] = cpu_ms(proxy.pid) - before
out["tools"] = len(listed["result"]["tools"])
call = {"name": "filesystem__list_directory", "arguments": {"path": "/workspace"}}
for which in ("first", "second"):
    before, t0 = cpu_ms(proxy.pid), time.perf_counter()
    _, called = post(conn, {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": call},
                     session)
    out[f"{which}_call_wall_ms"] = (time.perf_counter() - t0) * 1e3
    out[f"{which}_call_cpu_ms"] = cpu_ms(proxy.pid) - before
    assert not called["result"].get("isError"), called
proxy.terminate()
proxy.wait(10)
bare = ("import resource; r = resource.getrusage(resource.RUSAGE_SELF); "
        "print(r.ru_utime + r.ru_stime)")
out["python_start_cpu_ms"] = float(subprocess.check_output(["python3", "-c", bare])) * 1e3
print(json.dumps(out))
"""


def _image() -> str:
    from pathlib import Path

    from ironcurtain.config.settings import load

    tag = load(os.environ, Path(__file__).resolve().parents[1]).image_tag  # as make images built it
    return f"ironcurtain/mcp-proxy:{tag}"


def probe(image: str) -> dict[str, float]:
    done = subprocess.run(
        ["docker", "run", "--rm", "--tmpfs", "/tmp",  # noqa: S108 (the container's own)
         "--label", "ironcurtain.bench=proxystart", image, "python3", "-c", PROBE],
        capture_output=True, text=True, timeout=180, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def medians(images: list[str], runs: int = RUNS) -> dict[str, dict[str, float]]:
    """Each image's medians, the images' runs alternated (the machine's load hits them alike)."""
    found: dict[str, list[dict[str, float]]] = {image: [] for image in images}
    for _ in range(runs):
        for image in images:
            found[image].append(probe(image))
    return {
        image: {k: round(statistics.median(r[k] for r in rs), 1) for k in rs[0]}
        for image, rs in found.items()
    }


def run() -> dict[str, float | int | str]:
    image = _image()
    return {"image": image, "runs": RUNS, **medians([image])[image]}


if __name__ == "__main__":
    # python -m bench.proxystart IMAGE [IMAGE ...]: compare images (e.g. before and after)
    print(json.dumps(medians(sys.argv[1:] or [_image()]), indent=2))
