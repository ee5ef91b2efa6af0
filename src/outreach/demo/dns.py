"""A tiny DNS server on 127.0.0.1 answering for the demo's sample domains only.

Verification asks real DNS for each domain's MX records. The demo's domains
(``*.example``) exist nowhere, so the demo answers for them itself: it starts
this responder on a free UDP port and points ``OUTREACH_DNS_NAMESERVERS`` at it.
Nothing is forwarded: a name outside the zone is NXDOMAIN, so the demo never
touches the network. dnspython (a main dependency) parses and writes the
messages; the test suite's richer fake (tests/fakes/dns.py) needs dnslib, a
development dependency.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import cast

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

TTL = 300


@dataclass
class Zone:
    """Records by lower-case name without the final dot: MX hosts and A addresses.

    A name present with no records answers NOERROR with an empty answer (it
    exists but takes no mail)."""

    mx: dict[str, list[str]] = field(default_factory=dict)
    a: dict[str, list[str]] = field(default_factory=dict)
    empty: set[str] = field(default_factory=set)

    def knows(self, name: str) -> bool:
        return name in self.mx or name in self.a or name in self.empty

    def answer(self, name: str, rdtype: dns.rdatatype.RdataType) -> list[str]:
        """Record texts for ``name`` and ``rdtype`` (MX as "preference host.")."""
        if rdtype == dns.rdatatype.MX:
            return [f"{10 * (n + 1)} {host}." for n, host in enumerate(self.mx.get(name, []))]
        if rdtype == dns.rdatatype.A:
            return list(self.a.get(name, []))
        return []


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self.transport: asyncio.DatagramTransport | None = None
        self.queries = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return  # not DNS: a real server drops it too
        self.queries += 1
        if self.transport is not None:
            self.transport.sendto(self.respond(query).to_wire(), addr)

    def respond(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        if not self.zone.knows(name):
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response
        records = self.zone.answer(name, question.rdtype)
        if records:
            response.answer.append(
                dns.rrset.from_text_list(
                    question.name, TTL, dns.rdataclass.IN, question.rdtype, records
                )
            )
        return response


class LocalDNS:
    """``async with LocalDNS(zone) as dns_server:`` serves ``zone`` on 127.0.0.1."""

    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self._protocol: _Protocol | None = None

    async def __aenter__(self) -> LocalDNS:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_datagram_endpoint(
            lambda: _Protocol(self.zone), local_addr=("127.0.0.1", 0)
        )
        self._protocol = protocol
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None

    @property
    def nameserver(self) -> str:
        """The value for ``OUTREACH_DNS_NAMESERVERS``: ``127.0.0.1:<port>``."""
        assert self._protocol is not None
        assert self._protocol.transport is not None
        port = self._protocol.transport.get_extra_info("sockname")[1]
        return f"127.0.0.1:{port}"

    @property
    def queries(self) -> int:
        return self._protocol.queries if self._protocol else 0
