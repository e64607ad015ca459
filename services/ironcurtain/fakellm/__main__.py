"""`python -m ironcurtain.fakellm --port 8443 --cert C --key K [--play DIR]`: serve the fake vendor.

With `--play DIR`, Messages requests are answered from DIR/script.json and every request is
recorded to DIR/seen.jsonl (play.py). With `--oauth-seed FILE`, subscription logins are served
(oauth.py): the seeded tokens, refresh grants, tokens living `--oauth-lifetime` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
from pathlib import Path

from . import oauth, play
from .server import FakeVendor


async def _main(args: argparse.Namespace) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    vendor = FakeVendor()
    if args.play is not None:
        vendor.script = play.load(args.play)  # a bad script stops the fake before it listens
        vendor.record_to = args.play / play.RECORD_FILE
    if args.oauth_seed is not None:
        vendor.oauth = oauth.Issuer(lifetime_s=args.oauth_lifetime)
        seed = json.loads(args.oauth_seed.read_text())
        vendor.oauth.seed(seed["access_token"], seed.get("refresh_token"), seed["expires_at_s"])
    port = await vendor.start(context, args.host, args.port)
    print(f"fakellm: listening on {args.host}:{port}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m ironcurtain.fakellm")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument(
        "--oauth-seed",
        type=Path,
        default=None,
        help="JSON {access_token, refresh_token, expires_at_s}: serve subscription logins",
    )
    parser.add_argument(
        "--oauth-lifetime", type=int, default=3600, help="seconds each issued token lives"
    )
    parser.add_argument("--play", type=Path, default=None, help="folder with script.json")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
