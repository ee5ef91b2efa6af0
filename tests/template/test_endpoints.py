import uuid

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.config import Settings
from outreach.kit.unsubscribe import read_unsubscribe_token
from outreach.models import Template, TemplateVersion
from tests.conftest import make_client, sign_in

GOOD = {
    "name": "Intro",
    "subject": "Hello {{ first_name | default('there') }} at {{ company | default('your team') }}",
    "body_text": (
        "Hi {{ first_name | default('there') }},\n\nI admire {{ company }}.\n{{ sender.name }}"
    ),
    "body_html": "<p>Hi {{ first_name | default('there') }}</p>",
}


async def create(client: httpx.AsyncClient, **overrides: object) -> httpx.Response:
    return await client.post("/v1/templates", json={**GOOD, **overrides})


class TestCrud:
    async def test_create_detects_variables(self, client: httpx.AsyncClient) -> None:
        await sign_in(client, "ada@example.com", "Ada Lovelace")
        response = await create(client)
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["version"] == 1
        assert body["variables"] == ["first_name", "company", "sender.name"]
        assert body["required_variables"] == ["company", "sender.name"]
        assert body["source"] == "manual"
        listed = (await client.get("/v1/templates")).json()
        assert [t["id"] for t in listed["items"]] == [body["id"]]

    async def test_edit_makes_a_new_version_and_keeps_the_old(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await sign_in(client, "ada@example.com")
        template_id = (await create(client)).json()["id"]
        renamed = await client.patch(f"/v1/templates/{template_id}", json={"name": "Renamed"})
        assert renamed.json()["version"] == 1
        edited = await client.patch(
            f"/v1/templates/{template_id}", json={"subject": "New {{ company }}"}
        )
        assert edited.json()["version"] == 2
        versions = (
            await session.scalars(
                select(TemplateVersion.subject)
                .where(TemplateVersion.template_id == uuid.UUID(template_id))
                .order_by(TemplateVersion.version)
            )
        ).all()
        assert versions == [GOOD["subject"], "New {{ company }}"]

    async def test_delete_hides_it(self, client: httpx.AsyncClient) -> None:
        await sign_in(client, "ada@example.com")
        template_id = (await create(client)).json()["id"]
        assert (await client.delete(f"/v1/templates/{template_id}")).status_code == 204
        assert (await client.get(f"/v1/templates/{template_id}")).status_code == 404

    async def test_another_users_template_is_404(
        self, client: httpx.AsyncClient, app: object
    ) -> None:
        await sign_in(client, "ada@example.com")
        template_id = (await create(client)).json()["id"]
        async with make_client(app) as other:  # type: ignore[arg-type]
            await sign_in(other, "eve@example.com")
            for response in (
                await other.get(f"/v1/templates/{template_id}"),
                await other.patch(f"/v1/templates/{template_id}", json={"name": "x"}),
                await other.delete(f"/v1/templates/{template_id}"),
                await other.post(f"/v1/templates/{template_id}/render", json={}),
            ):
                assert response.status_code == 404
                assert response.json()["code"] == "template_not_found"


class TestBadTemplates:
    @pytest.mark.parametrize(
        ("field", "source"),
        [
            ("body_text", "{{ ''.__class__.__mro__ }}"),
            ("body_text", "{{ 9**9**9 }}"),
            ("body_text", "{% for x in y %}{% endfor %}"),
            ("subject", "{{ 'x' * 10**9 }}"),
            ("body_html", "{{ lipsum() }}"),
        ],
    )
    async def test_refused_with_the_field_named_and_nothing_saved(
        self, client: httpx.AsyncClient, session: AsyncSession, field: str, source: str
    ) -> None:
        await sign_in(client, "ada@example.com")
        response = await create(client, **{field: source})
        assert response.status_code == 422
        body = response.json()
        assert body["code"] == "invalid_template"
        assert body["errors"][0]["loc"] == ["body", field]
        assert await session.scalar(select(func.count()).select_from(Template)) == 0

    async def test_line_break_in_subject(self, client: httpx.AsyncClient) -> None:
        await sign_in(client, "ada@example.com")
        response = await create(client, subject="Hi\r\nBcc: x@y.z")
        assert response.status_code == 422

    async def test_a_megabyte_body_is_refused(self, client: httpx.AsyncClient) -> None:
        await sign_in(client, "ada@example.com")
        response = await create(client, body_text="x" * 1_000_001)
        assert response.status_code in (413, 422)
        assert response.headers["content-type"].startswith("application/problem+json")

    async def test_bad_edit_keeps_the_old_version(self, client: httpx.AsyncClient) -> None:
        await sign_in(client, "ada@example.com")
        template_id = (await create(client)).json()["id"]
        bad = await client.patch(f"/v1/templates/{template_id}", json={"body_text": "{{ 1+1 }}"})
        assert bad.status_code == 422
        current = (await client.get(f"/v1/templates/{template_id}")).json()
        assert current["version"] == 1
        assert current["body_text"] == GOOD["body_text"]


class TestRender:
    async def test_render_with_sample_and_footer(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        me = await sign_in(client, "ada@example.com", "Ada Lovelace")
        template_id = (await create(client)).json()["id"]
        response = await client.post(
            f"/v1/templates/{template_id}/render",
            json={"sample": {"first_name": "Ravi", "company": "Zoho"}},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["subject"] == "Hello Ravi at Zoho"
        assert "I admire Zoho." in body["text"]
        assert "Ada Lovelace" in body["text"]
        token = body["text"].rsplit("/u/", 1)[1].strip()
        request = read_unsubscribe_token(token, secret=settings.secret_key.get_secret_value())
        assert str(request.sender_id) == me["id"]
        assert request.email == "priya.sharma@example.com"
        assert "/u/" in body["html"]

    async def test_emptied_field_uses_the_default(self, client: httpx.AsyncClient) -> None:
        await sign_in(client, "ada@example.com", "Ada")
        template_id = (await create(client)).json()["id"]
        body = (
            await client.post(
                f"/v1/templates/{template_id}/render", json={"sample": {"first_name": None}}
            )
        ).json()
        assert body["subject"].startswith("Hello there at")

    async def test_missing_variable_is_reported_not_blank(self, client: httpx.AsyncClient) -> None:
        await sign_in(client, "ada@example.com", "Ada")
        template_id = (await create(client)).json()["id"]
        response = await client.post(
            f"/v1/templates/{template_id}/render", json={"sample": {"company": ""}}
        )
        assert response.status_code == 422
        assert response.json()["code"] == "missing_variables"
        assert response.json()["missing"] == ["company"]

    async def test_custom_columns_and_sender_override(self, client: httpx.AsyncClient) -> None:
        await sign_in(client, "ada@example.com")
        template_id = (
            await create(client, body_text="{{ team_size }} people; {{ sender.target_role }}")
        ).json()["id"]
        body = (
            await client.post(
                f"/v1/templates/{template_id}/render",
                json={"sample": {"team_size": "40"}, "sender": {"name": "A", "target_role": "SRE"}},
            )
        ).json()
        assert body["text"].startswith("40 people; SRE")


async def test_variables_endpoint(client: httpx.AsyncClient) -> None:
    await sign_in(client, "ada@example.com")
    body = (await client.get("/v1/templates/variables")).json()
    names = [v["name"] for v in body["variables"]]
    assert "first_name" in names
    assert "sender.top_skills" in names
    assert "first_word" in body["filters"]


async def test_variables_of_a_list_include_its_columns(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    me = await sign_in(client, "ada@example.com")
    from outreach.models import User
    from tests.campaign.conftest import make_list

    user = await session.get(User, uuid.UUID(me["id"]))
    assert user is not None
    recipients = await make_list(
        session,
        user,
        [{"email": "a@b.io", "custom_fields": {"team_size": "40", "hiring_for": "SRE"}}],
    )
    body = (
        await client.get("/v1/templates/variables", params={"list_id": str(recipients.id)})
    ).json()
    columns = [v["name"] for v in body["variables"] if v["source"] == "list column"]
    assert columns == ["team_size", "hiring_for"]
    other = await client.get("/v1/templates/variables", params={"list_id": str(uuid.uuid4())})
    assert other.status_code == 404


async def test_listed_variables_are_exactly_what_a_template_may_use(
    client: httpx.AsyncClient,
) -> None:
    """Issue 20 item 7: each sender field by its dotted name, and the save-time check
    agrees with the list (one vocabulary)."""
    await sign_in(client, "ada@example.com")
    body = (await client.get("/v1/templates/variables")).json()
    names = [v["name"] for v in body["variables"]]
    assert "sender" not in names
    assert {n for n in names if n.startswith("sender.")} == {
        "sender.name",
        "sender.first_name",
        "sender.email",
        "sender.target_role",
        "sender.top_skills",
        "sender.years_experience",
    }
    for name in names:
        saved = await create(client, body_text=f"{{{{ {name} }}}}", body_html=None)
        assert saved.status_code == 201, (name, saved.text)
        assert name in saved.json()["variables"]
    for refused in ("{{ sender.password }}", "{{ sender }}", "{{ first_name.upper }}"):
        response = await create(client, body_text=refused)
        assert response.status_code == 422, refused
        assert response.json()["errors"][0]["loc"] == ["body", "body_text"]
