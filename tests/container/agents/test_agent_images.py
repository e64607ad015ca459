"""The agent images: the real clients installed, and nothing to climb out with."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from ..conftest import TEST_LABELS

# image -> (version command, pinned version, label that records it)
AGENTS = {
    "agent-claude-code": (
        ["claude", "--version"],
        "2.1.331",
        "org.ironcurtain.claude-code-version",
    ),
    "agent-codex": (["codex", "--version"], "0.171.0", "org.ironcurtain.codex-version"),
}
EVERY_AGENT = pytest.mark.parametrize("agent", sorted(AGENTS))

Run = Callable[..., tuple[int, str]]


@pytest.fixture(scope="module")
def run(image: Callable[[str], str], docker_client: docker.DockerClient) -> Run:
    """run(image_name, argv, **docker_run_kwargs) -> (exit status, output), no network."""

    def run_in_image(name: str, command: list[str], **kwargs: object) -> tuple[int, str]:
        container = docker_client.containers.run(
            image(name), command, detach=True, labels=TEST_LABELS, network_mode="none", **kwargs
        )
        try:
            status = container.wait(timeout=60)["StatusCode"]
            return status, container.logs().decode()
        finally:
            container.remove(force=True)

    return run_in_image


@EVERY_AGENT
def test_the_pinned_agent_runs(run: Run, agent: str) -> None:
    command, pinned, _ = AGENTS[agent]
    status, out = run(agent, command)
    assert status == 0, out
    assert pinned in out


@EVERY_AGENT
def test_the_agent_runs_on_a_supported_node_lts(run: Run, agent: str) -> None:
    # Debian 12's nodejs is 18, past its end of life: node and npm must find Node 22 first.
    status, out = run(agent, ["node", "--version"])
    assert (status, out[:4]) == (0, "v22."), out
    status, out = run(agent, ["npm", "version", "--json"])  # the node npm itself runs on
    assert status == 0, out
    assert json.loads(out)["node"].startswith("22."), out


@EVERY_AGENT
def test_the_version_is_recorded_in_a_label(
    image: Callable[[str], str], docker_client: docker.DockerClient, agent: str
) -> None:
    _, pinned, label = AGENTS[agent]
    assert docker_client.images.get(image(agent)).labels[label] == pinned


@EVERY_AGENT
def test_the_agent_is_not_root(run: Run, agent: str) -> None:
    status, out = run(agent, ["id", "-u"])
    assert (status, out.strip()) == (0, "10100")


@EVERY_AGENT
def test_no_setuid_or_setgid_binary_is_left(run: Run, agent: str) -> None:
    # The marker proves find ran to the end, so an empty list means none, not a failed search.
    status, out = run(agent, ["sh", "-c", "find / -xdev -type f -perm /6000 2>/dev/null; echo end"])
    assert status == 0
    assert out.strip() == "end"


@EVERY_AGENT
@pytest.mark.parametrize("tool", ["sudo", "su-to-root", "ssh", "sshd", "ssh-agent", "docker"])
def test_no_tool_to_escalate_or_leave_is_installed(run: Run, agent: str, tool: str) -> None:
    status, _ = run(agent, ["sh", "-c", f"command -v {tool}"])
    assert status != 0


def test_api_key_helper_refuses_without_a_fake_key(run: Run) -> None:
    status, out = run("agent-claude-code", ["/usr/local/bin/ironcurtain-api-key"])
    assert status == 1
    assert "no fake Anthropic key" in out


def test_api_key_helper_prints_the_sessions_fake_key(run: Run) -> None:
    fake = "sk-ant-api03-" + "f" * 48
    status, out = run(
        "agent-claude-code",
        ["/usr/local/bin/ironcurtain-api-key"],
        environment={"IRONCURTAIN_ANTHROPIC_FAKE_KEY": fake},
    )
    assert (status, out.strip()) == (0, fake)


@EVERY_AGENT
def test_orientation_files_are_copied_into_home(run: Run, agent: str, tmp_path: Path) -> None:
    (tmp_path / ".config").mkdir()
    (tmp_path / ".config" / "guide.md").write_text("guide\n")
    tmp_path.chmod(0o755)
    (tmp_path / ".config").chmod(0o755)
    status, out = run(
        agent,
        ["cat", "/home/agent/.config/guide.md"],
        volumes={str(tmp_path): {"bind": "/run/ironcurtain/session", "mode": "ro"}},
    )
    assert (status, out) == (0, "guide\n")


def test_the_scripted_agent_image_has_no_setuid_or_setgid_binaries_even_for_root(
    docker_client: docker.DockerClient, image: Callable[[str], str]
) -> None:
    """Searched as root, so no folder is unreadable to the search (the image the escape suite's
    agent runs; the adapters' images are searched as their user above)."""

    def setuid_files(ref: str) -> str:
        find = ["find", "/", "-xdev", "-type", "f", "-perm", "/6000"]
        output = docker_client.containers.run(
            ref, find, user="0", remove=True, labels=TEST_LABELS, network_mode="none"
        )
        return output.decode().strip()

    assert setuid_files(image("python"))  # control: the search finds su, mount, ... there
    assert setuid_files(image("agent-scripted")) == ""
