"""The fake LLM vendor (real TLS, scripted answers) and a policy directory to work on."""

from __future__ import annotations

import shutil
import ssl
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
import yaml

from ironcurtain.english.annotate import ToolInfo
from ironcurtain.english.listing import list_all
from ironcurtain.fakellm import certs
from ironcurtain.fakellm.server import FakeVendor
from ironcurtain.keystore import KeyStore
from ironcurtain.mcpproxy.config import load_backends

from ..mcpproxy.conftest import filesystem_server, write_servers
from ..mitm.harness import LoopThread

__all__ = ["filesystem_server"]  # the reference filesystem server, installed once from npm

REPO = Path(__file__).resolve().parents[3]
NOTES = Path(__file__).with_name("notes_server.py")
KEY = "sk-ant-api03-REAL-english-key-never-shown"


@dataclass
class Vendor:
    fake: FakeVendor
    url: str
    ca: Path

    def script(self, *answers: str) -> None:
        self.fake.replies.clear()
        self.fake.replies.extend(answers)

    def requests(self) -> int:
        return sum(1 for s in self.fake.seen if s.target.startswith("/v1/messages"))


@pytest.fixture(scope="session")
def _vendor_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vendor]:
    files = certs.write(tmp_path_factory.mktemp("vendor"), ["localhost"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.cert, files.key)
    loop = LoopThread()
    fake = FakeVendor()
    port = loop.run(fake.start(context, "127.0.0.1"))
    yield Vendor(fake, f"https://localhost:{port}", files.ca)
    loop.run(fake.close())
    loop.stop()


@pytest.fixture
def vendor(_vendor_process: Vendor) -> Iterator[Vendor]:
    _vendor_process.fake.seen.clear()
    _vendor_process.fake.replies.clear()
    yield _vendor_process
    assert not _vendor_process.fake.replies, "a scripted answer was never asked for"


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state directory with the real key in the key store; no key in the environment."""
    root = tmp_path / "state"
    monkeypatch.setenv("IRONCURTAIN_STATE_DIR", str(root))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-env-key-must-not-be-used")
    KeyStore(root / "keys").set("anthropic", KEY)
    return root


def make_policy_dir(root: Path, filesystem_server: str) -> Path:
    target = root / "policy"
    target.mkdir()
    (root / "workspace").mkdir()
    for name in ("policy.yaml", "constitution.md"):
        shutil.copy(REPO / "policy" / name, target / name)
    write_servers(target, filesystem_server)
    servers = yaml.safe_load((target / "servers.yaml").read_text())
    servers["mcpServers"]["notes"] = {"command": sys.executable, "args": [str(NOTES)]}
    (target / "servers.yaml").write_text(yaml.safe_dump(servers))
    return target


@pytest.fixture
def policy_dir(tmp_path: Path, filesystem_server: str) -> Path:
    """The shipped policy and constitution; the real servers of the proxy tests plus `notes`."""
    return make_policy_dir(tmp_path, filesystem_server)


@pytest.fixture(scope="session")
def listings(
    tmp_path_factory: pytest.TempPathFactory, filesystem_server: str
) -> dict[str, tuple[ToolInfo, ...]]:
    """What those servers offer, listed once (the tests script the model's answers from it)."""
    target = make_policy_dir(tmp_path_factory.mktemp("listing"), filesystem_server)
    variables = {"workspace": str(target.parent / "workspace")}
    return anyio.run(list_all, load_backends(target / "servers.yaml", variables), 30.0)
