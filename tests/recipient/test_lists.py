"""List import end to end: upload → 202 → job → list, items, errors, export."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.config import Settings
from outreach.kit.db import Database
from outreach.models import Recipient
from tests.conftest import make_client, sign_in, wait_for_jobs
from tests.recipient.conftest import started_app
from tests.recipient.xlsx import make_xlsx


async def upload(
    client: httpx.AsyncClient, data: bytes, filename: str = "list.csv", **form: str
) -> httpx.Response:
    return await client.post(
        "/v1/recipients/lists/upload", files={"file": (filename, data)}, data=form
    )


async def imported(client: httpx.AsyncClient, data: bytes, **form: str) -> dict[str, Any]:
    response = await upload(client, data, **form)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued"
    await wait_for_jobs()
    return (await client.get(f"/v1/recipients/lists/{response.json()['id']}")).json()


async def all_items(client: httpx.AsyncClient, list_id: str, **params: Any) -> list[dict]:
    items, cursor = [], None
    while True:
        page = (
            await client.get(
                f"/v1/recipients/lists/{list_id}/items",
                params={"limit": 7, **params, **({"cursor": cursor} if cursor else {})},
            )
        ).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


SAMPLE = (
    "Email Address;First Name;Last Name;Company;Role;Years of exp.\n"
    "Ada@Example.com;Ada;Lovelace;Acme;CTO;10\n"
    'grace@navy.mil;Grace;Hopper;=HYPERLINK("http://evil");Admiral;40\n'
    "not-an-email;X;Y;Z;W;1\n"
    " ADA@example.COM ;Ada;Again;Acme;CTO;10\n"
    ";Nobody;Here;;;\n"
    "jo@bücher.de;Jo;B;Bücher;Owner;3\n"
).encode()


async def test_csv_import_end_to_end(rclient: httpx.AsyncClient, ada: dict) -> None:
    result = await imported(rclient, SAMPLE, name="Spring outreach")
    assert result["status"] == "ready"
    assert result["name"] == "Spring outreach"
    assert result["counts"] == {"imported": 3, "duplicates": 1, "invalid": 2, "suppressed": 0}
    assert result["progress"] == {"rows_done": 6, "rows_total": 6, "percent": 100.0}
    assert result["recipient_count"] == 3
    assert result["column_mapping"]["email"] == "Email Address"
    assert result["column_mapping"]["title"] == "Role"

    items = await all_items(rclient, result["id"])
    assert [i["email"] for i in items] == [
        "ada@example.com",
        "grace@navy.mil",
        "jo@xn--bcher-kva.de",
    ]
    assert items[0]["name"] == "Ada Lovelace"
    assert items[0]["custom_fields"] == {"years_of_exp": "10"}
    assert items[0]["verification_status"] == "unverified"

    errors = (await rclient.get(f"/v1/recipients/lists/{result['id']}/errors")).json()["items"]
    assert [(e["row"], e["column"]) for e in errors] == [(4, "Email Address"), (6, "Email Address")]
    assert "@-sign" in errors[0]["reason"]
    assert errors[1]["reason"] == "the email cell is empty"
    errors_csv = await rclient.get(f"/v1/recipients/lists/{result['id']}/errors/export")
    assert errors_csv.status_code == 200
    assert errors_csv.headers["content-type"].startswith("text/csv")
    csv_rows = errors_csv.text.splitlines()
    assert csv_rows[0] == "row,column,reason,value"
    assert [line.split(",")[:2] for line in csv_rows[1:]] == [
        ["4", "Email Address"],
        ["6", "Email Address"],
    ]

    search = await all_items(rclient, result["id"], q="hopper")
    assert [i["email"] for i in search] == ["grace@navy.mil"]
    unverified = await all_items(rclient, result["id"], status="deliverable")
    assert unverified == []

    export = await rclient.get(f"/v1/recipients/lists/{result['id']}/export")
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(export.text)))
    assert rows[0][:3] == ["email", "name", "first_name"]
    assert rows[0][-1] == "years_of_exp"
    assert rows[2][4] == '\'=HYPERLINK("http://evil")'

    listed = (await rclient.get("/v1/recipients/lists")).json()["items"]
    assert [item["id"] for item in listed] == [result["id"]]


async def test_xlsx_import_of_a_named_sheet(rclient: httpx.AsyncClient, ada: dict) -> None:
    book = make_xlsx(
        {
            "Readme": [["hello"]],
            "Contacts": [["e-mail", "Full Name"], ["x@acme.io", "Xi Li"], ["y@acme.io", None]],
        }
    )
    result = await imported(rclient, book, sheet="Contacts")
    assert result["status"] == "ready", result
    assert result["file_format"] == "xlsx"
    assert result["sheet_name"] == "Contacts"
    items = await all_items(rclient, result["id"])
    assert [(i["email"], i["first_name"], i["last_name"]) for i in items] == [
        ("x@acme.io", "Xi", "Li"),
        ("y@acme.io", None, None),
    ]


async def test_xlsx_problems_fail_the_list_with_a_reason(
    rclient: httpx.AsyncClient, ada: dict
) -> None:
    missing_sheet = await imported(rclient, make_xlsx({"S": [["email"], ["a@x.com"]]}), sheet="T")
    assert missing_sheet["status"] == "failed"
    assert "no sheet 'T'" in missing_sheet["error"]
    no_email = await imported(rclient, make_xlsx({"S": [["who", "where"], ["a", "b"]]}))
    assert no_email["status"] == "failed"
    assert "no email column" in no_email["error"]
    assert "who, where" in no_email["error"]


async def test_zip_bomb_fails_without_harm(
    recipient_settings: Settings, database: Database
) -> None:
    bomb = make_xlsx({"S": [["email"], ["a@x.com"]]}, extra={"xl/media/pad.bin": b"\0" * 4_000_000})
    async for app in started_app(
        recipient_settings, database, recipient_xlsx_max_uncompressed_bytes=1_000_000
    ):
        async with make_client(app) as client:
            await sign_in(client, "bomb@example.com")
            result = await imported(client, bomb, filename="bomb.xlsx")
    assert result["status"] == "failed"
    assert "expands to more than 1000000 bytes" in result["error"]


async def test_bad_uploads_are_refused_with_reasons(rclient: httpx.AsyncClient, ada: dict) -> None:
    empty = await upload(rclient, b"")
    assert empty.status_code == 422
    assert empty.json()["code"] == "unreadable_file"
    header_only = await upload(rclient, b"email,name\n")
    assert header_only.status_code == 422
    assert "no data rows" in header_only.json()["detail"]
    garbage = await upload(rclient, bytes(range(256)) * 40, filename="x.csv")
    assert garbage.status_code == 422
    assert garbage.json()["code"] == "unreadable_file"
    no_email = await upload(rclient, b"who,company\nAda,Acme\n")
    assert no_email.status_code == 422
    problem = no_email.json()
    assert problem["code"] == "email_column_missing"
    assert problem["columns"] == ["who", "company"]
    assert "column_mapping" in problem["detail"]
    bad_mapping = await upload(rclient, b"who,company\nAda,Acme\n", column_mapping="{oops")
    assert bad_mapping.status_code == 422
    assert bad_mapping.json()["code"] == "invalid_column_mapping"
    mapped = await imported(
        rclient, b"who,where\na@x.com,Pune\n", column_mapping='{"email": "who"}'
    )
    assert mapped["counts"]["imported"] == 1
    assert (await rclient.get("/v1/recipients/lists")).json()["items"][0]["id"] == mapped["id"]


async def test_file_over_the_limit_is_413(recipient_settings: Settings, database: Database) -> None:
    async for app in started_app(recipient_settings, database, recipient_upload_max_bytes=1000):
        async with make_client(app) as client:
            await sign_in(client, "big@example.com")
            response = await upload(client, b"email\n" + b"a@example.com\n" * 200)
    assert response.status_code == 413
    assert response.json()["code"] == "file_too_large"


async def test_row_limit_and_huge_cell_keep_the_rest(
    recipient_settings: Settings, database: Database, session: AsyncSession
) -> None:
    rows = [f"user{i}@example.com,ok" for i in range(12)]
    rows[3] = "big@example.com," + "x" * 5000
    data = ("email,note\n" + "\n".join(rows) + "\n").encode()
    async for app in started_app(
        recipient_settings,
        database,
        recipient_import_max_rows=10,
        recipient_max_cell_bytes=1000,
        recipient_import_batch_rows=4,
    ):
        async with make_client(app) as client:
            await sign_in(client, "limit@example.com")
            result = await imported(client, data)
            errors = (await client.get(f"/v1/recipients/lists/{result['id']}/errors")).json()
    assert result["status"] == "ready"
    assert result["counts"]["imported"] == 9
    reasons = [(e["row"], e["column"], e["reason"]) for e in errors["items"]]
    assert reasons[0][:2] == (5, "note")
    assert "field larger" in reasons[0][2]
    assert reasons[1][0] == 12
    assert "stops at 10 rows" in reasons[1][2]
    assert "2 later rows" in reasons[1][2]
    count = await session.scalar(
        select(func.count()).select_from(Recipient).where(Recipient.email.like("user%"))
    )
    assert count == 9


async def test_another_users_list_is_not_found(rclient: httpx.AsyncClient, rapp: FastAPI) -> None:
    await sign_in(rclient, "owner@example.com")
    result = await imported(rclient, b"email\na@x.com\n")
    async with make_client(rapp) as other:
        await sign_in(other, "other@example.com")
        for path in ("", "/items", "/errors", "/export"):
            response = await other.get(f"/v1/recipients/lists/{result['id']}{path}")
            assert response.status_code == 404, path
            assert response.json()["code"] == "list_not_found"
        assert (await other.delete(f"/v1/recipients/lists/{result['id']}")).status_code == 404
        added = await other.post(
            f"/v1/recipients/lists/{result['id']}/items", json={"items": [{"email": "b@x.com"}]}
        )
        assert added.status_code == 404


async def test_add_by_hand_and_delete(rclient: httpx.AsyncClient, ada: dict) -> None:
    created = await rclient.post("/v1/recipients/lists", json={"name": "Hand picked"})
    assert created.status_code == 201
    list_id = created.json()["id"]
    await rclient.post("/v1/suppressions", json={"value": "blocked.com", "reason": "manual"})
    bad = await rclient.post(
        f"/v1/recipients/lists/{list_id}/items",
        json={"items": [{"email": "ok@x.com"}, {"email": "nope"}]},
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["loc"] == ["body", "items", 1, "email"]
    assert (await all_items(rclient, list_id)) == []
    added = await rclient.post(
        f"/v1/recipients/lists/{list_id}/items",
        json={
            "items": [
                {"email": "Ok@X.com", "name": "Ok Person", "custom_fields": {"Team Name": "Core"}},
                {"email": "ok@x.com"},
                {"email": "someone@blocked.com"},
            ]
        },
    )
    assert added.status_code == 201, added.text
    assert added.json() == {"added": 1, "duplicates": 1, "suppressed": 1}
    items = await all_items(rclient, list_id)
    assert [(i["email"], i["source"], i["custom_fields"]) for i in items] == [
        ("ok@x.com", "manual", {"team_name": "Core"})
    ]
    deleted = await rclient.delete(f"/v1/recipients/lists/{list_id}")
    assert deleted.status_code == 204
    assert (await rclient.get(f"/v1/recipients/lists/{list_id}")).status_code == 404


async def test_suppressed_rows_are_counted_not_imported(
    rclient: httpx.AsyncClient, ada: dict
) -> None:
    await rclient.post("/v1/suppressions", json={"value": "gone@x.com", "reason": "unsubscribed"})
    result = await imported(rclient, b"email\ngone@x.com\nstay@x.com\n")
    assert result["counts"] == {"imported": 1, "duplicates": 0, "invalid": 0, "suppressed": 1}
