"""The MITM proxy in its image (`python`), driven by curl on the host, to a fake vendor container.

Traffic: host curl -> 127.0.0.1:<published> -> proxy container -> fake vendor container, all on a
network this test creates. The vendor answers with the SHA-256 of the key it received, so the
swap can be checked from here without the vendor's memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network
from testcontainers.core.wait_strategies import LogMessageWaitStrategy

from ironcurtain.fakellm import certs
from ironcurtain.mitm import ca, providers
from ironcurtain.mitm.fake_keys import new_fake_key

from .conftest import TEST_LABELS

UID = 10001
REAL_KEY = "sk-ant-api03-REAL-key-for-the-container-test"


@dataclass(frozen=True)
class Running:
    proxy: DockerContainer
    port: int
    ca_file: Path
    fake: str


def _own(path: Path, mode: int) -> None:
    os.chown(path, UID, UID)
    path.chmod(mode)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("mitm-container")
    root.chmod(0o755)
    hosts = sorted(h for p in providers.builtin().values() for h in p.hosts)
    ca.init(root / "ca", hosts)
    _own(root / "ca", 0o700)
    _own(root / "ca" / ca.KEY_FILE, 0o600)
    vendor = certs.write(root / "vendor", ["api.anthropic.com"])
    (root / "vendor").chmod(0o755)
    _own(vendor.key, 0o600)
    for public in (vendor.cert, vendor.ca):
        public.chmod(0o644)
    secret = root / "anthropic_key"
    secret.write_text(REAL_KEY)
    _own(secret, 0o600)
    (root / "audit").mkdir()
    _own(root / "audit", 0o700)
    fake = new_fake_key("sk-ant-api03-")
    config = {
        "session": "container-test",
        "listen": {"host": "0.0.0.0", "port": 3128},  # noqa: S104 - inside the container
        "ca_dir": "/run/ca",
        "audit": "/var/log/ironcurtain/mitm.jsonl",
        "keys": {"anthropic": {"fake": fake, "real_file": "/run/secrets/anthropic_key"}},
        "upstream": {
            "api.anthropic.com": {"address": "vendor:8443", "ca_file": "/run/vendor/fake-ca.pem"}
        },
    }
    (root / "mitm.yaml").write_text(json.dumps(config))
    (root / "mitm.yaml").chmod(0o644)
    return root, fake


@pytest.fixture(scope="module")
def running(image: Callable[[str], str], files: tuple[Path, str]) -> Iterator[Running]:
    root, fake = files
    with Network(docker_network_kw={"labels": TEST_LABELS}) as network:
        vendor = (
            DockerContainer(image("python"))
            .with_command(
                "python3 -m ironcurtain.fakellm --host 0.0.0.0 --port 8443 "
                "--cert /run/vendor/fake-cert.pem --key /run/vendor/fake-key.pem"
            )
            .with_volume_mapping(str(root / "vendor"), "/run/vendor", "ro")
            .with_network(network)
            .with_network_aliases("vendor")
            .with_kwargs(labels=TEST_LABELS)
            .waiting_for(LogMessageWaitStrategy("fakellm: listening").with_startup_timeout(30))
        )
        proxy = (
            DockerContainer(image("python"))
            .with_command("ironcurtain mitm serve --config /etc/ironcurtain/mitm.yaml")
            .with_volume_mapping(str(root / "mitm.yaml"), "/etc/ironcurtain/mitm.yaml", "ro")
            .with_volume_mapping(str(root / "ca"), "/run/ca", "ro")
            .with_volume_mapping(str(root / "anthropic_key"), "/run/secrets/anthropic_key", "ro")
            .with_volume_mapping(str(root / "vendor"), "/run/vendor", "ro")
            .with_volume_mapping(str(root / "audit"), "/var/log/ironcurtain", "rw")
            .with_exposed_ports(3128)
            .with_tmpfs_mount("/tmp", "size=16m")  # leaf keys pass through here for a moment
            .with_network(network)
            .with_kwargs(
                labels=TEST_LABELS,
                read_only=True,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
            )
            .waiting_for(LogMessageWaitStrategy("listening on").with_startup_timeout(30))
        )
        with vendor, proxy:
            port = int(proxy.get_exposed_port(3128))
            yield Running(proxy, port, root / "ca" / ca.CERT_FILE, fake)


def _curl(
    run: Running,
    key: str,
    url: str = "https://api.anthropic.com/v1/messages",
    body: str = '{"model":"m","max_tokens":5,"messages":[]}',
):
    env = {k: v for k, v in os.environ.items() if k.lower() != "no_proxy"}
    env["HTTPS_PROXY"] = f"http://127.0.0.1:{run.port}"
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "--max-time",
            "10",
            "--cacert",
            str(run.ca_file),
            "-D",
            "-",
            "-H",
            f"x-api-key: {key}",
            "-H",
            "content-type: application/json",
            "-d",
            body,
            url,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    return result


def test_a_request_through_the_proxy_container_reaches_the_vendor_with_the_real_key(
    running: Running,
) -> None:
    result = _curl(running, running.fake)
    assert result.returncode == 0, result.stderr
    assert " 200 " in result.stdout.splitlines()[0] or "200" in result.stdout.split("\r\n")[1]
    digest = hashlib.sha256(REAL_KEY.encode()).hexdigest()
    assert f"x-fake-key-sha256: {digest}" in result.stdout
    assert "hello from the fake" in result.stdout


def _status(stdout: str) -> int:
    """The inner response's status (curl -D prints the CONNECT's 200 first)."""
    lines = [line for line in stdout.splitlines() if line.startswith("HTTP/1.1 ")]
    return int(lines[-1].split()[1])


def _image(source: dict[str, str]) -> str:
    block = {"type": "image", "source": source}
    message = {"role": "user", "content": [block]}
    return json.dumps({"model": "m", "max_tokens": 5, "messages": [message]})


def test_the_proxy_container_refuses_content_the_vendor_would_fetch_and_admits_inline_data(
    running: Running,
) -> None:
    fetched = _curl(running, running.fake, body=_image({"type": "url", "url": "https://e.test/a"}))
    assert _status(fetched.stdout) == 400
    assert "messages[0].content[0].source.type" in fetched.stdout
    inline = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
    control = _curl(running, running.fake, body=_image(inline))
    assert _status(control.stdout) == 200, control.stdout
    assert "hello from the fake" in control.stdout


def test_the_proxy_container_refuses_a_wrong_key(running: Running) -> None:
    result = _curl(running, "sk-ant-api03-not-ours")
    assert "authentication_error" in result.stdout
    assert " 401" in result.stdout


def test_the_proxy_container_refuses_a_host_off_the_allowlist(running: Running) -> None:
    result = _curl(running, running.fake, "https://example.com/")
    assert result.returncode != 0
    assert "403" in result.stderr or "403" in result.stdout


def test_the_proxy_runs_as_a_non_root_user(running: Running) -> None:
    status = running.proxy.exec(["cat", "/proc/1/status"]).output.decode()
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    assert "0" not in uids


def test_the_real_key_is_not_in_the_container_config_or_audit(
    running: Running, docker_client: docker.DockerClient, files: tuple[Path, str]
) -> None:
    attrs = docker_client.containers.get(running.proxy.get_wrapped_container().id).attrs
    assert REAL_KEY not in json.dumps(attrs)
    audit = running.proxy.exec(["cat", "/var/log/ironcurtain/mitm.jsonl"]).output.decode()
    assert '"decision":"allow"' in audit
    assert REAL_KEY not in audit
    assert files[1] not in audit
