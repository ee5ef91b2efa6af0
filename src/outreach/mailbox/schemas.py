from __future__ import annotations

import uuid
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, EmailStr, Field, SecretStr, StrictInt, field_validator

from outreach.kit.text import control_character
from outreach.models import MailboxMode, MailboxProvider, MailboxStatus, SmtpSecurity


def check_timezone(value: str) -> str:
    """An IANA time zone name (``Asia/Kolkata``), not an offset or abbreviation."""
    if "/" not in value and value != "UTC":
        raise ValueError("use an IANA time zone name such as Asia/Kolkata or UTC")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{value!r} is not an IANA time zone") from exc
    return value


def _no_control_characters(value: str | None) -> str | None:
    """A display name goes into every From header: no line break or other control
    character (VT, NEL, U+2028…), which no header may carry."""
    if value is not None and (found := control_character(value)) is not None:
        raise ValueError(f"must not contain {found}")
    return value


class MailboxOut(BaseModel):
    """A mailbox; secrets (tokens, passwords) are never part of it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    provider: MailboxProvider = Field(
        description="gmail, smtp, or outbox (outbox writes .eml files and delivers nothing)"
    )
    mode: MailboxMode | None = Field(description="Gmail only: full (drafts) or send_only")
    address: str
    display_name: str | None
    status: MailboxStatus
    status_reason: str | None
    status_changed_at: datetime | None
    daily_cap: int
    timezone: str
    signature: str | None
    granted_scopes: list[str]
    smtp_host: str | None
    smtp_port: int | None
    smtp_security: SmtpSecurity | None
    smtp_username: str | None
    last_verified_at: datetime | None
    sending_deferred_until: datetime | None
    created_at: datetime
    updated_at: datetime


class MailboxUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(default=None, max_length=200)
    daily_cap: StrictInt | None = Field(default=None, ge=1, le=2000)
    timezone: str | None = Field(default=None, max_length=64, examples=["Asia/Kolkata"])
    signature: str | None = Field(default=None, max_length=10_000)

    _display = field_validator("display_name")(_no_control_characters)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)


class OutboxMailboxCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: EmailStr
    display_name: str | None = Field(default=None, max_length=200)
    timezone: str = Field(default="UTC", max_length=64)

    _display = field_validator("display_name")(_no_control_characters)
    _timezone = field_validator("timezone")(check_timezone)


class SmtpMailboxCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: EmailStr
    display_name: str | None = Field(default=None, max_length=200)
    host: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9.\-:\[\]]+$")
    port: StrictInt = Field(default=587, ge=1, le=65535)
    security: SmtpSecurity = SmtpSecurity.starttls
    username: str = Field(min_length=1, max_length=320)
    password: SecretStr = Field(min_length=1, max_length=1000)
    timezone: str = Field(default="UTC", max_length=64)

    _display = field_validator("display_name")(_no_control_characters)
    _timezone = field_validator("timezone")(check_timezone)


class GmailConnectStart(BaseModel):
    authorization_url: str = Field(description="Send the browser here (Google's consent screen)")
    mode: MailboxMode
    scopes: list[str]
    expires_at: datetime = Field(description="The attempt must finish before this time")


class MailboxRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mailbox_id: uuid.UUID
