"""A room under gVisor: runsc has no Landlock (landlock_create_ruleset answers ENOSYS), so a
room started under it must refuse to serve, saying why, rather than run its server's children
unconfined. Control: the same room under runc serves its socket. This is why sessions keep the
rooms on runc (session/runtime.py, docs/isolation.md "gVisor")."""

from __future__ import annotations

import os
import re
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import docker
import pytest
import yaml

from ironcurtain.mcpproxy.rooms import dump_spec, room_specs
from ironcurtain.session import rooms, runtime

from .conftest import TEST_LABELS

UID = 10001  # the images' ironcurtain user
SERVERS = Path(__file__).resolve().parents[2] / "policy" / "servers.yaml"
WAIT_S = 90
COMMAND = [
    "ironcurtain", "mcp-proxy", "room", f"--server={rooms.SERVER_FILE}",
    f"--sockets={rooms.SOCKETS}", "--workspace=/workspace",
]  # fmt: skip


def _room(
    client: docker.DockerClient, image: str, tmp_path: Path, kind: str
) -> tuple[str, int, list[str]]:
    """The filesystem room as a session deploys it, under `kind`: its log, exit code (or -1
    while it still serves, stopped then) and what its socket folder held."""
    (spec,) = [
        s for s in room_specs(yaml.safe_load(SERVERS.read_text()), str(SERVERS))
        if s.name == "filesystem"
    ]  # fmt: skip
    folder, workspace = tmp_path / "room", tmp_path / "ws"
    folder.mkdir(mode=0o700)
    workspace.mkdir()
    server = tmp_path / "server.json"
    server.write_text(dump_spec(spec))
    for path in (folder, server, workspace):
        os.chown(path, UID, UID)
    container = client.containers.run(
        image,
        command=COMMAND,
        name=f"ic-test-room-{kind}-{uuid.uuid4().hex[:8]}",
        runtime=kind,
        user=str(UID),
        network_mode="none",
        volumes={
            str(folder): {"bind": rooms.SOCKETS, "mode": "rw"},
            str(server): {"bind": rooms.SERVER_FILE, "mode": "ro"},
            str(workspace): {"bind": "/workspace", "mode": "rw"},
        },
        labels=TEST_LABELS,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        read_only=True,
        tmpfs={"/tmp": ""},
        detach=True,
    )
    try:
        # The room prints one line when it serves; a refusal ends the container (and the log).
        chunks: list[bytes] = []
        stream = container.logs(stream=True, follow=True)

        def follow() -> None:
            for chunk in stream:
                chunks.append(chunk)
                if re.search(rb"room: serving|refusing to start", b"".join(chunks)):
                    break

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        reader.join(timeout=WAIT_S)
        stream.close()
        response = getattr(stream, "_response", None)  # docker-py leaves it to the collector
        if response is not None:
            response.close()
        log = b"".join(chunks)
        held = sorted(p.name for p in folder.iterdir())
        container.reload()
        code = container.wait(timeout=WAIT_S)["StatusCode"] if b"refusing" in log else -1
        return log.decode(errors="replace"), code, held
    finally:
        container.remove(force=True)


def test_a_room_under_runsc_refuses_to_serve_without_landlock(
    docker_client: docker.DockerClient, image: Callable[[str], str], tmp_path: Path
) -> None:
    if runtime.RUNSC not in runtime.registered(docker_client.info().get("Runtimes")):
        pytest.skip("this engine has no runsc registered (make deps registers it for ours)")
    log, code, held = _room(docker_client, image("mcp-proxy"), tmp_path, runtime.RUNSC)
    assert code == 2, log
    assert "no Landlock" in log, log
    assert "refusing to serve" in log, log
    assert held == [], held  # no socket: no call can reach an unconfined child


def test_control_the_same_room_under_runc_serves_its_socket_under_landlock(
    docker_client: docker.DockerClient, image: Callable[[str], str], tmp_path: Path
) -> None:
    log, code, held = _room(docker_client, image("mcp-proxy"), tmp_path, runtime.RUNC)
    assert code == -1, log
    assert "Landlock ABI" in log, log
    assert held == ["filesystem.sock"], held
