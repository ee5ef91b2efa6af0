"""The file outbox: every message written as an ``.eml`` under ``var/outbox/<mailbox id>/``.

The embedded default, so the whole product works without a Google account.
Nothing is delivered: API responses say ``"provider": "outbox"``. Drafts live in
``drafts/``; a sent message is ``<sha256 of its Message-ID>.eml`` so ``find_sent``
can answer exactly.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import uuid
from email import policy
from email.parser import BytesHeaderParser
from pathlib import Path

from outreach.kit.clock import utcnow
from outreach.kit.errors import NotFound
from outreach.mailbox.mime import EncodedMessage
from outreach.mailbox.providers import MailboxProfile
from outreach.models import MailboxProvider

_DRAFT_ID = re.compile(r"^[0-9a-f]{32}$")


class OutboxDraftNotFound(NotFound):
    code, title = "draft_not_found", "No such draft in the outbox"


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def sent_file_name(rfc822_message_id: str) -> str:
    return hashlib.sha256(rfc822_message_id.strip().encode()).hexdigest()[:40] + ".eml"


class OutboxProvider:
    name = MailboxProvider.outbox
    supports_drafts = True
    can_confirm_sends = True
    last_thread_id: str | None = None

    def __init__(self, root: Path, *, address: str) -> None:
        self.root = root
        self.address = address

    def _draft_path(self, draft_id: str) -> Path:
        if not _DRAFT_ID.match(draft_id):
            raise OutboxDraftNotFound(f"no draft {draft_id!r}")
        return self.root / "drafts" / f"{draft_id}.eml"

    def _sent_path(self, rfc822_message_id: str) -> Path:
        return self.root / sent_file_name(rfc822_message_id)

    async def create_draft(self, message: EncodedMessage, *, thread_id: str | None = None) -> str:
        draft_id = uuid.uuid4().hex
        await asyncio.to_thread(_write_atomically, self._draft_path(draft_id), message.data)
        return draft_id

    async def send_draft(self, draft_id: str) -> str:
        path = self._draft_path(draft_id)

        sent_at = utcnow()

        def move() -> str:
            if not path.exists():
                raise OutboxDraftNotFound(f"no draft {draft_id}")
            data = path.read_bytes()
            headers = BytesHeaderParser(policy=policy.SMTP).parsebytes(data)
            message_id = str(headers["Message-ID"])
            # Dated when sent, as a mail client does with a draft; written before the
            # draft goes, so a crash in between leaves it findable by find_sent.
            sent = EncodedMessage(data, message_id, str(headers["From"]), ()).dated(sent_at)
            target = self._sent_path(message_id)
            _write_atomically(target, sent.data)
            path.unlink()
            return f"outbox:{target.name}"

        return await asyncio.to_thread(move)

    async def send(self, message: EncodedMessage, *, thread_id: str | None = None) -> str:
        path = self._sent_path(message.message_id)
        await asyncio.to_thread(_write_atomically, path, message.data)
        return f"outbox:{path.name}"

    async def find_sent(
        self,
        *,
        rfc822_message_id: str,
        draft_id: str | None = None,
        thread_id: str | None = None,
    ) -> str | None:
        path = self._sent_path(rfc822_message_id)
        exists = await asyncio.to_thread(path.exists)
        return f"outbox:{path.name}" if exists else None

    async def verify(self) -> MailboxProfile:
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        return MailboxProfile(
            address=self.address,
            provider=MailboxProvider.outbox,
            detail=f"file outbox at {self.root} (nothing is delivered)",
        )
