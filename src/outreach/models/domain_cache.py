from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from outreach.models.base import RecordModel


class DomainCache(RecordModel):
    """What DNS said about a mail domain, kept until ``expires_at``."""

    __tablename__ = "domain_cache"

    domain: Mapped[str] = mapped_column(String(255), unique=True)
    # ok | no_mail (no MX, no address) | null_mx | not_found (NXDOMAIN) | error
    status: Mapped[str] = mapped_column(String(20))
    mx_hosts: Mapped[list[str]] = mapped_column(JSON, default=list)
    has_address: Mapped[bool] = mapped_column(default=False)  # A/AAAA used as the fallback
    checked_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
