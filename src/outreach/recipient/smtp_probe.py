"""The optional SMTP RCPT probe (off by default: port 25 is often blocked, and
some servers penalise probing). Runs only in background jobs, never on a request.

For each domain a random address is tried first: a server that accepts it
accepts everything (catch-all), so its answer for the real address says
nothing and the result is ``risky``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import aiosmtplib

from outreach.config import get_settings
from outreach.recipient.dns import DomainInfo, get_resolver, resolve_host_address

ACCEPTED, REJECTED, CATCH_ALL, UNREACHABLE = "accepted", "rejected", "catch_all", "unreachable"


@dataclass(frozen=True)
class ProbeResult:
    verdict: str
    code: int | None = None
    message: str | None = None


class SmtpProber:
    """Probes mailboxes; remembers per domain whether it is catch-all (one job's run)."""

    def __init__(self) -> None:
        self.catch_all: dict[str, bool] = {}

    async def probe(self, email: str, info: DomainInfo) -> ProbeResult:
        settings = get_settings()
        host = info.mx_hosts[0] if info.mx_hosts else info.domain
        address = await resolve_host_address(get_resolver(settings), host)
        if address is None:
            return ProbeResult(UNREACHABLE, message=f"{host} has no address")
        client = aiosmtplib.SMTP(
            hostname=address,
            port=settings.smtp_probe_port,
            timeout=settings.smtp_probe_timeout_seconds,
            start_tls=False,
            local_hostname=settings.smtp_probe_helo,
        )
        try:
            await client.connect()
            await client.ehlo()
            await client.mail(settings.smtp_probe_from)
            if info.domain not in self.catch_all:
                random_local = f"no-such-user-{secrets.token_hex(8)}"
                code, _ = await _rcpt(client, f"{random_local}@{info.domain}")
                self.catch_all[info.domain] = 200 <= code < 300
            if self.catch_all[info.domain]:
                return ProbeResult(CATCH_ALL)
            code, message = await _rcpt(client, email)
        except (aiosmtplib.SMTPException, OSError) as exc:
            return ProbeResult(UNREACHABLE, message=str(exc)[:200])
        finally:
            if client.is_connected:
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError):
                    client.close()
        if 200 <= code < 300:
            return ProbeResult(ACCEPTED, code)
        if 500 <= code < 600:
            return ProbeResult(REJECTED, code, message)
        return ProbeResult(UNREACHABLE, code, message)


async def _rcpt(client: aiosmtplib.SMTP, address: str) -> tuple[int, str]:
    try:
        response = await client.rcpt(address)
    except aiosmtplib.SMTPRecipientRefused as exc:
        return exc.code, exc.message
    return response.code, response.message
