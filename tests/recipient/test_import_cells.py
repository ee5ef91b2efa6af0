"""What a cell may hold at import (issue 17 items 6 and 9, the import side of issue 16).

An over-long cell or a control character is a row error naming the row and the
column, downloadable with the others; the good rows around it are imported
untouched; tabs and line breaks inside a cell become spaces. Runs on SQLite and,
with ``OUTREACH_TEST_DATABASE_URL``, on PostgreSQL (which cannot store NUL).
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.models import ListKind, Recipient
from outreach.recipient.cells import CellRefused, clean_cell, visible
from outreach.recipient.mapping import RowError, RowMapper
from tests.recipient.test_lists import all_items, imported
from tests.recipient.xlsx import make_xlsx

HEADER = ["email", "first_name", "company", "team notes"]
REFUSED = {
    "\x00": "U+0000 (NUL)",
    "\x01": "U+0001",
    "\x0b": "U+000B (VT, vertical tab)",
    "\x0c": "U+000C (FF, form feed)",
    "\x1b": "U+001B (ESC)",
    "\x7f": "U+007F (DEL)",
    "\x85": "U+0085 (NEL, next line)",
    "\x9b": "U+009B",
    "\u2028": "U+2028 (LINE SEPARATOR)",
    "\u2029": "U+2029 (PARAGRAPH SEPARATOR)",
}


def good_row(n: int) -> list[str]:
    return [f"good{n}@example.com", f"Name{n}", f"Company {n}", f"note {n}"]


def csv_bytes(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    return out.getvalue().encode()


async def row_errors(client: httpx.AsyncClient, list_id: str) -> list[dict[str, Any]]:
    return (await client.get(f"/v1/recipients/lists/{list_id}/errors?limit=200")).json()["items"]


async def downloaded_errors(client: httpx.AsyncClient, list_id: str) -> list[dict[str, str]]:
    response = await client.get(f"/v1/recipients/lists/{list_id}/errors/export")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text)))


class TestCellRule:
    @pytest.mark.parametrize("char", list(REFUSED))
    def test_control_characters_are_refused_naming_them(self, char: str) -> None:
        with pytest.raises(CellRefused, match=re.escape(f"{REFUSED[char]} at character 3")):
            clean_cell(f"Ab{char}cd", field="company", limit=200)

    @pytest.mark.parametrize(
        ("text", "stored"),
        [
            ("Ab\tcd", "Ab cd"),
            ("line 1\nline 2", "line 1 line 2"),
            ("a\r\nb", "a b"),
            ("a\rb", "a b"),
        ],
    )
    def test_tabs_and_line_breaks_become_spaces(self, text: str, stored: str) -> None:
        assert clean_cell(text, field="company", limit=200) == stored

    def test_over_long_is_refused_not_cut(self) -> None:
        assert clean_cell("x" * 100, field="first_name", limit=100) == "x" * 100
        with pytest.raises(CellRefused, match="101 characters long; first_name takes at most 100"):
            clean_cell("x" * 101, field="first_name", limit=100)

    def test_visible_escapes_every_control_character(self) -> None:
        assert visible("a\x00b\u2028c\x85") == "a\\x00b\\u2028c\\x85"

    def test_mapper_names_row_and_column(self) -> None:
        mapper = RowMapper(
            HEADER, {"email": "email", "first_name": "first_name"}, ListKind.recipients
        )
        error = mapper.map(7, ["a@example.com", "Ada", "Acme", "x\x00y"])
        assert isinstance(error, RowError)
        assert (error.row, error.column) == (7, "team notes")
        assert "U+0000 (NUL)" in error.reason
        assert error.value == "x\\x00y"
        email = mapper.map(8, ["a\x0b@example.com", "Ada", "Acme", ""])
        assert isinstance(email, RowError)
        assert (email.row, email.column) == (8, "email")


async def test_over_long_cells_are_row_errors_not_cut(
    rclient: httpx.AsyncClient, ada: dict, session: AsyncSession
) -> None:
    rows = [good_row(n) for n in range(8)]
    rows[2][1] = "F" * 150  # first_name: 100
    rows[4][2] = "C" * 250  # company: 200
    rows[6][3] = "N" * 3000  # a custom column: 2,000
    rows[7][1] = "G" * 100  # exactly the limit: kept whole
    result = await imported(rclient, csv_bytes(rows))
    assert result["status"] == "ready"
    assert result["counts"]["imported"] == 5
    assert result["counts"]["invalid"] == 3
    errors = await row_errors(rclient, result["id"])
    assert [(e["row"], e["column"]) for e in errors] == [
        (4, "first_name"),
        (6, "company"),
        (8, "team notes"),
    ]
    assert "150 characters long; first_name takes at most 100" in errors[0]["reason"]
    assert "250 characters long; company takes at most 200" in errors[1]["reason"]
    assert "3000 characters long; team_notes takes at most 2000" in errors[2]["reason"]
    download = await downloaded_errors(rclient, result["id"])
    assert [(d["row"], d["column"]) for d in download] == [
        ("4", "first_name"),
        ("6", "company"),
        ("8", "team notes"),
    ]
    stored = (await session.scalars(select(Recipient).order_by(Recipient.position))).all()
    assert [r.email for r in stored] == [f"good{n}@example.com" for n in (0, 1, 3, 5, 7)]
    assert stored[-1].first_name == "G" * 100


async def test_over_long_xlsx_cells_are_row_errors(rclient: httpx.AsyncClient, ada: dict) -> None:
    book = make_xlsx(
        {
            "S": [
                HEADER,
                good_row(1),
                ["long@example.com", "F" * 150, "Acme", ""],
                good_row(2),
            ]
        }
    )
    result = await imported(rclient, book)
    assert result["status"] == "ready", result
    assert result["counts"]["imported"] == 2
    errors = await row_errors(rclient, result["id"])
    assert [(e["row"], e["column"]) for e in errors] == [(3, "first_name")]
    items = await all_items(rclient, result["id"])
    assert [i["email"] for i in items] == ["good1@example.com", "good2@example.com"]


async def test_one_bad_row_among_many_control_characters(
    rclient: httpx.AsyncClient, ada: dict, session: AsyncSession
) -> None:
    """Every kind of control character, each in one row among good ones: those rows
    are errors naming row, column and character; every other row imports."""
    rows = [good_row(n) for n in range(40)]
    bad = {}  # row number in the file -> (column, character)
    columns = [1, 2, 3]
    for offset, char in enumerate(REFUSED):
        index = 2 + offset * 3
        column = columns[offset % 3]
        rows[index][column] = f"Bad{char}value"
        bad[index + 2] = (HEADER[column], char)
    rows[33][0] = "nul\x00@example.com"  # in the email cell itself
    bad[35] = ("email", "\x00")
    rows[35][2] = "Tab\tCompany"  # replaced, not refused
    rows[37][3] = "first line\nsecond line"  # a multi-line cell: replaced
    result = await imported(rclient, csv_bytes(rows))
    assert result["status"] == "ready", result
    assert result["counts"] == {
        "imported": 40 - len(bad),
        "duplicates": 0,
        "invalid": len(bad),
        "suppressed": 0,
    }
    errors = await row_errors(rclient, result["id"])
    assert [(e["row"], e["column"]) for e in errors] == [(row, bad[row][0]) for row in sorted(bad)]
    for error in errors:
        _, char = bad[error["row"]]
        assert REFUSED[char] in error["reason"], error
        assert visible(char) in error["value"]
    download = await downloaded_errors(rclient, result["id"])
    assert [int(d["row"]) for d in download] == sorted(bad)
    assert not any(visible(text) != text for d in download for text in d.values())
    stored = {r.email: r for r in (await session.scalars(select(Recipient))).all()}
    assert len(stored) == 40 - len(bad)
    assert stored["good35@example.com"].company == "Tab Company"
    assert stored["good37@example.com"].custom_fields == {"team_notes": "first line second line"}
    assert not any(
        visible(value) != value
        for r in stored.values()
        for value in (r.first_name or "", r.company or "", *r.custom_fields.values())
    )


async def test_nul_far_into_a_big_file_is_one_row_error(
    rclient: httpx.AsyncClient, ada: dict
) -> None:
    """Past the 64 KB the upload sniffs: the import job, not the request, meets the NUL."""
    rows = [good_row(n) + ["x" * 200] for n in range(600)]
    rows[500][1] = "Zero\x00Byte"
    data = csv_bytes(rows).replace(b"team notes\n", b"team notes,padding\n", 1)
    assert data.index(b"\x00") > 64 * 1024
    result = await imported(rclient, data)
    assert result["status"] == "ready", result
    assert result["counts"]["imported"] == 599
    errors = await row_errors(rclient, result["id"])
    assert [(e["row"], e["column"]) for e in errors] == [(502, "first_name")]
    assert errors[0]["value"] == "Zero\\x00Byte"


async def test_control_characters_in_the_header_become_spaces(
    rclient: httpx.AsyncClient, ada: dict
) -> None:
    """A header is a name, not data: its control characters become spaces."""
    lines = ["email,First\x00Name,Com\x0bpany"]
    lines += [f"r{n}@example.com,Ada{n},Acme" for n in range(30)]
    result = await imported(rclient, ("\n".join(lines) + "\n").encode())
    assert result["status"] == "ready", result
    assert result["column_mapping"] == {"email": "email", "first_name": "First Name"}
    items = await all_items(rclient, result["id"])
    assert len(items) == 30
    assert (items[0]["first_name"], items[0]["custom_fields"]) == ("Ada0", {"com_pany": "Acme"})


async def test_recipients_added_by_hand_follow_the_same_rule(
    rclient: httpx.AsyncClient, ada: dict
) -> None:
    list_id = (await rclient.post("/v1/recipients/lists", json={"name": "Hand"})).json()["id"]
    for field, value in [
        ("company", "Acme\u2028Corp"),
        ("first_name", "Ada\x0b"),
        ("title", "CTO\x85"),
    ]:
        refused = await rclient.post(
            f"/v1/recipients/lists/{list_id}/items",
            json={"items": [{"email": "a@example.com"}, {"email": "b@example.com", field: value}]},
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["loc"] == ["body", "items", 1, field]
        assert "control character" in refused.json()["errors"][0]["message"]
    custom = await rclient.post(
        f"/v1/recipients/lists/{list_id}/items",
        json={"items": [{"email": "c@example.com", "custom_fields": {"notes": "a\x00b"}}]},
    )
    assert custom.status_code == 422
    assert custom.json()["errors"][0]["loc"][:4] == ["body", "items", 0, "custom_fields"]
    assert await all_items(rclient, list_id) == []
    ok = await rclient.post(
        f"/v1/recipients/lists/{list_id}/items",
        json={"items": [{"email": "d@example.com", "company": "Two\tWords"}]},
    )
    assert ok.status_code == 201, ok.text
    assert (await all_items(rclient, list_id))[0]["company"] == "Two Words"
