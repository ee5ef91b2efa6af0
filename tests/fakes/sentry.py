"""A fake Sentry ingestion endpoint for tests (``POST /api/<project>/envelope/``).

Served on 127.0.0.1 by ``FakeServer``; point ``OUTREACH_SENTRY_DSN`` at
``fake.dsn`` and the real ``sentry_sdk`` transport delivers to it::

    with FakeSentry() as fake:
        settings = settings.model_copy(update={"sentry_dsn": SecretStr(fake.dsn)})
        ...
        sentry_sdk.flush()
        [event] = fake.events()

It checks what Sentry's relay would refuse: the ``X-Sentry-Auth`` header must
name the DSN's public key, the project must be the DSN's, and the body must be
a well-formed envelope (a JSON header line, then items each with a JSON header
and a payload of the stated ``length``), gzip- or brotli-compressed as
``Content-Encoding`` says. Every accepted envelope is kept whole (``raw``,
decompressed) so a test can assert on exactly what left the process.

State is plain data shared with the server's thread.
"""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import FakeServer

PUBLIC_KEY = "0123456789abcdef0123456789abcdef"
PROJECT_ID = "42"


class EnvelopeError(ValueError):
    pass


@dataclass
class EnvelopeItem:
    headers: dict[str, Any]
    payload: bytes

    @property
    def type(self) -> str:
        return str(self.headers.get("type", ""))

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class Envelope:
    headers: dict[str, Any]
    items: list[EnvelopeItem] = field(default_factory=list)
    raw: bytes = b""


def parse_envelope(body: bytes) -> Envelope:
    """Parse Sentry's envelope format (https://develop.sentry.dev/sdk/envelopes/)."""
    header_line, _, rest = body.partition(b"\n")
    try:
        envelope = Envelope(headers=json.loads(header_line), raw=body)
    except json.JSONDecodeError as exc:
        raise EnvelopeError(f"envelope header is not JSON: {exc}") from exc
    while rest.strip():
        item_line, _, rest = rest.partition(b"\n")
        try:
            item_headers = json.loads(item_line)
        except json.JSONDecodeError as exc:
            raise EnvelopeError(f"item header is not JSON: {exc}") from exc
        if "type" not in item_headers:
            raise EnvelopeError("an item header has no type")
        length = item_headers.get("length")
        if length is None:
            payload, _, rest = rest.partition(b"\n")
        else:
            if len(rest) < length:
                raise EnvelopeError(f"item shorter than its length {length}")
            payload, rest = rest[:length], rest[length:]
            if rest.startswith(b"\n"):
                rest = rest[1:]
        envelope.items.append(EnvelopeItem(item_headers, payload))
    return envelope


def _decompress(body: bytes, encoding: str) -> bytes:
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "br":
        import brotli  # type: ignore[import-not-found]

        decompressed: bytes = brotli.decompress(body)
        return decompressed
    raise EnvelopeError(f"unsupported Content-Encoding {encoding!r}")


def _auth_key(header: str) -> str | None:
    scheme, _, params = header.partition(" ")
    if scheme != "Sentry":
        return None
    for part in params.split(","):
        name, _, value = part.strip().partition("=")
        if name == "sentry_key":
            return value
    return None


class FakeSentry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.envelopes: list[Envelope] = []
        self.rejected: list[str] = []
        self.server = FakeServer(
            Starlette(routes=[Route("/api/{project}/envelope/", self._envelope, methods=["POST"])])
        )

    @property
    def dsn(self) -> str:
        return f"http://{PUBLIC_KEY}@127.0.0.1:{self.server.port}/{PROJECT_ID}"

    def reset(self) -> None:
        with self._lock:
            self.envelopes.clear()
            self.rejected.clear()

    def events(self) -> list[dict[str, Any]]:
        """Every error event received so far (transactions and sessions left out)."""
        with self._lock:
            return [
                item.json()
                for envelope in self.envelopes
                for item in envelope.items
                if item.type == "event"
            ]

    def raw(self) -> bytes:
        """Everything received, decompressed, as one blob (for "never leaked" checks)."""
        with self._lock:
            return b"\n".join(envelope.raw for envelope in self.envelopes)

    async def _envelope(self, request: Request) -> Response:
        key = _auth_key(request.headers.get("x-sentry-auth", ""))
        if key != PUBLIC_KEY:
            return self._reject(401, f"bad X-Sentry-Auth key {key!r}")
        if request.path_params["project"] != PROJECT_ID:
            return self._reject(404, "unknown project")
        try:
            body = _decompress(await request.body(), request.headers.get("content-encoding", ""))
            envelope = parse_envelope(body)
        except (EnvelopeError, OSError, zlib.error) as exc:
            return self._reject(400, str(exc))
        with self._lock:
            self.envelopes.append(envelope)
        return JSONResponse({"id": envelope.headers.get("event_id")})

    def _reject(self, status: int, reason: str) -> Response:
        with self._lock:
            self.rejected.append(reason)
        return JSONResponse({"detail": reason}, status_code=status)

    def __enter__(self) -> Self:
        self.server.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.server.stop()
