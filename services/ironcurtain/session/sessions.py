"""Running sessions across worktrees, found by their compose project labels."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import docker

from .naming import PROJECT_LABEL, SessionName


@dataclass(frozen=True, slots=True)
class RunningSession:
    name: SessionName
    containers: tuple[str, ...]  # service names
    states: tuple[str, ...]


def running_sessions(client: docker.DockerClient) -> list[RunningSession]:
    by_project: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for container in client.containers.list(all=True, filters={"label": PROJECT_LABEL}):
        project = container.labels.get(PROJECT_LABEL, "")
        service = container.labels.get("com.docker.compose.service", container.name or "")
        by_project[project].append((service, container.status))
    sessions = []
    for project, members in sorted(by_project.items()):
        name = SessionName.parse(project)
        if name is None:
            continue
        members.sort()
        sessions.append(
            RunningSession(
                name=name,
                containers=tuple(service for service, _ in members),
                states=tuple(state for _, state in members),
            )
        )
    return sessions
