"""`ironcurtain audit verify FILE [--key KEY] [--checkpoints FILE]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from .key_files import KeyFileError, read_key
from .verify import AnchorError, checkpoints_path, find_anchor, key_path, verify_file

EXIT_TAMPERED = 1
EXIT_CANNOT_CHECK = 2


def register(commands: argparse._SubParsersAction) -> None:
    audit = commands.add_parser("audit", help="check audit logs")
    sub = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    check = sub.add_parser(
        "verify", help="check an audit log's keyed chain (edits, truncation, recomputed chains)"
    )
    check.add_argument("file", type=Path)
    check.add_argument(
        "--key",
        type=Path,
        default=None,
        help="the log's key file (default: the session's anchor/NAME.key)",
    )
    check.add_argument(
        "--checkpoints",
        type=Path,
        default=None,
        help="the host's checkpoints of the log (default: the session's anchor/NAME.checkpoints)",
    )
    check.set_defaults(handler=_verify)


def _verify(args: argparse.Namespace) -> int:
    try:
        anchor = find_anchor(args.file)
    except AnchorError as exc:
        print(f"{args.file}: cannot check: {exc}")
        return EXIT_CANNOT_CHECK
    key_file = args.key or (key_path(anchor, args.file) if anchor else None)
    if key_file is None:
        print(f"{args.file}: cannot check: no key (give --key; a session keeps it in anchor/)")
        return EXIT_CANNOT_CHECK
    try:
        key = read_key(key_file)
    except KeyFileError as exc:
        print(f"{args.file}: cannot check: {exc}")
        return EXIT_CANNOT_CHECK
    marks = args.checkpoints or (checkpoints_path(anchor, args.file) if anchor else None)
    report = verify_file(args.file, key, marks)
    if report.ok:
        note = f" ({report.note})" if report.note else ""
        print(f"{args.file}: OK, {report.lines} lines, chain intact{note}")
        return 0
    print(f"{args.file}: TAMPERED OR DAMAGED: {report.problem}")
    return EXIT_TAMPERED
