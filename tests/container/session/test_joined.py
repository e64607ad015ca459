"""A whole `ironcurtain run` on a machine that joined a team server (two state folders).

Machine A runs the team server (`shared up --host ADDRESS`); machine B has only the team CA and a
member token (`shared join`), its own key store and its own session. B's run starts no stack: the
registrar makes the session's Redis user, the MCP proxy escalates to A's Redis over TLS, a member
approves through A's approval API, the approved move runs, and teardown removes the user.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from ironcurtain.escalation import users
from ironcurtain.escalation.channel import connect
from ironcurtain.fakellm import certs
from ironcurtain.keystore import KeyStore

from ..conftest import RUN_ID
from ..probes import bridge_host
from ..redisserver import free_port
from ..shared.test_team import _base_env
from ..shared.test_team import cli as run_cli
from .conftest import REAL_KEY, SERVICE_UID, Env, popen

NOTICE = re.compile(r"\[ironcurtain\] escalation ([0-9a-f]+\.[0-9a-f]{16}): filesystem__move_file")


@pytest.fixture(scope="module")
def joined(
    image: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
    docker_client: docker.DockerClient,
) -> Iterator[tuple[dict[str, str], Env, str]]:
    for name in ("python", "mcp-proxy", "sidecar", "socket-proxy", "redis", "agent-scripted"):
        image(name)
    root = tmp_path_factory.mktemp("joined")
    root.chmod(0o755)
    host = bridge_host(docker_client)
    a = {
        **_base_env(root / "a"),
        "IRONCURTAIN_SHARED_DIR": str(root / "a" / "shared"),
        "IRONCURTAIN_SHARED_PROJECT": f"ic-test-teamrun-{RUN_ID[:12]}",
        "IRONCURTAIN_SHARED_NETWORK": f"ic-test-teamrun-{RUN_ID[:12]}",
        "IRONCURTAIN_APPROVAL_PORT": str(free_port()),
        "IRONCURTAIN_TEAM_REDIS_PORT": str(free_port()),
        "IRONCURTAIN_TEAM_REGISTRAR_PORT": str(free_port()),
        "IRONCURTAIN_TEST_RUN": RUN_ID,
    }
    state = root / "b"
    KeyStore(state / "keys").set("anthropic", REAL_KEY)
    vendor = root / "vendor"
    files = certs.write(vendor, ["api.anthropic.com"])
    vendor.chmod(0o755)
    os.chown(files.key, SERVICE_UID, SERVICE_UID)
    for public in (files.cert, files.ca):
        public.chmod(0o644)
    b_network = f"ic-test-b-shared-{RUN_ID[:12]}"
    b = Env(
        {
            **_base_env(state),
            "IRONCURTAIN_SHARED_NETWORK": b_network,  # B's own, empty: its run makes it
            "IRONCURTAIN_FAKELLM_DIR": str(vendor),
            "IRONCURTAIN_TEST_RUN": RUN_ID,
        },
        state,
        vendor,
    )
    up = run_cli(a, "shared", "up", "--host", host)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        bob = run_cli(a, "shared", "member", "add", "bob").stdout.splitlines()[1].strip()
        url = f"https://{host}:{a['IRONCURTAIN_TEAM_REGISTRAR_PORT']}"
        handed = root / "ca.pem"
        handed.write_bytes((root / "a" / "shared" / "tls" / "ca.pem").read_bytes())
        join = run_cli(b.environ, "shared", "join", url, "--ca", str(handed), stdin=bob + "\n")
        assert join.returncode == 0, join.stdout + join.stderr
        yield a, b, bob
    finally:
        down = run_cli(a, "shared", "down")
        for network in docker_client.networks.list(names=[b_network]):
            network.remove()
        assert down.returncode == 0, down.stdout + down.stderr


def approve_as(a: dict[str, str], token: str, escalation_id: str) -> dict[str, object]:
    path = f"http://127.0.0.1:{a['IRONCURTAIN_APPROVAL_PORT']}/api/v1/escalations/{escalation_id}"
    shown = urllib.request.Request(path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(shown, timeout=10) as answer:  # noqa: S310 - http://127.0.0.1
        digest = json.loads(answer.read())["escalation"]["digest"]  # what bob is shown
    request = urllib.request.Request(  # noqa: S310 - http://127.0.0.1
        f"{path}/approve",
        data=json.dumps({"reason": "bob approves", "digest": digest}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - http://127.0.0.1
        return json.loads(answer.read())


def test_a_session_on_a_joined_machine_escalates_to_the_team_and_a_members_approval_resumes_it(
    joined: tuple[dict[str, str], Env, str], workspace: Path
) -> None:
    a, b, bob = joined
    session_id = secrets.token_hex(4)
    args = b.run_args(
        "--agent", "scripted", "--task", "say hello", "--workspace", str(workspace),
        "--session-id", session_id, "--escalation-timeout", "120",
    )  # fmt: skip
    output, approved = [], None
    with popen(b, *args) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            found = NOTICE.search(line)
            if found and approved is None:
                approved = approve_as(a, bob, found.group(1))
        code = proc.wait(timeout=60)
    text = "".join(output)
    assert code == 0, text
    assert approved is not None, text
    assert approved["decision"]["by"] == "bob", approved  # type: ignore[index]
    assert (workspace / "new.txt").read_text() == "to be moved\n"  # the approved move ran
    assert "starting the team-shared stack" not in text  # B started no stack of its own
    # B made no Redis user itself and none is left: teardown asked the registrar.
    shared = Path(a["IRONCURTAIN_SHARED_DIR"])
    admin = connect(
        json.loads((b.state / "team" / "team.json").read_text())["redis_url"],
        shared / "redis_admin",
        ca_file=shared / "tls" / "ca.pem",
    )
    try:
        assert users.session_users(admin) == []
    finally:
        admin.close()
