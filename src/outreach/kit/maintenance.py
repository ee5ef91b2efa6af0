"""Housekeeping jobs of the kit itself."""

from __future__ import annotations

from outreach.kit.db import get_database
from outreach.kit.idempotency import delete_expired_keys
from outreach.kit.jobs import job
from outreach.kit.logging import get_logger

log = get_logger("outreach.maintenance")


@job("kit.delete_expired_idempotency_keys", cron="17 * * * *")
async def delete_expired_idempotency_keys() -> int:
    """Hourly: drop stored idempotent responses older than their time to live."""
    async with get_database().session() as session:
        deleted = await delete_expired_keys(session)
    log.info("expired idempotency keys deleted", count=deleted)
    return deleted
