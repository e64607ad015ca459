"""`ironcurtain audit verify FILE`."""

from __future__ import annotations

import argparse
from pathlib import Path

from .verify import verify_file


def register(commands: argparse._SubParsersAction) -> None:
    audit = commands.add_parser("audit", help="check audit logs")
    sub = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    check = sub.add_parser("verify", help="check an audit log's hash chain (edits, truncation)")
    check.add_argument("file", type=Path)
    check.set_defaults(handler=_verify)


def _verify(args: argparse.Namespace) -> int:
    report = verify_file(args.file)
    if report.ok:
        note = f" ({report.note})" if report.note else ""
        print(f"{args.file}: OK, {report.lines} lines, chain intact{note}")
        return 0
    print(f"{args.file}: TAMPERED OR DAMAGED: {report.problem}")
    return 1
