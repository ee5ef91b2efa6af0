"""Colour contrast of the stylesheet, computed (WCAG 2.2 relative luminance): text at
least 4.5:1 against the background it is drawn on (AA), the focus ring at least 3:1
against the page around it (non-text contrast). The browser tests also measure every
text element of every page as rendered (tests/web/browser.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CSS = Path(__file__).resolve().parents[2] / "src/outreach/web/static/app.css"
WHITE = "#ffffff"
AA_TEXT = 4.5
NON_TEXT = 3.0


def luminance(colour: str) -> float:
    """Relative luminance of a #rgb or #rrggbb colour."""
    hex_digits = colour.lstrip("#")
    if len(hex_digits) == 3:
        hex_digits = "".join(c * 2 for c in hex_digits)
    channels = [int(hex_digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(first: str, second: str) -> float:
    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def rules() -> list[tuple[str, dict[str, str]]]:
    """(selector, {property: value}) of every rule, custom properties resolved."""
    text = re.sub(r"/\*.*?\*/", "", CSS.read_text(), flags=re.S)
    text = re.sub(r"@media[^{]*\{((?:[^{}]*\{[^}]*\})*)\s*\}", r"\1", text)
    parsed = []
    for selector, body in re.findall(r"([^{}]+)\{([^}]*)\}", text):
        declarations = {}
        for declaration in body.split(";"):
            if ":" in declaration:
                name, value = declaration.split(":", 1)
                declarations[name.strip()] = value.strip()
        parsed.append((" ".join(selector.split()), declarations))
    variables = {k: v for s, d in parsed if s == ":root" for k, v in d.items()}

    def resolve(value: str) -> str:
        return re.sub(r"var\((--[\w-]+)\)", lambda m: variables[m.group(1)], value)

    return [(s, {k: resolve(v) for k, v in d.items()}) for s, d in parsed if s != ":root"]


def colour_in(value: str) -> str | None:
    found = re.search(r"#[0-9a-fA-F]{6}\b|#[0-9a-fA-F]{3}\b", value)
    return found.group(0) if found else None


def test_the_stylesheet_has_the_colours_this_test_reads() -> None:
    read = rules()
    assert len(read) > 30
    assert any("color" in d for _, d in read)


def pairs() -> list[tuple[str, str, str]]:
    """(selector, text colour, background) for every rule that sets a text colour: on
    its own background when it sets one, else on each page background it can sit on
    (white cards and the grey page)."""
    read = rules()
    page = colour_in(dict(read)["body"]["background"]) or WHITE
    found = []
    for selector, declarations in read:
        text = colour_in(declarations.get("color", ""))
        if text is None:
            continue
        background = colour_in(
            declarations.get("background", "") or declarations.get("background-color", "")
        )
        for behind in [background] if background else [WHITE, page]:
            found.append((selector, text, behind))
    return found


@pytest.mark.parametrize(("selector", "text", "background"), pairs())
def test_text_meets_aa(selector: str, text: str, background: str) -> None:
    ratio = contrast(text, background)
    assert ratio >= AA_TEXT, f"{selector}: {text} on {background} is {ratio:.2f}:1"


def test_the_focus_ring_stands_out_from_the_page() -> None:
    read = dict(rules())
    ring = colour_in(read[":focus-visible"]["outline"])
    assert ring is not None
    page = colour_in(read["body"]["background"])
    assert page is not None
    for behind in (WHITE, page):
        assert contrast(ring, behind) >= NON_TEXT, f"focus ring {ring} on {behind}"


def test_the_formula_matches_known_values() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)  # just below AA
    assert contrast("#0b57d0", "#0b57d0") == pytest.approx(1.0)
