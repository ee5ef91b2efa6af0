"""The exact message of a scheduled email, with its resume attached when asked."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from outreach.config import get_settings
from outreach.kit.storage import get_storage
from outreach.kit.unsubscribe import make_unsubscribe_token, unsubscribe_url
from outreach.mailbox.mime import Attachment, EncodedMessage, OutgoingEmail, build_message
from outreach.models import Mailbox
from outreach.models.campaign import ScheduledEmail
from outreach.models.resume import Resume

_CONTENT_TYPES = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}


async def resume_attachment(
    session: AsyncSession, resume_id: uuid.UUID | None
) -> Attachment | None:
    """The resume a campaign attaches (the file as uploaded), or None."""
    if resume_id is None:
        return None
    resume = await session.get(Resume, resume_id)
    if resume is None:
        return None  # deleted since scheduling: send without it rather than not at all
    content = await get_storage().get(resume.file_key)
    return Attachment(
        filename=resume.file_name,
        content=content,
        content_type=_CONTENT_TYPES.get(resume.kind, "application/octet-stream"),
    )


def build_mime(
    email: ScheduledEmail, mailbox: Mailbox, attachment: Attachment | None = None
) -> EncodedMessage:
    """The exact message of ``email``, with our Message-ID and the unsubscribe headers; a
    follow-up answers the step before it (In-Reply-To, and References: the chain)."""
    settings = get_settings()
    token = make_unsubscribe_token(
        secret=settings.secret_key.get_secret_value(),
        sender_id=email.user_id,
        email=email.to_address,
        campaign_id=email.campaign_id,
    )
    links = [unsubscribe_url(settings.base_url, token)]
    if settings.unsubscribe_mailto:
        links.append(f"mailto:{settings.unsubscribe_mailto}?subject=unsubscribe")
    return build_message(
        OutgoingEmail(
            from_address=mailbox.address,
            from_name=mailbox.display_name,
            to_address=email.to_address,
            to_name=email.to_name,
            subject=email.subject,
            text=email.body_text,
            html=email.body_html,
            list_unsubscribe=tuple(links),
            one_click_unsubscribe=True,
            message_id=email.rfc822_message_id,
            in_reply_to=email.in_reply_to,
            references=tuple((email.reference_ids or "").split()),
            attachments=(attachment,) if attachment is not None else (),
        )
    )
