"""Which OCI runtime a session's containers run under: gVisor's `runsc` when the engine has it.

Under runc the agent's code talks to the host's kernel (behind seccomp, no capabilities); under
runsc it talks to gVisor's user-space kernel, so a kernel bug is one in gVisor, not the host's.
The setting `IRONCURTAIN_RUNTIME` (user config `runtime`) says what a session wants:

- `auto` (default): runsc when the engine lists it, else runc;
- `runc`: never gVisor;
- `runsc`: gVisor required; a session on an engine without it is refused, saying how to get it.

The MCP servers' rooms stay on runc whatever the choice: their children are confined by
Landlock (mcpproxy/landlock.py), which gVisor does not offer (its `landlock_create_ruleset`
answers ENOSYS), and a room without Landlock refuses to serve rather than run unconfined
(docs/isolation.md, "gVisor"). Our own proxies stay on runc too. Pure: `run.py` asks the engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

RUNC = "runc"
RUNSC = "runsc"
AUTO = "auto"
SETTINGS = (AUTO, RUNC, RUNSC)
# Where to read how to register runsc with an engine IronCurtain did not install.
HOW = "docs/isolation.md, 'gVisor'"


class RuntimeRefused(ValueError):
    """The setting cannot be met by this engine (or is not a setting); nothing was started."""


@dataclass(frozen=True, slots=True)
class Choice:
    agent: str  # the agent container's runtime
    rooms: str  # the MCP servers' rooms
    why: str  # one line for the session's output and summary

    def describe(self) -> str:
        return f"agent under {self.agent}, rooms under {self.rooms} ({self.why})"


def registered(info_runtimes: Mapping[str, object] | None) -> frozenset[str]:
    """The runtime names of `docker info`'s `Runtimes` (absent or malformed: none)."""
    if not isinstance(info_runtimes, Mapping):
        return frozenset()
    return frozenset(name for name in info_runtimes if isinstance(name, str))


def choose(setting: str, available: Iterable[str]) -> Choice:
    """The runtimes for this session, from the setting and the engine's registered runtimes."""
    wanted = setting.strip().lower() or AUTO
    if wanted not in SETTINGS:
        raise RuntimeRefused(
            f"IRONCURTAIN_RUNTIME={setting!r} is not a runtime setting "
            f"(one of {', '.join(SETTINGS)})"
        )
    have = RUNSC in frozenset(available)
    if wanted == RUNC:
        return Choice(RUNC, RUNC, "IRONCURTAIN_RUNTIME=runc")
    if have:
        return Choice(RUNSC, RUNC, "the engine has runsc; rooms keep runc, where Landlock holds")
    if wanted == RUNSC:
        raise RuntimeRefused(
            "IRONCURTAIN_RUNTIME=runsc, but this Docker engine has no runsc runtime registered: "
            "`make deps` registers it with an engine IronCurtain installed; for another engine "
            f"see {HOW}, or set IRONCURTAIN_RUNTIME=auto"
        )
    return Choice(RUNC, RUNC, f"the engine has no runsc registered ({HOW})")


def ran_under(attrs: Mapping[str, object]) -> str:
    """The runtime a container really runs under, from `docker inspect` (the engine reports
    the default, runc, by name too)."""
    host = attrs.get("HostConfig")
    found = host.get("Runtime") if isinstance(host, Mapping) else None
    return found if isinstance(found, str) and found else RUNC


def mismatch(attrs: Mapping[str, object], wanted: str) -> str | None:
    """Why a started container is not under the runtime chosen for it (a compose override,
    a file edited between the choice and the start), or None."""
    found = ran_under(attrs)
    if found != wanted:
        return f"it runs under {found!r}, but {wanted!r} was chosen"
    return None
