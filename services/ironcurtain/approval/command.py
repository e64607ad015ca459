"""`ironcurtain escalations | show ID | approve ID | deny ID | history | revoke SCOPE_ID`: decide
from a terminal, via the API, with the member's own token: a file in their state folder
(`ironcurtain shared login` writes it, 0600) or the file given by `--token-file`; never an
environment variable. What is shown is formatted (and neutralised) by `terminal`."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import urllib.parse
from pathlib import Path
from typing import Any

from ..escalation import terminal, tls
from ..people.client import DEFAULT_PORT, ApiError, Client, add_ca_option
from ..people.tokens import TokenError, read
from ..state import member_token_file

EXIT_REFUSED = 1
EXIT_UNREACHABLE = 2
LIST_SCOPES = object()  # `--remember` given without a scope id: list the offered ones


def register(commands: argparse._SubParsersAction) -> None:
    listing = commands.add_parser("escalations", help="list pending escalations")
    _common(listing)
    listing.set_defaults(handler=_list)
    show = commands.add_parser("show", help="everything of one escalation")
    show.add_argument("id", help="the escalation id (see `ironcurtain escalations`)")
    _common(show)
    show.set_defaults(handler=_show)
    past = commands.add_parser("history", help="decided escalations, newest first")
    past.add_argument("--session", default="", help="only this session's")
    past.add_argument("--limit", type=int, default=50, help="at most this many (%(default)s)")
    _common(past)
    past.set_defaults(handler=_history)
    revoke = commands.add_parser("revoke", help="forget a remembered scope")
    revoke.add_argument("scope", metavar="SCOPE_ID", help="the scope id (see `history`, web UI)")
    revoke.add_argument(
        "--session", default="", help="the session remembering it (found if omitted)"
    )
    _common(revoke)
    revoke.set_defaults(handler=_revoke)
    for action in ("approve", "deny"):
        parser = commands.add_parser(action, help=f"{action} a pending escalation")
        parser.add_argument("id", help="the escalation id (see `ironcurtain escalations`)")
        parser.add_argument("--reason", default="", help="why (kept in the history and audit)")
        if action == "approve":
            parser.add_argument(
                "--remember",
                nargs="?",
                const=LIST_SCOPES,
                default="",
                metavar="SCOPE_ID",
                help="also allow similar calls for the rest of the session: a scope id offered "
                "for this escalation; without one, list the offered scopes and decide nothing",
            )
            parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
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
    add_ca_option(parser)


def _client(args: argparse.Namespace) -> Client:
    try:
        token = read(args.token_file)
    except (OSError, TokenError) as exc:
        raise SystemExit(
            f"ironcurtain: cannot read your member token: {exc}; run `ironcurtain shared login` "
            "or pass --token-file"
        ) from None
    try:
        return Client(args.url, token, context=tls.https_context(args.url, args.ca))
    except OSError as exc:  # ssl.SSLError included
        raise SystemExit(f"ironcurtain: the CA {args.ca}: {exc}") from None


def _list(args: argparse.Namespace) -> int:
    try:
        pending = _client(args).pending()
    except ApiError as exc:
        print(f"escalations: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE if exc.status == 0 else EXIT_REFUSED
    if not pending:
        print("no pending escalations")
        return 0
    width = _width()
    for e in pending:
        print(terminal.summary(e, width))
    return 0


def _width() -> int:
    return shutil.get_terminal_size((120, 24)).columns


def _refused(command: str, exc: ApiError) -> int:
    print(f"{command}: refused: {terminal.neutral(str(exc))}", file=sys.stderr)
    return EXIT_UNREACHABLE if exc.status == 0 else EXIT_REFUSED


def _escalation_path(escalation_id: str) -> str:
    return f"/api/v1/escalations/{urllib.parse.quote(escalation_id, safe='')}"


def _show(args: argparse.Namespace) -> int:
    try:
        found = _client(args).call("GET", _escalation_path(args.id))
    except ApiError as exc:
        return _refused("show", exc)
    for line in terminal.detail(found["escalation"], found.get("choices") or [], found["decision"]):
        print(line)
    return 0


def _decide(args: argparse.Namespace) -> int:
    """An approval is bound to the escalation as fetched here (its digest), whether it was
    shown and confirmed or `--yes` skipped that: the service refuses if it changed since."""
    client = _client(args)
    remember = getattr(args, "remember", "")
    digest = None
    if args.action == "approve":
        try:
            found = client.call("GET", _escalation_path(args.id))
        except ApiError as exc:
            return _refused(args.action, exc)
        choices: list[dict[str, Any]] = found.get("choices") or []
        if remember is LIST_SCOPES:
            return _list_scopes(args.id, choices)
        if not args.yes and not _confirmed(found["escalation"], choices, remember):
            return EXIT_REFUSED
        digest = str(found["escalation"].get("digest") or "")
        if not digest:  # an invalid record: the service refuses it, and says why
            digest = None
    try:
        result = client.decide(
            args.id, args.action, reason=args.reason, remember=remember, digest=digest
        )
    except ApiError as exc:
        return _refused(args.action, exc)
    print(f"{args.action}: {terminal.neutral(str(result['message']))}")
    return 0


def _list_scopes(escalation_id: str, choices: list[dict[str, Any]]) -> int:
    if not choices:
        print(f"no remember scopes are offered for {terminal.neutral(escalation_id)}")
        return EXIT_REFUSED
    print("remember scopes offered (approve ID --remember SCOPE_ID):")
    for choice in choices:
        print(terminal.scope_line(choice))
    return 0


def _confirmed(escalation: dict[str, Any], choices: list[dict[str, Any]], remember: str) -> bool:
    """Show what is approved and read y/N from the terminal; never guess without one."""
    if not sys.stdin.isatty():
        print(
            "approve: refused: stdin is not a terminal, so there is nobody to confirm; "
            "pass --yes to approve without confirmation",
            file=sys.stderr,
        )
        return False
    print(terminal.summary(escalation, _width()))
    print(terminal.labels_line(escalation))  # as registered; a differing claim marked
    print(
        f"rule {terminal.neutral(str(escalation.get('rule', '')))}: "
        f"{terminal.neutral(str(escalation.get('reason', '')))}"
    )
    if remember:
        offered = [c for c in choices if c.get("id") == remember]
        if not offered:
            print(
                f"approve: refused: scope {terminal.neutral(remember)} is not offered for this "
                "escalation (see --remember without a value)",
                file=sys.stderr,
            )
            return False
        print("and remember:" + terminal.scope_line(offered[0]))
    try:
        answer = input("approve? [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        print("approve: not approved (nothing was decided)", file=sys.stderr)
        return False
    return True


def _history(args: argparse.Namespace) -> int:
    query = f"?session={urllib.parse.quote(args.session, safe='')}" if args.session else ""
    try:
        entries = _client(args).call("GET", "/api/v1/history" + query)["history"]
    except ApiError as exc:
        return _refused("history", exc)
    if not entries:
        print("no decided escalations")
        return 0
    width = _width()
    for entry in entries[: max(args.limit, 0)]:
        print(terminal.history_line(entry, width))
    return 0


def _revoke(args: argparse.Namespace) -> int:
    client = _client(args)
    session = args.session
    try:
        if not session:
            holders = [
                s["session_id"]
                for s in client.call("GET", "/api/v1/sessions")["sessions"]
                if any(r.get("id") == args.scope for r in s.get("remembered") or [])
            ]
            scope = terminal.neutral(args.scope)
            if not holders:
                print(f"revoke: refused: no session remembers scope {scope}", file=sys.stderr)
                return EXIT_REFUSED
            if len(holders) > 1:
                names = ", ".join(terminal.neutral(h) for h in holders)
                print(
                    f"revoke: refused: sessions {names} all remember scope {scope}; pass --session",
                    file=sys.stderr,
                )
                return EXIT_REFUSED
            session = holders[0]
        path = (
            f"/api/v1/sessions/{urllib.parse.quote(session, safe='')}/remembered/"
            f"{urllib.parse.quote(args.scope, safe='')}"
        )
        client.call("DELETE", path)
    except ApiError as exc:
        return _refused("revoke", exc)
    print(
        f"revoke: scope {terminal.neutral(args.scope)} of session {terminal.neutral(session)} "
        "revoked; similar calls will ask a human again"
    )
    return 0


def _auto_review(args: argparse.Namespace) -> int:
    path = f"/api/v1/sessions/{urllib.parse.quote(args.session, safe='')}/auto-review"
    try:
        if args.state is None:
            result = _client(args).call("GET", path)
        else:
            result = _client(args).call("PUT", path, {"on": args.state == "on"})
    except ApiError as exc:
        return _refused("auto-review", exc)
    state = "on" if result["on"] else "off"
    print(f"auto-review for session '{terminal.neutral(args.session)}': {state}")
    return 0
