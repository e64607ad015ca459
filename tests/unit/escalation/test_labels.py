"""A session's labels are its registration's; a record's own words are its claim (labels.py), and
Channel.registrations reads them for a whole page in one pipelined round, tolerating any hash."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from ironcurtain.escalation import labels, redis_keys
from ironcurtain.escalation.channel import Channel
from ironcurtain.escalation.labels import Label, Registration

WT = Registration("wt-a", "claude-code", "fix it")


@pytest.mark.parametrize(
    ("values", "found"),
    [
        ([b"wt-a", b"claude-code", b"fix it"], WT),
        (["wt-a", "claude-code", "fix it"], WT),
        ([b"wt-a", b"claude-code", b""], Registration("wt-a", "claude-code", "")),
        ([b"\xffwt", b"a", b"t"], Registration("\ufffdwt", "a", "t")),  # not UTF-8: replaced
    ],
)
def test_a_registration_is_read_from_its_three_fields(values: Any, found: Registration) -> None:
    assert Registration.parse(values) == found


@pytest.mark.parametrize(
    "values",
    [
        None,  # no hash at all
        [None, None, None],
        [b"wt-a", None, b"fix it"],  # a field missing
        [b"wt-a", b"claude-code"],
        [b"wt-a", b"claude-code", b"fix it", b"more"],
        redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
        b"wt-a",
        "wt-a",
        {"worktree": "wt-a"},
        [1, 2, 3],
    ],
)
def test_anything_else_is_no_registration(values: Any) -> None:
    assert Registration.parse(values) is None


@pytest.mark.parametrize(
    ("registered", "claim", "disputed"),
    [
        ("wt-a", "wt-a", False),  # the honest session
        ("wt-a", "wt-b", True),  # another worktree claimed
        ("wt-a", "", True),  # claims nothing: still not what was registered
        ("wt-a", "wt-a\u200b", True),  # a zero-width character is a different worktree
        ("wt-a", "wt-\u202ea", True),
        ("wt-a", "WT-A", True),
        (None, "wt-b", True),  # unregistered: every claim is only a claim
        (None, "", False),
    ],
)
def test_a_claim_is_disputed_unless_it_is_exactly_the_registration(
    registered: str | None, claim: str, disputed: bool
) -> None:
    label = Label("worktree", registered, claim)
    assert label.disputed is disputed
    assert label.verified is (registered is not None)


def test_labels_of_a_record_name_all_three_in_order() -> None:
    found = labels.of(WT, {"worktree": "wt-b", "agent": "claude-code", "task": 7})
    assert [(x.name, x.registered, x.claim, x.disputed) for x in found] == [
        ("worktree", "wt-a", "wt-b", True),
        ("agent", "claude-code", "claude-code", False),
        ("task", "fix it", "7", True),
    ]
    assert [x.registered for x in labels.of(None, {})] == [None, None, None]


class FakePipeline:
    def __init__(self, store: dict[str, Any], rounds: list[int]) -> None:
        self.store, self.rounds, self.queued = store, rounds, []

    def __enter__(self) -> FakePipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def hmget(self, key: str, fields: list[str]) -> None:
        self.queued.append((key, fields))

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        assert not raise_on_error, "one bad hash must not fail the whole read"
        self.rounds.append(len(self.queued))
        found = []
        for key, fields in self.queued:
            value = self.store.get(key)
            if isinstance(value, dict):
                found.append([value.get(f) for f in fields])
            elif value is None:
                found.append([None] * len(fields))
            else:
                found.append(redis.ResponseError("WRONGTYPE"))
        return found


class FakeRedis:
    def __init__(self, store: dict[str, Any]) -> None:
        self.store, self.rounds = store, []

    def register_script(self, script: str) -> None:
        return None

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        return FakePipeline(self.store, self.rounds)


def test_registrations_of_a_page_are_one_pipelined_read_and_no_hash_breaks_it() -> None:
    store: dict[str, Any] = {
        redis_keys.session("s1"): {"worktree": b"wt-a", "agent": b"claude-code", "task": b"t"},
        redis_keys.session("s2"): b"a string, not a hash",
        redis_keys.session("s3"): {"worktree": b"wt-c"},  # agent and task missing
    }
    client = FakeRedis(store)
    channel = Channel(client)  # type: ignore[arg-type]
    found = channel.registrations(["s1", "s2", "s3", "s4", "s1", "not a session!"])
    assert found == {"s1": Registration("wt-a", "claude-code", "t")}
    assert client.rounds == [4]  # one round for the four valid, distinct sessions
    assert channel.registrations([]) == {}
    assert client.rounds == [4]  # nothing to read: no round at all
