"""Render haproxy.cfg from the rules. Pure: settings in, text out."""

from __future__ import annotations

from .rules import ApiRange, Backend, Rule, build
from .settings import Settings

LUA_PATH = "/etc/ironcurtain/socketproxy.lua"
HEALTH_PORT = 8404
BUFSIZE = 262144  # an inspect body must fit in one buffer to be stripped; larger ones get a 502
MAX_URL = 8192  # no Docker call needs more; a longer target is answered 414, never forwarded

_REFUSED = (
    "refused by the IronCurtain socket proxy: %[method] %[path] is not allowed "
    "(read-only, exact paths, declared containers only)\\n"
)
_TOO_LONG = (
    f"refused by the IronCurtain socket proxy: the request target is longer than {MAX_URL} bytes\\n"
)
_QUERY = "refused by the IronCurtain socket proxy: %[var(txn.refusal)] (%[method] %[path])\\n"
_UNCHECKED = "refused by the IronCurtain socket proxy: %[method] %[path] has no query check\\n"
_MALFORMED = (
    "refused by the IronCurtain socket proxy: malformed request target "
    "(absolute form, '//', '/.', '%%', or a non-path character)\\n"
)


def _quoted(text: str) -> str:
    """HAProxy's strong quoting: nothing inside single quotes is interpreted."""
    if "'" in text:
        raise ValueError(f"cannot single-quote {text!r}")
    return f"'{text}'"


def _arg(text: str) -> str:
    """A Lua action argument: strongly quoted, '-' standing for an empty one."""
    return _quoted(text or "-")


def _deny(status: int, text: str, condition: str) -> str:
    return (
        f'    http-request deny deny_status {status} content-type text/plain lf-string "{text}"'
        f" {condition}"
    )


def _classify(rule: Rule) -> str:
    methods = " ".join(rule.methods)
    return (
        f"    http-request set-var(txn.rule) str({rule.name}) "
        f"if !{{ var(txn.rule) -m found }} {{ method {methods} }} "
        f"{{ path_reg {_quoted(rule.pattern)} }}"
    )


def _resolve_ids(settings: Settings, rules: tuple[Rule, ...]) -> list[str]:
    """A full-ID rule is re-classified by the engine's answer (or unclassified: refused)."""
    lines = []
    for rule in rules:
        if rule.backend is Backend.BY_ID:
            names = _quoted(",".join(settings.visible))
            lines.append(
                f"    http-request lua.visible_id {names} {_quoted(settings.socket_path)} "
                f"if {{ var(txn.rule) -m str {rule.name} }}"
            )
    return lines


def _server(settings: Settings) -> str:
    return f"    server docker {settings.socket_path}"


def _check_query(settings: Settings, rule: Rule) -> str:
    """Every rule's query is checked and rebuilt by the Lua action, none forwarded raw."""
    args = (rule.spec(), rule.owned_spec(), ",".join(settings.visible), settings.socket_path)
    return (
        f"    http-request lua.query {' '.join(_arg(a) for a in args)} "
        f"if {{ var(txn.rule) -m str {rule.name} }}"
    )


def render(settings: Settings, engine: ApiRange) -> str:
    rules = build(settings, engine)
    lines = [
        "# Rendered at start-up by ironcurtain.socketproxy from the environment; do not edit.",
        "global",
        "    log stdout format raw local0 info",
        "    maxconn 128",
        f"    tune.bufsize {BUFSIZE}",
        f"    lua-load {LUA_PATH}",
        "",
        "defaults",
        "    mode http",
        "    log global",
        "    option httplog",
        "    option dontlognull",
        "    timeout connect 5s",
        "    timeout http-request 10s",
        "    timeout client 1h",
        "    timeout server 60s",
        "",
        "frontend health",
        f"    bind 127.0.0.1:{HEALTH_PORT}",
        "    monitor-uri /healthz",
        "    http-request deny",
        "",
        "frontend docker",
        f"    bind {settings.bind}:{settings.port}",
        # Size first (Tecnativa answers a 60 KB target with 400; we never forward one).
        f"    http-request deny deny_status 414 content-type text/plain "
        f'lf-string "{_TOO_LONG}" if {{ url,length gt {MAX_URL} }}',
        # Shape next: origin-form targets only, and no path a normaliser could reinterpret.
        f'    http-request deny deny_status 403 content-type text/plain lf-string "{_MALFORMED}"'
        " if !{ url_beg / } or { path_sub // } or { path_sub /. } or { path_sub % }"
        " or { path_reg '[^A-Za-z0-9/._-]' }",
        *(_classify(rule) for rule in rules),
        *_resolve_ids(settings, rules),
        _deny(403, _REFUSED, "unless { var(txn.rule) -m found }"),
        *(_check_query(settings, rule) for rule in rules if rule.backend is not Backend.BY_ID),
        _deny(403, _QUERY, "if { var(txn.refusal) -m found }"),
        _deny(403, _UNCHECKED, "unless { var(txn.checked) -m found }"),
    ]
    for backend in (Backend.STREAM, Backend.INSPECT):
        names = " ".join(rule.name for rule in rules if rule.backend is backend)
        if names:
            lines.append(f"    use_backend {backend.value} if {{ var(txn.rule) -m str {names} }}")
    lines += [
        f"    default_backend {Backend.API.value}",
        "",
        f"backend {Backend.API.value}",
        _server(settings),
        "",
        f"backend {Backend.STREAM.value}",
        "    timeout server 1h",
        _server(settings),
        "",
        # Inspect answers carry the container's environment: buffer the whole body, strip every
        # "Env" array, answer with the result; a body it cannot parse whole is refused (502).
        f"backend {Backend.INSPECT.value}",
        "    http-response wait-for-body time 10s if { status 200 }",
        "    http-response lua.inspect_reply if { status 200 }",
        _server(settings),
        "",
    ]
    return "\n".join(lines)
