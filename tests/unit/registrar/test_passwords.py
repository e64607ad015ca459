"""Session passwords the registrar recognises after a Redis restart: bound to user and member."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ironcurtain.escalation.acl import Credential
from ironcurtain.registrar import passwords

KEY = passwords.derive_key("a" * 64)
USER = "ironcurtain-session-s1"


def test_control_a_password_it_issued_is_recognised_and_is_a_valid_redis_password() -> None:
    password = passwords.issue(KEY, USER, "alice")
    assert passwords.verify(KEY, USER, "alice", password)
    assert Credential(USER, password).password == password  # letters and digits, 96 long


def test_two_issues_differ() -> None:
    assert passwords.issue(KEY, USER, "alice") != passwords.issue(KEY, USER, "alice")


def test_another_member_user_or_key_is_refused() -> None:
    password = passwords.issue(KEY, USER, "alice")
    assert not passwords.verify(KEY, USER, "bob", password)
    assert not passwords.verify(KEY, "ironcurtain-session-s2", "alice", password)
    assert not passwords.verify(passwords.derive_key("b" * 64), USER, "alice", password)
    # The separator keeps (user, member) pairs apart that would concatenate alike.
    assert not passwords.verify(KEY, USER + "a", "lice", password)


def test_a_changed_digit_a_short_or_an_ordinary_password_is_refused() -> None:
    password = passwords.issue(KEY, USER, "alice")
    flipped = password[:-1] + ("0" if password[-1] != "0" else "1")
    for wrong in (flipped, password[:-1], password + "0", "", Credential.new(USER).password):
        assert not passwords.verify(KEY, USER, "alice", wrong)


@given(st.text(max_size=200))
def test_no_text_is_recognised_unless_issued(text: str) -> None:
    assert not passwords.verify(KEY, USER, "alice", text)
