"""Routing: a 405 names every method of the resource, id segments match UUIDs only, and
text holding a NUL character is refused."""

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Form, UploadFile
from pydantic import BaseModel

from outreach.auth.dependencies import CurrentUser
from outreach.config import Settings
from outreach.kit.db import Database
from outreach.kit.idempotency import IdempotentRoute
from tests.conftest import make_client, sign_in

router = APIRouter(prefix="/test/things", route_class=IdempotentRoute)


@router.get("")
async def list_things(user: CurrentUser) -> list[str]:
    return []


@router.post("", status_code=201)
async def create_thing(user: CurrentUser) -> str:
    return "created"


@router.get("/special")
async def special_thing(user: CurrentUser) -> str:
    return "special"


@router.get("/{thing_id}")
async def get_thing(thing_id: uuid.UUID, user: CurrentUser) -> str:
    return str(thing_id)


@router.delete("/{thing_id}", status_code=204)
async def delete_thing(thing_id: uuid.UUID, user: CurrentUser) -> None:
    return None


class Label(BaseModel):
    name: str
    tags: list[str] = []


@router.post("/labels")
async def add_label(body: Label, q: str | None = None) -> str:
    return body.name


@router.post("/labels/form")
async def add_label_form(name: Annotated[str, Form()]) -> str:
    return name


@router.post("/labels/file")
async def add_label_file(file: UploadFile) -> str | None:
    return file.filename


@pytest.fixture
async def client(settings: Settings, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    from outreach.app import create_app

    app: FastAPI = create_app(settings, database=database)
    app.include_router(router)
    async with app.router.lifespan_context(app), make_client(app) as client:
        yield client


def assert_not_allowed(response: httpx.Response, allow: str) -> None:
    assert response.status_code == 405, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "method_not_allowed"
    assert response.headers["allow"] == allow


class TestMethodNotAllowed:
    async def test_allow_names_every_method_of_the_path(self, client: httpx.AsyncClient) -> None:
        # Starlette keeps one route per method and named only the one it matched.
        assert_not_allowed(await client.put("/test/things"), "GET, POST")
        assert_not_allowed(await client.patch(f"/test/things/{uuid.uuid4()}"), "DELETE, GET")

    async def test_method_is_checked_before_authentication(self, client: httpx.AsyncClient) -> None:
        assert_not_allowed(await client.request("TRACE", "/test/things"), "GET, POST")

    async def test_a_fixed_segment_is_not_taken_for_an_id(self, client: httpx.AsyncClient) -> None:
        # DELETE /{thing_id} exists, but "special" is no id: the resource only has GET.
        assert_not_allowed(await client.delete("/test/things/special"), "GET")
        await sign_in(client, "routing@example.com")
        assert_not_allowed(await client.delete("/test/things/special"), "GET")


class TestUuidSegments:
    async def test_an_id_that_is_no_uuid_names_no_resource(self, client: httpx.AsyncClient) -> None:
        await sign_in(client, "routing@example.com")
        response = await client.get("/test/things/not-a-uuid")
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"

    async def test_a_uuid_reaches_the_endpoint_as_a_uuid(self, client: httpx.AsyncClient) -> None:
        await sign_in(client, "routing@example.com")
        thing_id = uuid.uuid4()
        assert (await client.get(f"/test/things/{thing_id}")).json() == str(thing_id)
        assert (await client.get("/test/things/special")).json() == "special"

    async def test_the_document_keeps_the_plain_path(self, client: httpx.AsyncClient) -> None:
        paths = (await client.get("/openapi.json")).json()["paths"]
        assert "/test/things/{thing_id}" in paths
        assert not any(":uuid" in path for path in paths)


class TestNulCharacters:
    """PostgreSQL can neither store nor compare text holding U+0000: it answered 500."""

    @staticmethod
    def assert_refused(response: httpx.Response, loc: list[str | int]) -> None:
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["loc"] == loc

    async def test_in_a_json_body_names_the_field(self, client: httpx.AsyncClient) -> None:
        self.assert_refused(
            await client.post("/test/things/labels", json={"name": "a\u0000b"}), ["body", "name"]
        )
        self.assert_refused(
            await client.post("/test/things/labels", json={"name": "a", "tags": ["ok", "\u0000"]}),
            ["body", "tags", 1],
        )

    async def test_in_a_declared_query_parameter(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/test/things/labels", params={"q": "a\x00"}, json={"name": "a"}
        )
        self.assert_refused(response, ["query", "q"])
        # A parameter the endpoint does not read never reaches the database.
        ignored = await client.post(
            "/test/things/labels", params={"other": "a\x00"}, json={"name": "a"}
        )
        assert ignored.status_code == 200

    async def test_in_a_form_field(self, client: httpx.AsyncClient) -> None:
        self.assert_refused(
            await client.post("/test/things/labels/form", data={"name": "a\x00"}),
            ["body", "name"],
        )

    async def test_in_a_file_name(self, client: httpx.AsyncClient) -> None:
        def upload(filename: bytes, content: bytes) -> httpx.Request:
            body = (
                b'--b\r\nContent-Disposition: form-data; name="file"; filename="'
                + filename
                + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
                + content
                + b"\r\n--b--\r\n"
            )
            headers = {"content-type": "multipart/form-data; boundary=b"}
            return client.build_request(
                "POST", "/test/things/labels/file", content=body, headers=headers
            )

        self.assert_refused(await client.send(upload(b"list\x00.csv", b"x")), ["body", "file"])
        # The bytes of a file are not text to store: they may hold anything.
        response = await client.send(upload(b"list.csv", b"\x00\x01binary"))
        assert response.json() == "list.csv"

    async def test_ordinary_text_passes(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/test/things/labels", json={"name": "Zoë \\u0000"})
        assert response.json() == "Zoë \\u0000"
