"""Which session users a sweep removes (pure): this machine's gone sessions, and strays."""

from __future__ import annotations

import json

from ironcurtain.escalation.users import stale


def _entry(project: str, machine: str) -> str:
    return json.dumps({"project": project, "machine": machine, "created": 1.0})


def test_a_sweep_removes_this_machines_gone_sessions_and_unregistered_users_only() -> None:
    registry = {
        "ironcurtain-session-live": _entry("ic-wt-live", "m1"),
        "ironcurtain-session-gone": _entry("ic-wt-gone", "m1"),
        "ironcurtain-session-theirs": _entry("ic-wt-theirs", "m2"),
        "ironcurtain-session-garbled": "{not json",
    }
    users = [*registry, "ironcurtain-session-stray"]
    removed = stale(users, registry, machine="m1", live_projects={"ic-wt-live"})
    assert sorted(removed) == [
        "ironcurtain-session-garbled",
        "ironcurtain-session-gone",
        "ironcurtain-session-stray",
    ]
