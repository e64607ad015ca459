"""Escalation ids name their session; keys are built only from ids that parse."""

from __future__ import annotations

import pytest

from ironcurtain.escalation import redis_keys
from ironcurtain.escalation.record import new_id


def test_a_new_id_names_its_session_and_its_keys_live_in_that_session_space() -> None:
    escalation_id = new_id("s1")
    assert redis_keys.session_of(escalation_id) == "s1"
    for key in (
        redis_keys.record(escalation_id),
        redis_keys.decision(escalation_id),
        redis_keys.wake(escalation_id),
    ):
        assert key.startswith(redis_keys.space("s1"))


@pytest.mark.parametrize(
    "hostile",
    ["", "s1", "s1.", "s1.0123", "s1.0123456789ABCDEF", "*.0123456789abcdef",
     "s1:x.0123456789abcdef", "../s1.0123456789abcdef", "s1.0123456789abcdef\n"],
)  # fmt: skip
def test_anything_else_is_not_an_escalation_id(hostile: str) -> None:
    with pytest.raises(ValueError, match="not an escalation id"):
        redis_keys.record(hostile)


def test_a_scanned_key_gives_back_its_session_or_nothing() -> None:
    assert redis_keys.session_of_key(redis_keys.pending("s1")) == "s1"
    assert redis_keys.session_of_key("ironcurtain:esc:s:*:pending") is None
    assert redis_keys.session_of_key("other:key") is None
