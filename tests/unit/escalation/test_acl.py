"""Who may touch what in the team Redis, as data: a session's user is confined to its own keys."""

from __future__ import annotations

import fnmatch

import pytest

from ironcurtain.escalation import acl, redis_keys

A = "a1b2c3d4"
B = "e5f6a7b8"
ID_A = f"{A}.0123456789abcdef"
ID_B = f"{B}.0123456789abcdef"


def _patterns(rules: list[str]) -> list[tuple[str, str]]:
    found = []
    for rule in rules:
        if rule.startswith("(") and rule.endswith(")"):  # a selector: its own keys
            found += _patterns(rule[1:-1].split())
        elif rule.startswith("~"):
            found.append(("RW", rule[1:]))
        elif rule.startswith("%"):
            perm, _, pattern = rule[1:].partition("~")
            found.append((perm, pattern))
    return found


def _may(rules: list[str], key: str, perm: str) -> bool:
    return any(perm in p and fnmatch.fnmatchcase(key, pat) for p, pat in _patterns(rules))


@pytest.mark.parametrize(
    ("key", "perm", "allowed"),
    [
        (redis_keys.record(ID_A), "W", True),
        (redis_keys.pending(A), "W", True),
        (redis_keys.wake(ID_A), "W", True),  # BLPOP pops (a write); nothing pushes
        (redis_keys.decision(ID_A), "R", True),
        (redis_keys.review(ID_A), "R", True),
        (redis_keys.remembered(A), "R", True),
        # Its own switch, read: the proxy honours an auto-review approval only while it is on.
        (redis_keys.autoreview(A), "R", True),
        (redis_keys.INBOX, "W", True),
        # Nothing the session may write that decides, remembers, or reaches another session.
        (redis_keys.decision(ID_A), "W", False),
        (redis_keys.remembered(A), "W", False),
        (redis_keys.autoreview(A), "W", False),
        (redis_keys.review(ID_A), "W", False),
        (redis_keys.autoreview(B), "R", False),
        (redis_keys.review(ID_B), "R", False),
        (redis_keys.session(A), "W", False),
        (redis_keys.INBOX, "R", False),
        (redis_keys.HISTORY, "W", False),
        (redis_keys.record(ID_B), "W", False),
        (redis_keys.record(ID_B), "R", False),
        (redis_keys.decision(ID_B), "R", False),
        (redis_keys.remembered(B), "R", False),
        (redis_keys.pending(B), "W", False),
        ("rq:queue:escalations", "W", False),
        ("rq:job:x", "W", False),
        (redis_keys.ACL_USERS, "R", False),
    ],
)
def test_a_session_user_reaches_only_its_own_keys(key: str, perm: str, allowed: bool) -> None:
    assert _may(acl.session_rules(A), key, perm) is allowed


def _words(rules: list[str]) -> list[str]:
    return [w for r in rules for w in r.strip("()").split()]


def test_a_session_user_starts_from_nothing_and_runs_no_scripts_or_admin_commands() -> None:
    rules = acl.session_rules(A)
    assert rules[0] == "reset"
    commands = [w for w in _words(rules) if w.startswith(("+", "-"))]
    assert all("@" not in c for c in commands)  # single commands, no categories
    root = [r for r in rules if r.startswith(("+", "-"))]
    for forbidden in ("+eval", "+evalsha", "+acl", "+config", "+hset", "+del", "+keys",
                      "+flushdb", "+scan", "+rpush", "+lpush", "+append", "+setrange",
                      "+sadd", "+xadd", "+memory", "+psubscribe", "+restore", "+copy",
                      "+rename"):  # fmt: skip
        assert forbidden not in root
        assert forbidden not in commands or forbidden in ("+rpush", "+psubscribe")  # selectors
    assert [r for r in rules if r.startswith("&")] == [f"&{redis_keys.notices(A)}"]


def _selector(rules: list[str], pattern: str) -> list[str]:
    [found] = [r[1:-1].split() for r in rules if r.startswith("(") and pattern in r]
    return found


@pytest.mark.parametrize(
    ("pattern", "commands"),
    [
        ("record:*", {"+set", "+get", "+expire", "+memory|usage"}),
        ("pending", {"+zadd", "+expire", "+memory|usage"}),
        ("wake:*", {"+blpop", "+memory|usage"}),  # deciders push; the session only pops
        ("decision:*", {"+get"}),
        ("review:*", {"+get"}),
        ("autoreview", {"+get"}),
        ("remember", {"+hgetall"}),
        (redis_keys.INBOX, {"+rpush"}),
    ],
)
def test_each_key_of_a_session_takes_exactly_the_commands_its_proxy_sends(
    pattern: str, commands: set[str]
) -> None:
    """So what a session can store is small and countable (budget.py): strings under record:*,
    one sorted set, nothing else it can create (no RPUSH onto its wake keys, no ZADD on a
    record, no SET of its pending key)."""
    words = _selector(acl.session_rules(A), pattern)
    assert {w for w in words if w.startswith("+")} == commands


def test_a_session_may_subscribe_to_its_own_keyspace_notifications_but_never_publish_them() -> None:
    words = _selector(acl.session_rules(A), "__keyspace@")
    channels = [w[1:] for w in words if w.startswith("&")]
    assert channels == [f"__keyspace@{db}__:{redis_keys.space(A)}*" for db in range(16)]
    assert {w for w in words if w.startswith("+")} == {
        "+psubscribe", "+punsubscribe", "+subscribe", "+unsubscribe",
    }  # fmt: skip
    assert not [w for w in words if w.startswith("~") or w.startswith("%")]  # no keys at all


def test_the_shared_inbox_takes_only_rpush_from_a_session() -> None:
    """SET, EXPIRE or ZADD on the inbox would stop every session's escalations."""
    rules = acl.session_rules(A)
    assert not [r for r in rules if redis_keys.INBOX in r and not r.startswith("(")]
    assert f"(%W~{redis_keys.INBOX} +rpush)" in rules


@pytest.mark.parametrize("session_id", ["*", "a*", "a?", "a[b]", "a:b", "a b", "", "x" * 65, "é"])
def test_a_session_id_that_could_widen_a_key_pattern_is_refused(session_id: str) -> None:
    with pytest.raises(ValueError, match="not a session id"):
        acl.session_rules(session_id)


def test_the_worker_may_not_write_remembered_scopes_or_switches() -> None:
    rules = acl.worker_rules()
    assert not _may(rules, redis_keys.remembered(A), "W")
    assert not _may(rules, redis_keys.autoreview(A), "W")
    # Its decisions go under the key that names it, never a person's decision key.
    assert not _may(rules, redis_keys.decision(ID_A), "W")
    assert _may(rules, redis_keys.review(ID_A), "W")
    assert _may(rules, redis_keys.decision(ID_A), "R")
    assert _may(rules, redis_keys.record(ID_A), "R")
    assert _may(rules, "rq:queue:escalations", "W")


def test_the_approval_service_has_no_rq_keys_and_no_admin_commands() -> None:
    rules = acl.approval_rules()
    assert not _may(rules, "rq:queue:escalations", "W")
    assert not _may(rules, redis_keys.ACL_USERS, "R")
    assert "-@admin" in rules
    assert "-@dangerous" in rules


def test_a_credential_never_shows_its_password() -> None:
    credential = acl.Credential.new(acl.APPROVAL)
    assert credential.password not in repr(credential)
    assert acl.Credential.parse(credential.line()) == credential
    with pytest.raises(ValueError, match="USER PASSWORD"):
        acl.Credential.parse(credential.password)
    with pytest.raises(ValueError, match="32-128"):
        acl.Credential(acl.APPROVAL, "short")
