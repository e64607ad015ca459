"""Waiting on containers' health with a deadline (never a fixed sleep)."""

from __future__ import annotations

import time

import docker.models.containers

POLL_S = 0.1


class NotHealthy(AssertionError):
    pass


def wait_healthy(container: docker.models.containers.Container, timeout: float = 30) -> None:
    """Until Docker reports the container healthy; fails with its logs if it exits or times out."""
    deadline = time.monotonic() + timeout
    while True:
        container.reload()
        state = container.attrs["State"]
        health = state.get("Health", {}).get("Status")
        if health == "healthy":
            return
        if state["Status"] in ("exited", "dead") or time.monotonic() > deadline:
            logs = container.logs().decode(errors="replace")[-2000:]
            raise NotHealthy(f"{container.name}: {state['Status']}/{health}; logs:\n{logs}")
        time.sleep(POLL_S)  # polling the health state, bounded by the deadline
