"""The mailbox domain's one HTTP client for Google (OAuth and Gmail), made on first use.

Call :func:`close_google_http` on shutdown (the app lifespan, the worker).
"""

from __future__ import annotations

import httpx

_client: httpx.AsyncClient | None = None


def google_http() -> httpx.AsyncClient:
    global _client
    if _client is None or _client.is_closed:
        from outreach.config import get_settings

        timeout = get_settings().gmail_timeout_seconds
        _client = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=10.0))
    return _client


async def close_google_http() -> None:
    global _client
    if _client is not None:
        await _client.aclose()
    _client = None
