"""The OpenAI-compatible client against a local fake speaking the same protocol."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import BaseModel, SecretStr

from outreach.config import Settings
from outreach.llm.client import ChatClient, LLMError, LLMNotConfigured, Message
from outreach.llm.service import LLMService
from outreach.llm.writer import (
    BUILT_IN,
    BuiltInWriter,
    LLMWriter,
    ResumeFeedbackRequest,
)
from tests.fakes.openai import FAKE_API_KEY, FAKE_MODEL, FakeOpenAI


class Verdict(BaseModel):
    label: str
    confidence: float


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def _client(http: httpx.AsyncClient, fake: FakeOpenAI, **overrides: object) -> ChatClient:
    options: dict = {
        "base_url": fake.base_url,
        "model": FAKE_MODEL,
        "api_key": FAKE_API_KEY,
        "timeout": 5.0,
        "max_retries": 2,
        "backoff_seconds": 0.01,
    }
    options.update(overrides)
    return ChatClient(http, **options)


async def test_completion_and_usage(http: httpx.AsyncClient, fake_openai: FakeOpenAI) -> None:
    fake_openai.replies.append("Namaste!")
    completion = await _client(http, fake_openai).complete(
        [Message("system", "Be brief."), Message("user", "Greet me")], max_tokens=20
    )
    assert completion.content == "Namaste!"
    assert completion.model == FAKE_MODEL
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 1
    sent = fake_openai.requests[-1]
    assert sent["messages"][1] == {"role": "user", "content": "Greet me"}
    assert sent["max_tokens"] == 20


async def test_retries_429_and_5xx_then_succeeds(
    http: httpx.AsyncClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.failures.extend([429, 503])
    fake_openai.replies.append("ok")
    assert (await _client(http, fake_openai).complete([Message("user", "hi")])).content == "ok"
    assert len(fake_openai.requests) == 3


async def test_gives_up_after_the_last_retry(
    http: httpx.AsyncClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.failures.extend([500, 500, 500, 500])
    with pytest.raises(LLMError, match="500"):
        await _client(http, fake_openai).complete([Message("user", "hi")])
    assert len(fake_openai.requests) == 3


async def test_a_client_error_is_not_retried(
    http: httpx.AsyncClient, fake_openai: FakeOpenAI
) -> None:
    with pytest.raises(LLMError, match="401"):
        await _client(http, fake_openai, api_key="sk-wrong").complete([Message("user", "hi")])
    assert fake_openai.requests == []


async def test_timeout_is_an_llm_error(http: httpx.AsyncClient, fake_openai: FakeOpenAI) -> None:
    fake_openai.delay_seconds = 1.0
    client = _client(http, fake_openai, timeout=0.2, max_retries=0)
    with pytest.raises(LLMError, match="unreachable"):
        await client.complete([Message("user", "hi")])


async def test_unreachable_endpoint(http: httpx.AsyncClient, fake_openai: FakeOpenAI) -> None:
    client = _client(http, fake_openai, base_url="http://127.0.0.1:9/v1", max_retries=1)
    with pytest.raises(LLMError, match="unreachable"):
        await client.complete([Message("user", "hi")])


async def test_json_output_is_validated(http: httpx.AsyncClient, fake_openai: FakeOpenAI) -> None:
    fake_openai.replies.append('```json\n{"label": "good", "confidence": 0.9}\n```')
    verdict = await _client(http, fake_openai).complete_json([Message("user", "rate")], Verdict)
    assert verdict == Verdict(label="good", confidence=0.9)
    assert fake_openai.requests[-1]["response_format"] == {"type": "json_object"}


async def test_invalid_json_is_sent_back_once_then_refused(
    http: httpx.AsyncClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.replies.extend(['{"label": "good"}', {"label": "good", "confidence": 0.5}])
    verdict = await _client(http, fake_openai).complete_json([Message("user", "rate")], Verdict)
    assert verdict.confidence == 0.5
    assert "not valid JSON for the schema" in fake_openai.requests[-1]["messages"][-1]["content"]

    fake_openai.replies.extend(["nope", "still nope"])
    with pytest.raises(LLMError, match="valid JSON"):
        await _client(http, fake_openai).complete_json([Message("user", "rate")], Verdict)


class TestService:
    async def test_not_configured_means_the_built_in_writer(self, settings: Settings) -> None:
        service = LLMService()
        assert not service.configured(settings)
        assert service.writer(settings).name == BUILT_IN
        with pytest.raises(LLMNotConfigured):
            service.client(settings)

    async def test_configured_means_the_llm_writer(
        self, settings: Settings, fake_openai: FakeOpenAI
    ) -> None:
        configured = settings.model_copy(
            update={
                "llm_base_url": fake_openai.base_url,
                "llm_model": FAKE_MODEL,
                "llm_api_key": SecretStr(FAKE_API_KEY),
            }
        )
        service = LLMService()
        try:
            writer = service.writer(configured)
            assert writer.name == f"llm:{FAKE_MODEL}"
            fake_openai.replies.append("pong")
            client = service.client(configured)
            assert (await client.complete([Message("user", "ping")])).content == "pong"
        finally:
            await service.aclose()


FEEDBACK = ResumeFeedbackRequest(
    score=71,
    target="Backend Engineer",
    years_experience=6.4,
    skills=["Python", "SQL"],
    strongest=["contact"],
    weakest=["quantified_achievements"],
    missing_keywords=["Golang"],
    bullets=["Responsible for managing the deployment pipeline", "Worked on payment APIs"],
)


async def test_built_in_writer_is_deterministic() -> None:
    first = await BuiltInWriter().resume_feedback(FEEDBACK)
    second = await BuiltInWriter().resume_feedback(FEEDBACK)
    assert first == second
    assert "71/100" in first.summary
    assert "Golang" in first.summary
    suggested = [r.suggested for r in first.bullet_rewrites]
    assert suggested[0].startswith("Managed the deployment pipeline")
    assert suggested[1].startswith("Payment APIs") or suggested[1].startswith("Payment")


async def test_llm_writer_keeps_only_rewrites_of_our_bullets(
    http: httpx.AsyncClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.replies.append(
        {
            "summary": "Strong backend profile; quantify more.",
            "bullet_rewrites": [
                {
                    "original": "Worked on payment APIs",
                    "suggested": "Built payment APIs for [N] merchants",
                },
                {"original": "Invented bullet", "suggested": "Won a Nobel prize"},
            ],
        }
    )
    feedback = await LLMWriter(_client(http, fake_openai)).resume_feedback(FEEDBACK)
    assert feedback.summary.startswith("Strong backend")
    assert [r.original for r in feedback.bullet_rewrites] == ["Worked on payment APIs"]
    prompt = fake_openai.requests[-1]["messages"][1]["content"]
    assert '"score_out_of_100": 71' in prompt
