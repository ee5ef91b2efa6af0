"""The sending rules every step shares: the lease, attempts, batch sizes."""

from __future__ import annotations

from datetime import timedelta

from outreach.kit.logging import get_logger
from outreach.models.campaign import CampaignStatus

log = get_logger("outreach.sending")

LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 5
PREPARE_BATCH = 50
CLAIM_BATCH = 25
MIN_RETRY_DELAY = timedelta(minutes=1)
# The failed_jobs task name of a send that failed for good (an operator may retry it).
SEND_EMAIL_TASK = "campaign.send_email"
_ACTIVE = (CampaignStatus.scheduled, CampaignStatus.sending)
