"""The real Claude Code on a Claude subscription login, end to end through the curtain.

The user's Claude Code credentials file (access + refresh token) is imported with
`ironcurtain login claude`'s function; the fake vendor was seeded with that access token
already expired, so the agent's first request is refused 401 mid-session: the MITM asks the
host, the host re-reads the user's file, spends the refresh token at the (fake) token endpoint,
writes the rotated tokens back, and the request is sent again. The real tokens appear nowhere in
the agent container (environment, files), the session's logs or the audit.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from ironcurtain.fakellm import play
from ironcurtain.keystore import KeyStore
from ironcurtain.session.login import import_login
from ironcurtain.session.oauth import STORE_NAME, load_store, parse_claude_file
from ironcurtain.session.plan import Upstream
from ironcurtain.session.run import Options, Session
from ironcurtain.session.summary import json_lines

from ..redisserver import free_port
from .conftest import FAKELLM_COMPOSE, Env
from .test_claude_code import PLAY_COMPOSE, _play_dir
from .test_run import assert_nothing_left

pytestmark = pytest.mark.container

OAUTH_COMPOSE = Path(__file__).parent / "oauth.compose.yaml"
ACCESS = "sk-ant-oat01-REAL-subscription-access-" + secrets.token_hex(8)
REFRESH = "sk-ant-ort01-REAL-subscription-refresh-" + secrets.token_hex(8)
FINAL = "IC-FINAL: answered on a subscription."
# Everything the agent container can hold: its environment and every file it can write or read.
SCAN = (
    "cat /proc/1/environ; env; "
    "find / \\( -path /proc -o -path /sys -o -path /dev -o -path /usr \\) -prune "
    "-o -type f -size -2M -print0 2>/dev/null | xargs -0 cat 2>/dev/null; true"
)


def _scan(container: docker.models.containers.Container) -> str:
    done = container.exec_run(["sh", "-c", SCAN], user="10100")
    return done.output.decode("utf-8", "replace")


def test_claude_code_runs_on_a_subscription_with_a_refresh_mid_session(
    session_env: Env,
    workspace: Path,
    tmp_path: Path,
    image: Callable[[str], str],
    docker_client: docker.DockerClient,
) -> None:
    image("agent-claude-code")
    folder = _play_dir(tmp_path, {"turns": [{"text": FINAL}]})
    # The vendor already considers the access token expired; the user's file says it is good.
    seed = {"access_token": ACCESS, "refresh_token": REFRESH, "expires_at_s": time.time() - 5}
    (folder / "oauth-seed.json").write_text(json.dumps(seed))
    (folder / "oauth-seed.json").chmod(0o644)
    host_file = tmp_path / "home" / ".claude" / ".credentials.json"
    host_file.parent.mkdir(parents=True)
    entry = {
        "accessToken": ACCESS,
        "refreshToken": REFRESH,
        "expiresAt": int((time.time() + 3600) * 1000),
        "scopes": ["user:inference", "user:profile"],
        "subscriptionType": "max",
    }
    host_file.write_text(json.dumps({"claudeAiOauth": entry}))
    host_file.chmod(0o600)
    store = KeyStore(session_env.state / "keys")
    port = free_port()
    ca = session_env.vendor / "fake-ca.pem"
    said: list[str] = []
    session = Session(
        Options(
            task="Say hello.",
            agent="claude-code",
            workspace=workspace,
            session_id=secrets.token_hex(4),
            compose_files=(FAKELLM_COMPOSE, PLAY_COMPOSE, OAUTH_COMPOSE),
            upstreams=(
                Upstream("api.anthropic.com", "fakellm:8443", ca),
                Upstream("console.anthropic.com", f"127.0.0.1:{port}", ca),
            ),
            build_images=False,
        ),
        say=said.append,
        environ={
            **session_env.environ,
            "IRONCURTAIN_FAKELLM_PLAY": str(folder),
            "IRONCURTAIN_FAKELLM_TOKEN_PORT": str(port),
        },
    )
    import_login(store, file=host_file)
    logs = ""
    try:
        session.prepare()
        session.up()
        session.check_isolation()
        agent = session._container("agent")
        before = _scan(agent)
        code = session.run_agent()
        after = _scan(agent)
        logs = "".join(
            session._container(s).logs().decode("utf-8", "replace")
            for s in ("agent", "mitm-proxy", "fakellm", "sidecar", "mcp-proxy")
        )
    finally:
        session.teardown()
        login = (store.root / STORE_NAME).read_text() if (store.root / STORE_NAME).exists() else ""
        (store.root / STORE_NAME).unlink(missing_ok=True)  # other tests use the API key
    output = "\n".join(said)
    assert code == 0, output
    assert session.answer == FINAL, output
    assert "subscription login" in output

    # The host refreshed once and wrote the rotated tokens back to the user's file and the store.
    refreshed = parse_claude_file(host_file.read_text())
    assert refreshed.access_token != ACCESS
    assert refreshed.refresh_token not in (None, REFRESH)
    assert load_store(login)[0] == refreshed
    assert json.loads(host_file.read_text())["claudeAiOauth"]["subscriptionType"] == "max"

    # The vendor's side: one refused request with the old token, one grant, then the new token.
    seen = json_lines((folder / play.RECORD_FILE).read_text())
    grants = [r for r in seen if r["target"] == "/v1/oauth/token"]
    assert len(grants) == 1, [r["target"] for r in seen]
    assert grants[0]["body"]["refresh_token"] == REFRESH
    messages = [r for r in seen if r["target"].partition("?")[0] == "/v1/messages"]
    auths = [r["headers"].get("authorization") for r in messages]
    assert auths[0] == [play.digest(f"Bearer {ACCESS}")], auths
    assert auths[-1] == [play.digest(f"Bearer {refreshed.access_token}")], auths
    for request in messages:
        assert "x-api-key" not in request["headers"]
        betas = ",".join(request["headers"].get("anthropic-beta", []))
        assert "oauth-2025-04-20" in betas

    # No real token in the agent container, the logs, the audit or the session's files.
    root = session.layout.root
    kept = [p for p in root.rglob("*") if p.is_file()]
    texts = {
        "agent before": before,
        "agent after": after,
        "container logs": logs,
        "output": output,
        **{str(p): p.read_text(errors="replace") for p in kept},
    }
    assert "sk-ant-oat01-" in before  # control: the scan sees the agent's (fake) credentials
    for secret in (ACCESS, REFRESH, refreshed.access_token, str(refreshed.refresh_token)):
        for where, text in texts.items():
            assert secret not in text, where
    audit = json_lines((root / "audit" / "mitm" / "mitm.jsonl").read_text())
    assert [e for e in audit if e.get("rule") == "oauth"], "no retry after the 401 was audited"
    assert_nothing_left(session_env, docker_client, session.name.session_id)
