"""A DNS server for tests (dnslib) on 127.0.0.1 and a random UDP port.

Zones are plain dicts that tests change between queries::

    fake_dns.add_mx("example.com", "mx.example.com")
    fake_dns.add_a("example.com", "127.0.0.1")
    fake_dns.add_null_mx("nomail.test")
    fake_dns.fail("broken.test")      # SERVFAIL, so the resolver reports an error
    fake_dns.drop("silent.test")      # never answered, so the resolver times out

Names not in the zone answer NXDOMAIN, unless ``wildcard_mx`` is set (any name
ending in it gets an MX record): benchmarks use that for thousands of domains.
``queries`` counts every question received, by (name, type).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import pytest
from dnslib import AAAA, MX, QTYPE, RCODE, RR, A, DNSError, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer


class FakeDNS(BaseResolver):  # type: ignore[misc]
    def __init__(self) -> None:
        self.records: dict[str, dict[str, list[object]]] = {}
        self.failing: set[str] = set()
        self.dropping: set[str] = set()
        self.wildcard_mx: str | None = None
        self.queries: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._server: DNSServer | None = None

    # zone edits ---------------------------------------------------------
    def _zone(self, name: str) -> dict[str, list[object]]:
        return self.records.setdefault(name.lower().rstrip("."), {})

    def add_mx(self, domain: str, host: str, preference: int = 10) -> None:
        self._zone(domain).setdefault("MX", []).append((preference, host))

    def add_null_mx(self, domain: str) -> None:
        self._zone(domain)["MX"] = [(0, ".")]

    def add_a(self, name: str, address: str) -> None:
        self._zone(name).setdefault("A", []).append(address)

    def add_aaaa(self, name: str, address: str) -> None:
        self._zone(name).setdefault("AAAA", []).append(address)

    def add_name(self, name: str) -> None:
        """A name that exists but has no records (NOERROR, no answer)."""
        self._zone(name)

    def fail(self, name: str) -> None:
        self.failing.add(name.lower())

    def drop(self, name: str) -> None:
        self.dropping.add(name.lower())

    def reset(self) -> None:
        self.records.clear()
        self.failing.clear()
        self.dropping.clear()
        self.wildcard_mx = None
        self.queries.clear()

    @property
    def total_queries(self) -> int:
        return sum(self.queries.values())

    # dnslib resolver ----------------------------------------------------
    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        with self._lock:
            self.queries[(name, qtype)] += 1
        if name in self.dropping:
            raise DNSError(f"dropping {name}")  # dnslib's handler then sends nothing
        if name in self.failing:
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        zone = self.records.get(name)
        if zone is None and self.wildcard_mx and name.endswith(self.wildcard_mx):
            zone = {"MX": [(10, f"mx.{name}")]}
        if zone is None:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for value in zone.get(qtype, []):
            if qtype == "MX":
                preference, host = value  # type: ignore[misc]
                rdata: object = MX(host, preference)
            elif qtype == "A":
                rdata = A(value)
            else:
                rdata = AAAA(value)
            reply.add_answer(RR(request.q.qname, request.q.qtype, rdata=rdata, ttl=300))
        return reply

    # server ---------------------------------------------------------------
    def start(self) -> None:
        self._server = DNSServer(
            self, port=0, address="127.0.0.1", logger=DNSLogger(logf=lambda _: None)
        )
        self._server.start_thread()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.server.server_address[1]
        return port

    @property
    def nameserver(self) -> str:
        """The value for OUTREACH_DNS_NAMESERVERS."""
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


@pytest.fixture(scope="session")
def fake_dns_server() -> Iterator[FakeDNS]:
    server = FakeDNS()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fake_dns(fake_dns_server: FakeDNS) -> Iterator[FakeDNS]:
    """The session's DNS server with an empty zone for this test."""
    fake_dns_server.reset()
    yield fake_dns_server
    fake_dns_server.reset()
