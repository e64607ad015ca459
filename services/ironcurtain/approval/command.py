"""`ironcurtain escalations | approve ID | deny ID`: decide from a terminal, via the API, with the
member's own token: a file in their state folder (`ironcurtain shared login` writes it, 0600) or
the file given by `--token-file`; never an environment variable."""

from __future__ import annotations

import argparse
import os
import sys
import urllib.parse
from pathlib import Path

from .client import ApiError, Client
from .secret import TokenError, read
from .settings import DEFAULT_PORT, state_dir

EXIT_REFUSED = 1
EXIT_UNREACHABLE = 2


def member_token_file() -> Path:
    return state_dir() / "member_token"


def register(commands: argparse._SubParsersAction) -> None:
    listing = commands.add_parser("escalations", help="list pending escalations")
    _common(listing)
    listing.set_defaults(handler=_list)
    for action in ("approve", "deny"):
        parser = commands.add_parser(action, help=f"{action} a pending escalation")
        parser.add_argument("id", help="the escalation id (see `ironcurtain escalations`)")
        parser.add_argument("--reason", default="", help="why (kept in the history and audit)")
        if action == "approve":
            parser.add_argument(
                "--remember",
                default="",
                metavar="SCOPE_ID",
                help="also allow similar calls for the rest of the session (a scope id from "
                "the escalation's choices, shown in the web UI and the API)",
            )
        _common(parser)
        parser.set_defaults(handler=_decide, action=action)
    review = commands.add_parser(
        "auto-review", help="show or switch a session's auto-reviewer (off by default)"
    )
    review.add_argument("session", help="the session id (see the approval UI's sessions)")
    review.add_argument("state", nargs="?", choices=("on", "off"), help="omit to show it")
    _common(review)
    review.set_defaults(handler=_auto_review)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("IRONCURTAIN_APPROVAL_URL", f"http://127.0.0.1:{DEFAULT_PORT}"),
        help="the approval service (default: $IRONCURTAIN_APPROVAL_URL or %(default)s)",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        default=member_token_file(),
        help="file holding your member token (default: %(default)s, written by "
        "`ironcurtain shared login`)",
    )


def _client(args: argparse.Namespace) -> Client:
    try:
        return Client(args.url, read(args.token_file))
    except (OSError, TokenError) as exc:
        raise SystemExit(
            f"ironcurtain: cannot read your member token: {exc}; run `ironcurtain shared login` "
            "or pass --token-file"
        ) from None


def _list(args: argparse.Namespace) -> int:
    try:
        pending = _client(args).pending()
    except ApiError as exc:
        print(f"escalations: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE if exc.status == 0 else EXIT_REFUSED
    if not pending:
        print("no pending escalations")
        return 0
    for e in pending:
        # repr() of hostile text keeps control characters out of the terminal.
        print(
            f"{e['id']}  {e['created']}  {e['left']:>8}  {e['session_id']!r}  {e['call']!r}  "
            f"rule {e['rule']!r}: {e['reason']!r}"
        )
    return 0


def _decide(args: argparse.Namespace) -> int:
    try:
        result = _client(args).decide(
            args.id,
            args.action,
            reason=args.reason,
            remember=getattr(args, "remember", ""),
        )
    except ApiError as exc:
        print(f"{args.action}: refused: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE if exc.status == 0 else EXIT_REFUSED
    print(f"{args.action}: {result['message']}")
    return 0


def _auto_review(args: argparse.Namespace) -> int:
    path = f"/api/v1/sessions/{urllib.parse.quote(args.session, safe='')}/auto-review"
    try:
        if args.state is None:
            result = _client(args).call("GET", path)
        else:
            result = _client(args).call("PUT", path, {"on": args.state == "on"})
    except ApiError as exc:
        print(f"auto-review: refused: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE if exc.status == 0 else EXIT_REFUSED
    print(f"auto-review for session {args.session!r}: {'on' if result['on'] else 'off'}")
    return 0
