import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.credits.service import credit_service
from tests.conftest import sign_in


async def test_balance_needs_sign_in(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/credits/balance")).status_code == 401


async def test_balance_and_ledger(client: httpx.AsyncClient, session: AsyncSession) -> None:
    me = await sign_in(client, "ada@example.com")
    assert (await client.get("/v1/credits/balance")).json() == {"balance": 20}
    import uuid

    user_id = uuid.UUID(me["id"])
    for index in range(5):
        await credit_service.apply_ledger_entry(
            session,
            user_id=user_id,
            delta=-1,
            reason="verify",
            ref=f"r{index}",
            idempotency_key=f"v{index}",
        )
    await session.flush()
    assert (await client.get("/v1/credits/balance")).json() == {"balance": 15}

    page = (await client.get("/v1/credits/ledger", params={"limit": 4})).json()
    assert len(page["items"]) == 4
    assert page["next_cursor"]
    rest = (await client.get("/v1/credits/ledger", params={"cursor": page["next_cursor"]})).json()
    assert rest["next_cursor"] is None
    items = page["items"] + rest["items"]
    assert [i["reason"] for i in items].count("verify") == 5
    assert items[-1]["reason"] == "signup_grant"
    assert [i["balance_after"] for i in items] == [15, 16, 17, 18, 19, 20]

    only_grants = (await client.get("/v1/credits/ledger", params={"reason": "signup_grant"})).json()
    assert [i["delta"] for i in only_grants["items"]] == [20]


async def test_ledger_rejects_bad_reason_and_cursor(client: httpx.AsyncClient) -> None:
    await sign_in(client, "ada@example.com")
    bad_reason = await client.get("/v1/credits/ledger", params={"reason": "nope"})
    assert bad_reason.status_code == 422
    bad_cursor = await client.get("/v1/credits/ledger", params={"cursor": "tampered.x"})
    assert bad_cursor.status_code == 400
    assert bad_cursor.json()["code"] == "invalid_cursor"
    too_many = await client.get("/v1/credits/ledger", params={"limit": 10_000})
    assert too_many.status_code == 422


async def test_pricing_is_public_and_overridable(client: httpx.AsyncClient) -> None:
    pricing = (await client.get("/v1/credits/pricing")).json()
    assert pricing["verify_per_address"] == 1
    assert pricing["signup_grant"] == 20
    assert [(p["credits"], p["amount_paise"]) for p in pricing["packs"]] == [
        (100, 19_900),
        (500, 79_900),
        (2000, 249_900),
    ]


def test_pricing_settings_override_defaults(settings) -> None:  # type: ignore[no-untyped-def]
    from outreach.credits.pricing import pricing_from_settings

    pricing = pricing_from_settings(settings.model_copy(update={"price_verify": 3}))
    assert pricing.verify_per_address == 3
    assert pricing.enrich_per_address_found == 2
