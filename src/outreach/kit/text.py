"""Text checks shared by every domain that writes user text where it has a meaning."""

from __future__ import annotations

import re
import unicodedata

# Control characters (C0 with TAB, CR and LF, DEL, C1 with NEL), the Unicode line and
# paragraph separators, and lone surrogates (they cannot be encoded at all). Python's
# str.splitlines() breaks on VT, FF, NEL, U+2028 and U+2029, and mail programs differ
# on the rest: none of them may reach a header.
_CONTROL_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
# Those categories as one character class, searched in C: a schedule checks three
# header values per recipient. Cc, Cs, Zl and Zp are closed sets in Unicode (no new
# characters are ever assigned to them), and a test checks the class against
# unicodedata for every code point.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def control_character(value: str) -> str | None:
    """The first control character in ``value``, described as ``U+2028 (LINE SEPARATOR)``,
    or None when there is none."""
    found = _CONTROL.search(value)
    if found is None:
        return None
    character = found.group()
    name = unicodedata.name(character, "")
    return f"U+{ord(character):04X}" + (f" ({name})" if name else " (a control character)")
