"""All SQL of the resume domain; per-user scoping lives in the readable statements."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.models import Resume, ResumeAnalysis, User


class ResumeRepository:
    def get_readable_statement(self, user: User) -> Select[Resume]:
        return select(Resume).where(Resume.user_id == user.id)

    async def get(self, session: AsyncSession, user: User, resume_id: uuid.UUID) -> Resume | None:
        resume: Resume | None = await session.scalar(
            self.get_readable_statement(user).where(Resume.id == resume_id)
        )
        return resume

    async def latest(self, session: AsyncSession, user: User) -> Resume | None:
        resume: Resume | None = await session.scalar(
            self.get_readable_statement(user)
            .order_by(Resume.created_at.desc(), Resume.id.desc())
            .limit(1)
        )
        return resume


class AnalysisRepository:
    def get_readable_statement(self, user: User) -> Select[ResumeAnalysis]:
        return select(ResumeAnalysis).where(ResumeAnalysis.user_id == user.id)

    async def latest_for(
        self, session: AsyncSession, user: User, resume_id: uuid.UUID
    ) -> ResumeAnalysis | None:
        analysis: ResumeAnalysis | None = await session.scalar(
            self.get_readable_statement(user)
            .where(ResumeAnalysis.resume_id == resume_id)
            .order_by(ResumeAnalysis.created_at.desc(), ResumeAnalysis.id.desc())
            .limit(1)
        )
        return analysis

    async def free_used_since(
        self, session: AsyncSession, user: User, since: datetime
    ) -> list[datetime]:
        """Creation times of the user's free analyses after ``since``, oldest first."""
        rows = await session.scalars(
            select(ResumeAnalysis.created_at)
            .where(
                ResumeAnalysis.user_id == user.id,
                ResumeAnalysis.free.is_(True),
                ResumeAnalysis.created_at > since,
            )
            .order_by(ResumeAnalysis.created_at)
        )
        return list(rows)

    async def lock_user(self, session: AsyncSession, user: User) -> None:
        """Serialise a user's analyses (PostgreSQL row lock; SQLite serialises writers),
        so two concurrent requests cannot both take the last free analysis."""
        await session.execute(select(User.id).where(User.id == user.id).with_for_update())


resume_repository = ResumeRepository()
analysis_repository = AnalysisRepository()
