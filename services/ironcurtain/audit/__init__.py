"""Append-only JSON-lines audit logs with a keyed chain, shared by every door."""

from .anchor import Anchor
from .bound import Limits, bounded
from .chain import Report
from .key_files import new_key, read_key, write_key
from .verify import verify_file
from .writer import DEFAULT_MAX_BYTES, DEFAULT_RESERVE_BYTES, AuditError, AuditLog

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_RESERVE_BYTES",
    "Anchor",
    "AuditError",
    "AuditLog",
    "Limits",
    "Report",
    "bounded",
    "new_key",
    "read_key",
    "verify_file",
    "write_key",
]
