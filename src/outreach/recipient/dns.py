"""Mail-domain lookups: MX with an A/AAAA fallback, null MX (RFC 7505), cached.

dnspython's async resolver talks to the nameservers in
``OUTREACH_DNS_NAMESERVERS`` (``host`` or ``host:port``; default: the system's
resolv.conf). Results live in ``domain_cache`` until their TTL; a batch looks
up each unique domain once, with at most ``OUTREACH_DNS_CONCURRENCY`` queries
in flight. Transient failures (timeouts, SERVFAIL) are not cached.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import timedelta
from typing import cast

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.resolver
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.config import Settings, get_settings
from outreach.kit.clock import utcnow
from outreach.kit.db import dialect_insert
from outreach.kit.logging import get_logger
from outreach.models import DomainCache

log = get_logger("outreach.recipient.dns")

OK, NO_MAIL, NULL_MX, NOT_FOUND, ERROR = "ok", "no_mail", "null_mx", "not_found", "error"
_CACHED_PER_QUERY = 5_000


@dataclass(frozen=True, slots=True)
class DomainInfo:
    domain: str
    status: str
    mx_hosts: list[str] = field(default_factory=list)
    has_address: bool = False

    @property
    def accepts_mail(self) -> bool:
        return self.status == OK


def _nameserver(entry: str) -> dns.nameserver.Do53Nameserver:
    host, _, port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
    return dns.nameserver.Do53Nameserver(host or entry, int(port) if port else 53)


def build_resolver(settings: Settings) -> dns.asyncresolver.Resolver:
    """A resolver for the configured nameservers (or the system's)."""
    resolver = dns.asyncresolver.Resolver(configure=not settings.dns_nameservers)
    if settings.dns_nameservers:
        resolver.nameservers = [_nameserver(entry) for entry in settings.dns_nameservers]
    resolver.timeout = settings.dns_timeout_seconds
    resolver.lifetime = settings.dns_timeout_seconds * 2
    resolver.cache = None  # domain_cache is the cache, shared by every process
    return resolver


_resolvers: dict[tuple[str, ...], dns.asyncresolver.Resolver] = {}


def get_resolver(settings: Settings | None = None) -> dns.asyncresolver.Resolver:
    """One resolver per nameserver configuration, built on first use."""
    settings = settings or get_settings()
    key = (*settings.dns_nameservers, str(settings.dns_timeout_seconds))
    if key not in _resolvers:
        _resolvers[key] = build_resolver(settings)
    return _resolvers[key]


async def resolve_domain(resolver: dns.asyncresolver.Resolver, domain: str) -> DomainInfo:
    """Ask DNS where mail for ``domain`` goes (one MX query; A/AAAA only without MX)."""
    try:
        answer = await resolver.resolve(domain, "MX", search=False)
    except dns.resolver.NXDOMAIN:
        return DomainInfo(domain, NOT_FOUND)
    except dns.resolver.NoAnswer:
        return await _address_fallback(resolver, domain)
    except (dns.exception.Timeout, dns.resolver.NoNameservers, dns.exception.DNSException) as exc:
        log.info("dns lookup failed", domain=domain, error=type(exc).__name__)
        return DomainInfo(domain, ERROR)
    records = sorted(answer, key=lambda record: record.preference)
    hosts = [str(record.exchange).rstrip(".").lower() for record in records]
    if not any(hosts):  # RFC 7505: a single "0 ." MX says the domain takes no mail
        return DomainInfo(domain, NULL_MX)
    return DomainInfo(domain, OK, [host for host in hosts if host])


async def _address_fallback(resolver: dns.asyncresolver.Resolver, domain: str) -> DomainInfo:
    for record_type in ("A", "AAAA"):
        try:
            await resolver.resolve(domain, record_type, search=False)
        except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
            continue
        except dns.exception.DNSException:
            return DomainInfo(domain, ERROR)
        return DomainInfo(domain, OK, [], has_address=True)
    return DomainInfo(domain, NO_MAIL)


async def resolve_host_address(resolver: dns.asyncresolver.Resolver, host: str) -> str | None:
    """The first IPv4 address of a mail host (for the SMTP probe)."""
    try:
        answer = await resolver.resolve(host, "A", search=False)
    except dns.exception.DNSException:
        return None
    return str(next(iter(answer)))


class DomainLookup:
    """Domain lookups through the cache table, one DNS query per unique domain."""

    async def lookup(
        self, session: AsyncSession, domains: Collection[str]
    ) -> dict[str, DomainInfo]:
        """What is known about each domain: fresh cache rows, else a (bounded) DNS query."""
        known = await self.cached(session, domains)
        resolved = await self.resolve(set(domains) - known.keys())
        await self.store(session, resolved)
        known.update((info.domain, info) for info in resolved)
        return known

    async def cached(
        self, session: AsyncSession, domains: Collection[str]
    ) -> dict[str, DomainInfo]:
        """The fresh cache rows for ``domains`` (one query per 5,000: a bulk run asks
        about all of an inline job's domains at once, and SQLite bounds the number of
        bound values in a statement)."""
        wanted, now, known = sorted(set(domains)), utcnow(), {}
        for start in range(0, len(wanted), _CACHED_PER_QUERY):
            rows = await session.execute(
                select(
                    DomainCache.domain,
                    DomainCache.status,
                    DomainCache.mx_hosts,
                    DomainCache.has_address,
                ).where(
                    DomainCache.domain.in_(wanted[start : start + _CACHED_PER_QUERY]),
                    DomainCache.expires_at > now,
                )
            )
            for domain, status, mx_hosts, has_address in rows:
                known[domain] = DomainInfo(domain, status, list(mx_hosts), has_address)
        return known

    async def resolve(self, domains: Collection[str]) -> list[DomainInfo]:
        """Ask DNS about each domain once, at most ``dns_concurrency`` at a time."""
        if not domains:
            return []
        settings = get_settings()
        resolver = get_resolver(settings)
        limit = asyncio.Semaphore(max(1, settings.dns_concurrency))

        async def one(domain: str) -> DomainInfo:
            async with limit:
                return await resolve_domain(resolver, domain)

        return list(await asyncio.gather(*(one(domain) for domain in sorted(domains))))

    async def store(self, session: AsyncSession, infos: list[DomainInfo]) -> None:
        """Cache answers (not transient errors) with the positive or negative TTL."""
        await self._store(session, [info for info in infos if info.status != ERROR])

    async def _store(self, session: AsyncSession, infos: list[DomainInfo]) -> None:
        if not infos:
            return
        settings = get_settings()
        now = utcnow()
        rows = []
        for info in infos:
            ttl = (
                settings.dns_cache_ttl_seconds
                if info.status == OK
                else (settings.dns_negative_cache_ttl_seconds)
            )
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "domain": info.domain,
                    "status": info.status,
                    "mx_hosts": info.mx_hosts,
                    "has_address": info.has_address,
                    "checked_at": now,
                    "expires_at": now + timedelta(seconds=ttl),
                    "created_at": now,
                }
            )
        table = cast(Table, DomainCache.__table__)
        statement = dialect_insert(session)(table)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["domain"],
                set_={
                    name: statement.excluded[name]
                    for name in ("status", "mx_hosts", "has_address", "checked_at", "expires_at")
                },
            ),
            rows,
        )


class RunLookups:
    """The DNS answers of one bulk run, kept in memory between its batches.

    Each domain is asked once per run, through one bounded pool (at most
    ``dns_concurrency`` queries in flight for the whole run, whatever the number of
    batches asking): a batch starts its own lookups and those of the batch after it,
    then waits only for its own, so the network wait hides behind the database work."""

    def __init__(self, concurrency: int | None = None) -> None:
        self.known: dict[str, DomainInfo] = {}
        self._pending: dict[str, asyncio.Task[DomainInfo]] = {}
        self._limit = asyncio.Semaphore(max(1, concurrency or get_settings().dns_concurrency))

    def unasked(self, domains: Collection[str]) -> set[str]:
        """The domains neither known nor being asked about."""
        return set(domains) - self.known.keys() - self._pending.keys()

    def start(self, domains: Collection[str]) -> None:
        """Ask about the domains not known nor asked yet, in the background."""
        resolver = get_resolver()
        for domain in sorted(self.unasked(domains)):
            self._pending[domain] = asyncio.create_task(self._ask(resolver, domain))

    async def answers(self, domains: Collection[str]) -> list[DomainInfo]:
        """Wait for the domains' answers; returns those new to this run (to be cached)."""
        self.start(domains)
        asked = [domain for domain in set(domains) if domain in self._pending]
        fresh = await asyncio.gather(*(self._pending[domain] for domain in asked))
        for info in fresh:
            self._pending.pop(info.domain, None)
            self.known[info.domain] = info
        return list(fresh)

    def close(self) -> None:
        """Cancel the lookups still in flight (the run ended or crashed)."""
        for task in self._pending.values():
            task.cancel()
        self._pending.clear()

    async def _ask(self, resolver: dns.asyncresolver.Resolver, domain: str) -> DomainInfo:
        async with self._limit:
            return await resolve_domain(resolver, domain)


domain_lookup = DomainLookup()
