"""What an imported cell may hold, and how a refused one is shown back.

Recipient values end up in email headers (To, Subject) and in PostgreSQL text,
which cannot hold NUL. So a cell is checked once, at import, by one rule:

- a tab or a line break (CR, LF, CRLF: a multi-line spreadsheet cell) becomes
  one space: they are layout, not content;
- every other control character (C0, DEL, C1 including NEL, U+2028 LINE
  SEPARATOR, U+2029 PARAGRAPH SEPARATOR) makes the row an error naming the row,
  the column and the character: nothing is removed silently;
- a value longer than its field allows makes the row an error; nothing is cut.

Module-level and dependency-free: the parsing pool imports it too.
"""

from __future__ import annotations

import re

# Layout inside a cell: each one becomes a single space.
_SPACED = re.compile(r"\r\n|[\t\n\r]")
# Everything else that is a control character; never stored.
_REFUSED = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
_ANY_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMES = {
    0x00: "NUL",
    0x0B: "VT, vertical tab",
    0x0C: "FF, form feed",
    0x1B: "ESC",
    0x7F: "DEL",
    0x85: "NEL, next line",
    0x2028: "LINE SEPARATOR",
    0x2029: "PARAGRAPH SEPARATOR",
}


class CellRefused(ValueError):
    """The cell cannot be stored as it is; the message is the row error's reason."""


def describe_character(char: str) -> str:
    code = f"U+{ord(char):04X}"
    name = _NAMES.get(ord(char))
    return f"{code} ({name})" if name else code


def without_controls(text: str) -> str:
    """``text`` with tabs and line breaks as spaces; :class:`CellRefused` naming any
    other control character (also the API's check on recipients added by hand)."""
    if not _ANY_CONTROL.search(text):  # most cells: one scan, nothing to replace
        return text
    if found := _REFUSED.search(text):
        raise CellRefused(
            f"contains the control character {describe_character(found.group())} "
            f"at character {found.start() + 1}; remove it (tabs and line breaks are "
            "allowed and become spaces)"
        )
    return _SPACED.sub(" ", text)


def clean_cell(text: str, *, field: str, limit: int) -> str:
    """The value stored for a cell, or :class:`CellRefused` saying why not."""
    value = without_controls(text).strip()
    if len(value) > limit:
        raise CellRefused(
            f"the value is {len(value)} characters long; {field} takes at most {limit}"
        )
    return value


def clean_header(text: str) -> str:
    """A column name: every control character becomes a space (a header is not data)."""
    return _ANY_CONTROL.sub(" ", text).strip()


def visible(text: str) -> str:
    """``text`` with each control character written as an escape (``\\x00``, ``\\u2028``),
    so a row error can be stored (PostgreSQL holds no NUL) and read in the download."""
    return _ANY_CONTROL.sub(lambda m: _escape(m.group()), text)


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
