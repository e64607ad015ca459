"""The mcp-proxy image on an internal network, driven by the real MCP client from another
container: allowed read (control), denials by rule, non-root, audit chain verified on the host."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest
import yaml

from ironcurtain.audit import verify_file, write_key
from ironcurtain.mcpproxy.rooms import dump_spec, room_specs
from ironcurtain.session import rooms

from .conftest import TEST_LABELS

UID = 10001  # the images' ironcurtain user
# How the proxy and its sandbox run here, as in a session: labelled, no capabilities, read-only.
CONFINED: dict[str, object] = {
    "labels": TEST_LABELS,
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges"],
    "read_only": True,
    "tmpfs": {"/tmp": ""},
    "detach": True,
}

SOCKETS = "/run/ironcurtain/rooms"  # the rooms' folders, in the proxy
SERVERS = Path(__file__).resolve().parents[2] / "policy" / "servers.yaml"


def _socket_there(name: str) -> dict[str, object]:
    """session/rooms.py's check for a room (nanoseconds, as the engine wants)."""
    there = f"{rooms.SOCKETS}/{name}.sock"
    return {
        "test": ["CMD", "python3", "-c", f"import os; assert os.path.exists('{there}')"],
        "interval": 500_000_000,
        "timeout": 3_000_000_000,
        "retries": 3,
    }


CLIENT = r"""
import json, sys, anyio
from mcp import Client
from mcp.shared.exceptions import MCPError

async def main():
    calls = json.loads(sys.argv[2])
    out = {}
    with anyio.fail_after(60):
        async with Client(sys.argv[1]) as client:
            out["tools"] = sorted(t.name for t in (await client.list_tools()).tools)
            for key, (name, args) in calls.items():
                try:
                    r = await client.call_tool(name, args)
                except MCPError as exc:  # a JSON-RPC error (an unknown tool)
                    out[key] = {"error": True, "code": exc.code, "text": exc.message}
                    continue
                text = "".join(getattr(c, "text", "") for c in r.content)
                out[key] = {"error": bool(r.is_error), "text": text}
    print("RESULT " + json.dumps(out))

anyio.run(main)
"""


KEY = bytes(range(32))


@pytest.fixture(scope="module")
def session_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mcp-proxy")
    dirs = {"workspace": root / "workspace", "audit": root / "audit", "sockets": root / "rooms"}
    for d in dirs.values():
        d.mkdir()
    dirs["sockets"].chmod(0o700)  # as `ironcurtain run` makes it: the sandbox refuses otherwise
    (dirs["workspace"] / "hello.txt").write_text("hello from the mounted workspace\n")
    (dirs["workspace"] / ".env").write_text("TOKEN=do-not-read\n")
    for path in (root, *dirs.values(), *dirs["workspace"].iterdir()):
        os.chown(path, UID, UID)
    dirs["key"] = root / "audit_key"  # as `ironcurtain run` hands it over: a file, not env
    write_key(dirs["key"], KEY)
    os.chown(dirs["key"], UID, UID)
    return dirs


@pytest.fixture(scope="module")
def network(docker_client: docker.DockerClient) -> Iterator[docker.models.networks.Network]:
    net = docker_client.networks.create(
        f"ic-test-mcp-{uuid.uuid4().hex[:8]}", internal=True, labels=TEST_LABELS
    )
    yield net
    net.remove()


def _wait_healthy(container: docker.models.containers.Container, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        container.reload()
        state = container.attrs["State"]
        if state.get("Health", {}).get("Status") == "healthy":
            return
        if state["Status"] == "exited":
            break
        time.sleep(0.5)  # polling the engine's health status, bounded by the deadline
    logs = container.logs().decode(errors="replace")[-3000:]
    pytest.fail(f"mcp-proxy did not become healthy:\n{logs}")


@pytest.fixture(scope="module")
def sandbox(
    docker_client: docker.DockerClient,
    image: Callable[[str], str],
    session_dirs: dict[str, Path],
) -> Iterator[str]:
    """A room per server, as a session deploys them (session/rooms.py): each its own socket
    folder, its server's settings, the workspace only where its `room:` says, no network."""
    specs = room_specs(yaml.safe_load(SERVERS.read_text()), str(SERVERS))
    started = []
    try:
        for spec in specs:
            assert spec.room is not None
            folder = session_dirs["sockets"] / spec.name
            folder.mkdir(mode=0o700)
            server = session_dirs["sockets"].parent / f"{spec.name}.json"
            server.write_text(dump_spec(spec))
            for path in (folder, server):
                os.chown(path, UID, UID)
            volumes = {
                str(folder): {"bind": rooms.SOCKETS, "mode": "rw"},
                str(server): {"bind": rooms.SERVER_FILE, "mode": "ro"},
            }
            command = [
                "ironcurtain", "mcp-proxy", "room",
                f"--server={rooms.SERVER_FILE}", f"--sockets={rooms.SOCKETS}",
            ]  # fmt: skip
            if spec.room.workspace != "none":
                volumes[str(session_dirs["workspace"])] = {"bind": "/workspace", "mode": "rw"}
                command.append("--workspace=/workspace")
            started.append(
                docker_client.containers.run(
                    image("mcp-proxy"),
                    command=command,
                    name=f"ic-test-mcp-room-{spec.name}-{uuid.uuid4().hex[:8]}",
                    network_mode="none",
                    volumes=volumes,
                    healthcheck=_socket_there(spec.name),
                    **CONFINED,
                )
            )
        for container in started:
            _wait_healthy(container, 120)
        yield f"unix:{SOCKETS}"
    finally:
        for container in started:
            container.remove(force=True)


@pytest.fixture(scope="module")
def proxy(
    docker_client: docker.DockerClient,
    image: Callable[[str], str],
    network: docker.models.networks.Network,
    session_dirs: dict[str, Path],
    sandbox: str,
) -> Iterator[str]:
    name = f"ic-test-mcp-proxy-{uuid.uuid4().hex[:8]}"
    container = docker_client.containers.run(
        image("mcp-proxy"),
        command=[
            "ironcurtain",
            "mcp-proxy",
            "serve",
            "--policy",
            "/etc/ironcurtain/policy",
            "--workspace",
            "/workspace",
            "--audit",
            "/audit/session.jsonl",
            "--audit-key-file",
            "/run/secrets/audit_key",
            "--host",
            "0.0.0.0",  # noqa: S104 - inside the container, on the internal network
            "--port",
            "8080",
            "--allowed-host",
            f"{name}:8080",
            "--sandbox",
            sandbox,
        ],
        name=name,
        network=network.name,
        volumes={
            str(session_dirs["workspace"]): {"bind": "/workspace", "mode": "rw"},
            str(session_dirs["audit"]): {"bind": "/audit", "mode": "rw"},
            str(session_dirs["sockets"]): {"bind": SOCKETS, "mode": "rw"},
            str(session_dirs["key"]): {"bind": "/run/secrets/audit_key", "mode": "ro"},
        },
        **CONFINED,
    )
    try:
        _wait_healthy(container, 120)
        yield name
    finally:
        container.remove(force=True)


def _run_client(
    docker_client: docker.DockerClient,
    image: Callable[[str], str],
    network: docker.models.networks.Network,
    url: str,
    calls: dict[str, tuple[str, dict[str, object]]],
) -> dict[str, dict[str, object]]:
    output = docker_client.containers.run(
        image("python"),
        command=["python3", "-c", CLIENT, url, json.dumps(calls)],
        network=network.name,
        labels=TEST_LABELS,
        remove=True,
    ).decode()
    line = next(x for x in output.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def test_a_client_on_the_network_is_served_and_policed(
    docker_client: docker.DockerClient,
    image: Callable[[str], str],
    network: docker.models.networks.Network,
    proxy: str,
    session_dirs: dict[str, Path],
) -> None:
    calls = {
        "read": ("filesystem__read_text_file", {"path": "/workspace/hello.txt"}),
        "outside": ("filesystem__read_text_file", {"path": "/etc/passwd"}),
        "env": ("filesystem__read_text_file", {"path": "/workspace/.env"}),
        "audit": ("filesystem__read_text_file", {"path": "/audit/session.jsonl"}),
        "unknown": ("shell__exec", {"cmd": "id"}),
        "git": ("git__git_status", {"repo_path": "/workspace"}),
    }
    out = _run_client(docker_client, image, network, f"http://{proxy}:8080/mcp", calls)
    assert {"filesystem__read_text_file", "git__git_status", "fetch__fetch"} <= set(out["tools"])
    assert out["read"] == {"error": False, "text": "hello from the mounted workspace\n"}  # control
    assert "rule 'outside-workspace'" in out["outside"]["text"]
    assert "rule 'protected-path'" in out["env"]["text"]
    assert "do-not-read" not in out["env"]["text"]
    assert "rule 'protected-path'" in out["audit"]["text"]
    assert out["unknown"] == {"error": True, "code": -32602, "text": "Unknown tool: shell__exec"}
    assert all(out[k]["error"] for k in ("outside", "env", "audit", "unknown"))
    # Not a git repository: the backend ran and answered (policy allowed it).
    assert "IronCurtain policy denied" not in out["git"]["text"]

    report = verify_file(session_dirs["audit"] / "session.jsonl", KEY)
    assert report.ok, report.problem
    assert report.lines >= 7


PROBE = r"""
import sys, urllib.error, urllib.request
request = urllib.request.Request(
    sys.argv[1], data=b"{}", method="POST",
    headers={"content-type": "application/json", "accept": "application/json, text/event-stream"},
)
try:
    print("STATUS", urllib.request.urlopen(request, timeout=10).status)
except urllib.error.HTTPError as exc:
    print("STATUS", exc.code, exc.read().decode())
"""


def test_a_request_with_another_host_header_is_refused(
    docker_client: docker.DockerClient,
    image: Callable[[str], str],
    network: docker.models.networks.Network,
    proxy: str,
) -> None:
    container = docker_client.containers.get(proxy)
    ip = container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]

    def probe(url: str) -> str:
        return docker_client.containers.run(
            image("python"),
            command=["python3", "-c", PROBE, url],
            network=network.name,
            labels=TEST_LABELS,
            remove=True,
        ).decode()

    assert "STATUS 421 Invalid Host header" in probe(f"http://{ip}:8080/mcp")
    assert "Invalid Host header" not in probe(f"http://{proxy}:8080/mcp")  # control


def test_the_proxy_runs_as_a_non_root_user(docker_client: docker.DockerClient, proxy: str) -> None:
    status = docker_client.containers.get(proxy).exec_run(["cat", "/proc/1/status"]).output.decode()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1] == str(UID)


SAME_AS_SDK = r"""
import json, pathlib
import mcp_types as types
from mcp_types import methods
from ironcurtain.mcpproxy import protocol, wire
from ironcurtain.mcpproxy.listing import check_all

info = protocol.ServerInfo("ironcurtain-mcp-proxy", "1", "checked")
stamp = {protocol.SERVER_INFO_META_KEY: {"name": info.name, "version": info.version}}
checked = {}
for path in sorted(pathlib.Path("/opt/ironcurtain/tools").glob("*.json")):
    tools = check_all(json.loads(path.read_text())["tools"])
    for version in wire.KNOWN_PROTOCOL_VERSIONS:
        dumped = [types.Tool.model_validate(t).model_dump(by_alias=True, mode="json",
                                                          exclude_none=True) for t in tools]
        raw = {"tools": dumped}
        if version in wire.MODERN_PROTOCOL_VERSIONS:
            raw = {"ttlMs": 0, "cacheScope": "private", "resultType": "complete", **raw}
        sdk = methods.serialize_server_result("tools/list", version, raw)
        if version in wire.MODERN_PROTOCOL_VERSIONS:
            sdk["_meta"] = stamp
        ours = protocol.shape(info, "tools/list", version, {"tools": tools})
        assert json.dumps(ours) == json.dumps(sdk), (path.name, version)
    checked[path.name] = len(tools)
print(json.dumps(checked))
"""


def test_the_images_saved_listings_are_served_exactly_as_the_sdk_shapes_them(
    docker_client: docker.DockerClient, image: Callable[[str], str]
) -> None:
    """For every protocol version, tools/list from each saved listing (our plain-JSON form) is
    byte for byte what the SDK's per-version result surface makes of it."""
    out = docker_client.containers.run(
        image("mcp-proxy"), ["python3", "-c", SAME_AS_SDK], remove=True, labels=TEST_LABELS
    )
    checked = json.loads(out.decode().strip().splitlines()[-1])
    assert len(checked) == 3  # filesystem, git, fetch
    assert all(count > 0 for count in checked.values())
