"""`ironcurtain shared up | down | env | member | login`: the team-shared Redis, approval service
and worker, and the people who may decide."""

from __future__ import annotations

import argparse
import getpass
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from ..approval.client import ApiError, Client
from ..approval.command import member_token_file
from ..approval.members import MemberError
from ..approval.settings import DEFAULT_PORT, state_dir
from ..home import HomeMissing, locate
from .files import SharedFiles

COMPOSE_FILE = "compose.shared.yaml"
NETWORK = "ironcurtain-shared"


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("shared", help="start or stop the team-shared infrastructure")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="make missing secret files, then start (and wait healthy)")
    up.set_defaults(handler=_up)
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
    login.set_defaults(handler=_login)


def shared_environ(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    directory = Path(environ.get("IRONCURTAIN_SHARED_DIR") or state_dir(environ) / "shared")
    return {
        **environ,
        "IRONCURTAIN_SHARED_DIR": str(directory),
        "IRONCURTAIN_SHARED_NETWORK": environ.get("IRONCURTAIN_SHARED_NETWORK", NETWORK),
        "IRONCURTAIN_APPROVAL_PORT": environ.get("IRONCURTAIN_APPROVAL_PORT", str(DEFAULT_PORT)),
    }


def _compose(environ: Mapping[str, str], *args: str) -> int:
    try:
        root = locate().root  # the installed copy's compose file, from any directory
    except HomeMissing as exc:
        print(f"shared: {exc}", file=sys.stderr)
        return 2
    command = ["docker", "compose", "-f", str(root / COMPOSE_FILE), *args]
    return subprocess.run(command, env=dict(environ), cwd=root, check=False).returncode


def _up(args: argparse.Namespace) -> int:
    environ = shared_environ()
    files = SharedFiles(Path(environ["IRONCURTAIN_SHARED_DIR"]))
    with files.lock():  # the same lock as sessions starting the stack on demand
        try:
            environ["IRONCURTAIN_SECRETS_UID"] = str(files.ensure())
        except OSError as exc:
            print(f"shared: cannot prepare the secret files: {exc}", file=sys.stderr)
            return 2
        code = _compose(environ, "up", "--detach", "--wait", "--wait-timeout", "120")
    if code == 0:
        print(f"shared: up; approvals at http://127.0.0.1:{environ['IRONCURTAIN_APPROVAL_PORT']}")
    return code


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
        member = Client(args.url, token).whoami()
    except ApiError as exc:
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
