"""Which column holds what: guessed from the headers, overridable by the user.

A mapping is ``{field: header}``. Columns not mapped to a field are kept as
custom fields under a template-friendly key (``"Years of exp."`` →
``years_of_exp``), so ``{{ years_of_exp }}`` works in templates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from outreach.models import ListKind
from outreach.recipient.addresses import Address, InvalidAddress, normalise_email
from outreach.recipient.cells import CellRefused, clean_cell, visible

ALIASES: dict[str, tuple[str, ...]] = {
    "email": (
        "email",
        "e mail",
        "email address",
        "e mail address",
        "mail",
        "email id",
        "emailaddress",
        "work email",
        "contact email",
        "business email",
        "recipient",
    ),
    "first_name": ("first name", "firstname", "first", "given name", "fname", "forename"),
    "last_name": ("last name", "lastname", "last", "surname", "family name", "lname"),
    "name": ("name", "full name", "fullname", "contact name", "contact", "person"),
    "company": (
        "company",
        "company name",
        "organization",
        "organisation",
        "org",
        "employer",
        "firm",
    ),
    "title": ("title", "job title", "role", "position", "designation", "job role"),
    "linkedin": ("linkedin", "linkedin url", "linkedin profile", "linkedin link"),
    "website": ("website", "company website", "url", "web site", "homepage", "web"),
    "timezone": ("timezone", "time zone", "tz"),
    "domain": ("domain", "company domain", "email domain"),
    "industry": ("industry", "sector"),
    "location": ("location", "city", "country", "region"),
    "source": ("source",),
    "reason": ("reason", "suppression reason"),
}

FIELDS_BY_KIND: dict[ListKind, tuple[str, ...]] = {
    ListKind.recipients: (
        "email",
        "first_name",
        "last_name",
        "name",
        "company",
        "title",
        "linkedin",
        "website",
        "timezone",
    ),
    ListKind.directory: (
        "email",
        "name",
        "company",
        "title",
        "domain",
        "industry",
        "location",
        "source",
    ),
    ListKind.suppressions: ("email", "reason"),
}
FIELD_LENGTHS = {
    "first_name": 100,
    "last_name": 100,
    "timezone": 64,
    "domain": 255,
    "industry": 100,
    "linkedin": 500,
    "website": 500,
}
DEFAULT_LENGTH = 200
MAX_CUSTOM_LENGTH = 2000
MAX_EMAIL_CELL = 320


class MappingError(ValueError):
    """The mapping cannot be used; ``columns`` lists the headers the file has."""

    def __init__(self, message: str, *, columns: list[str]) -> None:
        super().__init__(message)
        self.columns = columns


def _canonical(header: str) -> str:
    return " ".join(re.sub(r"[-_.:/()]+", " ", header.lower()).split())


def custom_field_key(header: str, index: int) -> str:
    key = re.sub(r"[^a-z0-9]+", "_", header.lower()).strip("_")
    if not key:
        return f"column_{index + 1}"
    return f"f_{key}" if key[0].isdigit() else key[:60]


def guess_mapping(headers: list[str], kind: ListKind) -> dict[str, str]:
    """``{field: header}`` for every field whose header is recognised."""
    allowed = FIELDS_BY_KIND[kind]
    mapping: dict[str, str] = {}
    for header in headers:
        canonical = _canonical(header)
        for name in allowed:
            if name not in mapping and canonical in ALIASES[name]:
                mapping[name] = header
                break
    if "email" not in mapping:
        for header in headers:
            if "email" in _canonical(header).replace(" ", "") and header not in mapping.values():
                mapping["email"] = header
                break
    return mapping


def resolve_mapping(
    headers: list[str], kind: ListKind, overrides: dict[str, Any]
) -> dict[str, str]:
    """The guessed mapping with the user's overrides applied (``None`` un-maps a field)."""
    allowed = FIELDS_BY_KIND[kind]
    by_lower = {header.lower(): header for header in headers}
    mapping = guess_mapping(headers, kind)
    for name, header in overrides.items():
        if name not in allowed:
            raise MappingError(
                f"column_mapping names an unknown field {name!r}; fields: {list(allowed)}",
                columns=headers,
            )
        if header is None:
            mapping.pop(name, None)
            continue
        if not isinstance(header, str) or header.lower() not in by_lower:
            raise MappingError(
                f"column_mapping maps {name!r} to {header!r}, which is not a column of the file",
                columns=headers,
            )
        mapping[name] = by_lower[header.lower()]
    if "email" not in mapping:
        raise MappingError(
            "no email column was found; map one with column_mapping, "
            'for example {"email": "<column name>"}',
            columns=headers,
        )
    return mapping


def validate_overrides(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in raw.items()
    ):
        raise ValueError('column_mapping must be a JSON object such as {"email": "E-mail"}')
    return raw


@dataclass
class RowError:
    row: int
    column: str | None
    reason: str
    value: str | None


@dataclass
class MappedRow:
    row: int
    address: Address | None  # None for a domain-only suppression row
    fields: dict[str, str | None]
    custom: dict[str, str] = field(default_factory=dict)


class RowMapper:
    """Turns the cells of one row into a :class:`MappedRow` or a :class:`RowError`.

    Every stored cell goes through :func:`cells.clean_cell`: a control character
    or an over-long value makes the row an error naming its column, never a
    silently changed value.
    """

    def __init__(self, headers: list[str], mapping: dict[str, str], kind: ListKind) -> None:
        self.kind = kind
        self.headers = headers
        index = {header: position for position, header in enumerate(headers)}
        self.columns = {name: index[header] for name, header in mapping.items()}
        self.email_header = mapping["email"]
        # Each mapped field with its column and length limit, worked out once per import.
        self._fields = [
            (name, position, FIELD_LENGTHS.get(name, DEFAULT_LENGTH))
            for name, position in self.columns.items()
            if name != "email"
        ]
        mapped = set(self.columns.values())
        self.custom = (
            [
                (position, custom_field_key(header, position))
                for position, header in enumerate(headers)
                if position not in mapped
            ]
            if kind == ListKind.recipients
            else []
        )

    def map(self, row: int, cells: list[str]) -> MappedRow | RowError:
        try:
            address, raw_email = self._address(row, cells)
            fields = {
                name: self._cell(row, cells, position, name, limit) or None
                for name, position, limit in self._fields
            }
            custom = {
                key: value
                for position, key in self.custom
                if (value := self._cell(row, cells, position, key, MAX_CUSTOM_LENGTH))
            }
        except _Refused as refused:
            return refused.error
        if self.kind == ListKind.suppressions and address is None:
            fields["domain"] = raw_email
        return MappedRow(row, address, fields, custom)

    def _address(self, row: int, cells: list[str]) -> tuple[Address | None, str]:
        position = self.columns["email"]
        raw = self._cell(row, cells, position, "email", MAX_EMAIL_CELL)
        if not raw:
            raise _Refused(RowError(row, self.email_header, "the email cell is empty", None))
        try:
            return normalise_email(raw), raw
        except InvalidAddress as exc:
            if self.kind == ListKind.suppressions and "@" not in raw:
                return None, raw  # a whole domain, checked by the suppression sink
            raise _Refused(RowError(row, self.email_header, str(exc), raw[:200])) from exc

    def _cell(self, row: int, cells: list[str], position: int, field: str, limit: int) -> str:
        text = cells[position] if position < len(cells) else ""
        try:
            return clean_cell(text, field=field, limit=limit)
        except CellRefused as exc:
            error = RowError(row, self.headers[position], str(exc), visible(text[:200]))
            raise _Refused(error) from exc


class _Refused(Exception):
    def __init__(self, error: RowError) -> None:
        super().__init__(error.reason)
        self.error = error
