"""Which worktree, agent and task an escalation is from: the session's registration, never the
record's own words (pure).

`ironcurtain run` (or the registrar, for a member's machine) registers each session with the
admin credential (redis_keys.session: no session may write it). A record's `worktree`, `agent`
and `task` are written by the session's MCP proxy, which may be compromised: they are its claim.
Pages, the API and the CLI show the registered labels; a claim that differs is shown beside them,
marked as the session's; a session with no readable registration has unverified labels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

FIELDS = ("worktree", "agent", "task")


@dataclass(frozen=True, slots=True)
class Registration:
    worktree: str
    agent: str
    task: str

    @classmethod
    def parse(cls, values: Any) -> Registration | None:
        """From `HMGET key worktree agent task`: None unless all three are there (a missing
        field, or a key of another type, whose error reply a pipeline hands back, is no
        registration: the labels are then unverified)."""
        if not isinstance(values, Sequence) or isinstance(values, str | bytes):
            return None
        if len(values) != len(FIELDS):
            return None
        found = []
        for value in values:
            if isinstance(value, bytes):
                found.append(value.decode("utf-8", "replace"))
            elif isinstance(value, str):
                found.append(value)
            else:
                return None
        return cls(*found)

    def get(self, name: str) -> str:
        return {"worktree": self.worktree, "agent": self.agent, "task": self.task}[name]


@dataclass(frozen=True, slots=True)
class Label:
    """One label of an escalation: what the host registered (None: no registration) and what
    the session's record claims."""

    name: str
    registered: str | None
    claim: str

    @property
    def verified(self) -> bool:
        return self.registered is not None

    @property
    def disputed(self) -> bool:
        """The record claims something other than the registration (or claims anything at all
        while there is no registration to check it against): shown, marked as the claim."""
        if self.registered is None:
            return bool(self.claim)
        return self.claim != self.registered


def of(registration: Registration | None, claims: Mapping[str, Any]) -> tuple[Label, ...]:
    """The three labels, from a registration and a record's (or an API row's) claims."""
    found = []
    for name in FIELDS:
        claim = claims.get(name, "")
        found.append(
            Label(
                name,
                registration.get(name) if registration is not None else None,
                claim if isinstance(claim, str) else str(claim),
            )
        )
    return tuple(found)
