"""Every table, one module per entity, imported here for Alembic and the app."""

from outreach.kit.db import Base
from outreach.models.audit_log import AuditLog
from outreach.models.campaign import (
    Campaign,
    CampaignStatus,
    CampaignStep,
    EmailStatus,
    ScheduledEmail,
)
from outreach.models.credit_account import CreditAccount
from outreach.models.domain_cache import DomainCache
from outreach.models.email_event import EmailEvent, EmailEventKind, EmailEventSource
from outreach.models.email_verification import (
    EmailVerification,
    VerificationJob,
    VerificationJobKind,
    VerificationJobStatus,
)
from outreach.models.failed_job import FailedJob
from outreach.models.idempotency_key import IdempotencyKey
from outreach.models.ledger_entry import LedgerEntry, LedgerReason
from outreach.models.mailbox import (
    Mailbox,
    MailboxMode,
    MailboxProvider,
    MailboxStatus,
    SmtpSecurity,
)
from outreach.models.payment_order import PaymentOrder, PaymentOrderStatus
from outreach.models.rate_limit_bucket import RateLimitBucket
from outreach.models.recipient import Recipient, VerificationStatus
from outreach.models.recipient_list import ListKind, ListStatus, RecipientImportError, RecipientList
from outreach.models.referral_reward import ReferralReward
from outreach.models.resume import Resume
from outreach.models.resume_analysis import ResumeAnalysis
from outreach.models.suppression import (
    GLOBAL_OWNER,
    Suppression,
    SuppressionReason,
    SuppressionScope,
)
from outreach.models.system_recipient import SystemRecipient
from outreach.models.template import Template, TemplateVersion
from outreach.models.user import User, UserRole
from outreach.models.user_session import UserSession
from outreach.models.webhook_event import WebhookEvent, WebhookEventStatus

__all__ = [
    "GLOBAL_OWNER",
    "AuditLog",
    "Base",
    "Campaign",
    "CampaignStatus",
    "CampaignStep",
    "CreditAccount",
    "DomainCache",
    "EmailEvent",
    "EmailEventKind",
    "EmailEventSource",
    "EmailStatus",
    "EmailVerification",
    "FailedJob",
    "IdempotencyKey",
    "LedgerEntry",
    "LedgerReason",
    "ListKind",
    "ListStatus",
    "Mailbox",
    "MailboxMode",
    "MailboxProvider",
    "MailboxStatus",
    "PaymentOrder",
    "PaymentOrderStatus",
    "RateLimitBucket",
    "Recipient",
    "RecipientImportError",
    "RecipientList",
    "ReferralReward",
    "Resume",
    "ResumeAnalysis",
    "ScheduledEmail",
    "SmtpSecurity",
    "Suppression",
    "SuppressionReason",
    "SuppressionScope",
    "SystemRecipient",
    "Template",
    "TemplateVersion",
    "User",
    "UserRole",
    "UserSession",
    "VerificationJob",
    "VerificationJobKind",
    "VerificationJobStatus",
    "VerificationStatus",
    "WebhookEvent",
    "WebhookEventStatus",
]
