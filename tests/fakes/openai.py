"""A fake OpenAI-compatible chat completions API for tests (``POST /v1/chat/completions``).

Served on 127.0.0.1 by ``FakeServer``; point ``llm_base_url`` at ``fake.base_url``::

    async def test_writer(fake_openai: FakeOpenAI) -> None:
        fake_openai.reset()
        fake_openai.replies.append({"summary": "…", "bullet_rewrites": []})
        fake_openai.failures.extend([429, 500])      # answered before the reply
        ...
        assert fake_openai.requests[-1]["model"] == "fake-model"

It checks what the real API would refuse: the bearer key, a JSON body with
``model`` and a non-empty ``messages`` list of ``{role, content}`` with a known
role, and ``response_format`` of ``json_object``/``text``/``json_schema``. It
answers like OpenAI: ``chat.completion`` objects with ``choices`` and
``usage``, errors as ``{"error": {"message", "type", "code"}}``, and 429s with
``Retry-After``. A reply that is a dict is sent as JSON text; a string as is.
With no reply queued it echoes the last user message.

State is plain data shared with the server's thread.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakes.server import FakeServer

FAKE_API_KEY = "sk-fake-test-key"
FAKE_MODEL = "fake-model"
_ROLES = {"system", "user", "assistant", "developer", "tool"}


def _error(status: int, message: str, kind: str, code: str | None = None) -> JSONResponse:
    headers = {"Retry-After": "0"} if status == 429 else None
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": code}},
        status_code=status,
        headers=headers,
    )


class FakeOpenAI:
    def __init__(self) -> None:
        self.server = FakeServer(
            Starlette(
                routes=[
                    Route("/v1/chat/completions", self._chat, methods=["POST"]),
                ]
            )
        )
        self.reset()

    def reset(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.replies: list[dict[str, Any] | str] = []
        self.failures: list[int] = []  # statuses to answer with first, in order
        self.delay_seconds = 0.0

    @property
    def base_url(self) -> str:
        return f"{self.server.url}/v1"

    def _invalid(self, body: Any) -> str | None:
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            return "you must provide a model parameter"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "'messages' must be a non-empty array"
        for message in messages:
            if not isinstance(message, dict) or message.get("role") not in _ROLES:
                return "each message needs a valid 'role'"
            if not isinstance(message.get("content"), str):
                return "each message needs string 'content'"
        response_format = body.get("response_format")
        if response_format is not None and response_format.get("type") not in (
            "text",
            "json_object",
            "json_schema",
        ):
            return "invalid response_format"
        return None

    async def _chat(self, request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {FAKE_API_KEY}":
            return _error(
                401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key"
            )
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error(400, "We could not parse the JSON body", "invalid_request_error")
        problem = self._invalid(body)
        if problem:
            return _error(400, problem, "invalid_request_error")
        # Bound now: a slow request outliving its test must not take the next test's replies.
        failures, replies = self.failures, self.replies
        self.requests.append(body)
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        if failures:
            status = failures.pop(0)
            return _error(
                status,
                "Rate limit reached" if status == 429 else "Server error",
                "requests" if status == 429 else "server_error",
            )
        if replies:
            reply = replies.pop(0)
            content = reply if isinstance(reply, str) else json.dumps(reply)
        else:
            content = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
        prompt_tokens = sum(len(m["content"].split()) for m in body["messages"])
        completion_tokens = len(content.split())
        return JSONResponse(
            {
                "id": f"chatcmpl-fake{len(self.requests)}",
                "object": "chat.completion",
                "created": 1_780_000_000,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        )


@pytest.fixture(scope="session")
def fake_openai_server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    with fake.server:
        yield fake


@pytest.fixture
def fake_openai(fake_openai_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    fake_openai_server.reset()
    yield fake_openai_server
    fake_openai_server.reset()
