"""The agent's identity: the workspace owner's uid and gid, never root, named in our own files."""

from __future__ import annotations

import pytest

from ironcurtain.session.hardening import AgentHardening, HardeningError
from ironcurtain.session.identity import AGENT_HOME, Identity, IdentityError


@pytest.mark.parametrize(("uid", "gid"), [(0, 1000), (1000, 0), (0, 0), (65534, 1000), (-1, 5)])
def test_root_nobody_and_nonsense_are_never_the_agent(uid: int, gid: int) -> None:
    with pytest.raises(IdentityError):
        Identity(uid, gid)


def test_passwd_and_group_name_the_agent_with_its_home() -> None:
    who = Identity(1000, 1001)
    entries = [line.split(":") for line in who.passwd().splitlines()]
    agent = next(e for e in entries if e[2] == "1000")
    assert agent[3] == "1001"
    assert agent[5] == AGENT_HOME
    assert [e[2] for e in entries].count("1000") == 1  # one user with the agent's uid
    assert all(len(e) == 7 for e in entries)
    groups = [line.split(":") for line in who.group().splitlines()]
    assert [g[0] for g in groups if g[2] == "1001"] == ["agent"]
    assert all(len(g) == 4 and g[3] == "" for g in groups)  # nobody is in another's group
    assert who.user == "1000:1001"


def test_the_hardening_takes_the_owners_group_for_user_and_home() -> None:
    settings = AgentHardening(workspace="/w", uid=1000, gid=1001).compose_service()
    assert settings["user"] == "1000:1001"
    assert any("uid=1000,gid=1001" in t for t in settings["tmpfs"])  # type: ignore[union-attr]
    with pytest.raises(HardeningError):
        AgentHardening(workspace="/w", uid=1000, gid=0)
