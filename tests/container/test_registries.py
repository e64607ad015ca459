"""Real pip, npm and apt in the agent image, through the MITM proxy container, to a fake registry.

Three containers on a network this test creates: the fake registry (python image, TLS with its
own CA, every request printed), the proxy (python image, `ironcurtain mitm serve`, the override
map sending the made-up registry names to the fake) and the agent (agent-base image, our CA
mounted at run time, the environment the adapters and `registries.agent_environment` give it).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network
from testcontainers.core.wait_strategies import LogMessageWaitStrategy

from ironcurtain.agents.adapter import Endpoints, proxy_environment
from ironcurtain.fakellm import certs
from ironcurtain.fakeregistry import artifacts
from ironcurtain.mitm import ca, registries
from ironcurtain.session.hardening import AGENT_UID as HARDENED_AGENT_UID

from .conftest import TEST_LABELS

PROXY_UID = 10001
AGENT_UID = HARDENED_AGENT_UID  # images/agent-base's user
PYPI, NPM, APT = "pypi.test.internal", "npm.test.internal", "apt.test.internal"
DAY = dt.timedelta(days=1)
PACKAGES = [
    artifacts.Package("pypi", "ic-old", "1.0", 30 * DAY),
    artifacts.Package("pypi", "ic-old", "2.0", dt.timedelta(hours=3)),
    artifacts.Package("pypi", "ic-denied", "1.0", 30 * DAY),
    artifacts.Package("npm", "ic-left", "1.0.0", 30 * DAY),
    artifacts.Package("npm", "ic-left", "1.1.0", dt.timedelta(hours=3)),
    artifacts.Package("npm", "ic-denied", "1.0.0", 30 * DAY),
    artifacts.Package("apt", "ic-hello", "1.0", 30 * DAY),
    artifacts.Package("apt", "ic-denied", "1.0", 30 * DAY),
]
REGISTRIES = [
    {"name": "pip", "kind": "pypi", "url": f"https://{PYPI}/simple"},
    {"name": "npm", "kind": "npm", "url": f"https://{NPM}/npm"},
    {
        "name": "apt",
        "kind": "apt",
        "url": f"https://{APT}/debian",
        "suites": [artifacts.APT_SUITE],
        "components": [artifacts.APT_COMPONENT],
        "options": {"trusted": "yes"},  # the test repository is not signed
    },
]
CA_IN_AGENT = "/run/ironcurtain/ca.pem"


@dataclass(frozen=True)
class Stack:
    registry: DockerContainer
    agent: DockerContainer  # confined as in a session: non-root, read-only root, no capabilities
    root_agent: DockerContainer  # the same image as root, only to show `apt-get install`
    audit_dir: Path
    hashes: dict[str, str]

    def sh(self, script: str, user: str = "agent") -> tuple[int, str]:
        """Run `script` in the agent the way a session does (through the image's entrypoint)."""
        container = self.root_agent if user == "root" else self.agent
        result = container.get_wrapped_container().exec_run(
            ["/usr/local/bin/ironcurtain-agent-init", "sh", "-c", script],
            user=user,
            environment={"HOME": "/root"} if user == "root" else None,
        )
        output = result.output.decode(errors="replace")
        print(f"$ {script}\n{output}")  # shown with the failure (or with -s)
        return result.exit_code, output

    def inventory(self) -> list[dict[str, object]]:
        return json.loads((self.audit_dir / "packages.json").read_text())["packages"]

    def registry_log(self) -> str:
        out, err = self.registry.get_logs()
        return out.decode() + err.decode()


@pytest.fixture(scope="module")
def stack(image: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("registries")
    root.chmod(0o755)
    hashes = artifacts.build(root / "tree", PACKAGES, dt.datetime.now(dt.UTC), NPM)
    hosts = [PYPI, NPM, APT]
    ca.init(root / "ca", ["platform.claude.com", *hosts])
    os.chown(root / "ca", PROXY_UID, PROXY_UID)
    os.chown(root / "ca" / ca.KEY_FILE, PROXY_UID, PROXY_UID)
    upstream = certs.write(root / "upstream", hosts)
    (root / "upstream").chmod(0o755)
    upstream.key.chmod(0o644)  # the registry container's user reads it; a test-only key
    (root / "audit").mkdir()
    os.chown(root / "audit", PROXY_UID, PROXY_UID)
    config = {
        "session": "registries-test",
        "listen": {"host": "0.0.0.0", "port": 3128},  # noqa: S104 - inside the container
        "ca_dir": "/run/ca",
        "audit": "/var/log/ironcurtain/mitm.jsonl",
        "keys": {"claude-platform": {}},
        "upstream": {
            h: {"address": "registry:8443", "ca_file": "/run/upstream/fake-ca.pem"} for h in hosts
        },
        "registries": {"quarantine_days": 2, "deny": ["ic-denied"], "list": REGISTRIES},
    }
    (root / "mitm.yaml").write_text(json.dumps(config))
    listed = [registries.parse_entry(e) for e in REGISTRIES]
    endpoints = Endpoints("http://unused:8080/mcp", "http://proxy:3128", CA_IN_AGENT)
    env = {**proxy_environment(endpoints), **registries.agent_environment(listed)}
    env.pop("HOME")
    with Network(docker_network_kw={"labels": TEST_LABELS}) as network:
        registry = (
            DockerContainer(image("python"))
            .with_command(
                "python3 -m ironcurtain.fakeregistry --host 0.0.0.0 --port 8443 --root /srv "
                "--cert /run/upstream/fake-cert.pem --key /run/upstream/fake-key.pem"
            )
            .with_volume_mapping(str(root / "tree"), "/srv", "ro")
            .with_volume_mapping(str(root / "upstream"), "/run/upstream", "ro")
            .with_network(network)
            .with_network_aliases("registry")
            .with_kwargs(labels=TEST_LABELS)
            .waiting_for(LogMessageWaitStrategy("fakeregistry: listening").with_startup_timeout(30))
        )
        proxy = (
            DockerContainer(image("python"))
            .with_command("ironcurtain mitm serve --config /etc/ironcurtain/mitm.yaml")
            .with_volume_mapping(str(root / "mitm.yaml"), "/etc/ironcurtain/mitm.yaml", "ro")
            .with_volume_mapping(str(root / "ca"), "/run/ca", "ro")
            .with_volume_mapping(str(root / "upstream"), "/run/upstream", "ro")
            .with_volume_mapping(str(root / "audit"), "/var/log/ironcurtain", "rw")
            .with_tmpfs_mount("/tmp", "size=16m")
            .with_network(network)
            .with_network_aliases("proxy")
            .with_kwargs(
                labels=TEST_LABELS,
                read_only=True,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
            )
            .waiting_for(LogMessageWaitStrategy("listening on").with_startup_timeout(30))
        )
        (root / "workspace").mkdir()
        os.chown(root / "workspace", AGENT_UID, AGENT_UID)
        # A session's agent is confined by compose.yaml (tested in session/test_escape.py); this
        # stand-in keeps what matters to the install paths: non-root, nothing writable but the
        # workspace and the tmpfs scratch, no capabilities, compose.yaml's limits.
        confined: dict[str, object] = {
            "user": f"{AGENT_UID}:{AGENT_UID}",
            "read_only": True,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges:true"],
            "tmpfs": {
                "/tmp": "rw,nosuid,nodev,size=1073741824,mode=1777",
                "/home/agent": f"rw,nosuid,nodev,size=268435456,uid={AGENT_UID},gid={AGENT_UID}",
            },
            "volumes": {str(root / "workspace"): {"bind": "/workspace", "mode": "rw"}},
            "working_dir": "/workspace",
            "sysctls": {
                "net.ipv6.conf.all.disable_ipv6": "1",
                "net.ipv6.conf.default.disable_ipv6": "1",
            },
            "pids_limit": 512,
            "mem_limit": 4 * 1024**3,
            "memswap_limit": 4 * 1024**3,
            "nano_cpus": 2 * 10**9,
        }

        def agent_container(**kwargs: object) -> DockerContainer:
            container = DockerContainer(image("agent-base"))
            for key, value in env.items():
                container = container.with_env(key, value)
            # testcontainers passes tmpfs and volumes itself: hand these over through it.
            for path, options in dict(kwargs.pop("tmpfs", {})).items():  # type: ignore[call-overload]
                container = container.with_tmpfs_mount(path, options)
            for host, mount in dict(kwargs.pop("volumes", {})).items():  # type: ignore[call-overload]
                container = container.with_volume_mapping(host, mount["bind"], mount["mode"])
            return (
                container.with_command("sleep infinity")
                .with_volume_mapping(str(root / "ca" / ca.CERT_FILE), CA_IN_AGENT, "ro")
                .with_network(network)
                .with_kwargs(labels=TEST_LABELS, **kwargs)
            )

        agent = agent_container(**confined)
        # Installing into the system needs root, which a session's agent never has (it uses
        # `apt-get download` + `dpkg -x`); this container exists only to show the install path.
        root_agent = agent_container()
        with registry, proxy, agent, root_agent:
            yield Stack(registry, agent, root_agent, root / "audit", hashes)


# ---- pip ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def venv(stack: Stack) -> str:
    # /tmp and HOME are noexec tmpfs in a session: a venv lives in the workspace.
    code, out = stack.sh("python3 -m venv /workspace/venv")
    assert code == 0, out
    return "/workspace/venv/bin/pip"


def test_pip_installs_the_old_enough_version_and_skips_the_quarantined_one(
    stack: Stack, venv: str
) -> None:
    code, out = stack.sh(
        f"{venv} install ic-old && /workspace/venv/bin/python -c "
        "'import ic_old; print(\"version\", ic_old.VERSION)'"
    )
    assert code == 0, out
    assert "version 1.0" in out


def test_pip_refuses_a_pinned_quarantined_version_and_says_why(stack: Stack, venv: str) -> None:
    code, out = stack.sh(f"{venv} install --no-cache-dir ic-old==2.0")
    assert code != 0
    assert "quarantined: ic-old 2.0 was published" in out
    assert "403" in out


def test_pip_refuses_a_denied_package_and_says_why(stack: Stack, venv: str) -> None:
    code, out = stack.sh(f"{venv} install ic-denied")
    assert code != 0
    assert "ic-denied is on the deny list" in out


def test_an_upload_to_the_python_registry_is_refused(stack: Stack) -> None:
    script = (
        "import os, ssl, urllib.request, urllib.error\n"
        f"ctx = ssl.create_default_context(cafile='{CA_IN_AGENT}')\n"
        "opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx),"
        " urllib.request.ProxyHandler({'https': os.environ['HTTPS_PROXY']}))\n"
        f"req = urllib.request.Request('https://{PYPI}/simple/', data=b':action=file_upload',"
        " method='POST')\n"
        "try:\n    opener.open(req)\nexcept urllib.error.HTTPError as e:\n"
        "    print('status', e.code, e.reason)\n"
    )
    code, out = stack.sh(f'python3 -c "{script}"')
    assert code == 0, out
    assert "status 403 IronCurtain: POST refused: registries are read-only" in out
    assert "POST" not in stack.registry_log()


# ---- npm ---------------------------------------------------------------------------------------


def test_npm_installs_the_old_enough_version_and_skips_the_quarantined_one(stack: Stack) -> None:
    code, out = stack.sh(
        "mkdir -p /tmp/p1 && cd /tmp/p1 && npm install ic-left && "
        'node -e \'console.log("version", require("ic-left"))\''
    )
    assert code == 0, out
    assert "version 1.0.0" in out


def test_npm_refuses_a_pinned_quarantined_version_and_says_why(stack: Stack) -> None:
    code, out = stack.sh("mkdir -p /tmp/p2 && cd /tmp/p2 && npm install ic-left@1.1.0")
    assert code != 0
    assert "quarantined: ic-left 1.1.0 was published" in out


def test_npm_refuses_a_denied_package_and_says_why(stack: Stack) -> None:
    code, out = stack.sh("mkdir -p /tmp/p3 && cd /tmp/p3 && npm install ic-denied")
    assert code != 0
    assert "ic-denied is on the deny list" in out


def test_npm_publish_is_refused_and_never_reaches_the_registry(stack: Stack) -> None:
    code, out = stack.sh(
        "mkdir -p /tmp/pub && cd /tmp/pub && "
        'echo \'{"name":"ic-pub","version":"1.0.0"}\' > package.json && '
        # a token so npm sends the PUT at all; the proxy refuses it regardless
        f"echo '//{NPM}/npm/:_authToken=not-a-real-token' > .npmrc && npm publish"
    )
    assert code != 0
    assert "registries are read-only" in out
    assert "PUT" not in stack.registry_log()


# ---- apt ---------------------------------------------------------------------------------------


def test_apt_as_the_agent_user_downloads_an_allowed_package(stack: Stack) -> None:
    code, out = stack.sh("apt-get update && cd /tmp && apt-get download ic-hello && ls /tmp")
    assert code == 0, out
    assert "ic-hello_1.0_all.deb" in out


def test_apt_refuses_a_denied_package_and_says_why(stack: Stack) -> None:
    code, out = stack.sh("apt-get update && cd /tmp && apt-get download ic-denied")
    assert code != 0
    assert "ic-denied is on the deny list" in out


def test_apt_get_install_as_root_installs_through_the_proxy(stack: Stack) -> None:
    # In the unconfined root container (see the fixture): a session's agent is never root.
    code, out = stack.sh(
        "apt-get update && apt-get install -y ic-hello "
        "&& echo installed: $(cat /usr/share/ic-hello/version)",
        user="root",
    )
    assert code == 0, out
    assert "installed: 1.0" in out


# ---- the record --------------------------------------------------------------------------------


def test_the_inventory_lists_exactly_what_was_served_with_matching_hashes(stack: Stack) -> None:
    # Runs last in this module: by now pip, npm and apt have fetched their files.
    items = stack.inventory()
    served = {str(i["file"]): i for i in items}
    for name in ("ic_old-1.0-py3-none-any.whl", "ic-left-1.0.0.tgz", "ic-hello_1.0_all.deb"):
        assert name in served, sorted(served)
        assert served[name]["sha256"] == stack.hashes[name]
    assert not any("ic-denied" in f or "2.0" in f or "1.1.0" in f for f in served)
    audit = [
        json.loads(line)
        for line in (stack.audit_dir / "mitm.jsonl").read_text().splitlines()
        if '"event":"package"' in line
    ]
    assert {(a["package"], a["sha256"]) for a in audit} >= {
        (str(i["name"]), str(i["sha256"])) for i in items
    }


def test_the_agent_container_is_confined_as_in_a_session(stack: Stack) -> None:
    _code, out = stack.sh("id -u && touch /usr/x 2>&1; cat /proc/self/status | grep CapEff")
    assert out.splitlines()[0] == str(AGENT_UID)
    assert "Read-only file system" in out
    assert "0000000000000000" in out
