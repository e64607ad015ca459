"""`ironcurtain run` end to end, through real containers, as a user runs it (a subprocess).

The scripted agent makes one LLM call through the MITM proxy to the fake vendor (on the session's
egress network, via the MITM's upstream override) and three MCP calls: allowed, denied, and
escalated -- which this test approves through the approval service's JSON API when the session
prints the escalation notice. Afterwards nothing of the session is left but its audit and summary.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import signal
import subprocess
import urllib.request
from pathlib import Path

import docker
import pytest

from ironcurtain.audit import read_key, verify_file
from ironcurtain.audit.anchor import checkpoints_path, key_path
from ironcurtain.escalation import acl, users
from ironcurtain.escalation.channel import connect
from ironcurtain.session.naming import session_name
from ironcurtain.session.run import _redis_address
from ironcurtain.session.summary import json_lines, llm_counts, tool_counts
from ironcurtain.shared.command import shared_environ

from ..conftest import REPO_ROOT
from .conftest import AGENT_UID, REAL_KEY, Env, cli, popen

NOTICE = re.compile(r"\[ironcurtain\] escalation ([0-9a-f]+\.[0-9a-f]{16}): filesystem__move_file")


def approve(env: Env, escalation_id: str) -> dict[str, object]:
    token = (env.shared_dir / "approval_token").read_text().strip()
    port = env.environ["IRONCURTAIN_APPROVAL_PORT"]
    path = f"http://127.0.0.1:{port}/api/v1/escalations/{escalation_id}"
    shown = urllib.request.Request(path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(shown, timeout=10) as answer:  # noqa: S310 - http://127.0.0.1
        digest = json.loads(answer.read())["escalation"]["digest"]  # what the human is shown
    request = urllib.request.Request(  # noqa: S310 - http://127.0.0.1
        f"{path}/approve",
        data=json.dumps(
            {"reason": "the test approves", "by": "session-test", "digest": digest}
        ).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - http://127.0.0.1
        return json.loads(answer.read())


def session_dir(env: Env, session_id: str) -> Path:
    """The session's folder, named after its workspace (ic-<workspace slug>-<id>)."""
    (root,) = (env.state / "sessions").glob(f"ic-*-{session_id}")
    return root


def assert_nothing_left(env: Env, client: docker.DockerClient, session_id: str) -> None:
    # Whatever its workspace was called: no project of this session id left, folder or not.
    label = "com.docker.compose.project"
    containers = client.containers.list(all=True, ignore_removed=True)
    projects = {c.labels.get(label, "") for c in containers}
    projects |= {(n.attrs.get("Labels") or {}).get(label, "") for n in client.networks.list()}
    assert sorted(p for p in projects if p.startswith("ic-") and p.endswith(f"-{session_id}")) == []
    roots = list((env.state / "sessions").glob(f"ic-*-{session_id}"))
    if not roots:
        return  # refused before its folder existed
    (root,) = roots
    for ephemeral in ("secrets", "agent", "mitm", "rooms", "room-servers", "agent.env"):
        assert not (root / ephemeral).exists(), ephemeral


def test_a_scripted_session_calls_the_llm_and_its_tools_and_leaves_only_its_records(
    session_env: Env, workspace: Path, docker_client: docker.DockerClient
) -> None:
    session_id = secrets.token_hex(4)
    args = session_env.run_args(
        "--agent", "scripted", "--task", "say hello", "--workspace", str(workspace),
        "--session-id", session_id, "--escalation-timeout", "120",
    )  # fmt: skip
    output, approved = [], None
    with popen(session_env, *args) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:  # the session's own output drives the test: no polling
            output.append(line)
            found = NOTICE.search(line)
            if found and approved is None:
                approved = approve(session_env, found.group(1))
        code = proc.wait(timeout=60)
    text = "".join(output)
    assert code == 0, text
    assert approved is not None, text

    # The LLM call went through the MITM to the fake vendor, which saw the real key.
    root = session_dir(session_env, session_id)
    events = json_lines((root / "agent-output.log").read_text())
    llm = next(e for e in events if e.get("step") == "llm")
    assert llm["status"] == 200
    assert llm["vendor_key_sha256"] == hashlib.sha256(REAL_KEY.encode()).hexdigest()
    tools = [e for e in events if e.get("step") == "tool"]
    assert [t["is_error"] for t in tools] == [False, True, False], tools
    assert "hello from the workspace" in tools[0]["text"]
    assert "outside-workspace" in tools[1]["text"]
    assert (workspace / "new.txt").read_text() == "to be moved\n"  # the approved move ran
    assert not (workspace / "old.txt").exists()

    # The summary counts what the audit logs say.
    summary = json.loads((root / "summary.json").read_text())
    mcp_log = Path(summary["audit"]["mcp"])
    mitm_log = Path(summary["audit"]["mitm"])
    counted = tool_counts(json_lines(mcp_log.read_text()))
    assert summary["tools"] == {
        "total": 3, "allowed": 1, "denied": 1, "escalated": 1, "approved": 1, "not_approved": 0,
    }  # fmt: skip
    assert summary["tools"]["total"] == counted.total
    assert summary["tools"]["approved"] == counted.approved
    metered = llm_counts(json_lines(mitm_log.read_text()))
    assert summary["llm"]["requests"] == metered.requests == 1
    assert summary["llm"]["input_tokens"] == metered.input_tokens > 0
    assert summary["outcome"] == "ok"
    # Both doors' logs verify with the session's keys and the host's checkpoints (anchor/).
    for log in (mcp_log, mitm_log):
        anchor = log.parents[2] / "anchor"
        report = verify_file(log, read_key(key_path(anchor, log)), checkpoints_path(anchor, log))
        assert report.ok, (log, report.problem)
        assert report.lines > 0

    # No real key anywhere the session wrote, and nothing of the session left running.
    for path in (mcp_log, mitm_log, root / "agent-output.log", root / "summary.json"):
        assert REAL_KEY not in path.read_text(), path
    assert REAL_KEY not in text
    assert_nothing_left(session_env, docker_client, session_id)
    assert_no_redis_user_left(session_env, docker_client, session_id)


def assert_no_redis_user_left(env: Env, client: docker.DockerClient, session_id: str) -> None:
    """The session's own Redis user was removed at teardown (with the admin credential)."""
    shared = shared_environ(env.environ)
    address = _redis_address(client, shared["IRONCURTAIN_SHARED_NETWORK"])
    admin = connect(
        "rediss://redis:6379/0",
        env.shared_dir / "redis_admin",
        ca_file=env.shared_dir / "tls" / "ca.pem",
        address=address,
    )
    try:
        assert acl.session_user(session_id) not in users.session_users(admin)
    finally:
        admin.close()


def test_a_session_whose_mcp_proxy_cannot_start_is_torn_down(
    session_env: Env, workspace: Path, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "policy.yaml").write_text((REPO_ROOT / "policy" / "policy.yaml").read_text())
    # A name the run accepts but whose socket path the proxy refuses (over 107 bytes).
    name = "a" + "b" * 59
    (policy / "servers.yaml").write_text(f"mcpServers: {{{name}: {{command: x}}}}\n")
    session_id = secrets.token_hex(4)
    args = session_env.run_args(
        "--agent", "scripted", "--task", "say hello", "--workspace", str(workspace),
        "--session-id", session_id, "--policy", str(policy),
    )  # fmt: skip
    done = cli(session_env, *args)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "did not start" in done.stdout
    assert_nothing_left(session_env, docker_client, session_id)
    summary = json.loads((session_dir(session_env, session_id) / "summary.json").read_text())
    assert summary["outcome"].startswith("failed: the session did not start")


def test_a_malformed_backends_file_is_refused_before_anything_starts(
    session_env: Env, workspace: Path, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "policy.yaml").write_text((REPO_ROOT / "policy" / "policy.yaml").read_text())
    (policy / "servers.yaml").write_text("mcpServers: [not, a, mapping]\n")
    session_id = secrets.token_hex(4)
    args = session_env.run_args(
        "--agent", "scripted", "--task", "say hello", "--workspace", str(workspace),
        "--session-id", session_id, "--policy", str(policy),
    )  # fmt: skip
    done = cli(session_env, *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "the backends file is refused" in done.stdout
    assert_nothing_left(session_env, docker_client, session_id)


def test_an_agent_that_crashes_ends_the_session_and_leaves_nothing(
    session_env: Env, workspace: Path, docker_client: docker.DockerClient
) -> None:
    session_id = secrets.token_hex(4)
    args = session_env.run_args(
        "--agent", "scripted", "--task", "crash now", "--workspace", str(workspace),
        "--session-id", session_id,
    )  # fmt: skip
    done = cli(session_env, *args)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "the agent exited with 3" in done.stdout
    assert_nothing_left(session_env, docker_client, session_id)


def test_a_workspace_of_root_is_refused_before_anything_starts(
    session_env: Env, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    # The agent runs as the workspace's owner: never root, even with every mode bit set.
    closed = tmp_path / "closed"
    closed.mkdir()
    closed.chmod(0o777)
    session_id = secrets.token_hex(4)
    args = session_env.run_args(
        "--agent", "scripted", "--task", "x", "--workspace", str(closed),
        "--session-id", session_id,
    )  # fmt: skip
    done = cli(session_env, *args)
    assert done.returncode == 2, done.stdout
    assert "belongs to root" in done.stdout
    assert "sudo chown -R USER:GROUP" in done.stdout
    assert_nothing_left(session_env, docker_client, session_id)


@pytest.mark.parametrize("linked", [False, True])
def test_a_user_config_the_agent_could_write_is_refused(
    session_env: Env, tmp_path: Path, docker_client: docker.DockerClient, linked: bool
) -> None:
    # Budgets off and prices at zero would be one write away for the agent.
    work = tmp_path / "ws"
    (work / "dotfiles" / "ironcurtain").mkdir(parents=True)
    (work / "dotfiles" / "ironcurtain" / "config.toml").write_text("[budget]\ntokens = false\n")
    os.chown(work, AGENT_UID, AGENT_UID)
    config_home = work / "dotfiles"
    if linked:  # the config folder elsewhere, its file a link into the workspace
        config_home = tmp_path / "cfg"
        (config_home / "ironcurtain").mkdir(parents=True)
        (config_home / "ironcurtain" / "config.toml").symlink_to(
            work / "dotfiles" / "ironcurtain" / "config.toml"
        )
    session_id = secrets.token_hex(4)
    env = Env({**session_env.environ, "XDG_CONFIG_HOME": str(config_home)}, session_env.state,
              session_env.vendor)  # fmt: skip
    args = env.run_args(
        "--agent", "scripted", "--task", "x", "--workspace", str(work), "--session-id", session_id,
    )  # fmt: skip
    done = cli(env, *args)
    assert done.returncode == 2, done.stdout
    assert "lies in the workspace" in done.stdout
    assert_nothing_left(session_env, docker_client, session_id)


def test_a_workspace_holding_ironcurtains_state_is_refused(
    session_env: Env, docker_client: docker.DockerClient
) -> None:
    session_id = secrets.token_hex(4)
    args = session_env.run_args(
        "--agent", "scripted", "--task", "x", "--workspace", str(session_env.state.parent),
        "--session-id", session_id,
    )  # fmt: skip
    done = cli(session_env, *args)
    assert done.returncode == 2, done.stdout
    assert "contains protected paths" in done.stdout
    assert_nothing_left(session_env, docker_client, session_id)


def test_a_missing_real_key_refuses_with_how_to_store_one(
    session_env: Env, workspace: Path
) -> None:
    environ = {**session_env.environ, "IRONCURTAIN_STATE_DIR": str(workspace.parent / "empty")}
    env = Env(environ, workspace.parent / "empty", session_env.vendor)
    done = cli(
        env, *env.run_args("--agent", "scripted", "--task", "x", "--workspace", str(workspace))
    )
    assert done.returncode == 2
    assert "ironcurtain keys set anthropic" in done.stdout


def _hold_until_escalated(env: Env, session_id: str, workspace: Path) -> subprocess.Popen[str]:
    """A running session whose agent waits on its escalation (nobody approves)."""
    args = env.run_args(
        "--agent", "scripted", "--task", "say hello", "--workspace", str(workspace),
        "--session-id", session_id, "--escalation-timeout", "120",
    )  # fmt: skip
    proc = popen(env, *args)
    assert proc.stdout is not None
    for line in proc.stdout:
        if NOTICE.search(line):
            return proc
    proc.wait()
    raise AssertionError("the session ended before its escalation")


def test_sigterm_mid_session_tears_everything_down(
    session_env: Env, workspace: Path, docker_client: docker.DockerClient
) -> None:
    session_id = secrets.token_hex(4)
    with _hold_until_escalated(session_env, session_id, workspace) as proc:
        proc.send_signal(signal.SIGTERM)
        rest = proc.stdout.read() if proc.stdout else ""
        code = proc.wait(timeout=90)
    assert code == 130, rest
    assert "interrupted" in rest
    assert_nothing_left(session_env, docker_client, session_id)


def test_a_door_that_dies_mid_session_ends_it_and_leaves_nothing(
    session_env: Env, workspace: Path, docker_client: docker.DockerClient
) -> None:
    session_id = secrets.token_hex(4)
    project = session_name(workspace, session_id).project
    with _hold_until_escalated(session_env, session_id, workspace) as proc:
        docker_client.containers.get(f"{project}-mitm-proxy-1").kill()
        rest = proc.stdout.read() if proc.stdout else ""
        code = proc.wait(timeout=90)
    assert code == 1, rest
    assert "mitm-proxy stopped while the agent was running" in rest
    assert_nothing_left(session_env, docker_client, session_id)
