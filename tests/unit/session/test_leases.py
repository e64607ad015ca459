"""The locked shell around the allocator: leases keep concurrent starts apart (racing
interpreters), are freed at teardown and when their process is gone, and the sweep picks only
networks a stopped session left behind."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from ironcurtain.session.leases import (
    EngineNetwork,
    LeaseError,
    Leases,
    host_routes,
    parse_networks,
    pool_from,
    share,
    stale,
)
from ironcurtain.session.subnets import Exhausted, PoolError, parse_pool

from ..racers import race

POOL = parse_pool("10.213.0.0/16")


def leases(
    root: Path, engine: list[IPv4Network] | None = None, pool: str = "10.213.0.0/16"
) -> Leases:
    return Leases(root, parse_pool(pool), lambda _live: list(engine or []), routes=lambda: [])


def test_a_lease_holds_its_subnets_until_released(tmp_path: Path) -> None:
    store = leases(tmp_path)
    first = store.take("ic-a", 3)
    second = store.take("ic-b", 3)
    assert set(first).isdisjoint(second)
    store.release("ic-a")
    assert store.take("ic-c", 3) == first


def test_the_engines_networks_are_never_handed_out(tmp_path: Path) -> None:
    engine = [IPv4Network("10.213.0.0/28"), IPv4Network("10.213.0.32/28")]
    got = leases(tmp_path, engine).take("ic-a", 2)
    assert got == (IPv4Network("10.213.0.16/28"), IPv4Network("10.213.0.48/28"))


def test_the_hosts_routes_are_never_handed_out(tmp_path: Path) -> None:
    store = Leases(tmp_path, POOL, lambda _live: [], routes=lambda: [IPv4Network("10.213.0.0/24")])
    assert store.take("ic-a", 1) == (IPv4Network("10.213.1.0/28"),)


def test_a_lease_of_a_process_that_is_gone_is_dropped(tmp_path: Path) -> None:
    # Another interpreter leases and exits without releasing (a crash).
    program = (
        "from pathlib import Path; from ironcurtain.session.leases import Leases;"
        "from ironcurtain.session.subnets import parse_pool;"
        f"print(Leases(Path({str(tmp_path)!r}), parse_pool('10.213.0.0/16'), lambda _: [],"
        " routes=lambda: []).take('ic-crashed', 3)[0])"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "10.213.0.0/28"
    assert leases(tmp_path).take("ic-next", 1) == (IPv4Network("10.213.0.0/28"),)


def test_exhaustion_is_refused(tmp_path: Path) -> None:
    store = leases(tmp_path, pool="10.99.0.0/26")  # four /28s
    store.take("ic-a", 3)
    with pytest.raises(Exhausted, match="1 free"):
        store.take("ic-b", 3)
    store.release("ic-a")
    assert len(store.take("ic-b", 3)) == 3


def test_an_unreadable_lease_file_falls_back_to_the_engine(tmp_path: Path) -> None:
    (tmp_path / "leases.json").write_text("{not json")
    engine = [IPv4Network("10.213.0.0/28")]
    assert leases(tmp_path, engine).take("ic-a", 1) == (IPv4Network("10.213.0.16/28"),)


def test_racing_interpreters_never_get_the_same_subnet(tmp_path: Path) -> None:
    # Each racer leases, then "creates its networks" (appends them to a file standing in for
    # the engine, which the others read as taken) and exits, as a session start does: a subnet
    # is always covered by a live lease or by the engine.
    engine = tmp_path / "engine.txt"
    engine.touch()
    results = race(
        setup=(
            "import os\n"
            "from ipaddress import IPv4Network\n"
            "from pathlib import Path\n"
            "from ironcurtain.session.leases import Leases\n"
            "from ironcurtain.session.subnets import parse_pool\n"
            f"engine = Path({str(engine)!r})\n"
            "def made(_live):\n"
            "    return [IPv4Network(x) for x in engine.read_text().split()"
            " if x.endswith('/28')]\n"
            f"store = Leases(Path({str(tmp_path)!r}), parse_pool('10.213.0.0/16'), made,"
            " routes=lambda: [])\n"
        ),
        act=(
            "got = [str(s) for s in store.take(f'ic-{os.getpid()}', 3)]\n"
            "with engine.open('a') as out:\n"
            "    out.write(' '.join(got) + ' ')\n"
            "result = got\n"
        ),
        count=8,
    )
    assert all(isinstance(r, list) and len(r) == 3 for r in results), results
    flat = [s for r in results for s in r]  # type: ignore[union-attr]
    assert len(set(flat)) == len(flat) == 24


def test_the_pool_comes_from_the_environment() -> None:
    assert pool_from({}) == POOL
    assert pool_from({"IRONCURTAIN_SUBNET_POOL": "10.50.0.0/24"}) == parse_pool("10.50.0.0/24")
    with pytest.raises(PoolError):
        pool_from({"IRONCURTAIN_SUBNET_POOL": "8.8.8.0/24"})


def _net(name: str, project: str, subnet: str, ours: bool = True) -> EngineNetwork:
    return EngineNetwork(f"id-{name}", name, project, ours, (IPv4Network(subnet),))


def test_the_sweep_picks_only_left_behind_session_networks_of_the_pool() -> None:
    networks = [
        _net("ic-gone_agent", "ic-gone", "10.213.0.0/28"),  # stale: picked
        _net("ic-running_agent", "ic-running", "10.213.0.16/28"),  # has containers
        _net("ic-starting_agent", "ic-starting", "10.213.0.32/28"),  # live lease: compose next
        _net("ic-old_agent", "ic-old", "172.18.0.0/16"),  # default pools: older code's
        _net("team_dev", "team", "10.213.0.48/28", ours=False),  # not a session's
    ]
    picked = stale(networks, {"ic-running"}, {"ic-starting"}, POOL)
    assert [n.name for n in picked] == ["ic-gone_agent"]


def test_engine_listings_are_parsed_ipv4_only() -> None:
    listing = [
        {
            "Id": "abc",
            "Name": "ic-x_agent",
            "Labels": {"com.docker.compose.project": "ic-x", "org.ironcurtain.part": "session"},
            "IPAM": {"Config": [{"Subnet": "10.213.0.0/28"}, {"Subnet": "fd00::/64"}]},
        },
        {"Id": "def", "Name": "host", "Labels": None, "IPAM": {"Config": []}},
    ]
    parsed = parse_networks(listing)
    assert parsed[0] == EngineNetwork(
        "abc", "ic-x_agent", "ic-x", True, (IPv4Network("10.213.0.0/28"),)
    )
    assert parsed[1].subnets == ()
    assert not parsed[1].ours


def test_host_routes_are_read_without_the_default_route(tmp_path: Path) -> None:
    table = tmp_path / "route"
    table.write_text(
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t010011AC\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "eth0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
        "tun0\t0000D50A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
    )
    assert host_routes(table) == [IPv4Network("172.17.0.0/16"), IPv4Network("10.213.0.0/24")]


def test_the_folder_is_shared_with_the_sockets_group(tmp_path: Path) -> None:
    # Every user of the engine leases from one file: the socket's group may write it (setgid).
    root = tmp_path / "leases"
    store = Leases(root, POOL, lambda _live: [], routes=lambda: [], group=4343)
    store.take("ic-a-00000001", 1)
    assert (root.stat().st_gid, stat.S_IMODE(root.stat().st_mode)) == (4343, 0o2770)
    for name in ("lock", "leases.json"):
        info = (root / name).stat()
        assert (info.st_gid, stat.S_IMODE(info.st_mode)) == (4343, 0o660), name


def test_a_folder_this_user_cannot_write_is_refused_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "leases"
    root.mkdir()
    (root / "lock").touch()
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # someone else's folder, as another user
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(LeaseError, match="sudo chgrp -R docker"):
        share(root, 4343)
