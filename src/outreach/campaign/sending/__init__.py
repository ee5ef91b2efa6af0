"""Sending: prepare drafts, claim due emails under a lease, send each exactly once.

The tick (``campaign.send_due_emails``, every 30 s) first sweeps pending emails
whose preparation stalled (restarted, or failed and refunded past the retry
window), then reconciles emails whose lease expired (a worker died mid-send),
then, mailbox by mailbox,
claims due emails up to what is left of the mailbox's daily cap (counted
from the database, in the mailbox's own day; the mailbox row is locked on
PostgreSQL, and SQLite serialises writers, so several workers never exceed
it), and sends each in its own transaction. A send whose outcome is unknown
is never retried blindly: it is reconciled with the provider first.

Modules: ``messages`` (the exact message), ``preparing`` (drafts, the sweep),
``claiming`` (under a lease and the caps), ``delivery`` (the tick and each send),
``recording`` (outcomes, refunds, retries), ``rules`` (shared limits).
"""

from outreach.campaign.sending.claiming import claim_due_emails, mailbox_day_start
from outreach.campaign.sending.delivery import (
    _load_claimed,
    _reconcile,
    _recover_one,
    _send_claimed,
    recover_expired_leases,
    send_due_emails,
    send_one,
)
from outreach.campaign.sending.messages import build_mime, resume_attachment
from outreach.campaign.sending.preparing import (
    _prepare_one,
    delete_drafts,
    prepare_campaign_emails,
    sweep_unprepared_emails,
)
from outreach.campaign.sending.recording import (
    SentRecorder,
    _fail,
    _finish_sent,
    _record_sent,
    after_sends,
    next_try,
    retry_or_fail,
    retry_window,
)
from outreach.campaign.sending.rules import (
    CLAIM_BATCH,
    LEASE,
    MAX_ATTEMPTS,
    MIN_RETRY_DELAY,
    PREPARE_BATCH,
    SEND_EMAIL_TASK,
)

__all__ = [
    "CLAIM_BATCH",
    "LEASE",
    "MAX_ATTEMPTS",
    "MIN_RETRY_DELAY",
    "PREPARE_BATCH",
    "SEND_EMAIL_TASK",
    "SentRecorder",
    "_fail",
    "_finish_sent",
    "_load_claimed",
    "_prepare_one",
    "_reconcile",
    "_record_sent",
    "_recover_one",
    "_send_claimed",
    "after_sends",
    "build_mime",
    "claim_due_emails",
    "delete_drafts",
    "mailbox_day_start",
    "next_try",
    "prepare_campaign_emails",
    "recover_expired_leases",
    "resume_attachment",
    "retry_or_fail",
    "retry_window",
    "send_due_emails",
    "send_one",
    "sweep_unprepared_emails",
]
