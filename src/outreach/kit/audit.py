"""The audit trail: one helper that every domain calls for actions worth keeping."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from outreach.kit.middleware import current_request
from outreach.kit.tables import AuditLog


async def record_audit(
    session: AsyncSession,
    *,
    action: str,
    actor_id: uuid.UUID | None,
    target_type: str | None = None,
    target_id: object | None = None,
    details: dict[str, Any] | None = None,
) -> AuditLog:
    """Add an audit row in the caller's transaction; IP and request id come from
    the current request when there is one."""
    request = current_request.get()
    entry = AuditLog(
        actor_id=actor_id,
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        details=details or {},
        ip=request.ip if request else None,
        request_id=request.request_id if request else None,
    )
    session.add(entry)
    await session.flush()
    return entry
