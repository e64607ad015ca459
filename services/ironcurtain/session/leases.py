"""The locked shell around `subnets.allocate`: which subnets are taken, who holds which, and
the reclaiming of what a crashed session left behind.

Starts on one engine may race (several `make up`, a benchmark's threads, CI jobs), and compose
creates a session's networks a second after its subnets were chosen. So the choice and a lease
are made under one machine-wide file lock (`flock` on `<dir>/lock`), and a lease stays until
its session's teardown: taken = the engine's networks + the host's routes + the leases of live
processes. A lease whose process is gone is dropped at the next allocation (the engine then holds
whatever networks it made). The folder is `IRONCURTAIN_NETWORK_DIR`, else
`<tmp>/ironcurtain-networks`: one per engine host, shared by every state folder and worktree,
and by every user of the engine: it belongs to the Docker socket's group (setgid, 2770), whose
members may use the engine anyway, so a second user's sessions lease from the same file.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Network, ip_network
from pathlib import Path

from . import subnets

DIR_VARIABLE = "IRONCURTAIN_NETWORK_DIR"
PROJECT_LABEL = "com.docker.compose.project"
PART_LABEL = "org.ironcurtain.part"


class LeaseError(OSError):
    """The shared lease folder cannot be used by this user; the message says how to fix it."""


def socket_group(environ: Mapping[str, str]) -> int | None:
    """The Docker socket's group (who may use the engine), None when there is no such socket."""
    try:
        return os.stat(environ.get("IRONCURTAIN_DOCKER_SOCKET", "/var/run/docker.sock")).st_gid
    except OSError:
        return None


def share(root: Path, group: int | None) -> None:
    """Make `root` the folder of every user of the engine: the socket's group may write it.

    Whoever owns it (or root) sets it up; anyone else must be able to write it already."""
    root.mkdir(mode=0o755, parents=True, exist_ok=True)
    me = os.geteuid()
    if group is not None and group != 0:
        for path in (root, root / "lock", root / "leases.json"):
            try:
                info = path.stat()
            except FileNotFoundError:
                continue
            if me not in (0, info.st_uid):
                continue
            if info.st_gid != group:
                os.chown(path, -1, group)
            path.chmod(0o2770 if path == root else 0o660)
    # leases.json is replaced by a rename (the folder's write bit), never written in place.
    needs = ((root, os.W_OK | os.X_OK), (root / "lock", os.W_OK), (root / "leases.json", os.R_OK))
    usable = all(os.access(path, mode) for path, mode in needs if path.exists())
    if not usable:
        info = root.stat()
        raise LeaseError(
            f"{root} (the address leases every user of this engine shares; uid {info.st_uid}, "
            f"gid {info.st_gid}) is not writable by you: `sudo chgrp -R docker {root} && sudo "
            f"chmod -R g+rwX {root}`, or let its owner run a session first"
        )


def lease_dir(environ: Mapping[str, str]) -> Path:
    return Path(environ.get(DIR_VARIABLE) or Path(tempfile.gettempdir()) / "ironcurtain-networks")


def pool_from(environ: Mapping[str, str]) -> tuple[IPv4Network, ...]:
    return subnets.parse_pool(environ.get(subnets.POOL_VARIABLE) or subnets.DEFAULT_POOL)


def process_token(pid: int) -> str | None:
    """A process's start time (clock ticks since boot), which a reused pid does not share;
    None when no such process runs."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:  # no /proc here: alive or not is all we can tell
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "?"
    return stat.rsplit(")", 1)[1].split()[19]


@dataclass(frozen=True, slots=True)
class Lease:
    project: str
    pid: int
    token: str
    subnets: tuple[IPv4Network, ...]

    def alive(self) -> bool:
        now = process_token(self.pid)
        return now is not None and (now == self.token or "?" in (now, self.token))

    def to_json(self) -> dict[str, object]:
        return {"pid": self.pid, "token": self.token, "subnets": [str(s) for s in self.subnets]}

    @classmethod
    def from_json(cls, project: str, doc: Mapping[str, object]) -> Lease:
        subnets, pid = doc["subnets"], doc["pid"]
        if not isinstance(subnets, list) or not isinstance(pid, (int, float, str)):
            raise TypeError(f"the lease of {project} is malformed")
        nets = tuple(IPv4Network(str(s)) for s in subnets)
        return cls(project, int(pid), str(doc["token"]), nets)


def host_routes(path: Path = Path("/proc/net/route")) -> list[IPv4Network]:
    """The host's IPv4 routes but the default one (a VPN's or LAN's range is taken too)."""
    try:
        lines = path.read_text().splitlines()[1:]
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) < 8:
            continue
        dest, mask = (int(fields[i], 16).to_bytes(4, "little") for i in (1, 7))
        bits = int.from_bytes(mask, "big").bit_count()
        if bits == 0:
            continue
        found.append(IPv4Network((int.from_bytes(dest, "big"), bits), strict=False))
    return found


class Leases:
    """Subnets handed to sessions on one engine: `take` at start, `release` at teardown."""

    def __init__(
        self,
        root: Path,
        pool: tuple[IPv4Network, ...],
        engine_subnets: Callable[[set[str]], Iterable[IPv4Network]],
        routes: Callable[[], Iterable[IPv4Network]] = host_routes,
        group: int | None = None,  # the Docker socket's: who else shares the folder
    ) -> None:
        self.root = root
        self.group = group
        self.pool = pool
        self._engine_subnets = engine_subnets
        self._routes = routes

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Lease]]:
        """The leases, read and written back under the lock (a crash mid-write leaves the old
        file: the new one is renamed over it)."""
        share(self.root, self.group)
        shared = self.group not in (None, 0)
        fd = os.open(self.root / "lock", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o660)
        if os.fstat(fd).st_uid == os.geteuid():  # ours: exactly this mode, whatever the umask
            os.fchmod(fd, 0o660 if shared else 0o644)
        with os.fdopen(fd, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            path = self.root / "leases.json"
            try:
                doc = json.loads(path.read_text()) if path.exists() else {}
                leases = {p: Lease.from_json(p, d) for p, d in doc.items()}
            except (ValueError, KeyError, TypeError):
                leases = {}  # unreadable: the engine's networks still say what is taken
            before = dict(leases)
            yield leases
            if leases != before:
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps({p: lease.to_json() for p, lease in leases.items()}))
                tmp.chmod(0o660 if shared else 0o644)
                tmp.replace(path)

    def take(self, project: str, count: int) -> tuple[IPv4Network, ...]:
        """`count` free subnets for `project`, leased to this process until `release`."""
        token = process_token(os.getpid()) or "?"
        with self._locked() as leases:
            for name in [p for p, lease in leases.items() if not lease.alive()]:
                del leases[name]
            leases.pop(project, None)
            # Given the live leases' projects: the engine side may sweep stale networks first
            # (reclaim.py), in this same hold of the lock and with one listing of the engine.
            taken = [*self._engine_subnets(set(leases)), *self._routes()]
            taken += [s for lease in leases.values() for s in lease.subnets]
            chosen = subnets.allocate(self.pool, taken, count)
            leases[project] = Lease(project, os.getpid(), token, chosen)
        return chosen

    def release(self, project: str) -> None:
        with self._locked() as leases:
            leases.pop(project, None)

    def live_projects(self) -> set[str]:
        with self._locked() as leases:
            return {p for p, lease in leases.items() if lease.alive()}

    @contextmanager
    def held(self) -> Iterator[set[str]]:
        """The lock held (nobody allocates meanwhile), with the projects of live leases."""
        with self._locked() as leases:
            yield {p for p, lease in leases.items() if lease.alive()}


@dataclass(frozen=True, slots=True)
class EngineNetwork:
    id: str
    name: str
    project: str  # compose project label ("" if none)
    ours: bool  # an IronCurtain session's network
    subnets: tuple[IPv4Network, ...]


def stale(
    networks: Iterable[EngineNetwork],
    projects_with_containers: set[str],
    live_leases: set[str],
    pool: tuple[IPv4Network, ...],
) -> list[EngineNetwork]:
    """Session networks left behind: ours, in the pool, of a project that has no container and
    whose starting process is gone (a live lease means compose may be about to use them)."""
    return [
        n
        for n in networks
        if n.ours
        and n.project
        and n.subnets
        and all(subnets.in_pool(s, pool) for s in n.subnets)
        and n.project not in projects_with_containers
        and n.project not in live_leases
    ]


def parse_networks(listing: Iterable[Mapping[str, object]]) -> list[EngineNetwork]:
    """The engine's `GET /networks` answer as data (IPv4 subnets only)."""
    found = []
    for doc in listing:
        labels = doc.get("Labels") or {}
        assert isinstance(labels, dict)
        ipam = doc.get("IPAM") or {}
        assert isinstance(ipam, dict)
        nets = []
        for config in ipam.get("Config") or []:
            try:
                net = ip_network(str(config.get("Subnet", "")), strict=False)
            except ValueError:
                continue
            if isinstance(net, IPv4Network):
                nets.append(net)
        found.append(
            EngineNetwork(
                id=str(doc.get("Id", "")),
                name=str(doc.get("Name", "")),
                project=str(labels.get(PROJECT_LABEL, "")),
                ours=labels.get(PART_LABEL) == "session",
                subnets=tuple(nets),
            )
        )
    return found
