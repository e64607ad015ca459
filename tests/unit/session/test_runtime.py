"""Which runtime a session runs under, from the setting and the engine's registered runtimes:
a table of allowed choices, and the refusals (a required runsc the engine lacks, a bad value)."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from ironcurtain.session import runtime
from ironcurtain.session.run import Options, Refused, Session
from ironcurtain.session.runtime import Choice, RuntimeRefused, choose, registered

ENGINE_WITH = {"runc": {"path": "runc"}, "runsc": {"path": "/usr/bin/runsc"}}
ENGINE_WITHOUT = {"runc": {"path": "runc"}, "io.containerd.runc.v2": {"path": "runc"}}


@pytest.mark.parametrize(
    ("setting", "engine", "agent"),
    [
        ("auto", ENGINE_WITH, "runsc"),
        ("", ENGINE_WITH, "runsc"),  # unset is auto
        (" AUTO ", ENGINE_WITH, "runsc"),
        ("auto", ENGINE_WITHOUT, "runc"),
        ("runsc", ENGINE_WITH, "runsc"),
        ("runc", ENGINE_WITH, "runc"),  # forced off on an engine that has it
        ("runc", ENGINE_WITHOUT, "runc"),
        ("auto", {}, "runc"),
    ],
)
def test_the_agent_runs_under_runsc_exactly_when_wanted_and_registered(
    setting: str, engine: dict[str, object], agent: str
) -> None:
    choice = choose(setting, registered(engine))
    assert choice.agent == agent


@pytest.mark.parametrize("setting", ["auto", "runc", "runsc"])
def test_rooms_stay_on_runc_where_landlock_holds(setting: str) -> None:
    assert choose(setting, registered(ENGINE_WITH)).rooms == "runc"


def test_a_required_runsc_on_an_engine_without_it_is_refused_saying_how_to_get_it() -> None:
    with pytest.raises(RuntimeRefused, match=r"no runsc runtime registered.*make deps"):
        choose("runsc", registered(ENGINE_WITHOUT))


@pytest.mark.parametrize("setting", ["gvisor", "runsc --network=none", "kata", "runc;runsc"])
def test_a_value_that_is_no_setting_is_refused_naming_the_choices(setting: str) -> None:
    with pytest.raises(RuntimeRefused, match=r"one of auto, runc, runsc"):
        choose(setting, registered(ENGINE_WITH))


@pytest.mark.parametrize("runtimes", [None, [], "runsc", 3])
def test_a_missing_or_malformed_runtimes_answer_counts_as_none_registered(
    runtimes: object,
) -> None:
    assert registered(runtimes) == frozenset()  # type: ignore[arg-type]
    assert choose("auto", registered(runtimes)).agent == "runc"  # type: ignore[arg-type]


def test_the_choice_says_which_runtime_and_why() -> None:
    line = choose("auto", registered(ENGINE_WITH)).describe()
    assert line.startswith("agent under runsc, rooms under runc (")
    assert isinstance(choose("auto", []), Choice)
    assert "no runsc registered" in choose("auto", []).describe()


class _Engine:
    """The one call `Session._runtimes` makes of the engine (`docker info`)."""

    def __init__(self, runtimes: dict[str, object]) -> None:
        self.runtimes = runtimes

    def info(self) -> dict[str, object]:
        return {"Runtimes": self.runtimes}


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> _Engine:
    """Stands in for the engine the session would connect to (no Docker in unit tests)."""
    fake = _Engine({})
    monkeypatch.setattr(docker, "from_env", lambda: fake)
    return fake


def _session(tmp_path: Path, setting: str) -> Session:
    return Session(
        Options(task="t", workspace=tmp_path),
        say=lambda _: None,
        environ={"HOME": str(tmp_path), "IRONCURTAIN_RUNTIME": setting},
    )


def test_a_session_that_requires_runsc_on_an_engine_without_it_is_refused(
    tmp_path: Path, engine: _Engine
) -> None:
    engine.runtimes = ENGINE_WITHOUT
    with pytest.raises(Refused, match=r"IRONCURTAIN_RUNTIME=runsc, but this Docker engine"):
        _session(tmp_path, "runsc")._runtimes()


def test_control_a_session_on_an_engine_with_runsc_puts_its_agent_under_it(
    tmp_path: Path, engine: _Engine
) -> None:
    engine.runtimes = ENGINE_WITH
    assert _session(tmp_path, "auto")._runtimes().agent == "runsc"
    assert _session(tmp_path, "runc")._runtimes().agent == "runc"


@pytest.mark.parametrize(
    ("attrs", "wanted", "wrong"),
    [
        ({"HostConfig": {"Runtime": "runsc"}}, "runsc", None),  # control
        ({"HostConfig": {"Runtime": "runc"}}, "runc", None),  # control
        ({"HostConfig": {}}, "runc", None),  # the engine's default is runc
        ({"HostConfig": {"Runtime": "runc"}}, "runsc", "it runs under 'runc', but 'runsc'"),
        ({"HostConfig": {}}, "runsc", "it runs under 'runc', but 'runsc'"),
        ({}, "runsc", "it runs under 'runc', but 'runsc'"),
        ({"HostConfig": {"Runtime": "runsc-debug"}}, "runsc", "'runsc-debug'"),
    ],
)
def test_a_started_agent_under_another_runtime_than_chosen_is_caught(
    attrs: dict[str, object], wanted: str, wrong: str | None
) -> None:
    """What runs is read back from the engine: a compose override or an edited file that puts
    the agent under runc when runsc was chosen fails the isolation check."""
    found = runtime.mismatch(attrs, wanted)
    if wrong is None:
        assert found is None
    else:
        assert found is not None
        assert wrong in found
