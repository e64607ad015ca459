"""Servers marked `sandbox: true` run only in the sandbox (or inline when asked), never by default
beside the proxy; the sandbox gives each connection a fresh child, spoken to over a unix socket
named after the server in a private folder."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import mcp_types as types
import pytest
import yaml

from ironcurtain.mcpproxy import landlock
from ironcurtain.mcpproxy.cache import ToolCache
from ironcurtain.mcpproxy.config import (
    INLINE,
    BackendSpec,
    ConfigError,
    Room,
    parse_backends,
    place,
    socket_path,
)
from ironcurtain.mcpproxy.rooms import dump_spec
from ironcurtain.mcpproxy.sandbox import LandlockRefused, child_environment, serve_sandbox
from ironcurtain.mcpproxy.service import ProxySettings, _asker, running_gate
from ironcurtain.mcpproxy.stdio import SocketClient

from .conftest import BIN

ROOM = Room(workspace="rw")
GIT = BackendSpec(name="git", command="mcp-server-git", room=ROOM)
FS = BackendSpec(name="filesystem", command="mcp-server-filesystem", args=("/w",))


def _folder(tmp_path: Path) -> Path:
    """A private socket folder, as `ironcurtain run` makes it (0700)."""
    folder = tmp_path / "sandbox"
    folder.mkdir(mode=0o700)
    folder.chmod(0o700)
    return folder


def _room(folder: Path, name: str) -> Path:
    """Server `name`'s own folder in the rooms' folder (0700), as `ironcurtain run` makes it."""
    room = folder / name
    room.mkdir(mode=0o700)
    room.chmod(0o700)
    return room


@contextlib.asynccontextmanager
async def serving(
    specs: Sequence[BackendSpec], folder: Path, *, confine: bool = False, workspace: str = ""
) -> AsyncIterator[dict[str, str]]:
    """A room serving in `folder` for the block: server name -> socket path. Unconfined by
    default: these children run from the test's venv, outside any room's allowed folders."""
    async with anyio.create_task_group() as tg:
        paths: dict[str, str] = {}
        ready = anyio.Event()

        def started(bound: dict[str, str]) -> None:
            paths.update(bound)
            ready.set()

        tg.start_soon(
            lambda: serve_sandbox(
                specs, folder, confine=confine, workspace=workspace or None, started=started
            )
        )
        await ready.wait()
        yield paths
        tg.cancel_scope.cancel()


def test_inline_keeps_every_server_a_child_of_the_proxy() -> None:
    assert place((FS, GIT), INLINE) == (FS, GIT)


def test_no_sandbox_refuses_a_sandboxed_server_and_names_it() -> None:
    with pytest.raises(ConfigError, match=r"git.*sandbox"):
        place((FS, GIT), "")


def test_no_sandbox_is_fine_when_no_server_asks_for_one() -> None:
    assert place((FS,), "") == (FS,)


def test_a_sandbox_folder_turns_only_the_sandboxed_servers_into_sockets_named_after_them() -> None:
    other = BackendSpec(name="other", command="x", room=ROOM)
    placed = place((FS, GIT, other), "unix:/run/ironcurtain/rooms")
    assert placed[0] == FS  # no room (a spec made in code): as it is
    assert placed[1] == BackendSpec(name="git", address=("/run/ironcurtain/rooms/git/git.sock",))
    assert placed[2] == BackendSpec(
        name="other", address=("/run/ironcurtain/rooms/other/other.sock",)
    )
    assert placed[1].command is None
    assert not placed[1].env


@pytest.mark.parametrize(
    "sandbox",
    [
        "mcp-sandbox:8081",  # the old TCP form: the sandbox has no network now
        "http://mcp-sandbox:8081",
        "/run/ironcurtain/sandbox",
        "unix:",
        "unix:run/ironcurtain/sandbox",  # relative
        "unix:/run/\0x",
        "unix:/" + "d" * 120,  # no room for a socket name in sun_path
    ],
)
def test_a_sandbox_that_is_not_an_absolute_socket_folder_is_refused(sandbox: str) -> None:
    with pytest.raises(ConfigError, match=r"sandbox|socket path"):
        place((GIT,), sandbox)


@pytest.mark.parametrize(
    "name",
    ["", "../git", "git/x", ".git", "Git", "git.sock", "-git", "g" * 64, "git\0", "git name"],
)
def test_a_name_that_cannot_be_a_socket_in_the_folder_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="cannot name a socket"):
        socket_path("/run/ironcurtain/sandbox", name)
    with pytest.raises(ConfigError, match="cannot name a socket"):
        place((BackendSpec(name=name, command="x", room=ROOM),), "unix:/run/s")


def test_the_sandbox_refuses_to_serve_a_name_that_cannot_be_a_socket(tmp_path: Path) -> None:
    spec = BackendSpec(name="../escape", command="true", room=ROOM)
    with pytest.raises(ConfigError, match="cannot name a socket"):
        anyio.run(lambda: serve_sandbox([spec], _folder(tmp_path)))
    assert list(tmp_path.rglob("*")) == [tmp_path / "sandbox"]


@pytest.mark.parametrize("mode", [0o755, 0o710, 0o701, 0o770])
def test_the_sandbox_refuses_a_socket_folder_others_may_enter(tmp_path: Path, mode: int) -> None:
    folder = _folder(tmp_path)
    folder.chmod(mode)
    with pytest.raises(ValueError, match="must be private"):
        anyio.run(lambda: serve_sandbox([GIT], folder))
    assert not list(folder.iterdir())


def test_the_sandbox_refuses_a_socket_folder_that_is_a_symlink(tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(_folder(tmp_path))
    with pytest.raises(ValueError, match="not a folder"):
        anyio.run(lambda: serve_sandbox([GIT], link))


def test_the_sockets_are_private_and_gone_when_the_sandbox_stops(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    echo = BackendSpec(name="echo", command=sys.executable, args=tuple(ECHO_CHILD), room=ROOM)

    async def go() -> dict[str, str]:
        with anyio.fail_after(30):
            async with serving([FS, echo, GIT], folder) as paths:
                for path in paths.values():
                    mode = os.stat(path).st_mode
                    assert stat.S_ISSOCK(mode)
                    assert stat.S_IMODE(mode) == 0o600
        return paths

    paths = anyio.run(go)
    assert paths == {"echo": f"{folder}/echo.sock", "git": f"{folder}/git.sock"}  # not FS
    assert not list(folder.iterdir())


def test_a_sandboxed_child_inherits_only_ordinary_variables_and_its_own() -> None:
    spec = BackendSpec(name="git", command="git", env={"GIT_CONFIG_COUNT": "0"}, room=ROOM)
    environ = {"PATH": "/bin", "HOME": "/tmp", "REDIS_PASSWORD": "x", "AWS_SECRET": "y"}
    assert child_environment(spec, environ) == {
        "PATH": "/bin",
        "HOME": "/tmp",
        "GIT_CONFIG_COUNT": "0",
    }


@pytest.mark.parametrize(
    "body",
    [
        {"url": "http://x/mcp", "sandbox": True},  # nothing to run in the sandbox
        {"command": "x", "egress": True, "room": {"network": "none"}},  # contradicts itself
        {"command": "x", "sandbox": "yes"},
        {"url": "http://x/mcp", "room": {"workspace": "rw"}},  # a remote server has no room
        {"command": "x", "room": {"workspace": "all"}},
        {"command": "x", "room": {"network": "bridge"}},  # the egress leg or nothing
        {"command": "x", "room": {"mounts": ["/"]}},  # only what the setting names
        {"command": "x", "room": "rw"},
    ],
)
def test_a_sandbox_entry_that_cannot_work_is_refused_at_load(body: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        parse_backends({"mcpServers": {"git": body}}, "servers.yaml", {})


def test_the_default_policy_puts_every_server_in_a_room_holding_only_what_it_serves() -> None:
    doc = yaml.safe_load((Path(__file__).parents[3] / "policy" / "servers.yaml").read_text())
    specs = parse_backends(doc, "servers.yaml", {"workspace": "/w"})
    assert {s.name: s.room for s in specs} == {
        "filesystem": Room(workspace="rw", network="none"),
        "git": Room(workspace="rw", network="none"),
        "fetch": Room(workspace="none", network="egress"),
    }


def test_a_user_server_gets_a_room_with_nothing_by_default() -> None:
    doc = {"mcpServers": {"notes": {"command": "notes-server"}}}
    (spec,) = parse_backends(doc, "servers.yaml", {})
    assert spec.room == Room(workspace="none", network="none")
    assert not spec.egress
    with pytest.raises(ConfigError, match=r"notes.*rooms of their own"):
        place((spec,), "")


POLICY = """\
version: 1
protected: {paths: ["${state_dir}"], names: [".env"]}
lists: {}
servers:
  git:
    tools:
      git_status: {repo_path: read-path}
rules:
  - name: git-status
    effect: allow
    reason: reading the repository's state is harmless
    server: git
    tools: [git_status]
"""


def _sandboxed_git(tmp_path: Path) -> tuple[Path, Path, dict[str, object]]:
    """A policy folder serving git as a `sandbox: true` server, and an empty workspace."""
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "policy.yaml").write_text(POLICY)
    spec = {"command": str(BIN / "mcp-server-git"), "args": [], "sandbox": True}
    (policy / "servers.yaml").write_text(yaml.safe_dump({"mcpServers": {"git": spec}}))
    workspace = tmp_path / "ws"
    workspace.mkdir()
    return policy, workspace, spec


def _settings(
    tmp_path: Path, policy: Path, workspace: Path, folder: Path, **more: Any
) -> ProxySettings:
    """The proxy's settings for that policy, reaching the sandbox's sockets in `folder`."""
    return ProxySettings(
        policy_dir=policy,
        workspace=workspace,
        audit_file=tmp_path / "audit" / "a.jsonl",
        state_dir=tmp_path / "state",
        sandbox=f"unix:{folder}",
        **more,
    )


def test_the_proxy_reaches_a_sandboxed_git_through_the_sandbox(tmp_path: Path) -> None:
    policy, workspace, spec = _sandboxed_git(tmp_path)
    subprocess.run(["git", "init", "-q", str(workspace)], check=True)
    (workspace / "new.txt").write_text("untracked\n")
    specs = parse_backends({"mcpServers": {"git": spec}}, "servers.yaml", {})
    folder = _folder(tmp_path)

    async def go() -> tuple[list[str], types.CallToolResult]:
        with anyio.fail_after(60):
            async with serving(specs, _room(folder, "git")) as paths:
                assert paths == {"git": f"{folder}/git/git.sock"}
                settings = _settings(tmp_path, policy, workspace, folder)
                async with running_gate(settings) as gate:
                    names = [t["name"] for t in gate.tools()]
                    result = await gate.call("git__git_status", {"repo_path": str(workspace)})
        return names, result

    names, result = anyio.run(go)
    assert "git__git_status" in names
    assert not result.is_error
    assert "new.txt" in "".join(c.text for c in result.content if isinstance(c, types.TextContent))


def test_a_saved_listing_lets_the_proxy_start_without_the_sandbox_and_a_call_fails_closed(
    tmp_path: Path,
) -> None:
    """On demand through the sandbox: no connection at start-up; an unreachable sandbox refuses
    the call with the reason instead of hanging or running git anywhere else."""
    policy, workspace, spec = _sandboxed_git(tmp_path)
    (command,) = parse_backends({"mcpServers": {"git": spec}}, "servers.yaml", {})
    listing = [{"name": "git_status", "inputSchema": {"type": "object"}}]
    assert ToolCache(tmp_path / "tools").put(command, listing) is not None
    folder = _folder(tmp_path)  # no sandbox serves here: no socket in it
    settings = _settings(
        tmp_path, policy, workspace, folder, tools_cache=tmp_path / "tools", startup_timeout_s=3
    )

    async def go() -> tuple[list[str], types.CallToolResult]:
        with anyio.fail_after(30):
            async with running_gate(settings) as gate:
                names = [t["name"] for t in gate.tools()]
                result = await gate.call("git__git_status", {"repo_path": str(workspace)})
        return names, result

    names, result = anyio.run(go)
    assert names == ["git__git_status"]
    assert result.is_error
    text = "".join(c.text for c in result.content if isinstance(c, types.TextContent))
    assert (
        f"backend 'git' did not start: ConnectionError: the sandbox socket {folder}/git/git.sock "
        "does not answer (No such file or directory)"
    ) in text


# The same echo in sh, which runs from /bin (inside a confined room's allowed folders).
SH_ECHO = 'echo $$; while read -r line; do [ "$line" = exit ] && break; echo "$line"; done'

ECHO_CHILD = [
    "-c",
    "import os, sys\n"
    "print(os.getpid(), flush=True)\n"
    "for line in sys.stdin:\n"
    "    if line.strip() == 'exit':\n"
    "        break\n"
    "    print(line.strip().upper(), flush=True)\n",
]


def _pipes(tmp_path: Path, body: Callable[[str], Awaitable[None]]) -> None:
    """Run `body(path)` against a sandbox serving one echoing child per connection."""
    spec = BackendSpec(name="echo", command=sys.executable, args=tuple(ECHO_CHILD), room=ROOM)

    async def go() -> None:
        with anyio.fail_after(30):
            async with serving([spec], _folder(tmp_path)) as paths:
                await body(paths["echo"])

    anyio.run(go)


async def _line(stream: anyio.abc.SocketStream) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        data += await stream.receive()
    return data


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_each_connection_gets_its_own_child_and_hanging_up_stops_it(tmp_path: Path) -> None:
    async def body(path: str) -> None:
        first = await anyio.connect_unix(path)
        second = await anyio.connect_unix(path)
        pids = [int(await _line(first)), int(await _line(second))]
        assert pids[0] != pids[1]
        await first.send(b"hello\n")
        assert await _line(first) == b"HELLO\n"
        await first.aclose()
        with anyio.fail_after(10):
            while _alive(pids[0]):  # no event for a stranger's exit: polled, under the deadline
                await anyio.sleep(0.02)
        assert _alive(pids[1])  # the other connection's child is untouched
        await second.send(b"still\n")
        assert await _line(second) == b"STILL\n"
        await second.aclose()
        third = await anyio.connect_unix(path)  # a reconnection: a fresh child again
        assert int(await _line(third)) not in pids
        await third.aclose()

    _pipes(tmp_path, body)


def test_a_child_that_exits_closes_its_connection(tmp_path: Path) -> None:
    async def body(path: str) -> None:
        stream = await anyio.connect_unix(path)
        await _line(stream)
        await stream.send(b"exit\n")
        with anyio.fail_after(10), pytest.raises(anyio.EndOfStream):
            await stream.receive()
        await stream.aclose()

    _pipes(tmp_path, body)


def test_the_sandbox_command_serves_until_sigterm_then_leaves_no_socket_or_child(
    tmp_path: Path,
) -> None:
    """`mcp-proxy room --server FILE --sockets DIR` as a room runs it (no policy folder):
    SIGTERM (compose down) stops it at once and cleanly, its children stopped and its sockets
    removed."""
    echo = BackendSpec(
        name="echo", command="/bin/sh", args=("-c", SH_ECHO), room=Room(workspace="rw")
    )
    server = tmp_path / "echo.json"
    server.write_text(dump_spec(echo))
    folder = _folder(tmp_path)
    command = [
        sys.executable, "-m", "ironcurtain.cli", "mcp-proxy", "room",
        "--server", str(server), "--workspace", str(tmp_path), "--sockets", str(folder),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 60)
        assert ready, "the sandbox did not announce its sockets within 60 s"
        assert process.stdout.readline().decode().startswith("room: serving {'echo': ")

        async def child() -> int:
            with anyio.fail_after(30):
                stream = await anyio.connect_unix(str(folder / "echo.sock"))
                pid = int(await _line(stream))
                process.terminate()
                with pytest.raises(anyio.EndOfStream):  # the sandbox hung up on stopping
                    await _line(stream)
                await stream.aclose()
                return pid

        pid = anyio.run(child)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
    assert not _alive(pid)
    assert not list(folder.iterdir())


def test_a_missing_socket_asks_for_the_sandbox_once_and_connects_when_it_appears(
    tmp_path: Path,
) -> None:
    path = tmp_path / "git.sock"
    asked: list[bool] = []

    async def main() -> None:
        listener: list[socket.socket] = []

        def wake() -> None:  # the sandbox "starts": its socket appears
            asked.append(True)
            server = socket.socket(socket.AF_UNIX)
            server.bind(str(path))
            server.listen()
            listener.append(server)

        client = SocketClient(str(path), wake=wake, wake_wait_s=10)
        send, _ = await client._open()
        await send.aclose()
        listener[0].close()

    anyio.run(main)
    assert asked == [True]


def test_a_sandbox_that_never_appears_fails_the_call_naming_the_socket(tmp_path: Path) -> None:
    path = tmp_path / "git.sock"

    async def main() -> None:
        client = SocketClient(str(path), wake=lambda: None, wake_wait_s=0.3)
        with pytest.raises(ConnectionError, match=r"git\.sock did not appear within 0\.3 s"):
            await client._open()

    anyio.run(main)


def test_without_a_wake_a_missing_socket_fails_at_once(tmp_path: Path) -> None:
    async def main() -> None:
        with pytest.raises(ConnectionError, match="does not answer"):
            await SocketClient(str(tmp_path / "git.sock"))._open()

    anyio.run(main)


def test_asking_for_the_sandbox_creates_its_file_once_and_never_through_a_link(
    tmp_path: Path,
) -> None:
    ask = _asker(tmp_path / "sandbox")
    ask()
    ask()  # asked already: nothing more
    assert stat.S_IMODE((tmp_path / "sandbox").stat().st_mode) == 0o600
    target = tmp_path / "audit.jsonl"
    target.write_text("kept\n")
    (tmp_path / "linked").symlink_to(target)
    _asker(tmp_path / "linked")()  # a link planted there is never followed (O_EXCL)
    assert target.read_text() == "kept\n"
    assert (tmp_path / "linked").is_symlink()


def test_a_kernel_without_landlock_makes_the_room_refuse_to_serve_not_run_unconfined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gVisor's runsc answers landlock_create_ruleset with ENOSYS: the room says why and binds
    no socket, so no call reaches an unconfined child (control: unconfined on request serves)."""

    def unavailable() -> int:
        raise landlock.LandlockUnavailable(38, "Landlock is not available")

    monkeypatch.setattr(landlock, "abi", unavailable)
    folder = _folder(tmp_path)

    async def refused() -> None:
        with anyio.fail_after(10):
            await serve_sandbox([GIT], folder, confine=True, workspace=str(tmp_path))

    with pytest.raises(LandlockRefused, match=r"no Landlock.*git.*refusing to serve"):
        anyio.run(refused)
    assert list(folder.iterdir()) == []

    async def control() -> list[str]:
        with anyio.fail_after(10):
            async with serving([GIT], folder) as paths:
                return sorted(paths)

    assert anyio.run(control) == ["git"]
