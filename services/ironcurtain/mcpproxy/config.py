"""The backends file (`policy/servers.yaml`): which MCP servers the proxy starts or reaches.

Claude-style: `mcpServers: {NAME: {command, args, env}}` for a child process, or `{url}` for a
remote Streamable HTTP server. `egress: true` routes the child's HTTP(S) through the checking
egress proxy. `${name}` is filled from the variables the caller passes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

_VAR = re.compile(r"\$\{([a-z_]+)\}")


class ConfigError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class BackendSpec:
    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    url: str | None = None
    egress: bool = False  # give the child HTTP(S)_PROXY pointing at the egress checker


def load_backends(path: Path, variables: Mapping[str, str]) -> tuple[BackendSpec, ...]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the backends file: {exc}") from None
    return parse_backends(doc, str(path), variables)


def parse_backends(doc: object, file: str, variables: Mapping[str, str]) -> tuple[BackendSpec, ...]:
    def sub(text: object, where: str) -> str:
        if not isinstance(text, str):
            raise ConfigError(f"{file}: {where} must be a string")

        def one(match: re.Match[str]) -> str:
            if match.group(1) not in variables:
                raise ConfigError(f"{file}: {where}: unknown variable ${{{match.group(1)}}}")
            return variables[match.group(1)]

        return _VAR.sub(one, text)

    if not isinstance(doc, dict) or not isinstance(doc.get("mcpServers"), dict):
        raise ConfigError(f"{file}: expected a mapping with an `mcpServers` mapping")
    specs = []
    for name, body in doc["mcpServers"].items():
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9-]*", name):
            raise ConfigError(f"{file}: server name {name!r} must match [a-z][a-z0-9-]*")
        if not isinstance(body, dict):
            raise ConfigError(f"{file}: server {name!r} must be a mapping")
        unknown = set(body) - {"command", "args", "env", "url", "egress", "type"}
        if unknown:
            raise ConfigError(f"{file}: server {name!r}: unknown keys {sorted(unknown)}")
        if ("command" in body) == ("url" in body):
            raise ConfigError(f"{file}: server {name!r} needs exactly one of command or url")
        args = body.get("args", [])
        env = body.get("env", {})
        if not isinstance(args, list) or not isinstance(env, dict):
            raise ConfigError(f"{file}: server {name!r}: args must be a list, env a mapping")
        egress = body.get("egress", False)
        if not isinstance(egress, bool):
            raise ConfigError(f"{file}: server {name!r}: egress must be true or false")
        specs.append(
            BackendSpec(
                name=name,
                command=sub(body["command"], f"{name}.command") if "command" in body else None,
                args=tuple(sub(a, f"{name}.args") for a in args),
                env={str(k): sub(v, f"{name}.env.{k}") for k, v in env.items()},
                url=sub(body["url"], f"{name}.url") if "url" in body else None,
                egress=egress,
            )
        )
    return tuple(specs)
