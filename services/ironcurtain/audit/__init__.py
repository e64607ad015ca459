"""Append-only, hash-chained JSON-lines audit logs, shared by every door."""

from .chain import Report
from .verify import verify_file
from .writer import AuditError, AuditLog

__all__ = ["AuditError", "AuditLog", "Report", "verify_file"]
