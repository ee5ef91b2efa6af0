from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from outreach.credits.schemas import LedgerEntryOut
from outreach.models import UserRole


class AdminUserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    name: str | None
    role: UserRole
    referral_code: str | None
    created_at: datetime
    last_login_at: datetime | None
    credit_balance: int


class RoleChange(BaseModel):
    role: UserRole


class CreditGrant(BaseModel):
    delta: int = Field(description="Credits to add (positive) or deduct (negative)")
    reason: str = Field(min_length=3, max_length=200, description="Why, kept in the audit log")


class CreditGrantOut(BaseModel):
    entry: LedgerEntryOut
    balance: int


class AuditLogOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_at: datetime
    actor_id: uuid.UUID | None
    action: str
    target_type: str | None
    target_id: str | None
    details: dict[str, Any]
    ip: str | None
    request_id: str | None
