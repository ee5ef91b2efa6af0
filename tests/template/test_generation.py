"""AI-written drafts: the built-in writer (resume skills, merge variables, role) and an
OpenAI-compatible model through a local fake server."""

from __future__ import annotations

import uuid

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.config import Settings, use_settings
from outreach.models import User
from outreach.models.resume import Resume
from tests.conftest import sign_in
from tests.fakes.openai import FAKE_API_KEY, FAKE_MODEL, FakeOpenAI


async def add_resume(session: AsyncSession, user_id: str) -> Resume:
    resume = Resume(
        user_id=uuid.UUID(user_id),
        file_key=f"resumes/{uuid.uuid4()}",
        file_name="cv.pdf",
        kind="pdf",
        size_bytes=10,
        sha256="0" * 64,
        page_count=1,
        text="...",
        sections={},
        contact={},
        skills=["Python", "Airflow", "PostgreSQL", "Kubernetes"],
        years_experience=4.5,
        layout={},
    )
    session.add(resume)
    await session.flush()
    return resume


async def test_built_in_writer_uses_real_skills_and_merge_variables(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    me = await sign_in(client, "asha@example.com", "Asha Rao")
    await add_resume(session, me["id"])
    response = await client.post(
        "/v1/templates/generate",
        json={"target_role": "Data Engineer", "job_description": "We need Kubernetes and Airflow."},
    )
    assert response.status_code == 200, response.text
    draft = response.json()
    assert draft["writer"] == "built-in"
    assert draft["skills_used"] == ["Airflow", "Kubernetes", "Python"]
    assert "Airflow" in draft["body_text"]
    assert "4+ years" in draft["body_text"]
    assert "{{ first_name | default('there') }}" in draft["body_text"]
    assert "Data Engineer" in draft["subject"]
    assert draft["charged_credits"] == 2
    assert (await client.get("/v1/credits/balance")).json()["balance"] == 18

    other = (
        await client.post("/v1/templates/generate", json={"target_role": "ML Engineer"})
    ).json()
    assert other["body_text"] != draft["body_text"]
    assert "ML Engineer" in other["body_text"]


async def test_same_inputs_same_words_and_idempotent_charge(client: httpx.AsyncClient) -> None:
    await sign_in(client, "asha@example.com", "Asha")
    body = {"target_role": "SRE", "tone": "direct", "length": "long", "company": "Zoho"}
    headers = {"Idempotency-Key": "gen-1"}
    first = await client.post("/v1/templates/generate", json=body, headers=headers)
    again = await client.post("/v1/templates/generate", json=body, headers=headers)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    third = await client.post("/v1/templates/generate", json=body)
    assert third.json()["body_text"] == first.json()["body_text"]
    assert (await client.get("/v1/credits/balance")).json()["balance"] == 20 - 4


async def test_saved_draft_renders_with_footer(client: httpx.AsyncClient) -> None:
    await sign_in(client, "asha@example.com", "Asha Rao")
    draft = (
        await client.post(
            "/v1/templates/generate", json={"target_role": "Analyst", "save_as": "AI intro"}
        )
    ).json()
    template = draft["template"]
    assert template["source"] == "built-in"
    rendered = (await client.post(f"/v1/templates/{template['id']}/render", json={})).json()
    assert rendered["text"].startswith("Hi Priya,")
    assert "Asha Rao" in rendered["text"]
    assert "/u/" in rendered["text"]


async def test_short_balance_is_402_and_nothing_saved(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    me = await sign_in(client, "asha@example.com")
    user = await session.get(User, uuid.UUID(me["id"]))
    from outreach.credits.service import credit_service

    await credit_service.apply_ledger_entry(
        session, user_id=user.id, delta=-19, reason="verify", ref=None, idempotency_key="drain"
    )
    await session.flush()
    response = await client.post(
        "/v1/templates/generate", json={"target_role": "SRE", "save_as": "x"}
    )
    assert response.status_code == 402
    assert (await client.get("/v1/templates")).json()["items"] == []


@pytest.fixture
def llm_settings(settings: Settings, fake_openai: FakeOpenAI):  # type: ignore[no-untyped-def]
    changed = settings.model_copy(
        update={
            "llm_base_url": fake_openai.base_url,
            "llm_model": FAKE_MODEL,
            "llm_api_key": SecretStr(FAKE_API_KEY),
        }
    )
    use_settings(changed)
    yield changed
    use_settings(settings)


async def test_llm_draft_is_labelled_and_checked(
    client: httpx.AsyncClient,
    session: AsyncSession,
    fake_openai: FakeOpenAI,
    llm_settings: Settings,
) -> None:
    me = await sign_in(client, "asha@example.com", "Asha")
    await add_resume(session, me["id"])
    fake_openai.replies.append(
        {
            "subject": "Data Engineer at {{ company | default('your team') }}",
            "body_text": (
                "Hi {{ first_name | default('there') }}, I build pipelines with Airflow."
                "\n\n{{ sender.name }}"
            ),
        }
    )
    draft = (
        await client.post("/v1/templates/generate", json={"target_role": "Data Engineer"})
    ).json()
    assert draft["writer"] == f"llm:{FAKE_MODEL}"
    assert "pipelines with Airflow" in draft["body_text"]
    sent = fake_openai.requests[-1]
    assert "Airflow" in sent["messages"][1]["content"]


async def test_llm_draft_that_escapes_the_sandbox_is_not_used(
    client: httpx.AsyncClient, fake_openai: FakeOpenAI, llm_settings: Settings
) -> None:
    await sign_in(client, "asha@example.com", "Asha")
    fake_openai.replies.append(
        {
            "subject": "Hi {{ ''.__class__ }}",
            "body_text": "{% for x in y %}spam{% endfor %} and more words",
        }
    )
    draft = (await client.post("/v1/templates/generate", json={"target_role": "SRE"})).json()
    assert draft["writer"].startswith("built-in")
    assert "__class__" not in draft["subject"]


async def test_sender_profile_comes_from_the_resume(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    from outreach.models.resume_analysis import ResumeAnalysis

    me = await sign_in(client, "asha@example.com", "Asha Rao")
    resume = await add_resume(session, me["id"])
    session.add(
        ResumeAnalysis(
            user_id=resume.user_id,
            resume_id=resume.id,
            rubric_version="x",
            score=80,
            target_role="Data Engineer",
            free=True,
            credits_charged=0,
            writer="built-in",
            report={},
        )
    )
    await session.flush()
    template = (
        await client.post(
            "/v1/templates",
            json={
                "name": "p",
                "subject": "Hi",
                "body_text": "{{ sender.first_name }}: {{ sender.target_role }}, "
                "{{ sender.top_skills }}, {{ sender.years_experience }}",
            },
        )
    ).json()
    rendered = (await client.post(f"/v1/templates/{template['id']}/render", json={})).json()
    assert rendered["text"].startswith("Asha: Data Engineer, Python, Airflow, PostgreSQL, 4+ years")
