"""Fixtures for whole sessions: the team-shared stack (test names), a key store with a real key,
the fake vendor's certificates, and a way to run `ironcurtain run` as the user would.

Sessions here run their agent under runc unless a test asks for a runtime (`under_runtime`): the
escape suite and a real agent's session run once per runtime (runc, and gVisor's runsc where the
engine has it registered); the rest test behaviour that does not depend on the kernel behind the
agent, and keep CI's time where the security claims are.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from ironcurtain.fakellm import certs
from ironcurtain.keystore import KeyStore
from ironcurtain.session import plan, runtime
from ironcurtain.session.run import Options, Session

from ..conftest import REPO_ROOT, RUN_ID
from ..redisserver import free_port

REAL_KEY = "sk-ant-api03-REAL-session-test-key-0123456789abcdef"
FAKELLM_COMPOSE = Path(__file__).parent / "fakellm.compose.yaml"
AGENT_UID = 10100
SERVICE_UID = 10001


@dataclass(frozen=True)
class Env:
    environ: dict[str, str]
    state: Path
    vendor: Path

    @property
    def shared_dir(self) -> Path:
        return self.state / "shared"

    def session(self, workspace: Path, task: str, **options: Any) -> Session:
        """A scripted-agent session against the fake vendor, driven step by step in-process."""
        return Session(
            Options(
                task=task,
                agent="scripted",
                workspace=workspace,
                session_id=secrets.token_hex(4),
                compose_files=(FAKELLM_COMPOSE,),
                upstreams=(
                    plan.Upstream("api.anthropic.com", "fakellm:8443", self.vendor / "fake-ca.pem"),
                ),
                build_images=False,
                **options,
            ),
            say=lambda _: None,
            environ=self.environ,
        )

    def run_args(self, *extra: str) -> list[str]:
        return [
            "run",
            "--no-build",
            "--compose-file",
            str(FAKELLM_COMPOSE),
            "--upstream",
            "api.anthropic.com=fakellm:8443",
            "--upstream-ca",
            str(self.vendor / "fake-ca.pem"),
            *extra,
        ]


def cli(env: Env, *args: str, timeout_s: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ironcurtain.cli", *args],
        cwd=REPO_ROOT,
        env=env.environ,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def popen(env: Env, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ironcurtain.cli", *args],
        cwd=REPO_ROOT,
        env=env.environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )


@pytest.fixture(scope="package")
def session_env(
    image: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Env]:
    for name in ("python", "mcp-proxy", "sidecar", "socket-proxy", "redis", "agent-scripted"):
        image(name)
    root = tmp_path_factory.mktemp("sessions")
    root.chmod(0o755)
    state = root / "state"
    KeyStore(state / "keys").set("anthropic", REAL_KEY)
    vendor = root / "vendor"
    files = certs.write(vendor, ["api.anthropic.com", "console.anthropic.com", "api.openai.com"])
    vendor.chmod(0o755)
    os.chown(files.key, SERVICE_UID, SERVICE_UID)
    for public in (files.cert, files.ca):
        public.chmod(0o644)
    environ = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT / "services"),
        "IRONCURTAIN_STATE_DIR": str(state),
        "IRONCURTAIN_SHARED_DIR": str(state / "shared"),
        "IRONCURTAIN_SHARED_PROJECT": f"ic-test-{RUN_ID[:12]}",
        "IRONCURTAIN_SHARED_NETWORK": f"ic-test-shared-{RUN_ID[:12]}",
        "IRONCURTAIN_APPROVAL_PORT": str(free_port()),
        "IRONCURTAIN_FAKELLM_DIR": str(vendor),
        "IRONCURTAIN_TEST_RUN": RUN_ID,
        "IRONCURTAIN_RUNTIME": runtime.RUNC,  # see the module's docstring; under_runtime
    }
    env = Env(environ, state, vendor)
    up = cli(env, "shared", "up")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield env
    finally:
        down = cli(env, "shared", "down")
        assert down.returncode == 0, down.stdout + down.stderr


# The runtimes a per-runtime test runs under; IRONCURTAIN_TEST_RUNTIMES=runc (or runsc) keeps one.
RUNTIMES = tuple(
    r.strip() for r in os.environ.get("IRONCURTAIN_TEST_RUNTIMES", "runc,runsc").split(",")
)


def under_runtime(env: Env, wanted: str, client: docker.DockerClient) -> Env:
    """`env` with the agent under `wanted`, required (a runsc round never quietly falls back to
    runc); skipped, saying so, where the engine has no runsc registered."""
    have = runtime.registered(client.info().get("Runtimes"))
    if wanted == runtime.RUNSC and runtime.RUNSC not in have:
        pytest.skip("this engine has no runsc registered (make deps registers it for ours)")
    return Env({**env.environ, "IRONCURTAIN_RUNTIME": wanted}, env.state, env.vendor)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "workspace"
    ws.mkdir()
    (ws / "hello.txt").write_text("hello from the workspace\n")
    (ws / "old.txt").write_text("to be moved\n")
    for path in (ws, ws / "hello.txt", ws / "old.txt"):
        os.chown(path, AGENT_UID, AGENT_UID)
    return ws


def project_leftovers(client: docker.DockerClient, project: str) -> list[str]:
    label = f"com.docker.compose.project={project}"
    found = [c.name for c in client.containers.list(all=True, filters={"label": label})]
    found += [n.name for n in client.networks.list(filters={"label": label})]
    return found
