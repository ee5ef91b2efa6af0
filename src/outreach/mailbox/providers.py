"""The one interface campaigns send through, whatever the mailbox is.

Get one with ``await mailbox_service.provider_for(session, mailbox)``; then::

    draft_id = await provider.create_draft(message)     # when provider.supports_drafts
    message_id = await provider.send_draft(draft_id)
    message_id = await provider.send(message)           # send-only Gmail, SMTP, outbox
    message_id = await provider.find_sent(rfc822_message_id=..., draft_id=..., thread_id=...)
    # Gmail: provider.last_thread_id after create_draft / send_draft / send is the
    # message's thread (None for other providers); store it with the email: find_sent
    # looks in that thread first.
    profile = await provider.verify()

``message`` is an :class:`outreach.mailbox.mime.EncodedMessage` from
:func:`outreach.mailbox.mime.build_message` (or stored at schedule time).
Errors a caller should expect (all ``kit.errors`` subclasses):

- :class:`MailboxUnavailable` (``mailbox_revoked`` / ``mailbox_unavailable``): the
  mailbox was marked revoked in the caller's session (commit it) and the
  mailbox-unavailable hook has run; stop using this mailbox.
- :class:`SendOutcomeUnknown`: a send timed out or failed with a 5xx; it may have gone
  out. Never resend blindly: reconcile with ``find_sent`` when ``can_confirm_sends``,
  otherwise record the email as ``unknown``.
- :class:`NothingSent`: the call failed before any byte of it left the process (the
  access token could not be refreshed, the server refused the connection or its name
  did not resolve, the SMTP login or a temporary RCPT refusal): safe to try again later.
- :class:`MessageRefused`: the provider refused this message for good (Gmail 4xx other
  than 401/429 and rate limits, SMTP 5xx): end the email with the provider's reason.
- :class:`outreach.mailbox.gmail.GmailDailyLimitExceeded`: carries ``retry_at`` (the
  mailbox's next local day); :class:`outreach.mailbox.gmail.GmailRateLimited`: retry later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from outreach.kit.errors import Conflict, ServiceUnavailable, Unprocessable
from outreach.mailbox.mime import EncodedMessage
from outreach.models import MailboxProvider


class MailboxUnavailable(Conflict):
    code, title = "mailbox_unavailable", "This mailbox cannot send right now"


class MailboxRevoked(MailboxUnavailable):
    code, title = "mailbox_revoked", "Access to this mailbox was revoked; reconnect it"


class SendOutcomeUnknown(ServiceUnavailable):
    code, title = "send_outcome_unknown", "The send may or may not have happened"


class NothingSent(ServiceUnavailable):
    """Failed before any byte of the call left the process: retrying cannot duplicate."""

    code, title = "nothing_sent", "The provider could not be reached; nothing was sent"


class MessageRefused(Unprocessable):
    """The provider answered that it will never take this message (the reason says why)."""

    code, title = "message_refused", "The provider refused this message"


class RecipientBounced(MessageRefused):
    """The recipient's server refused the address or the message for good while we
    delivered it (an SMTP 5xx at RCPT or DATA): nothing was delivered, and it is a bounce."""

    code, title = "recipient_bounced", "The recipient's server refused the message"


class DraftsNotSupported(Conflict):
    code, title = "drafts_not_supported", "This mailbox cannot hold drafts"


class SendsNotConfirmable(Conflict):
    code, title = "sends_not_confirmable", "This mailbox cannot confirm past sends"


@dataclass(frozen=True)
class MailboxProfile:
    """Who the provider says we are sending as."""

    address: str
    provider: MailboxProvider
    detail: str  # human-readable: "Gmail profile", "SMTP login accepted", "file outbox"


class MailProvider(Protocol):
    """Small on purpose: what sending needs and nothing more."""

    name: MailboxProvider
    supports_drafts: bool  # create_draft/send_draft work (Gmail in full mode, outbox)
    can_confirm_sends: bool  # find_sent can tell whether a message went out
    last_thread_id: str | None  # the thread of the last draft or message (Gmail only)

    async def create_draft(self, message: EncodedMessage, *, thread_id: str | None = None) -> str:
        """Store the message as a draft (in Gmail's ``thread_id`` when given: a follow-up);
        returns the draft id."""
        ...

    async def send_draft(self, draft_id: str) -> str:
        """Send a stored draft; returns the provider's message id."""
        ...

    async def send(self, message: EncodedMessage, *, thread_id: str | None = None) -> str:
        """Send a message directly (in Gmail's ``thread_id`` when given); returns the
        provider's message id. Providers without threads ignore ``thread_id``: the
        message's In-Reply-To and References thread it for the recipient."""
        ...

    async def find_sent(
        self,
        *,
        rfc822_message_id: str,
        draft_id: str | None = None,
        thread_id: str | None = None,
    ) -> str | None:
        """The provider's message id of a sent message, or None when it was not sent.

        Raises :class:`SendsNotConfirmable` when ``can_confirm_sends`` is False.
        """
        ...

    async def verify(self) -> MailboxProfile:
        """Check the mailbox still works (profile call, login, folder)."""
        ...
