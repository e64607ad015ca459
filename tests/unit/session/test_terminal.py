"""The interactive relay: pure splicing of notices into the agent's bytes, then the real thing on
real ptys (ptys.py: a relay host whose controlling terminal is a pty the test owns)."""

from __future__ import annotations

import itertools
import os
import re
import signal
import sys
import termios
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironcurtain.session.terminal import (
    Modes,
    Relay,
    Scanner,
    Splicer,
    frame,
    safe_line,
    set_window_size,
    window_size,
)

from .ptys import DEADLINE_S, relay_host

# -- pure ---------------------------------------------------------------------------------------

SAFE_LINES = [
    ("plain text stays", "escalation 1a: fs__move_file", "escalation 1a: fs__move_file"),
    ("unicode stays", "d\u00e9cide \u2014 approve", "d\u00e9cide \u2014 approve"),
    ("a leading bell stays", "\a[ironcurtain] x", "\a[ironcurtain] x"),
    ("a later bell is shown", "a\ab", "a\\x07b"),
    ("ESC is shown", "x\x1b]52;c;ZXZpbA==\a", "x\\x1b]52;c;ZXZpbA==\\x07"),
    ("line breaks are shown", "a\r\nb", "a\\x0d\\x0ab"),
    ("C1 CSI is shown", "a\x9b31mb", "a\\x9b31mb"),
    ("DEL is shown", "a\x7fb", "a\\x7fb"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "text", "shown"), SAFE_LINES, ids=[c[0] for c in SAFE_LINES])
def test_safe_line_shows_controls_instead_of_sending_them(case: str, text: str, shown: str) -> None:
    assert safe_line(text) == shown


@given(st.text())
def test_a_framed_notice_is_one_line_without_escape_sequences(text: str) -> None:
    framed = frame(text)
    assert framed.startswith(b"\r\n")
    assert framed.endswith(b"\r\n")
    inner = framed[2:-2]
    assert not any(b < 0x20 and b != 0x07 for b in inner)
    assert b"\x07" not in inner[1:]
    assert b"\x7f" not in inner


GROUND_CASES = [
    ("nothing yet", b"", True),
    ("text", b"hello", True),
    ("half a CSI", b"a\x1b[3", False),
    ("a whole CSI", b"a\x1b[31m", True),
    ("a lone ESC", b"\x1b", False),
    ("ESC with intermediates", b"\x1b(", False),
    ("a charset designation", b"\x1b(B", True),
    ("an OSC title unterminated", b"\x1b]0;title", False),
    ("an OSC ended by BEL", b"\x1b]0;title\a", True),
    ("an OSC ended by ST", b"\x1b]0;title\x1b\\", True),
    ("a DCS string", b"\x1bPq#0", False),
    ("half a 2-byte character", "\u00e9".encode()[:1], False),
    ("half a 3-byte character", "\u2014".encode()[:2], False),
    ("a whole 4-byte character", "\U0001f600".encode(), True),
    ("CAN aborts a CSI", b"\x1b[3\x18", True),
]  # fmt: skip


@pytest.mark.parametrize(("case", "data", "ground"), GROUND_CASES, ids=[c[0] for c in GROUND_CASES])
def test_the_scanner_knows_when_the_stream_is_between_sequences(
    case: str, data: bytes, ground: bool
) -> None:
    scanner = Scanner()
    scanner.feed(data)
    assert scanner.ground is ground


def _grounds(stream: bytes) -> list[bool]:
    """ground[i]: is the stream at a boundary after its first i bytes (byte by byte)?"""
    scanner, found = Scanner(), [True]
    for b in stream:
        scanner.step(b)
        found.append(scanner.ground)
    return found


ESCAPEY = st.lists(
    st.one_of(
        st.binary(max_size=12),
        st.sampled_from(
            [b"\x1b", b"[", b"]", b"31m", b"\a", b"\\", b"P", b"\xe2", b"\x80", b"\x94", b"\x18"]
        ),
    ),
    max_size=30,
)


@given(ESCAPEY)
def test_feeding_chunks_agrees_with_stepping_byte_by_byte(chunks: list[bytes]) -> None:
    fed, stream = Scanner(), b""
    for chunk in chunks:
        fed.feed(chunk)
        stream += chunk
        assert fed.ground is _grounds(stream)[-1]


@given(ESCAPEY, st.lists(st.integers(min_value=0, max_value=30), max_size=4))
def test_notices_go_in_whole_at_the_first_boundary_and_the_agents_bytes_stay_exact(
    chunks: list[bytes], arrivals: list[int]
) -> None:
    """A notice arriving before chunk i goes in at the first boundary from there on (forced at
    the end if none comes), and taking the notices out gives back the agent's bytes."""
    splice, out, stream, arrived = Splicer(), b"", b"", []
    for index in range(len(chunks) + 1):
        for _ in range(arrivals.count(index)):
            arrived.append(len(stream))
            out += splice.notice(f"[ironcurtain] escalation n{len(arrived)}")
        if index < len(chunks):
            out += splice.output(chunks[index])
            stream += chunks[index]
    out += splice.force()
    assert not splice.pending
    grounds, rest, start = _grounds(stream), b"", 0
    for n, arrival in enumerate(arrived, start=1):
        framed = frame(f"[ironcurtain] escalation n{n}")
        at = out.index(framed, start)
        rest += out[start:at]
        start = at + len(framed)
        expected = next((i for i in range(arrival, len(stream) + 1) if grounds[i]), len(stream))
        assert len(rest) == expected
    assert rest + out[start:] == stream


def test_a_notice_waits_out_an_escape_sequence_then_follows_it() -> None:
    splice = Splicer()
    assert splice.output(b"a\x1b[3") == b"a\x1b[3"
    assert splice.notice("[ironcurtain] hi") == b""
    assert splice.pending
    assert splice.output(b"1mred") == b"1m" + frame("[ironcurtain] hi") + b"red"
    assert not splice.pending


# -- modes a full-screen interface leaves on ---------------------------------------------------

INK = (
    b"\x1b[?2004h\x1b[?2031h\x1b[?1004h\x1b]0;\xe2\x9c\xb3 Claude Code\x07\x1b[?1049h\x1b[2J"
    b"\x1b[?1000h\x1b[?1002h\x1b[?1003h\x1b[?1006h\x1b[?25l\x1b[>0q\x1b[?u\x1b[>1u hello"
)  # what Claude Code 2.1.331's interface writes first (with a kitty keyboard push added)


def _restored(*chunks: bytes) -> bytes:
    modes = Modes()
    for chunk in chunks:
        modes.feed(chunk)
    return modes.restore()


@pytest.mark.parametrize(
    ("case", "stream", "restore"),
    [
        ("nothing set", b"plain \x1b[1mtext\x1b[0m", b""),
        ("set then reset", INK + b"\x1b[?1000l\x1b[?1002;1003;1006l\x1b[?1004l\x1b[?2004l"
         b"\x1b[?2031l\x1b[<u\x1b[?1049l\x1b[?25h", b""),
        ("left on by a killed interface", INK,
         b"\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1004l\x1b[?1006l\x1b[?2004l\x1b[?2031l"
         b"\x1b[<1u\x1b[?1049l\x1b[?25h"),
        ("several in one sequence", b"\x1b[?1000;1049;12h", b"\x1b[?1000l\x1b[?1049l"),
        ("a mode not on the list is left alone", b"\x1b[?7l\x1b[?12h\x1b[?9999h", b""),
        ("a cursor shown again", b"\x1b[?25l\x1b[?25h", b""),
        ("pops never go below zero", b"\x1b[<5u\x1b[>1u", b"\x1b[<1u"),
    ],
)  # fmt: skip
def test_modes_an_interface_left_on_are_turned_off_and_only_those(
    case: str, stream: bytes, restore: bytes
) -> None:
    assert _restored(stream) == restore, case


@given(st.lists(st.integers(min_value=0, max_value=len(INK)), max_size=8))
def test_modes_split_across_chunks_anywhere_are_still_seen(cuts: list[int]) -> None:
    points = [0, *sorted(cuts), len(INK)]
    chunks = [INK[a:b] for a, b in itertools.pairwise(points)]
    assert _restored(*chunks) == _restored(INK)


@given(st.lists(st.binary(max_size=40), max_size=10))
def test_modes_accept_any_bytes(chunks: list[bytes]) -> None:
    restore = _restored(*chunks)
    assert restore == b"" or restore.startswith(b"\x1b[")


# -- the relay on real ptys ---------------------------------------------------------------------


def test_the_relay_passes_every_byte_value_both_ways_exactly() -> None:
    with relay_host() as host:
        host.expect(rb"ready \d+ 24x80\r\n")
        host.send(b"payload 3\r")
        found = host.expect(rb"(.*)\r\nend\r\n")
        assert found.group(1).endswith(bytes(range(256)) * 3)
        sent = bytes(range(256))
        host.send(b"echo 256\r" + sent)
        assert host.expect(rb"got ([0-9a-f]+)\r\n").group(1) == sent.hex().encode()
        host.send(b"exit 0\r")
        assert host.wait() == 0


def test_a_resize_of_the_users_terminal_reaches_the_child() -> None:
    with relay_host(rows=24, cols=80) as host:
        host.expect(rb"ready \d+ 24x80\r\n")
        set_window_size(host.master, 41, 133)  # the kernel sends the relay SIGWINCH
        host.expect(rb"size 41x133\r\n")
        host.send(b"exit 0\r")
        assert host.wait() == 0


def test_notices_arrive_as_whole_lines_between_the_agents_output() -> None:
    with relay_host() as host:
        host.expect(rb"ready \d+ 24x80\r\n")
        host.notice("\a[ironcurtain] escalation 1f: filesystem__move_file \x1b]52;c;x\a")
        shown = host.expect(rb"\r\n\a\[ironcurtain\] escalation 1f: [^\r\n]*\r\n").group(0)
        assert shown == frame("\a[ironcurtain] escalation 1f: filesystem__move_file \x1b]52;c;x\a")
        assert b"\x1b" not in shown
        host.send(b"payload 1\r")
        host.expect(re.escape(bytes(range(256))) + rb"\r\nend\r\n")
        host.send(b"exit 0\r")
        assert host.wait() == 0


def test_a_notice_held_by_a_stalled_escape_sequence_comes_out_after_the_hold() -> None:
    with relay_host(hold_s=0.3) as host:
        host.expect(rb"ready \d+ 24x80\r\n")
        host.send(b"partial\r")
        host.expect(rb"\x1b\[3")
        host.notice("[ironcurtain] waited")
        host.expect(rb"\r\n\[ironcurtain\] waited\r\n")
        host.send(b"finish\r")
        host.expect(rb"1mred")
        host.send(b"exit 0\r")
        assert host.wait() == 0


def test_the_childs_exit_code_is_the_relays_and_the_terminal_mode_is_restored() -> None:
    with relay_host() as host:
        before = termios.tcgetattr(host.slave)
        host.expect(rb"ready \d+ 24x80\r\n")
        assert termios.tcgetattr(host.slave) != before  # raw while relaying
        host.send(b"exit 7\r")
        assert host.wait() == 7
        assert termios.tcgetattr(host.slave) == before


def test_modes_the_child_left_on_are_turned_off_when_it_exits() -> None:
    with relay_host() as host:
        host.expect(rb"ready \d+ 24x80\r\n")
        host.send(b"modes\r")
        host.expect(rb"modes on\r\n")
        host.send(b"exit 0\r")
        assert host.wait() == 0
        rest = bytes(host.seen[host.cursor :])
        assert rest == b"\x1b[?1000l\x1b[?1006l\x1b[?2004l\x1b[?1049l\x1b[?25h"


def test_modes_are_turned_off_when_a_signal_ends_the_session() -> None:
    with relay_host() as host:
        host.expect(rb"ready \d+ 24x80\r\n")
        host.send(b"modes\r")
        host.expect(rb"modes on\r\n")
        host.proc.send_signal(signal.SIGTERM)
        assert host.wait() == 143
        assert bytes(host.seen).endswith(b"\x1b[?1049l\x1b[?25h")


def test_a_child_that_leaves_no_modes_on_gets_nothing_added() -> None:
    with relay_host() as host:
        host.expect(rb"ready \d+ 24x80\r\n")
        host.send(b"exit 0\r")
        assert host.wait() == 0
        assert b"\x1b" not in bytes(host.seen[host.cursor :])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_or_sighup_restores_the_terminal_and_ends_the_child(signum: int) -> None:
    with relay_host() as host:
        before = termios.tcgetattr(host.slave)
        child = int(host.expect(rb"ready (\d+) 24x80\r\n").group(1))
        host.proc.send_signal(signum)
        assert host.wait() == 143
        assert termios.tcgetattr(host.slave) == before
        assert not Path(f"/proc/{child}").exists()


def test_a_terminal_that_goes_away_ends_the_relay_and_the_child() -> None:
    with relay_host() as host:
        child = int(host.expect(rb"ready (\d+) 24x80\r\n").group(1))
        host.hang_up()
        assert host.proc.wait(timeout=DEADLINE_S) == 143
        assert not Path(f"/proc/{child}").exists()


def test_a_failed_start_restores_the_terminal(tmp_path: Path) -> None:
    master, slave = os.openpty()
    try:
        before = termios.tcgetattr(slave)
        with pytest.raises(FileNotFoundError):
            Relay(stdin=slave, stdout=slave).run(["true"], cwd=tmp_path / "missing")
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)


def test_window_size_reads_what_was_set() -> None:
    master, slave = os.openpty()
    try:
        set_window_size(master, 12, 34)
        assert window_size(slave) == (12, 34)
    finally:
        os.close(master)
        os.close(slave)


def test_without_pidfds_the_relay_still_sees_the_child_exit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(os, "pidfd_open")
    master, slave = os.openpty()
    try:
        child = [sys.executable, "-c", "import sys; print('bye'); sys.exit(5)"]
        assert Relay(stdin=slave, stdout=slave).run(child) == 5
        assert b"bye" in os.read(master, 4096)
    finally:
        os.close(master)
        os.close(slave)
