"""The Claude Code agent image: the real client installed, and nothing to climb out with."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from ..conftest import TEST_LABELS

PINNED = "2.1.331"


@pytest.fixture(scope="module")
def run(
    image: Callable[[str], str], docker_client: docker.DockerClient
) -> Callable[..., tuple[int, str]]:
    ref = image("agent-claude-code")

    def run_in_image(command: list[str], **kwargs: object) -> tuple[int, str]:
        container = docker_client.containers.run(
            ref, command, detach=True, labels=TEST_LABELS, network_mode="none", **kwargs
        )
        try:
            status = container.wait(timeout=60)["StatusCode"]
            return status, container.logs().decode()
        finally:
            container.remove(force=True)

    return run_in_image


def test_the_pinned_claude_code_runs(run: Callable[..., tuple[int, str]]) -> None:
    status, out = run(["claude", "--version"])
    assert status == 0, out
    assert PINNED in out


def test_the_version_is_recorded_in_a_label(
    image: Callable[[str], str], docker_client: docker.DockerClient
) -> None:
    labels = docker_client.images.get(image("agent-claude-code")).labels
    assert labels["org.ironcurtain.claude-code-version"] == PINNED


def test_the_agent_is_not_root(run: Callable[..., tuple[int, str]]) -> None:
    status, out = run(["id", "-u"])
    assert (status, out.strip()) == (0, "10002")


def test_no_setuid_or_setgid_binary_is_left(run: Callable[..., tuple[int, str]]) -> None:
    # Control: find itself works and sees files (so an empty answer means something).
    status, out = run(["sh", "-c", "find / -xdev -type f -perm /6000 2>/dev/null; echo end"])
    assert status == 0
    assert out.strip() == "end"


@pytest.mark.parametrize("tool", ["sudo", "su-to-root", "ssh", "sshd", "ssh-agent", "docker"])
def test_no_tool_to_escalate_or_leave_is_installed(
    run: Callable[..., tuple[int, str]], tool: str
) -> None:
    status, _ = run(["sh", "-c", f"command -v {tool}"])
    assert status != 0


def test_api_key_helper_refuses_without_a_fake_key(run: Callable[..., tuple[int, str]]) -> None:
    status, out = run(["/usr/local/bin/ironcurtain-api-key"])
    assert status == 1
    assert "no fake Anthropic key" in out


def test_api_key_helper_prints_the_sessions_fake_key(run: Callable[..., tuple[int, str]]) -> None:
    fake = "sk-ant-api03-" + "f" * 48
    status, out = run(
        ["/usr/local/bin/ironcurtain-api-key"],
        environment={"IRONCURTAIN_ANTHROPIC_FAKE_KEY": fake},
    )
    assert (status, out.strip()) == (0, fake)


def test_orientation_files_are_copied_into_home(
    run: Callable[..., tuple[int, str]], tmp_path: Path
) -> None:
    (tmp_path / ".claude").mkdir()
    (tmp_path / ".claude" / "CLAUDE.md").write_text("guide\n")
    tmp_path.chmod(0o755)
    (tmp_path / ".claude").chmod(0o755)
    status, out = run(
        ["cat", "/home/agent/.claude/CLAUDE.md"],
        volumes={str(tmp_path): {"bind": "/run/ironcurtain/session", "mode": "ro"}},
    )
    assert (status, out) == (0, "guide\n")
