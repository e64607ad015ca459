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


def wait_logged(
    container: docker.models.containers.Container, text: str, timeout: float = 30
) -> None:
    """Until TEXT appears in the container's logs; fails with them if it exits or times out."""
    deadline = time.monotonic() + timeout
    while True:
        logs = container.logs().decode(errors="replace")
        if text in logs:
            return
        container.reload()
        if container.status in ("exited", "dead") or time.monotonic() > deadline:
            raise NotHealthy(f"{container.name}: {container.status}, no {text!r}; logs:\n{logs}")
        time.sleep(POLL_S)  # polling the logs, bounded by the deadline
