"""Login throttling: a sliding window per key, bounded memory."""

from __future__ import annotations

from ironcurtain.approval.throttle import Throttle


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_key_is_blocked_after_the_limit_and_released_after_the_window() -> None:
    clock = Clock()
    throttle = Throttle(limit=3, window_s=60, clock=clock)
    for _ in range(3):
        assert not throttle.blocked("name:alice")
        throttle.failed("name:alice")
    assert throttle.blocked("name:alice")
    assert not throttle.blocked("name:bob")  # control: other keys are untouched
    clock.now = 60.5
    assert not throttle.blocked("name:alice")


def test_memory_stays_bounded_under_a_flood_of_keys() -> None:
    throttle = Throttle(limit=3, window_s=60, max_keys=100, clock=Clock())
    for i in range(10_000):
        throttle.failed(f"addr:{i}")
    assert len(throttle) == 100


def test_failures_per_key_are_bounded_too() -> None:
    throttle = Throttle(limit=3, window_s=60, clock=Clock())
    for _ in range(10_000):
        throttle.failed("name:alice")
    assert len(throttle._failures["name:alice"]) == 3
