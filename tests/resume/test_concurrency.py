"""Two analyses at once cannot both take the last free one (really committed)."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from outreach.app import create_app
from outreach.config import Settings, use_settings
from outreach.kit.db import Database
from outreach.models import LedgerEntry, ResumeAnalysis
from tests.conftest import make_client, sign_in
from tests.resume import documents
from tests.resume.conftest import uploaded


async def test_concurrent_analyses_take_one_free_and_charge_the_other(
    settings: Settings, committing_database: Database
) -> None:
    app = create_app(settings, database=committing_database)
    try:
        async with (
            app.router.lifespan_context(app),
            make_client(app) as first,
            make_client(app) as second,
        ):
            # Two browsers (two sessions) of one user.
            await sign_in(first, "race@example.in")
            await sign_in(second, "race@example.in")
            resume = await uploaded(first, documents.pdf_resume())
            body = {"resume_id": resume["id"]}
            responses = await asyncio.gather(
                first.post("/v1/resume/analyze", json=body),
                second.post("/v1/resume/analyze", json=body),
            )
            assert [r.status_code for r in responses] == [200, 200]
            assert sorted(r.json()["free"] for r in responses) == [False, True]
        async with committing_database.session() as session:
            free = await session.scalar(
                select(func.count()).select_from(ResumeAnalysis).where(ResumeAnalysis.free)
            )
            charges = await session.scalar(
                select(func.count())
                .select_from(LedgerEntry)
                .where(LedgerEntry.reason == "resume_analysis")
            )
        assert (free, charges) == (1, 1)
    finally:
        use_settings(settings)
