"""The policy engine: pure decisions over a policy loaded once from `policy/`."""

from .engine import Engine
from .loader import PolicyError, load_policy, parse_policy
from .model import Call, Decision, Effect, Policy, Role
from .resolver import FsResolver, LexicalResolver, Resolver

__all__ = [
    "Call",
    "Decision",
    "Effect",
    "Engine",
    "FsResolver",
    "LexicalResolver",
    "Policy",
    "PolicyError",
    "Resolver",
    "Role",
    "load_policy",
    "parse_policy",
]
