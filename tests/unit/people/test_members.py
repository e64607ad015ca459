"""Member credentials: a token shown once, kept only as a salted digest; remove revokes it; a
malformed members file lets nobody in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ironcurtain.people.members import MemberError, MembersCache, MembersFile, find

from ..racers import race


@pytest.fixture
def members(tmp_path: Path) -> MembersFile:
    return MembersFile(tmp_path / "people" / "members.json")


def test_a_new_member_token_is_random_and_only_its_digest_is_stored(members: MembersFile) -> None:
    token = members.add("alice")
    assert len(token) >= 43  # 256 bits, url-safe base64
    stored = members.path.read_text()
    assert token not in stored
    assert members.path.stat().st_mode & 0o777 == 0o600
    assert find(members.load(), token).name == "alice"  # type: ignore[union-attr]


def test_two_members_with_the_same_token_would_have_different_digests(
    members: MembersFile,
) -> None:
    members.add_with_token("alice", "t" * 43)
    members.add_with_token("bob", "t" * 43)
    loaded = members.load()
    assert loaded["alice"].digest != loaded["bob"].digest


@pytest.mark.parametrize(
    "name", ["", "Alice", "a" * 33, "al ice", "../x", "al\nice", "-x", "ālice", "a/b"]
)
def test_names_outside_the_allowlist_are_refused(members: MembersFile, name: str) -> None:
    with pytest.raises(MemberError, match="refused"):
        members.add(name)
    assert members.load() == {}


def test_adding_a_member_twice_is_refused_and_keeps_the_first_token(
    members: MembersFile,
) -> None:
    token = members.add("alice")
    with pytest.raises(MemberError, match="exists"):
        members.add("alice")
    assert find(members.load(), token) is not None


def test_removing_a_member_revokes_their_token(members: MembersFile) -> None:
    token = members.add("alice")
    other = members.add("bob")
    assert members.remove("alice") is True
    assert find(members.load(), token) is None
    assert find(members.load(), other).name == "bob"  # type: ignore[union-attr]  # control
    assert members.remove("alice") is False


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"{}",
        b'{"members": []}',
        b'{"members": {"alice": {"salt": "zz", "digest": "00", "added": 0}}}',
        b'{"members": {"Bad Name": {"salt": "'
        + b"0" * 32
        + b'", "digest": "'
        + b"0" * 64
        + b'", "added": 0}}}',
    ],
)
def test_a_malformed_members_file_is_refused_whole(members: MembersFile, content: bytes) -> None:
    members.path.parent.mkdir(parents=True)
    members.path.write_bytes(content)
    with pytest.raises(MemberError):
        members.load()


def test_the_cache_sees_a_removal_on_the_next_call(members: MembersFile) -> None:
    members.add("alice")
    cache = MembersCache(members)
    assert set(cache.current()) == {"alice"}
    members.remove("alice")
    assert cache.current() == {}


def test_members_are_written_by_replacing_the_file_whole(members: MembersFile) -> None:
    members.add("alice")
    before = members.path.stat().st_ino
    members.add("bob")
    assert members.path.stat().st_ino != before  # a rename: readers never see half a file
    assert set(json.loads(members.path.read_text())["members"]) == {"alice", "bob"}
    assert [p.name for p in members.path.parent.iterdir() if p.name.startswith(".members")] == []


def test_no_members_file_means_nobody_is_a_member(tmp_path: Path) -> None:
    assert MembersCache(MembersFile(tmp_path / "none.json")).current() == {}


def test_members_added_at_the_same_moment_from_many_processes_are_all_kept(
    members: MembersFile,
) -> None:
    results = race(
        "import os\nfrom pathlib import Path\nfrom ironcurtain.people.members import MembersFile",
        f"members = MembersFile(Path({str(members.path)!r}))\n"
        "result = [f'm{os.getpid()}', members.add(f'm{os.getpid()}')]",
    )
    assert all(isinstance(r, list) for r in results), results  # nobody failed
    loaded = members.load()
    assert len(loaded) == len(results)
    for name, token in results:  # type: ignore[misc]
        assert find(loaded, token).name == name  # type: ignore[union-attr]
