"""Real backends for the proxy tests: the reference filesystem server (npm, installed once into
.cache/npm), mcp-server-git and mcp-server-fetch (from the venv), on a temporary workspace."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
NPM_PREFIX = REPO / ".cache" / "npm"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def filesystem_server() -> str:
    """The path of `mcp-server-filesystem`, installed from npm into a test-local prefix."""
    found = NPM_PREFIX / "node_modules" / ".bin" / "mcp-server-filesystem"
    if not found.exists():
        npm = shutil.which("npm")
        assert npm, "npm is needed for the filesystem MCP server (`make test` installs it)"
        # The same version the mcp-proxy image ships.
        version = (REPO / "images" / "mcp-proxy" / "filesystem-server.version").read_text().strip()
        NPM_PREFIX.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(NPM_PREFIX),
                "--no-audit",
                "--no-fund",
                f"@modelcontextprotocol/server-filesystem@{version}",
            ],
            check=True,
            timeout=300,
            capture_output=True,
        )
    assert found.exists()
    return str(found)


def write_servers(
    policy_dir: Path, filesystem_server: str, *, fetch_args: list[str] | None = None
) -> None:
    servers = {
        "mcpServers": {
            "filesystem": {"command": filesystem_server, "args": ["${workspace}"]},
            "git": {
                "command": str(BIN / "mcp-server-git"),
                "args": [],
            },
            "fetch": {
                "command": str(BIN / "mcp-server-fetch"),
                "args": fetch_args or [],
                "egress": True,
                # No node/npm in its PATH: readabilipy would otherwise `npm install` at run time
                # (as in the image, which ships no npm: pure-Python extraction).
                "env": {"PATH": str(BIN)},
            },
        }
    }
    (policy_dir / "servers.yaml").write_text(yaml.safe_dump(servers))


@pytest.fixture
def layout(tmp_path: Path, filesystem_server: str) -> dict[str, Path]:
    return make_layout(tmp_path, filesystem_server)


def make_layout(root: Path, filesystem_server: str) -> dict[str, Path]:
    """A session's directories: workspace (a git repo with files), policy, audit, state, outside."""
    root = root.resolve()
    dirs = {name: root / name for name in ("workspace", "policy", "audit", "state", "outside")}
    for d in dirs.values():
        d.mkdir()
    ws = dirs["workspace"]
    (ws / "hello.txt").write_text("hello from the workspace\n")
    (ws / ".env").write_text("ANTHROPIC_API_KEY=sk-ant-real\n")
    (dirs["outside"] / "secret.txt").write_text("outside the workspace\n")
    os.symlink(dirs["outside"] / "secret.txt", ws / "escape.txt")
    git = {"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "PATH": os.environ["PATH"]}
    subprocess.run(["git", "init", "-q", str(ws)], check=True, env=git)
    shutil.copy(REPO / "policy" / "policy.yaml", dirs["policy"] / "policy.yaml")
    write_servers(dirs["policy"], filesystem_server)
    return dirs
