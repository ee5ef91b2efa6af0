"""Imports every domain's jobs, so the worker and the API register the same set."""

from outreach.account import tasks as account_tasks  # noqa: F401
from outreach.campaign import tasks as campaign_tasks  # noqa: F401
from outreach.kit import maintenance  # noqa: F401
from outreach.mailbox import tasks as mailbox_tasks  # noqa: F401
from outreach.payment import tasks as payment_tasks  # noqa: F401
from outreach.recipient import tasks as recipient_tasks  # noqa: F401
from outreach.workflow import tasks as workflow_tasks  # noqa: F401
