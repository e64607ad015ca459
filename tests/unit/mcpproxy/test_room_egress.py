"""A room with `network: egress` has one way out: its loopback port, relayed to the checking
egress leg the proxy serves on a unix socket in the room's folder. A request the checker allows
arrives; one it refuses is refused there, whatever the child does."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from ironcurtain.mcpproxy.config import EGRESS_SOCKET, BackendSpec, Room
from ironcurtain.mcpproxy.egress import Egress, EgressRules
from ironcurtain.mcpproxy.sandbox import child_environment, proxy_environment

from .test_egress import Site
from .test_sandbox import _folder, _line, serving

# Reads a URL a line; answers the status and the first body bytes, fetched through its proxy.
FETCHER = (
    "import os, sys, urllib.request, urllib.error\n"
    "print(os.environ['HTTP_PROXY'], flush=True)\n"
    "for url in sys.stdin:\n"
    "    try:\n"
    "        with urllib.request.urlopen(url.strip(), timeout=10) as r:\n"
    "            print(r.status, r.read(40).decode(), flush=True)\n"
    "    except urllib.error.HTTPError as e:\n"
    "        print(e.code, e.read(80).decode(), flush=True)\n"
)


def test_a_room_reaches_only_what_the_egress_checker_allows(tmp_path: Path) -> None:
    spec = BackendSpec(
        name="fetch",
        command=sys.executable,
        args=("-c", FETCHER),
        egress=True,
        room=Room(network="egress"),
    )
    folder = _folder(tmp_path)
    with Site() as allowed, Site() as other:
        rules = EgressRules(
            hosts=frozenset({"127.0.0.1"}), addresses=frozenset({f"127.0.0.1:{allowed.port}"})
        )

        async def go() -> list[str]:
            egress = Egress(rules)
            await egress.serve_unix(str(folder / EGRESS_SOCKET), "fetch")
            try:
                with anyio.fail_after(30):
                    async with serving([spec], folder) as socks:
                        stream = await anyio.connect_unix(socks["fetch"])
                        answers = [(await _line(stream)).decode().strip()]
                        for port in (allowed.port, other.port):
                            await stream.send(f"http://127.0.0.1:{port}/page\n".encode())
                            answers.append((await _line(stream)).decode().strip())
                        await stream.aclose()
                        return answers
            finally:
                await egress.close()

        proxy, passed, refused = anyio.run(go)
    assert proxy.startswith("http://127.0.0.1:")
    assert passed.startswith("200 <html>")
    assert refused.startswith("403 IronCurtain egress refused")
    assert allowed.hits == ["/page"]
    assert other.hits == []


def test_a_room_child_gets_the_relay_as_its_only_proxy_and_no_parent_setting() -> None:
    spec = BackendSpec(name="fetch", command="x", egress=True, room=Room(network="egress"))
    env = child_environment(spec, {"PATH": "/usr/bin", "REDIS_PASSWORD": "x"}) | (
        proxy_environment(4321)
    )
    assert env == {
        "PATH": "/usr/bin",
        "HTTP_PROXY": "http://127.0.0.1:4321",
        "HTTPS_PROXY": "http://127.0.0.1:4321",
        "http_proxy": "http://127.0.0.1:4321",
        "https_proxy": "http://127.0.0.1:4321",
        "NO_PROXY": "",
        "no_proxy": "",
    }
