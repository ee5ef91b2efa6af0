from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from outreach.models import UserRole


class GoogleSignIn(BaseModel):
    credential: str = Field(min_length=10, max_length=8192, description="Google ID token (JWT)")


class DevLogin(BaseModel):
    email: EmailStr
    name: str | None = Field(default=None, max_length=200)


class Onboarding(BaseModel):
    has_paid: bool
    referral_applied: bool
    flags: dict[str, bool] = Field(
        default_factory=dict, description="Progress flags contributed by other domains"
    )


class MailboxProblem(BaseModel):
    """A mailbox that cannot send (revoked or failing): reconnect or fix it."""

    mailbox_id: uuid.UUID
    address: str
    provider: str
    status: str
    reason: str | None
    since: datetime | None


class Me(BaseModel):
    id: uuid.UUID
    email: str
    name: str | None
    picture: str | None
    role: UserRole
    credit_balance: int
    referral_code: str | None
    created_at: datetime
    onboarding: Onboarding
    mailbox_problems: list[MailboxProblem] = Field(
        default_factory=list, description="Mailboxes that need attention (e.g. reconnect Gmail)"
    )


class SignInResult(Me):
    new_user: bool = Field(description="True when this sign-in created the account")


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    name: str | None
    role: UserRole
    created_at: datetime
    last_login_at: datetime | None
