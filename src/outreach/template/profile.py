"""The sender's side of personalisation: ``sender.*`` variables."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from outreach.models import User

ProfileSource = Callable[[AsyncSession, User], Awaitable[dict[str, Any]]]
_sources: list[ProfileSource] = []


def register_profile_source(source: ProfileSource) -> None:
    """Other domains (the resume) add highlights: target_role, top_skills, years_experience."""
    _sources.append(source)


async def sender_profile(session: AsyncSession, *, user: User) -> dict[str, Any]:
    profile: dict[str, Any] = {"name": user.name, "email": user.email}
    for source in _sources:
        profile |= {k: v for k, v in (await source(session, user)).items() if v not in (None, "")}
    return profile
