"""Accounts: users, sign-in (Google or development login) and server-side sessions."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.account.identity import deleted_before
from outreach.auth.google import GoogleIdentity
from outreach.config import get_settings
from outreach.credits.pricing import pricing_from_settings
from outreach.credits.service import credit_service
from outreach.kit.audit import record_audit
from outreach.kit.clock import utcnow
from outreach.kit.errors import Conflict, NotFound, Unauthorized
from outreach.models import LedgerReason, User, UserRole, UserSession
from outreach.referral.service import referral_service

# Writing last_seen_at on every request would turn every read into a write.
_TOUCH_INTERVAL = timedelta(minutes=5)


class SessionExpired(Unauthorized):
    code, title = "session_expired", "Session expired or signed out"


class EmailTaken(Conflict):
    code, title = "email_taken", "Another account uses this email address"


class UserNotFound(NotFound):
    code, title = "user_not_found", "User not found"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class SignIn:
    user: User
    token: str
    new_user: bool


class AuthService:
    async def sign_in_with_google(
        self,
        session: AsyncSession,
        identity: GoogleIdentity,
        *,
        user_agent: str | None,
        ip: str | None,
        previous_token: str | None,
    ) -> SignIn:
        """Find the user by Google ``sub`` (keeping the email current) or create them."""
        user = await session.scalar(select(User).where(User.google_sub == identity.sub))
        new_user = False
        if user is None:
            # A development-login account with this email becomes the Google one.
            user = await session.scalar(
                select(User).where(User.email == identity.email, User.google_sub.is_(None))
            )
            if user is None:
                user = await self._create_user(
                    session, email=identity.email, name=identity.name, google_sub=identity.sub
                )
                new_user = True
            else:
                user.google_sub = identity.sub
        if user.email != identity.email:
            if await self._email_in_use(session, identity.email, user.id):
                raise EmailTaken("another account already uses this Google email address")
            user.email = identity.email
        user.name = identity.name or user.name
        user.picture = identity.picture or user.picture
        return await self._finish_sign_in(session, user, new_user, user_agent, ip, previous_token)

    async def dev_login(
        self,
        session: AsyncSession,
        *,
        email: str,
        name: str | None,
        user_agent: str | None,
        ip: str | None,
        previous_token: str | None,
    ) -> SignIn:
        """Development only: sign in as ``email``, creating the account if needed."""
        email = email.lower()
        user = await session.scalar(select(User).where(User.email == email))
        new_user = user is None
        if user is None:
            user = await self._create_user(session, email=email, name=name, google_sub=None)
        return await self._finish_sign_in(session, user, new_user, user_agent, ip, previous_token)

    async def _email_in_use(self, session: AsyncSession, email: str, user_id: uuid.UUID) -> bool:
        other = await session.scalar(select(User.id).where(User.email == email, User.id != user_id))
        return other is not None

    async def _create_user(
        self, session: AsyncSession, *, email: str, name: str | None, google_sub: str | None
    ) -> User:
        user = User(
            email=email,
            name=name or email.split("@", 1)[0],
            google_sub=google_sub,
            role=UserRole.user,
            referral_code=await referral_service.unused_code(session),
        )
        session.add(user)
        await session.flush()
        await credit_service.open_account(session, user_id=user.id)
        pricing = pricing_from_settings(get_settings())
        # Deleting and signing up again must not farm the signup grant.
        returning = await deleted_before(session, email)
        if pricing.signup_grant > 0 and not returning:
            await credit_service.apply_ledger_entry(
                session,
                user_id=user.id,
                delta=pricing.signup_grant,
                reason=LedgerReason.signup_grant,
                ref=None,
                idempotency_key=f"signup:{user.id}",
            )
        await record_audit(
            session,
            action="auth.signup",
            actor_id=user.id,
            target_type="user",
            target_id=user.id,
            details={"google": google_sub is not None, "returning_after_deletion": returning},
        )
        return user

    async def _finish_sign_in(
        self,
        session: AsyncSession,
        user: User,
        new_user: bool,
        user_agent: str | None,
        ip: str | None,
        previous_token: str | None,
    ) -> SignIn:
        if previous_token:
            # A new session id on every sign-in: a planted cookie is worthless.
            await session.execute(
                delete(UserSession).where(UserSession.token_hash == hash_token(previous_token))
            )
        now = utcnow()
        user.last_login_at = now
        token = secrets.token_urlsafe(32)
        settings = get_settings()
        session.add(
            UserSession(
                user_id=user.id,
                token_hash=hash_token(token),
                last_seen_at=now,
                expires_at=now + timedelta(days=settings.session_absolute_days),
                user_agent=(user_agent or "")[:500] or None,
                ip=ip,
            )
        )
        await session.flush()
        await record_audit(
            session, action="auth.login", actor_id=user.id, target_type="user", target_id=user.id
        )
        return SignIn(user=user, token=token, new_user=new_user)

    async def authenticate(self, session: AsyncSession, token: str) -> User:
        """The user behind a session token; 401 when unknown, expired or idle too long."""
        row = await session.scalar(
            select(UserSession).where(UserSession.token_hash == hash_token(token))
        )
        now = utcnow()
        idle = timedelta(minutes=get_settings().session_idle_minutes)
        if row is None or row.expires_at <= now or row.last_seen_at + idle <= now:
            raise SessionExpired("sign in again")
        if now - row.last_seen_at >= _TOUCH_INTERVAL:
            row.last_seen_at = now
        user = await session.get(User, row.user_id)
        if user is None:
            raise SessionExpired("sign in again")
        return user

    async def logout(self, session: AsyncSession, *, user: User, token: str) -> None:
        await session.execute(
            delete(UserSession).where(UserSession.token_hash == hash_token(token))
        )
        await record_audit(
            session, action="auth.logout", actor_id=user.id, target_type="user", target_id=user.id
        )

    async def get_user(self, session: AsyncSession, user_id: uuid.UUID) -> User:
        user = await session.get(User, user_id)
        if user is None:
            raise UserNotFound(f"no user {user_id}")
        return user

    async def get_user_by_email(self, session: AsyncSession, email: str) -> User:
        user = await session.scalar(select(User).where(User.email == email.strip().lower()))
        if user is None:
            raise UserNotFound(f"no user with email {email}")
        return user

    async def set_role(
        self, session: AsyncSession, *, user: User, role: UserRole, actor_id: uuid.UUID | None
    ) -> User:
        """Change a user's role (audited)."""
        previous = user.role
        user.role = role
        await session.flush()
        await record_audit(
            session,
            action="admin.role_change",
            actor_id=actor_id,
            target_type="user",
            target_id=user.id,
            details={"from": previous.value, "to": role.value},
        )
        return user


auth_service = AuthService()
