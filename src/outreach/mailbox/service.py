"""Mailboxes: CRUD, tokens (encrypted, refreshed, revoked), and the provider for a mailbox.

Gmail connection (OAuth) lives in ``connect.py``; this module owns the rows.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import datetime, timedelta
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from outreach.auth.schemas import MailboxProblem
from outreach.auth.views import register_mailbox_problems, register_onboarding_flag
from outreach.config import Settings, get_settings
from outreach.kit.audit import record_audit
from outreach.kit.clock import utcnow
from outreach.kit.crypto import decrypt_hot_secret, decrypt_secret, encrypt_secret, rotate_secret
from outreach.kit.db import in_session
from outreach.kit.errors import Forbidden, NotFound
from outreach.kit.pagination import Pagination, paginate
from outreach.mailbox import repository
from outreach.mailbox.events import MailboxUnavailableEvent, emit_mailbox_unavailable
from outreach.mailbox.gmail import GmailClient, GmailProvider, QuotaBudget
from outreach.mailbox.http import google_http
from outreach.mailbox.oauth import GoogleOAuth, GoogleOAuthUnavailable, InvalidGrant
from outreach.mailbox.outbox import OutboxProvider
from outreach.mailbox.providers import MailboxRevoked, MailboxUnavailable, MailProvider
from outreach.mailbox.schemas import MailboxUpdate, OutboxMailboxCreate, SmtpMailboxCreate
from outreach.mailbox.smtp import SmtpProvider, SmtpSettings
from outreach.models import Mailbox, MailboxMode, MailboxProvider, MailboxStatus, User

REFRESH_MARGIN = timedelta(minutes=5)


class MailboxNotFound(NotFound):
    code, title = "mailbox_not_found", "No such mailbox"


class OutboxNotAllowed(Forbidden):
    code, title = "outbox_not_allowed", "File outbox mailboxes are disabled on this server"


class NotAGmailMailbox(NotFound):
    code, title = "not_a_gmail_mailbox", "This mailbox is not a Gmail mailbox"


def outbox_allowed(settings: Settings) -> bool:
    if settings.allow_outbox_mailboxes is None:
        return settings.is_development
    return settings.allow_outbox_mailboxes


def smtp_private_hosts_allowed(settings: Settings) -> bool:
    if settings.smtp_allow_private_hosts is None:
        return settings.is_development
    return settings.smtp_allow_private_hosts


def next_local_day(mailbox: Mailbox, now: datetime | None = None) -> datetime:
    """Midnight starting the mailbox's next day, in its time zone (as UTC)."""
    zone = ZoneInfo(mailbox.timezone)
    local = (now or utcnow()).astimezone(zone)
    tomorrow = (local + timedelta(days=1)).date()
    return datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=zone).astimezone(
        utcnow().tzinfo
    )


_budgets: dict[float, QuotaBudget] = {}


def gmail_budget(settings: Settings) -> QuotaBudget:
    """The process's per-mailbox quota budget (one per configured rate)."""
    rate = float(settings.gmail_quota_units_per_second)
    return _budgets.setdefault(rate, QuotaBudget(rate))


class MailboxService:
    # -- reading --------------------------------------------------------------------

    async def list_mailboxes(
        self, session: AsyncSession, *, user: User, pagination: Pagination
    ) -> tuple[list[Mailbox], str | None]:
        """The user's mailboxes, newest first."""
        return await paginate(
            session,
            repository.get_readable_statement(user),
            pagination,
            created_at=Mailbox.created_at,
            id_column=Mailbox.id,
        )

    async def get_mailbox(
        self, session: AsyncSession, *, user: User, mailbox_id: uuid.UUID
    ) -> Mailbox:
        """The user's mailbox; another user's is a 404 like a missing one."""
        mailbox = await repository.get_for_user(session, user, mailbox_id)
        if mailbox is None:
            raise MailboxNotFound(f"no mailbox {mailbox_id}")
        return mailbox

    async def get_gmail_mailbox(
        self, session: AsyncSession, *, user: User, mailbox_id: uuid.UUID
    ) -> Mailbox:
        mailbox = await self.get_mailbox(session, user=user, mailbox_id=mailbox_id)
        if mailbox.provider != MailboxProvider.gmail:
            raise NotAGmailMailbox(f"mailbox {mailbox_id} is a {mailbox.provider} mailbox")
        return mailbox

    async def mailbox_problems(self, session: AsyncSession, user: User) -> list[MailboxProblem]:
        """Mailboxes that cannot send, for ``/v1/auth/me``."""
        return [
            MailboxProblem(
                mailbox_id=m.id,
                address=m.address,
                provider=m.provider.value,
                status=m.status.value,
                reason=m.status_reason,
                since=m.status_changed_at,
            )
            for m in await repository.list_with_problems(session, user.id)
        ]

    async def has_connected_mailbox(self, session: AsyncSession, user: User) -> bool:
        return await repository.has_active(session, user.id)

    async def active_mailboxes(self, session: AsyncSession, user: User) -> list[Mailbox]:
        """The user's mailboxes that can send, oldest first."""
        return await repository.list_active(session, user.id)

    # -- changing -------------------------------------------------------------------

    async def update_mailbox(
        self, session: AsyncSession, *, user: User, mailbox_id: uuid.UUID, changes: MailboxUpdate
    ) -> Mailbox:
        """Daily cap, time zone, signature, display name (only the fields given)."""
        mailbox = await self.get_mailbox(session, user=user, mailbox_id=mailbox_id)
        values = changes.model_dump(exclude_unset=True)
        for field in ("daily_cap", "timezone"):
            if field in values and values[field] is None:
                values.pop(field)  # null means "leave as is" for required settings
        for field, value in values.items():
            setattr(mailbox, field, value)
        await session.flush()
        await record_audit(
            session,
            action="mailbox.updated",
            actor_id=user.id,
            target_type="mailbox",
            target_id=mailbox.id,
            details={"fields": sorted(values)},
        )
        return mailbox

    async def delete_mailbox(
        self, session: AsyncSession, *, user: User, mailbox_id: uuid.UUID
    ) -> None:
        """Delete the mailbox (a Gmail grant is revoked at Google first, best effort)."""
        mailbox = await self.get_mailbox(session, user=user, mailbox_id=mailbox_id)
        await self._revoke_at_google(mailbox)
        await emit_mailbox_unavailable(
            session,
            MailboxUnavailableEvent(
                mailbox_id=mailbox.id,
                user_id=mailbox.user_id,
                status=MailboxStatus.revoked,
                reason="deleted by the user",
            ),
        )
        await record_audit(
            session,
            action="mailbox.deleted",
            actor_id=user.id,
            target_type="mailbox",
            target_id=mailbox.id,
            details={"provider": mailbox.provider.value, "address": mailbox.address},
        )
        await session.delete(mailbox)
        await session.flush()

    async def create_outbox_mailbox(
        self, session: AsyncSession, *, user: User, data: OutboxMailboxCreate
    ) -> Mailbox:
        """A file outbox mailbox (development, or when explicitly enabled)."""
        if not outbox_allowed(get_settings()):
            raise OutboxNotAllowed(
                "outbox mailboxes deliver nothing; enable them with "
                "OUTREACH_ALLOW_OUTBOX_MAILBOXES=true or run in development"
            )
        address = str(data.address).lower()
        mailbox = await repository.get_by_address(session, user.id, address, MailboxProvider.outbox)
        if mailbox is None:
            mailbox = Mailbox(user_id=user.id, provider=MailboxProvider.outbox, address=address)
            session.add(mailbox)
        mailbox.display_name = data.display_name
        mailbox.timezone = data.timezone
        self._set_status(mailbox, MailboxStatus.active, None)
        mailbox.last_verified_at = utcnow()
        await session.flush()
        await self._audit_connected(session, user, mailbox)
        return mailbox

    async def create_smtp_mailbox(
        self, session: AsyncSession, *, user: User, data: SmtpMailboxCreate
    ) -> Mailbox:
        """An SMTP mailbox, saved only after a real login with the given credentials."""
        settings = get_settings()
        address = str(data.address).lower()
        smtp = SmtpSettings(
            host=data.host,
            port=data.port,
            security=data.security,
            username=data.username,
            password=data.password.get_secret_value(),
            timeout=settings.smtp_timeout_seconds,
            allow_private=smtp_private_hosts_allowed(settings),
            ca_file=settings.smtp_ca_file,
        )
        await SmtpProvider(smtp, address=address).verify()
        mailbox = await repository.get_by_address(session, user.id, address, MailboxProvider.smtp)
        if mailbox is None:
            mailbox = Mailbox(user_id=user.id, provider=MailboxProvider.smtp, address=address)
            session.add(mailbox)
        mailbox.display_name = data.display_name
        mailbox.timezone = data.timezone
        mailbox.smtp_host, mailbox.smtp_port = data.host, data.port
        mailbox.smtp_security, mailbox.smtp_username = data.security, data.username
        mailbox.smtp_password_encrypted = encrypt_secret(smtp.password)
        self._set_status(mailbox, MailboxStatus.active, None)
        mailbox.last_verified_at = utcnow()
        await session.flush()
        await self._audit_connected(session, user, mailbox)
        return mailbox

    async def store_gmail_grant(
        self,
        session: AsyncSession,
        *,
        user: User,
        address: str,
        mode: MailboxMode,
        google_sub: str | None,
        refresh_token: str,
        access_token: str,
        expires_in: int,
        scopes: list[str],
    ) -> Mailbox:
        """Create or (same address) update the user's Gmail mailbox with a new grant."""
        mailbox = await repository.get_by_address(session, user.id, address, MailboxProvider.gmail)
        if mailbox is None:
            mailbox = Mailbox(user_id=user.id, provider=MailboxProvider.gmail, address=address)
            session.add(mailbox)
        mailbox.mode = mode
        mailbox.google_sub = google_sub
        mailbox.refresh_token_encrypted = encrypt_secret(refresh_token)
        self._store_access_token(mailbox, access_token, expires_in)
        mailbox.granted_scopes = sorted(scopes)
        mailbox.sending_deferred_until = None
        mailbox.last_verified_at = utcnow()
        self._set_status(mailbox, MailboxStatus.active, None)
        await session.flush()
        await self._audit_connected(session, user, mailbox)
        return mailbox

    async def verify_mailbox(
        self, session: AsyncSession, *, user: User, mailbox_id: uuid.UUID, gmail_only: bool = False
    ) -> Mailbox:
        """Check the mailbox still works and record the result in its status.

        A revoked grant is recorded (status ``revoked``) and returned, not raised,
        so the request commits it and the user sees why.
        """
        mailbox = await self.get_mailbox(session, user=user, mailbox_id=mailbox_id)
        if gmail_only and mailbox.provider != MailboxProvider.gmail:
            raise NotAGmailMailbox(f"mailbox {mailbox_id} is a {mailbox.provider} mailbox")
        if mailbox.status == MailboxStatus.revoked:
            return mailbox  # reconnecting is the only way back
        try:
            await (await self.provider_for(session, mailbox)).verify()
        except MailboxUnavailable:
            return mailbox
        mailbox.last_verified_at = utcnow()
        self._set_status(mailbox, MailboxStatus.active, None)
        await session.flush()
        return mailbox

    async def disconnect_gmail(
        self, session: AsyncSession, *, user: User, mailbox_id: uuid.UUID
    ) -> Mailbox:
        """Revoke the grant at Google, forget the tokens, and mark the mailbox revoked."""
        mailbox = await self.get_gmail_mailbox(session, user=user, mailbox_id=mailbox_id)
        await self._revoke_at_google(mailbox)
        await self.mark_unavailable(
            session,
            mailbox,
            status=MailboxStatus.revoked,
            reason="disconnected by the user",
            actor_id=user.id,
        )
        return mailbox

    async def lock_user_mailboxes(self, session: AsyncSession, *, user: User) -> list[Mailbox]:
        """Every mailbox of the user, locked: the sender claims nothing from them until
        the transaction ends (it locks the mailbox row before claiming)."""
        statement = repository.get_readable_statement(user).with_for_update()
        return list((await session.scalars(statement)).all())

    async def erase_user_mailboxes(self, session: AsyncSession, *, user: User) -> int:
        """Account deletion: revoke every Gmail grant at Google (best effort, as when
        disconnecting), then delete the mailboxes with their encrypted tokens and
        passwords. Returns how many grants were revoked."""
        revoked = 0
        for mailbox in await self.lock_user_mailboxes(session, user=user):
            if mailbox.provider == MailboxProvider.gmail and mailbox.refresh_token_encrypted:
                await self._revoke_at_google(mailbox)
                revoked += 1
            await session.delete(mailbox)
        await session.flush()
        return revoked

    # -- tokens and status ----------------------------------------------------------

    async def mark_unavailable(
        self,
        session: AsyncSession,
        mailbox: Mailbox,
        *,
        status: MailboxStatus,
        reason: str,
        actor_id: uuid.UUID | None = None,
    ) -> None:
        """Record the mailbox as revoked (tokens forgotten) or failing, audit it, and run
        the mailbox-unavailable handlers in the caller's transaction."""
        self._set_status(mailbox, status, reason)
        if status == MailboxStatus.revoked:
            mailbox.refresh_token_encrypted = None
            mailbox.access_token_encrypted = None
            mailbox.access_token_expires_at = None
        await session.flush()
        await record_audit(
            session,
            action=f"mailbox.{status.value}",
            actor_id=actor_id,
            target_type="mailbox",
            target_id=mailbox.id,
            details={"reason": reason, "address": mailbox.address},
        )
        await emit_mailbox_unavailable(
            session,
            MailboxUnavailableEvent(
                mailbox_id=mailbox.id, user_id=mailbox.user_id, status=status, reason=reason
            ),
        )

    async def access_token(
        self, session: AsyncSession, mailbox: Mailbox, *, rejected: str | None = None
    ) -> str:
        """A Gmail access token valid for at least a few minutes.

        Refreshes under a row lock and checks again after taking it, so two
        workers never both refresh: the second finds the first one's token.
        ``rejected`` is a token Gmail just refused (refresh unless already replaced).
        ``invalid_grant`` marks the mailbox revoked and raises :class:`MailboxRevoked`.
        """
        token = self._usable_token(mailbox, rejected)
        if token is not None:
            return token
        locked = await repository.lock(session, mailbox.id)
        if locked is None or locked.status == MailboxStatus.revoked:
            raise MailboxRevoked("this mailbox was disconnected; reconnect it")
        token = self._usable_token(locked, rejected)
        if token is not None:
            return token
        if locked.refresh_token_encrypted is None:
            await self._revoked(session, locked, "no refresh token is stored")
        oauth = GoogleOAuth(google_http(), get_settings())
        try:
            fresh = await oauth.refresh(decrypt_secret(locked.refresh_token_encrypted))
        except InvalidGrant as exc:
            await self._revoked(session, locked, f"Google refused the refresh token ({exc})")
        if fresh.refresh_token:
            locked.refresh_token_encrypted = encrypt_secret(fresh.refresh_token)
        self._store_access_token(locked, fresh.access_token, fresh.expires_in)
        await session.flush()
        return fresh.access_token

    async def _revoked(self, session: AsyncSession, mailbox: Mailbox, reason: str) -> NoReturn:
        await self.mark_unavailable(session, mailbox, status=MailboxStatus.revoked, reason=reason)
        raise MailboxRevoked(f"Gmail access for {mailbox.address} was revoked: {reason}")

    async def provider_for(self, session: AsyncSession, mailbox: Mailbox) -> MailProvider:
        """The provider that sends for ``mailbox``; Gmail calls refresh tokens and record
        revocations in ``session`` (commit it even when a call raised MailboxRevoked)."""
        if mailbox.status == MailboxStatus.revoked:
            raise MailboxRevoked(f"{mailbox.address} was disconnected; reconnect it")
        settings = get_settings()
        if mailbox.provider == MailboxProvider.outbox:
            return OutboxProvider(settings.outbox_path / str(mailbox.id), address=mailbox.address)
        if mailbox.provider == MailboxProvider.smtp:
            return SmtpProvider(self._smtp_settings(mailbox, settings), address=mailbox.address)
        return self._gmail_provider(session, mailbox, settings)

    def _gmail_provider(
        self, session: AsyncSession, mailbox: Mailbox, settings: Settings
    ) -> GmailProvider:
        async def token(rejected: str | None) -> str:
            return await self.access_token(session, mailbox, rejected=rejected)

        # ``mailbox`` may be shared read-only by concurrent sends (campaign sending):
        # what is written about it is written on this session's own copy.
        async def on_revoked(reason: str) -> NoReturn:
            await self._revoked(session, await in_session(session, mailbox), reason)

        async def verify_token() -> None:
            await self.access_token(session, mailbox, rejected=self._current_token(mailbox))

        async def on_daily_limit() -> datetime:
            return await self.defer_sending(session, await in_session(session, mailbox))

        client = GmailClient(
            http=google_http(),
            base_url=settings.gmail_api_url,
            access_token=token,
            budget=gmail_budget(settings),
            budget_key=str(mailbox.id),
            max_retries=settings.gmail_max_retries,
            retry_base_seconds=settings.gmail_retry_base_seconds,
            timeout=settings.gmail_timeout_seconds,
        )
        return GmailProvider(
            client,
            address=mailbox.address,
            send_only=mailbox.mode == MailboxMode.send_only,
            on_revoked=on_revoked,
            verify_token=verify_token,
            on_daily_limit=on_daily_limit,
        )

    async def defer_sending(self, session: AsyncSession, mailbox: Mailbox) -> datetime:
        """Gmail said ``dailyLimitExceeded``: no more sends until the mailbox's next day."""
        mailbox.sending_deferred_until = next_local_day(mailbox)
        await session.flush()
        return mailbox.sending_deferred_until

    async def rotate_keys(self, session: AsyncSession) -> int:
        """Re-encrypt every stored secret with the first configured key; returns the count."""
        count = 0
        for mailbox in await repository.with_secrets(session):
            for field in (
                "refresh_token_encrypted",
                "access_token_encrypted",
                "smtp_password_encrypted",
            ):
                value = getattr(mailbox, field)
                if value is not None:
                    setattr(mailbox, field, rotate_secret(value))
                    count += 1
        await session.flush()
        return count

    # -- helpers --------------------------------------------------------------------

    @staticmethod
    def _set_status(mailbox: Mailbox, status: MailboxStatus, reason: str | None) -> None:
        if mailbox.status != status or mailbox.status_changed_at is None:
            mailbox.status_changed_at = utcnow()
        mailbox.status = status
        mailbox.status_reason = reason

    @staticmethod
    def _store_access_token(mailbox: Mailbox, token: str, expires_in: int) -> None:
        mailbox.access_token_encrypted = encrypt_secret(token)
        mailbox.access_token_expires_at = utcnow() + timedelta(seconds=expires_in)

    @staticmethod
    def _current_token(mailbox: Mailbox) -> str | None:
        if mailbox.access_token_encrypted is None:
            return None
        return decrypt_hot_secret(mailbox.access_token_encrypted)

    def _usable_token(self, mailbox: Mailbox, rejected: str | None) -> str | None:
        token = self._current_token(mailbox)
        expires = mailbox.access_token_expires_at
        if token is None or expires is None or expires - REFRESH_MARGIN <= utcnow():
            return None
        return None if token == rejected else token

    @staticmethod
    def _smtp_settings(mailbox: Mailbox, settings: Settings) -> SmtpSettings:
        assert mailbox.smtp_host
        assert mailbox.smtp_port
        assert mailbox.smtp_security
        assert mailbox.smtp_username
        assert mailbox.smtp_password_encrypted
        return SmtpSettings(
            host=mailbox.smtp_host,
            port=mailbox.smtp_port,
            security=mailbox.smtp_security,
            username=mailbox.smtp_username,
            password=decrypt_secret(mailbox.smtp_password_encrypted),
            timeout=settings.smtp_timeout_seconds,
            allow_private=smtp_private_hosts_allowed(settings),
            ca_file=settings.smtp_ca_file,
        )

    async def _revoke_at_google(self, mailbox: Mailbox) -> None:
        if mailbox.provider != MailboxProvider.gmail or mailbox.refresh_token_encrypted is None:
            return
        oauth = GoogleOAuth(google_http(), get_settings())
        # Our copy is deleted either way and the user can also remove access in their
        # Google account: Google being down must not keep them from disconnecting.
        with contextlib.suppress(GoogleOAuthUnavailable):
            await oauth.revoke(decrypt_secret(mailbox.refresh_token_encrypted))

    @staticmethod
    async def _audit_connected(session: AsyncSession, user: User, mailbox: Mailbox) -> None:
        details: dict[str, Any] = {"provider": mailbox.provider.value, "address": mailbox.address}
        if mailbox.mode is not None:
            details["mode"] = mailbox.mode.value
        await record_audit(
            session,
            action="mailbox.connected",
            actor_id=user.id,
            target_type="mailbox",
            target_id=mailbox.id,
            details=details,
        )


mailbox_service = MailboxService()


async def _mailbox_connected(session: AsyncSession, user: User) -> bool:
    return await mailbox_service.has_connected_mailbox(session, user)


register_onboarding_flag("mailbox_connected", _mailbox_connected)
register_mailbox_problems(mailbox_service.mailbox_problems)
