"""Whether `ironcurtain run` may use the team-shared stack it finds, or must bring it up to date."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import docker.errors
import pytest

from ironcurtain.session.run import _healthy

SERVICES = ("redis", "approval", "worker")


@dataclass
class FakeContainer:
    service: str
    image_id: str
    health: str = "healthy"
    image: str = "ironcurtain/python:latest"
    labels: dict[str, str] = field(init=False)
    attrs: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.labels = {"com.docker.compose.service": self.service}
        self.attrs = {
            "State": {"Health": {"Status": self.health}},
            "Config": {"Image": self.image},
            "Image": self.image_id,
        }


@dataclass
class FakeImage:
    id: str


class FakeImages:
    def __init__(self, ids: dict[str, str]) -> None:
        self._ids = ids

    def get(self, name: str) -> FakeImage:
        if name not in self._ids:
            raise docker.errors.ImageNotFound(name)
        return FakeImage(self._ids[name])


class FakeContainers:
    def __init__(self, running: list[FakeContainer]) -> None:
        self._running = running

    def list(self, filters: dict[str, str]) -> list[FakeContainer]:
        return self._running


class FakeClient:
    def __init__(self, running: list[FakeContainer], images: dict[str, str]) -> None:
        self.containers = FakeContainers(running)
        self.images = FakeImages(images)


CURRENT = {"ironcurtain/python:latest": "sha256:new"}


def stack(image_id: str = "sha256:new", health: str = "healthy") -> list[FakeContainer]:
    return [FakeContainer(s, image_id, health) for s in SERVICES]


def test_a_healthy_stack_on_the_current_images_is_used_as_it_is() -> None:
    assert _healthy(FakeClient(stack(), CURRENT), "p", SERVICES)  # type: ignore[arg-type]


def test_a_worker_slow_to_answer_its_health_check_does_not_hold_sessions_back() -> None:
    running = [*stack()[:2], FakeContainer("worker", "sha256:new", "unhealthy")]
    client = FakeClient(running, CURRENT)
    assert _healthy(client, "p", ("redis", "approval"), running=("worker",))  # type: ignore[arg-type]
    # ...but the worker must run, and Redis and approval must answer (the controls)
    gone = FakeClient(stack()[:2], CURRENT)
    assert not _healthy(gone, "p", ("redis", "approval"), running=("worker",))  # type: ignore[arg-type]
    sick = [FakeContainer("redis", "sha256:new", "unhealthy"), *stack()[1:]]
    assert not _healthy(FakeClient(sick, CURRENT), "p", ("redis", "approval"), running=("worker",))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("running", "images"),
    [
        (stack(image_id="sha256:old"), CURRENT),  # started by an older IronCurtain
        (stack(health="starting"), CURRENT),
        (stack()[:2], CURRENT),  # the worker is missing
        (stack(), {}),  # the tag is gone: compose decides
    ],
    ids=["older-image", "not-healthy", "service-missing", "tag-gone"],
)
def test_a_stack_that_is_unhealthy_or_out_of_date_is_brought_up_again(
    running: list[FakeContainer], images: dict[str, str]
) -> None:
    assert not _healthy(FakeClient(running, images), "p", SERVICES)  # type: ignore[arg-type]
