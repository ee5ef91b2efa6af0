"""The audit log table; defined beside the kit's helper that writes it."""

from outreach.kit.tables import AuditLog

__all__ = ["AuditLog"]
