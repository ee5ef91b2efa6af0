"""Referral codes, applying them, and the farming-resistant reward."""

from datetime import timedelta

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.credits.service import credit_service
from outreach.kit.clock import Clock
from outreach.models import ReferralReward
from outreach.referral.service import ReferralTrigger, referral_service
from tests.conftest import create_user, sign_in


class TestApply:
    async def test_apply_friend_code(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        friend = await create_user(session, "friend@example.com")
        await session.flush()
        await sign_in(client, "new@example.com")
        code = f"{friend.referral_code[:5]}-{friend.referral_code[5:]}".lower()
        response = await client.post("/v1/referrals/apply", json={"code": code})
        assert response.status_code == 200, response.text
        me = (await client.get("/v1/auth/me")).json()
        assert me["onboarding"]["referral_applied"] is True

    async def test_second_apply_is_409(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        friend = await create_user(session, "friend@example.com")
        other = await create_user(session, "other@example.com")
        await sign_in(client, "new@example.com")
        await client.post("/v1/referrals/apply", json={"code": friend.referral_code})
        response = await client.post("/v1/referrals/apply", json={"code": other.referral_code})
        assert response.status_code == 409
        assert response.json()["code"] == "referral_already_applied"

    async def test_own_code_is_422(self, client: httpx.AsyncClient) -> None:
        me = await sign_in(client, "new@example.com")
        response = await client.post("/v1/referrals/apply", json={"code": me["referral_code"]})
        assert response.status_code == 422
        assert response.json()["code"] == "referral_own_code"

    async def test_unknown_code_is_404(self, client: httpx.AsyncClient) -> None:
        await sign_in(client, "new@example.com")
        response = await client.post("/v1/referrals/apply", json={"code": "ZZZZZ-ZZZZZ"})
        assert response.status_code == 404
        assert response.json()["code"] == "referral_code_not_found"
        blank = await client.post("/v1/referrals/apply", json={"code": " - "})
        assert blank.status_code == 404

    async def test_after_paying_is_409(
        self, client: httpx.AsyncClient, session: AsyncSession, frozen_clock: Clock
    ) -> None:
        friend = await create_user(session, "friend@example.com")
        me = await sign_in(client, "new@example.com")
        from outreach.models import User

        user = await session.get(User, __import__("uuid").UUID(me["id"]))
        assert user is not None
        user.first_paid_at = frozen_clock.now()
        await session.flush()
        response = await client.post("/v1/referrals/apply", json={"code": friend.referral_code})
        assert response.status_code == 409
        assert response.json()["code"] == "referral_after_payment"


class TestMe:
    async def test_code_share_link_and_stats(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        me = await sign_in(client, "ada@example.com")
        body = (await client.get("/v1/referrals/me")).json()
        assert body["code"].replace("-", "") == me["referral_code"]
        assert body["share_link"] == f"http://testserver/?ref={body['code']}"
        again = (await client.post("/v1/referrals/me")).json()
        assert again["code"] == body["code"]
        stats = (await client.get("/v1/referrals/stats")).json()
        assert stats == {
            "referred_users": 0,
            "rewarded": 0,
            "credits_earned": 0,
            "reward_per_referral": 25,
            "max_rewards_per_30_days": 10,
        }

    async def test_codes_are_unique_and_unambiguous(self, session: AsyncSession) -> None:
        codes = {await referral_service.unused_code(session) for _ in range(200)}
        assert len(codes) == 200
        assert not any(set(code) & set("ILOU") for code in codes)


class TestReward:
    async def _referred_pair(self, session: AsyncSession, suffix: str = "") -> tuple:
        referrer = await create_user(session, f"referrer{suffix}@example.com")
        referred = await create_user(session, f"referred{suffix}@example.com")
        await referral_service.apply_code(session, user=referred, code=referrer.referral_code)
        return referrer, referred

    async def test_reward_once_per_referred_user(self, session: AsyncSession) -> None:
        referrer, referred = await self._referred_pair(session)
        before = await credit_service.get_balance(session, user_id=referrer.id)
        first = await referral_service.grant_referral_reward_if_eligible(
            session, referred_user_id=referred.id, trigger=ReferralTrigger.first_payment
        )
        second = await referral_service.grant_referral_reward_if_eligible(
            session, referred_user_id=referred.id, trigger=ReferralTrigger.first_gmail_send
        )
        assert first is not None
        assert second is None
        assert await credit_service.get_balance(session, user_id=referrer.id) == before + 25
        stats = await referral_service.stats(session, user=referrer)
        assert (stats.referred_users, stats.rewarded, stats.credits_earned) == (1, 1, 25)

    async def test_no_referrer_no_reward(self, session: AsyncSession) -> None:
        loner = await create_user(session, "loner@example.com")
        assert (
            await referral_service.grant_referral_reward_if_eligible(
                session, referred_user_id=loner.id, trigger=ReferralTrigger.first_payment
            )
            is None
        )

    async def test_at_most_n_rewards_per_30_days(
        self, session: AsyncSession, frozen_clock: Clock
    ) -> None:
        referrer = await create_user(session, "farmer@example.com")
        referred_ids = []
        for index in range(12):
            throwaway = await create_user(session, f"throwaway{index}@example.com")
            await referral_service.apply_code(session, user=throwaway, code=referrer.referral_code)
            referred_ids.append(throwaway.id)
        rewards = [
            await referral_service.grant_referral_reward_if_eligible(
                session, referred_user_id=rid, trigger=ReferralTrigger.first_payment
            )
            for rid in referred_ids
        ]
        assert sum(r is not None for r in rewards) == 10
        frozen_clock.advance(timedelta(days=31))
        late = await referral_service.grant_referral_reward_if_eligible(
            session, referred_user_id=referred_ids[-1], trigger=ReferralTrigger.first_payment
        )
        assert late is not None
        count = await session.scalar(
            select(func.count())
            .select_from(ReferralReward)
            .where(ReferralReward.referrer_id == referrer.id)
        )
        assert count == 11


async def test_concurrent_triggers_reward_once(committing_database) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    async with committing_database.session() as session:
        referrer = await create_user(session, "r@example.com")
        referred = await create_user(session, "d@example.com")
        await referral_service.apply_code(session, user=referred, code=referrer.referral_code)

    async def trigger(kind: ReferralTrigger) -> object:
        async with committing_database.session() as session:
            return await referral_service.grant_referral_reward_if_eligible(
                session, referred_user_id=referred.id, trigger=kind
            )

    results = await asyncio.gather(
        *(
            trigger(kind)
            for kind in [ReferralTrigger.first_payment, ReferralTrigger.first_gmail_send] * 3
        ),
        return_exceptions=True,
    )
    assert not [r for r in results if isinstance(r, BaseException)]
    assert sum(r is not None for r in results) == 1
    async with committing_database.session() as session:
        assert await credit_service.get_balance(session, user_id=referrer.id) == 25
        assert await session.scalar(select(func.count()).select_from(ReferralReward)) == 1
