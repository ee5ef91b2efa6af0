"""The control-character check is a regular expression; Unicode's categories define it."""

from __future__ import annotations

import sys
import unicodedata

from outreach.kit.text import control_character

REFUSED = {"Cc", "Cs", "Zl", "Zp"}


def test_every_code_point_is_judged_by_its_unicode_category() -> None:
    for code in range(sys.maxunicode + 1):
        character = chr(code)
        refused = unicodedata.category(character) in REFUSED
        found = control_character(f"a{character}b")
        assert (found is not None) == refused, f"U+{code:04X}"
        if refused:
            assert found is not None
            assert found.startswith(f"U+{code:04X} (")


def test_the_first_control_character_is_named() -> None:
    assert control_character("Hello") is None
    assert control_character("Hi\u2028there\n") == "U+2028 (LINE SEPARATOR)"
    assert control_character("tab\there") == "U+0009 (a control character)"
