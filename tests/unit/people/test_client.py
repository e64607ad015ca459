"""A person's token goes to the approval URL they gave and nowhere else: not to where a redirect
points, not through a proxy the environment names, not to a server another CA vouches for.

Real local HTTP(S) servers on 127.0.0.1 record every request they get."""

from __future__ import annotations

import http.server
import json
import socket
import ssl
import threading
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ironcurtain.escalation import tls
from ironcurtain.people.client import ApiError, Client
from ironcurtain.registrar.client import Registrar, RegistrarError
from ironcurtain.shared.pki import TeamTLS

TOKEN = "member-token-123"


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[dict[str, str]]
    answer: Callable[[http.server.BaseHTTPRequestHandler], None]

    def do_GET(self) -> None:
        type(self).seen.append({"path": self.path, "auth": self.headers.get("Authorization", "")})
        type(self).answer(self)

    def log_message(self, *_: object) -> None:
        pass


def _json(body: dict[str, str]) -> Callable[[http.server.BaseHTTPRequestHandler], None]:
    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        data = json.dumps(body).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    return answer


def _redirect(to: str) -> Callable[[http.server.BaseHTTPRequestHandler], None]:
    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", to)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return answer


@contextmanager
def _server(
    answer: Callable[[http.server.BaseHTTPRequestHandler], None],
    certificate: tuple[Path, Path] | None = None,
) -> Iterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []
    handler = type("Handler", (_Recorder,), {"seen": seen, "answer": staticmethod(answer)})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    scheme = "http"
    if certificate:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*map(str, certificate))
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _team_ca(directory: Path) -> TeamTLS:
    found = TeamTLS(directory)
    found.ensure(["127.0.0.1"], say=lambda _: None)
    return found


def test_a_redirect_is_not_followed_so_the_token_goes_nowhere_else() -> None:
    with (
        _server(_json({"member": "mallory"})) as (elsewhere, stolen),
        _server(_redirect(elsewhere + "/api/v1/whoami")) as (url, seen),
        pytest.raises(ApiError) as refused,
    ):
        Client(url, TOKEN).whoami()
    assert refused.value.status == 302
    assert "not followed" in str(refused.value)
    assert elsewhere in str(refused.value)
    assert seen == [{"path": "/api/v1/whoami", "auth": f"Bearer {TOKEN}"}]
    assert stolen == []


@pytest.mark.parametrize("status", [301, 303, 307, 308])
def test_no_kind_of_redirect_is_followed(status: int) -> None:
    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Location", "http://127.0.0.1:9/")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    with _server(answer) as (url, _), pytest.raises(ApiError) as refused:
        Client(url, TOKEN).whoami()
    assert refused.value.status == status


def test_a_proxy_in_the_environment_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    with (
        _server(_json({"member": "proxy"})) as (proxy, through_proxy),
        _server(_json({"member": "alice"})) as (url, seen),
    ):
        for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
            monkeypatch.setenv(name, proxy)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        # Control: urllib's own default does send the request to that proxy (a fresh default
        # opener: urlopen's global one read the environment when some earlier test built it).
        urllib.request.build_opener().open(url + "/control", timeout=5).read()
        assert [s["path"] for s in through_proxy] == [url + "/control"]
        assert Client(url, TOKEN).whoami() == "alice"
    assert seen == [{"path": "/api/v1/whoami", "auth": f"Bearer {TOKEN}"}]
    assert len(through_proxy) == 1  # only the control's request


def test_plain_http_carries_a_token_only_to_loopback() -> None:
    """The machine's own name reaches a server listening on every address: spelled that way,
    plain http is refused before anything is sent; spelled as loopback it goes (control)."""
    seen: list[dict[str, str]] = []
    answer = staticmethod(_json({"member": "alice"}))
    handler = type("Handler", (_Recorder,), {"seen": seen, "answer": answer})
    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), handler)  # noqa: S104 - the point
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        name = socket.gethostname()
        assert name != "localhost"
        for url in (
            f"http://{name}:{port}",
            f"http://127.0.0.1@{name}:{port}",  # userinfo that looks like loopback
            "http://10.0.0.1:9",
            "http://localhost.example:9",
        ):
            with pytest.raises(ApiError, match="plain http to another machine"):
                Client(url, TOKEN).whoami()
        assert seen == []
        assert Client(f"http://localhost:{port}", TOKEN).whoami() == "alice"
        assert Client(f"http://127.0.0.1:{port}", TOKEN).whoami() == "alice"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert len(seen) == 2


def test_over_https_only_the_given_ca_is_trusted(tmp_path: Path) -> None:
    team, other = _team_ca(tmp_path / "team"), _team_ca(tmp_path / "other")
    certificate = (other.cert("approval"), other.key("approval"))
    with (
        _server(_json({"member": "mallory"}), certificate) as (url, seen),
        pytest.raises(ApiError) as refused,
    ):
        Client(url, TOKEN, context=tls.https_context(url, team.ca)).whoami()
    assert refused.value.status == 0
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)
    assert seen == []  # refused in the handshake, before any header was sent
    # Control: the server the team CA vouches for is reached.
    certificate = (team.cert("approval"), team.key("approval"))
    with _server(_json({"member": "alice"}), certificate) as (url, seen):
        assert Client(url, TOKEN, context=tls.https_context(url, team.ca)).whoami() == "alice"
    assert seen == [{"path": "/api/v1/whoami", "auth": f"Bearer {TOKEN}"}]


def test_without_a_ca_a_private_certificate_is_refused(tmp_path: Path) -> None:
    team = _team_ca(tmp_path / "team")
    certificate = (team.cert("approval"), team.key("approval"))
    with _server(_json({"member": "alice"}), certificate) as (url, seen):
        assert tls.https_context(url, None) is None  # the system store
        with pytest.raises(ApiError, match="CERTIFICATE_VERIFY_FAILED"):
            Client(url, TOKEN).whoami()
    assert seen == []


def test_the_registrar_client_follows_no_redirect_either(tmp_path: Path) -> None:
    team = _team_ca(tmp_path / "team")
    certificate = (team.cert("registrar"), team.key("registrar"))
    with (
        _server(_json({"member": "mallory", "redis_url": "x"})) as (elsewhere, stolen),
        _server(_redirect(elsewhere + "/v1/team"), certificate) as (url, seen),
        pytest.raises(RegistrarError) as refused,
    ):
        Registrar(url, team.ca, TOKEN).team()
    assert refused.value.status == 302
    assert "not followed" in str(refused.value)
    assert len(seen) == 1
    assert stolen == []


def test_an_answer_that_is_not_a_json_object_is_an_error() -> None:
    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "2")
        handler.end_headers()
        handler.wfile.write(b"[]")

    with _server(answer) as (url, _), pytest.raises(ApiError, match="not an object"):
        Client(url, TOKEN).call("GET", "/api/v1/whoami")
