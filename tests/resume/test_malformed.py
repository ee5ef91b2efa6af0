"""A corpus of bad files: each is a clear 4xx problem, the server stays up, nothing is stored."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.models import Resume
from tests.resume import documents
from tests.resume.conftest import DOCX_TYPE, upload

CORPUS: list[tuple[str, Callable[[], bytes], str, int, str]] = [
    # (case, file, file name, status, code or reason)
    ("renamed exe", documents.renamed_exe, "resume.pdf", 415, "unsupported_file_type"),
    ("empty file", lambda: b"", "resume.pdf", 422, "empty_file"),
    (
        "plain text",
        lambda: b"Priya Venkataraman, Python developer" * 20,
        "cv.docx",
        415,
        "unsupported_file_type",
    ),
    ("zip that is not a docx", documents.plain_zip, "cv.docx", 415, "unsupported_file_type"),
    ("image-only pdf", documents.image_only_pdf, "scan.pdf", 422, "no_text_layer"),
    ("encrypted pdf", documents.encrypted_pdf, "locked.pdf", 422, "encrypted_pdf"),
    ("corrupt pdf", documents.corrupt_pdf, "broken.pdf", 422, "corrupt_file"),
    (
        "pdf decompression bomb",
        documents.pdf_decompression_bomb,
        "bomb.pdf",
        422,
        "file_too_complex",
    ),
    ("docx zip bomb", documents.docx_zip_bomb, "bomb.docx", 422, "unsafe_file"),
    ("docx with 600 parts", documents.docx_many_entries, "many.docx", 422, "unsafe_file"),
    ("docx xml entity bomb", documents.docx_entity_bomb, "lol.docx", 422, "unsafe_file"),
    ("docx without text", documents.docx_without_text, "blank.docx", 422, "no_text"),
    ("truncated docx", lambda: documents.docx_resume()[:3000], "cut.docx", 422, "corrupt_file"),
]


async def _count(session: AsyncSession) -> int:
    return await session.scalar(select(func.count()).select_from(Resume)) or 0


@pytest.mark.parametrize(
    ("make", "name", "status", "code"),
    [pytest.param(make, name, status, code, id=case) for case, make, name, status, code in CORPUS],
)
async def test_bad_file_is_a_clear_problem(
    user_client: httpx.AsyncClient,
    session: AsyncSession,
    app: FastAPI,
    make: Callable[[], bytes],
    name: str,
    status: int,
    code: str,
) -> None:
    response = await upload(user_client, make(), name, DOCX_TYPE)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert code in (problem["code"], problem.get("reason"))
    assert problem["errors"][0]["loc"] == ["body", "file"]
    assert await _count(session) == 0
    # Still serving, and the pool still parses.
    ok = await upload(user_client, documents.pdf_resume())
    assert ok.status_code == 201


async def test_no_text_layer_hint_says_what_to_do(user_client: httpx.AsyncClient) -> None:
    response = await upload(user_client, documents.image_only_pdf(), "scan.pdf")
    assert "export" in response.json()["detail"]


@pytest.mark.parametrize("name", ["../../etc/passwd.pdf", "uploads/cv.pdf", "..\\cv.pdf"])
async def test_file_name_with_path_separators_is_refused(
    user_client: httpx.AsyncClient, session: AsyncSession, name: str
) -> None:
    response = await upload(user_client, documents.pdf_resume(), name)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_file_name"
    assert await _count(session) == 0


async def test_a_windows_path_keeps_only_its_last_part(user_client: httpx.AsyncClient) -> None:
    # The multipart parser already cuts an old browser's "C:\\…\\cv.pdf" to "cv.pdf".
    response = await upload(user_client, documents.pdf_resume(), "C:\\Users\\me\\cv.pdf")
    assert response.status_code == 201
    assert response.json()["file_name"] == "cv.pdf"


async def test_a_50_mb_upload_is_refused_before_parsing(user_client: httpx.AsyncClient) -> None:
    response = await upload(user_client, b"%PDF-1.7\n" + b"0" * (50 * 1024 * 1024))
    assert response.status_code == 413


async def test_owner_password_only_pdf_is_read(user_client: httpx.AsyncClient) -> None:
    response = await upload(user_client, documents.owner_only_encrypted_pdf())
    assert response.status_code == 201
    assert response.json()["contact"]["email"] == "priya.venkat@example.in"
