"""Stored idempotent responses; defined beside the kit's helper."""

from outreach.kit.tables import IdempotencyKey

__all__ = ["IdempotencyKey"]
