"""`ironcurtain shared up | down | env | member | login`: the team-shared Redis, approval service
and worker, and the people who may decide."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from ..escalation import tls
from ..home import HomeMissing, locate
from ..people.client import DEFAULT_PORT, ApiError, Client, add_ca_option
from ..people.members import MemberError
from ..state import member_token_file, shared_dir, team_dir
from .files import SharedFiles

COMPOSE_FILE = "compose.shared.yaml"
TEAM_COMPOSE_FILE = "compose.team.yaml"  # a team server: Redis and the registrar published
NETWORK = "ironcurtain-shared"
REDIS_PORT, REGISTRAR_PORT, TEAM_APPROVAL_PORT = "6379", "8443", "8471"


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("shared", help="start or stop the team-shared infrastructure")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="make missing secret files, then start (and wait healthy)")
    up.add_argument(
        "--host",
        action="append",
        default=None,
        help="serve as a team server under this host name or address (repeatable; replaces the "
        "stored names): Redis (TLS) and the registrar (HTTPS) are published for other machines",
    )
    up.add_argument("--single", action="store_true", help="stop being a team server")
    up.set_defaults(handler=_up)
    invite = actions.add_parser("invite", help="what another machine needs to join this server")
    invite.set_defaults(handler=_invite)
    join = actions.add_parser(
        "join", help="use a team server's Redis: store its CA and your member token (stdin)"
    )
    join.add_argument("url", help="the team's registrar, https://HOST:PORT (`shared invite`)")
    join.add_argument("--ca", type=Path, required=True, help="the team CA file the operator gave")
    join.add_argument(
        "--fingerprint", default="", help="sha256:... of the CA, as `shared invite` printed it"
    )
    join.set_defaults(handler=_join)
    leave = actions.add_parser("leave", help="forget the team server (sessions go local again)")
    leave.set_defaults(handler=_leave)
    down = actions.add_parser("down", help="stop it (secret files stay)")
    down.set_defaults(handler=_down)
    env = actions.add_parser("env", help="print what sessions need to join it")
    env.set_defaults(handler=_env)
    member = actions.add_parser("member", help="add, remove or list the people who may decide")
    what = member.add_subparsers(dest="what", metavar="WHAT", required=True)
    add = what.add_parser("add", help="add a member and print their token (once)")
    add.add_argument("name")
    add.set_defaults(handler=_member_add)
    remove = what.add_parser("remove", help="revoke a member's token and end their web sessions")
    remove.add_argument("name")
    remove.set_defaults(handler=_member_remove)
    listing = what.add_parser("list", help="the members (names and when added; no tokens)")
    listing.set_defaults(handler=_member_list)
    login = actions.add_parser(
        "login", help="store your member token (read from the terminal) in your state folder, 0600"
    )
    login.add_argument(
        "--url",
        default=os.environ.get("IRONCURTAIN_APPROVAL_URL", f"http://127.0.0.1:{DEFAULT_PORT}"),
        help="the approval service that checks the token (default: %(default)s)",
    )
    login.add_argument("--token-file", type=Path, default=member_token_file())
    add_ca_option(login)
    login.set_defaults(handler=_login)


def shared_environ(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    directory = shared_dir(environ)
    found = {
        **environ,
        "IRONCURTAIN_SHARED_DIR": str(directory),
        "IRONCURTAIN_SHARED_NETWORK": environ.get("IRONCURTAIN_SHARED_NETWORK", NETWORK),
        "IRONCURTAIN_APPROVAL_PORT": environ.get("IRONCURTAIN_APPROVAL_PORT", str(DEFAULT_PORT)),
        "IRONCURTAIN_TEAM_REDIS_PORT": environ.get("IRONCURTAIN_TEAM_REDIS_PORT", REDIS_PORT),
        "IRONCURTAIN_TEAM_REGISTRAR_PORT": environ.get(
            "IRONCURTAIN_TEAM_REGISTRAR_PORT", REGISTRAR_PORT
        ),
        "IRONCURTAIN_TEAM_APPROVAL_PORT": environ.get(
            "IRONCURTAIN_TEAM_APPROVAL_PORT", TEAM_APPROVAL_PORT
        ),
    }
    hosts = SharedFiles(directory).team_hosts()
    if hosts:
        found["IRONCURTAIN_TEAM_HOST"] = hosts[0]
        found["IRONCURTAIN_TEAM_REDIS_URL"] = (
            f"rediss://{hosts[0]}:{found['IRONCURTAIN_TEAM_REDIS_PORT']}/0"
        )
    return found


def compose_files(root: Path, environ: Mapping[str, str]) -> tuple[Path, ...]:
    """The stack's compose files: the team overlay only on a team server (`up --host`)."""
    team = "IRONCURTAIN_TEAM_HOST" in environ
    return (root / COMPOSE_FILE, *((root / TEAM_COMPOSE_FILE,) if team else ()))


def _compose(environ: Mapping[str, str], *args: str) -> int:
    try:
        root = locate().root  # the installed copy's compose file, from any directory
    except HomeMissing as exc:
        print(f"shared: {exc}", file=sys.stderr)
        return 2
    files = [w for f in compose_files(root, environ) for w in ("-f", str(f))]
    command = ["docker", "compose", *files, *args]
    return subprocess.run(command, env=dict(environ), cwd=root, check=False).returncode


def _up(args: argparse.Namespace) -> int:
    environ = shared_environ()
    files = SharedFiles(Path(environ["IRONCURTAIN_SHARED_DIR"]))
    with files.lock():  # the same lock as sessions starting the stack on demand
        try:
            files.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            if args.host or args.single:
                files.set_team_hosts([] if args.single else args.host)
                environ = shared_environ()
            before = _certificates(files)
            environ["IRONCURTAIN_SECRETS_UID"] = str(files.ensure())
        except (OSError, ValueError) as exc:
            print(f"shared: cannot prepare the secret files: {exc}", file=sys.stderr)
            return 2
        extra = ("--remove-orphans",) if args.single else ()
        if _certificates(files) != before:  # compose does not see a secret file change
            extra = (*extra, "--force-recreate")
        code = _compose(environ, "up", "--detach", "--wait", "--wait-timeout", "120", *extra)
    if code == 0:
        print(f"shared: up; approvals at http://127.0.0.1:{environ['IRONCURTAIN_APPROVAL_PORT']}")
        if "IRONCURTAIN_TEAM_HOST" in environ:  # people on other machines: HTTPS, the team CA
            print(f"shared: for the team at {team_approval_url(environ)} (trust the team CA)")
    return code


def team_approval_url(environ: Mapping[str, str]) -> str:
    """The team server's approval page for people on other machines (HTTPS, the team CA)."""
    return f"https://{environ['IRONCURTAIN_TEAM_HOST']}:{environ['IRONCURTAIN_TEAM_APPROVAL_PORT']}"


def _certificates(files: SharedFiles) -> list[bytes]:
    paths = (
        files.tls.ca, files.tls.server_cert, files.tls.cert("registrar"), files.tls.cert("approval")
    )  # fmt: skip
    return [p.read_bytes() if p.exists() else b"" for p in paths]


def _invite(args: argparse.Namespace) -> int:
    environ = shared_environ()
    files = SharedFiles(Path(environ["IRONCURTAIN_SHARED_DIR"]))
    if "IRONCURTAIN_TEAM_HOST" not in environ or not files.tls.ca.exists():
        print("invite: not a team server; run `ironcurtain shared up --host NAME`", file=sys.stderr)
        return 1
    from .pki import fingerprint

    url = f"https://{environ['IRONCURTAIN_TEAM_HOST']}:{environ['IRONCURTAIN_TEAM_REGISTRAR_PORT']}"
    print(f"team CA: {files.tls.ca} ({fingerprint(files.tls.ca.read_bytes())})")
    print(f"Approvals for the team: {team_approval_url(environ)} (a browser trusting the CA)")
    print("Hand the CA file (public) and a member token (`shared member add NAME`) over; there:")
    print(f"  ironcurtain shared join {url} --ca ca.pem --fingerprint "
          f"{fingerprint(files.tls.ca.read_bytes())}")  # fmt: skip
    return 0


def _join(args: argparse.Namespace) -> int:
    from ..registrar.client import Registrar, RegistrarError, Team
    from .pki import fingerprint

    try:
        ca_pem = args.ca.read_bytes()
        found = fingerprint(ca_pem)
    except (OSError, ValueError) as exc:
        print(f"join: refused: the CA file {args.ca}: {exc}", file=sys.stderr)
        return 1
    if args.fingerprint and args.fingerprint.lower() != found:
        print(f"join: refused: the CA file is {found}, not {args.fingerprint}", file=sys.stderr)
        return 1
    token = getpass.getpass("member token: ") if sys.stdin.isatty() else sys.stdin.readline()
    team = Team(team_dir())
    team.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    team.directory.chmod(0o700)
    staged = team.directory / f".ca.{secrets.token_hex(4)}.pem"
    staged.write_bytes(ca_pem)
    try:
        answer = Registrar(args.url, staged, token.strip()).team()
    except RegistrarError as exc:
        staged.unlink()
        print(f"join: refused: {exc}", file=sys.stderr)
        return 1
    os.replace(staged, team.ca)
    _write_private(team.token_file, token.strip() + "\n")
    _write_private(
        team.settings,
        json.dumps({"registrar": args.url, "redis_url": answer["redis_url"]}) + "\n",
    )
    print(f"join: you are {answer['member']!r}; sessions here escalate to {answer['redis_url']}")
    print(f"join: trusting only the team CA {found} for it; `shared leave` undoes this")
    return 0


def _leave(args: argparse.Namespace) -> int:
    from ..registrar.client import Team

    team = Team(team_dir())
    for path in (team.settings, team.token_file, team.ca):
        path.unlink(missing_ok=True)
    print("leave: sessions here use this machine's own stack again")
    return 0


def _write_private(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(temporary, path)


def _down(args: argparse.Namespace) -> int:
    return _compose(shared_environ(), "down", "--remove-orphans")


def _env(args: argparse.Namespace) -> int:
    environ = shared_environ()
    directory = Path(environ["IRONCURTAIN_SHARED_DIR"])
    print(f"IRONCURTAIN_SHARED_NETWORK={environ['IRONCURTAIN_SHARED_NETWORK']}")
    print("IRONCURTAIN_REDIS_URL=rediss://redis:6379/0")
    print(f"IRONCURTAIN_REDIS_CREDENTIAL_FILE={directory / 'redis_approval'}")
    print(f"IRONCURTAIN_REDIS_CA_FILE={directory / 'tls' / 'ca.pem'}")
    print(f"IRONCURTAIN_APPROVAL_MEMBERS_FILE={directory / 'people' / 'members.json'}")
    print(f"IRONCURTAIN_APPROVAL_URL=http://127.0.0.1:{environ['IRONCURTAIN_APPROVAL_PORT']}")
    return 0


def _files() -> SharedFiles:
    return SharedFiles(Path(shared_environ()["IRONCURTAIN_SHARED_DIR"]))


def _member_add(args: argparse.Namespace) -> int:
    files = _files()
    try:
        with files.lock():
            files.ensure(say=lambda _: None)  # the folder, its modes and the members file
        token = files.members().add(args.name)
    except (MemberError, OSError) as exc:
        print(f"member add: refused: {exc}", file=sys.stderr)
        return 1
    print(f"member {args.name!r} added. Their token (shown this once; only a digest is kept):")
    print(token)
    print("They store it with `ironcurtain shared login` on their machine.")
    return 0


def _member_remove(args: argparse.Namespace) -> int:
    try:
        removed = _files().members().remove(args.name)
    except (MemberError, OSError) as exc:
        print(f"member remove: refused: {exc}", file=sys.stderr)
        return 1
    if not removed:
        print(f"member remove: no member {args.name!r}", file=sys.stderr)
        return 1
    print(f"member {args.name!r} removed: their token and web sessions no longer decide anything")
    return _end_member_sessions(args.name)


def _end_member_sessions(name: str) -> int:
    """After the token is gone (so no new session user can be asked for with it), the session
    users the member's machines were given go too. A stopped Redis holds no users at all, and
    none comes back for a removed member (the registrar checks the token first)."""
    import docker
    import redis

    from ..escalation import users
    from .redis_admin import RedisNotRunning, admin_redis, redis_address

    try:
        client = docker.from_env()
        try:
            admin = admin_redis(_files(), redis_address(client, NETWORK))
        finally:
            client.close()
        try:
            ended = users.remove_member_sessions(admin, name)
        finally:
            admin.close()
    except (RedisNotRunning, docker.errors.DockerException):
        print("the team Redis is not running here: it holds no session users to remove")
        return 0
    except (redis.RedisError, OSError, ValueError) as exc:
        print(f"member remove: their session users could not be removed: {exc}", file=sys.stderr)
        return 1
    named = f" ({', '.join(ended)})" if ended else ""
    print(f"their session users removed: {len(ended)}{named}")
    return 0


def _member_list(args: argparse.Namespace) -> int:
    try:
        members = _files().members().load()
    except (MemberError, OSError) as exc:
        print(f"member list: {exc}", file=sys.stderr)
        return 1
    for member in sorted(members.values(), key=lambda m: m.name):
        added = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(member.added))
        print(f"{member.name}  added {added}")
    return 0


def _login(args: argparse.Namespace) -> int:
    token = getpass.getpass("member token: ") if sys.stdin.isatty() else sys.stdin.readline()
    token = token.strip()
    try:
        member = Client(args.url, token, context=tls.https_context(args.url, args.ca)).whoami()
    except (ApiError, OSError) as exc:
        print(f"login: refused: {exc}", file=sys.stderr)
        return 1
    path: Path = args.token_file
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    os.replace(temporary, path)
    print(f"login: you are {member!r}; your token is in {path} (0600)")
    return 0
