"""`ironcurtain ca init` and `ironcurtain mitm serve|fake-key`."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from . import ca, providers
from .fake_keys import new_fake_key


def register(commands: argparse._SubParsersAction) -> None:
    ca_parser = commands.add_parser("ca", help="the MITM proxy's certificate authority")
    ca_sub = ca_parser.add_subparsers(dest="ca_command", required=True)
    init = ca_sub.add_parser("init", help="create the CA (key 0600), limited to provider hosts")
    init.add_argument("--dir", type=Path, default=Path("ca"), help="where to write (default: ca/)")
    init.add_argument("--providers", type=Path, help="extra providers file (YAML/JSON)")
    init.add_argument(
        "--host",
        action="append",
        default=[],
        help="also allow this host (repeatable): the package registries' hosts",
    )
    init.add_argument("--days", type=int, default=365, help="CA lifetime in days (default 365)")
    init.set_defaults(handler=_ca_init)

    mitm = commands.add_parser("mitm", help="the MITM proxy for LLM traffic")
    mitm_sub = mitm.add_subparsers(dest="mitm_command", required=True)
    serve = mitm_sub.add_parser("serve", help="run the proxy")
    serve.add_argument("--config", type=Path, required=True, help="settings file (YAML/JSON)")
    serve.set_defaults(handler=_serve)
    adopted = mitm_sub.add_parser(
        "registries",
        help="show the package registries adopted from this host's pip, npm and apt config",
    )
    adopted.add_argument(
        "--config", type=Path, help="YAML with adopt/add/remove (see docs/registries.md)"
    )
    adopted.set_defaults(handler=_registries)
    fake = mitm_sub.add_parser("fake-key", help="print a new fake key for a provider")
    fake.add_argument("provider")
    fake.add_argument("--providers", type=Path, help="extra providers file (YAML/JSON)")
    fake.set_defaults(handler=_fake_key)


def _ca_init(args: argparse.Namespace) -> int:
    import datetime as dt

    try:
        known = providers.load(args.providers)
        hosts = sorted({h for p in known.values() for h in p.hosts} | set(args.host))
        cert = ca.init(args.dir, hosts, dt.timedelta(days=args.days))
    except (ca.CAError, providers.ConfigError) as exc:
        print(f"ca: error: {exc}")
        return 1
    print(f"ca: wrote {cert} (valid for {args.days} days, limited to {', '.join(hosts)})")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from ..audit import AuditError
    from ..audit.key_files import KeyFileError
    from . import settings as settings_mod
    from .app import serve

    try:
        settings = settings_mod.load(args.config)
        asyncio.run(serve(settings))
    except (providers.ConfigError, ca.CAError, KeyFileError, AuditError) as exc:
        print(f"mitm: error: {exc}")
        return 1
    return 0


def _fake_key(args: argparse.Namespace) -> int:
    known = providers.load(args.providers)
    if args.provider not in known:
        print(f"mitm: unknown provider {args.provider!r}; have {', '.join(sorted(known))}")
        return 2
    print(new_fake_key(known[args.provider].key_prefix))
    return 0


def _registries(args: argparse.Namespace) -> int:
    import json

    import yaml

    from . import host_registries, registries

    try:
        config = yaml.safe_load(args.config.read_text()) if args.config else None
        chosen = registries.plan(host_registries.adopt_from_host(), config)
    except (OSError, yaml.YAMLError, providers.ConfigError) as exc:
        print(f"mitm: error: {exc}")
        return 1
    print(
        json.dumps(
            {
                "registries": {"list": registries.to_config(chosen)},
                "agent_environment": registries.agent_environment(chosen),
                "ca_hosts": sorted({r.host for r in chosen}),
            },
            indent=2,
        )
    )
    return 0
