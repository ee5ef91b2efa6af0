"""An in-process TCP proxy on 127.0.0.1 that a test can cut, in front of PostgreSQL
(or Redis).

The app connects through the proxy; the shared server is never stopped. Faults:

* ``cut()``: every open connection is aborted at once (both ends), as when a
  network link or a load balancer drops; the server rolls back what was open.
* ``refusing = True``: new connections are closed as soon as they are accepted
  (the server is unreachable) until it is set back to ``False``.
* ``stalled = True``: connections stay open but nothing the client sends is
  passed on, so no answer ever comes (a hung server, or packets dropped).
* ``drop_next_commit()``: the next ``COMMIT`` never reaches the server; the
  connection is cut instead (the transaction is rolled back).
* ``lose_next_commit_reply()``: the next ``COMMIT`` reaches the server and
  commits, and its answer is lost with the connection (the client cannot know).

asyncpg commits with the simple-query message ``Q "COMMIT;"``, which is what
the proxy looks for in the client's bytes (the proxied engine turns TLS off so
the bytes are readable).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from dataclasses import dataclass, field

_COMMIT_QUERY = b"COMMIT;\x00"
COMMIT_MESSAGE = b"Q" + struct.pack("!i", 4 + len(_COMMIT_QUERY)) + _COMMIT_QUERY
_CHUNK = 65536


@dataclass(eq=False)  # kept in a set: hashed by identity
class _Link:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    swallow_reply: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            writer.transport.abort()


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.refusing = False
        self.stalled = False
        self.cuts = 0
        self._commit_fault: str | None = None
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # -- faults --------------------------------------------------------------------

    def cut(self) -> None:
        """Abort every open connection now (synchronous: callable from any hook)."""
        for link in list(self._links):
            link.abort()
        self._links.clear()
        self.cuts += 1

    def drop_next_commit(self) -> None:
        self._commit_fault = "drop"

    def lose_next_commit_reply(self) -> None:
        self._commit_fault = "lose_reply"

    # -- plumbing ------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            writer.transport.abort()
            return
        link = _Link(client=writer, upstream=up_writer)
        self._links.add(link)
        link.tasks = [
            asyncio.create_task(self._client_to_server(link, reader)),
            asyncio.create_task(self._server_to_client(link, up_reader)),
        ]

    async def _client_to_server(self, link: _Link, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while chunk := await reader.read(_CHUNK):
                if self.stalled:
                    continue
                if self._commit_fault is not None and COMMIT_MESSAGE in chunk:
                    fault, self._commit_fault = self._commit_fault, None
                    if fault == "drop":
                        self._drop(link)
                        return
                    link.swallow_reply = True
                link.upstream.write(chunk)
                await link.upstream.drain()
        self._drop(link)

    async def _server_to_client(self, link: _Link, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while chunk := await reader.read(_CHUNK):
                if link.swallow_reply:
                    # The server committed and answered; the answer never arrives.
                    self._drop(link)
                    return
                link.client.write(chunk)
                await link.client.drain()
        self._drop(link)

    def _drop(self, link: _Link) -> None:
        link.abort()
        self._links.discard(link)
