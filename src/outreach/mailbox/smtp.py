"""SMTP mailboxes (aiosmtplib): STARTTLS or implicit TLS, a real login test, and SSRF checks.

The host is resolved once, every address is checked (no loopback, private,
link-local, multicast or reserved ranges outside development), and the
connection goes to the checked address (so DNS cannot change its answer between
the check and the connect) while TLS still verifies the certificate for the host name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import aiosmtplib

from outreach.kit.errors import FieldError, Unprocessable
from outreach.mailbox.mime import EncodedMessage
from outreach.mailbox.providers import (
    DraftsNotSupported,
    MailboxProfile,
    MessageRefused,
    NothingSent,
    RecipientBounced,
    SendOutcomeUnknown,
    SendsNotConfirmable,
)
from outreach.models import MailboxProvider, SmtpSecurity


class SmtpHostNotAllowed(Unprocessable):
    code, title = "smtp_host_not_allowed", "This SMTP host is not allowed"


class SmtpUnreachable(Unprocessable):
    code, title = "smtp_unreachable", "The SMTP server could not be reached"


class SmtpLoginFailed(Unprocessable):
    code, title = "smtp_login_failed", "The SMTP server refused the username or password"


class SmtpSendFailed(MessageRefused):
    code, title = "smtp_send_failed", "The SMTP server refused the message"


class SmtpBounced(SmtpSendFailed, RecipientBounced):
    code, title = "smtp_bounced", "The SMTP server refused the recipient or the message (5xx)"


class SmtpNotReached(NothingSent):
    code, title = "smtp_not_reached", "The SMTP server could not be reached; nothing was sent"


def _field_error(field: str, message: str) -> list[FieldError]:
    return [FieldError(loc=["body", field], message=message)]


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def resolve_smtp_host(host: str, port: int, *, allow_private: bool) -> tuple[int, str]:
    """(address family, address) to connect to; refuses internal addresses unless allowed."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise SmtpUnreachable(
            f"{host} does not resolve", errors=_field_error("host", "unknown host")
        ) from exc
    if not infos:
        raise SmtpUnreachable(f"{host} does not resolve", errors=_field_error("host", "no address"))
    addresses = [(info[0], str(info[4][0])) for info in infos]
    if not allow_private:
        for _family, address in addresses:
            if not _is_public(address):
                raise SmtpHostNotAllowed(
                    f"{host} resolves to {address}, an internal address",
                    errors=_field_error("host", "points at a private or reserved address"),
                )
    return addresses[0]


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: SmtpSecurity
    username: str
    password: str
    timeout: float = 20.0
    allow_private: bool = False
    ca_file: Path | None = None  # extra CA bundle (a private relay's own CA)


class SmtpProvider:
    """An SMTP login behind the provider interface: no drafts, sends cannot be confirmed."""

    name = MailboxProvider.smtp
    supports_drafts = False
    can_confirm_sends = False
    last_thread_id: str | None = None

    def __init__(self, settings: SmtpSettings, *, address: str) -> None:
        self.settings = settings
        self.address = address

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.settings.ca_file is not None:
            context.load_verify_locations(cafile=str(self.settings.ca_file))
        return context

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self.settings
        family, address = await resolve_smtp_host(s.host, s.port, allow_private=s.allow_private)
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (address, s.port)), s.timeout)
        except (OSError, TimeoutError) as exc:
            sock.close()
            raise SmtpUnreachable(
                f"{s.host}:{s.port} did not accept a connection",
                errors=_field_error("host", "connection failed"),
            ) from exc
        client = aiosmtplib.SMTP(
            hostname=s.host,
            sock=sock,
            timeout=s.timeout,
            use_tls=s.security == SmtpSecurity.tls,
            start_tls=s.security == SmtpSecurity.starttls,
            tls_context=self._tls_context() if s.security != SmtpSecurity.none else None,
        )
        try:
            await client.connect()
            await client.login(s.username, s.password)
        except aiosmtplib.SMTPAuthenticationError as exc:
            client.close()
            raise SmtpLoginFailed(
                "the SMTP server refused the login",
                errors=_field_error("password", "login refused"),
            ) from exc
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
            client.close()
            raise SmtpUnreachable(
                f"SMTP with {s.host}:{s.port} failed: {exc}",
                errors=_field_error("security", "connection or TLS failed"),
            ) from exc
        return client

    async def verify(self) -> MailboxProfile:
        client = await self._connect()
        await _quit(client)
        return MailboxProfile(
            address=self.address, provider=MailboxProvider.smtp, detail="SMTP login accepted"
        )

    async def send(self, message: EncodedMessage, *, thread_id: str | None = None) -> str:
        try:
            client = await self._connect()
        except (SmtpUnreachable, SmtpLoginFailed) as exc:
            # No name, no connection, no TLS or no login: the message never left.
            raise SmtpNotReached(exc.detail) from exc
        try:
            errors, _ = await client.sendmail(
                message.sender, list(message.recipients), message.data
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            client.close()
            refusal = f"the server refused the recipient: {exc}"
            if all(r.code < 500 for r in exc.recipients):
                raise SmtpNotReached(f"{refusal} (temporarily)") from exc  # before DATA
            raise SmtpBounced(refusal) from exc
        except aiosmtplib.SMTPDataError as exc:
            client.close()
            if exc.code >= 500:
                raise SmtpBounced(f"the server refused the message at DATA: {exc}") from exc
            raise SendOutcomeUnknown(f"the server answered {exc.code}: {exc}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            client.close()
            if exc.code >= 500:
                raise SmtpSendFailed(f"the server refused the message: {exc}") from exc
            raise SendOutcomeUnknown(f"the server answered {exc.code}: {exc}") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            client.close()
            raise SendOutcomeUnknown(f"the SMTP session broke during the send: {exc}") from exc
        await _quit(client)
        if errors:
            raise SmtpBounced(f"recipients refused: {sorted(errors)}")
        return message.message_id

    async def create_draft(self, message: EncodedMessage, *, thread_id: str | None = None) -> str:
        raise DraftsNotSupported("SMTP mailboxes send directly; they hold no drafts")

    async def send_draft(self, draft_id: str) -> str:
        raise DraftsNotSupported("SMTP mailboxes send directly; they hold no drafts")

    async def find_sent(
        self,
        *,
        rfc822_message_id: str,
        draft_id: str | None = None,
        thread_id: str | None = None,
    ) -> str | None:
        raise SendsNotConfirmable("SMTP cannot tell whether an earlier send went out")


async def _quit(client: aiosmtplib.SMTP) -> None:
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        client.close()
