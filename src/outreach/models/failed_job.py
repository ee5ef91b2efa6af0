"""The dead-letter table; defined beside the kit's job runner that writes it."""

from outreach.kit.tables import FailedJob

__all__ = ["FailedJob"]
