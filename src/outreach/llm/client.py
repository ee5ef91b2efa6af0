"""A small async client for any OpenAI-compatible ``/chat/completions`` endpoint
(OpenAI, Azure-style proxies, vLLM, Ollama, LM Studio, OpenRouter, ...)."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from outreach.kit.logging import get_logger

log = get_logger("outreach.llm")

M = TypeVar("M", bound=BaseModel)
_RETRYABLE = {408, 409, 429, 500, 502, 503, 504}
_MAX_RETRY_AFTER = 30.0


class LLMError(Exception):
    """The model could not answer (not configured, unreachable, refused, or gave garbage)."""


class LLMNotConfigured(LLMError):
    pass


@dataclass(frozen=True)
class Message:
    role: str  # system | user | assistant
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


@dataclass(frozen=True)
class Completion:
    content: str
    model: str
    usage: Usage
    finish_reason: str | None


class ChatClient:
    """Chat completions against one endpoint and model. Retries 408/409/429/5xx and
    connection errors with exponential backoff (``Retry-After`` honoured, capped)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        model: str,
        api_key: str | None,
        timeout: float = 30.0,
        max_retries: int = 2,
        backoff_seconds: float = 0.5,
    ) -> None:
        self.http = http
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds

    async def complete(
        self,
        messages: list[Message],
        *,
        temperature: float = 0.2,
        max_tokens: int | None = None,
        json_output: bool = False,
    ) -> Completion:
        """One completion; raises :class:`LLMError` after the last failed attempt."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [m.as_dict() for m in messages],
            "temperature": temperature,
        }
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if json_output:
            body["response_format"] = {"type": "json_object"}
        data = await self._post(body)
        return self._completion(data)

    async def complete_json(
        self,
        messages: list[Message],
        schema: type[M],
        *,
        temperature: float = 0.2,
        max_tokens: int | None = None,
    ) -> M:
        """A completion parsed as JSON and validated by ``schema``. One invalid answer
        is sent back to the model with the validation error before giving up."""
        conversation = list(messages)
        for attempt in range(2):
            completion = await self.complete(
                conversation, temperature=temperature, max_tokens=max_tokens, json_output=True
            )
            try:
                return schema.model_validate(json.loads(_strip_fences(completion.content)))
            except (ValueError, ValidationError) as exc:
                log.warning("llm answer invalid", model=self.model, attempt=attempt + 1)
                error = str(exc)[:500]
                conversation = [
                    *messages,
                    Message("assistant", completion.content[:4000]),
                    Message(
                        "user",
                        f"That was not valid JSON for the schema ({error}). "
                        "Answer again with only the JSON object.",
                    ),
                ]
        raise LLMError("the model did not return valid JSON")

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                response = await self.http.post(
                    self.url, json=body, headers=headers, timeout=self.timeout
                )
            except httpx.TransportError as exc:  # connection refused/reset, timeouts
                if last:
                    raise LLMError(
                        f"the model endpoint is unreachable: {type(exc).__name__}"
                    ) from exc
                await asyncio.sleep(self._delay(attempt, None))
                continue
            if response.status_code in _RETRYABLE and not last:
                log.info("llm retry", status=response.status_code, attempt=attempt + 1)
                await asyncio.sleep(self._delay(attempt, response.headers.get("retry-after")))
                continue
            if response.status_code != 200:
                raise LLMError(f"the model endpoint answered {response.status_code}")
            try:
                data: dict[str, Any] = response.json()
            except ValueError as exc:
                raise LLMError("the model endpoint answered with something not JSON") from exc
            return data
        raise LLMError("unreachable")  # pragma: no cover - the loop returns or raises

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after is not None:
            try:
                return min(max(float(retry_after), 0.0), _MAX_RETRY_AFTER)
            except ValueError:
                pass
        return float(self.backoff_seconds * (2**attempt))

    def _completion(self, data: dict[str, Any]) -> Completion:
        try:
            choice = data["choices"][0]
            content = choice["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise LLMError("the model's answer has no message") from exc
        if not isinstance(content, str):
            raise LLMError("the model's answer has no text")
        raw_usage = data.get("usage") or {}
        usage = Usage(
            prompt_tokens=int(raw_usage.get("prompt_tokens", 0) or 0),
            completion_tokens=int(raw_usage.get("completion_tokens", 0) or 0),
            total_tokens=int(raw_usage.get("total_tokens", 0) or 0),
        )
        model = str(data.get("model") or self.model)
        log.info(
            "llm completion",
            model=model,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
        )
        return Completion(content, model, usage, choice.get("finish_reason"))


def _strip_fences(content: str) -> str:
    """Models asked for JSON sometimes wrap it in a Markdown code fence."""
    match = re.fullmatch(r"\s*```(?:json)?\s*(.*?)\s*```\s*", content, re.DOTALL)
    return match.group(1) if match else content
