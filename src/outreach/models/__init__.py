"""Every table, one module per entity, imported here for Alembic and the app."""

from outreach.kit.db import Base
from outreach.models.audit_log import AuditLog
from outreach.models.credit_account import CreditAccount
from outreach.models.failed_job import FailedJob
from outreach.models.idempotency_key import IdempotencyKey
from outreach.models.ledger_entry import LedgerEntry, LedgerReason
from outreach.models.rate_limit_bucket import RateLimitBucket
from outreach.models.referral_reward import ReferralReward
from outreach.models.template import Template, TemplateVersion
from outreach.models.user import User, UserRole
from outreach.models.user_session import UserSession

__all__ = [
    "AuditLog",
    "Base",
    "CreditAccount",
    "FailedJob",
    "IdempotencyKey",
    "LedgerEntry",
    "LedgerReason",
    "RateLimitBucket",
    "ReferralReward",
    "Template",
    "TemplateVersion",
    "User",
    "UserRole",
    "UserSession",
]
