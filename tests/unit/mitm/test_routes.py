"""Which requests a registry serves: tables of allowed and forbidden reads and writes."""

from __future__ import annotations

import pytest

from ironcurtain.mitm import registries
from ironcurtain.mitm.errors import Refusal
from ironcurtain.mitm.registries import Kind, from_url
from ironcurtain.mitm.routes import route

PYPI = from_url("pip", Kind.PYPI, "https://pypi.test.internal/simple")
NPM = from_url("npm", Kind.NPM, "https://npm.test.internal/")
APT = from_url("apt", Kind.APT, "http://apt.test.internal:8080/debian")

ALLOWED = [
    (PYPI, "GET", b"/simple/requests/", "index", "requests"),
    (PYPI, "HEAD", b"/simple/Foo.Bar/", "index", "Foo.Bar"),
    (PYPI, "GET", b"/simple/.ironcurtain/files/https/f.test.internal/x.whl", "file", ""),
    (NPM, "GET", b"/left-pad", "index", "left-pad"),
    (NPM, "GET", b"/@scope%2fname", "index", "@scope/name"),
    (NPM, "GET", b"/@scope%2Fname", "index", "@scope/name"),
    (NPM, "GET", b"/@scope/name", "index", "@scope/name"),
    (NPM, "GET", b"/left-pad/-/left-pad-1.3.0.tgz", "file", ""),
    (APT, "GET", b"/debian/dists/bookworm/InRelease", "apt-index", ""),
    (APT, "GET", b"/debian/dists/bookworm/main/binary-amd64/Packages.xz", "apt-index", ""),
    (APT, "GET", b"/debian/pool/main/h/hello/hello_2.10-3_amd64.deb", "file", "hello"),
]


@pytest.mark.parametrize(("registry", "method", "target", "action", "name"), ALLOWED)
def test_reads_a_registry_serves(
    registry: registries.Registry, method: str, target: bytes, action: str, name: str
) -> None:
    found = route(registry, method, target)
    assert (found.action, found.name) == (action, name)


FORBIDDEN = [
    (PYPI, "POST", b"/simple/", "registry-write"),  # upload
    (PYPI, "PUT", b"/simple/x/", "registry-write"),
    (PYPI, "GET", b"/pypi/x/json", "registry-path"),  # outside the index base
    (PYPI, "GET", b"/simple/x/?q=1", "registry-path"),
    (PYPI, "GET", b"/simple/../admin", "registry-path"),
    (PYPI, "GET", b"/simple/%2e%2e/admin", "registry-path"),
    (PYPI, "GET", b"/simple/a%2fb/", "registry-path"),
    (PYPI, "GET", b"/simple//x/", "registry-path"),
    (PYPI, "GET", b"/simple/a\\b/", "registry-path"),
    (NPM, "PUT", b"/left-pad", "registry-write"),  # publish
    (NPM, "DELETE", b"/left-pad/-rev/3", "registry-write"),  # unpublish
    (NPM, "GET", b"/-/v1/search", "registry-endpoint"),
    (NPM, "GET", b"/-/whoami", "registry-endpoint"),
    (NPM, "POST", b"/-/npm/v1/security/audits/quick", "registry-write"),
    (NPM, "PUT", b"/-/user/org.couchdb.user:me", "registry-write"),  # login
    (NPM, "GET", b"/left-pad/", "registry-path"),
    (APT, "GET", b"/debian/README", "registry-path"),
    (APT, "GET", b"/debian/pool/main/h/hello/hello_2.10.dsc", "registry-path"),
    (APT, "GET", b"/debian/pool/main/h/hello/notadeb.deb", "registry-path"),
    (APT, "POST", b"/debian/dists/x/Release", "registry-write"),
]


@pytest.mark.parametrize(("registry", "method", "target", "rule"), FORBIDDEN)
def test_requests_a_registry_refuses(
    registry: registries.Registry, method: str, target: bytes, rule: str
) -> None:
    with pytest.raises(Refusal) as caught:
        route(registry, method, target)
    assert caught.value.rule == rule
    assert caught.value.status in (400, 403)
