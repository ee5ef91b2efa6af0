"""The pure pieces: address normalisation, file reading, column mapping."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from outreach.models import ListKind
from outreach.recipient.addresses import (
    InvalidAddress,
    already_normal,
    is_disposable,
    is_role_account,
    normalise_domain,
    normalise_email,
)
from outreach.recipient.lists import safe_cell
from outreach.recipient.mapping import MappingError, RowError, RowMapper, resolve_mapping
from outreach.recipient.parsing import (
    UnreadableFile,
    check_xlsx_archive,
    count_csv_records,
    inspect_csv,
    read_csv_chunk,
    sniff_file_format,
    xlsx_to_csv,
)
from tests.recipient.xlsx import make_xlsx


class TestNormaliseEmail:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            ("  Ada@Example.COM ", "ada@example.com"),
            ("<ada@example.com>", "ada@example.com"),
            ("mailto:ada@example.com?subject=hi", "ada@example.com"),
            ("jo@bücher.de", "jo@xn--bcher-kva.de"),
            ("Ödön@Example.com", "ödön@example.com"),
        ],
    )
    def test_normalises(self, raw: str, expected: str) -> None:
        assert normalise_email(raw).email == expected

    @pytest.mark.parametrize("raw", ["", "ada", "ada@", "@example.com", "a@b", "a b@example.com"])
    def test_refuses(self, raw: str) -> None:
        with pytest.raises(InvalidAddress):
            normalise_email(raw)

    @pytest.mark.parametrize("text", ["ada@example.com", "a.b+c@x-y.example.co", "hr@acme.io"])
    def test_an_address_in_normal_form_is_taken_as_it_is(self, text: str) -> None:
        assert already_normal(text) == normalise_email(text)

    @pytest.mark.parametrize(
        "text",
        ["Ada@example.com", " ada@example.com", "ada@example.com\n", "<ada@example.com>",
         "mailto:ada@example.com", "jo@bücher.de", "ada@", "a b@example.com", "x@@y.com"],
    )  # fmt: skip
    def test_anything_else_goes_through_normalisation(self, text: str) -> None:
        assert already_normal(text) is None

    @given(
        st.text(alphabet='aZ0.-+@ <>:\n"ü', max_size=24)
        | st.builds(
            "{}@{}.{}".format,
            st.text(alphabet="aZ0.-+_ü", min_size=1, max_size=8),
            st.text(alphabet="aZ0-.", min_size=1, max_size=8),
            st.sampled_from(["com", "io", "Co", "x1"]),
        )
    )
    def test_already_normal_agrees_with_normalise_email(self, text: str) -> None:
        taken = already_normal(text)
        if taken is not None:
            assert taken == normalise_email(text)
            assert taken.email == text

    def test_domains_and_flags(self) -> None:
        assert normalise_domain("https://www.Acme.IO/careers?x=1") == "acme.io"
        assert is_disposable("mailinator.com")
        assert is_disposable("x.mailinator.com")
        assert not is_disposable("example.com")
        assert is_role_account("careers")
        assert not is_role_account("ada.lovelace")
        assert is_role_account("hr+jobs")


class TestSniff:
    def test_formats(self) -> None:
        assert sniff_file_format(b"email\na@b.co\n") == "csv"
        assert sniff_file_format(b"PK\x03\x04rest") == "xlsx"
        for garbage in (b"", b"   \n", b"\x00\x01\x02binary", b"%PDF-1.7", b"\xff\xfee\x00"):
            with pytest.raises(UnreadableFile):
                sniff_file_format(garbage)
        with pytest.raises(UnreadableFile, match="binary"):
            sniff_file_format(bytes(range(1, 32)) * 10)


class TestCsv:
    def write(self, tmp_path: Path, data: bytes) -> str:
        path = tmp_path / "list.csv"
        path.write_bytes(data)
        return str(path)

    @pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
    def test_sniffs_delimiter_and_header(self, tmp_path: Path, delimiter: str) -> None:
        text = delimiter.join(["Email", "Name", "Company"]) + "\n"
        text += (
            delimiter.join(["a@x.com", "Ann, Jr", "Acme"]).replace("Ann, Jr", '"Ann, Jr"') + "\n"
        )
        layout = inspect_csv(self.write(tmp_path, text.encode()), max_cell=1000)
        assert layout.delimiter == delimiter
        assert layout.headers == ["Email", "Name", "Company"]

    def test_bom_mixed_encodings_and_multiline(self, tmp_path: Path) -> None:
        data = (
            "\ufeffE-mail;Name\n".encode()
            + "zoe@x.com;Zoë\n".encode()
            + "rene@x.com;René\n".encode("cp1252")
            + b'multi@x.com;"two\nlines"\n\n'
        )
        path = self.write(tmp_path, data)
        layout = inspect_csv(path, max_cell=1000)
        assert layout.headers == ["E-mail", "Name"]
        chunk = read_csv_chunk(
            path,
            delimiter=";",
            offset=layout.data_offset,
            first_row=2,
            max_records=10,
            max_cell=1000,
        )
        assert chunk.rows == [
            (2, ["zoe@x.com", "Zoë"]),
            (3, ["rene@x.com", "René"]),
            (4, ["multi@x.com", "two\nlines"]),
        ]
        assert chunk.done
        assert count_csv_records(path, delimiter=";", offset=layout.data_offset, max_cell=1000) == 3

    def test_chunks_resume_at_offsets(self, tmp_path: Path) -> None:
        lines = "email\n" + "".join(f"u{i}@x.com\n" for i in range(10))
        path = self.write(tmp_path, lines.encode())
        layout = inspect_csv(path, max_cell=100)
        offset, row, seen = layout.data_offset, 2, []
        while True:
            chunk = read_csv_chunk(
                path,
                delimiter=layout.delimiter,
                offset=offset,
                first_row=row,
                max_records=3,
                max_cell=100,
            )
            seen += chunk.rows
            if chunk.done:
                break
            offset, row = chunk.next_offset, row + chunk.records
        assert [r for r, _ in seen] == list(range(2, 12))
        assert [cells[0] for _, cells in seen] == [f"u{i}@x.com" for i in range(10)]

    def test_oversized_cell_is_a_row_error(self, tmp_path: Path) -> None:
        data = b"email,note\na@x.com,ok\nb@x.com," + b"z" * 5000 + b"\nc@x.com,fine\n"
        path = self.write(tmp_path, data)
        layout = inspect_csv(path, max_cell=1000)
        chunk = read_csv_chunk(
            path,
            delimiter=",",
            offset=layout.data_offset,
            first_row=2,
            max_records=10,
            max_cell=1000,
        )
        assert [r for r, _ in chunk.rows] == [2, 4]
        assert chunk.errors[0][:2] == (3, 1)

    @pytest.mark.parametrize(
        ("data", "message"),
        [(b"email,name\n", "no data rows"), (b"\n\n", "empty"), (b"\x00\x00", "not a CSV")],
    )
    def test_refuses_files_without_rows(self, tmp_path: Path, data: bytes, message: str) -> None:
        with pytest.raises(UnreadableFile, match=message):
            inspect_csv(self.write(tmp_path, data), max_cell=100)


class TestXlsx:
    def test_converts_named_sheet(self, tmp_path: Path) -> None:
        path = tmp_path / "book.xlsx"
        path.write_bytes(
            make_xlsx(
                {
                    "Notes": [["nothing"]],
                    "People": [
                        ["Email", "Phone"],
                        ["a@x.com", 9876543210],
                        ['=HYPERLINK("x")', 1.5],
                    ],
                }
            )
        )
        out = tmp_path / "out.csv"
        info = xlsx_to_csv(str(path), str(out), sheet="People", max_rows=10, max_uncompressed=10**7)
        assert info.sheet_names == ["Notes", "People"]
        assert out.read_text().splitlines() == [
            "Email,Phone",
            "a@x.com,9876543210",
            "formula-result,1.5",
        ]
        with pytest.raises(UnreadableFile, match="no sheet"):
            xlsx_to_csv(str(path), str(out), sheet="Nope", max_rows=10, max_uncompressed=10**7)

    def test_zip_bomb_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "bomb.xlsx"
        path.write_bytes(
            make_xlsx({"S": [["email"]]}, extra={"xl/media/pad.bin": b"\0" * 3_000_000})
        )
        assert path.stat().st_size < 50_000
        with pytest.raises(UnreadableFile, match="expands to more than"):
            check_xlsx_archive(str(path), max_uncompressed=1_000_000)

    def test_zip_that_is_not_a_workbook(self, tmp_path: Path) -> None:
        path = tmp_path / "x.xlsx"
        path.write_bytes(b"PK\x03\x04" + b"junk" * 100)
        with pytest.raises(UnreadableFile):
            check_xlsx_archive(str(path), max_uncompressed=10**6)


class TestMapping:
    def test_guesses_and_keeps_custom_fields(self) -> None:
        headers = [
            "E-mail Address",
            "First Name",
            "Surname",
            "Organisation",
            "Role",
            "Years of exp.",
        ]
        mapping = resolve_mapping(headers, ListKind.recipients, {})
        assert mapping == {
            "email": "E-mail Address",
            "first_name": "First Name",
            "last_name": "Surname",
            "company": "Organisation",
            "title": "Role",
        }
        row = RowMapper(headers, mapping, ListKind.recipients).map(
            2, [" Ada@X.com ", "Ada", "L", "Acme", "CTO", "5"]
        )
        assert not isinstance(row, RowError)
        assert row.address is not None
        assert row.address.email == "ada@x.com"
        assert row.custom == {"years_of_exp": "5"}

    def test_overrides_and_errors(self) -> None:
        headers = ["contact", "where"]
        with pytest.raises(MappingError) as missing:
            resolve_mapping(headers, ListKind.recipients, {})
        assert missing.value.columns == headers
        mapping = resolve_mapping(headers, ListKind.recipients, {"email": "Where", "name": None})
        assert mapping == {"email": "where"}
        with pytest.raises(MappingError, match="not a column"):
            resolve_mapping(headers, ListKind.recipients, {"email": "nope"})
        with pytest.raises(MappingError, match="unknown field"):
            resolve_mapping(headers, ListKind.recipients, {"salary": "where"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('=HYPERLINK("x")', '\'=HYPERLINK("x")'),
        ("+1", "'+1"),
        ("-2", "'-2"),
        ("@a", "'@a"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("\x00x", "'\x00x"),
        ("plain", "plain"),
        (None, ""),
    ],
)
def test_safe_cell(value: str | None, expected: str) -> None:
    assert safe_cell(value) == expected
