"""Package registries through the real proxy on loopback, against the fake registry over TLS.

The proxy, our CA, the fake registry (its own CA, reached through the override map) and
http.client through CONNECT: what pip and npm do, request by request. The real tools run in the
agent image in tests/container/test_registries.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import http.server
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ironcurtain.fakellm import certs
from ironcurtain.fakeregistry import artifacts
from ironcurtain.fakeregistry.server import make_handler
from ironcurtain.mitm import app, ca, settings

from .harness import LoopThread

PYPI, NPM, APT = "pypi.test.internal", "npm.test.internal", "apt.test.internal"
DAY = dt.timedelta(days=1)
TOKEN = "npm-registry-token-held-by-the-proxy-only"
PACKAGES = [
    artifacts.Package("pypi", "ic-old", "1.0", 30 * DAY),
    artifacts.Package("pypi", "ic-old", "2.0", dt.timedelta(hours=3)),
    artifacts.Package("pypi", "ic-denied", "1.0", 30 * DAY),
    artifacts.Package("pypi", "ic-tampered", "1.0", 30 * DAY),
    artifacts.Package("npm", "ic-left", "1.0.0", 30 * DAY),
    artifacts.Package("npm", "ic-left", "1.1.0", dt.timedelta(hours=3)),
    artifacts.Package("npm", "ic-lock", "1.0.0", 30 * DAY),
    artifacts.Package("npm", "ic-lock", "2.0.0", dt.timedelta(hours=3)),
    artifacts.Package("apt", "ic-hello", "1.0", 30 * DAY),
    artifacts.Package("apt", "ic-denied", "1.0", 30 * DAY),
]


@dataclass
class Flow:
    port: int
    ca_file: Path
    audit_path: Path
    inventory_path: Path
    hashes: dict[str, str]
    writes: list[str]
    seen_auth: dict[str, str | None]  # path -> Authorization header the registry received

    def request(
        self, host: str, method: str, path: str, headers: dict[str, str] | None = None
    ) -> tuple[http.client.HTTPResponse, bytes]:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=context, timeout=10)
        conn.set_tunnel(host, 443)
        body = b"{}" if method in ("POST", "PUT") else None
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response, data

    def audit(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.audit_path.read_text().splitlines()]


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    root = tmp_path_factory.mktemp("registry-flow")
    now = dt.datetime.now(dt.UTC)
    hashes = artifacts.build(root / "tree", PACKAGES, now, NPM)
    # The registry now serves other bytes than its index's hash says (a swapped file).
    (root / "tree" / "files" / "ic_tampered-1.0-py3-none-any.whl").write_bytes(b"swapped")
    hosts = [PYPI, NPM, APT]
    ca.init(root / "ca", ["api.anthropic.com", "platform.claude.com", *hosts])
    upstream_certs = certs.write(root / "upstream", hosts)
    writes: list[str] = []
    seen_auth: dict[str, str | None] = {}
    (root / "npm-token").write_text(TOKEN + "\n")

    class Recording(make_handler(root / "tree")):  # type: ignore[misc]
        def do_GET(self) -> None:
            seen_auth[self.path] = self.headers.get("authorization")
            super().do_GET()

        def _write(self) -> None:
            writes.append(f"{self.command} {self.path}")
            super()._write()

        do_POST = do_PUT = do_DELETE = _write

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recording)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(upstream_certs.cert, upstream_certs.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    address = f"127.0.0.1:{server.server_address[1]}"
    doc = {
        "session": "registry-flow",
        "listen": {"host": "127.0.0.1", "port": 0},
        "ca_dir": str(root / "ca"),
        "audit": str(root / "audit" / "mitm.jsonl"),
        "keys": {"claude-platform": {}},
        "upstream": {h: {"address": address, "ca_file": str(upstream_certs.ca)} for h in hosts},
        "registries": {
            "quarantine_days": 2,
            "deny": ["ic-denied"],
            "list": [
                {"name": "pip", "kind": "pypi", "url": f"https://{PYPI}/simple"},
                {
                    "name": "npm",
                    "kind": "npm",
                    "url": f"https://{NPM}/npm",
                    "token_file": str(root / "npm-token"),
                },
                {"name": "apt", "kind": "apt", "url": f"https://{APT}/debian"},
            ],
        },
    }
    parsed = settings.parse(doc)
    loop = LoopThread()
    running = app.running(parsed, port=0)
    _proxy, port = loop.run(running.__aenter__())
    yield Flow(
        port,
        root / "ca" / ca.CERT_FILE,
        parsed.audit_path,
        parsed.audit_path.parent / "packages.json",
        hashes,
        writes,
        seen_auth,
    )
    loop.run(running.__aexit__(None, None, None))
    loop.stop()
    server.shutdown()
    server.server_close()


def _pypi_page(flow: Flow, project: str) -> dict[str, Any]:
    response, data = flow.request(PYPI, "GET", f"/simple/{project}/")
    assert response.status == 200, response.reason
    return json.loads(data)


def test_a_pypi_page_marks_the_young_version_yanked_with_the_reason(flow: Flow) -> None:
    page = _pypi_page(flow, "ic-old")
    by_name = {f["filename"]: f for f in page["files"]}
    old = by_name["ic_old-1.0-py3-none-any.whl"]
    young = by_name["ic_old-2.0-py3-none-any.whl"]
    assert old["yanked"] is False
    assert "quarantined" in young["yanked"]
    assert "younger than 2 days" in young["yanked"]
    assert old["url"].startswith(f"https://{PYPI}/")


def test_an_old_wheel_is_served_audited_and_inventoried_with_its_hash(flow: Flow) -> None:
    page = _pypi_page(flow, "ic-old")
    old = next(f for f in page["files"] if f["filename"].startswith("ic_old-1.0"))
    path = old["url"].removeprefix(f"https://{PYPI}")
    response, data = flow.request(PYPI, "GET", path)
    assert response.status == 200
    digest = hashlib.sha256(data).hexdigest()
    assert digest == flow.hashes[old["filename"]]
    served = [e for e in flow.audit() if e["event"] == "package"]
    assert any(e["sha256"] == digest and e["package"] == "ic-old" for e in served)
    items = json.loads(flow.inventory_path.read_text())["packages"]
    item = next(i for i in items if i["file"] == old["filename"])
    assert (item["name"], item["version"], item["sha256"], item["size"]) == (
        "ic-old",
        "1.0",
        digest,
        len(data),
    )
    assert item["purl"] == "pkg:pypi/ic-old@1.0"


def test_a_quarantined_wheel_is_refused_with_the_reason_in_the_status_line(flow: Flow) -> None:
    page = _pypi_page(flow, "ic-old")
    young = next(f for f in page["files"] if f["filename"].startswith("ic_old-2.0"))
    response, data = flow.request(PYPI, "GET", young["url"].removeprefix(f"https://{PYPI}"))
    assert response.status == 403
    assert "quarantined" in response.reason
    assert "ic-old 2.0" in response.reason
    assert response.getheader("x-ironcurtain-refused") == "quarantine"
    assert "quarantined" in json.loads(data)["error"]


def test_a_file_no_served_index_listed_is_refused(flow: Flow) -> None:
    response, _ = flow.request(PYPI, "GET", "/simple/files/ic_denied-1.0-py3-none-any.whl")
    assert response.status == 403
    assert response.getheader("x-ironcurtain-refused") == "registry-unlisted"


@pytest.mark.parametrize(
    ("host", "path"),
    [(NPM, "/npm/ic-denied"), (APT, "/debian/pool/main/i/ic-denied/ic-denied_1.0_all.deb")],
)
def test_a_denied_name_is_refused_in_npm_and_apt(flow: Flow, host: str, path: str) -> None:
    response, _ = flow.request(host, "GET", path)
    assert response.status == 403
    assert "deny list" in response.reason


def test_a_denied_python_project_is_listed_but_its_files_are_refused(flow: Flow) -> None:
    # pip does not show why an index page was refused; it does show a refused download's reason.
    page = _pypi_page(flow, "ic-denied")
    (entry,) = page["files"]
    assert entry["yanked"] is False
    response, _ = flow.request(PYPI, "GET", entry["url"].removeprefix(f"https://{PYPI}"))
    assert response.status == 403
    assert "deny list" in response.reason
    assert response.getheader("x-ironcurtain-refused") == "registry-name"


@pytest.mark.parametrize(
    ("host", "method", "path"),
    [
        (PYPI, "POST", "/simple/"),
        (PYPI, "POST", "/simple/legacy"),
        (NPM, "PUT", "/npm/ic-left"),
        (NPM, "DELETE", "/npm/ic-left/-rev/1"),
        (NPM, "PUT", "/npm/-/user/org.couchdb.user:me"),
        (NPM, "GET", "/npm/-/v1/search"),
        (NPM, "POST", "/npm/-/npm/v1/security/advisories/bulk"),
        (APT, "PUT", "/debian/pool/main/i/ic-hello/ic-hello_1.0_all.deb"),
        (PYPI, "GET", "/simple/ic-old/?format=json"),
        (PYPI, "GET", "/other/path"),
        (APT, "GET", "/debian/README"),
    ],
)
def test_writes_login_search_audit_and_odd_paths_are_refused_before_the_registry(
    flow: Flow, host: str, method: str, path: str
) -> None:
    before = list(flow.writes)
    response, _ = flow.request(host, method, path)
    assert response.status in (400, 403)
    assert response.reason.startswith("IronCurtain: ")
    assert flow.writes == before


def test_an_npm_packument_deprecates_the_young_version_and_moves_latest(flow: Flow) -> None:
    response, data = flow.request(NPM, "GET", "/npm/ic-left", {"accept": "application/json"})
    assert response.status == 200
    doc = json.loads(data)
    assert doc["dist-tags"]["latest"] == "1.0.0"
    assert "quarantined" in doc["versions"]["1.1.0"]["deprecated"]
    assert "deprecated" not in doc["versions"]["1.0.0"]
    tarball = doc["versions"]["1.0.0"]["dist"]["tarball"].removeprefix(f"https://{NPM}")
    ok, body = flow.request(NPM, "GET", tarball)
    assert ok.status == 200
    assert hashlib.sha256(body).hexdigest() == flow.hashes["ic-left-1.0.0.tgz"]
    young = doc["versions"]["1.1.0"]["dist"]["tarball"].removeprefix(f"https://{NPM}")
    refused, _ = flow.request(NPM, "GET", young)
    assert refused.status == 403
    assert "quarantined" in refused.reason


def test_apt_indexes_pass_and_an_allowed_deb_is_inventoried(flow: Flow) -> None:
    response, data = flow.request(APT, "GET", "/debian/dists/stable/Release")
    assert response.status == 200
    assert b"SHA256:" in data
    missing, _ = flow.request(APT, "GET", "/debian/dists/stable/InRelease")
    assert missing.status == 404
    deb, body = flow.request(APT, "GET", "/debian/pool/main/i/ic-hello/ic-hello_1.0_all.deb")
    assert deb.status == 200
    items = json.loads(flow.inventory_path.read_text())["packages"]
    assert any(
        i["name"] == "ic-hello" and i["sha256"] == hashlib.sha256(body).hexdigest() for i in items
    )


def test_a_tarball_named_by_a_lockfile_is_checked_against_its_packument_first(
    flow: Flow,
) -> None:
    # npm ci fetches the lockfile's tarball URLs without asking for the packument.
    ok, body = flow.request(NPM, "GET", "/npm/ic-lock/-/ic-lock-1.0.0.tgz")
    assert ok.status == 200
    assert hashlib.sha256(body).hexdigest() == flow.hashes["ic-lock-1.0.0.tgz"]
    young, _ = flow.request(NPM, "GET", "/npm/ic-lock/-/ic-lock-2.0.0.tgz")
    assert young.status == 403
    assert "quarantined" in young.reason
    unknown, _ = flow.request(NPM, "GET", "/npm/ic-lock/-/ic-lock-9.9.9.tgz")
    assert unknown.status == 403
    assert unknown.getheader("x-ironcurtain-refused") == "registry-unlisted"


def test_a_file_whose_bytes_do_not_match_the_index_hash_is_refused_and_not_recorded(
    flow: Flow,
) -> None:
    (entry,) = _pypi_page(flow, "ic-tampered")["files"]
    response, data = flow.request(PYPI, "GET", entry["url"].removeprefix(f"https://{PYPI}"))
    assert response.status == 502
    assert response.getheader("x-ironcurtain-refused") == "registry-hash"
    assert b"swapped" not in data
    assert not any(
        e.get("package") == "ic-tampered" for e in flow.audit() if e["event"] == "package"
    )
    if flow.inventory_path.exists():
        assert "ic-tampered" not in flow.inventory_path.read_text()


def test_a_registry_token_is_added_upstream_and_the_agents_own_is_never_forwarded(
    flow: Flow,
) -> None:
    response, data = flow.request(
        NPM, "GET", "/npm/ic-left", {"authorization": "Bearer agent-chosen-token"}
    )
    assert response.status == 200
    assert flow.seen_auth["/npm/ic-left"] == f"Bearer {TOKEN}"
    assert TOKEN.encode() not in data
    assert TOKEN not in flow.audit_path.read_text()
    flow.request(PYPI, "GET", "/simple/ic-old/", {"authorization": "Bearer agent-chosen-token"})
    assert flow.seen_auth["/simple/ic-old/"] is None  # no token configured for this registry


def test_a_request_for_another_registry_inside_a_tunnel_is_refused(flow: Flow) -> None:
    response, _ = flow.request(PYPI, "GET", "/npm/ic-left", {"Host": NPM})
    assert response.status == 403
    assert response.getheader("x-ironcurtain-refused") == "host-header"


def test_a_registry_request_head_over_the_limit_is_refused_with_431(flow: Flow) -> None:
    # The registries share the vendors' h11 driver (driver.py), and with it the head-size cap.
    response, _ = flow.request(PYPI, "GET", "/simple/ic-hello/", {"x-filler": "a" * 40_000})
    assert response.status == 431
