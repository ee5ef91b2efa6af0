"""The resume API end to end: upload, read, analyse, quota, delete."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.kit.clock import Clock
from outreach.models import LedgerEntry, Resume
from outreach.resume.rubric import RUBRIC_VERSION
from tests.conftest import make_client, sign_in
from tests.resume import documents
from tests.resume.conftest import DOCX_TYPE, upload, uploaded

JOB_DESCRIPTION = """Senior Backend Engineer - Bengaluru

About us: we build payment infrastructure for Indian businesses.

Requirements:
- 4+ years of experience building backend services.
- Strong Python and PostgreSQL skills.
- Experience with Docker and Kubernetes on AWS.
- You have designed REST APIs used at scale.
- Hands-on experience with Golang services.

Nice to have:
- Kafka or RabbitMQ.
- Terraform and Prometheus experience is a plus.
"""


class TestUpload:
    async def test_docx_with_indian_name_phone_and_table_parses(
        self, user_client: httpx.AsyncClient, app: FastAPI
    ) -> None:
        response = await upload(user_client, documents.docx_resume(), "Priya CV.docx", DOCX_TYPE)
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["kind"] == "docx"
        assert body["file_name"] == "Priya CV.docx"
        assert body["contact"]["name"] == "Priya Venkataraman"
        assert body["contact"]["email"] == "priya.venkat@example.in"
        assert body["contact"]["phone_e164"] == "+919876543210"
        assert body["contact"]["linkedin"] == "linkedin.com/in/priya-venkataraman"
        assert body["contact"]["github"] == "github.com/priyav"
        assert {
            "summary",
            "experience",
            "education",
            "skills",
            "projects",
            "certifications",
        } <= set(body["sections"])
        # Skills sat in a table: its cells were read.
        assert {"Kafka", "Redis", "Kubernetes", "REST APIs"} <= set(body["skills"])
        assert body["layout"]["tables"] == 1
        assert body["years_experience"] >= 6.5

    async def test_pdf_type_is_decided_by_content_not_name(
        self, user_client: httpx.AsyncClient
    ) -> None:
        response = await upload(user_client, documents.pdf_resume(), "resume.docx", DOCX_TYPE)
        assert response.status_code == 201, response.text
        assert response.json()["kind"] == "pdf"
        assert response.json()["page_count"] == 1

    async def test_stored_under_a_random_key_not_the_file_name(
        self, user_client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        body = await uploaded(user_client, documents.pdf_resume(), "my resume.pdf")
        resume = await session.get(Resume, uuid.UUID(body["id"]))
        assert resume is not None
        assert "my resume" not in resume.file_key
        assert resume.file_key.startswith(f"resumes/{resume.user_id}/")

    async def test_over_the_size_limit_is_413(self, started_app, database) -> None:
        app = await started_app(resume_max_bytes=1000)
        async with make_client(app) as client:
            await sign_in(client, "big@example.in")
            response = await upload(client, documents.pdf_resume() + b" " * 2000)
        assert response.status_code == 413
        assert response.json()["code"] == "file_too_large"

    async def test_needs_sign_in(self, client: httpx.AsyncClient) -> None:
        response = await upload(client, documents.pdf_resume())
        assert response.status_code == 401


class TestReadAndDelete:
    async def test_latest_list_get_and_delete(
        self, user_client: httpx.AsyncClient, app: FastAPI, session: AsyncSession
    ) -> None:
        assert (await user_client.get("/v1/resume/latest")).status_code == 404
        first = await uploaded(user_client, documents.pdf_resume())
        second = await uploaded(user_client, documents.docx_resume(), "cv.docx")
        latest = (await user_client.get("/v1/resume/latest")).json()
        assert latest["resume"]["id"] == second["id"]
        assert latest["latest_analysis"] is None
        listed = (await user_client.get("/v1/resumes?limit=1")).json()
        assert [item["id"] for item in listed["items"]] == [second["id"]]
        more = (await user_client.get(f"/v1/resumes?limit=1&cursor={listed['next_cursor']}")).json()
        assert [item["id"] for item in more["items"]] == [first["id"]]

        resume = await session.get(Resume, uuid.UUID(second["id"]))
        assert resume is not None
        key = resume.file_key
        assert (await user_client.delete(f"/v1/resumes/{second['id']}")).status_code == 204
        assert not await app.state.storage.exists(key)
        assert (await user_client.get(f"/v1/resumes/{second['id']}")).status_code == 404
        assert (await user_client.get("/v1/resume/latest")).json()["resume"]["id"] == first["id"]

    async def test_another_users_resume_is_404(self, app: FastAPI) -> None:
        async with make_client(app) as owner, make_client(app) as other:
            await sign_in(owner, "owner@example.in")
            await sign_in(other, "other@example.in")
            body = await uploaded(owner, documents.pdf_resume())
            assert (await other.get(f"/v1/resumes/{body['id']}")).status_code == 404
            assert (await other.delete(f"/v1/resumes/{body['id']}")).status_code == 404
            response = await other.post("/v1/resume/analyze", json={"resume_id": body["id"]})
            assert response.status_code == 404
            assert (await owner.get(f"/v1/resumes/{body['id']}")).status_code == 200


class TestAnalyze:
    async def test_report_against_a_job_description(self, user_client: httpx.AsyncClient) -> None:
        resume = await uploaded(user_client, documents.docx_resume(), "cv.docx")
        response = await user_client.post(
            "/v1/resume/analyze",
            json={"resume_id": resume["id"], "job_description": JOB_DESCRIPTION},
        )
        assert response.status_code == 200, response.text
        report = response.json()
        assert report["rubric_version"] == RUBRIC_VERSION
        assert 0 <= report["score"] <= 100
        assert report["scored"] is True
        assert {s["name"] for s in report["sub_scores"]} == {
            "sections",
            "contact",
            "keywords",
            "quantified_achievements",
            "action_verbs",
            "length_and_formatting",
        }
        assert report["score"] == sum(s["score"] for s in report["sub_scores"])
        keywords = report["keywords"]
        assert keywords["basis"] == "job_description"
        must = {k["keyword"]: k for k in keywords["must_have"]}
        nice = {k["keyword"]: k for k in keywords["nice_to_have"]}
        assert must["Python"]["strict"] is True
        assert "Kafka" in nice
        assert nice["Kafka"]["strict"] is True
        assert "Terraform" in nice
        assert nice["Terraform"]["lenient"] is False
        # Golang: missing strictly; the resume does not say Go either.
        missing = {m["keyword"]: m for m in keywords["missing"]}
        assert "Golang services" in missing["Golang"]["jd_sentence"]
        assert missing["Golang"]["importance"] == "must_have"
        assert any(flag["code"] == "tables" for flag in report["red_flags"])
        assert report["ats_view"]["email"] == "priya.venkat@example.in"
        assert report["writer"] == "built-in"
        assert report["analyzers"]["score"] == f"rubric:{RUBRIC_VERSION}"
        assert report["summary"]
        rewrites = {r["original"]: r["suggested"] for r in report["bullet_rewrites"]}
        weak = "Responsible for maintaining REST APIs in Java Spring Boot for a banking client"
        assert rewrites[weak].startswith("Maintained REST APIs")
        assert report["free"] is True
        assert report["credits_charged"] == 0

    async def test_same_file_gets_the_same_score(self, user_client: httpx.AsyncClient) -> None:
        one = await uploaded(user_client, documents.pdf_resume())
        two = await uploaded(user_client, documents.pdf_resume())
        first = await user_client.post(
            "/v1/resume/analyze", json={"resume_id": one["id"], "target_role": "backend developer"}
        )
        second = await user_client.post(
            "/v1/resume/analyze", json={"resume_id": two["id"], "target_role": "backend developer"}
        )
        assert first.status_code == second.status_code == 200
        a, b = first.json(), second.json()
        assert a["score"] == b["score"]
        assert a["sub_scores"] == b["sub_scores"]
        assert a["keywords"]["basis"] == "target_role"
        assert a["keywords"]["role"] == "Backend Engineer"

    async def test_image_heavy_layout_is_flagged_not_scored_as_garbage(
        self, user_client: httpx.AsyncClient
    ) -> None:
        resume = await uploaded(
            user_client, documents.pdf_resume(["Priya Venkataraman", *["Python"] * 20])
        )
        report = (
            await user_client.post("/v1/resume/analyze", json={"resume_id": resume["id"]})
        ).json()
        assert report["score"] is None
        assert report["scored"] is False
        assert report["sub_scores"] == []
        assert {f["code"] for f in report["red_flags"]} >= {"too_little_text"}

    async def test_two_column_pdf_is_flagged(self, user_client: httpx.AsyncClient) -> None:
        resume = await uploaded(user_client, documents.two_column_pdf())
        assert resume["layout"]["columns"] == 1
        report = (
            await user_client.post("/v1/resume/analyze", json={"resume_id": resume["id"]})
        ).json()
        assert "multiple_columns" in {f["code"] for f in report["red_flags"]}

    async def test_contact_only_in_header_is_flagged(self, user_client: httpx.AsyncClient) -> None:
        resume = await uploaded(
            user_client, documents.docx_resume(contact_in_header=True), "cv.docx"
        )
        assert resume["contact"]["email"] == "priya.venkat@example.in"
        assert resume["layout"]["contact_only_in_header_footer"] is True
        report = (
            await user_client.post("/v1/resume/analyze", json={"resume_id": resume["id"]})
        ).json()
        assert "contact_in_header_footer" in {f["code"] for f in report["red_flags"]}

    async def test_latest_shows_the_latest_analysis(self, user_client: httpx.AsyncClient) -> None:
        resume = await uploaded(user_client, documents.pdf_resume())
        analysis = (
            await user_client.post("/v1/resume/analyze", json={"resume_id": resume["id"]})
        ).json()
        latest = (await user_client.get("/v1/resume/latest")).json()
        assert latest["latest_analysis"]["id"] == analysis["id"]

    async def test_unknown_fields_are_422(self, user_client: httpx.AsyncClient) -> None:
        response = await user_client.post(
            "/v1/resume/analyze", json={"resume_id": str(uuid.uuid4()), "score": 100}
        )
        assert response.status_code == 422


class TestQuota:
    async def test_one_free_then_five_credits_then_402(
        self, user_client: httpx.AsyncClient, session: AsyncSession, frozen_clock: Clock
    ) -> None:
        resume = await uploaded(user_client, documents.pdf_resume())
        quota = (await user_client.get("/v1/resume/quota")).json()
        assert quota == {
            "free_per_30_days": 1,
            "free_used": 0,
            "free_remaining": 1,
            "next_free_at": None,
            "price_after_free": 5,
            "balance": 20,
        }
        body = {"resume_id": resume["id"]}
        free = (await user_client.post("/v1/resume/analyze", json=body)).json()
        assert free["free"] is True
        assert free["credits_charged"] == 0
        for _ in range(4):
            paid = (await user_client.post("/v1/resume/analyze", json=body)).json()
            assert paid["free"] is False
            assert paid["credits_charged"] == 5
        quota = (await user_client.get("/v1/resume/quota")).json()
        assert quota["balance"] == 0
        assert quota["free_remaining"] == 0
        short = await user_client.post("/v1/resume/analyze", json=body)
        assert short.status_code == 402
        assert short.json()["code"] == "insufficient_credits"
        assert short.json()["required"] == 5
        assert short.json()["available"] == 0
        charges = await session.scalar(
            select(func.count())
            .select_from(LedgerEntry)
            .where(LedgerEntry.reason == "resume_analysis")
        )
        assert charges == 4
        # A month later the free analysis is back.
        frozen_clock.advance(timedelta(days=30, seconds=1))
        await sign_in(user_client, "priya@example.in")  # the old session has expired
        again = await user_client.post("/v1/resume/analyze", json=body)
        assert again.status_code == 200
        assert again.json()["free"] is True

    async def test_idempotency_key_charges_once(
        self, user_client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        resume = await uploaded(user_client, documents.pdf_resume())
        body = {"resume_id": resume["id"], "target_role": "Data Analyst"}
        await user_client.post("/v1/resume/analyze", json=body)  # the free one
        headers = {"Idempotency-Key": "analyse-1"}
        first = await user_client.post("/v1/resume/analyze", json=body, headers=headers)
        replay = await user_client.post("/v1/resume/analyze", json=body, headers=headers)
        assert first.status_code == replay.status_code == 200
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.json()["id"] == first.json()["id"]
        assert (await user_client.get("/v1/resume/quota")).json()["balance"] == 15


class TestAnalyzeWithLLM:
    async def test_llm_writes_summary_and_rewrites_but_not_the_score(
        self, llm_client: httpx.AsyncClient, fake_openai
    ) -> None:
        resume = await uploaded(llm_client, documents.docx_resume(), "cv.docx")
        fake_openai.replies.append(
            {
                "summary": "Solid fintech backend profile. Score: 100/100!",
                "bullet_rewrites": [
                    {
                        "original": "Worked on the Docker based build pipeline and Jenkins "
                        "jobs of the team",
                        "suggested": "Rebuilt the Docker and Jenkins pipeline, cutting build "
                        "time by [N]%",
                    }
                ],
            }
        )
        report = (
            await llm_client.post("/v1/resume/analyze", json={"resume_id": resume["id"]})
        ).json()
        assert report["writer"] == "llm:fake-model"
        assert report["analyzers"] == {
            "score": f"rubric:{RUBRIC_VERSION}",
            "suggestions": f"rubric:{RUBRIC_VERSION}",
            "summary": "llm:fake-model",
            "bullet_rewrites": "llm:fake-model",
        }
        assert report["summary"].startswith("Solid fintech")
        assert report["bullet_rewrites"][0]["suggested"].startswith("Rebuilt")
        # The score is the rubric's, whatever the model says.
        assert report["score"] == sum(s["score"] for s in report["sub_scores"]) != 100

    async def test_llm_failure_falls_back_to_the_built_in_writer(
        self, llm_client: httpx.AsyncClient, fake_openai
    ) -> None:
        resume = await uploaded(llm_client, documents.pdf_resume())
        fake_openai.failures.extend([503, 503, 503])
        response = await llm_client.post("/v1/resume/analyze", json={"resume_id": resume["id"]})
        assert response.status_code == 200
        report = response.json()
        assert report["writer"] == "built-in"
        assert "llm:fake-model was unavailable" in report["writer_note"]
