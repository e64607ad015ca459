"""The installed command on a fresh machine: a wheel in a new venv, run inside a git repository.

No checkout on the path: the venv is outside it, PYTHONPATH is gone, the command starts in a
temporary repository, and its settings come from a user config file (an installed copy reads no
`.env`). It checks the images itself (no --no-build) and finds them up to date: the wheel's image
contexts hash as the checkout's do.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from ironcurtain.config.settings import KEYS, load
from ironcurtain.keystore import KeyStore

from ..conftest import REPO_ROOT
from ..redisserver import free_port
from .conftest import AGENT_UID, FAKELLM_COMPOSE, REAL_KEY, Env, project_leftovers
from .test_run import NOTICE, approve, session_dir


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`ironcurtain` from a wheel in a venv of its own (dependencies through pip, by name)."""
    root = tmp_path_factory.mktemp("installed")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(root), str(REPO_ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = root.glob("ironcurtain-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    done = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return venv / "bin" / "ironcurtain"


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    repo = tmp_path / "my-project"
    repo.mkdir()
    (repo / "hello.txt").write_text("hello from the workspace\n")
    (repo / "old.txt").write_text("to be moved\n")
    subprocess.run(["git", "init", "-q", str(repo)], check=True, timeout=30)
    for path in (repo, *repo.rglob("*")):
        os.chown(path, AGENT_UID, AGENT_UID, follow_symlinks=False)
    return repo


def _user_config(session_env: Env, directory: Path) -> dict[str, str]:
    """The environment without the checkout: settings moved into a user config file."""
    settings = load(os.environ, REPO_ROOT).as_env()
    folder = directory / "ironcurtain"
    folder.mkdir(parents=True)
    lines = [f'{key.toml} = "{settings[key.env]}"' for key in KEYS if settings[key.env]]
    (folder / "config.toml").write_text("\n".join(lines) + "\n")
    environ = {k: v for k, v in session_env.environ.items() if k != "PYTHONPATH"}
    for key in KEYS:
        environ.pop(key.env, None)
    environ["XDG_CONFIG_HOME"] = str(directory)
    return environ


def test_an_installed_command_runs_a_session_in_any_repository(
    session_env: Env,
    installed: Path,
    repository: Path,
    tmp_path: Path,
    docker_client: docker.DockerClient,
) -> None:
    environ = _user_config(session_env, tmp_path / "config")
    session_id = secrets.token_hex(4)
    argv = [
        str(installed), "run", "say hello", "--agent", "scripted",
        "--compose-file", str(FAKELLM_COMPOSE),
        "--upstream", "api.anthropic.com=fakellm:8443",
        "--upstream-ca", str(session_env.vendor / "fake-ca.pem"),
        "--session-id", session_id, "--escalation-timeout", "120",
    ]  # fmt: skip
    output, approved = [], None
    with subprocess.Popen(
        argv,
        cwd=repository,  # the workspace: the current directory
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            found = NOTICE.search(line)
            if found and approved is None:
                approved = approve(session_env, found.group(1))
        code = proc.wait(timeout=60)
    text = "".join(output)
    assert code == 0, text
    assert approved is not None, text
    assert re.search(r"images: \S+ is up to date", text), text
    assert "images: building" not in text, text  # same content hashes as the checkout's
    assert (repository / "new.txt").read_text() == "to be moved\n"
    root = session_dir(session_env, session_id)
    assert root.name.startswith("ic-my-project-"), root.name  # named after the repository
    assert json.loads((root / "summary.json").read_text())["outcome"] == "ok"
    assert project_leftovers(docker_client, root.name) == []


USER_UID = 1000  # a developer's usual first account, in the Docker socket's group
PLUGIN_DIRS = ("/usr/local/lib/docker/cli-plugins", "/usr/libexec/docker/cli-plugins",
               "/usr/lib/docker/cli-plugins")  # fmt: skip


def _compose_plugin() -> Path:
    """The compose plugin this (root) user runs, to give the other user the same one."""
    here = Path.home() / ".docker" / "cli-plugins" / "docker-compose"
    for candidate in (here, *(Path(d) / "docker-compose" for d in PLUGIN_DIRS)):
        if candidate.exists():
            return candidate.resolve()
    found = shutil.which("docker-compose")
    assert found, "no docker compose plugin found for this user"
    return Path(found)


@pytest.fixture(scope="module")
def installed_for_anyone() -> Iterator[Path]:
    """The wheel in a venv any user can run: the system's Python, in a folder others may enter.

    Not under pytest's base folder: any other pytest process on the machine sets that back to
    0700 when it starts, which would lock the user out mid-test."""
    system_python = Path("/usr/bin/python3")
    if not system_python.exists():
        pytest.skip("no system python3 for a venv outside root's home")
    root = Path(tempfile.mkdtemp(prefix="ic-anyone-"))
    try:
        root.chmod(0o755)
        yield _install_for_anyone(root, system_python)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _install_for_anyone(root: Path, system_python: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(root), str(REPO_ROOT)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    (wheel,) = root.glob("ironcurtain-*.whl")
    venv = root / "venv"
    subprocess.run([str(system_python), "-m", "venv", str(venv)], check=True, timeout=120)
    done = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(wheel)],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return venv / "bin" / "ironcurtain"


def test_a_user_who_is_not_root_runs_a_session_in_their_own_repository(
    session_env: Env,
    installed_for_anyone: Path,
) -> None:
    # Everything is the user's: state, key store, team stack (started by the run itself), repo.
    home = installed_for_anyone.parents[2] / "home"
    state, repo = home / "state", home / "my-project"
    KeyStore(state / "keys").set("anthropic", REAL_KEY)
    repo.mkdir(parents=True)
    (repo / "hello.txt").write_text("hello from the workspace\n")
    (repo / "old.txt").write_text("to be moved\n")
    plugin = _compose_plugin()
    plugins = home / ".docker" / "cli-plugins"
    plugins.mkdir(parents=True)
    shutil.copy(plugin, plugins / "docker-compose")  # the user's own compose plugin
    vendor_ca = shutil.copy(session_env.vendor / "fake-ca.pem", home / "fake-ca.pem")
    subprocess.run(["chown", "-R", f"{USER_UID}:{USER_UID}", str(home)], check=True, timeout=30)
    environ = _user_config(session_env, home / ".config")
    environ.update(
        HOME=str(home),
        IRONCURTAIN_STATE_DIR=str(state),
        IRONCURTAIN_SHARED_DIR=str(state / "shared"),
        IRONCURTAIN_SHARED_PROJECT=f"{environ['IRONCURTAIN_SHARED_PROJECT']}-u",
        IRONCURTAIN_SHARED_NETWORK=f"{environ['IRONCURTAIN_SHARED_NETWORK']}-u",
        IRONCURTAIN_APPROVAL_PORT=str(free_port()),
    )
    subprocess.run(["chown", "-R", f"{USER_UID}:{USER_UID}", str(home)], check=True, timeout=30)
    socket_group = os.stat("/var/run/docker.sock").st_gid
    as_user = {"user": USER_UID, "group": USER_UID, "extra_groups": [socket_group]}
    argv = [
        str(installed_for_anyone), "run", "say hello", "--agent", "scripted", "--no-build",
        "--compose-file", str(FAKELLM_COMPOSE),
        "--upstream", "api.anthropic.com=fakellm:8443",
        "--upstream-ca", str(vendor_ca),
        "--escalation-timeout", "120",
    ]  # fmt: skip
    output, approved = [], None
    try:
        with subprocess.Popen(
            argv, cwd=repo, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1, **as_user,
        ) as proc:  # fmt: skip
            assert proc.stdout is not None
            for line in proc.stdout:
                output.append(line)
                found = NOTICE.search(line)
                if found and approved is None:
                    user_env = Env(environ, state, session_env.vendor)
                    approved = approve(user_env, found.group(1))
            code = proc.wait(timeout=60)
    finally:
        down = subprocess.run(
            [str(installed_for_anyone), "shared", "down"], env=environ, capture_output=True,
            text=True, timeout=240, check=False, **as_user,
        )  # fmt: skip
    text = "".join(output)
    assert code == 0, text
    assert approved is not None, text
    assert down.returncode == 0, down.stdout + down.stderr
    moved = repo / "new.txt"
    assert moved.read_text() == "to be moved\n"
    assert (moved.stat().st_uid, moved.stat().st_gid) == (USER_UID, USER_UID)  # the user's file
    for path in state.rglob("*"):  # nothing of the user's state became someone else's
        assert path.lstat().st_uid in (USER_UID, 10001), path
