"""A compose.yaml service's confinement as docker-py's `containers.run` keywords, so a container
test that starts one service by itself runs it exactly as compose would (compose.yaml is the one
source of truth for hardening). Only the keys our services use are translated; any other key
fails the test rather than being dropped."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "compose.yaml"
_VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}")
# What a test starts by itself is the container, not its place in the session's topology.
_TOPOLOGY = {"image", "labels", "logging", "environment", "network_mode", "networks", "healthcheck",
             "depends_on", "secrets", "command", "entrypoint", "user", "stop_signal"}  # fmt: skip


def _substitute(value: str, env: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name, operator, default = match.groups()
        if name in env:
            return env[name]
        if operator is None or "?" in operator:
            raise KeyError(f"compose.yaml needs {name} for this service")
        return default

    return _VARIABLE.sub(one, value)


def run_kwargs(name: str, env: Mapping[str, str]) -> dict[str, Any]:
    """Service `name`'s hardening keys, its `${...}` filled from `env` (or their defaults)."""
    service = yaml.safe_load(COMPOSE.read_text())["services"][name]
    found: dict[str, Any] = {}
    for key, value in service.items():
        if key in _TOPOLOGY:
            continue
        if key in ("read_only", "privileged", "pids_limit", "cap_drop", "security_opt"):
            found[key] = value
        elif key == "group_add":
            found[key] = [_substitute(str(g), env) for g in value]
        elif key == "tmpfs":
            found[key] = dict(item.split(":", 1) for item in value)
        elif key == "sysctls":
            found[key] = dict(value)
        elif key == "volumes":
            found[key] = {
                _substitute(v["source"], env): {
                    "bind": v["target"],
                    "mode": "ro" if v.get("read_only") else "rw",
                }
                for v in value
            }
        else:
            raise KeyError(f"compose.yaml's {name}.{key} has no run keyword here: add it")
    return found
