"""The LLM as the rest of the app sees it: configured or not, one HTTP client."""

from __future__ import annotations

from typing import TypeVar

import httpx
from pydantic import BaseModel

from outreach.config import Settings, get_settings
from outreach.llm.client import ChatClient, Completion, LLMNotConfigured, Message
from outreach.llm.writer import BuiltInWriter, LLMWriter, Writer

M = TypeVar("M", bound=BaseModel)


class LLMService:
    """Holds the one ``httpx.AsyncClient`` used for the model endpoint (created on
    first use, closed by the app lifespan) and builds clients and writers from the
    current settings."""

    def __init__(self) -> None:
        self._http: httpx.AsyncClient | None = None

    def configured(self, settings: Settings | None = None) -> bool:
        settings = settings or get_settings()
        return bool(settings.llm_base_url and settings.llm_model)

    def client(self, settings: Settings | None = None) -> ChatClient:
        """A chat client for the configured endpoint; :class:`LLMNotConfigured` if none."""
        settings = settings or get_settings()
        if not (settings.llm_base_url and settings.llm_model):
            raise LLMNotConfigured("set OUTREACH_LLM_BASE_URL and OUTREACH_LLM_MODEL")
        if self._http is None or self._http.is_closed:
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(settings.llm_timeout_seconds),
                limits=httpx.Limits(max_connections=20),
            )
        return ChatClient(
            self._http,
            base_url=settings.llm_base_url,
            model=settings.llm_model,
            api_key=settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
            timeout=settings.llm_timeout_seconds,
            max_retries=settings.llm_max_retries,
        )

    def writer(self, settings: Settings | None = None) -> Writer:
        """The LLM writer when a model is configured, else the built-in one."""
        if self.configured(settings):
            return LLMWriter(self.client(settings))
        return BuiltInWriter()

    async def complete(
        self, messages: list[Message], *, temperature: float = 0.2, max_tokens: int | None = None
    ) -> Completion:
        """One chat completion from the configured model (raises ``LLMError``)."""
        return await self.client().complete(
            messages, temperature=temperature, max_tokens=max_tokens
        )

    async def complete_json(
        self,
        messages: list[Message],
        schema: type[M],
        *,
        temperature: float = 0.2,
        max_tokens: int | None = None,
    ) -> M:
        """A completion validated against ``schema`` (raises ``LLMError``)."""
        return await self.client().complete_json(
            messages, schema, temperature=temperature, max_tokens=max_tokens
        )

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None


llm_service = LLMService()
