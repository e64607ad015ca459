"""No detours: the backends' egress refuses hosts the policy did not allow and every
non-public address, redirect hops included -- tried with the real fetch server and a
redirecting server on loopback (loopback itself being the forbidden target)."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anyio
import mcp_types as types
import pytest

from ironcurtain.escalation.types import Verdict
from ironcurtain.mcpproxy.egress import Egress, EgressRules, address_problem
from ironcurtain.mcpproxy.service import ProxySettings, running_gate

from .conftest import write_servers
from .test_gate import FakeEscalator


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "127.8.9.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254",
     "100.100.100.200", "0.0.0.0", "::1", "fe80::1", "fd00:ec2::254",  # noqa: S104 - data
     "::ffff:127.0.0.1", "224.0.0.1", "100.64.0.1"],
)  # fmt: skip
def test_non_public_addresses_are_refused(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1::1", "8.8.8.8"])
def test_public_addresses_pass_the_address_check(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) is None


def test_a_host_is_reachable_only_while_a_call_permits_it() -> None:
    async def go() -> list[str]:
        egress = Egress(EgressRules(addresses=frozenset({"127.0.0.1:8443"})))
        before = await egress.check("127.0.0.1", 8443)
        with egress.permit(["127.0.0.1"]):
            during = await egress.check("127.0.0.1", 8443)
            other_port = await egress.check("127.0.0.1", 443)
            name = await egress.check("localhost", 8443)
        after = await egress.check("127.0.0.1", 8443)
        return [before[1], during[1], other_port[1], name[1], after[1]]

    before, during, other_port, name, after = anyio.run(go)
    assert "not allowed by the policy" in before
    assert during == ""
    assert "resolves to 127.0.0.1, a loopback address" in other_port
    assert "host localhost is not allowed" in name
    assert "not allowed by the policy" in after


def test_a_permit_for_one_rooms_call_opens_nothing_to_another_room(tmp_path: Path) -> None:
    """Two egress rooms, each with its own leg: while `fetch`'s call runs, its host is
    reachable through `fetch`'s socket only (not `other`'s, not the loopback listener)."""

    async def ask(socket: Path, port: int) -> bytes:
        stream = await anyio.connect_unix(str(socket))
        await stream.send(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        answer = await stream.receive(200)
        await stream.aclose()
        return answer.split(b"\r\n", 1)[0]

    async def go() -> dict[str, bytes | str]:
        with Site() as site:
            egress = Egress(EgressRules(addresses=frozenset({f"127.0.0.1:{site.port}"})))
            await egress.serve_unix(str(tmp_path / "fetch.sock"), "fetch")
            await egress.serve_unix(str(tmp_path / "other.sock"), "other")
            try:
                with anyio.fail_after(20), egress.permit(["127.0.0.1"], "fetch"):
                    return {
                        "fetch": await ask(tmp_path / "fetch.sock", site.port),
                        "other": await ask(tmp_path / "other.sock", site.port),
                        "loopback": (await egress.check("127.0.0.1", site.port))[1],
                        "other-leg": (await egress.check("127.0.0.1", site.port, "other"))[1],
                    }
            finally:
                await egress.close()

    found = anyio.run(go)
    assert found["fetch"] == b"HTTP/1.1 200 "  # control: the permitted room gets through
    assert found["other"].startswith(b"HTTP/1.1 403")
    assert "not allowed by the policy" in str(found["loopback"])
    assert "not allowed by the policy" in str(found["other-leg"])


class Site:
    """A loopback site: /page (allowed), /hop-port and /hop-name redirect to forbidden places."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.hits.append(self.path)
                if self.path == "/page":
                    body = b"<html><body><h1>Docs</h1><p>public page content</p></body></html>"
                    self.send_response(200)
                    self.send_header("content-type", "text/html")
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                elif self.path.startswith("/hop-"):
                    target = site.forbidden_url if self.path == "/hop-port" else site.renamed_url
                    self.send_response(302)
                    self.send_header("location", target)
                    self.send_header("content-length", "0")
                    self.end_headers()
                else:
                    self.send_response(404)
                    self.send_header("content-length", "0")
                    self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.forbidden_url = ""
        self.renamed_url = f"http://localhost:{self.port}/page"

    def __enter__(self) -> Site:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()


@pytest.fixture
def sites() -> Iterator[tuple[Site, Site]]:
    with Site() as public, Site() as internal:
        public.forbidden_url = f"http://127.0.0.1:{internal.port}/page"
        yield public, internal


def test_fetch_follows_no_redirect_to_a_forbidden_address_or_host(
    layout: dict[str, Path], filesystem_server: str, sites: tuple[Site, Site]
) -> None:
    public, internal = sites
    # The fetch server's own private-address guard is switched off: only our egress stands.
    write_servers(
        layout["policy"],
        filesystem_server,
        fetch_args=["--allow-private-ips", "--ignore-robots-txt"],
    )
    settings = ProxySettings(
        policy_dir=layout["policy"],
        workspace=layout["workspace"],
        audit_file=layout["audit"] / "session.jsonl",
        state_dir=layout["state"],
        egress_addresses=frozenset(
            {f"127.0.0.1:{public.port}"}
        ),  # this one site stands in for the web
    )
    base = f"http://127.0.0.1:{public.port}"

    async def go() -> tuple[list[types.CallToolResult], list[str]]:
        with anyio.fail_after(60):
            async with running_gate(settings, FakeEscalator(Verdict.APPROVED)) as gate:
                results = [
                    await gate.call("fetch__fetch", {"url": f"{base}/page"}),
                    await gate.call("fetch__fetch", {"url": f"{base}/hop-port"}),
                    await gate.call("fetch__fetch", {"url": f"{base}/hop-name"}),
                    await gate.call(
                        "fetch__fetch", {"url": f"http://127.0.0.1:{internal.port}/page"}
                    ),
                ]
                assert gate.egress is not None
                return results, list(gate.egress.refused)

    (page, hop_port, hop_name, direct), refused = anyio.run(go)

    def text(r: types.CallToolResult) -> str:
        return "".join(c.text for c in r.content if isinstance(c, types.TextContent))

    assert not page.is_error, text(page)  # control: the door works
    assert "public page content" in text(page)
    for result in (hop_port, hop_name, direct):
        assert result.is_error
        assert "public page content" not in text(result)
    assert internal.hits == []  # the internal site was never reached
    assert public.hits.count("/page") == 1  # the renamed hop never came back in either
    assert any(f"127.0.0.1:{internal.port}" in r and "loopback" in r for r in refused)
    assert any("host localhost is not allowed" in r for r in refused)
