"""A room's child runs under Landlock: whatever path it resolves, the kernel opens only the
workspace (and its program's folders). Tried as finding 1 of issue #14 did: a symlink out, the
proc magic link, and a directory swapped with a symlink (RENAME_EXCHANGE) while the child reads
under it; each with its control, a plain read in the workspace."""

from __future__ import annotations

import ctypes
import functools
import platform
import subprocess
import threading
from pathlib import Path

import anyio
import anyio.abc
import pytest

from ironcurtain.mcpproxy import landlock
from ironcurtain.mcpproxy.config import BackendSpec, Room

from .test_sandbox import _folder, _line, serving

try:
    landlock.abi()
except landlock.LandlockUnavailable:
    pytest.skip("this kernel offers no Landlock", allow_module_level=True)

# Reads one path a line and answers its content, or REFUSED: the shape of a filesystem server.
READER = 'while read -r p; do cat -- "$p" 2>/dev/null || echo REFUSED; done'
CANARY = "canary-outside-the-workspace"
RENAME_EXCHANGE = 2
SYS_RENAMEAT2 = 316  # x86_64
AT_FDCWD = -100


def _spec(workspace: str = "rw") -> BackendSpec:
    return BackendSpec(
        name="reader", command="/bin/sh", args=("-c", READER), room=Room(workspace=workspace)
    )


def _layout(tmp_path: Path) -> tuple[Path, Path]:
    workspace = tmp_path / "ws"
    (workspace / "d").mkdir(parents=True)
    (workspace / "d" / "f").write_text("inside\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_text(CANARY + "\n")
    return workspace, outside


def _ask(tmp_path: Path, workspace: Path, paths: list[str]) -> list[str]:
    async def go() -> list[str]:
        with anyio.fail_after(30):
            async with serving(
                [_spec()], _folder(tmp_path), confine=True, workspace=str(workspace)
            ) as socks:
                stream = await anyio.connect_unix(socks["reader"])
                answers = []
                for path in paths:
                    await stream.send(path.encode() + b"\n")
                    answers.append((await _line(stream)).decode().strip())
                await stream.aclose()
                return answers

    return anyio.run(go)


def test_a_room_child_reads_the_workspace_but_no_file_outside_it(tmp_path: Path) -> None:
    workspace, outside = _layout(tmp_path)
    (workspace / "out").symlink_to(outside)
    answers = _ask(
        tmp_path,
        workspace,
        [
            str(workspace / "d" / "f"),  # control
            str(outside / "f"),
            str(workspace / "out" / "f"),  # a symlink out of the workspace
            f"/proc/self/root{outside}/f",  # the magic link to the root
            f"{workspace}/d/../../outside/f",
        ],
    )
    assert answers == ["inside", "REFUSED", "REFUSED", "REFUSED", "REFUSED"]


@pytest.mark.skipif(platform.machine() != "x86_64", reason="renameat2's number is x86_64's")
def test_a_directory_swapped_with_a_symlink_during_reads_reaches_nothing_outside(
    tmp_path: Path,
) -> None:
    workspace, outside = _layout(tmp_path)
    (workspace / "swap").symlink_to(outside)
    libc = ctypes.CDLL(None, use_errno=True)
    stop = threading.Event()
    swaps = [0]

    def swapper() -> None:  # the agent's loop, bounded by the reads below
        a, b = str(workspace / "d").encode(), str(workspace / "swap").encode()
        while not stop.is_set() and swaps[0] < 200_000:
            if libc.syscall(SYS_RENAMEAT2, AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) == 0:
                swaps[0] += 1

    thread = threading.Thread(target=swapper, daemon=True)
    thread.start()
    try:
        answers = _ask(tmp_path, workspace, [str(workspace / "d" / "f")] * 300)
    finally:
        stop.set()
        thread.join(10)
    assert swaps[0] > 0
    assert CANARY not in answers
    assert set(answers) <= {"inside", "REFUSED"}


def test_a_read_only_room_cannot_write_its_workspace(tmp_path: Path) -> None:
    rules = landlock.room_rules(str(tmp_path), writable=False)
    assert (str(tmp_path), landlock.READ) in rules.grants
    writable = landlock.room_rules(str(tmp_path), writable=True)
    assert (str(tmp_path), landlock.READ | landlock.WRITE) in writable.grants


def test_a_room_without_the_workspace_gets_its_tmp_and_no_workspace() -> None:
    rules = landlock.room_rules(None, writable=False)
    assert "/tmp" in dict(rules.grants)
    assert "/workspace" not in dict(rules.grants)


def test_a_child_that_cannot_be_confined_is_never_started() -> None:
    """A grant on a folder that does not exist fails the confinement: the program never runs
    (the preexec function raises in the child, and the start fails)."""
    rules = landlock.Rules((("/no/such/folder", landlock.READ),))
    confine = functools.partial(landlock.restrict, rules)
    with pytest.raises(subprocess.SubprocessError):
        subprocess.run(["/bin/true"], preexec_fn=confine, check=False)


@pytest.mark.skipif(landlock.abi() < 6, reason="Landlock scopes need ABI 6")
def test_a_confined_child_cannot_signal_the_room_or_reach_an_outside_abstract_socket(
    tmp_path: Path,
) -> None:
    """A child killing the room's supervisor would leave the room down for the session (the
    wake happens once); an abstract socket is outside the filesystem rules."""
    import socket

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind("\0ironcurtain-test-" + tmp_path.name)
    listener.listen(1)
    script = (
        "import os, signal, socket, sys\n"
        "try:\n"
        "    os.kill(int(sys.argv[1]), 0)\n"
        "    print('signal sent')\n"
        "except PermissionError:\n"
        "    print('signal refused')\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        "try:\n"
        "    s.connect('\\0' + sys.argv[2])\n"
        "    print('socket reached')\n"
        "except PermissionError:\n"
        "    print('socket refused')\n"
        "os.kill(os.getpid(), 0)\n"  # control: itself, inside its own domain
        "print('self ok')\n"
    )
    import os
    import sys

    argv = [sys.executable, "-c", script, str(os.getpid()), "ironcurtain-test-" + tmp_path.name]
    room = landlock.room_rules(str(tmp_path), writable=False)
    python = {sys.prefix, sys.base_prefix, str(Path(sys.executable).resolve().parents[1])}
    rules = landlock.Rules(room.grants + tuple((p, landlock.READ) for p in sorted(python)))
    confined = subprocess.run(
        argv, preexec_fn=functools.partial(landlock.restrict, rules), capture_output=True, text=True
    )
    free = subprocess.run(argv, capture_output=True, text=True)  # control: unconfined
    listener.close()
    assert confined.stdout.split("\n")[:3] == ["signal refused", "socket refused", "self ok"], (
        confined.stderr
    )
    assert free.stdout.split("\n")[:3] == ["signal sent", "socket reached", "self ok"]
