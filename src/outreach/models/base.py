"""The common base of records; defined in the kit (``kit/tables.py``)."""

from outreach.kit.tables import RecordModel

__all__ = ["RecordModel"]
